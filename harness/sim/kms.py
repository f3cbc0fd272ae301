"""Simulated KMS: symmetric keys, aliases, Encrypt/Decrypt/GenerateDataKey with encryption context.

Ciphertext blob layout (simulator-specific, like LocalStack's): ``key id (36 ASCII bytes) ||
nonce (12) || AES-256-GCM(ciphertext || tag)`` under the key's master key, with the AAD being the
key id plus the canonical JSON of the encryption context. Master keys and nonces come from the
seeded RNG, so tampering, a swapped context or a wrong key are really detected (GCM tag failure),
yet a seed reproduces every byte.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from . import errors as E
from ._core import SimCore
from .errors import SimError

_KEY_ID_LEN: Final = 36
_NONCE_LEN: Final = 12


@dataclass
class Key:
    key_id: str
    arn: str
    material: bytes
    description: str
    created: float
    state: str = "Enabled"

    def metadata(self, account: str) -> dict[str, Any]:
        return {
            "AWSAccountId": account,
            "KeyId": self.key_id,
            "Arn": self.arn,
            "CreationDate": datetime.fromtimestamp(self.created, UTC),
            "Enabled": self.state == "Enabled",
            "Description": self.description,
            "KeyUsage": "ENCRYPT_DECRYPT",
            "KeyState": self.state,
            "Origin": "AWS_KMS",
            "KeyManager": "CUSTOMER",
            "CustomerMasterKeySpec": "SYMMETRIC_DEFAULT",
            "KeySpec": "SYMMETRIC_DEFAULT",
            "EncryptionAlgorithms": ["SYMMETRIC_DEFAULT"],
            "MultiRegion": False,
        }


def _aad(key_id: str, context: Mapping[str, str] | None) -> bytes:
    canonical = json.dumps(dict(context or {}), sort_keys=True, separators=(",", ":"))
    return key_id.encode("ascii") + b"\x00" + canonical.encode("utf-8")


class KmsBackend:
    def __init__(self, core: SimCore) -> None:
        self.core = core
        self.keys: dict[str, Key] = {}
        self.aliases: dict[str, str] = {}  # alias name -> key id

    def _arn(self, resource: str) -> str:
        return f"arn:aws:kms:{self.core.region}:{self.core.account}:{resource}"

    def create_key(self, description: str) -> Key:
        key_id = self.core.new_uuid()
        key = Key(
            key_id=key_id,
            arn=self._arn(f"key/{key_id}"),
            material=self.core.rng.randbytes(32),
            description=description,
            created=self.core.clock.now(),
        )
        self.keys[key_id] = key
        return key

    def resolve(self, key_ref: str | None, *, usable: bool = True) -> Key:
        if not key_ref:
            raise SimError(E.KMS_VALIDATION, "KeyId must not be empty")
        ref = key_ref
        if ref.startswith("arn:") and ":alias/" in ref:
            ref = "alias/" + ref.split(":alias/", 1)[1]
        if ref.startswith("alias/"):
            key_id = self.aliases.get(ref)
            if key_id is None:
                raise SimError(E.KMS_NOT_FOUND, f"Unable to find KMS alias with name {ref}")
        else:
            key_id = ref.split(":key/", 1)[1] if ref.startswith("arn:") else ref
        key = self.keys.get(key_id)
        if key is None:
            raise SimError(E.KMS_NOT_FOUND, f"Key '{self._arn(f'key/{key_id}')}' does not exist")
        if usable and key.state == "Disabled":
            raise SimError(E.KMS_DISABLED, f"{key.arn} is disabled.")
        if usable and key.state != "Enabled":
            raise SimError(E.KMS_INVALID_STATE, f"{key.arn} is pending deletion.")
        return key

    def switchable(self, key_ref: str | None) -> Key:
        """The key EnableKey/DisableKey may switch: a key pending deletion refuses both with
        ``KMSInvalidStateException`` (AWS's key-state table; LocalStack the same)."""
        key = self.resolve(key_ref, usable=False)
        if key.state == "PendingDeletion":
            raise SimError(E.KMS_INVALID_STATE, f"{key.arn} is pending deletion.")
        return key

    def create_alias(self, alias: str, target: str) -> None:
        if not alias.startswith("alias/"):
            raise SimError(
                E.KMS_VALIDATION,
                'Alias must start with the prefix "alias/". Please see '
                "https://docs.aws.amazon.com/kms/latest/developerguide/kms-alias.html",
            )
        if alias.startswith("alias/aws/"):
            raise SimError(E.KMS_VALIDATION, "Alias names beginning with 'alias/aws/' are reserved.")
        if alias in self.aliases:
            raise SimError(E.KMS_ALREADY_EXISTS, f"An alias with the name {self._arn(alias)} already exists")
        key = self.resolve(target, usable=False)
        self.aliases[alias] = key.key_id

    @staticmethod
    def _check_context(context: Mapping[str, Any] | None) -> None:
        for k, v in (context or {}).items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise SimError(E.KMS_VALIDATION, "EncryptionContext keys and values must be strings")

    def encrypt(self, key: Key, plaintext: bytes, context: Mapping[str, str] | None) -> bytes:
        self._check_context(context)
        if not 1 <= len(plaintext) <= 4096:
            raise SimError(
                E.KMS_VALIDATION,
                "1 validation error detected: Value at 'plaintext' failed to satisfy constraint: Member must have "
                "length less than or equal to 4096",
            )
        nonce = self.core.rng.randbytes(_NONCE_LEN)
        sealed = AESGCM(key.material).encrypt(nonce, plaintext, _aad(key.key_id, context))
        return key.key_id.encode("ascii") + nonce + sealed

    def decrypt(
        self, blob: bytes, context: Mapping[str, str] | None, key_ref: str | None
    ) -> tuple[Key, bytes]:
        self._check_context(context)
        if len(blob) < _KEY_ID_LEN + _NONCE_LEN + 16:
            raise SimError(E.KMS_INVALID_CIPHERTEXT, "")
        try:
            key_id = blob[:_KEY_ID_LEN].decode("ascii")
        except UnicodeDecodeError as exc:
            raise SimError(E.KMS_INVALID_CIPHERTEXT, "") from exc
        if key_ref is not None:
            requested = self.resolve(key_ref)
            if requested.key_id != key_id:
                raise SimError(
                    E.KMS_INCORRECT_KEY,
                    "The key ID in the request does not identify a CMK that can perform this operation.",
                )
        key = self.keys.get(key_id)
        if key is None:
            raise SimError(E.KMS_INVALID_CIPHERTEXT, "")
        key = self.resolve(key_id)
        nonce = blob[_KEY_ID_LEN : _KEY_ID_LEN + _NONCE_LEN]
        try:
            plaintext = AESGCM(key.material).decrypt(
                nonce, blob[_KEY_ID_LEN + _NONCE_LEN :], _aad(key_id, context)
            )
        except InvalidTag as exc:
            raise SimError(E.KMS_INVALID_CIPHERTEXT, "") from exc
        return key, plaintext

    def data_key_length(self, key_spec: str | None, number_of_bytes: int | None) -> int:
        if (key_spec is None) == (number_of_bytes is None):
            raise SimError(E.KMS_VALIDATION, "Please specify either number of bytes or key spec.")
        if key_spec is not None:
            lengths = {"AES_256": 32, "AES_128": 16}
            if key_spec not in lengths:
                raise SimError(
                    E.KMS_VALIDATION,
                    f"1 validation error detected: Value '{key_spec}' at 'keySpec' failed to satisfy constraint: "
                    "Member must satisfy enum value set: [AES_256, AES_128]",
                )
            return lengths[key_spec]
        assert number_of_bytes is not None
        if not 1 <= number_of_bytes <= 1024:
            raise SimError(
                E.KMS_VALIDATION,
                f"1 validation error detected: Value '{number_of_bytes}' at 'numberOfBytes' failed to satisfy "
                "constraint: Member must have value between 1 and 1024",
            )
        return number_of_bytes
