"""KMS envelope encryption of message bodies (AES-256-GCM with a KMS data key).

Sealed body = base64 of the JSON object::

    {"Version": 1, "KeyId": "<kms key arn>", "Destination": "<queue or topic short name>",
     "EncryptedDataKey": b64, "Nonce": b64(12 bytes), "Tag": b64(16 bytes), "Ciphertext": b64}

* KMS encryption context (authenticated by KMS, not secret)::

      {"flowgate:version": "1", "messageId": <eventId>, "destination": <short name>,
       "entityId": <entity id>, "messageType": <registry name>}

* AES-GCM AAD = the same five fields plus the key id, each as 4-byte big-endian length + UTF-8,
  in the fixed order version, keyId, destination, messageId, entityId, messageType. Moving a
  ciphertext to another message, entity, type or destination fails at KMS (context) and again at
  GCM (AAD); a consumer passes the values it *expects* (from the message attributes and its own
  queue/topics), never values read from the envelope alone.
* One data key per message (no cross-message cache): the context names the message, so a cached
  key could not be reused without weakening the binding. See ``docs/decisions.md``; the 2^32
  random-nonce bound is therefore trivially met. Plaintext keys live only in local variables
  (``bytearray``, zeroed after use -- best effort in Python).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import struct
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from reference.errors import DecryptionError, TransportError

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


class KmsEnvelopeCipher:
    """:class:`EnvelopeCipher` over a boto3-shaped KMS client.

    ``key_id`` (id, ARN or alias) is used to generate data keys. ``allowed_key_ids`` (default:
    the ARN KMS reports for ``key_id``) are the keys a consumer accepts; an envelope naming any
    other key is rejected before KMS is called, and ``Decrypt`` is pinned to the envelope's key.
    """

    def __init__(self, kms: Any, key_id: str, *, allowed_key_ids: Collection[str] | None = None) -> None:
        self.kms = kms
        self.key_id = key_id
        self._allowed = set(allowed_key_ids) if allowed_key_ids is not None else None

    def __repr__(self) -> str:
        return f"KmsEnvelopeCipher(key_id={self.key_id!r})"

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

    def seal(self, plaintext: str, binding: MessageBinding) -> str:
        try:
            resp = self.kms.generate_data_key(
                KeyId=self.key_id, KeySpec="AES_256", EncryptionContext=binding.context()
            )
        except (ClientError, BotoCoreError) as exc:
            raise TransportError(f"GenerateDataKey failed: {exc}") from exc
        key = bytearray(resp["Plaintext"])
        key_id = str(resp["KeyId"])
        nonce = os.urandom(NONCE_BYTES)
        try:
            sealed = AESGCM(bytes(key)).encrypt(nonce, plaintext.encode("utf-8"), binding.aad(key_id))
        finally:
            key[:] = bytes(len(key))
        envelope = {
            "Version": VERSION,
            "KeyId": key_id,
            "Destination": binding.destination,
            "EncryptedDataKey": _b64(resp["CiphertextBlob"]),
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

        :class:`DecryptionError` (poison) when the message is at fault: malformed envelope, wrong
        destination or key, a KMS refusal in :data:`POISON_CODES`, a failed GCM tag, plaintext
        that is not UTF-8. :class:`TransportError` (left for redelivery) when KMS or the key is
        unavailable (any other KMS error, connection errors)."""
        env = parse_envelope(sealed)
        destination = env["Destination"]
        if destination not in destinations:
            raise DecryptionError(f"envelope is for {destination!r}, not one of {sorted(destinations)}")
        key_id = env["KeyId"]
        if key_id not in self.allowed_key_ids():
            raise DecryptionError(f"envelope key {key_id!r} is not an accepted key")
        binding = MessageBinding(message_id, destination, entity_id, message_type)
        try:
            resp = self.kms.decrypt(
                CiphertextBlob=env["EncryptedDataKey"], KeyId=key_id, EncryptionContext=binding.context()
            )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in POISON_CODES:
                raise DecryptionError(f"KMS refused the data key: {code}") from exc
            raise TransportError(f"KMS Decrypt failed: {exc}") from exc
        except BotoCoreError as exc:
            raise TransportError(f"KMS Decrypt failed: {exc}") from exc
        if resp.get("KeyId") not in self.allowed_key_ids():
            raise DecryptionError("KMS decrypted with an unexpected key")
        key = bytearray(resp["Plaintext"])
        try:
            data = AESGCM(bytes(key)).decrypt(
                env["Nonce"], env["Ciphertext"] + env["Tag"], binding.aad(key_id)
            )
        except InvalidTag as exc:
            raise DecryptionError("ciphertext, tag or bound fields were tampered with") from exc
        finally:
            key[:] = bytes(len(key))
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DecryptionError("plaintext is not UTF-8") from exc


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
