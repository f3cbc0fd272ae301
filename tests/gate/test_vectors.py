"""The envelope vectors (docs/vectors/envelope-v1.json) and interop with the reference.

* every vector is checked with cryptography's AESGCM directly (an independent reading of the
  contract) and with the reference's own code (``flowgate.reference.envelope``: ``parse_envelope``,
  ``MessageBinding.aad``, ``build_envelope``) -- the reference is authoritative for the layout;
* the file is regenerated bit-for-bit by ``flowgate.harness.gate.vectors``;
* ``node --test`` checks the Node example worker against the same vectors;
* round trips through a KMS (the simulator's): the reference's ``KmsEnvelopeCipher`` opens what
  the gate's envelope and the Node worker seal, and the gate and Node open what the reference seals.
"""

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

from flowgate.harness.gate import envelope, vectors
from flowgate.harness.sim import SimAws
from flowgate.reference.config import BusOptions
from flowgate.reference.envelope import KmsEnvelopeCipher, MessageBinding, build_envelope, parse_envelope
from flowgate.reference.errors import DecryptionError

ROOT = Path(__file__).resolve().parents[2]
NODE_DIR = ROOT / "docs" / "examples" / "node-worker"
DOC = json.loads((ROOT / "docs" / "vectors" / "envelope-v1.json").read_text(encoding="utf-8"))
FIELDS = ("flowgate:version", "keyId", "destination", "messageId", "entityId", "messageType")
needs_node = pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")


def aad(ctx: dict[str, str], key_id: str) -> bytes:
    values = {**ctx, "keyId": key_id}
    out = b""
    for key in FIELDS:
        raw = values[key].encode("utf-8")
        out += struct.pack(">I", len(raw)) + raw
    return out


def b(value: str) -> bytes:
    return base64.b64decode(value)


def binding(ctx: dict[str, str]) -> MessageBinding:
    return MessageBinding(ctx["messageId"], ctx["destination"], ctx["entityId"], ctx["messageType"])


def try_open(vec: dict[str, Any]) -> bytes | None:
    env = json.loads(b(vec["body"]))
    if env["Destination"] != vec["context"]["destination"]:
        return None
    nonce, tag, ciphertext = b(env["Nonce"]), b(env["Tag"]), b(env["Ciphertext"])
    if len(nonce) != 12 or len(tag) != 16:
        return None
    try:
        return AESGCM(b(vec["dataKey"])).decrypt(nonce, ciphertext + tag, aad(vec["context"], env["KeyId"]))
    except InvalidTag:
        return None


def reference_open(vec: dict[str, Any]) -> bytes | None:
    """The reference's consumer procedure with the KMS step replaced by the vector's data key."""
    try:
        env = parse_envelope(vec["body"])
    except DecryptionError:
        return None
    if env["Destination"] != vec["context"]["destination"]:
        return None
    try:
        return AESGCM(b(vec["dataKey"])).decrypt(
            env["Nonce"], env["Ciphertext"] + env["Tag"], binding(vec["context"]).aad(env["KeyId"])
        )
    except InvalidTag:
        return None


def test_vectors_cover_every_required_negative_case() -> None:
    names = {v["name"] for v in DOC["vectors"] if v["result"] == "reject"}
    assert {
        "wrong-context-destination",
        "wrong-destination",
        "swapped-aad-fields",
        "shifted-aad-boundary",
        "truncated-tag",
        "wrong-key",
        "wrong-key-id",
        "flipped-ciphertext-bit",
        "flipped-tag-bit",
    } <= names
    assert DOC["aadFields"] == list(FIELDS)
    assert DOC["envelopeFields"] == [
        "Version",
        "KeyId",
        "Destination",
        "EncryptedDataKey",
        "Nonce",
        "Tag",
        "Ciphertext",
    ]


@pytest.mark.parametrize("vec", DOC["vectors"], ids=lambda v: f"{v['result']}-{v['name']}")
def test_vector(vec: dict[str, Any]) -> None:
    assert aad(vec["context"], vec["keyId"]) == b(vec["aad"]) == bytes.fromhex(vec["aadHex"])
    opened = try_open(vec)
    if vec["result"] == "accept":
        assert opened == vec["plaintext"].encode("utf-8")
        sealed = AESGCM(b(vec["dataKey"])).encrypt(
            b(vec["nonce"]), vec["plaintext"].encode(), aad(vec["context"], vec["keyId"])
        )
        assert sealed[:-16] == b(vec["ciphertext"])
        assert sealed[-16:] == b(vec["tag"])
    else:
        assert opened is None, f"{vec['name']} must be rejected: {vec['description']}"


@pytest.mark.parametrize("vec", DOC["vectors"], ids=lambda v: f"{v['result']}-{v['name']}")
def test_vector_with_the_reference_code(vec: dict[str, Any]) -> None:
    """The reference's AAD function and envelope parser agree with every vector."""
    assert binding(vec["context"]).aad(vec["keyId"]) == b(vec["aad"])
    assert binding(vec["context"]).context() == vec["context"]
    opened = reference_open(vec)
    if vec["result"] == "accept":
        assert opened == vec["plaintext"].encode("utf-8")
        # byte-identical envelope: the reference re-assembles exactly the vector's body
        assert build_envelope(parse_envelope(vec["body"])) == vec["body"]
    else:
        assert opened is None, f"the reference accepted {vec['name']}"


def test_length_prefix_prevents_boundary_shift() -> None:
    shifted = next(v for v in DOC["vectors"] if v["name"] == "shifted-aad-boundary")
    ok = DOC["vectors"][0]
    concat = "".join({**ok["context"], "keyId": ok["keyId"]}[k] for k in FIELDS)
    assert concat == "".join({**shifted["context"], "keyId": shifted["keyId"]}[k] for k in FIELDS)
    assert aad(ok["context"], ok["keyId"]) != aad(shifted["context"], shifted["keyId"])


def test_vectors_file_is_reproducible() -> None:
    assert vectors.build() == DOC
    assert vectors.verify(DOC) == []


@needs_node
def test_node_worker_envelope_passes_the_same_vectors() -> None:
    result = subprocess.run(
        ["node", "--test", "test/vectors.test.js"], cwd=NODE_DIR, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


# ---- round trips through a KMS (the simulator's; LocalStack behaves the same) --------------------
CTX = envelope.context(
    "9d0f6a1c-2b3e-4c5d-8e9f-0a1b2c3d4e5f", "orders-commands.fifo", "order-7", "PlaceOrder"
)
PLAIN = '{"name":"PlaceOrder","payload":{"customerId":"c-ü"}}'


@pytest.fixture
def kms() -> tuple[Any, str]:
    client = SimAws(seed=11).client("kms")
    key = client.create_key(Description="flowgate vectors interop")["KeyMetadata"]
    return client, str(key["KeyId"])


def _reference_open(kms_client: Any, key_id: str, body: str, ctx: dict[str, str]) -> str:
    return KmsEnvelopeCipher(kms_client, key_id).open(
        body,
        message_id=ctx["messageId"],
        entity_id=ctx["entityId"],
        message_type=ctx["messageType"],
        destinations={ctx["destination"]},
    )


def test_reference_opens_what_the_gate_seals(kms: tuple[Any, str]) -> None:
    client, key_id = kms
    body = envelope.seal(client, key_id, CTX, PLAIN.encode())
    assert _reference_open(client, key_id, body, CTX) == PLAIN
    for wrong in (
        {**CTX, "destination": "other.fifo"},
        {**CTX, "entityId": "order-8"},
        {**CTX, "messageType": "CancelOrder"},
        {**CTX, "messageId": "x"},
    ):
        with pytest.raises(DecryptionError):
            _reference_open(client, key_id, body, wrong)


def test_gate_opens_what_the_reference_seals(kms: tuple[Any, str]) -> None:
    client, key_id = kms
    body = KmsEnvelopeCipher(client, key_id).seal(PLAIN, binding(CTX))
    accepted = envelope.accepted_key_ids(client, key_id)
    assert envelope.open_body(client, accepted, CTX, body).decode() == PLAIN
    with pytest.raises(envelope.EnvelopeError):
        envelope.open_body(client, accepted, {**CTX, "destination": "other.fifo"}, body)
    sealed = envelope.Sealed.from_body(body)
    assert sealed.to_body() == body  # the gate writes the reference's bytes exactly


def _node(script: str, payload: dict[str, Any]) -> dict[str, Any]:
    result = subprocess.run(
        ["node", "-e", script],
        cwd=NODE_DIR,
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    out: dict[str, Any] = json.loads(result.stdout)
    return out


NODE_SEAL = """
const env = require('./lib/envelope');
const i = JSON.parse(require('fs').readFileSync(0, 'utf8'));
const s = env.sealWithKey(Buffer.from(i.dataKey, 'base64'), Buffer.from(i.edk, 'base64'), i.keyId, i.ctx,
  Buffer.from(i.plaintext, 'utf8'));
console.log(JSON.stringify({ body: env.toBody(s) }));
"""
NODE_OPEN = """
const env = require('./lib/envelope');
const i = JSON.parse(require('fs').readFileSync(0, 'utf8'));
try {
  const p = env.openWithKey(Buffer.from(i.dataKey, 'base64'), env.fromBody(i.body), i.ctx);
  console.log(JSON.stringify({ plaintext: p.toString('utf8') }));
} catch (e) { console.log(JSON.stringify({ error: e.message })); }
"""


@needs_node
def test_reference_opens_what_node_seals(kms: tuple[Any, str]) -> None:
    client, key_id = kms
    dk = client.generate_data_key(KeyId=key_id, KeySpec="AES_256", EncryptionContext=CTX)
    out = _node(
        NODE_SEAL,
        {
            "dataKey": base64.b64encode(dk["Plaintext"]).decode(),
            "edk": base64.b64encode(dk["CiphertextBlob"]).decode(),
            "keyId": dk["KeyId"],
            "ctx": CTX,
            "plaintext": PLAIN,
        },
    )
    assert _reference_open(client, key_id, out["body"], CTX) == PLAIN


@needs_node
def test_node_opens_what_the_reference_seals(kms: tuple[Any, str]) -> None:
    client, key_id = kms
    body = KmsEnvelopeCipher(client, key_id).seal(PLAIN, binding(CTX))
    env = parse_envelope(body)
    dk = client.decrypt(CiphertextBlob=env["EncryptedDataKey"], KeyId=env["KeyId"], EncryptionContext=CTX)
    data_key = base64.b64encode(dk["Plaintext"]).decode()
    assert _node(NODE_OPEN, {"dataKey": data_key, "body": body, "ctx": CTX}) == {"plaintext": PLAIN}
    moved = _node(NODE_OPEN, {"dataKey": data_key, "body": body, "ctx": {**CTX, "entityId": "order-8"}})
    assert "error" in moved


# ---- the data-key cache (decision D6, contract v1.4): same wire format, destination context
CACHED = BusOptions(data_key_cache=True).data_key_cache_limits()


def test_gate_opens_what_the_caching_reference_seals(kms: tuple[Any, str]) -> None:
    """The gate's cacheless opener takes the destination context when the message context is refused."""
    client, key_id = kms
    cipher = KmsEnvelopeCipher(client, key_id, cache_limits=CACHED)
    bodies = [cipher.seal(PLAIN, binding(CTX)) for _ in range(3)]
    assert len({parse_envelope(b)["EncryptedDataKey"] for b in bodies}) == 1  # one data key reused
    accepted = envelope.accepted_key_ids(client, key_id)
    for body in bodies:
        assert envelope.open_body(client, accepted, CTX, body).decode() == PLAIN
        assert envelope.Sealed.from_body(body).to_body() == body  # the same layout, byte for byte
    for wrong in ({**CTX, "messageId": "x"}, {**CTX, "entityId": "order-8"}):
        with pytest.raises(envelope.EnvelopeError):  # the AAD still binds the message
            envelope.open_body(client, accepted, wrong, bodies[0])


def test_caching_reference_opens_what_the_gate_seals(kms: tuple[Any, str]) -> None:
    client, key_id = kms
    body = envelope.seal(client, key_id, CTX, PLAIN.encode())
    opened = KmsEnvelopeCipher(client, key_id, cache_limits=CACHED).open(
        body,
        message_id=CTX["messageId"],
        entity_id=CTX["entityId"],
        message_type=CTX["messageType"],
        destinations={CTX["destination"]},
    )
    assert opened == PLAIN


NODE_DESTINATION_CONTEXT = """
const env = require('./lib/envelope');
console.log(JSON.stringify(env.destinationContext('orders-commands.fifo')));
"""


@needs_node
def test_node_opens_what_the_caching_reference_seals(kms: tuple[Any, str]) -> None:
    """Node's envelope code opens a cached key's envelopes (the AAD is unchanged) and names the same
    destination context as the gate and the reference."""
    client, key_id = kms
    body = KmsEnvelopeCipher(client, key_id, cache_limits=CACHED).seal(PLAIN, binding(CTX))
    shared = binding(CTX).destination_context()
    assert _node(NODE_DESTINATION_CONTEXT, {}) == shared == envelope.destination_context(CTX["destination"])
    env = parse_envelope(body)
    dk = client.decrypt(CiphertextBlob=env["EncryptedDataKey"], KeyId=env["KeyId"], EncryptionContext=shared)
    data_key = base64.b64encode(dk["Plaintext"]).decode()
    assert _node(NODE_OPEN, {"dataKey": data_key, "body": body, "ctx": CTX}) == {"plaintext": PLAIN}
