"""The envelope vectors (docs/vectors/envelope-v1.json), checked with cryptography's AESGCM directly
(an independent reading of the contract), and regenerated bit-for-bit by harness.gate.vectors."""

from __future__ import annotations

import base64
import json
import shutil
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from harness.gate import vectors

ROOT = Path(__file__).resolve().parents[2]
DOC = json.loads((ROOT / "docs" / "vectors" / "envelope-v1.json").read_text(encoding="utf-8"))
FIELDS = ("flowgate:version", "messageId", "destination", "entityId", "messageType")


def aad(ctx: dict[str, str]) -> bytes:
    out = b""
    for key in FIELDS:
        raw = ctx[key].encode("utf-8")
        out += struct.pack(">I", len(raw)) + raw
    return out


def b(value: str) -> bytes:
    return base64.b64decode(value)


def try_open(vec: dict[str, Any]) -> bytes | None:
    envelope = json.loads(b(vec["body"]))
    nonce, tag, ciphertext = b(envelope["Nonce"]), b(envelope["Tag"]), b(envelope["Ciphertext"])
    if len(nonce) != 12 or len(tag) != 16:
        return None
    try:
        return AESGCM(b(vec["dataKey"])).decrypt(nonce, ciphertext + tag, aad(vec["context"]))
    except InvalidTag:
        return None


def test_vectors_cover_every_required_negative_case() -> None:
    names = {v["name"] for v in DOC["vectors"] if v["result"] == "reject"}
    assert {"wrong-context-destination", "swapped-aad-fields", "truncated-tag", "wrong-key",
            "flipped-ciphertext-bit"} <= names
    assert DOC["aadFields"] == list(FIELDS)


@pytest.mark.parametrize("vec", DOC["vectors"], ids=lambda v: f"{v['result']}-{v['name']}")
def test_vector(vec: dict[str, Any]) -> None:
    assert aad(vec["context"]) == b(vec["aad"]) == bytes.fromhex(vec["aadHex"])
    opened = try_open(vec)
    if vec["result"] == "accept":
        assert opened == vec["plaintext"].encode("utf-8")
        sealed = AESGCM(b(vec["dataKey"])).encrypt(b(vec["nonce"]), vec["plaintext"].encode(), aad(vec["context"]))
        assert sealed[:-16] == b(vec["ciphertext"])
        assert sealed[-16:] == b(vec["tag"])
    else:
        assert opened is None, f"{vec['name']} must be rejected: {vec['description']}"


def test_length_prefix_prevents_boundary_shift() -> None:
    shifted = next(v for v in DOC["vectors"] if v["name"] == "shifted-aad-boundary")
    ok = DOC["vectors"][0]
    concat = "".join(ok["context"][k] for k in FIELDS)
    assert concat == "".join(shifted["context"][k] for k in FIELDS)  # equal without prefixes
    assert aad(ok["context"]) != aad(shifted["context"])


def test_vectors_file_is_reproducible() -> None:
    assert vectors.build() == DOC
    assert vectors.verify(DOC) == []


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed (the Node check runs in CI)")
def test_node_worker_envelope_passes_the_same_vectors() -> None:
    worker = ROOT / "docs" / "examples" / "node-worker"
    result = subprocess.run(["node", "--test", "test/"], cwd=worker, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
