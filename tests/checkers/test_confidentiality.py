import pytest

from flowgate.harness.checkers import confidentiality_integrity

from .support import HB


def test_encrypted_wire_without_markers_is_valid() -> None:
    h = HB()
    h.wire("eyJFbmNyeXB0ZWREYXRhS2V5Ijo", markers=["o-1", "PlaceOrder"])
    h.wire('{"name": "PlaceOrder"}', encrypted=False, markers=["PlaceOrder"])  # encryption off: not judged
    result = confidentiality_integrity(h.ops)
    assert result.valid, result.anomalies
    assert result.stats["encrypted_samples"] == 1


def test_plaintext_on_an_encrypted_wire() -> None:
    h = HB()
    leak = h.wire('{"Ciphertext": "...", "name": "PlaceOrder"}', markers=["o-1", "PlaceOrder"])
    [anomaly] = confidentiality_integrity(h.ops).anomalies
    assert anomaly.kind == "plaintext-on-wire"
    assert anomaly.ops == (leak,)
    assert "'PlaceOrder'" in anomaly.message
    assert "'o-1'" not in anomaly.message


def test_unencrypted_wire_when_encryption_is_required() -> None:
    h = HB()
    sample = h.wire("{}", encrypted=False)
    [anomaly] = confidentiality_integrity(h.ops, require_encryption=True).anomalies
    assert anomaly.kind == "unencrypted-wire"
    assert anomaly.ops == (sample,)


@pytest.mark.parametrize("kind", ["tampered", "wrong_key", "swapped_aad"])
def test_hostile_poison_with_an_effect_is_a_breach(kind: str) -> None:
    h = HB()
    poison = h.poison("p-1", kind=kind, command_id="evil-1")
    effect = h.effect("evil-1", "o-1", 1)
    h.dead_letter("p-1")
    [anomaly] = confidentiality_integrity(h.ops).anomalies
    assert anomaly.kind == "integrity-breach"
    assert anomaly.ops == (poison, effect)
    assert kind in anomaly.message


def test_breach_linked_through_receive_and_publish() -> None:
    h = HB()
    poison = h.poison("p-1", kind="tampered")
    h.receive("p-1", command_id="evil-2")
    effect = h.effect("evil-2", "o-1", 1)
    h.publish("e-evil", "o-1", 1, "evil-2")
    projection = h.project("e-evil", "o-1", 1)
    result = confidentiality_integrity(h.ops)
    assert [a.ops for a in result.anomalies] == [(poison, effect), (poison, projection)]


def test_benign_poison_kinds_and_valid_commands_are_not_attributed() -> None:
    h = HB()
    h.poison("p-1", kind="bad_json", command_id="c-9")
    h.effect("c-9", "o-1", 1)
    h.send("c-1", "o-1", 1)
    h.poison("p-2", kind="tampered", command_id="c-1")  # a tampered copy of a valid command
    h.effect("c-1", "o-1", 1)
    assert confidentiality_integrity(h.ops).valid
