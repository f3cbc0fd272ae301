"""A bounded cache of plaintext KMS data keys (decision D6).

Modelled on the AWS Encryption SDK's caching cryptographic materials manager: an entry is used
only while it is within **every** bound -- its age (from when KMS returned it), the messages it
has protected and the plaintext bytes it has protected -- and an entry that would exceed a bound
with the current message is evicted instead of used (the message then gets a fresh key from
KMS). Bounds are checked *including* the current message, so with ``max_messages = n`` no key
ever protects more than ``n`` messages.

The seal side keys entries by (KMS key id, encryption context); the open side by (KMS key id,
encrypted data key, encryption context). The encryption context is always part of the key: a
data key KMS issued for destination A is never handed out for destination B.

AES-GCM with random 96-bit nonces allows at most 2^32 encryptions per key (NIST SP 800-38D,
section 8.3); :data:`MAX_MESSAGES_PER_KEY` caps ``max_messages`` accordingly.

Wiping: each entry holds its plaintext key in a ``bytearray`` that is overwritten with zeros
when the entry is evicted (bound reached, capacity, :meth:`DataKeyCache.clear`). That is what
Python lets us guarantee: the buffer *we* own is zeroed. It does not reach the other copies:
the immutable ``bytes`` botocore returns as ``Plaintext`` (and the HTTP/JSON buffers it was
parsed from), the transient ``bytes`` copy and ``AESGCM`` object built for each use (the key
schedule lives inside *cryptography*'s native code; both are freed, not zeroed), memory the
allocator or the garbage collector released without zeroing, swap and core dumps. The bytearray
is the only long-lived copy the cache holds; the bounds, not the wipe, are what limit how much a
leaked key exposes.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from flowgate.reference.errors import ConfigurationError

#: AES-GCM invocations per key with random 96-bit nonces (NIST SP 800-38D 8.3); also the AWS
#: Encryption SDK's upper limit for "maximum messages encrypted"
MAX_MESSAGES_PER_KEY = 2**32
#: the AWS Encryption SDK's upper limit for "maximum bytes encrypted"
MAX_BYTES_PER_KEY = 2**63 - 1
_MISS_STRIPES = 64


@dataclass(frozen=True)
class CacheLimits:
    """The bounds of one cache (the same for the seal and the open side).

    ``max_age_seconds`` > 0: an entry is used only while younger than this (from when KMS
    answered). ``max_messages`` in 1..2^32: messages one key protects (seal) or opens (open).
    ``max_bytes`` in 1..2^63-1: plaintext (seal) or ciphertext (open) bytes one key processes.
    ``max_entries`` >= 1: entries kept; the least recently used is evicted (and wiped) first.
    :class:`ConfigurationError` at construction if any is out of range."""

    max_age_seconds: float
    max_messages: int
    max_bytes: int
    max_entries: int

    def __post_init__(self) -> None:
        if not self.max_age_seconds > 0:
            raise ConfigurationError("data key cache max age must be > 0 s")
        if not 1 <= self.max_messages <= MAX_MESSAGES_PER_KEY:
            raise ConfigurationError(
                "data key cache max messages must be within 1..2^32 (AES-GCM with random 96-bit nonces)"
            )
        if not 1 <= self.max_bytes <= MAX_BYTES_PER_KEY:
            raise ConfigurationError("data key cache max bytes must be within 1..2^63-1")
        if self.max_entries < 1:
            raise ConfigurationError("data key cache max entries must be >= 1")


@dataclass
class CachedKey:
    """One cached data key (the only long-lived plaintext copy), what KMS said about it, and its
    usage so far."""

    key: bytearray
    key_id: str  # the key ARN KMS reported
    encrypted_data_key: bytes
    created: float
    messages: int = 0
    bytes: int = 0

    def wipe(self) -> None:
        self.key[:] = bytes(len(self.key))


@dataclass(frozen=True)
class Lease:
    """One message's use of a data key: the AEAD to seal/open it with (built while the entry was
    known to be live, so a concurrent eviction cannot hand out a wiped key) and the key's ids."""

    aead: AESGCM
    key_id: str
    encrypted_data_key: bytes


class DataKeyCache:
    """Thread-safe, bounded LRU of :class:`CachedKey` entries (see the module docstring).

    :meth:`use` reserves one message of ``nbytes`` under an entry (counting it) and leases its
    key, or answers ``None``; :meth:`put` stores a key KMS just returned, counting its first
    message. Both happen under the lock, so concurrent callers never push an entry past a bound
    together and never get a key another thread is wiping.
    """

    def __init__(self, limits: CacheLimits, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self.clock = clock
        self._entries: OrderedDict[Hashable, CachedKey] = OrderedDict()
        self._lock = threading.Lock()
        self._miss_locks = tuple(threading.Lock() for _ in range(_MISS_STRIPES))
        self.hits = 0
        self.misses = 0
        self.evictions = 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def within_limits(self, entry: CachedKey, nbytes: int) -> bool:
        """May ``entry`` protect one more message of ``nbytes`` (every bound, this message included)?"""
        lim = self.limits
        return (
            self.clock() - entry.created < lim.max_age_seconds
            and entry.messages + 1 <= lim.max_messages
            and entry.bytes + nbytes <= lim.max_bytes
        )

    def use(self, cache_key: Hashable, nbytes: int) -> Lease | None:
        """A lease of the key cached for ``cache_key`` with this message counted, or ``None``
        (absent, or it would exceed a bound -- then it is evicted and wiped)."""
        with self._lock:
            entry = self._entries.get(cache_key)
            if entry is None:
                self.misses += 1
                return None
            if not self.within_limits(entry, nbytes):
                self._evict(cache_key)
                self.misses += 1
                return None
            entry.messages += 1
            entry.bytes += nbytes
            self._entries.move_to_end(cache_key)
            self.hits += 1
            return _lease(entry)

    def put(
        self, cache_key: Hashable, plaintext_key: bytes, key_id: str, encrypted_data_key: bytes, nbytes: int
    ) -> Lease:
        """Lease a key KMS just returned for its first message (``nbytes``, counted) and keep it
        for later ones if one more message could still use it (``max_messages = 1`` keeps
        nothing; a key not kept is wiped at once)."""
        entry = CachedKey(bytearray(plaintext_key), key_id, encrypted_data_key, self.clock(), 1, nbytes)
        lease = _lease(entry)
        with self._lock:
            if cache_key in self._entries:
                self._evict(cache_key)
            if self.limits.max_messages > 1 and entry.bytes < self.limits.max_bytes:
                self._entries[cache_key] = entry
                while len(self._entries) > self.limits.max_entries:
                    self._evict(next(iter(self._entries)))
            else:
                entry.wipe()
        return lease

    def entries(self) -> list[CachedKey]:
        """The live entries, least recently used first (for inspection and tests)."""
        with self._lock:
            return list(self._entries.values())

    def miss_lock(self, cache_key: Hashable) -> threading.Lock:
        """The lock a caller holds from a miss to its :meth:`put` (re-checking :meth:`use` first),
        so concurrent misses of one key make one KMS call (striped: misses of other keys rarely
        wait)."""
        return self._miss_locks[hash(cache_key) % _MISS_STRIPES]

    def clear(self) -> None:
        """Evict (and wipe) every entry."""
        with self._lock:
            for cache_key in list(self._entries):
                self._evict(cache_key)

    def _evict(self, cache_key: Hashable) -> None:
        entry = self._entries.pop(cache_key)
        entry.wipe()
        self.evictions += 1


def _lease(entry: CachedKey) -> Lease:
    return Lease(AESGCM(bytes(entry.key)), entry.key_id, entry.encrypted_data_key)
