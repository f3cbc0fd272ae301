"""Test helpers of the reference suite (unique module name: tests/reference is not a package).

A small KMS stand-in that really encrypts and enforces the encryption context and key id.

Not a fake that cannot fail: data keys are wrapped with AES-GCM under a per-key master secret
with the canonical encryption context as AAD, exactly like KMS rejects a wrong context.
"""

from __future__ import annotations

import json
import os
from typing import Any

from botocore.exceptions import ClientError
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM


def _error(code: str, op: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": code}}, op)


class FakeKms:
    def __init__(self, *key_ids: str) -> None:
        self.keys = {k: os.urandom(32) for k in (key_ids or ("arn:aws:kms:us-east-1:000000000000:key/k1",))}
        self.calls: list[str] = []

    def describe_key(self, KeyId: str) -> dict[str, Any]:
        self.calls.append("DescribeKey")
        if KeyId not in self.keys:
            raise _error("NotFoundException", "DescribeKey")
        return {"KeyMetadata": {"Arn": KeyId, "KeyId": KeyId.rsplit("/", 1)[-1]}}

    def generate_data_key(
        self, KeyId: str, KeySpec: str, EncryptionContext: dict[str, str]
    ) -> dict[str, Any]:
        self.calls.append("GenerateDataKey")
        assert KeySpec == "AES_256"
        plain = os.urandom(32)
        nonce = os.urandom(12)
        aad = json.dumps(EncryptionContext, sort_keys=True).encode()
        blob = KeyId.encode() + b"|" + nonce + AESGCM(self.keys[KeyId]).encrypt(nonce, plain, aad)
        return {"Plaintext": plain, "CiphertextBlob": blob, "KeyId": KeyId}

    def decrypt(
        self, CiphertextBlob: bytes, EncryptionContext: dict[str, str], KeyId: str | None = None
    ) -> dict[str, Any]:
        self.calls.append("Decrypt")
        key_id, _, rest = CiphertextBlob.partition(b"|")
        kid = key_id.decode(errors="replace")
        if kid not in self.keys:
            raise _error("InvalidCiphertextException", "Decrypt")
        if KeyId is not None and KeyId != kid:
            raise _error("IncorrectKeyException", "Decrypt")
        aad = json.dumps(EncryptionContext, sort_keys=True).encode()
        try:
            plain = AESGCM(self.keys[kid]).decrypt(rest[:12], rest[12:], aad)
        except InvalidTag:
            raise _error("InvalidCiphertextException", "Decrypt") from None
        return {"Plaintext": plain, "KeyId": kid}


ENDPOINT = os.environ.get("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")


class ManualClock:
    """A virtual clock for deterministic timing tests."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.t = start

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += max(0.0, seconds)

    def advance(self, seconds: float) -> None:
        self.t += seconds
