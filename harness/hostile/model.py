"""The small model that decides what a correct consumer does with a generated message.

It restates the decode rules of the wire contract (``docs/hostile.md``) independently of the
reference's code: any message the rules reject is dead-lettered with *some* agreed reason code
(:class:`AnyDeadLetter`); a message they accept takes effect once (:class:`Applied`), or -- a
well-formed order the domain refuses -- ends in the business dead-letter store.
"""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import Collection
from datetime import datetime
from typing import Any

from flowgate.reference.envelope import FIELDS

from .core import (
    ENCRYPTION_MARKER,
    AnyDeadLetter,
    Applied,
    BusinessDeadLetter,
    HostileContext,
    HostileKind,
    Outcome,
    WireMessage,
)

MAX_BODY_BYTES = 256 * 1024
MAX_DEPTH = 16
INT64 = (-(2**63), 2**63 - 1)
_SQS_ID = re.compile(r"[A-Za-z0-9!\"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~]{1,128}")
_STAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|\+00:00)")
_XML_OK = re.compile("[\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]*")
_ENV_FIELDS = FIELDS
_PAYLOAD = {"customerId": str, "sku": str, "quantity": int, "amountCents": int}


class Rejected(Exception):
    """The decode rules reject the message (the text says which rule)."""


def expected_outcome(
    kind: HostileKind, wire: WireMessage, ctx: HostileContext, *, known_ids: Collection[str]
) -> Outcome | AnyDeadLetter:
    """A catalog kind's documented outcome; for a generated kind, the model's verdict."""
    if kind.category != "generated":
        return kind.outcome
    if ctx.encrypted and wire.envelope_edited:
        return AnyDeadLetter("an edited envelope never opens")
    return judge(wire, ctx, known_ids=known_ids)


def judge(wire: WireMessage, ctx: HostileContext, *, known_ids: Collection[str]) -> Outcome | AnyDeadLetter:
    try:
        obj = _check(wire, ctx, known_ids)
    except Rejected as exc:
        return AnyDeadLetter(str(exc))
    p = obj["payload"]
    if p["quantity"] <= 0 or p["amountCents"] < 0:
        return BusinessDeadLetter("the order domain refuses a non-positive quantity or a negative amount")
    return Applied("the decode rules accept it")


def _check(wire: WireMessage, ctx: HostileContext, known_ids: Collection[str]) -> dict[str, Any]:
    if wire.target != "commands":
        raise Rejected("a command on a view queue")
    if len(wire.body.encode("utf-8", "surrogatepass")) > MAX_BODY_BYTES:
        raise Rejected("oversized")
    attrs = {
        n: v["StringValue"]
        for n, v in wire.attributes.items()
        if isinstance(v.get("StringValue"), str) and v.get("DataType", "").startswith(("String", "Number"))
    }
    if "CommandType" not in attrs or "EventType" in attrs:
        raise Rejected("not exactly one of CommandType / EventType")
    if attrs["CommandType"] != ctx.command.name:
        raise Rejected("CommandType is not the body's registered command type")
    for name in ("EntityId", "SequenceNo"):
        if not attrs.get(name):
            raise Rejected(f"{name} missing")
    marker = attrs.get("Encryption")
    if ctx.encrypted:
        if marker != ENCRYPTION_MARKER or not attrs.get("EventId"):
            raise Rejected("encrypted bus: marker and EventId required")
        _check_envelope(wire, ctx)
    elif marker is not None:
        raise Rejected("Encryption attribute on a plaintext bus")
    text = wire.plaintext if ctx.encrypted else wire.body
    if text is None:
        raise Rejected("the sealed plaintext is not text")
    obj = _strict_json(text)
    if not isinstance(obj, dict):
        raise Rejected("not an object")
    if obj.get("name") != ctx.command.name:
        raise Rejected("name")
    entity, payload, meta = obj.get("entity"), obj.get("payload"), obj.get("metadata")
    if not (isinstance(entity, dict) and isinstance(payload, dict) and isinstance(meta, dict)):
        raise Rejected("entity / payload / metadata must be objects")
    for key, typ in _PAYLOAD.items():
        value = payload.get(key)
        if not isinstance(value, typ) or isinstance(value, bool):
            raise Rejected(f"payload.{key}")
    if not _is_id(entity.get("id")) or not isinstance(entity.get("isNew", False), bool):
        raise Rejected("entity")
    event_id, seq = meta.get("eventId"), meta.get("sequenceNo")
    if not _is_id(event_id):
        raise Rejected("eventId")
    if not isinstance(seq, int) or isinstance(seq, bool) or not 1 <= seq <= INT64[1]:
        raise Rejected("sequenceNo")
    stamp = meta.get("occurredOn")
    if not isinstance(stamp, str) or not _STAMP.fullmatch(stamp):
        raise Rejected("occurredOn")
    try:
        datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError as exc:
        raise Rejected("occurredOn") from exc
    if not isinstance(meta.get("isReplay", False), bool):
        raise Rejected("isReplay")
    corr = meta.get("correlationId")
    if corr not in (None, "") and not _is_id(corr):
        raise Rejected("correlationId")
    if "causationId" in meta and meta["causationId"] is not None and not _is_id(meta["causationId"]):
        raise Rejected("causationId")
    props = meta.get("properties")
    if props is not None and not (
        isinstance(props, dict) and all(isinstance(v, str) for v in props.values())
    ):
        raise Rejected("properties")
    if attrs["EntityId"] != entity["id"] or attrs.get("EventId", event_id) != event_id:
        raise Rejected("attributes contradict the body")
    if attrs["SequenceNo"] != str(seq):
        raise Rejected("SequenceNo contradicts the body")
    if event_id in known_ids:
        raise Rejected("eventId already used with other content")
    return obj


def _check_envelope(wire: WireMessage, ctx: HostileContext) -> None:
    """The envelope is well-formed (edits are judged from the spec: any edit is fatal)."""
    try:
        env = json.loads(base64.b64decode(wire.body, validate=True))
    except (ValueError, RecursionError) as exc:
        raise Rejected("envelope") from exc
    if (
        not isinstance(env, dict)
        or set(env) != set(_ENV_FIELDS)
        or type(env.get("Version")) is not int
        or env["Version"] != 1
    ):
        raise Rejected("envelope fields")
    if not all(isinstance(env[f], str) for f in _ENV_FIELDS[1:]):
        raise Rejected("envelope field types")
    if env["Destination"] != ctx.queue:
        raise Rejected("sealed for another destination")


def _is_id(value: Any) -> bool:
    return isinstance(value, str) and _SQS_ID.fullmatch(value) is not None


def _strict_json(text: str) -> Any:
    if text[:1] == "\ufeff":
        raise Rejected("BOM")
    if not _XML_OK.fullmatch(text):
        raise Rejected("characters outside the XML set")
    _depth(text)

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in items:
            if k in out:
                raise Rejected("duplicate key")
            out[k] = v
        return out

    def constant(name: str) -> Any:
        raise Rejected(f"constant {name}")

    try:
        obj = json.loads(text, object_pairs_hook=pairs, parse_constant=constant)
    except (ValueError, RecursionError) as exc:
        raise Rejected(f"not JSON: {exc}") from exc
    stack = [obj]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            _text(v)
        elif isinstance(v, bool) or v is None:
            pass
        elif isinstance(v, int):
            if not INT64[0] <= v <= INT64[1]:
                raise Rejected("integer out of range")
        elif isinstance(v, float):
            if not math.isfinite(v):
                raise Rejected("infinite number")
        elif isinstance(v, dict):
            for k, item in v.items():
                _text(k)
                stack.append(item)
        elif isinstance(v, list):
            stack.extend(v)
    return obj


def _text(s: str) -> None:
    if "\x00" in s:
        raise Rejected("NUL")
    try:
        s.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise Rejected("lone surrogate") from exc


def _depth(text: str) -> None:
    depth = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                raise Rejected("too deep")
        elif ch in "]}":
            depth -= 1


def carried_identity(wire: WireMessage, ctx: HostileContext) -> tuple[str, str, int]:
    """(eventId, entity id, sequenceNo) of the command an accepted hostile message carries."""
    try:
        obj = json.loads(wire.plaintext or wire.body)
        meta, entity = obj["metadata"], obj["entity"]
        return str(meta["eventId"]), str(entity["id"]), int(meta["sequenceNo"])
    except (ValueError, KeyError, TypeError, RecursionError):
        return ctx.command.event_id, ctx.command.entity_id, ctx.command.metadata.sequence_no


__all__ = ["carried_identity", "expected_outcome", "judge"]
