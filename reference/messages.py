"""Commands, events, their metadata, the explicit type registry and the JSON wire codec.

Wire format (SourceFlow.Net v2 compatible where sound, see ``docs/reference.md``)::

    {"name": "PlaceOrder", "entity": {"id": "o-1", "isNew": true}, "payload": {...},
     "metadata": {"eventId": "<uuid>", "isReplay": false, "occurredOn": "2026-11-21T10:00:00.000Z",
                  "sequenceNo": 1, "correlationId": "c-1", "causationId": null, "properties": {}}}

Events carry ``"entity": {"id": ...}`` (no ``isNew``) as an extension and ``causationId`` = the
eventId of the command that caused them. Types are resolved **only** through a
:class:`TypeRegistry` filled explicitly by the application: a name on the wire is never turned
into an import.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import typing
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal

from reference.errors import ConfigurationError, DecodeError, UnknownMessageType
from reference.hooks import Clock, SystemClock

Kind = Literal["command", "event"]


class Payload:
    """Base class of every registered payload; subclasses are frozen dataclasses.

    ``message_name`` is the stable registry name used on the wire (``CommandType`` /
    ``EventType`` attributes and the body's ``name``); it defaults to the class name.
    """

    message_name: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.__dict__.get("message_name"):
            cls.message_name = cls.__name__


@dataclass(frozen=True)
class EntityRef:
    """The entity a command targets; ids are strings (SourceFlow uses ints)."""

    id: str
    is_new: bool = False


@dataclass(frozen=True)
class Metadata:
    """Identity, ordering and tracing data of a message.

    ``sequence_no`` 0 means "not yet assigned" (the :class:`~reference.bus.CommandBus` assigns
    the next per-entity number on publish).
    """

    event_id: str
    occurred_on: str
    sequence_no: int = 0
    correlation_id: str = ""
    is_replay: bool = False
    causation_id: str | None = None
    properties: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Command:
    """A request to change one entity; handled by every saga that handles its payload type."""

    payload: Payload
    entity: EntityRef
    metadata: Metadata

    @property
    def name(self) -> str:
        return type(self.payload).message_name

    @property
    def entity_id(self) -> str:
        return self.entity.id

    @property
    def event_id(self) -> str:
        return self.metadata.event_id


@dataclass(frozen=True)
class Event:
    """A fact raised by a saga; projected by views and observed by aggregates."""

    payload: Payload
    entity_id: str
    metadata: Metadata

    @property
    def name(self) -> str:
        return type(self.payload).message_name

    @property
    def event_id(self) -> str:
        return self.metadata.event_id


Message = Command | Event


def iso_now(clock: Clock) -> str:
    """ISO-8601 UTC with millisecond precision and a ``Z`` suffix."""
    stamp = datetime.fromtimestamp(clock.now(), tz=UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


def new_command(
    payload: Payload,
    entity_id: str,
    *,
    is_new: bool = False,
    correlation_id: str | None = None,
    sequence_no: int = 0,
    event_id: str | None = None,
    clock: Clock | None = None,
) -> Command:
    """Build a command with a fresh random identity (the identity is then fixed for all resends)."""
    eid = event_id or str(uuid.uuid4())
    return Command(
        payload=payload,
        entity=EntityRef(entity_id, is_new),
        metadata=Metadata(
            event_id=eid,
            occurred_on=iso_now(clock or SystemClock()),
            sequence_no=sequence_no,
            correlation_id=correlation_id or eid,
        ),
    )


def derived_event_id(command_event_id: str, index: int, name: str) -> str:
    """Deterministic event id: uuid5(command eventId, f"{index}:{name}").

    Re-running or replaying the same command yields the same event ids, so a re-publish after a
    crash is deduplicated by FIFO topics and by the views' idempotency keys.
    """
    try:
        namespace = uuid.UUID(command_event_id)
    except ValueError:
        namespace = uuid.uuid5(uuid.NAMESPACE_URL, command_event_id)
    return str(uuid.uuid5(namespace, f"{index}:{name}"))


def event_for(command: Command, index: int, payload: Payload) -> Event:
    """The ``index``-th event raised while handling ``command`` (ids, seq and time derived from it)."""
    meta = command.metadata
    return Event(
        payload=payload,
        entity_id=command.entity_id,
        metadata=Metadata(
            event_id=derived_event_id(meta.event_id, index, type(payload).message_name),
            occurred_on=meta.occurred_on,
            sequence_no=meta.sequence_no,
            correlation_id=meta.correlation_id,
            is_replay=meta.is_replay,
            causation_id=meta.event_id,
        ),
    )


_SIMPLE = {str: (str,), int: (int,), float: (int, float), bool: (bool,)}


class TypeRegistry:
    """Explicit name -> payload class map. Unknown names are rejected, nothing is imported."""

    def __init__(self) -> None:
        self._types: dict[str, tuple[Kind, type[Payload]]] = {}

    def __repr__(self) -> str:
        return f"TypeRegistry({sorted(self._types)})"

    def register(self, kind: Kind, *classes: type[Payload]) -> TypeRegistry:
        for cls in classes:
            if not (isinstance(cls, type) and issubclass(cls, Payload) and dataclasses.is_dataclass(cls)):
                raise ConfigurationError(f"{cls!r} must be a dataclass subclassing Payload")
            name = cls.message_name
            existing = self._types.get(name)
            if existing is not None and existing != (kind, cls):
                raise ConfigurationError(f"message name {name!r} registered twice")
            self._types[name] = (kind, cls)
        return self

    def commands(self, *classes: type[Payload]) -> TypeRegistry:
        return self.register("command", *classes)

    def events(self, *classes: type[Payload]) -> TypeRegistry:
        return self.register("event", *classes)

    def names(self, kind: Kind | None = None) -> list[str]:
        return sorted(n for n, (k, _) in self._types.items() if kind is None or k == kind)

    def lookup(self, name: str, kind: Kind | None = None) -> type[Payload]:
        """The payload class registered under ``name``; :class:`UnknownMessageType` otherwise."""
        entry = self._types.get(name)
        if entry is None or (kind is not None and entry[0] != kind):
            raise UnknownMessageType(f"unknown {kind or 'message'} type {name!r}")
        return entry[1]

    def kind_of(self, name: str) -> Kind:
        entry = self._types.get(name)
        if entry is None:
            raise UnknownMessageType(f"unknown message type {name!r}")
        return entry[0]

    def is_registered(self, cls: type[Payload], kind: Kind) -> bool:
        return self._types.get(cls.message_name) == (kind, cls)

    def payload_from_dict(self, name: str, data: Any, kind: Kind | None = None) -> Payload:
        """Validate ``data`` against the registered dataclass (fields present, simple types checked)."""
        cls = self.lookup(name, kind)
        if not isinstance(data, dict):
            raise DecodeError(f"payload of {name} must be an object")
        values: dict[str, Any] = {}
        for spec in _field_specs(cls):
            if spec.wire not in data:
                if spec.optional:
                    continue
                raise DecodeError(f"payload of {name} lacks field {spec.wire!r}")
            value = data[spec.wire]
            expected = spec.expected
            if expected and (
                not isinstance(value, expected) or (bool not in expected and isinstance(value, bool))
            ):
                raise DecodeError(f"payload field {name}.{spec.name} has the wrong type")
            values[spec.name] = value
        try:
            return cls(**values)
        except (TypeError, ValueError) as exc:
            raise DecodeError(f"invalid payload for {name}: {exc}") from exc


@dataclasses.dataclass(frozen=True)
class _FieldSpec:
    """How one payload field is read from the wire (computed once per payload class)."""

    name: str
    wire: str
    optional: bool
    expected: tuple[type, ...] | None


_FIELD_SPECS: dict[type, tuple[_FieldSpec, ...]] = {}


def _field_specs(cls: type) -> tuple[_FieldSpec, ...]:
    """The fields of a registered payload dataclass, their wire names and simple types.

    Cached per class: resolving the type hints costs more than decoding the message itself."""
    cached = _FIELD_SPECS.get(cls)
    if cached is not None:
        return cached
    hints = typing.get_type_hints(cls)
    specs = tuple(
        _FieldSpec(
            name=f.name,
            wire=camel(f.name),
            optional=f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING,
            expected=_SIMPLE.get(hints.get(f.name)),  # type: ignore[arg-type]
        )
        for f in dataclasses.fields(cls)
    )
    _FIELD_SPECS[cls] = specs
    return specs


@functools.cache
def camel(name: str) -> str:
    """snake_case field name -> camelCase wire name."""
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def payload_to_dict(payload: Payload) -> dict[str, Any]:
    """Payload fields as a camelCase JSON object."""
    return {camel(f.name): getattr(payload, f.name) for f in dataclasses.fields(payload)}  # type: ignore[arg-type]


def _metadata_to_dict(meta: Metadata, with_causation: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "eventId": meta.event_id,
        "isReplay": meta.is_replay,
        "occurredOn": meta.occurred_on,
        "sequenceNo": meta.sequence_no,
        "correlationId": meta.correlation_id,
        "properties": dict(meta.properties),
    }
    if with_causation:
        out["causationId"] = meta.causation_id
    return out


def to_wire(message: Message) -> dict[str, Any]:
    """The camelCase JSON object of a command or event."""
    if isinstance(message, Command):
        entity: dict[str, Any] = {"id": message.entity.id, "isNew": message.entity.is_new}
        return {
            "name": message.name,
            "entity": entity,
            "payload": payload_to_dict(message.payload),
            "metadata": _metadata_to_dict(message.metadata, with_causation=False),
        }
    return {
        "name": message.name,
        "entity": {"id": message.entity_id},
        "payload": payload_to_dict(message.payload),
        "metadata": _metadata_to_dict(message.metadata, with_causation=True),
    }


def encode(message: Message) -> str:
    """Compact, deterministic JSON text of ``message``."""
    return json.dumps(to_wire(message), separators=(",", ":"), ensure_ascii=False)


def _req(obj: Mapping[str, Any], key: str, typ: type | tuple[type, ...], where: str) -> Any:
    if key not in obj:
        raise DecodeError(f"{where} lacks {key!r}")
    value = obj[key]
    if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
        raise DecodeError(f"{where}.{key} has the wrong type")
    return value


def from_wire(obj: Any, registry: TypeRegistry) -> Message:
    """Parse a wire object; raises :class:`DecodeError` / :class:`UnknownMessageType`."""
    if not isinstance(obj, dict):
        raise DecodeError("message body must be a JSON object")
    name = _req(obj, "name", str, "message")
    kind = registry.kind_of(name)
    payload = registry.payload_from_dict(name, obj.get("payload"), kind)
    entity = _req(obj, "entity", dict, "message")
    entity_id = _req(entity, "id", str, "entity")
    raw = _req(obj, "metadata", dict, "message")
    props = raw.get("properties") or {}
    if not isinstance(props, dict) or not all(isinstance(v, str) for v in props.values()):
        raise DecodeError("metadata.properties must map strings to strings")
    causation = raw.get("causationId")
    if causation is not None and not isinstance(causation, str):
        raise DecodeError("metadata.causationId must be a string")
    meta = Metadata(
        event_id=_req(raw, "eventId", str, "metadata"),
        occurred_on=_req(raw, "occurredOn", str, "metadata"),
        sequence_no=_req(raw, "sequenceNo", int, "metadata"),
        correlation_id=str(raw.get("correlationId") or ""),
        is_replay=bool(raw.get("isReplay", False)),
        causation_id=causation,
        properties=props,
    )
    if kind == "command":
        is_new = entity.get("isNew", False)
        if not isinstance(is_new, bool):
            raise DecodeError("entity.isNew must be a boolean")
        return Command(payload=payload, entity=EntityRef(entity_id, is_new), metadata=meta)
    return Event(payload=payload, entity_id=entity_id, metadata=meta)


def decode(body: str | bytes, registry: TypeRegistry) -> Message:
    """Parse JSON text into a command or event; every failure is a :class:`MessageError`."""
    try:
        obj = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise DecodeError(f"body is not JSON: {exc}") from exc
    return from_wire(obj, registry)
