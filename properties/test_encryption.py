"""Property 5: encryption round-trips; tampered ciphertext, swapped AAD/context or a wrong key
never yield an effect (and end in the DLQ with a reason)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowgate.harness.faults import FaultPlan
from flowgate.harness.sim import SimAws
from flowgate.harness.simulation import SimConfig
from flowgate.reference.envelope import KmsEnvelopeCipher, MessageBinding, build_envelope, parse_envelope
from flowgate.reference.errors import DecryptionError
from properties.support import PROBS, assert_valid, sim_configs, sim_label, simulate

HOSTILE = ("tampered", "wrong_key", "swapped_aad")


@given(sim_configs(encryption=True, faults=st.builds(FaultPlan, crash=PROBS, stall=PROBS, duplicate=PROBS,
                                                      poison=st.just(HOSTILE))))
def test_hostile_ciphertexts_never_take_effect(config: SimConfig) -> None:
    sim_label("Encryption", "KMS envelope", "tampered / wrong key / swapped AAD")
    result = simulate(config)
    assert_valid(result, ["confidentiality_integrity", "dead_letter", "total_queue"])
    stats = next(v for v in result.verdicts if v.checker == "confidentiality_integrity").stats
    assert all(op.value.get("encrypted") for op in result.history.ops if op.f == "wire"), stats


BINDINGS = st.builds(MessageBinding, message_id=st.uuids().map(str),
                     destination=st.sampled_from(["orders.fifo", "order-views.fifo", "orders"]),
                     entity_id=st.text(min_size=1, max_size=20), message_type=st.sampled_from(["PlaceOrder", "X"]))


@given(plaintext=st.text(max_size=2000), binding=BINDINGS, other=BINDINGS, flip=st.integers(0, 10_000),
       field=st.sampled_from(["Ciphertext", "Tag", "Nonce", "EncryptedDataKey"]))
def test_envelope_round_trip_and_tamper(plaintext: str, binding: MessageBinding, other: MessageBinding,
                                        flip: int, field: str) -> None:
    sim_label("Encryption", "KMS envelope", "round trip and single-bit tampering")
    kms = SimAws(seed=flip).client("kms")
    key = kms.create_key()["KeyMetadata"]["Arn"]
    cipher = KmsEnvelopeCipher(kms, key)
    sealed = cipher.seal(plaintext, binding)
    kw = {"message_id": binding.message_id, "entity_id": binding.entity_id, "message_type": binding.message_type}
    assert cipher.open(sealed, destinations={binding.destination}, **kw) == plaintext
    env = parse_envelope(sealed)
    data = bytearray(env[field])
    if data:
        data[flip % len(data)] ^= 1 << (flip % 8)
        env[field] = bytes(data)
        with pytest.raises(DecryptionError):
            cipher.open(build_envelope(env), destinations={binding.destination}, **kw)
    if (other.message_id, other.entity_id, other.message_type) != (binding.message_id, binding.entity_id,
                                                                     binding.message_type):
        with pytest.raises(DecryptionError):
            cipher.open(sealed, destinations={binding.destination}, message_id=other.message_id,
                        entity_id=other.entity_id, message_type=other.message_type)
    wrong = KmsEnvelopeCipher(kms, kms.create_key()["KeyMetadata"]["Arn"])
    with pytest.raises(DecryptionError):
        wrong.open(sealed, destinations={binding.destination}, **kw)
