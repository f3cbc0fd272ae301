"""SourceFlow.Net v2 on the wire, modelled from its C# source: what its dispatchers send and
what its listeners would parse (``docs/sourceflow.md``).

Built field by field from ``CodeShayk/SourceFlow.Net`` at commit
:data:`flowgate.reference.sourceflow.SOURCE_COMMIT`; each function names the file it follows. Nothing here
uses :mod:`flowgate.reference.sourceflow` (the reference's own encoder/decoder): the tests judge the
reference against this model, so a bug shared by both would have to be made twice.

* :func:`command_send` -- the ``SendMessageRequest`` of ``AwsSqsCommandDispatcher.Dispatch``;
* :func:`event_publish` -- the ``PublishRequest`` of ``AwsSnsEventDispatcher.Dispatch``;
* :func:`parse_command` -- ``AwsSqsCommandListener.ProcessMessage`` up to the subscriber call;
* :func:`sns_notification` / :func:`parse_event` -- what SNS delivers to a (non-raw) SQS
  subscription, as SourceFlow's bootstrapper creates it, and ``AwsSnsEventListener.ProcessMessage``.

.NET types are modelled by :class:`DotNetType` (the members System.Text.Json would bind, in
camelCase); ``Type.GetType`` by a dictionary of the types the .NET process has loaded.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flowgate.harness.sim import SimAws
from flowgate.reference.config import BusConfiguration
from flowgate.reference.domain.orders import (
    ORDER_COMMANDS,
    ORDER_EVENTS,
    InventoryView,
    OrderSaga,
    OrderView,
    PaymentsView,
    order_registry,
)
from flowgate.reference.messages import TypeRegistry
from flowgate.reference.worker import Runtime, build_runtime

#: the assembly the modelled .NET application's message types live in
ASSEMBLY = "Shop.Orders, Version=1.0.0.0, Culture=neutral, PublicKeyToken=null"


def assembly_qualified(full_name: str, assembly: str = ASSEMBLY) -> str:
    """``Type.AssemblyQualifiedName`` of a non-generic type: ``"<Namespace.Type>, <assembly>"``."""
    return f"{full_name}, {assembly}"


#: the .NET names of the order domain's messages (commands in ``Shop.Orders.Commands``, events in
#: ``Shop.Orders.Events``; same simple names as the registry's)
ORDER_ALIASES: dict[str, str] = {
    **{c.message_name: assembly_qualified(f"Shop.Orders.Commands.{c.message_name}") for c in ORDER_COMMANDS},
    **{e.message_name: assembly_qualified(f"Shop.Orders.Events.{e.message_name}") for e in ORDER_EVENTS},
}


def interop_registry(registry: TypeRegistry | None = None) -> TypeRegistry:
    """The order registry with :data:`ORDER_ALIASES` registered (``TypeRegistry.alias``)."""
    reg = order_registry(registry)
    for cls in (*ORDER_COMMANDS, *ORDER_EVENTS):
        reg.alias(ORDER_ALIASES[cls.message_name], cls)
    return reg


def dotnet_utc_stamp(seconds: float) -> str:
    """``DateTime.UtcNow`` as System.Text.Json writes it: round-trip ``O`` format, 100 ns ticks,
    trailing zeros of the fraction trimmed (no fraction at all when it is 0), ``Z``."""
    whole = int(seconds)
    ticks = round((seconds - whole) * 10_000_000)
    if ticks >= 10_000_000:
        whole, ticks = whole + 1, 0
    head = datetime.fromtimestamp(whole, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f"{ticks:07d}".rstrip("0")
    return f"{head}.{fraction}Z" if fraction else f"{head}Z"


def _metadata(event_id: str | None, occurred_on: float, sequence_no: int) -> dict[str, Any]:
    # src/SourceFlow/Messaging/IMetadata.cs: EventId = Guid.NewGuid(), IsReplay = false,
    # OccurredOn = DateTime.UtcNow, SequenceNo (int), Properties = new Dictionary<string, object>()
    # -- never null, so WhenWritingNull keeps it: "properties": {}
    return {
        "eventId": event_id or str(uuid.uuid4()),
        "isReplay": False,
        "occurredOn": dotnet_utc_stamp(occurred_on),
        "sequenceNo": sequence_no,
        "properties": {},
    }


def command_send(
    name: str,
    entity_id: int,
    payload: Mapping[str, Any],
    sequence_no: int,
    *,
    is_new: bool = False,
    event_id: str | None = None,
    occurred_on: float = 1_796_000_000.25,
    command_type: str | None = None,
) -> dict[str, Any]:
    """The SendMessage parameters (minus ``QueueUrl``) of
    ``src/SourceFlow.Cloud.AWS/Messaging/Commands/AwsSqsCommandDispatcher.cs`` for a command
    ``class <name> : Command<TPayload>``.

    Body: ``JsonSerializer.Serialize(command, {CamelCase, WhenWritingNull})`` of
    ``src/SourceFlow/Messaging/Commands/Command.cs`` -- members in declaration order
    ``Metadata, Name, Payload, Entity`` (``Name = GetType().Name``; ``EntityRef { int Id, bool
    IsNew }``, ``ICommand.cs``). ``sequence_no`` is what its CommandBus assigned
    (``CommandStoreAdapter.GetNextSequenceNo``: last + 1, from 1). Attributes: ``CommandType`` =
    ``typeof(TCommand).AssemblyQualifiedName``, ``EntityId`` = ``Entity.Id.ToString()``,
    ``SequenceNo`` = ``Metadata.SequenceNo.ToString()``, all ``DataType = "String"``.
    ``MessageGroupId = Entity.Id.ToString()``; no ``MessageDeduplicationId`` (its bootstrapper
    creates FIFO queues with ``ContentBasedDeduplication = true``, ``AwsBusBootstrapper.cs``)."""
    body = {
        "metadata": _metadata(event_id, occurred_on, sequence_no),
        "name": name,
        "payload": dict(payload),
        "entity": {"id": entity_id, "isNew": is_new},
    }
    return {
        "MessageBody": json.dumps(body, separators=(",", ":")),
        "MessageAttributes": {
            "CommandType": {"DataType": "String", "StringValue": command_type or ORDER_ALIASES[name]},
            "EntityId": {"DataType": "String", "StringValue": str(entity_id)},
            "SequenceNo": {"DataType": "String", "StringValue": str(sequence_no)},
        },
        "MessageGroupId": str(entity_id),
    }


def event_publish(
    name: str,
    entity: Mapping[str, Any],
    *,
    event_id: str | None = None,
    occurred_on: float = 1_796_000_000.5,
    sequence_no: int = 0,
    event_type: str | None = None,
) -> dict[str, Any]:
    """The Publish parameters (minus ``TopicArn``) of
    ``src/SourceFlow.Cloud.AWS/Messaging/Events/AwsSnsEventDispatcher.cs`` for
    ``class <name> : Event<TEntity>`` (``src/SourceFlow/Messaging/Events/Event.cs``: members
    ``Metadata, Name, Payload``; the payload *is* the entity, ``IEntity { int Id }``, so ``entity``
    holds ``id`` and the entity's other members). A saga's ``Raise`` uses a fresh ``Metadata``:
    ``SequenceNo`` 0. Attributes ``EventType`` (assembly-qualified) and ``EventName`` (= ``Name``);
    ``Subject = Name``. SourceFlow creates standard topics (``CreateTopicAsync(name)``): no group,
    no deduplication id."""
    body = {"metadata": _metadata(event_id, occurred_on, sequence_no), "name": name, "payload": dict(entity)}
    return {
        "Message": json.dumps(body, separators=(",", ":")),
        "MessageAttributes": {
            "EventType": {"DataType": "String", "StringValue": event_type or ORDER_ALIASES[name]},
            "EventName": {"DataType": "String", "StringValue": name},
        },
        "Subject": name,
    }


def sns_notification(publish: Mapping[str, Any], topic_arn: str, message_id: str = "sns-1") -> str:
    """The SQS body SNS delivers for ``publish`` to a subscription without raw delivery (what
    SourceFlow's ``AwsBusBootstrapper.SubscribeQueueToTopicAsync`` creates): SNS's own
    PascalCase JSON, attributes as ``{"Type", "Value"}`` (signature fields left out)."""
    return json.dumps(
        {
            "Type": "Notification",
            "MessageId": message_id,
            "TopicArn": topic_arn,
            "Subject": publish.get("Subject", ""),
            "Message": publish["Message"],
            "Timestamp": "2026-12-04T20:00:00.000Z",
            "SignatureVersion": "1",
            "MessageAttributes": {
                k: {"Type": v["DataType"], "Value": v["StringValue"]}
                for k, v in publish.get("MessageAttributes", {}).items()
            },
        }
    )


# -------------------------------------------------------------------- the .NET side's parsing
class ParseFailure(Exception):
    """What SourceFlow's listener does instead of calling a subscriber: ``outcome`` is ``deleted``
    (it deletes the message: unresolvable type, JsonException) or ``left`` (it logs and returns:
    missing attribute, null result; the message comes back after its visibility timeout)."""

    def __init__(self, outcome: str, why: str) -> None:
        super().__init__(f"{outcome}: {why}")
        self.outcome = outcome
        self.why = why


@dataclass(frozen=True)
class DotNetType:
    """A .NET class as System.Text.Json binds it: camelCase member -> its type: ``"string"``,
    ``"int"`` (Int32), ``"long"``, ``"bool"``, ``"Guid"``, ``"DateTime"``, ``"object"`` (any
    JSON), or a nested :class:`DotNetType`."""

    name: str
    members: Mapping[str, Any]


_INT_LIMITS = {"int": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}
_STJ_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_STJ_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,7})?)?(Z|[+-]\d{2}:\d{2})?")


def _bind(value: Any, typ: Any, where: str, *, case_insensitive: bool = False) -> Any:
    """System.Text.Json's default binding (no ``AllowReadingFromString``): a number member takes
    only a JSON number that fits the type, with no fraction; a string only a JSON string; unknown
    JSON members are skipped; matching of member names is case-sensitive unless
    ``PropertyNameCaseInsensitive``. A mismatch is a ``JsonException`` (listener: ``deleted``)."""
    if value is None:
        return None
    if isinstance(typ, DotNetType):
        if not isinstance(value, dict):
            raise ParseFailure("deleted", f"JsonException: {where} is not an object")
        out: dict[str, Any] = {}
        for member, mtyp in typ.members.items():
            keys = [k for k in value if (k.lower() == member.lower() if case_insensitive else k == member)]
            if keys:
                out[member] = _bind(
                    value[keys[-1]], mtyp, f"{where}.{member}", case_insensitive=case_insensitive
                )
        return out
    if typ in _INT_LIMITS:
        low, high = _INT_LIMITS[typ]
        if type(value) is not int or not low <= value <= high:
            raise ParseFailure("deleted", f"JsonException: {where} is not an {typ}")
        return value
    if typ == "bool":
        if not isinstance(value, bool):
            raise ParseFailure("deleted", f"JsonException: {where} is not a bool")
        return value
    if typ in ("string", "Guid", "DateTime"):
        if not isinstance(value, str):
            raise ParseFailure("deleted", f"JsonException: {where} is not a string")
        pattern = {"Guid": _STJ_GUID, "DateTime": _STJ_DATETIME}.get(typ)
        if pattern is not None and pattern.fullmatch(value) is None:
            raise ParseFailure("deleted", f"JsonException: {where} is not a {typ}")
        return value
    return value  # "object"


#: ``src/SourceFlow/Messaging/IMetadata.cs``
METADATA = DotNetType(
    "Metadata",
    {
        "eventId": "Guid",
        "isReplay": "bool",
        "occurredOn": "DateTime",
        "sequenceNo": "int",
        "properties": "object",
    },
)
#: ``EntityRef`` (``src/SourceFlow/Messaging/Commands/ICommand.cs``)
ENTITY_REF = DotNetType("EntityRef", {"id": "int", "isNew": "bool"})


def command_type(name: str, payload: Mapping[str, Any]) -> DotNetType:
    """``class <name> : Command<TPayload>`` with ``TPayload``'s members ``payload``."""
    return DotNetType(
        name,
        {
            "metadata": METADATA,
            "name": "string",
            "payload": DotNetType(f"{name}Payload", payload),
            "entity": ENTITY_REF,
        },
    )


def event_type(name: str, entity: Mapping[str, Any]) -> DotNetType:
    """``class <name> : Event<TEntity>``; ``entity`` = ``TEntity``'s members besides ``id``."""
    return DotNetType(
        name,
        {"metadata": METADATA, "name": "string", "payload": DotNetType("Entity", {"id": "int", **entity})},
    )


def parse_command(message: Mapping[str, Any], loaded: Mapping[str, DotNetType]) -> dict[str, Any]:
    """``AwsSqsCommandListener.ProcessMessage`` up to ``Subscribe`` (the command object it would
    hand to its subscriber), for an SQS ``message`` (``Body``, ``MessageAttributes``) and the .NET
    types ``loaded`` by assembly-qualified name (``Type.GetType``). :class:`ParseFailure` where
    the listener gives up."""
    attrs = message.get("MessageAttributes") or {}
    if "CommandType" not in attrs:
        raise ParseFailure("left", "Message missing CommandType attribute")
    name = attrs["CommandType"].get("StringValue")
    typ = loaded.get(name)
    if typ is None:
        raise ParseFailure("deleted", f"Could not resolve command type: {name}")
    try:
        obj = json.loads(message["Body"])
    except ValueError as exc:
        raise ParseFailure("deleted", f"JsonException: {exc}") from exc
    if obj is None:
        raise ParseFailure("left", "Failed to deserialize command")
    bound = _bind(obj, typ, "$")
    assert isinstance(bound, dict)
    return bound


def parse_event(
    body: str, loaded: Mapping[str, DotNetType], *, case_insensitive: bool = False
) -> dict[str, Any]:
    """``AwsSnsEventListener.ProcessMessage`` up to ``Subscribe`` for the SQS body ``body``.

    It deserializes the body as ``SnsNotification`` (``SnsNotificationModels.cs``: ``Type,
    MessageId, TopicArn, Subject, Message, MessageAttributes{Type, Value}``) with the *camelCase,
    case-sensitive* options of its constructor: SNS's PascalCase keys bind to nothing, so
    ``MessageAttributes`` stays empty and the listener logs "SNS message missing EventType
    attribute" and returns (the message is left; SourceFlow's own unit test,
    ``tests/SourceFlow.Cloud.AWS.Tests/Unit/AwsSnsEventListenerTests.cs``, feeds it a camelCase
    notification that SNS never sends). ``case_insensitive=True`` models the one-line fix
    (``PropertyNameCaseInsensitive = true``)."""
    notification_type = DotNetType(
        "SnsNotification",
        {
            "type": "string",
            "messageId": "string",
            "topicArn": "string",
            "subject": "string",
            "message": "string",
            "messageAttributes": "object",
        },
    )
    try:
        raw = json.loads(body)
    except ValueError as exc:
        raise ParseFailure("deleted", f"Failed to parse SNS notification: {exc}") from exc
    note = _bind(raw, notification_type, "$", case_insensitive=case_insensitive)
    assert isinstance(note, dict)
    attributes = note.get("messageAttributes") or {}
    event_type_name = None
    if isinstance(attributes, dict):
        entry = attributes.get("EventType")
        if isinstance(entry, dict):
            attr = _bind(
                entry,
                DotNetType("SnsMessageAttribute", {"type": "string", "value": "string"}),
                "attr",
                case_insensitive=case_insensitive,
            )
            assert isinstance(attr, dict)
            event_type_name = attr.get("value")
    if not event_type_name:
        raise ParseFailure("left", "SNS message missing EventType attribute")
    typ = loaded.get(event_type_name)
    if typ is None:
        raise ParseFailure("deleted", f"Could not resolve event type: {event_type_name}")
    try:
        obj = json.loads(note.get("message") or "")
    except ValueError as exc:
        raise ParseFailure("deleted", f"JsonException: {exc}") from exc
    bound = _bind(obj, typ, "$")
    assert isinstance(bound, dict)
    return bound


# ---------------------------------------------------------------- a worker on the simulator
class InteropRig:
    """One worker on the simulator: a FIFO command queue (content-based dedup, as the
    bootstrapper creates it) and, for SourceFlow's events, a standard topic and queue."""

    def __init__(
        self, *, interop: bool | None = True, emit: bool = False, registry: TypeRegistry | None = None
    ) -> None:
        """``interop=None`` leaves ``sourceflow_interop`` at its default."""
        self.aws = SimAws(seed=11)
        switches: dict[str, bool] = {"sourceflow_emit": emit}
        if interop is not None:
            switches["sourceflow_interop"] = interop
        self.registry = registry or interop_registry()
        self.config = (
            BusConfiguration(self.registry)
            .send(*ORDER_COMMANDS)
            .to_queue("sf-orders.fifo")
            .raise_events(*ORDER_EVENTS)
            .to_topic("sf-order-events")
            .listen_to("sf-orders.fifo")
            .subscribe("sf-order-views")
            .to_topics("sf-order-events")
            .with_options(
                visibility_timeout=10,
                wait_time_seconds=0,
                max_receive_count=2,
                business_max_attempts=2,
                **switches,
            )
        )
        self.runtime: Runtime = build_runtime(
            self.config,
            sqs=self.aws.client("sqs"),
            sns=self.aws.client("sns"),
            sts=self.aws.client("sts"),
            sagas=[OrderSaga()],
            views=[OrderView(), InventoryView(), PaymentsView()],
            clock=self.aws.clock,
        )
        self.sqs = self.aws.client("sqs")
        self.sns = self.aws.client("sns")
        self.storage = self.runtime.processor.storage

    def url(self, queue: str) -> str:
        return self.runtime.resources.queue_urls[queue]

    def send_command(self, params: dict[str, Any]) -> None:
        self.sqs.send_message(QueueUrl=self.url("sf-orders.fifo"), **params)

    def publish_event(self, params: dict[str, Any]) -> None:
        self.sns.publish(TopicArn=self.runtime.resources.topic_arns["sf-order-events"], **params)

    def drain(self, rounds: int = 8) -> None:
        for _ in range(rounds):
            for listener in self.runtime.listeners:
                while listener.poll_once():
                    pass
            self.aws.clock.advance(11)

    def dead_letters(self, queue: str) -> list[dict[str, Any]]:
        dlq = self.runtime.resources.dlq_urls[queue]
        out: list[dict[str, Any]] = []
        while True:
            got = self.sqs.receive_message(
                QueueUrl=dlq, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
            )
            msgs = got.get("Messages", [])
            if not msgs:
                return out
            for m in msgs:
                out.append(m)
                self.sqs.delete_message(QueueUrl=dlq, ReceiptHandle=m["ReceiptHandle"])

    def reasons(self, queue: str) -> list[str]:
        return [m["MessageAttributes"]["DeadLetterReason"]["StringValue"] for m in self.dead_letters(queue)]
