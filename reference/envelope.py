"""KMS envelope encryption of message bodies (AES-256-GCM with a KMS data key).

Sealed body = base64 of the JSON object::

    {"Version": 1, "KeyId": "<kms key arn>", "Destination": "<queue or topic short name>",
     "EncryptedDataKey": b64, "Nonce": b64(12 bytes), "Tag": b64(16 bytes), "Ciphertext": b64}

* KMS encryption context (authenticated by KMS, not secret), one of two forms:

  - the *message context* (no cache; contract v1)::

      {"flowgate:version": "1", "messageId": <eventId>, "destination": <short name>,
       "entityId": <entity id>, "messageType": <registry name>}

  - the *destination context* (data-key cache on, ``BusOptions.data_key_cache``; contract v1.4)::

      {"flowgate:version": "1", "destination": <short name>}

* AES-GCM AAD (the same in both cases) = version, key id, destination, message id, entity id and
  message type, each as 4-byte big-endian length + UTF-8, in that fixed order. Moving a
  ciphertext to another message, entity, type or destination fails at GCM (AAD), and for the
  message context at KMS as well; a consumer passes the values it *expects* (from the message
  attributes and its own queue/topics), never values read from the envelope alone.
* The envelope itself does not say which context sealed it: a consumer asks KMS with the
  context its own configuration makes likelier first (destination context when it caches,
  else the message context) and with the other one when KMS answers
  ``InvalidCiphertextException``. So a consumer without a cache opens what a caching producer
  seals, and the other way round; the wire format (fields, AAD, vectors) is unchanged.
* Cached keys (:mod:`flowgate.reference.keycache`) are bounded in age, messages and bytes, keyed by the
  encryption context, and wiped on eviction; uncached plaintext keys live only in local
  ``bytearray`` variables zeroed after use (best effort in Python, see that module).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import struct
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from flowgate.reference.errors import DecryptionError, TransportError
from flowgate.reference.hooks import SYSTEM_RANDOMNESS, Randomness
from flowgate.reference.keycache import CacheLimits, DataKeyCache, Lease

log = logging.getLogger(__name__)

ENCRYPTION_MARKER = "kms-aes256gcm-v1"
VERSION = 1
NONCE_BYTES = 12
TAG_BYTES = 16
#: the envelope's JSON fields in wire order; the last four carry base64 bytes
FIELDS: tuple[str, ...] = (
    "Version",
    "KeyId",
    "Destination",
    "EncryptedDataKey",
    "Nonce",
    "Tag",
    "Ciphertext",
)
BINARY_FIELDS: tuple[str, ...] = FIELDS[3:]
#: KMS refusals that are a property of *the message* (its encrypted data key, or a key/context
#: that does not match it; ``ValidationException`` = a malformed ``CiphertextBlob`` from the
#: envelope): poison. Everything else -- ``DisabledException``, ``KMSInvalidStateException``
#: (key pending deletion/import), ``InvalidKeyUsageException`` (the configured key's usage),
#: ``NotFoundException``, ``AccessDeniedException`` (a policy or grant change),
#: ``KeyUnavailableException``, ``DependencyTimeoutException``, ``KMSInternalException``,
#: throttling, 5xx and connection errors -- is the state of the key or of KMS, the same for every
#: message, and recoverable by an operator: :class:`TransportError`, left for redelivery (D7).
POISON_CODES = frozenset(
    {
        "InvalidCiphertextException",
        "IncorrectKeyException",
        "ValidationException",
    }
)


@dataclass(frozen=True)
class MessageBinding:
    """What a sealed body is bound to."""

    message_id: str
    destination: str
    entity_id: str
    message_type: str

    def context(self) -> dict[str, str]:
        return {
            "flowgate:version": str(VERSION),
            "messageId": self.message_id,
            "destination": self.destination,
            "entityId": self.entity_id,
            "messageType": self.message_type,
        }

    def destination_context(self) -> dict[str, str]:
        """The KMS context a cached data key is issued under: it names the destination only, so
        one key can seal many messages for it; the message stays bound by :meth:`aad`."""
        return {"flowgate:version": str(VERSION), "destination": self.destination}

    def aad(self, key_id: str) -> bytes:
        fields = (str(VERSION), key_id, self.destination, self.message_id, self.entity_id, self.message_type)
        out = bytearray()
        for f in fields:
            data = f.encode("utf-8")
            out += struct.pack(">I", len(data)) + data
        return bytes(out)


class EnvelopeCipher(Protocol):
    """The encryption port: seal for one destination, open for a set of allowed destinations."""

    def seal(self, plaintext: str, binding: MessageBinding) -> str: ...

    def open(
        self,
        sealed: str,
        *,
        message_id: str,
        entity_id: str,
        message_type: str,
        destinations: Collection[str],
    ) -> str: ...


def _context_key(ctx: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(ctx.items()))


class KmsEnvelopeCipher:
    """:class:`EnvelopeCipher` over a boto3-shaped KMS client.

    ``key_id`` (id, ARN or alias) is used to generate data keys. ``allowed_key_ids`` (default:
    the ARN KMS reports for ``key_id``) are the keys a consumer accepts; an envelope naming any
    other key is rejected before KMS is called, and ``Decrypt`` is pinned to the envelope's key.

    ``cache_limits`` (``BusOptions.data_key_cache_limits()``) turns the data-key cache on: seal
    reuses a data key per (key, destination context), open reuses a decrypted key per (key,
    encrypted data key, context), each within the limits (:mod:`flowgate.reference.keycache`). ``clock``
    is the caches' monotonic clock (tests pass a fake one). ``randomness``
    (:class:`flowgate.reference.hooks.Randomness`, default the OS CSPRNG) draws the AES-GCM nonces; a
    source that is not ``cryptographic`` (the simulator's seeded one) is logged at WARNING here:
    its nonces are predictable, which only a simulation may accept.
    """

    def __init__(
        self,
        kms: Any,
        key_id: str,
        *,
        allowed_key_ids: Collection[str] | None = None,
        cache_limits: CacheLimits | None = None,
        clock: Callable[[], float] = time.monotonic,
        randomness: Randomness = SYSTEM_RANDOMNESS,
    ) -> None:
        if not randomness.cryptographic:
            log.warning("envelope cipher with a non-cryptographic randomness source: predictable nonces")
        self.randomness = randomness
        self.kms = kms
        self.key_id = key_id
        self._allowed = set(allowed_key_ids) if allowed_key_ids is not None else None
        self.seal_cache = DataKeyCache(cache_limits, clock) if cache_limits is not None else None
        self.open_cache = DataKeyCache(cache_limits, clock) if cache_limits is not None else None

    def __repr__(self) -> str:
        return f"KmsEnvelopeCipher(key_id={self.key_id!r}, cache={self.seal_cache is not None})"

    def allowed_key_ids(self) -> set[str]:
        if self._allowed is None:
            try:
                meta = self.kms.describe_key(KeyId=self.key_id)["KeyMetadata"]
            except (ClientError, BotoCoreError) as exc:
                raise TransportError(f"DescribeKey {self.key_id} failed: {exc}") from exc
            self._allowed = {meta["Arn"], meta["KeyId"], self.key_id}
        return self._allowed

    def probe(self) -> None:
        """DescribeKey: :class:`TransportError` unless KMS answers and the key is enabled (the
        listener's circuit-breaker probe; encrypts and decrypts nothing)."""
        try:
            meta = self.kms.describe_key(KeyId=self.key_id)["KeyMetadata"]
        except (ClientError, BotoCoreError) as exc:
            raise TransportError(f"DescribeKey {self.key_id} failed: {exc}") from exc
        if meta.get("KeyState", "Enabled") != "Enabled" or meta.get("Enabled") is False:
            raise TransportError(f"KMS key {self.key_id} is {meta.get('KeyState', 'not enabled')}")

    def clear_caches(self) -> None:
        """Evict and wipe every cached data key (e.g. on shutdown or after a key change)."""
        for cache in (self.seal_cache, self.open_cache):
            if cache is not None:
                cache.clear()

    def _data_key(self, binding: MessageBinding, nbytes: int) -> Lease:
        """The data key for one message: from the seal cache (destination context) when on and
        within its bounds, else a fresh ``GenerateDataKey``. Concurrent misses of one cache key
        wait for one another, so a new key costs one call, not one per thread."""
        cache = self.seal_cache
        if cache is None:
            resp = self._generate(binding.context())
            return _one_use(resp["Plaintext"], str(resp["KeyId"]), bytes(resp["CiphertextBlob"]))
        ctx = binding.destination_context()
        cache_key = (self.key_id, _context_key(ctx))
        if (lease := cache.use(cache_key, nbytes)) is not None:
            return lease
        with cache.miss_lock(cache_key):
            if (lease := cache.use(cache_key, nbytes)) is not None:
                return lease
            resp = self._generate(ctx)
            return cache.put(
                cache_key, resp["Plaintext"], str(resp["KeyId"]), bytes(resp["CiphertextBlob"]), nbytes
            )

    def _generate(self, ctx: Mapping[str, str]) -> Any:
        try:
            return self.kms.generate_data_key(
                KeyId=self.key_id, KeySpec="AES_256", EncryptionContext=dict(ctx)
            )
        except (ClientError, BotoCoreError) as exc:
            raise TransportError(f"GenerateDataKey failed: {exc}") from exc

    def seal(self, plaintext: str, binding: MessageBinding) -> str:
        data = plaintext.encode("utf-8")
        lease = self._data_key(binding, len(data))
        nonce = self.randomness.token_bytes(NONCE_BYTES)
        sealed = lease.aead.encrypt(nonce, data, binding.aad(lease.key_id))
        envelope = {
            "Version": VERSION,
            "KeyId": lease.key_id,
            "Destination": binding.destination,
            "EncryptedDataKey": _b64(lease.encrypted_data_key),
            "Nonce": _b64(nonce),
            "Tag": _b64(sealed[-TAG_BYTES:]),
            "Ciphertext": _b64(sealed[:-TAG_BYTES]),
        }
        return _b64(json.dumps(envelope, separators=(",", ":")).encode("ascii"))

    def open(
        self,
        sealed: str,
        *,
        message_id: str,
        entity_id: str,
        message_type: str,
        destinations: Collection[str],
    ) -> str:
        """Decrypt, verifying key, destination, KMS context and AAD.

        The data key is asked for under the destination context and the message context (module
        docstring), the likelier first; only ``InvalidCiphertextException`` (KMS: not under this
        context) moves on to the other one.

        :class:`DecryptionError` (poison) when the message is at fault: malformed envelope, wrong
        destination or key, a KMS refusal in :data:`POISON_CODES` (under both contexts), a failed
        GCM tag, plaintext that is not UTF-8. :class:`TransportError` (left for redelivery) when
        KMS or the key is unavailable (any other KMS error, connection errors)."""
        env = parse_envelope(sealed)
        destination = env["Destination"]
        if destination not in destinations:
            raise DecryptionError(f"envelope is for {destination!r}, not one of {sorted(destinations)}")
        key_id = env["KeyId"]
        if key_id not in self.allowed_key_ids():
            raise DecryptionError(f"envelope key {key_id!r} is not an accepted key")
        binding = MessageBinding(message_id, destination, entity_id, message_type)
        ciphertext = env["Ciphertext"] + env["Tag"]
        lease = self._opening_key(binding, key_id, env["EncryptedDataKey"], len(ciphertext))
        try:
            data = lease.aead.decrypt(env["Nonce"], ciphertext, binding.aad(key_id))
        except InvalidTag as exc:
            raise DecryptionError("ciphertext, tag or bound fields were tampered with") from exc
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DecryptionError("plaintext is not UTF-8") from exc

    def _opening_key(self, binding: MessageBinding, key_id: str, edk: bytes, nbytes: int) -> Lease:
        """The plaintext data key of ``edk``. Only keys under the destination context are cached
        (a message-context key serves one message); concurrent misses of one cache key wait for
        one another (one ``Decrypt``)."""
        shared, own = binding.destination_context(), binding.context()
        contexts = [(shared, self.open_cache), (own, None)]
        if self.open_cache is None:
            contexts.reverse()
        refusal: ClientError | None = None
        for ctx, cache in contexts:
            if cache is None:
                resp = self._decrypt(edk, key_id, ctx)
                if isinstance(resp, ClientError):
                    refusal = resp
                    continue
                return _one_use(resp["Plaintext"], key_id, edk)
            cache_key = (key_id, edk, _context_key(ctx))
            if (lease := cache.use(cache_key, nbytes)) is not None:
                return lease
            with cache.miss_lock(cache_key):
                if (lease := cache.use(cache_key, nbytes)) is not None:
                    return lease
                resp = self._decrypt(edk, key_id, ctx)
                if isinstance(resp, ClientError):
                    refusal = resp
                    continue
                return cache.put(cache_key, resp["Plaintext"], key_id, edk, nbytes)
        raise DecryptionError("KMS refused the data key: InvalidCiphertextException") from refusal

    def _decrypt(self, edk: bytes, key_id: str, ctx: Mapping[str, str]) -> Any:
        """KMS ``Decrypt`` of ``edk`` under ``ctx``: the response, or the ``ClientError`` when KMS
        answers ``InvalidCiphertextException`` (not under this context: try the other one).
        Other refusals are :class:`DecryptionError`, everything else :class:`TransportError`."""
        try:
            resp = self.kms.decrypt(CiphertextBlob=edk, KeyId=key_id, EncryptionContext=dict(ctx))
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "InvalidCiphertextException":
                return exc
            if code in POISON_CODES:
                raise DecryptionError(f"KMS refused the data key: {code}") from exc
            raise TransportError(f"KMS Decrypt failed: {exc}") from exc
        except BotoCoreError as exc:
            raise TransportError(f"KMS Decrypt failed: {exc}") from exc
        if resp.get("KeyId") not in self.allowed_key_ids():
            raise DecryptionError("KMS decrypted with an unexpected key")
        return resp


def _one_use(plaintext_key: bytes, key_id: str, edk: bytes) -> Lease:
    """A lease of a data key KMS returned for one message (not cached; the local copy zeroed)."""
    key = bytearray(plaintext_key)
    try:
        return Lease(AESGCM(bytes(key)), key_id, edk)
    finally:
        key[:] = bytes(len(key))


def is_supported_version(value: Any) -> bool:
    """The envelope's ``Version`` is the JSON integer 1: ``true`` and ``1.0`` compare equal to 1
    in Python but are other JSON values, so the type is checked too (a wire value is never
    coerced)."""
    return type(value) is int and value == VERSION


def parse_envelope(sealed: str) -> dict[str, Any]:
    """Decode the envelope structure (no crypto); :class:`DecryptionError` if malformed."""
    try:
        env = json.loads(base64.b64decode(sealed, validate=True))
        if not isinstance(env, dict) or not is_supported_version(env.get("Version")):
            raise DecryptionError("unsupported envelope version")
        out: dict[str, Any] = {"KeyId": str(env["KeyId"]), "Destination": str(env["Destination"])}
        for f in BINARY_FIELDS:
            out[f] = base64.b64decode(env[f], validate=True)
        if not (isinstance(env["KeyId"], str) and isinstance(env["Destination"], str)):
            raise DecryptionError("envelope KeyId and Destination must be strings")
    except DecryptionError:
        raise
    except (ValueError, KeyError, TypeError, binascii.Error, RecursionError) as exc:
        # RecursionError: a deeply nested envelope JSON (it is parsed before any crypto)
        raise DecryptionError(f"malformed envelope: {type(exc).__name__}: {exc}") from exc
    if len(out["Nonce"]) != NONCE_BYTES or len(out["Tag"]) != TAG_BYTES:
        raise DecryptionError("bad nonce or tag length")
    return out


def build_envelope(fields: Mapping[str, Any]) -> str:
    """Re-assemble an envelope from parsed fields (test vectors, tamper tests)."""
    env = {"Version": VERSION, "KeyId": fields["KeyId"], "Destination": fields["Destination"]}
    for f in BINARY_FIELDS:
        env[f] = _b64(fields[f])
    return _b64(json.dumps(env, separators=(",", ":")).encode("ascii"))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
