"""The contract v1 envelope (``kms-aes256gcm-v1``), written from ``docs/contract.md`` section 5.

The gate encrypts the commands it sends and opens the events it observes with this module,
independently of the reference's own cipher (``reference/envelope.py``): two implementations of
one spec, checked against the same vectors (``docs/vectors/``) and against each other
(``tests/gate/test_vectors.py``).

Layout: the message body is ``base64(JSON {"Version": 1, "KeyId", "Destination",
"EncryptedDataKey", "Nonce", "Tag", "Ciphertext"})`` (in that order, compact separators, binary
fields base64), AES-256-GCM with a 12-byte nonce and a 16-byte tag, the data key from KMS
``GenerateDataKey(AES_256)`` under the encryption context of :func:`context` (or, from a producer
with a data-key cache, :func:`destination_context`; :func:`open_body` accepts both), and the AAD of
:func:`aad` (the context's values plus the key id, length-prefixed, in :data:`AAD_FIELDS` order).
"""

from __future__ import annotations

import base64
import json
import os
import struct
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

SCHEME: Final = "kms-aes256gcm-v1"
VERSION: Final = "1"
NONCE_BYTES: Final = 12
TAG_BYTES: Final = 16
#: KMS encryption-context keys (the context has no key id: KMS binds the key itself).
CONTEXT_FIELDS: Final = ("flowgate:version", "messageId", "destination", "entityId", "messageType")
#: AAD fields in order; ``keyId`` is the envelope's ``KeyId`` (the ARN KMS returned), the others
#: are the context's values.
AAD_FIELDS: Final = ("flowgate:version", "keyId", "destination", "messageId", "entityId", "messageType")


class EnvelopeError(ValueError):
    """The envelope cannot be opened (malformed, tampered, wrong key, wrong context)."""


def context(message_id: str, destination: str, entity_id: str, message_type: str) -> dict[str, str]:
    """The KMS encryption context (also the source of the AAD, with the key id)."""
    return {
        "flowgate:version": VERSION,
        "messageId": message_id,
        "destination": destination,
        "entityId": entity_id,
        "messageType": message_type,
    }


def destination_context(destination: str) -> dict[str, str]:
    """The KMS context of a data key shared by many messages for one destination (contract v1.4,
    a producer's data-key cache); the AAD still binds each message (:func:`aad`)."""
    return {"flowgate:version": VERSION, "destination": destination}


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    return str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""


def aad(ctx: Mapping[str, str], key_id: str) -> bytes:
    """4-byte big-endian length + UTF-8 bytes of each field, in :data:`AAD_FIELDS` order."""
    values = {**ctx, "keyId": key_id}
    out = bytearray()
    for key in AAD_FIELDS:
        raw = values[key].encode("utf-8")
        out += struct.pack(">I", len(raw)) + raw
    return bytes(out)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


@dataclass(frozen=True, slots=True)
class Sealed:
    key_id: str
    destination: str
    encrypted_data_key: bytes
    nonce: bytes
    tag: bytes
    ciphertext: bytes

    def to_body(self) -> str:
        doc = {
            "Version": 1,
            "KeyId": self.key_id,
            "Destination": self.destination,
            "EncryptedDataKey": _b64(self.encrypted_data_key),
            "Nonce": _b64(self.nonce),
            "Tag": _b64(self.tag),
            "Ciphertext": _b64(self.ciphertext),
        }
        return _b64(json.dumps(doc, separators=(",", ":")).encode("ascii"))

    @classmethod
    def from_body(cls, body: str) -> Sealed:
        try:
            doc = json.loads(base64.b64decode(body, validate=True))
            if not isinstance(doc, dict) or doc.get("Version") != 1:
                raise EnvelopeError("unsupported envelope version")
            sealed = cls(
                key_id=str(doc["KeyId"]),
                destination=str(doc["Destination"]),
                encrypted_data_key=base64.b64decode(doc["EncryptedDataKey"], validate=True),
                nonce=base64.b64decode(doc["Nonce"], validate=True),
                tag=base64.b64decode(doc["Tag"], validate=True),
                ciphertext=base64.b64decode(doc["Ciphertext"], validate=True),
            )
        except EnvelopeError:
            raise
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise EnvelopeError(f"malformed envelope: {exc}") from exc
        if len(sealed.nonce) != NONCE_BYTES or len(sealed.tag) != TAG_BYTES:
            raise EnvelopeError("nonce must be 12 bytes and tag 16 bytes")
        return sealed


def seal_with_key(
    data_key: bytes,
    encrypted_data_key: bytes,
    key_id: str,
    ctx: Mapping[str, str],
    plaintext: bytes,
    nonce: bytes | None = None,
) -> Sealed:
    nonce = nonce if nonce is not None else os.urandom(NONCE_BYTES)
    out = AESGCM(data_key).encrypt(nonce, plaintext, aad(ctx, key_id))
    return Sealed(key_id, ctx["destination"], encrypted_data_key, nonce, out[-TAG_BYTES:], out[:-TAG_BYTES])


def open_with_key(data_key: bytes, sealed: Sealed, ctx: Mapping[str, str]) -> bytes:
    """Open with a known data key; ``ctx`` is what the consumer expects (never read from the envelope)."""
    if sealed.destination != ctx["destination"]:
        raise EnvelopeError(f"envelope is for {sealed.destination!r}, not {ctx['destination']!r}")
    if len(sealed.tag) != TAG_BYTES or len(sealed.nonce) != NONCE_BYTES:
        raise EnvelopeError("nonce must be 12 bytes and tag 16 bytes")
    try:
        return AESGCM(data_key).decrypt(sealed.nonce, sealed.ciphertext + sealed.tag, aad(ctx, sealed.key_id))
    except (InvalidTag, ValueError) as exc:
        raise EnvelopeError("AES-GCM authentication failed") from exc


def seal(kms: Any, key_id: str, ctx: Mapping[str, str], plaintext: bytes) -> str:
    """Encrypt ``plaintext`` under a fresh KMS data key; returns the message body.

    The envelope's ``KeyId`` (and the AAD's) is the key id KMS reports (its ARN), as the
    reference writes it."""
    dk = kms.generate_data_key(KeyId=key_id, KeySpec="AES_256", EncryptionContext=dict(ctx))
    key = bytearray(dk["Plaintext"])
    try:
        return seal_with_key(bytes(key), dk["CiphertextBlob"], str(dk["KeyId"]), ctx, plaintext).to_body()
    finally:
        key[:] = bytes(len(key))


def open_body(kms: Any, allowed_key_ids: Collection[str], ctx: Mapping[str, str], body: str) -> bytes:
    """Decrypt a message body; any failure (a foreign key, another destination, KMS refusing the
    context, GCM) is :class:`EnvelopeError`. ``Decrypt`` is pinned to the envelope's key, which
    must be one of ``allowed_key_ids``."""
    sealed = Sealed.from_body(body)
    if sealed.destination != ctx["destination"]:
        raise EnvelopeError(f"envelope is for {sealed.destination!r}, not {ctx['destination']!r}")
    if sealed.key_id not in allowed_key_ids:
        raise EnvelopeError(f"envelope key {sealed.key_id!r} is not an accepted key")
    try:
        try:
            dk = kms.decrypt(
                CiphertextBlob=sealed.encrypted_data_key, KeyId=sealed.key_id, EncryptionContext=dict(ctx)
            )
        except Exception as exc:
            if _error_code(exc) != "InvalidCiphertextException":
                raise
            # not under the message context: a producer with a data-key cache (contract v1.4)
            dk = kms.decrypt(
                CiphertextBlob=sealed.encrypted_data_key,
                KeyId=sealed.key_id,
                EncryptionContext=destination_context(ctx["destination"]),
            )
    except Exception as exc:  # botocore ClientError of any code: the key cannot be had
        raise EnvelopeError(f"KMS refused the data key: {exc}") from exc
    if dk.get("KeyId") not in allowed_key_ids:
        raise EnvelopeError("KMS decrypted with an unexpected key")
    key = bytearray(dk["Plaintext"])
    try:
        return open_with_key(bytes(key), sealed, ctx)
    finally:
        key[:] = bytes(len(key))


def accepted_key_ids(kms: Any, key_id: str) -> frozenset[str]:
    """The ids a consumer configured with ``key_id`` accepts: the id itself, its key id and ARN."""
    meta = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    return frozenset({key_id, str(meta["KeyId"]), str(meta["Arn"])})
