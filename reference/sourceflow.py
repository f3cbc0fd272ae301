"""SourceFlow.Net v2 interop: its wire shape in and out (``BusOptions.sourceflow_interop`` /
``sourceflow_emit``; ``docs/sourceflow.md``, decision D32).

Everything here follows the C# source of SourceFlow.Net v2.0.0 (:data:`SOURCE_REPO` at
:data:`SOURCE_COMMIT`):

* ``src/SourceFlow.Cloud.AWS/Messaging/Commands/AwsSqsCommandDispatcher.cs`` -- body
  ``JsonSerializer.Serialize(command, {PropertyNamingPolicy = CamelCase, DefaultIgnoreCondition =
  WhenWritingNull})``; attributes ``CommandType`` = ``typeof(TCommand).AssemblyQualifiedName``,
  ``EntityId`` = ``Entity.Id.ToString()``, ``SequenceNo`` = ``Metadata.SequenceNo.ToString()``
  (all ``String``); ``MessageGroupId`` = the entity id; no ``MessageDeduplicationId`` (its
  bootstrapper creates FIFO queues with ``ContentBasedDeduplication=true``);
* ``src/SourceFlow/Messaging/Commands/Command.cs`` / ``ICommand.cs`` -- ``Command<TPayload>``:
  ``Metadata``, ``Name`` (= ``GetType().Name``), ``Payload``, ``Entity`` (``EntityRef``: ``int Id``,
  ``bool IsNew``);
* ``src/SourceFlow/Messaging/IMetadata.cs`` -- ``Metadata``: ``Guid EventId``, ``bool IsReplay``,
  ``DateTime OccurredOn`` (``DateTime.UtcNow``), ``int SequenceNo``, ``Dictionary<string, object>
  Properties`` (never null: ``{}``);
* ``src/SourceFlow.Cloud.AWS/Messaging/Events/AwsSnsEventDispatcher.cs`` and
  ``src/SourceFlow/Messaging/Events/Event.cs`` -- an event is ``{"metadata", "name", "payload"}``
  where the payload *is* the entity (``IEntity``: ``int Id``); attributes ``EventType`` (assembly-
  qualified) and ``EventName`` (= ``Name``); ``Subject`` = ``Name``; no entity, sequence or id
  attributes. SourceFlow's saga raises events with a fresh ``Metadata`` (``SequenceNo`` 0, a new
  ``EventId``).

Inbound (:func:`decode`), a SourceFlow-shaped message is decoded with the native format's
strictness (:func:`~flowgate.reference.messages.loads_strict`, exact types, agreement of body and
attributes) plus SourceFlow's own ranges: ids and sequence numbers are .NET ``int`` (32-bit), the
event id a GUID as ``System.Text.Json`` writes it (lowercase ``D`` format), ``occurredOn`` the
round-trip format with up to 7 fractional digits (normalised to this bus's millisecond form).
Unknown JSON members are ignored, as ``System.Text.Json`` ignores them. The internal entity id is
the decimal string of the integer (``42`` -> ``"42"``).

Outbound (:func:`to_wire`, :func:`attributes`), the reference writes exactly what the two
dispatchers write. What SourceFlow's listeners then do with it, and where they cannot (its event
listener parses SNS notifications case-sensitively in camelCase, which SNS never sends), is in
``docs/sourceflow.md``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from flowgate.reference.errors import ConfigurationError, DecodeError, MissingAttribute
from flowgate.reference.messages import (
    Command,
    EntityRef,
    Event,
    Kind,
    Message,
    Metadata,
    TypeRegistry,
    loads_strict,
    payload_to_dict,
)

SOURCE_REPO = "CodeShayk/SourceFlow.Net"
#: the commit of SourceFlow.Net read for this module ("Release v2.0.0 with AWS cloud support",
#: then a wiki update)
SOURCE_COMMIT = "4ebbffafd51d27ece5fd5bafc14c3ee0c140b16f"
#: .NET ``int``: entity ids and sequence numbers
INT32_MAX = 2**31 - 1
#: a ``Guid`` as System.Text.Json writes it (``ToString("D")``, lowercase)
_GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
#: a UTC ``DateTime`` as System.Text.Json writes it (round-trip "O", trailing fraction zeros
#: trimmed, up to 7 digits), ``Z`` (``DateTimeKind.Utc``) or ``+00:00``
_DOTNET_STAMP = re.compile(r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,7}))?(Z|\+00:00)")
#: canonical decimal of a positive ``int`` (what ``Id.ToString()`` writes)
_DECIMAL = re.compile(r"[1-9][0-9]{0,9}")


def dotnet_name(alias: str) -> str:
    """``Type.Name`` of the type an alias names (what SourceFlow writes as the body's ``name`` and
    the ``EventName`` attribute): the last segment of the type part, nested types included
    (``Ns.Outer+Inner, Asm`` -> ``Inner``). Used to check the body against the attribute only."""
    type_part = alias.split(",", 1)[0]
    return type_part.rsplit(".", 1)[-1].rsplit("+", 1)[-1]


def is_int32_id(value: object) -> bool:
    """A SourceFlow entity id on the wire: a JSON integer (not a boolean, not ``42.0``) within
    1..2^31-1. ``0`` is SourceFlow's "new entity, no id yet" and addresses no entity here."""
    return type(value) is int and 1 <= value <= INT32_MAX


def entity_id_of(value: object, where: str) -> str:
    """The internal (string) entity id of a SourceFlow integer id; :class:`DecodeError` otherwise."""
    if not is_int32_id(value):
        raise DecodeError(f"{where} must be a JSON integer within 1..{INT32_MAX} (SourceFlow int id)")
    return str(value)


def representable(entity_id: str) -> bool:
    """True when an internal entity id can be written as a SourceFlow ``int`` (``"42"``; not
    ``"042"``, ``"o-1"`` or anything above 2^31-1)."""
    return _DECIMAL.fullmatch(entity_id) is not None and int(entity_id) <= INT32_MAX


# ------------------------------------------------------------------------------------ inbound
def _stamp(value: object) -> str:
    if not isinstance(value, str):
        raise DecodeError("metadata.occurredOn has the wrong type")
    match = _DOTNET_STAMP.fullmatch(value)
    if match is None:
        raise DecodeError("metadata.occurredOn must be a UTC .NET round-trip timestamp")
    head, fraction = match.group(1), match.group(2) or ""
    try:
        datetime.fromisoformat(head)
    except ValueError as exc:
        raise DecodeError(f"metadata.occurredOn is not a valid timestamp: {exc}") from exc
    return f"{head}.{(fraction + '000')[:3]}Z"


def _metadata(raw: object, kind: Kind) -> Metadata:
    if not isinstance(raw, dict):
        raise DecodeError(
            "message lacks 'metadata'" if raw is None else "message.metadata has the wrong type"
        )
    event_id = raw.get("eventId")
    if not isinstance(event_id, str) or _GUID.fullmatch(event_id) is None:
        raise DecodeError("metadata.eventId must be a GUID (lowercase, 8-4-4-4-12)")
    is_replay = raw.get("isReplay", False)
    if not isinstance(is_replay, bool):
        raise DecodeError("metadata.isReplay must be a boolean")
    seq = raw.get("sequenceNo")
    low = 1 if kind == "command" else 0  # SourceFlow's sagas raise events with SequenceNo 0
    if type(seq) is not int or not low <= seq <= INT32_MAX:
        raise DecodeError(f"metadata.sequenceNo must be an integer within {low}..{INT32_MAX}")
    props = raw.get("properties")
    if props is None:
        props = {}
    if not isinstance(props, dict) or not all(isinstance(v, str) for v in props.values()):
        raise DecodeError("metadata.properties must map strings to strings (other values are not supported)")
    return Metadata(
        event_id=event_id,
        occurred_on=_stamp(raw.get("occurredOn")),
        sequence_no=seq,
        is_replay=is_replay,
        properties=props,
    )


def decode(body: str, attrs: Mapping[str, str], kind: Kind, alias: str, registry: TypeRegistry) -> Message:
    """A SourceFlow-shaped command or event whose ``CommandType``/``EventType`` is ``alias`` (an
    exact, registered alias: :meth:`TypeRegistry.by_alias`). Every refusal is a
    :class:`~flowgate.reference.errors.MessageError` (poison with its reason)."""
    cls = registry.by_alias(alias, kind)
    obj = loads_strict(body)
    if not isinstance(obj, dict):
        raise DecodeError("message body must be a JSON object")
    expected = dotnet_name(alias)
    if obj.get("name") != expected:
        raise DecodeError(
            f"body name contradicts the {'CommandType' if kind == 'command' else 'EventType'} alias"
        )
    payload_obj = obj.get("payload")
    meta = _metadata(obj.get("metadata"), kind)
    if attrs.get("EventId", meta.event_id) != meta.event_id:
        raise DecodeError("body contradicts the EventId attribute")
    if kind == "command":
        entity = obj.get("entity")
        if not isinstance(entity, dict):
            raise DecodeError("message.entity must be an object")
        entity_id = entity_id_of(entity.get("id"), "entity.id")
        is_new = entity.get("isNew", False)
        if not isinstance(is_new, bool):
            raise DecodeError("entity.isNew must be a boolean")
        if "EntityId" not in attrs:
            raise MissingAttribute("EntityId attribute missing")
        if "SequenceNo" not in attrs:
            raise MissingAttribute("SequenceNo attribute missing")
    else:
        if not isinstance(payload_obj, dict):
            raise DecodeError(f"payload of {cls.message_name} must be an object")
        entity_id = entity_id_of(payload_obj.get("id"), "payload.id")
        if "EventName" not in attrs:
            raise MissingAttribute("EventName attribute missing")
        if attrs["EventName"] != expected:
            raise DecodeError("EventName attribute contradicts the EventType alias")
    if attrs.get("EntityId", entity_id) != entity_id:
        raise DecodeError("body contradicts the EntityId attribute")
    if attrs.get("SequenceNo", str(meta.sequence_no)) != str(meta.sequence_no):
        raise DecodeError("body contradicts the SequenceNo attribute")
    payload = registry.payload_from_dict(cls.message_name, payload_obj, kind)
    if kind == "command":
        return Command(payload=payload, entity=EntityRef(entity_id, is_new), metadata=meta)
    return Event(payload=payload, entity_id=entity_id, metadata=meta)


# ----------------------------------------------------------------------------------- outbound
def _emittable(message: Message, registry: TypeRegistry) -> str:
    alias = registry.alias_for(type(message.payload))
    if alias is None:
        raise ConfigurationError(f"no SourceFlow alias for {message.name} (TypeRegistry.alias)")
    if not representable(message.entity_id):
        raise ConfigurationError(
            f"entity id {message.entity_id!r} of {message.name} is not a SourceFlow int (1..{INT32_MAX})"
        )
    if _GUID.fullmatch(message.metadata.event_id) is None:
        raise ConfigurationError(f"event id {message.metadata.event_id!r} of {message.name} is not a GUID")
    if not 0 <= message.metadata.sequence_no <= INT32_MAX:
        raise ConfigurationError(f"sequence number of {message.name} is not a SourceFlow int")
    return alias


def to_wire(message: Message, registry: TypeRegistry) -> dict[str, Any]:
    """The JSON object SourceFlow's dispatchers write for ``message`` (member order as
    System.Text.Json writes ``Command<T>`` / ``Event<T>``: metadata, name, payload[, entity]).

    :class:`ConfigurationError` when the message cannot be written in SourceFlow's shape (no
    alias, an entity id that is not a positive ``int``, an event id that is not a GUID)."""
    alias = _emittable(message, registry)
    meta = message.metadata
    out: dict[str, Any] = {
        "metadata": {
            "eventId": meta.event_id,
            "isReplay": meta.is_replay,
            "occurredOn": meta.occurred_on,
            "sequenceNo": meta.sequence_no,
            "properties": dict(meta.properties),
        },
        "name": dotnet_name(alias),
    }
    payload = payload_to_dict(message.payload)
    entity_id = int(message.entity_id)
    if isinstance(message, Command):
        out["payload"] = payload
        out["entity"] = {"id": entity_id, "isNew": message.entity.is_new}
    else:
        if "id" in payload and payload["id"] != entity_id:
            raise ConfigurationError(f"{message.name}.id contradicts the entity id (SourceFlow's IEntity.Id)")
        out["payload"] = {"id": entity_id, **payload}
    return out


def encode(message: Message, registry: TypeRegistry) -> str:
    """Compact JSON text of :func:`to_wire` (deterministic: a resend has the same bytes, so the
    destination's content-based deduplication drops it within 5 minutes)."""
    return json.dumps(to_wire(message, registry), separators=(",", ":"), ensure_ascii=False)


def attributes(message: Message, registry: TypeRegistry) -> dict[str, Any]:
    """Exactly the message attributes SourceFlow's dispatchers write (all ``String``)."""
    alias = _emittable(message, registry)

    def attr(value: str) -> dict[str, str]:
        return {"DataType": "String", "StringValue": value}

    if isinstance(message, Command):
        return {
            "CommandType": attr(alias),
            "EntityId": attr(message.entity_id),
            "SequenceNo": attr(str(message.metadata.sequence_no)),
        }
    return {"EventType": attr(alias), "EventName": attr(dotnet_name(alias))}
