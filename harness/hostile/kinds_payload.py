"""Hostile kinds about what a message body says: JSON syntax, structure (depth, encodings of the
sealed plaintext), numbers and types, values PostgreSQL refuses, identifiers and sequence numbers.
Each kind registers itself (:mod:`.kinds_base`) when this module is imported.
"""

from __future__ import annotations

import json

from .core import (
    Applied,
    BusinessDeadLetter,
    HostileContext,
    WireMessage,
    attrs_of,
    envelope,
    finish,
    sattr,
    wire_obj,
    with_envelope,
)
from .kinds_base import (
    DECODE,
    DECRYPT,
    DEEP,
    INT64_MAX,
    MISSING,
    del_path,
    identity,
    kind,
    nested,
    obj_kind,
    text_kind,
)

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
