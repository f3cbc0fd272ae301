from flowgate.harness.checkers import dead_letter

from .support import HB


def _clean() -> HB:
    h = HB()
    h.poison("p-1", kind="bad_json")
    h.receive("p-1")
    h.dead_letter("p-1", reason="bad_json")
    h.op("harness", "ok", "poison", poison_id="p-2", kind="unknown_type")
    h.dead_letter("m-77", reason="unknown_type", poison_id="p-2")
    h.send("c-1", "o-1", 1, expect_business_failure=True)
    h.business_dead_letter("c-1", "o-1", 1)
    h.dead_letter("m-88", reason="oversized", poison=True)  # poison the harness did not announce
    return h


def test_clean_history_is_valid() -> None:
    h = _clean()
    h.drain()
    result = dead_letter(h.ops)
    assert result.valid, result.anomalies
    assert result.stats["poison"] == 2
    assert result.stats["poison_dead_lettered"] == 2
    assert result.stats["expected_business_failures"] == 1


def test_poison_not_dead_lettered() -> None:
    h = _clean()
    poison = h.poison("p-3", kind="tampered")
    h.receive("p-3")
    drain = h.drain()
    [anomaly] = dead_letter(h.ops).anomalies
    assert anomaly.kind == "poison-not-dead-lettered"
    assert anomaly.ops == (poison,)
    assert f"drain #{drain}" in anomaly.message


def test_poison_without_drain_cannot_be_judged() -> None:
    h = _clean()
    assert [a.kind for a in dead_letter(h.ops).anomalies] == ["no-drain"]


def test_no_poison_no_drain_needed() -> None:
    h = HB()
    h.send("c-1", "o-1", 1)
    assert dead_letter(h.ops).valid


def test_dead_letter_without_reason() -> None:
    h = _clean()
    h.poison("p-4")
    empty = h.dead_letter("p-4", reason=" ")
    h.drain()
    [anomaly] = dead_letter(h.ops).anomalies
    assert anomaly.kind == "dead-letter-without-reason"
    assert anomaly.ops == (empty,)


def test_valid_command_dead_lettered_by_command_id() -> None:
    h = _clean()
    ok = h.send("c-5", "o-2", 1)
    dl = h.dead_letter("m-c-5", reason="decrypt_failed", command_id="c-5")
    h.drain()
    [anomaly] = dead_letter(h.ops).anomalies
    assert anomaly.kind == "valid-dead-lettered"
    assert anomaly.ops == (ok, dl)
    assert "command c-5 (entity o-2 seq 1)" in anomaly.message


def test_valid_command_dead_lettered_by_message_id() -> None:
    h = _clean()
    ok = h.send("c-5", "o-2", 1, message_id="sqs-5")
    dl = h.dead_letter("sqs-5", reason="max_receives")
    h.drain()
    [anomaly] = dead_letter(h.ops).anomalies
    assert anomaly.kind == "valid-dead-lettered"
    assert anomaly.ops == (ok, dl)


def test_failed_command_may_be_dead_lettered() -> None:
    h = _clean()
    h.send("c-5", "o-2", 1, outcome="info")
    h.dead_letter("m-c-5", reason="max_receives", command_id="c-5")
    h.drain()
    assert dead_letter(h.ops).valid


def test_unexpected_business_dead_letter() -> None:
    h = _clean()
    invoke = h.invoke("c-6", "o-2", 1)
    h.complete("c-6", "o-2", 1)
    bdl = h.business_dead_letter("c-6", "o-2", 1)
    stray = h.business_dead_letter("c-404", "o-2", 2)
    h.drain()
    result = dead_letter(h.ops)
    assert [a.kind for a in result.anomalies] == ["unexpected-business-dead-letter"] * 2
    assert result.anomalies[0].ops == (bdl, invoke)
    assert result.anomalies[1].ops == (stray,)
    assert "never sent" in result.anomalies[1].message


def test_dead_letter_with_the_wrong_reason_code() -> None:
    h = _clean()
    right = h.poison("p-5", kind="deep", expected_reason="DecodeError")
    h.dead_letter("p-5", reason="DecodeError: JSON nests deeper than 16 levels")
    wrong = h.poison("p-6", kind="deep", expected_reason="DecodeError")
    dl = h.dead_letter("p-6", reason="sqs-redrive: maxReceiveCount exceeded before a listener forwarded it")
    h.drain()
    [anomaly] = dead_letter(h.ops).anomalies
    assert anomaly.kind == "dead-letter-wrong-reason"
    assert anomaly.ops == (wrong, dl)
    assert right not in anomaly.ops


def test_reason_code_of_the_catalog_is_judged() -> None:
    """``reason_code`` (hostile-input catalog): the listener's code must match; ``*`` takes any
    agreed code; SQS's own redrive is not judged here; a poison op matched only through an id
    that is another message's is not judged either."""
    h = HB()
    h.poison("m-1", kind="missing_attribute", reason_code="MissingAttribute")
    h.dead_letter("m-1", reason="MissingAttribute: EntityId attribute missing")
    h.poison("m-2", kind="~del:payload.sku", reason_code="*")
    h.dead_letter("m-2", reason="DecodeError: payload of PlaceOrder lacks field 'sku'")
    h.poison("m-3", kind="bad_json", reason_code="DecodeError")
    h.dead_letter("m-3", reason="sqs-redrive: maxReceiveCount exceeded before a listener forwarded it")
    h.poison("m-4", kind="bad_json", reason_code="DecodeError", poison_id="m-5")
    h.dead_letter("m-4", reason="DecodeError: body is not JSON")
    h.dead_letter("m-5", reason="OversizedMessage: body exceeds 256 KiB", poison=True)  # not m-4's
    h.drain()
    assert dead_letter(h.ops).valid, dead_letter(h.ops).anomalies
    wrong = h.poison("m-6", kind="oversized", reason_code="OversizedMessage")
    h.dead_letter("m-6", reason="DecodeError: body is not JSON")
    odd = h.poison("m-7", kind="~enc:bom", reason_code="*")
    h.dead_letter("m-7", reason="InvalidMessage: something")
    found = [a for a in dead_letter(h.ops).anomalies if a.kind == "wrong-dead-letter-reason"]
    assert [a.ops[0] for a in found] == [wrong, odd]
