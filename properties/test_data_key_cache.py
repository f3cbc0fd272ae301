"""Property: the KMS data-key cache (decision D6, ``reference/keycache.py``) stays within its bounds.

Against the simulator's KMS, with a fake monotonic clock, a generated trace of messages (random
destination, size and time step) is sealed by a caching :class:`KmsEnvelopeCipher`; what each
envelope's encrypted data key (EDK) was used for is then read back from the envelopes:

* no key seals more than ``max_messages`` messages, or longer than ``max_age`` after KMS issued
  it, or (beyond its first message) more than ``max_bytes`` plaintext bytes;
* a key serves one destination only (the encryption context is part of the cache key), and every
  envelope opens in a consumer *without* a cache (the reference's and the gate's): the wire
  format does not depend on the cache;
* the open side reuses a decrypted key only for the (EDK, context) KMS verified, within the same
  bounds; evicted keys are zeroed; the message bound cannot be configured past 2^32.

A failure prints ``flowgate-anomalies: <kind>`` (the mutant catalog's ``data-key-*`` mutants).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowgate.harness.gate import envelope as gate_envelope
from flowgate.harness.sim import SimAws
from flowgate.reference.envelope import KmsEnvelopeCipher, MessageBinding, build_envelope, parse_envelope
from flowgate.reference.errors import ConfigurationError, DecryptionError
from flowgate.reference.keycache import MAX_MESSAGES_PER_KEY, CacheLimits, DataKeyCache
from properties.support import sim_label

DESTINATIONS = ("orders.fifo", "order-views.fifo", "payments")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CountingKms:
    """A KMS client that counts its calls by operation (and keeps the Decrypt contexts)."""

    def __init__(self, kms: Any) -> None:
        self._kms = kms
        self.calls: dict[str, int] = defaultdict(int)
        self.decrypt_contexts: list[dict[str, str]] = []

    def generate_data_key(self, **kw: Any) -> Any:
        self.calls["GenerateDataKey"] += 1
        return self._kms.generate_data_key(**kw)

    def decrypt(self, **kw: Any) -> Any:
        self.calls["Decrypt"] += 1
        self.decrypt_contexts.append(dict(kw["EncryptionContext"]))
        return self._kms.decrypt(**kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._kms, name)


@dataclass
class Use:
    destination: str
    first: float
    last: float
    messages: int = 0
    nbytes: int = 0


@dataclass
class Trace:
    limits: CacheLimits
    kms: CountingKms
    key: str
    sealed: list[tuple[str, MessageBinding, str]] = field(default_factory=list)  # (body, binding, text)
    uses: dict[bytes, Use] = field(default_factory=dict)


LIMITS = st.builds(
    CacheLimits,
    max_age_seconds=st.floats(0.5, 10.0),
    max_messages=st.integers(1, 6),
    max_bytes=st.integers(20, 600),
    max_entries=st.integers(1, 4),
)
#: (destination index, plaintext length, seconds to the next message)
STEPS = st.lists(
    st.tuples(
        st.integers(0, len(DESTINATIONS) - 1),
        st.one_of(st.integers(0, 8), st.integers(0, 120)),
        st.sampled_from([0.0, 0.0, 0.1, 0.7, 2.5]),
    ),
    min_size=6,
    max_size=40,
)


def seal_trace(limits: CacheLimits, steps: list[tuple[int, int, float]], seed: int = 7) -> Trace:
    clock = Clock()
    kms = CountingKms(SimAws(seed=seed).client("kms"))
    key = kms.create_key()["KeyMetadata"]["Arn"]
    cipher = KmsEnvelopeCipher(kms, key, cache_limits=limits, clock=clock)
    trace = Trace(limits, kms, key)
    for i, (dest, size, dt) in enumerate(steps):
        binding = MessageBinding(f"m-{i}", DESTINATIONS[dest], f"e-{i % 3}", "PlaceOrder")
        text = "x" * size
        body = cipher.seal(text, binding)
        trace.sealed.append((body, binding, text))
        edk = parse_envelope(body)["EncryptedDataKey"]
        use = trace.uses.setdefault(edk, Use(binding.destination, clock.now, clock.now))
        use.last, use.messages, use.nbytes = clock.now, use.messages + 1, use.nbytes + size
        if use.destination != binding.destination:
            use.destination = "<several>"
        clock.now += dt
    return trace


def anomalies(kind: str, problems: list[Any]) -> str:
    return f"flowgate-anomalies: {kind}\n{problems[:5]}"


@given(limits=LIMITS, steps=STEPS)
def test_no_key_seals_past_its_message_bound(
    limits: CacheLimits, steps: list[tuple[int, int, float]]
) -> None:
    sim_label("Encryption", "data-key cache", "message bound")
    trace = seal_trace(limits, steps)
    over = [u for u in trace.uses.values() if u.messages > limits.max_messages]
    assert not over, anomalies("data-key-over-message-bound", over)


@given(limits=LIMITS, steps=STEPS)
def test_no_key_seals_past_its_age(limits: CacheLimits, steps: list[tuple[int, int, float]]) -> None:
    sim_label("Encryption", "data-key cache", "age bound")
    trace = seal_trace(limits, steps)
    old = [u for u in trace.uses.values() if u.last - u.first >= limits.max_age_seconds]
    assert not old, anomalies("data-key-over-age", old)


@given(limits=LIMITS, steps=STEPS)
def test_no_key_seals_past_its_byte_bound(limits: CacheLimits, steps: list[tuple[int, int, float]]) -> None:
    sim_label("Encryption", "data-key cache", "byte bound")
    trace = seal_trace(limits, steps)
    # a key's first message may be larger than the bound (it is then used for nothing else)
    over = [u for u in trace.uses.values() if u.messages > 1 and u.nbytes > limits.max_bytes]
    assert not over, anomalies("data-key-over-byte-bound", over)


@given(limits=LIMITS, steps=STEPS)
def test_a_key_serves_one_destination_and_opens_without_a_cache(
    limits: CacheLimits, steps: list[tuple[int, int, float]]
) -> None:
    sim_label("Encryption", "data-key cache", "context per destination; cacheless consumers")
    trace = seal_trace(limits, steps)
    shared = [u for u in trace.uses.values() if u.destination == "<several>"]
    assert not shared, anomalies("data-key-across-destinations", shared)
    plain = KmsEnvelopeCipher(trace.kms, trace.key)  # a consumer without a cache
    accepted = gate_envelope.accepted_key_ids(trace.kms, trace.key)
    refused = []
    for body, b, text in trace.sealed:
        kw = {"message_id": b.message_id, "entity_id": b.entity_id, "message_type": b.message_type}
        try:
            assert plain.open(body, destinations={b.destination}, **kw) == text
            ctx = gate_envelope.context(b.message_id, b.destination, b.entity_id, b.message_type)
            assert gate_envelope.open_body(trace.kms, accepted, ctx, body).decode() == text
        except (DecryptionError, gate_envelope.EnvelopeError) as exc:
            refused.append((b.destination, str(exc)))
    assert not refused, anomalies("data-key-across-destinations", refused)
    # the cache did its job: at most one GenerateDataKey per key the bounds allow
    assert trace.kms.calls["GenerateDataKey"] == len(trace.uses)


@given(limits=LIMITS, steps=STEPS)
def test_open_cache_is_bounded_and_keyed_by_context(
    limits: CacheLimits, steps: list[tuple[int, int, float]]
) -> None:
    """A caching consumer asks KMS again whenever a bound would be exceeded and never answers from
    the cache for a context KMS did not verify: the same EDK re-targeted at another destination
    (``Destination`` rewritten; the consumer takes both) goes to KMS, which refuses it."""
    sim_label("Encryption", "data-key cache", "open side: bounds and context")
    trace = seal_trace(limits, steps)
    clock = Clock()
    consumer = KmsEnvelopeCipher(trace.kms, trace.key, cache_limits=limits, clock=clock)
    trace.kms.calls.clear()
    opened: dict[bytes, list[float]] = defaultdict(list)
    for i, (body, b, text) in enumerate(trace.sealed):
        kw = {"message_id": b.message_id, "entity_id": b.entity_id, "message_type": b.message_type}
        assert consumer.open(body, destinations={b.destination}, **kw) == text
        opened[parse_envelope(body)["EncryptedDataKey"]].append(clock.now)
        clock.now += steps[i][2]
    # each Decrypt answer serves at most max_messages opens, all within max_age of the answer
    floor = sum(math.ceil(len(ts) / limits.max_messages) for ts in opened.values())
    assert trace.kms.calls["Decrypt"] >= floor, anomalies(
        "data-key-over-message-bound", [trace.kms.calls["Decrypt"], floor]
    )
    aged = sum(1 for ts in opened.values() if ts[-1] - ts[0] >= limits.max_age_seconds)
    assert trace.kms.calls["Decrypt"] >= len(opened) + aged, anomalies("data-key-over-age", [aged])
    body, b, _ = trace.sealed[-1]
    other = next(d for d in DESTINATIONS if d != b.destination)
    moved = build_envelope({**parse_envelope(body), "Destination": other})
    before = trace.kms.calls["Decrypt"]
    with pytest.raises(DecryptionError):
        consumer.open(
            moved,
            destinations={b.destination, other},
            message_id=b.message_id,
            entity_id=b.entity_id,
            message_type=b.message_type,
        )
    asked = [c for c in trace.kms.decrypt_contexts[before:] if c.get("destination") == other]
    assert asked, anomalies("data-key-across-destinations", ["open cache answered without KMS"])


@given(limits=LIMITS, steps=STEPS)
def test_evicted_keys_are_wiped(limits: CacheLimits, steps: list[tuple[int, int, float]]) -> None:
    sim_label("Encryption", "data-key cache", "wipe on eviction")
    clock = Clock()
    cache = DataKeyCache(limits, clock)
    seen = []
    for i, (dest, size, dt) in enumerate(steps):
        if cache.use(dest, size) is None:
            cache.put(dest, bytes([i % 255 + 1]) * 32, "k", b"edk", size)
        seen.extend(e for e in cache.entries() if all(e is not s for s in seen))
        clock.now += dt
    live = cache.entries()
    gone = [e for e in seen if all(e is not x for x in live)]
    unwiped = [e for e in gone if any(e.key)]
    assert not unwiped, anomalies("data-key-not-wiped", unwiped)
    cache.clear()
    assert not any(any(e.key) for e in seen), anomalies("data-key-not-wiped", ["clear"])


@given(st.integers(MAX_MESSAGES_PER_KEY + 1, 2**64))
def test_no_key_can_be_configured_past_2_32_messages(n: int) -> None:
    sim_label("Encryption", "data-key cache", "2^32 messages per key")
    with pytest.raises(ConfigurationError):
        CacheLimits(max_age_seconds=60, max_messages=n, max_bytes=1, max_entries=1)
