"""INTERIM stand-in for the one catalog of hostile inputs (its owner's version replaces this file
at merge): the API the gate consumes -- :class:`WireMessage`, :class:`HostileContext`,
:class:`HostileKind` with ``DeadLetter(reason_code)`` / ``Applied(why)`` outcomes, :data:`CATALOG`
and :func:`kinds` -- with the gate's former poison kinds plus a few of contract v1.2."""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal, Protocol


@dataclass(frozen=True, slots=True)
class WireMessage:
    """One SQS message as sent: body, String message attributes, group and dedup ids, and the
    queue it goes to (``target``: the queue's short name)."""

    body: str
    attributes: Mapping[str, str]
    group_id: str
    dedup_id: str
    target: str


class HostileContext(Protocol):
    valid: WireMessage
    command: dict[str, Any]
    plaintext: bytes
    encrypted: bool
    queue: str
    rng: random.Random

    def seal(self, plaintext: bytes, destination: str | None = None, key: str | None = None) -> str: ...

    def known_event_id(self) -> str: ...


@dataclass(frozen=True, slots=True)
class DeadLetter:
    reason_code: str


@dataclass(frozen=True, slots=True)
class Applied:
    why: str


@dataclass(frozen=True, slots=True)
class HostileKind:
    name: str
    category: str
    description: str
    transform: Callable[[HostileContext], WireMessage]
    encryption: Literal["required", "forbidden", "any"]
    outcome: DeadLetter | Applied


def _body(ctx: HostileContext, raw: bytes) -> str:
    return ctx.seal(raw) if ctx.encrypted else raw.decode()


def _json(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


def _with(ctx: HostileContext, body: str | None = None, **attrs: str | None) -> WireMessage:
    merged = {k: v for k, v in {**ctx.valid.attributes, **attrs}.items() if v is not None}
    return replace(ctx.valid, body=ctx.valid.body if body is None else body, attributes=merged)


def _bad_json(ctx: HostileContext) -> WireMessage:
    return _with(ctx, _body(ctx, b'{"name": "PlaceOrder", "entity": {'))


def _not_an_object(ctx: HostileContext) -> WireMessage:
    return _with(ctx, _body(ctx, b'["PlaceOrder"]'))


def _contradiction(ctx: HostileContext) -> WireMessage:
    return _with(ctx, SequenceNo="7")


def _missing_attribute(ctx: HostileContext) -> WireMessage:
    return _with(ctx, SequenceNo=None)


def _plaintext(ctx: HostileContext) -> WireMessage:
    return _with(ctx, ctx.plaintext.decode(), Encryption=None)


def _envelope(ctx: HostileContext) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(base64.b64decode(ctx.valid.body))
    return doc


def _re_envelope(doc: Mapping[str, Any]) -> str:
    return base64.b64encode(_json(doc)).decode()


def _tampered(ctx: HostileContext) -> WireMessage:
    doc = _envelope(ctx)
    raw = bytearray(base64.b64decode(doc["Ciphertext"]))
    raw[len(raw) // 2] ^= 0x01
    doc["Ciphertext"] = base64.b64encode(bytes(raw)).decode()
    return _with(ctx, _re_envelope(doc))


def _wrong_destination(ctx: HostileContext) -> WireMessage:
    return _with(ctx, ctx.seal(ctx.plaintext, destination=f"other-{ctx.queue}"))


def _wrong_key(ctx: HostileContext) -> WireMessage:
    return _with(ctx, ctx.seal(ctx.plaintext, key="foreign"))


def _truncated_envelope(ctx: HostileContext) -> WireMessage:
    return _with(ctx, ctx.valid.body[: len(ctx.valid.body) // 2])


def _extra_envelope_field(ctx: HostileContext) -> WireMessage:
    doc = _envelope(ctx)
    doc["Comment"] = "readers ignore unknown envelope fields"
    return _with(ctx, _re_envelope(doc))


def _extra_properties(ctx: HostileContext) -> WireMessage:
    doc = json.loads(ctx.plaintext)
    doc["metadata"]["properties"] = {"x-origin": "hostile-but-valid", "note": "ünïcödé ✓"}
    return _with(ctx, _body(ctx, _json(doc)))


def _id_reuse(ctx: HostileContext) -> WireMessage:
    known = ctx.known_event_id()
    doc = json.loads(ctx.plaintext)
    doc["metadata"]["eventId"] = doc["metadata"]["correlationId"] = known
    raw = _json(doc)
    attrs = dict(ctx.valid.attributes, EventId=known, CorrelationId=known)
    if not ctx.encrypted:
        return replace(ctx.valid, body=raw.decode(), attributes=attrs)
    seal: Any = ctx.seal
    return replace(ctx.valid, body=seal(raw, message_id=known), attributes=attrs)


def _unknown_type(ctx: HostileContext) -> WireMessage:
    doc = json.loads(ctx.plaintext)
    doc["name"] = "LaunchRocket"
    raw = _json(doc)
    seal: Any = ctx.seal
    body = seal(raw, message_type="LaunchRocket") if ctx.encrypted else raw.decode()
    return _with(ctx, body, CommandType="LaunchRocket")


CATALOG: tuple[HostileKind, ...] = (
    HostileKind("bad_json", "decode", "body is not JSON", _bad_json, "any", DeadLetter("DecodeError")),
    HostileKind(
        "not_an_object",
        "decode",
        "body is JSON but not an object",
        _not_an_object,
        "any",
        DeadLetter("DecodeError"),
    ),
    HostileKind(
        "attribute_contradiction",
        "decode",
        "SequenceNo attribute contradicts the body",
        _contradiction,
        "any",
        DeadLetter("DecodeError"),
    ),
    HostileKind(
        "unknown_type",
        "type",
        "CommandType not registered",
        _unknown_type,
        "any",
        DeadLetter("UnknownMessageType"),
    ),
    HostileKind(
        "missing_attribute",
        "attributes",
        "SequenceNo absent",
        _missing_attribute,
        "any",
        DeadLetter("MissingAttribute"),
    ),
    HostileKind(
        "plaintext_on_encrypted_bus",
        "envelope",
        "plaintext body while encryption is on",
        _plaintext,
        "required",
        DeadLetter("DecryptionError"),
    ),
    HostileKind(
        "tampered",
        "envelope",
        "a flipped ciphertext bit",
        _tampered,
        "required",
        DeadLetter("DecryptionError"),
    ),
    HostileKind(
        "truncated_envelope",
        "envelope",
        "half an envelope",
        _truncated_envelope,
        "required",
        DeadLetter("DecryptionError"),
    ),
    HostileKind(
        "wrong_destination",
        "binding",
        "sealed for another queue",
        _wrong_destination,
        "required",
        DeadLetter("DecryptionError"),
    ),
    HostileKind(
        "wrong_key",
        "binding",
        "a data key of another KMS key",
        _wrong_key,
        "required",
        DeadLetter("DecryptionError"),
    ),
    HostileKind(
        "id_reuse_conflict",
        "idempotency",
        "the eventId of an applied command, with other content",
        _id_reuse,
        "any",
        DeadLetter("IdempotencyConflict"),
    ),
    HostileKind(
        "extra_envelope_field",
        "envelope",
        "an unknown extra envelope field",
        _extra_envelope_field,
        "required",
        Applied("a reader MUST ignore unknown extra envelope fields"),
    ),
    HostileKind(
        "extra_properties",
        "decode",
        "non-ASCII metadata.properties",
        _extra_properties,
        "any",
        Applied("properties is a string map; any strings are valid"),
    ),
)


def kinds(*, encrypted: bool) -> tuple[HostileKind, ...]:
    """The kinds applicable to a run with encryption on (or off)."""
    bad = "forbidden" if encrypted else "required"
    return tuple(k for k in CATALOG if k.encryption != bad)
