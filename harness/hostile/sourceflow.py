"""Hostile SourceFlow.Net-shaped messages for a consumer in interop mode (docs/sourceflow.md).

Each kind derives one SQS message from a valid SourceFlow command or event
(:func:`flowgate.harness.sourceflow.command_send` / :func:`~flowgate.harness.sourceflow.event_publish`, fresh
entity, sequence number 1) and names the ``DeadLetterReason`` code a correct consumer gives it.
They are kept apart from :data:`flowgate.harness.hostile.CATALOG`: that catalog is also the gate's, and the
gate's consumers (the reference as configured there, the Node worker) do not run interop mode.
``properties/test_sourceflow.py`` interleaves them with valid SourceFlow and native commands.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flowgate.harness import sourceflow as sf

#: what a kind's transform gets: the valid SourceFlow message (command: SendMessage params;
#: event: the SNS Publish params, delivered raw) and the entity id it targets
Params = dict[str, Any]


@dataclass(frozen=True)
class SourceFlowKind:
    name: str
    description: str
    #: "command" (sent to the command queue) or "event" (sent to the view queue, as raw delivery
    #: would put it there)
    target: str
    reason: str  # the DeadLetterReason code
    transform: Callable[[Params], Params]


KINDS: list[SourceFlowKind] = []


def _kind(
    name: str, description: str, reason: str, target: str = "command"
) -> Callable[[Callable[[Params], Params]], Callable[[Params], Params]]:
    def register(fn: Callable[[Params], Params]) -> Callable[[Params], Params]:
        KINDS.append(SourceFlowKind(name, description, target, reason, fn))
        return fn

    return register


def _body_key(params: Params) -> str:
    return "MessageBody" if "MessageBody" in params else "Message"


def _edit(params: Params, fn: Callable[[dict[str, Any]], None]) -> Params:
    key = _body_key(params)
    body = json.loads(params[key])
    fn(body)
    return {**params, key: json.dumps(body)}


def _text(params: Params, text: str) -> Params:
    return {**params, _body_key(params): text}


def _attr(params: Params, name: str, value: str | None) -> Params:
    attrs = dict(params["MessageAttributes"])
    if value is None:
        attrs.pop(name, None)
    else:
        attrs[name] = {"DataType": "String", "StringValue": value}
    return {**params, "MessageAttributes": attrs}


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def apply(body: dict[str, Any]) -> None:
        *parents, leaf = path.split(".")
        target = body
        for p in parents:
            target = target[p]
        target[leaf] = value

    return apply


# -- type names --------------------------------------------------------------------------------
@_kind(
    "sf_unknown_alias",
    "a CommandType no alias names (another namespace, same class name)",
    "UnknownMessageType",
)
def _unknown(p: Params) -> Params:
    return _attr(p, "CommandType", "Evil.Commands.PlaceOrder, " + sf.ASSEMBLY)


@_kind("sf_alias_other_version", "the alias with another assembly version", "UnknownMessageType")
def _version(p: Params) -> Params:
    return _attr(p, "CommandType", sf.ORDER_ALIASES["PlaceOrder"].replace("1.0.0.0", "1.0.0.1"))


@_kind(
    "sf_system_type",
    "a CommandType naming a .NET system type (type loading would run it)",
    "UnknownMessageType",
)
def _system(p: Params) -> Params:
    return _attr(p, "CommandType", "System.Diagnostics.Process, System.Diagnostics.Process, Version=8.0.0.0")


@_kind("sf_event_alias_as_command", "an event's alias as CommandType", "UnknownMessageType")
def _event_as_command(p: Params) -> Params:
    return _attr(p, "CommandType", sf.ORDER_ALIASES["OrderPlaced"])


@_kind("sf_body_name_contradicts", "the body's name is another command's", "DecodeError")
def _name(p: Params) -> Params:
    return _edit(p, _set("name", "CancelOrder"))


# -- integer ids ---------------------------------------------------------------------------------
@_kind("sf_id_string", 'entity.id "N" (a string where SourceFlow writes an int)', "DecodeError")
def _id_string(p: Params) -> Params:
    return _edit(p, lambda b: _set("entity.id", str(b["entity"]["id"]))(b))


@_kind("sf_id_float", "entity.id N.0", "DecodeError")
def _id_float(p: Params) -> Params:
    return _edit(p, lambda b: _set("entity.id", float(b["entity"]["id"]))(b))


@_kind("sf_id_bool", "entity.id true, EntityId True", "DecodeError")
def _id_bool(p: Params) -> Params:
    return _attr(_edit(p, _set("entity.id", True)), "EntityId", "True")


@_kind("sf_id_zero", "entity.id 0 (SourceFlow's new entity without an id)", "DecodeError")
def _id_zero(p: Params) -> Params:
    return _attr(_edit(p, _set("entity.id", 0)), "EntityId", "0")


@_kind("sf_id_int32_overflow", "entity.id 2^31 (beyond .NET int)", "DecodeError")
def _id_big(p: Params) -> Params:
    return _attr(_edit(p, _set("entity.id", 2**31)), "EntityId", str(2**31))


@_kind("sf_id_int64_overflow", "entity.id 2^64 (beyond any integer column)", "DecodeError")
def _id_huge(p: Params) -> Params:
    return _attr(_edit(p, _set("entity.id", 2**64)), "EntityId", str(2**64))


@_kind("sf_entity_attr_leading_zero", "EntityId 0N for entity.id N", "DecodeError")
def _leading_zero(p: Params) -> Params:
    return _attr(p, "EntityId", "0" + p["MessageAttributes"]["EntityId"]["StringValue"])


@_kind("sf_entity_attr_other", "EntityId names another entity than the body", "DecodeError")
def _other_entity(p: Params) -> Params:
    return _attr(p, "EntityId", str(int(p["MessageAttributes"]["EntityId"]["StringValue"]) + 1))


# -- metadata -------------------------------------------------------------------------------------
@_kind("sf_sequence_attr_contradicts", "SequenceNo attribute 2 for sequenceNo 1", "DecodeError")
def _seq(p: Params) -> Params:
    return _attr(p, "SequenceNo", "2")


@_kind("sf_sequence_zero", "sequenceNo 0 on a command", "DecodeError")
def _seq0(p: Params) -> Params:
    return _attr(_edit(p, _set("metadata.sequenceNo", 0)), "SequenceNo", "0")


@_kind("sf_event_id_not_guid", "metadata.eventId is not a GUID", "DecodeError")
def _guid(p: Params) -> Params:
    return _edit(p, _set("metadata.eventId", "not-a-guid"))


@_kind(
    "sf_occurred_on_local",
    "occurredOn without a UTC designator (DateTimeKind.Local/Unspecified)",
    "DecodeError",
)
def _local(p: Params) -> Params:
    return _edit(p, _set("metadata.occurredOn", "2026-11-30T00:53:20.25"))


@_kind("sf_properties_object_values", "metadata.properties holds a number", "DecodeError")
def _props(p: Params) -> Params:
    return _edit(p, _set("metadata.properties", {"n": 1}))


@_kind("sf_missing_sequence_attr", "no SequenceNo attribute", "MissingAttribute")
def _no_seq(p: Params) -> Params:
    return _attr(p, "SequenceNo", None)


@_kind("sf_missing_entity_attr", "no EntityId attribute", "MissingAttribute")
def _no_entity(p: Params) -> Params:
    return _attr(p, "EntityId", None)


@_kind("sf_encryption_marker", "an Encryption attribute on a SourceFlow message", "DecryptionError")
def _encrypted(p: Params) -> Params:
    return _attr(p, "Encryption", "kms-aes256gcm-v1")


# -- JSON -------------------------------------------------------------------------------------------
@_kind("sf_duplicate_key", "the body repeats entity (System.Text.Json would take the last)", "DecodeError")
def _dup(p: Params) -> Params:
    text = p["MessageBody"]
    return _text(p, text[:-1] + ',"entity":{"id":1,"isNew":false}}')


@_kind("sf_deep_body", "5000 nested arrays in the body", "DecodeError")
def _deep(p: Params) -> Params:
    return _text(p, p["MessageBody"][:-1] + ',"x":' + "[" * 5000 + "1" + "]" * 5000 + "}")


@_kind("sf_nan", "NaN as the quantity", "DecodeError")
def _nan(p: Params) -> Params:
    return _text(p, p["MessageBody"].replace('"quantity":2', '"quantity":NaN', 1))


@_kind("sf_nul", "a NUL character in the customer id", "DecodeError")
def _nul(p: Params) -> Params:
    return _edit(p, _set("payload.customerId", "C\u0000"))


@_kind("sf_not_json", "a body that is not JSON", "DecodeError")
def _not_json(p: Params) -> Params:
    return _text(p, "not-json{{{")


# -- events ------------------------------------------------------------------------------------
@_kind("sf_event_id_string", 'an event whose payload.id is "N"', "DecodeError", target="event")
def _event_id_string(p: Params) -> Params:
    return _edit(p, lambda b: _set("payload.id", str(b["payload"]["id"]))(b))


@_kind("sf_event_without_id", "an event whose payload has no id", "DecodeError", target="event")
def _event_no_id(p: Params) -> Params:
    return _edit(p, lambda b: b["payload"].pop("id"))


@_kind("sf_event_name_contradicts", "EventName names another event", "DecodeError", target="event")
def _event_name(p: Params) -> Params:
    return _attr(p, "EventName", "OrderCancelled")


@_kind("sf_event_missing_name", "no EventName attribute", "MissingAttribute", target="event")
def _event_no_name(p: Params) -> Params:
    return _attr(p, "EventName", None)


@_kind("sf_command_alias_as_event", "a command's alias as EventType", "UnknownMessageType", target="event")
def _command_as_event(p: Params) -> Params:
    return _attr(p, "EventType", sf.ORDER_ALIASES["PlaceOrder"])


@_kind("sf_unknown_event_alias", "an EventType no alias names", "UnknownMessageType", target="event")
def _unknown_event(p: Params) -> Params:
    return _attr(p, "EventType", "Evil.Events.OrderPlaced, " + sf.ASSEMBLY)


CATALOG: dict[str, SourceFlowKind] = {k.name: k for k in KINDS}
