"""The hostile-input catalog: every kind, as data (see :mod:`harness.hostile`).

Each transform starts from the context's valid ``PlaceOrder`` (its own fresh entity, sequence
number 1, a fresh eventId) so an ``Applied`` kind is a new command that must take effect exactly
once, and a dead-lettered one harms no valid order. Outcomes are what a *correct* consumer does
(docs/hostile.md lists them next to what the reference does today).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from typing import Any

from reference.envelope import FIELDS

from .core import (
    ENCRYPTION_MARKER,
    Applied,
    BusinessDeadLetter,
    DeadLetter,
    Encryption,
    HostileContext,
    HostileKind,
    Outcome,
    QueueKind,
    Refused,
    Unavailable,
    WireMessage,
    attrs_of,
    b64,
    dumps,
    envelope,
    finish,
    sattr,
    wire_obj,
    with_envelope,
)

DEEP = 5000  # nesting levels that exhaust Python's recursive JSON parser (and any recursive walk)
MAX_BODY = 256 * 1024
INT64_MAX = 2**63 - 1

Transform = Callable[[HostileContext], WireMessage]
_KINDS: list[HostileKind] = []

DECODE, UNKNOWN, MISSING = (
    DeadLetter("DecodeError"),
    DeadLetter("UnknownMessageType"),
    DeadLetter("MissingAttribute"),
)
OVERSIZED, DECRYPT, CONFLICT = (
    DeadLetter("OversizedMessage"),
    DeadLetter("DecryptionError"),
    DeadLetter("IdempotencyConflict"),
)


def kind(
    name: str,
    category: str,
    description: str,
    outcome: Outcome,
    encryption: Encryption = "any",
    queue: QueueKind = "any",
) -> Callable[[Transform], Transform]:
    def register(transform: Transform) -> Transform:
        _KINDS.append(HostileKind(name, category, description, transform, encryption, outcome, queue))
        return transform

    return register


def text_kind(
    name: str,
    category: str,
    description: str,
    outcome: Outcome,
    edit: Callable[[str], str],
    encryption: Encryption = "any",
) -> None:
    """A kind that rewrites the JSON text (the plaintext, sealed afterwards on an encrypted bus)."""
    kind(name, category, description, outcome, encryption)(lambda ctx: finish(ctx, edit(ctx.plaintext)))


def obj_kind(
    name: str,
    category: str,
    description: str,
    outcome: Outcome,
    edit: Callable[[dict[str, Any]], Any],
    encryption: Encryption = "any",
) -> None:
    """A kind that edits the parsed JSON object in place (``edit`` returns nothing)."""

    def transform(ctx: HostileContext) -> WireMessage:
        obj = wire_obj(ctx)
        edit(obj)
        return finish(ctx, dumps(obj))

    kind(name, category, description, outcome, encryption)(transform)


def set_path(obj: dict[str, Any], path: str, value: Any) -> None:
    *head, last = path.split(".")
    for part in head:
        obj = obj[part]
    obj[last] = value


def del_path(obj: dict[str, Any], path: str) -> None:
    *head, last = path.split(".")
    for part in head:
        obj = obj[part]
    del obj[last]


def nested(levels: int, inner: str = "1") -> str:
    return "[" * levels + inner + "]" * levels


def identity(
    ctx: HostileContext,
    obj: dict[str, Any],
    *,
    entity: str | None = None,
    event_id: Any = None,
    seq: Any = None,
    text: str | None = None,
    omit: tuple[str, ...] = (),
) -> WireMessage:
    """Body and attributes agree on a changed identity (entity id, event id, sequence number)."""
    attrs = attrs_of(ctx)
    if entity is not None:
        obj["entity"]["id"] = entity
        attrs["EntityId"] = sattr(entity)
    if event_id is not None:
        obj["metadata"]["eventId"] = event_id
        attrs["EventId"] = sattr(str(event_id))
    if seq is not None:
        obj["metadata"]["sequenceNo"] = seq
        attrs["SequenceNo"] = sattr(json.dumps(seq) if not isinstance(seq, str) else seq)
    for name in omit:
        attrs.pop(name, None)
    return finish(ctx, text if text is not None else dumps(obj), attrs)


# ================================================================ JSON syntax
SYNTAX = "json-syntax"
text_kind(
    "bad_json",
    SYNTAX,
    "unbalanced JSON: an object closed by three braces",
    DECODE,
    lambda t: '{"payload": {"customerId": ' + "}" * 3,
)
text_kind("truncated_json", SYNTAX, "the valid body cut in the middle", DECODE, lambda t: t[: len(t) // 2])
text_kind("blank_body", SYNTAX, "a body of one space (SQS refuses an empty one)", DECODE, lambda t: " ")
text_kind("trailing_comma", SYNTAX, "a comma before the closing brace", DECODE, lambda t: t[:-1] + ",}")
text_kind("single_quotes", SYNTAX, "keys and strings in single quotes", DECODE, lambda t: t.replace('"', "'"))
text_kind(
    "unquoted_keys",
    SYNTAX,
    "JavaScript-style unquoted object keys",
    DECODE,
    lambda t: t.replace('"name":', "name:"),
)
text_kind("json_comment", SYNTAX, "a /* comment */ before the object", DECODE, lambda t: "/* hi */" + t)
text_kind(
    "trailing_garbage", SYNTAX, "the valid object followed by other text", DECODE, lambda t: t + " garbage"
)
text_kind("two_documents", SYNTAX, "two JSON objects back to back", DECODE, lambda t: t + t)
text_kind("top_level_array", SYNTAX, "the valid object wrapped in an array", DECODE, lambda t: "[" + t + "]")
text_kind(
    "top_level_string", SYNTAX, "a JSON string holding the valid object", DECODE, lambda t: json.dumps(t)
)
text_kind("top_level_null", SYNTAX, "the JSON literal null", DECODE, lambda t: "null")
text_kind("top_level_number", SYNTAX, "a bare number", DECODE, lambda t: "42")
text_kind(
    "whitespace_padding",
    SYNTAX,
    "tabs, CR/LF and spaces around the object (valid JSON)",
    Applied("insignificant whitespace is valid JSON"),
    lambda t: "\r\n\t " + t + "\n\n",
)
text_kind(
    "escaped_unicode",
    SYNTAX,
    "every string character written as a \\u escape (valid JSON)",
    Applied("\\u escapes denote the same text"),
    lambda t: json.dumps(json.loads(t), ensure_ascii=True).replace('"PlaceOrder"', '"\\u0050laceOrder"'),
)

# ================================================================ structure
STRUCT = "structure"


@kind(
    "deep_body",
    STRUCT,
    f"{DEEP} nested arrays in the body: exhausts a recursive parser",
    DECODE,
    encryption="forbidden",
)
def _deep_body(ctx: HostileContext) -> WireMessage:
    return finish(ctx, ctx.plaintext[:-1] + ',"x":' + nested(DEEP) + "}")


@kind("deep_payload", STRUCT, f"{DEEP} nested arrays as a payload field", DECODE)
def _deep_payload(ctx: HostileContext) -> WireMessage:
    return finish(ctx, ctx.plaintext.replace('"sku":', '"sku":' + nested(DEEP, '"s"') + ',"skuX":', 1))


@kind(
    "deep_sealed_plaintext",
    STRUCT,
    f"{DEEP} nested objects inside the sealed plaintext",
    DECODE,
    encryption="required",
)
def _deep_sealed(ctx: HostileContext) -> WireMessage:
    return finish(ctx, ctx.plaintext[:-1] + ',"x":' + '{"a":' * DEEP + "1" + "}" * DEEP + "}")


@kind(
    "deep_envelope",
    STRUCT,
    f"{DEEP} nested arrays in an extra field of the envelope JSON",
    DECRYPT,
    encryption="required",
)
def _deep_envelope(ctx: HostileContext) -> WireMessage:
    env = envelope(ctx)
    raw = json.dumps(env, separators=(",", ":"))
    return with_envelope(ctx, None, raw=raw[:-1] + ',"x":' + nested(DEEP) + "}")


obj_kind(
    "depth_17",
    STRUCT,
    "17 nested arrays in an unknown field: past the 16-level limit",
    DECODE,
    lambda o: o.__setitem__("x", json.loads(nested(17))),
)
obj_kind(
    "depth_3_extra",
    STRUCT,
    "an unknown field holding 3 nested arrays",
    Applied("unknown fields are ignored and the depth is within the limit"),
    lambda o: o.__setitem__("x", json.loads(nested(2))),
)
text_kind(
    "duplicate_payload_key",
    STRUCT,
    "the payload names quantity twice with different values",
    DECODE,
    lambda t: t.replace('"quantity":', '"quantity":999,"quantity":', 1),
)
text_kind(
    "duplicate_metadata_key",
    STRUCT,
    "metadata names eventId twice",
    DECODE,
    lambda t: t.replace('"eventId":', '"eventId":"ffffffff-0000-4000-8000-000000000000","eventId":', 1),
)
text_kind("bom_prefix", STRUCT, "a byte-order mark (U+FEFF) before the JSON", DECODE, lambda t: "\ufeff" + t)


@kind(
    "sealed_not_utf8",
    STRUCT,
    "the sealed plaintext is the JSON followed by bytes that are not UTF-8",
    DECRYPT,
    encryption="required",
)
def _sealed_not_utf8(ctx: HostileContext) -> WireMessage:
    return finish(ctx, ctx.plaintext.encode("utf-8")[:-1] + b',"x":"\xff\xfe"}')


@kind("sealed_utf16", STRUCT, "the sealed plaintext is the JSON in UTF-16", DECRYPT, encryption="required")
def _sealed_utf16(ctx: HostileContext) -> WireMessage:
    return finish(ctx, ctx.plaintext.encode("utf-16"))


@kind(
    "sealed_cesu_surrogate",
    STRUCT,
    "the sealed plaintext holds a surrogate encoded as 3 bytes (CESU-8)",
    DECRYPT,
    encryption="required",
)
def _sealed_cesu(ctx: HostileContext) -> WireMessage:
    return finish(ctx, ctx.plaintext.encode("utf-8").replace(b'"CUST', b'"\xed\xa0\x80CUST', 1))


obj_kind(
    "unknown_top_field",
    STRUCT,
    "an extra unknown top-level field",
    Applied("unknown fields are ignored (forward compatibility)"),
    lambda o: o.__setitem__("extra", "x"),
)
obj_kind(
    "unknown_payload_field",
    STRUCT,
    "an extra unknown payload field",
    Applied("unknown payload fields are ignored"),
    lambda o: o["payload"].__setitem__("note", "x"),
)
for _path in (
    "name",
    "entity",
    "payload",
    "metadata",
    "metadata.eventId",
    "metadata.occurredOn",
    "metadata.sequenceNo",
    "payload.sku",
    "entity.id",
):
    obj_kind(
        f"missing_{_path.replace('.', '_')}",
        STRUCT,
        f"the body lacks {_path}",
        DECODE,
        lambda o, p=_path: del_path(o, p),  # type: ignore[misc]
    )
obj_kind("payload_null", STRUCT, "payload is null", DECODE, lambda o: o.__setitem__("payload", None))
obj_kind(
    "entity_array", STRUCT, "entity is an array", DECODE, lambda o: o.__setitem__("entity", [o["entity"]])
)

# ================================================================ numbers and types
TYPES = "numbers-types"
for _name, _value, _what in (
    ("quantity_float", 1.5, "a float"),
    ("quantity_float_integral", 1.0, "1.0"),
    ("quantity_string", "1", "a string"),
    ("quantity_bool", True, "true"),
    ("quantity_null", None, "null"),
):
    obj_kind(
        _name,
        TYPES,
        f"payload.quantity is {_what}",
        DECODE,
        lambda o, v=_value: o["payload"].__setitem__("quantity", v),  # type: ignore[misc]
    )
text_kind(
    "quantity_nan",
    TYPES,
    "payload.quantity is the non-JSON literal NaN",
    DECODE,
    lambda t: t.replace('"quantity":1', '"quantity":NaN', 1),
)
text_kind(
    "nan_in_unknown_field",
    TYPES,
    "an unknown field holds the non-JSON literal NaN",
    DECODE,
    lambda t: t[:-1] + ',"x":NaN}',
)
text_kind(
    "infinity_in_unknown_field",
    TYPES,
    "an unknown field holds the non-JSON literal -Infinity",
    DECODE,
    lambda t: t[:-1] + ',"x":-Infinity}',
)
text_kind(
    "overflow_float",
    TYPES,
    "an unknown field holds 1e999 (parses to infinity)",
    DECODE,
    lambda t: t[:-1] + ',"x":1e999}',
)
obj_kind(
    "amount_huge",
    TYPES,
    "payload.amountCents is 10^30 (outside BIGINT; PostgreSQL refuses it)",
    DECODE,
    lambda o: o["payload"].__setitem__("amountCents", 10**30),
)
obj_kind(
    "amount_int64_max",
    TYPES,
    "payload.amountCents is 2^63-1 (the largest BIGINT)",
    Applied("within the signed 64-bit range every store holds"),
    lambda o: o["payload"].__setitem__("amountCents", INT64_MAX),
)
obj_kind(
    "quantity_negative",
    TYPES,
    "payload.quantity is -5",
    BusinessDeadLetter("a well-formed command the order domain refuses (quantity must be positive)"),
    lambda o: o["payload"].__setitem__("quantity", -5),
)
obj_kind(
    "is_new_string",
    TYPES,
    'entity.isNew is the string "true"',
    DECODE,
    lambda o: o["entity"].__setitem__("isNew", "true"),
)
obj_kind(
    "is_replay_string",
    TYPES,
    'metadata.isReplay is the string "yes"',
    DECODE,
    lambda o: o["metadata"].__setitem__("isReplay", "yes"),
)
obj_kind(
    "correlation_number",
    TYPES,
    "metadata.correlationId is a number",
    DECODE,
    lambda o: o["metadata"].__setitem__("correlationId", 5),
)
obj_kind(
    "properties_not_strings",
    TYPES,
    "metadata.properties maps a key to a number",
    DECODE,
    lambda o: o["metadata"].__setitem__("properties", {"k": 1}),
)
obj_kind(
    "occurred_on_garbage",
    TYPES,
    'metadata.occurredOn is "yesterday"',
    DECODE,
    lambda o: o["metadata"].__setitem__("occurredOn", "yesterday"),
)
obj_kind("name_number", TYPES, "the body's name is a number", DECODE, lambda o: o.__setitem__("name", 7))
obj_kind(
    "non_ascii_text",
    TYPES,
    "payload strings with non-ASCII letters and an emoji",
    Applied("any Unicode text is valid in payload strings"),
    lambda o: o["payload"].__setitem__("customerId", "Zoë-客户-\U0001f600"),
)

# ================================================================ PostgreSQL refuses, SQLite accepts
PG = "postgres-values"
text_kind(
    "nul_in_string",
    PG,
    "payload.customerId holds a \\u0000 escape (PostgreSQL text refuses NUL)",
    DECODE,
    lambda t: t.replace('"customerId":"', '"customerId":"\\u0000', 1),
)
text_kind(
    "lone_surrogate_escape",
    PG,
    "payload.customerId holds a \\ud800 escape (not encodable as UTF-8)",
    DECODE,
    lambda t: t.replace('"customerId":"', '"customerId":"\\ud800', 1),
)
obj_kind(
    "quantity_int64_overflow",
    PG,
    "payload.quantity is 2^63 (BIGINT overflow)",
    DECODE,
    lambda o: o["payload"].__setitem__("quantity", INT64_MAX + 1),
)
obj_kind(
    "nul_in_key", PG, "an unknown field whose name holds NUL", DECODE, lambda o: o.__setitem__("a\x00b", 1)
)

# ================================================================ identifiers
IDS = "identifiers"
for _name, _value, _what in (
    ("entity_id_too_long", "", "129 characters"),
    ("entity_id_spaces", "{} with spaces", "contains spaces"),
    ("entity_id_non_ascii", "ördér-{}", "non-ASCII"),
    ("entity_id_newline", "{}\n1", "contains a newline"),
):
    kind(_name, IDS, f"entity id (and EntityId) {_what}: not a valid SQS MessageGroupId", DECODE)(
        lambda ctx, v=_value: identity(  # type: ignore[misc]
            ctx, wire_obj(ctx), entity=v.format(ctx.command.entity_id) or _pad_id(ctx.command.entity_id, 129)
        )
    )
kind(
    "entity_id_128",
    IDS,
    "entity id of exactly 128 allowed characters",
    Applied("128 characters is the MessageGroupId limit"),
)(
    lambda ctx: identity(ctx, wire_obj(ctx), entity=_pad_id(ctx.command.entity_id, 128)),
)


def _pad_id(base: str, size: int) -> str:
    """``base`` padded to ``size`` characters (unique per message, unlike a constant id)."""
    return base + "-" + "E" * (size - len(base) - 1)


@kind("entity_id_empty", IDS, 'entity id "" and no EntityId attribute (SQS refuses empty values)', MISSING)
def _entity_empty(ctx: HostileContext) -> WireMessage:
    return identity(ctx, wire_obj(ctx), entity="", omit=("EntityId",))


for _name, _value, _what in (
    ("event_id_too_long", "e" * 129, "129 characters"),
    ("event_id_spaces", "event id", "contains a space"),
):
    kind(_name, IDS, f"eventId (and EventId) {_what}", DECODE)(
        lambda ctx, v=_value: identity(ctx, wire_obj(ctx), event_id=v)  # type: ignore[misc]
    )
kind("event_id_number", IDS, 'eventId is the number 42 (EventId "42")', DECODE)(
    lambda ctx: identity(ctx, wire_obj(ctx), event_id=42)
)


@kind(
    "event_id_empty",
    IDS,
    'eventId "" and no EventId attribute (plaintext bus)',
    DECODE,
    encryption="forbidden",
)
def _event_empty(ctx: HostileContext) -> WireMessage:
    return identity(ctx, wire_obj(ctx), event_id="", omit=("EventId",))


# ================================================================ sequence numbers
SEQ = "sequence-numbers"
for _name, _value, _outcome, _what in (
    ("seq_zero", 0, DECODE, "0 (means 'unassigned'; never on the wire)"),
    ("seq_negative", -1, DECODE, "-1"),
    ("seq_int64_overflow", INT64_MAX + 1, DECODE, "2^63 (BIGINT overflow)"),
    (
        "seq_int64_max",
        INT64_MAX,
        Applied("the largest BIGINT; after the bounded wait for its predecessor"),
        "2^63-1",
    ),
    (
        "seq_gap",
        7,
        Applied("the wait for seq 6 is bounded (business_max_attempts receives), then it is handled"),
        "7 on a new entity",
    ),
):
    kind(_name, SEQ, f"sequenceNo (and SequenceNo) is {_what}", _outcome)(
        lambda ctx, v=_value: identity(ctx, wire_obj(ctx), seq=v)  # type: ignore[misc]
    )
kind("seq_float", SEQ, 'sequenceNo is 1.0 (SequenceNo "1.0")', DECODE)(
    lambda ctx: identity(ctx, wire_obj(ctx), seq=1.0)
)
kind("seq_string", SEQ, 'sequenceNo is the string "1"', DECODE)(
    lambda ctx: identity(ctx, wire_obj(ctx), seq="1")
)


@kind("seq_attr_leading_zero", SEQ, 'SequenceNo attribute "01" for sequenceNo 1', DECODE)
def _seq_zero_pad(ctx: HostileContext) -> WireMessage:
    attrs = attrs_of(ctx)
    attrs["SequenceNo"] = sattr("01")
    return finish(ctx, ctx.plaintext, attrs)


# ================================================================ attributes
ATTRS = "attributes"


def _attr_edit(edit: Callable[[dict[str, dict[str, Any]]], Any]) -> Transform:
    def transform(ctx: HostileContext) -> WireMessage:
        attrs = attrs_of(ctx)
        edit(attrs)
        return finish(ctx, ctx.plaintext, attrs)

    return transform


for _attr in ("CommandType", "EntityId", "SequenceNo"):
    kind(
        "missing_attribute" if _attr == "CommandType" else f"missing_attr_{_attr}",
        ATTRS,
        f"the {_attr} attribute is absent",
        MISSING,
    )(_attr_edit(lambda a, n=_attr: a.pop(n)))  # type: ignore[misc]
    kind(f"binary_attr_{_attr}", ATTRS, f"{_attr} sent as a Binary attribute", MISSING)(
        _attr_edit(
            lambda a, n=_attr: a.__setitem__(  # type: ignore[misc]
                n, {"DataType": "Binary", "BinaryValue": a[n]["StringValue"].encode()}
            )
        )
    )
kind(
    "missing_attr_EventId",
    ATTRS,
    "no EventId attribute on a plaintext bus",
    Applied("the body's eventId is the identity; EventId is only required to open an envelope"),
    "forbidden",
)(_attr_edit(lambda a: a.pop("EventId")))
kind(
    "missing_attr_EventId_sealed", ATTRS, "no EventId attribute on an encrypted message", MISSING, "required"
)(_attr_edit(lambda a: a.pop("EventId")))
kind(
    "missing_attr_CorrelationId",
    ATTRS,
    "no CorrelationId attribute",
    Applied("CorrelationId is informational"),
)(_attr_edit(lambda a: a.pop("CorrelationId", None)))
kind("lowercase_attr_name", ATTRS, "the type attribute is named commandtype", MISSING)(
    _attr_edit(lambda a: a.__setitem__("commandtype", a.pop("CommandType")))
)
kind(
    "extra_attribute", ATTRS, "an extra unknown String attribute", Applied("unknown attributes are ignored")
)(_attr_edit(lambda a: a.__setitem__("X-Extra", sattr("1"))))
kind(
    "ten_attributes",
    ATTRS,
    "extra attributes up to SQS's maximum of 10",
    Applied("10 attributes is the SQS limit; unknown ones are ignored"),
)(_attr_edit(lambda a: a.update({f"X-Pad{i}": sattr(str(i)) for i in range(10 - len(a))})))
kind(
    "number_type_attr",
    ATTRS,
    "SequenceNo sent with DataType Number",
    Applied("a Number attribute carries its value as StringValue"),
)(_attr_edit(lambda a: a.__setitem__("SequenceNo", {"DataType": "Number", "StringValue": "1"})))
kind("unknown_type", ATTRS, "CommandType and the body name an unregistered type", UNKNOWN)(
    lambda ctx: finish(
        ctx,
        ctx.plaintext.replace('"PlaceOrder"', '"TeleportOrder"'),
        {**attrs_of(ctx), "CommandType": sattr("TeleportOrder")},
    )
)
kind("command_type_is_event", ATTRS, "CommandType names an event type (OrderPlaced)", UNKNOWN)(
    _attr_edit(lambda a: a.__setitem__("CommandType", sattr("OrderPlaced")))
)
kind("both_type_attributes", ATTRS, "CommandType and EventType both present", DECODE)(
    _attr_edit(lambda a: a.update(EventType=sattr("OrderPlaced"), EventName=sattr("OrderPlaced")))
)
for _attr, _value in (
    ("CommandType", "CancelOrder"),
    ("EntityId", "other-entity"),
    ("SequenceNo", "2"),
    ("EventId", "00000000-0000-4000-8000-000000000001"),
):
    kind(f"contradict_{_attr}", ATTRS, f"{_attr} attribute {_value!r} contradicts the body", DECODE)(
        _attr_edit(lambda a, n=_attr, v=_value: a.__setitem__(n, sattr(v)))  # type: ignore[misc]
    )

# contract v1.4, the precedence of the checks on an encrypted bus (decode rules 2, 3, 5, 7): the
# registered type is judged from the attribute before the envelope is opened; an attribute changed
# after sealing no longer opens the envelope (it is what the seal is bound to); a body that opens
# and then contradicts its attributes is a DecodeError, not a DecryptionError.
kind(
    "unknown_type_after_sealing",
    ATTRS,
    "a sealed PlaceOrder whose CommandType attribute is rewritten to an unregistered type",
    UNKNOWN,
    "required",
)(lambda ctx: replace(ctx.valid, attributes={**attrs_of(ctx), "CommandType": sattr("TeleportOrder")}))
kind(
    "unknown_name_sealed",
    ATTRS,
    "sealed for CommandType PlaceOrder, the body inside names an unregistered type",
    UNKNOWN,
    "required",
)(lambda ctx: finish(ctx, ctx.plaintext.replace('"PlaceOrder"', '"TeleportOrder"')))
kind(
    "contradict_EntityId_after_sealing",
    ATTRS,
    "a sealed PlaceOrder whose EntityId attribute is rewritten: the context no longer opens",
    DECRYPT,
    "required",
)(lambda ctx: replace(ctx.valid, attributes={**attrs_of(ctx), "EntityId": sattr("other-entity")}))
kind(
    "contradict_name_sealed",
    ATTRS,
    "sealed bound to its attributes (PlaceOrder), the body inside names ReserveInventory (whose payload "
    "fields it has): opens, then contradicts",
    DECODE,
    "required",
)(lambda ctx: finish(ctx, ctx.plaintext.replace('"PlaceOrder"', '"ReserveInventory"')))

# ================================================================ envelope (encrypted bus)
ENV = "envelope"
_ENV_FIELDS = FIELDS


def env_kind(
    name: str, description: str, edit: Callable[[dict[str, Any]], Any], outcome: Outcome = DECRYPT
) -> None:
    def transform(ctx: HostileContext) -> WireMessage:
        env = envelope(ctx)
        edit(env)
        return with_envelope(ctx, env)

    kind(name, ENV, description, outcome, "required")(transform)


for _field in _ENV_FIELDS:
    env_kind(f"env_missing_{_field}", f"the envelope lacks {_field}", lambda e, f=_field: e.pop(f))  # type: ignore[misc]
env_kind("env_version_2", "envelope Version 2 (unknown)", lambda e: e.__setitem__("Version", 2))
env_kind("env_version_string", 'envelope Version "1" (a string)', lambda e: e.__setitem__("Version", "1"))
env_kind(
    "env_version_true",
    "envelope Version true (equal to 1 in Python)",
    lambda e: e.__setitem__("Version", True),
)
env_kind("env_version_float", "envelope Version 1.0", lambda e: e.__setitem__("Version", 1.0))
env_kind("env_keyid_number", "envelope KeyId is a number", lambda e: e.__setitem__("KeyId", 1))
env_kind(
    "env_destination_list", "envelope Destination is a list", lambda e: e.__setitem__("Destination", ["x"])
)
env_kind("env_nonce_not_base64", "envelope Nonce is not base64", lambda e: e.__setitem__("Nonce", "%%%"))
env_kind(
    "env_ciphertext_not_base64",
    "envelope Ciphertext is not base64",
    lambda e: e.__setitem__("Ciphertext", e["Ciphertext"][:-2] + "!!"),
)
env_kind("env_tag_truncated", "a 15-byte GCM tag", lambda e: e.__setitem__("Tag", b64(b"\0" * 15)))
env_kind("env_nonce_16", "a 16-byte nonce", lambda e: e.__setitem__("Nonce", b64(b"\0" * 16)))
env_kind(
    "env_data_key_garbage",
    "the encrypted data key is random bytes",
    lambda e: e.__setitem__("EncryptedDataKey", b64(bytes(range(64)))),
)
env_kind(
    "env_extra_field",
    "an extra unknown envelope field",
    lambda e: e.__setitem__("Extra", "x"),
    Applied("unknown envelope fields are not interpreted"),
)
env_kind("env_not_object", "the envelope JSON is an array", lambda e: None)
_KINDS[-1] = replace(_KINDS[-1], transform=lambda ctx: with_envelope(ctx, [envelope(ctx)]))


@kind("env_not_base64", ENV, "the body is not base64 at all", DECRYPT, "required")
def _env_not_b64(ctx: HostileContext) -> WireMessage:
    return replace(ctx.valid, body="not base64 {}")


@kind("env_not_json", ENV, "the body is base64 of text that is not JSON", DECRYPT, "required")
def _env_not_json(ctx: HostileContext) -> WireMessage:
    return replace(ctx.valid, body=b64(b"hello"))


@kind("tampered", ENV, "one bit of the ciphertext flipped", DECRYPT, "required")
def _tampered(ctx: HostileContext) -> WireMessage:
    env = envelope(ctx)
    data = bytearray(base64.b64decode(env["Ciphertext"]))
    data[len(data) // 2] ^= 0x01
    env["Ciphertext"] = b64(bytes(data))
    return with_envelope(ctx, env)


@kind("wrong_key", ENV, "sealed under another KMS key (KeyId names it)", DECRYPT, "required")
def _wrong_key(ctx: HostileContext) -> WireMessage:
    return replace(ctx.valid, body=ctx.seal(ctx.plaintext, key=ctx.other_key()))


@kind(
    "env_keyid_relabelled",
    ENV,
    "sealed under another key, KeyId relabelled to the bus key",
    DECRYPT,
    "required",
)
def _relabelled(ctx: HostileContext) -> WireMessage:
    env_bus = envelope(ctx)
    other = json.loads(base64.b64decode(ctx.seal(ctx.plaintext, key=ctx.other_key())))
    other["KeyId"] = env_bus["KeyId"]
    return with_envelope(ctx, other)


@kind(
    "swapped_aad",
    ENV,
    "sealed for another destination, Destination relabelled to this queue",
    DECRYPT,
    "required",
)
def _swapped(ctx: HostileContext) -> WireMessage:
    suffix = ".fifo" if ctx.queue.endswith(".fifo") else ""
    env = json.loads(base64.b64decode(ctx.seal(ctx.plaintext, destination=f"elsewhere{suffix}")))
    env["Destination"] = ctx.queue
    return with_envelope(ctx, env)


@kind(
    "env_ciphertext_of_other_message",
    ENV,
    "a valid envelope of another message id under this EventId",
    DECRYPT,
    "required",
)
def _other_message(ctx: HostileContext) -> WireMessage:
    attrs = {**attrs_of(ctx), "EventId": sattr("00000000-0000-4000-8000-0000000000aa")}
    return replace(ctx.valid, body=ctx.seal(ctx.plaintext, attributes=attrs))


# ================================================================ routing
ROUTE = "routing"


@kind(
    "sealed_for_view_queue",
    ROUTE,
    "sealed for the view queue, sent to the command queue",
    DECRYPT,
    "required",
)
def _for_views(ctx: HostileContext) -> WireMessage:
    return replace(ctx.valid, body=ctx.seal(ctx.plaintext, destination=ctx.views_queue))


def event_message(ctx: HostileContext) -> tuple[str, dict[str, dict[str, Any]]]:
    from reference.messages import encode

    evt = ctx.event
    attrs = {
        "EventType": sattr(evt.name),
        "EventName": sattr(evt.name),
        "EntityId": sattr(evt.entity_id),
        "SequenceNo": sattr(str(evt.metadata.sequence_no)),
        "EventId": sattr(evt.event_id),
    }
    if ctx.encrypted:
        attrs["Encryption"] = sattr(ENCRYPTION_MARKER)
    return encode(evt), attrs


@kind("event_on_command_queue", ROUTE, "a valid event (OrderPlaced) sent to the command queue", UNKNOWN)
def _event_on_commands(ctx: HostileContext) -> WireMessage:
    text, attrs = event_message(ctx)
    return finish(ctx, text, attrs)


@kind("command_on_view_queue", ROUTE, "a valid command sent to a view queue", UNKNOWN)
def _command_on_views(ctx: HostileContext) -> WireMessage:
    return finish(ctx, ctx.plaintext, destination=_view_destination(ctx), target="views")


def _view_destination(ctx: HostileContext) -> str | None:
    # a view listener accepts envelopes sealed for the topics it subscribes to
    return ctx.views_queue.replace("order-views", "order-events") if ctx.encrypted else None


kind("unknown_encryption_marker", ROUTE, "Encryption attribute names an unknown scheme", DECRYPT)(
    _attr_edit(lambda a: a.__setitem__("Encryption", sattr("rot13-v9")))
)


@kind(
    "plaintext_on_encrypted_bus",
    ROUTE,
    "a plaintext command without Encryption on an encrypted bus",
    DECRYPT,
    "required",
)
def _plain_on_enc(ctx: HostileContext) -> WireMessage:
    attrs = attrs_of(ctx)
    attrs.pop("Encryption")
    return replace(ctx.valid, body=ctx.plaintext, attributes=attrs)


@kind(
    "encrypted_on_plaintext_bus",
    ROUTE,
    "Encryption attribute on a plaintext bus (no key)",
    DECRYPT,
    "forbidden",
)
def _enc_on_plain(ctx: HostileContext) -> WireMessage:
    return replace(ctx.valid, attributes={**attrs_of(ctx), "Encryption": sattr(ENCRYPTION_MARKER)})


# ================================================================ identity
IDENT = "identity"


@kind(
    "reused_event_id_applied", IDENT, "the eventId of a command already applied, with other content", CONFLICT
)
def _reused_applied(ctx: HostileContext) -> WireMessage:
    known = ctx.known_event_id()
    if known is None:
        raise Unavailable("no command has taken effect yet")
    return identity(ctx, wire_obj(ctx), event_id=known)


@kind(
    "reused_event_id_pending",
    IDENT,
    "the eventId of a command sent and not yet applied, other content, queued behind it in its group",
    CONFLICT,
    queue="fifo",
)
def _reused_pending(ctx: HostileContext) -> WireMessage:
    found = ctx.pending()
    if found is None:
        raise Unavailable("no command is pending")
    event_id, group = found
    return replace(identity(ctx, wire_obj(ctx), event_id=event_id), group_id=group)


# ================================================================ size limits
SIZE = "size"


@kind("oversized", SIZE, "a 300 KiB body (over the 256 KiB limit; SQS itself allows 1 MiB)", OVERSIZED)
def _oversized(ctx: HostileContext) -> WireMessage:
    body = json.dumps({"padding": "x" * (300 * 1024)})
    attrs = attrs_of(ctx)
    return replace(ctx.valid, body=body, attributes=attrs)


@kind("oversized_sealed", SIZE, "a 200 KiB plaintext that seals to more than 256 KiB", OVERSIZED, "required")
def _oversized_sealed(ctx: HostileContext) -> WireMessage:
    return finish(ctx, ctx.plaintext[:-1] + ',"pad":"' + "x" * (200 * 1024) + '"}')


def _padded(ctx: HostileContext, size: int) -> WireMessage:
    base = ctx.plaintext[:-1] + ',"pad":""}'
    pad = size - len(base.encode("utf-8"))
    return finish(ctx, ctx.plaintext[:-1] + ',"pad":"' + "x" * pad + '"}')


kind("body_at_limit", SIZE, "a body of exactly 256 KiB", Applied("the limit is inclusive"), "forbidden")(
    lambda ctx: _padded(ctx, MAX_BODY)
)
kind("body_over_limit", SIZE, "a body of 256 KiB + 1 byte", OVERSIZED, "forbidden")(
    lambda ctx: _padded(ctx, MAX_BODY + 1)
)

# ================================================================ refused by SQS
SQS = "sqs-refuses"
kind(
    "raw_nul_in_body",
    SQS,
    "a raw NUL character in the body",
    Refused("SQS refuses characters outside the XML set (InvalidMessageContents)"),
    "forbidden",
)(lambda ctx: replace(ctx.valid, body=ctx.plaintext.replace("CUST", "CU\x00ST", 1)))
kind(
    "raw_fffe_in_body",
    SQS,
    "the non-character U+FFFE in the body",
    Refused("SQS refuses characters outside the XML set (InvalidMessageContents)"),
    "forbidden",
)(lambda ctx: replace(ctx.valid, body=ctx.plaintext.replace("CUST", "CU\ufffeST", 1)))
kind("eleven_attributes", SQS, "11 message attributes", Refused("SQS allows at most 10 attributes"))(
    _attr_edit(lambda a: a.update({f"X-Pad{i}": sattr(str(i)) for i in range(11 - len(a))}))
)


def _catalog() -> Mapping[str, HostileKind]:
    out: dict[str, HostileKind] = {}
    for k in _KINDS:
        if k.name in out:
            raise ValueError(f"hostile kind {k.name!r} defined twice")
        out[k.name] = k
    return out


CATALOG: Mapping[str, HostileKind] = _catalog()


def iter_kinds() -> Iterator[HostileKind]:
    return iter(CATALOG.values())


__all__ = ["CATALOG", "DEEP", "Unavailable", "iter_kinds", "set_path"]
