"""Envelope encryption: round trip and every way a moved or tampered ciphertext must fail.

The ``EnvelopeContract`` runs against a crypto-enforcing in-process KMS here and against
LocalStack's KMS in ``test_aws_envelope.py``.
"""

from __future__ import annotations

import base64
import json
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from botocore.exceptions import ClientError
from flowgate_reference_kms import FakeKms

from flowgate.reference.config import BusOptions
from flowgate.reference.envelope import KmsEnvelopeCipher, MessageBinding, build_envelope, parse_envelope
from flowgate.reference.errors import ConfigurationError, DecryptionError, TransportError
from flowgate.reference.keycache import CacheLimits

B = MessageBinding("msg-1", "orders.fifo", "order-1", "PlaceOrder")
PLAIN = '{"secret": "4111-1111-1111-1111"}'


class EnvelopeContract:
    __test__ = False

    def make(self) -> tuple[KmsEnvelopeCipher, KmsEnvelopeCipher]:
        """Return (cipher, cipher with a different key)."""
        raise NotImplementedError

    def open(self, cipher: KmsEnvelopeCipher, sealed: str, binding: MessageBinding = B,
             destinations: tuple[str, ...] = ("orders.fifo",)) -> str:
        return cipher.open(sealed, message_id=binding.message_id, entity_id=binding.entity_id,
                           message_type=binding.message_type, destinations=destinations)

    def test_round_trip_hides_plaintext(self) -> None:
        cipher, _ = self.make()
        sealed = cipher.seal(PLAIN, B)
        assert "4111" not in sealed
        assert "4111" not in base64.b64decode(sealed).decode()
        env = json.loads(base64.b64decode(sealed))
        assert set(env) == {"Version", "KeyId", "Destination", "EncryptedDataKey", "Nonce", "Tag", "Ciphertext"}
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
        for garbage in ("", "not base64!", base64.b64encode(b"{}").decode(), base64.b64encode(b"[1]").decode()):
            with pytest.raises(DecryptionError):
                self.open(cipher, garbage)

    @pytest.mark.parametrize("other", [
        MessageBinding("msg-2", "orders.fifo", "order-1", "PlaceOrder"),
        MessageBinding("msg-1", "orders.fifo", "order-2", "PlaceOrder"),
        MessageBinding("msg-1", "orders.fifo", "order-1", "CancelOrder"),
        MessageBinding("order-1", "orders.fifo", "msg-1", "PlaceOrder"),
    ], ids=["message", "entity", "type", "swapped"])
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


#: the default bounds of ``BusOptions(data_key_cache=True)``
CACHED = BusOptions(data_key_cache=True).data_key_cache_limits()


class TestEnvelopeWithCachingInProcessKms(EnvelopeContract):
    """The same contract with the data-key cache on (destination context, bounded reuse)."""

    __test__ = True

    def make(self) -> tuple[KmsEnvelopeCipher, KmsEnvelopeCipher]:
        kms: Any = FakeKms("arn:k/one", "arn:k/two")
        return (
            KmsEnvelopeCipher(kms, "arn:k/one", cache_limits=CACHED),
            KmsEnvelopeCipher(kms, "arn:k/two", cache_limits=CACHED),
        )


def _open(cipher: KmsEnvelopeCipher, sealed: str, b: MessageBinding) -> str:
    return cipher.open(sealed, message_id=b.message_id, entity_id=b.entity_id, message_type=b.message_type,
                       destinations=(b.destination,))


def test_cache_reuses_one_data_key_per_destination_and_cacheless_peers_interoperate() -> None:
    kms: Any = FakeKms("arn:k/one")
    producer = KmsEnvelopeCipher(kms, "arn:k/one", cache_limits=CACHED)
    consumer = KmsEnvelopeCipher(kms, "arn:k/one", cache_limits=CACHED)
    plain = KmsEnvelopeCipher(kms, "arn:k/one")  # no cache: contract v1 behaviour
    bindings = [MessageBinding(f"m-{i}", d, f"e-{i}", "PlaceOrder") for i in range(20)
                for d in ("orders.fifo", "order-views.fifo")]
    sealed = [producer.seal(PLAIN, b) for b in bindings]
    assert kms.calls.count("GenerateDataKey") == 2  # one key per destination
    assert len({parse_envelope(s)["EncryptedDataKey"] for s in sealed}) == 2
    kms.calls.clear()
    assert all(_open(consumer, s, b) == PLAIN for s, b in zip(sealed, bindings, strict=True))
    assert kms.calls.count("Decrypt") == 2
    kms.calls.clear()
    # a consumer without a cache opens them too (message context first, then the destination's)
    assert all(_open(plain, s, b) == PLAIN for s, b in zip(sealed, bindings, strict=True))
    assert kms.calls.count("Decrypt") == 2 * len(bindings)
    # and a caching consumer opens what a producer without a cache sealed (message context)
    kms.calls.clear()
    b = bindings[0]
    assert _open(consumer, plain.seal(PLAIN, b), b) == PLAIN
    assert kms.calls.count("Decrypt") == 2
    # the per-message binding still lives in the AAD: another message's attributes fail
    other = MessageBinding("m-x", b.destination, b.entity_id, b.message_type)
    with pytest.raises(DecryptionError):
        _open(consumer, sealed[0], other)


def test_a_transient_kms_error_on_the_second_context_is_not_poison() -> None:
    kms: Any = FakeKms("arn:k/one")
    plain = KmsEnvelopeCipher(kms, "arn:k/one")
    sealed = KmsEnvelopeCipher(kms, "arn:k/one", cache_limits=CACHED).seal(PLAIN, B)
    decrypt = kms.decrypt

    def flaky(**kw: Any) -> Any:
        if "messageId" not in kw["EncryptionContext"]:
            raise ClientError({"Error": {"Code": "DisabledException", "Message": "off"}}, "Decrypt")
        return decrypt(**kw)

    kms.decrypt = flaky
    with pytest.raises(TransportError):
        _open(plain, sealed, B)


def test_bounds_hold_under_concurrent_sealing() -> None:
    limits = CacheLimits(max_age_seconds=60, max_messages=7, max_bytes=10**9, max_entries=4)
    kms: Any = FakeKms("arn:k/one")
    cipher = KmsEnvelopeCipher(kms, "arn:k/one", cache_limits=limits)
    with ThreadPoolExecutor(8) as pool:
        sealed = list(pool.map(lambda i: cipher.seal(PLAIN, MessageBinding(f"m-{i}", "q", "e", "T")), range(400)))
    per_key = Counter(parse_envelope(s)["EncryptedDataKey"] for s in sealed)
    assert max(per_key.values()) <= 7
    assert kms.calls.count("GenerateDataKey") == len(per_key) >= 400 // 7


def test_clear_caches_wipes_every_key() -> None:
    kms: Any = FakeKms("arn:k/one")
    cipher = KmsEnvelopeCipher(kms, "arn:k/one", cache_limits=CACHED)
    _open(cipher, cipher.seal(PLAIN, B), B)
    assert cipher.seal_cache is not None
    assert cipher.open_cache is not None
    entries = cipher.seal_cache.entries() + cipher.open_cache.entries()
    assert len(entries) == 2
    assert all(any(e.key) for e in entries)
    cipher.clear_caches()
    assert not any(any(e.key) for e in entries)
    assert len(cipher.seal_cache) == len(cipher.open_cache) == 0


@pytest.mark.parametrize("bad", [
    {"data_key_max_age_seconds": 0},
    {"data_key_max_messages": 0},
    {"data_key_max_messages": 2**32 + 1},
    {"data_key_max_bytes": 0},
    {"data_key_max_bytes": 2**63},
    {"data_key_cache_entries": 0},
])
def test_cache_options_are_validated_at_construction(bad: dict[str, float]) -> None:
    with pytest.raises(ConfigurationError):
        BusOptions(**bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        BusOptions(data_key_cache=True, **bad)  # type: ignore[arg-type]


def test_cache_is_off_by_default_and_the_limits_follow_the_options() -> None:
    assert BusOptions().data_key_cache_limits() is None
    limits = BusOptions(data_key_cache=True, data_key_max_messages=2**32).data_key_cache_limits()
    assert limits == CacheLimits(max_age_seconds=60.0, max_messages=2**32, max_bytes=64 * 2**20, max_entries=256)


def test_concurrent_misses_of_one_key_make_one_kms_call() -> None:
    kms: Any = FakeKms("arn:k/one")
    generate, decrypt = kms.generate_data_key, kms.decrypt

    def slow(call: Any) -> Any:
        def wrapped(**kw: Any) -> Any:
            time.sleep(0.05)  # every thread misses before the first answer is cached
            return call(**kw)

        return wrapped

    kms.generate_data_key, kms.decrypt = slow(generate), slow(decrypt)
    producer = KmsEnvelopeCipher(kms, "arn:k/one", cache_limits=CACHED)
    bindings = [MessageBinding(f"m-{i}", "q", "e", "T") for i in range(8)]
    with ThreadPoolExecutor(8) as pool:
        sealed = list(pool.map(lambda b: producer.seal(PLAIN, b), bindings))
    assert kms.calls.count("GenerateDataKey") == 1
    consumer = KmsEnvelopeCipher(kms, "arn:k/one", cache_limits=CACHED)
    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(lambda sb: _open(consumer, *sb), zip(sealed, bindings, strict=True))) == {PLAIN}
    assert kms.calls.count("Decrypt") == 1
