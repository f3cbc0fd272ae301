"""Structured mutations of a valid message, written as a compact spec (``~op:arg/op:arg...``).

A spec names a composition of edits applied in order to the valid message's JSON object, then
its text, then its attributes, then (encrypted bus) its envelope -- so a generated hostile message
replays from its name alone (``flowgate replay SEED --faults 'poison=~del:payload.sku/abin:EntityId'``).

========  ===================  =====================================================
op        args                 effect
========  ===================  =====================================================
del       PATH                 delete the body field
type      PATH:T               replace it with a value of JSON type T (``TYPES``)
val       PATH:I               set it to ``BOUNDARY[I]``
nest      PATH:N               wrap it in N arrays
id        entity|event|seq:I   set body *and* attribute to ``ID_VALUES[field][I]``
reuse                          eventId (body and attribute) := a command already applied
enc       E                    re-encode the text (``ENCODINGS``)
adel      NAME                 delete the attribute
abin      NAME                 send the attribute as Binary
aset      NAME:I               set the attribute to ``ATTR_VALUES[I]``
aadd      N                    add N unknown attributes
edel      FIELD                delete an envelope field
etype     FIELD:T              envelope field of another JSON type
eflip     FIELD:I              flip bit I of a base64 envelope field (a character of KeyId, ...)
reseal    dest|key|id          seal again for another destination / key / message id, relabelled
route     event|views          the command's valid event instead / the command sent to a view queue
========  ===================  =====================================================
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from flowgate.reference.envelope import FIELDS

from .core import HostileContext, Unavailable, WireMessage, attrs_of, b64, finish, sattr

_SURROGATE = re.compile("[\ud800-\udfff]")
PATHS: tuple[str, ...] = (
    "name",
    "entity",
    "entity.id",
    "entity.isNew",
    "payload",
    "payload.customerId",
    "payload.sku",
    "payload.quantity",
    "payload.amountCents",
    "metadata",
    "metadata.eventId",
    "metadata.occurredOn",
    "metadata.sequenceNo",
    "metadata.correlationId",
    "metadata.isReplay",
    "metadata.properties",
    "metadata.causationId",
    "extra",
)
TYPES: dict[str, Any] = {
    "int": 7,
    "float": 2.5,
    "str": "s",
    "bool": True,
    "null": None,
    "list": [1],
    "obj": {"k": "v"},
}
BOUNDARY: tuple[Any, ...] = (
    0,
    -1,
    1,
    2**63 - 1,
    2**63,
    10**30,
    "",
    " ",
    "x" * 128,
    "x" * 129,
    "\x00",
    "é",
    "\ud800",
    1.5,
    1.0,
    True,
    False,
    None,
    [],
    {},
    "1",
    float("nan"),
    float("inf"),
    "PlaceOrder",
    "2026-01-01T00:00:00Z",
)
#: identity values, derived from the valid message so two generated messages never collide
ID_VALUES: dict[str, tuple[Callable[[str], Any], ...]] = {
    "entity": (
        lambda e: e + "-" + "x" * (127 - len(e)),
        lambda e: e + "-" + "x" * (128 - len(e)),
        lambda e: e + " x",
        lambda e: e + "-é",
        lambda e: e + "-ok",
    ),
    "event": (
        lambda e: e + "-" + "x" * (127 - len(e)),
        lambda e: e + "-" + "x" * (128 - len(e)),
        lambda e: e + " x",
        lambda e: e.upper(),
        lambda e: 42,
    ),
    "seq": (
        lambda e: 2,
        lambda e: 0,
        lambda e: -3,
        lambda e: 2**63 - 1,
        lambda e: 2**63,
        lambda e: "1",
        lambda e: 1.0,
    ),
}
ENCODINGS: tuple[str, ...] = ("bom", "ws", "ascii", "garbage", "dupkey", "truncate", "crlf", "dupval")
ATTR_NAMES: tuple[str, ...] = (
    "CommandType",
    "EntityId",
    "SequenceNo",
    "EventId",
    "CorrelationId",
    "Encryption",
    "EventType",
)
ATTR_VALUES: tuple[str, ...] = (
    "PlaceOrder",
    "CancelOrder",
    "OrderPlaced",
    "TeleportOrder",
    "1",
    "2",
    "other",
    "kms-aes256gcm-v1",
    "rot13-v9",
    " ",
)
#: re-sealings an attacker with KMS access can make: for another destination (Destination
#: relabelled to this queue), under another key (KeyId relabelled to the bus key), bound to
#: another message id (the attributes keep the real one)
RESEALS: tuple[str, ...] = ("dest", "key", "id")
#: wrong queue roles: the valid event of the command on the command queue, or the command on a
#: view queue (sealed for the topic that queue subscribes to)
ROUTES: tuple[str, ...] = ("event", "views")
ENV_FIELDS: tuple[str, ...] = FIELDS


@dataclass(frozen=True)
class Mutation:
    op: str
    args: tuple[str, ...] = ()

    def spec(self) -> str:
        return ":".join((self.op, *self.args))


BODY_OPS = {"del", "type", "val", "nest", "id", "reuse", "route"}
TEXT_OPS = {"enc"}
ATTR_OPS = {"adel", "abin", "aset", "aadd"}
ENV_OPS = {"edel", "etype", "eflip", "reseal"}
_ARITY = {
    "del": 1,
    "type": 2,
    "val": 2,
    "nest": 2,
    "id": 2,
    "reuse": 0,
    "enc": 1,
    "adel": 1,
    "abin": 1,
    "aset": 2,
    "aadd": 1,
    "edel": 1,
    "etype": 2,
    "eflip": 2,
    "reseal": 1,
    "route": 1,
}


def parse(spec: str) -> tuple[Mutation, ...]:
    """The mutations of ``~op:arg/op:arg``; ``ValueError`` if malformed."""
    if not spec.startswith("~") or len(spec) < 2:
        raise ValueError(f"a mutation spec starts with '~': {spec!r}")
    out = []
    for part in spec[1:].split("/"):
        op, *args = part.split(":")
        if op not in _ARITY or len(args) != _ARITY[op]:
            raise ValueError(f"bad mutation {part!r} in {spec!r} (ops: {sorted(_ARITY)})")
        m = Mutation(op, tuple(args))
        _validate(m)
        out.append(m)
    return tuple(out)


def _validate(m: Mutation) -> None:
    a = m.args
    ok = True
    if m.op in ("del", "type", "val", "nest"):
        ok = a[0] in PATHS
    if m.op == "type":
        ok = ok and a[1] in TYPES
    if m.op == "val":
        ok = ok and a[1].isdigit() and int(a[1]) < len(BOUNDARY)
    if m.op == "nest":
        ok = ok and a[1].isdigit() and 1 <= int(a[1]) <= 20000
    if m.op == "id":
        ok = a[0] in ID_VALUES and a[1].isdigit() and int(a[1]) < len(ID_VALUES[a[0]])
    if m.op == "enc":
        ok = a[0] in ENCODINGS
    if m.op in ("adel", "abin", "aset"):
        ok = a[0] in ATTR_NAMES
    if m.op == "aset":
        ok = ok and a[1].isdigit() and int(a[1]) < len(ATTR_VALUES)
    if m.op == "aadd":
        ok = a[0].isdigit() and 1 <= int(a[0]) <= 8
    if m.op in ("edel", "etype", "eflip"):
        ok = a[0] in ENV_FIELDS
    if m.op == "etype":
        ok = ok and a[1] in TYPES
    if m.op == "eflip":
        ok = ok and a[1].isdigit()
    if m.op == "reseal":
        ok = a[0] in RESEALS
    if m.op == "route":
        ok = a[0] in ROUTES
    if not ok:
        raise ValueError(f"bad arguments in mutation {m.spec()!r}")


def spec_of(mutations: tuple[Mutation, ...]) -> str:
    return "~" + "/".join(m.spec() for m in mutations)


def needs_encryption(mutations: tuple[Mutation, ...]) -> bool:
    return any(m.op in ENV_OPS for m in mutations)


def _parent(obj: Any, path: str) -> tuple[Any, str] | None:
    *head, last = path.split(".")
    for part in head:
        if not isinstance(obj, dict) or part not in obj:
            return None
        obj = obj[part]
    return (obj, last) if isinstance(obj, dict) else None


def _set(obj: Any, path: str, value: Any) -> None:
    found = _parent(obj, path)
    if found is not None:
        found[0][found[1]] = value


def _nest(value: Any, levels: int) -> str:
    return "[" * levels + json.dumps(value) + "]" * levels


def transform(spec: str) -> Callable[[HostileContext], WireMessage]:
    """The transform of a mutation spec (pure; the context seals)."""
    mutations = parse(spec)

    def run(ctx: HostileContext) -> WireMessage:
        obj: Any = json.loads(ctx.plaintext)
        attrs = attrs_of(ctx)
        # the first route only: the event on a view queue would be a valid message again
        first = next((m.args[0] for m in mutations if m.op == "route"), None)
        routes = {first} if first else set()
        if "event" in routes:
            from .catalog import event_message

            text0, attrs = event_message(ctx)
            obj = json.loads(text0)
        splices: dict[str, str] = {}
        for m in mutations:
            a = m.args
            if m.op == "del":
                found = _parent(obj, a[0])
                if found is not None:
                    found[0].pop(found[1], None)
            elif m.op == "type":
                _set(obj, a[0], TYPES[a[1]])
            elif m.op == "val":
                _set(obj, a[0], BOUNDARY[int(a[1])])
            elif m.op == "nest":
                found = _parent(obj, a[0])
                if found is not None:
                    token = f"@@nest{len(splices)}@@"
                    splices[token] = _nest(found[0].get(found[1]), int(a[1]))
                    found[0][found[1]] = token
            elif m.op == "id":
                _identity(ctx, obj, attrs, a[0], ID_VALUES[a[0]][int(a[1])])
            elif m.op == "reuse":
                known = ctx.known_event_id()
                if known is None:
                    raise Unavailable("no command has taken effect yet")
                _identity(ctx, obj, attrs, "event", lambda e, k=known: k)  # type: ignore[misc]
        text = _SURROGATE.sub(
            lambda s: f"\\u{ord(s.group()):04x}", json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
        )
        for token, raw in splices.items():
            text = text.replace(json.dumps(token), raw, 1)
        for m in mutations:
            if m.op == "enc":
                text = _encode(text, m.args[0])
        for m in mutations:
            a = m.args
            if m.op == "adel":
                attrs.pop(a[0], None)
            elif m.op == "abin" and a[0] in attrs:
                value = attrs[a[0]].get("StringValue", "x")
                attrs[a[0]] = {"DataType": "Binary", "BinaryValue": str(value).encode()}
            elif m.op == "aset":
                attrs[a[0]] = sattr(ATTR_VALUES[int(a[1])])
            elif m.op == "aadd":
                for i in range(int(a[0])):
                    if len(attrs) < 10:
                        attrs[f"X-Gen{i}"] = sattr(str(i))
        if "views" in routes:
            wire = finish(
                ctx,
                text,
                attrs,
                destination=ctx.views_queue.replace("order-views", "order-events") if ctx.encrypted else None,
                target="views",
            )
        else:
            wire = finish(ctx, text, attrs)
        env_ops = [m for m in mutations if m.op in ENV_OPS]
        if not env_ops or not ctx.encrypted:
            return wire
        env = json.loads(base64.b64decode(wire.body))
        original = json.loads(base64.b64decode(wire.body))
        resealed = False
        for m in env_ops:
            a = m.args
            if m.op == "reseal":
                env = _reseal(ctx, text, wire.attributes, a[0], env)
                resealed = True
            elif m.op == "edel":
                env.pop(a[0], None)
            elif m.op == "etype":
                env[a[0]] = TYPES[a[1]]
            elif m.op == "eflip" and isinstance(env.get(a[0]), int):
                env[a[0]] ^= 1 << (int(a[1]) % 8)  # Version: another number
            elif m.op == "eflip" and isinstance(env.get(a[0]), str):
                try:
                    data = bytearray(base64.b64decode(env[a[0]], validate=True))
                except ValueError:  # KeyId / Destination: change one character
                    text = env[a[0]]
                    if text:
                        i = int(a[1]) % len(text)
                        env[a[0]] = text[:i] + ("x" if text[i] != "x" else "y") + text[i + 1 :]
                    continue
                if data:
                    bit = int(a[1]) % (8 * len(data))
                    data[bit // 8] ^= 1 << (bit % 8)
                    env[a[0]] = base64.b64encode(bytes(data)).decode("ascii")
        if not resealed and env == original and all(type(env[k]) is type(original[k]) for k in env):
            return wire  # the edits cancelled out (True == 1 compares equal, hence the type check)
        return replace(
            wire, body=b64(json.dumps(env, separators=(",", ":")).encode("utf-8")), envelope_edited=True
        )

    return run


def _reseal(
    ctx: HostileContext, text: str, attrs: dict[str, dict[str, Any]], how: str, env: dict[str, Any]
) -> dict[str, Any]:
    if how == "dest":
        suffix = ".fifo" if ctx.queue.endswith(".fifo") else ""
        out = json.loads(base64.b64decode(ctx.seal(text, attributes=attrs, destination=f"elsewhere{suffix}")))
        out["Destination"] = env["Destination"]
    elif how == "key":
        out = json.loads(base64.b64decode(ctx.seal(text, attributes=attrs, key=ctx.other_key())))
        out["KeyId"] = env["KeyId"]
    else:
        other = {**attrs, "EventId": sattr("00000000-0000-4000-8000-0000000000ab")}
        out = json.loads(base64.b64decode(ctx.seal(text, attributes=other)))
    return dict(out)


def _identity(
    ctx: HostileContext, obj: Any, attrs: dict[str, dict[str, Any]], field: str, make: Callable[[str], Any]
) -> None:
    if field == "entity":
        value = make(ctx.command.entity_id)
        _set(obj, "entity.id", value)
        attrs["EntityId"] = sattr(str(value)) if str(value) else attrs.get("EntityId", sattr("x"))
    elif field == "event":
        value = make(ctx.command.event_id)
        _set(obj, "metadata.eventId", value)
        attrs["EventId"] = sattr(str(value))
    else:
        value = make("")
        _set(obj, "metadata.sequenceNo", value)
        attrs["SequenceNo"] = sattr(value if isinstance(value, str) else json.dumps(value))


def _encode(text: str, how: str) -> str:
    if how == "bom":
        return "\ufeff" + text
    if how == "ws":
        return " \n\t" + text + "\r\n"
    if how == "ascii":
        try:
            return json.dumps(json.loads(text), separators=(",", ":"), ensure_ascii=True)
        except (ValueError, RecursionError):
            return text
    if how == "garbage":
        return text + "#"
    if how == "dupkey":
        return text.replace('"name":', '"name":"PlaceOrder","name":', 1) if '"name":' in text else text
    if how == "dupval":  # a payload key twice, with different values
        return text.replace('"quantity":', '"quantity":2,"quantity":', 1)
    if how == "truncate":
        return text[: max(1, len(text) - 7)]
    return text.replace(",", ",\r\n")  # crlf


__all__ = [
    "ATTR_NAMES",
    "ATTR_VALUES",
    "BOUNDARY",
    "ENCODINGS",
    "ENV_FIELDS",
    "ID_VALUES",
    "PATHS",
    "RESEALS",
    "ROUTES",
    "TYPES",
    "Mutation",
    "needs_encryption",
    "parse",
    "spec_of",
    "transform",
]
