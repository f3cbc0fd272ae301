"""The contract v1 envelope (``kms-aes256gcm-v1``), written from ``docs/contract.md`` alone.

The gate encrypts the commands it sends and opens the events it observes with this module,
independently of the reference's own cipher: two implementations of one spec, checked against
the same vectors (``docs/vectors/``).

Layout: the message body is ``base64(JSON {"Version": 1, "KeyId", "EncryptedDataKey", "Nonce",
"Tag", "Ciphertext"})`` (binary fields base64), AES-256-GCM with a 12-byte nonce and a 16-byte
tag, the data key from KMS ``GenerateDataKey(AES_256)`` under the encryption context of
:func:`context`, and the AAD of :func:`aad`.
"""

from __future__ import annotations

import base64
import json
import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

SCHEME: Final = "kms-aes256gcm-v1"
VERSION: Final = "1"
NONCE_BYTES: Final = 12
TAG_BYTES: Final = 16
#: Encryption-context keys, in AAD order.
AAD_FIELDS: Final = ("flowgate:version", "messageId", "destination", "entityId", "messageType")


class EnvelopeError(ValueError):
    """The envelope cannot be opened (malformed, tampered, wrong key, wrong context)."""


def context(message_id: str, destination: str, entity_id: str, message_type: str) -> dict[str, str]:
    """The KMS encryption context (also the source of the AAD)."""
    return {
        "flowgate:version": VERSION,
        "messageId": message_id,
        "destination": destination,
        "entityId": entity_id,
        "messageType": message_type,
    }


def aad(ctx: Mapping[str, str]) -> bytes:
    """4-byte big-endian length + UTF-8 bytes of each context value, in :data:`AAD_FIELDS` order."""
    out = bytearray()
    for key in AAD_FIELDS:
        raw = ctx[key].encode("utf-8")
        out += struct.pack(">I", len(raw)) + raw
    return bytes(out)


@dataclass(frozen=True, slots=True)
class Sealed:
    key_id: str
    encrypted_data_key: bytes
    nonce: bytes
    tag: bytes
    ciphertext: bytes

    def to_body(self) -> str:
        doc = {
            "Version": 1,
            "KeyId": self.key_id,
            "EncryptedDataKey": base64.b64encode(self.encrypted_data_key).decode(),
            "Nonce": base64.b64encode(self.nonce).decode(),
            "Tag": base64.b64encode(self.tag).decode(),
            "Ciphertext": base64.b64encode(self.ciphertext).decode(),
        }
        return base64.b64encode(json.dumps(doc, separators=(",", ":")).encode()).decode()

    @classmethod
    def from_body(cls, body: str) -> Sealed:
        try:
            doc = json.loads(base64.b64decode(body, validate=True))
            if doc.get("Version") != 1:
                raise EnvelopeError(f"unsupported envelope version {doc.get('Version')!r}")
            sealed = cls(
                key_id=str(doc["KeyId"]),
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
    data_key: bytes, encrypted_data_key: bytes, key_id: str, ctx: Mapping[str, str], plaintext: bytes,
    nonce: bytes | None = None,
) -> Sealed:
    nonce = nonce if nonce is not None else os.urandom(NONCE_BYTES)
    out = AESGCM(data_key).encrypt(nonce, plaintext, aad(ctx))
    return Sealed(key_id, encrypted_data_key, nonce, out[-TAG_BYTES:], out[:-TAG_BYTES])


def open_with_key(data_key: bytes, sealed: Sealed, ctx: Mapping[str, str]) -> bytes:
    try:
        return AESGCM(data_key).decrypt(sealed.nonce, sealed.ciphertext + sealed.tag, aad(ctx))
    except (InvalidTag, ValueError) as exc:
        raise EnvelopeError("AES-GCM authentication failed") from exc


def seal(kms: Any, key_id: str, ctx: Mapping[str, str], plaintext: bytes) -> str:
    """Encrypt ``plaintext`` under a fresh KMS data key; returns the message body."""
    dk = kms.generate_data_key(KeyId=key_id, KeySpec="AES_256", EncryptionContext=dict(ctx))
    return seal_with_key(dk["Plaintext"], dk["CiphertextBlob"], key_id, ctx, plaintext).to_body()


def open_body(kms: Any, key_id: str, ctx: Mapping[str, str], body: str) -> bytes:
    """Decrypt a message body; any failure (including KMS refusing the context) is :class:`EnvelopeError`."""
    sealed = Sealed.from_body(body)
    try:
        dk = kms.decrypt(
            CiphertextBlob=sealed.encrypted_data_key, KeyId=key_id, EncryptionContext=dict(ctx)
        )
    except Exception as exc:  # botocore ClientError of any code: the key cannot be had
        raise EnvelopeError(f"KMS refused the data key: {exc}") from exc
    return open_with_key(dk["Plaintext"], sealed, ctx)
