"""Hostile kinds about how a message is carried: message attributes (and, v1.4, their precedence
over the envelope on an encrypted bus), the envelope itself, routing to the wrong queue, reused
identities, size limits and what SQS itself refuses. Each kind registers itself
(:mod:`.kinds_base`) when this module is imported (after :mod:`.kinds_payload`).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from flowgate.reference.envelope import FIELDS

from . import kinds_payload  # noqa: F401  (its kinds come first in the catalog)
from .core import (
    ENCRYPTION_MARKER,
    Applied,
    HostileContext,
    Outcome,
    Refused,
    Unavailable,
    WireMessage,
    attrs_of,
    b64,
    envelope,
    finish,
    sattr,
    wire_obj,
    with_envelope,
)
from .kinds_base import (
    CONFLICT,
    DECODE,
    DECRYPT,
    MAX_BODY,
    MISSING,
    OVERSIZED,
    REGISTERED,
    UNKNOWN,
    Transform,
    identity,
    kind,
)

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
REGISTERED[-1] = replace(REGISTERED[-1], transform=lambda ctx: with_envelope(ctx, [envelope(ctx)]))


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
    from flowgate.reference.messages import encode

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
