"""Envelope encryption: round trip and every way a moved or tampered ciphertext must fail.

The ``EnvelopeContract`` runs against a crypto-enforcing in-process KMS here and against
LocalStack's KMS in ``test_aws_envelope.py``.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from flowgate_reference_kms import FakeKms

from reference.envelope import KmsEnvelopeCipher, MessageBinding, build_envelope, parse_envelope
from reference.errors import DecryptionError

B = MessageBinding("msg-1", "orders.fifo", "order-1", "PlaceOrder")
PLAIN = '{"secret": "4111-1111-1111-1111"}'


class EnvelopeContract:
    __test__ = False

    def make(self) -> tuple[KmsEnvelopeCipher, KmsEnvelopeCipher]:
        """Return (cipher, cipher with a different key)."""
        raise NotImplementedError

    def open(
        self,
        cipher: KmsEnvelopeCipher,
        sealed: str,
        binding: MessageBinding = B,
        destinations: tuple[str, ...] = ("orders.fifo",),
    ) -> str:
        return cipher.open(
            sealed,
            message_id=binding.message_id,
            entity_id=binding.entity_id,
            message_type=binding.message_type,
            destinations=destinations,
        )

    def test_round_trip_hides_plaintext(self) -> None:
        cipher, _ = self.make()
        sealed = cipher.seal(PLAIN, B)
        assert "4111" not in sealed
        assert "4111" not in base64.b64decode(sealed).decode()
        env = json.loads(base64.b64decode(sealed))
        assert set(env) == {
            "Version",
            "KeyId",
            "Destination",
            "EncryptedDataKey",
            "Nonce",
            "Tag",
            "Ciphertext",
        }
        assert len(base64.b64decode(env["Nonce"])) == 12
        assert len(base64.b64decode(env["Tag"])) == 16
        assert self.open(cipher, sealed) == PLAIN
        assert cipher.seal(PLAIN, B) != sealed  # fresh data key and nonce per message

    @pytest.mark.parametrize("field", ["Ciphertext", "Tag", "Nonce", "EncryptedDataKey"])
    def test_tampered_fields_fail(self, field: str) -> None:
        cipher, _ = self.make()
        env = parse_envelope(cipher.seal(PLAIN, B))
        raw = bytearray(env[field])
        raw[len(raw) // 2] ^= 0x01
        env[field] = bytes(raw)
        with pytest.raises(DecryptionError):
            self.open(cipher, build_envelope(env))

    def test_truncated_tag_and_garbage_fail(self) -> None:
        cipher, _ = self.make()
        env = parse_envelope(cipher.seal(PLAIN, B))
        env["Tag"] = env["Tag"][:12]
        with pytest.raises(DecryptionError):
            self.open(cipher, build_envelope(env))
        for garbage in (
            "",
            "not base64!",
            base64.b64encode(b"{}").decode(),
            base64.b64encode(b"[1]").decode(),
        ):
            with pytest.raises(DecryptionError):
                self.open(cipher, garbage)

    @pytest.mark.parametrize(
        "other",
        [
            MessageBinding("msg-2", "orders.fifo", "order-1", "PlaceOrder"),
            MessageBinding("msg-1", "orders.fifo", "order-2", "PlaceOrder"),
            MessageBinding("msg-1", "orders.fifo", "order-1", "CancelOrder"),
            MessageBinding("order-1", "orders.fifo", "msg-1", "PlaceOrder"),
        ],
        ids=["message", "entity", "type", "swapped"],
    )
    def test_moved_to_another_message_fails(self, other: MessageBinding) -> None:
        cipher, _ = self.make()
        with pytest.raises(DecryptionError):
            self.open(cipher, cipher.seal(PLAIN, B), other)

    def test_wrong_destination_fails(self) -> None:
        cipher, _ = self.make()
        sealed = cipher.seal(PLAIN, B)
        with pytest.raises(DecryptionError):
            self.open(cipher, sealed, destinations=("payments.fifo",))
        env = parse_envelope(sealed)
        env["Destination"] = "payments.fifo"  # claims another destination: context/AAD no longer match
        with pytest.raises(DecryptionError):
            self.open(cipher, build_envelope(env), destinations=("payments.fifo",))

    def test_wrong_key_fails(self) -> None:
        cipher, other = self.make()
        with pytest.raises(DecryptionError):
            self.open(other, cipher.seal(PLAIN, B))
        env = parse_envelope(cipher.seal(PLAIN, B))
        env["KeyId"] = next(iter(other.allowed_key_ids()))
        with pytest.raises(DecryptionError):
            self.open(other, build_envelope(env))


class TestEnvelopeWithInProcessKms(EnvelopeContract):
    __test__ = True

    def make(self) -> tuple[KmsEnvelopeCipher, KmsEnvelopeCipher]:
        kms: Any = FakeKms("arn:k/one", "arn:k/two")
        return KmsEnvelopeCipher(kms, "arn:k/one"), KmsEnvelopeCipher(kms, "arn:k/two")


def test_aad_is_length_prefixed_and_ordered() -> None:
    a = MessageBinding("ab", "c", "d", "e").aad("k")
    b = MessageBinding("a", "bc", "d", "e").aad("k")
    assert a != b
    assert a.startswith(b"\x00\x00\x00\x011\x00\x00\x00\x01k")
