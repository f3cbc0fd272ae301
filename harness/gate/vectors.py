"""Generate and verify the envelope test vectors in ``docs/vectors/envelope-v1.json``.

Every vector fixes the data key (KMS is replaced by a stand-in: ``encryptedDataKey`` is an
opaque blob a real consumer would hand to KMS ``Decrypt``), the nonce, the encryption context,
the AAD and the plaintext. Positive vectors give the expected ciphertext and tag; negative ones
say what the consumer must do (``"result": "reject"``) and why. Regenerate with
``python -m flowgate.harness.gate.vectors docs/vectors/envelope-v1.json`` (deterministic).
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path
from typing import Any

from flowgate.harness.gate import envelope
from flowgate.reference.envelope import FIELDS

B64 = base64.b64encode


def _b64(raw: bytes) -> str:
    return B64(raw).decode()


DATA_KEY = bytes(range(32))
OTHER_KEY = bytes(range(32, 64))
EDK = b"kms-stand-in:" + bytes(range(19))  # opaque stand-in for the KMS CiphertextBlob
NONCE = bytes.fromhex("000102030405060708090a0b")
#: the envelope's KeyId is the key ARN KMS reports from GenerateDataKey (as the reference writes it)
KEY_ID = "arn:aws:kms:us-east-1:000000000000:key/0f1e2d3c-4b5a-4678-9abc-def012345678"
OTHER_KEY_ID = "0f1e2d3c-4b5a-4678-9abc-def012345678"  # the same key by its bare id: another AAD
CTX = envelope.context(
    "6f1c2f3a-1d2e-4b5c-8d9e-0a1b2c3d4e5f", "orders-commands.fifo", "order-42", "PlaceOrder"
)
PLAINTEXT = json.dumps(
    {
        "name": "PlaceOrder",
        "entity": {"id": "order-42", "isNew": True},
        "payload": {"customerId": "c-7", "sku": "sku-1", "quantity": 2, "amountCents": 1250},
        "metadata": {
            "eventId": "6f1c2f3a-1d2e-4b5c-8d9e-0a1b2c3d4e5f",
            "isReplay": False,
            "occurredOn": "2026-11-21T10:00:00.000Z",
            "sequenceNo": 1,
            "correlationId": "6f1c2f3a-1d2e-4b5c-8d9e-0a1b2c3d4e5f",
            "properties": {},
        },
    },
    separators=(",", ":"),
).encode()


def _fields(vec: dict[str, Any]) -> envelope.Sealed:
    return envelope.Sealed(
        vec["keyId"],
        vec["destination"],
        base64.b64decode(vec["encryptedDataKey"]),
        base64.b64decode(vec["nonce"]),
        base64.b64decode(vec["tag"]),
        base64.b64decode(vec["ciphertext"]),
    )


def _vector(
    name: str,
    description: str,
    ctx: dict[str, str],
    *,
    key: bytes = DATA_KEY,
    plaintext: bytes = PLAINTEXT,
    nonce: bytes = NONCE,
) -> dict[str, Any]:
    sealed = envelope.seal_with_key(key, EDK, KEY_ID, ctx, plaintext, nonce=nonce)
    aad = envelope.aad(ctx, KEY_ID)
    return {
        "name": name,
        "description": description,
        "result": "accept",
        "dataKey": _b64(key),
        "encryptedDataKey": _b64(EDK),
        "keyId": KEY_ID,
        "destination": sealed.destination,
        "nonce": _b64(nonce),
        "context": dict(ctx),
        "aad": _b64(aad),
        "aadHex": aad.hex(),
        "plaintext": plaintext.decode(),
        "ciphertext": _b64(sealed.ciphertext),
        "tag": _b64(sealed.tag),
        "body": sealed.to_body(),
    }


def build() -> dict[str, Any]:
    ok = _vector("place-order", "a command encrypted for queue orders-commands.fifo", CTX)
    event_ctx = envelope.context(
        "0b8f4c1e-8f55-5b59-9f3f-2f7f5e1f0c11", "orders-events.fifo", "order-42", "OrderPlaced"
    )
    ok_unicode = _vector(
        "unicode-event",
        "an event with non-ASCII payload and context values (UTF-8 lengths)",
        {**event_ctx, "entityId": "commande-é-42"},
        plaintext='{"name":"OrderPlaced","payload":{"note":"café ☕"}}'.encode(),
        nonce=bytes.fromhex("ffeeddccbbaa998877665544"),
    )
    ok_empty = _vector(
        "empty-plaintext", "a zero-length plaintext still carries a 16-byte tag", CTX, plaintext=b""
    )
    negatives: list[dict[str, Any]] = []

    def negative(name: str, why: str, **changes: Any) -> None:
        vec = dict(ok)
        vec.update(changes)
        vec["name"], vec["description"], vec["result"] = name, why, "reject"
        vec["reason"] = "DecryptionError"
        # the consumer's AAD: from the context it expects and the envelope's key id
        consumer_aad = envelope.aad(vec["context"], vec["keyId"])
        vec["aad"], vec["aadHex"] = _b64(consumer_aad), consumer_aad.hex()
        vec["body"] = _fields(vec).to_body()  # the body carries exactly the (tampered) fields
        negatives.append(vec)

    negative(
        "wrong-context-destination",
        "the consumer is another queue: the envelope's Destination is not its own (and the AAD differs)",
        context={**CTX, "destination": "other-commands.fifo"},
    )
    negative(
        "wrong-destination",
        "ciphertext moved to another queue with Destination rewritten to match it: the AAD differs",
        context={**CTX, "destination": "other-commands.fifo"},
        destination="other-commands.fifo",
    )
    negative(
        "wrong-context-entity",
        "the ciphertext moved to another entity's message",
        context={**CTX, "entityId": "order-43"},
    )
    negative(
        "wrong-context-message-id",
        "the ciphertext moved to another message (other EventId)",
        context={**CTX, "messageId": "00000000-0000-4000-8000-000000000000"},
    )
    negative(
        "swapped-aad-fields",
        "entityId and messageType swapped: same bytes, other order",
        context={**CTX, "entityId": CTX["messageType"], "messageType": CTX["entityId"]},
    )
    # an AAD that concatenates without length prefixes collides: show the prefix matters
    negative(
        "shifted-aad-boundary",
        "one byte moved from entityId to messageId: equal without length prefixes, unequal with",
        context={**CTX, "messageId": CTX["messageId"] + "o", "entityId": CTX["entityId"][1:]},
    )
    negative(
        "wrong-key-id",
        "the envelope names the same key by another id: the key id is bound in the AAD",
        keyId=OTHER_KEY_ID,
    )
    tag = base64.b64decode(ok["tag"])
    negative("truncated-tag", "a 12-byte tag: must be refused before or by AES-GCM", tag=_b64(tag[:12]))
    negative("wrong-key", "another data key (a data key of a foreign KMS key)", dataKey=_b64(OTHER_KEY))
    ct = bytearray(base64.b64decode(ok["ciphertext"]))
    ct[5] ^= 0x01
    negative("flipped-ciphertext-bit", "bit 0 of ciphertext byte 5 flipped", ciphertext=_b64(bytes(ct)))
    bad_tag = bytearray(tag)
    bad_tag[-1] ^= 0x80
    negative("flipped-tag-bit", "the last tag bit flipped", tag=_b64(bytes(bad_tag)))
    negative("wrong-nonce", "another nonce", nonce=_b64(bytes(12)))
    return {
        "scheme": envelope.SCHEME,
        "contextFields": list(envelope.CONTEXT_FIELDS),
        "aadFields": list(envelope.AAD_FIELDS),
        "aadEncoding": "for each field in aadFields: uint32 big-endian byte length, then UTF-8 bytes; "
        "keyId = the envelope's KeyId, the others = the consumer's expected context",
        "envelopeFields": list(FIELDS),
        "vectors": [ok, ok_unicode, ok_empty, *negatives],
    }


def verify(doc: dict[str, Any]) -> list[str]:
    """Check every vector with :mod:`flowgate.harness.gate.envelope`; returns the failures (empty = all good).

    The consumer's procedure: parse ``body``, refuse a ``Destination`` other than the context's,
    compute the AAD from the expected context and the envelope's ``KeyId``, open with ``dataKey``."""
    failures: list[str] = []
    for vec in doc["vectors"]:
        ctx = vec["context"]
        if envelope.aad(ctx, vec["keyId"]) != base64.b64decode(vec["aad"]):
            failures.append(f"{vec['name']}: aad does not match the context and key id")
            continue
        got: bytes | None
        try:
            sealed = envelope.Sealed.from_body(vec["body"])
            if sealed != _fields(vec):
                failures.append(f"{vec['name']}: body does not carry the vector's fields")
                continue
            got = envelope.open_with_key(base64.b64decode(vec["dataKey"]), sealed, ctx)
        except envelope.EnvelopeError:
            got = None
        if vec["result"] == "accept" and got != vec["plaintext"].encode():
            failures.append(f"{vec['name']}: expected to open to the plaintext")
        if vec["result"] == "reject" and got is not None:
            failures.append(f"{vec['name']}: expected to be rejected")
    return failures


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    target = Path(args[0]) if args else Path("docs/vectors/envelope-v1.json")
    doc = build()
    problems = verify(doc)
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 1
    target.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {len(doc['vectors'])} vectors to {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
