"""Commands, events, their metadata, the explicit type registry and the JSON wire codec.

Wire format (SourceFlow.Net v2's ``Command<T>`` layout, not its wire: string ids, registry names;
see ``docs/reference.md``; SourceFlow's exact shape is the opt-in interop mode,
:mod:`flowgate.reference.sourceflow`, ``docs/sourceflow.md``)::

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
import math
import re
import typing
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal

from flowgate.reference.errors import ConfigurationError, DecodeError, UnknownMessageType
from flowgate.reference.hooks import SYSTEM_RANDOMNESS, Clock, Randomness, SystemClock

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

    ``sequence_no`` 0 means "not yet assigned" (the :class:`~flowgate.reference.bus.CommandBus` assigns
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
    randomness: Randomness = SYSTEM_RANDOMNESS,
) -> Command:
    """Build a command with a fresh random identity (the identity is then fixed for all resends):
    ``event_id``, else a version 4 UUID drawn from ``randomness``."""
    eid = event_id or randomness.uuid4()
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
            # contract v1.4 section 3: an event always carries a correlation id -- the command's, or
            # the command's eventId when the command came without one
            correlation_id=meta.correlation_id or meta.event_id,
            is_replay=meta.is_replay,
            causation_id=meta.event_id,
        ),
    )


#: what :meth:`TypeRegistry.alias` accepts: ``Namespace.Type`` (nested types with ``+``), a comma
#: and a space, the assembly name, then optional ``, Key=Value`` parts (Version, Culture,
#: PublicKeyToken). Generic types (backticks, brackets) are not aliasable.
ALIAS_FORMAT = re.compile(
    r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*(?:\+[A-Za-z_][A-Za-z0-9_]*)*"
    r", [A-Za-z_][A-Za-z0-9_.\-]*(?:, [A-Za-z]+=[A-Za-z0-9_.\-]+)*"
)


@dataclass(frozen=True)
class FollowUp:
    """A command a saga (or an aggregate) issues as part of its decision (docs/decisions.md D33).

    Returned among the event payloads of ``decide`` (``Saga.decide``) or ``react``
    (:class:`~flowgate.reference.bus.Aggregate`): the processor turns it into a :class:`Command` for
    ``entity_id`` with an id derived from the message that caused it (:func:`follow_up_command`),
    and the storage commits it with the effect (numbered by the store, recorded in the producer
    outbox), so it is sent at least once and exactly one command exists per decision."""

    payload: Payload
    entity_id: str
    is_new: bool = False


def follow_up_command(cause: Command | Event, index: int, follow: FollowUp) -> Command:
    """The ``index``-th follow-up command of ``cause``: eventId = uuid5(cause eventId,
    ``f"{index}:command:{name}"``) (never one of the cause's event ids), ``sequenceNo`` 0 (the
    store numbers it in the commit), the cause's correlation id (or its eventId), the cause's
    ``occurredOn`` (deterministic: a redelivery or a replay builds the same command). No
    ``causationId``: a command's wire form has none (contract section 3); the derived id and the
    ``issue`` observation name the cause."""
    meta = cause.metadata
    name = type(follow.payload).message_name
    return Command(
        payload=follow.payload,
        entity=EntityRef(follow.entity_id, follow.is_new),
        metadata=Metadata(
            event_id=derived_event_id(meta.event_id, index, f"command:{name}"),
            occurred_on=meta.occurred_on,
            sequence_no=0,
            correlation_id=meta.correlation_id or meta.event_id,
            is_replay=meta.is_replay,
        ),
    )


_SIMPLE = {str: (str,), int: (int,), float: (int, float), bool: (bool,)}
#: the one container type a payload field may have: a JSON array of strings (e.g. a command log)
_STRINGS = tuple[str, ...]


class TypeRegistry:
    """Explicit name -> payload class map. Unknown names are rejected, nothing is imported."""

    def __init__(self) -> None:
        self._types: dict[str, tuple[Kind, type[Payload]]] = {}
        #: exact .NET assembly-qualified name -> (kind, class); see :meth:`alias`
        self._aliases: dict[str, tuple[Kind, type[Payload]]] = {}
        #: class -> the alias it is emitted under (the first one registered for it)
        self._emitted_as: dict[type[Payload], str] = {}

    def __repr__(self) -> str:
        return f"TypeRegistry({sorted(self._types)})"

    # -- SourceFlow.Net aliases (interop mode, docs/sourceflow.md) -------------------------------
    def alias(self, dotnet_name: str, cls: type[Payload]) -> TypeRegistry:
        """Accept ``dotnet_name`` -- a .NET assembly-qualified type name exactly as
        ``Type.AssemblyQualifiedName`` writes it, e.g. ``"Shop.Commands.PlaceOrder, Shop,
        Version=1.0.0.0, Culture=neutral, PublicKeyToken=null"`` -- as the ``CommandType`` /
        ``EventType`` of the already registered ``cls`` (SourceFlow interop mode only).

        The name is a lookup key and nothing else: it is matched **exactly** (no trimming, no case
        folding, no match on the class name or on a suffix), never parsed into a module, class or
        anything that could be imported or called. The format is checked only to catch typos
        (:data:`ALIAS_FORMAT`: a non-generic type name, then the assembly and its optional
        ``Key=Value`` parts). A .NET type whose assembly version changes needs a second alias.
        The first alias registered for ``cls`` is the one emitted for it."""
        kind = self._kind_of_class(cls)
        if not isinstance(dotnet_name, str) or ALIAS_FORMAT.fullmatch(dotnet_name) is None:
            raise ConfigurationError(
                f"{dotnet_name!r} is not a .NET assembly-qualified type name (Namespace.Type, Assembly[, Key=Value...])"
            )
        existing = self._aliases.get(dotnet_name)
        if existing is not None and existing != (kind, cls):
            raise ConfigurationError(f"alias {dotnet_name!r} registered twice")
        self._aliases[dotnet_name] = (kind, cls)
        self._emitted_as.setdefault(cls, dotnet_name)
        return self

    def _kind_of_class(self, cls: type[Payload]) -> Kind:
        name = getattr(cls, "message_name", None)
        entry = self._types.get(name) if isinstance(name, str) else None
        if entry is None or entry[1] is not cls:
            raise ConfigurationError(f"{cls!r} must be registered before it gets an alias")
        return entry[0]

    def by_alias(self, dotnet_name: str, kind: Kind) -> type[Payload]:
        """The class aliased to exactly ``dotnet_name`` as a ``kind``; :class:`UnknownMessageType`
        otherwise (an unknown name is never loaded, imported or guessed from its parts)."""
        entry = self._aliases.get(dotnet_name)
        if entry is None or entry[0] != kind:
            raise UnknownMessageType(f"unknown SourceFlow {kind} type {dotnet_name!r} (no alias registered)")
        return entry[1]

    def has_name(self, name: str) -> bool:
        """True when ``name`` is a registry name (of any kind)."""
        return name in self._types

    def has_alias(self, dotnet_name: str) -> bool:
        return dotnet_name in self._aliases

    def alias_for(self, cls: type[Payload]) -> str | None:
        """The alias ``cls`` is emitted under in SourceFlow's shape, or None."""
        return self._emitted_as.get(cls)

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
            if spec.strings:
                if not (isinstance(value, list | tuple) and all(isinstance(x, str) for x in value)):
                    raise DecodeError(f"payload field {name}.{spec.name} must be an array of strings")
                values[spec.name] = tuple(value)
                continue
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
    strings: bool = False  # a ``tuple[str, ...]`` field: a JSON array of strings


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
            strings=hints.get(f.name) == _STRINGS,
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
    """Payload fields as a camelCase JSON object (a ``tuple[str, ...]`` field as a JSON array: a list)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(payload):  # type: ignore[arg-type]
        value = getattr(payload, f.name)
        out[camel(f.name)] = list(value) if isinstance(value, tuple) else value
    return out


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


#: Deepest JSON nesting a body may have (the wire format needs 3: message -> metadata ->
#: properties). Checked on the text *before* parsing, so a hostile body can never make the parser
#: (or any later recursive walk, e.g. ``json.dumps`` of a stored state) exhaust the stack.
MAX_JSON_DEPTH = 16
#: Limits of identifiers that become SQS MessageGroupId / MessageDeduplicationId values (entity id,
#: event id) or attributes (correlation and causation ids): 1..128 characters of the ASCII
#: alphanumerics and punctuation SQS allows. An entity id outside this set would commit its effect
#: and then fail every publish of its events (MessageGroupId = entity id) forever.
MAX_ID_CHARS = 128
_SQS_ID = re.compile(r"[A-Za-z0-9!\"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~]{1,128}")
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
#: ISO-8601 UTC as :func:`iso_now` writes it (fraction optional, ``Z`` or ``+00:00``)
_UTC_STAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|\+00:00)")
_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[{]|[\]}]', re.DOTALL)


def is_sqs_id(value: object) -> bool:
    """True for a string usable as an SQS MessageGroupId / MessageDeduplicationId."""
    return isinstance(value, str) and _SQS_ID.fullmatch(value) is not None


def _check_id(value: object, where: str) -> str:
    if not is_sqs_id(value):
        raise DecodeError(f"{where} must be 1..{MAX_ID_CHARS} SQS-allowed ASCII characters")
    assert isinstance(value, str)
    return value


def check_json_depth(text: str, limit: int = MAX_JSON_DEPTH) -> None:
    """:class:`DecodeError` if arrays/objects in ``text`` nest deeper than ``limit``.

    A linear scan that skips string literals; only run when the text holds more brackets than
    ``limit`` (a well-formed message has a handful)."""
    if text.count("[") + text.count("{") <= limit:
        return
    depth = 0
    for match in _TOKENS.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > limit:
                raise DecodeError(f"JSON nests deeper than {limit} levels")
        elif token in "]}":
            depth -= 1


def _unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise DecodeError(f"duplicate JSON key {key!r}")
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise DecodeError(f"JSON constant {name} is not allowed")


#: one decoder per pair of hooks (``json.loads`` with hooks builds a new one on every call)
_DECODERS: dict[tuple[Any, Any], json.JSONDecoder] = {}


def _strict_decoder() -> json.JSONDecoder:
    """The decoder :func:`loads_strict` parses with, for the hooks the module holds now."""
    hooks = (_unique_object, _no_constant)
    decoder = _DECODERS.get(hooks)
    if decoder is None:
        decoder = _DECODERS[hooks] = json.JSONDecoder(object_pairs_hook=hooks[0], parse_constant=hooks[1])
    return decoder


def _check_values(obj: Any) -> None:
    """Walk a parsed body without recursion: every string (keys too) must be encodable as UTF-8
    and free of NUL (PostgreSQL text refuses it), every integer a signed 64-bit value (PostgreSQL
    BIGINT), every float finite (``1e999`` parses to infinity). The exact types JSON parses to
    are tested first (an ASCII string without NUL needs no further look); anything else takes
    the general path, in the same order."""
    stack = [obj]
    pop, push = stack.pop, stack.append
    while stack:
        value = pop()
        kind = type(value)
        if kind is str:
            if "\x00" in value or not value.isascii():
                _check_text(value)
        elif kind is dict:
            for key, item in value.items():
                if type(key) is not str or "\x00" in key or not key.isascii():
                    _check_text(key)
                push(item)
        elif kind is list:
            stack.extend(value)
        elif kind is int:
            if not INT64_MIN <= value <= INT64_MAX:
                raise DecodeError("integer outside the signed 64-bit range")
        else:
            _check_value(value, stack)


def _check_value(value: Any, stack: list[Any]) -> None:
    """:func:`_check_values` for one value of any type (pushing what it contains)."""
    if isinstance(value, str):
        _check_text(value)
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            raise DecodeError("integer outside the signed 64-bit range")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise DecodeError("number is not finite")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_text(key)
            stack.append(item)
    elif isinstance(value, list):
        stack.extend(value)


def _check_text(text: str) -> None:
    if "\x00" in text:
        raise DecodeError("text contains a NUL character")
    if text.isascii():
        return  # ASCII holds no surrogate: encodable (the common case, without the copy)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise DecodeError("text is not encodable as UTF-8 (lone surrogate)") from exc


def loads_strict(body: str | bytes) -> Any:
    """``json.loads`` for untrusted text; every refusal is a :class:`DecodeError`.

    Refuses: bytes that are not UTF-8, nesting deeper than :data:`MAX_JSON_DEPTH` (checked before
    parsing), duplicate object keys, the constants ``NaN``/``Infinity``, non-finite numbers,
    integers outside signed 64 bits, strings with NUL or lone surrogates."""
    if isinstance(body, bytes | bytearray):
        try:
            body = bytes(body).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DecodeError(f"body is not UTF-8: {exc}") from exc
    if not isinstance(body, str):
        raise DecodeError("body is not text")
    check_json_depth(body)
    try:
        if body.startswith("\ufeff"):  # as json.loads refuses it
            raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", body, 0)
        obj = _strict_decoder().decode(body)
    except DecodeError:
        raise
    except (ValueError, RecursionError) as exc:
        raise DecodeError(f"body is not JSON: {exc}") from exc
    _check_values(obj)
    return obj


def _req(obj: Mapping[str, Any], key: str, typ: type | tuple[type, ...], where: str) -> Any:
    if key not in obj:
        raise DecodeError(f"{where} lacks {key!r}")
    value = obj[key]
    if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
        raise DecodeError(f"{where}.{key} has the wrong type")
    return value


def _check_stamp(value: str) -> str:
    if _UTC_STAMP.fullmatch(value) is None:
        raise DecodeError("metadata.occurredOn must be an ISO-8601 UTC timestamp")
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise DecodeError(f"metadata.occurredOn is not a valid timestamp: {exc}") from exc
    return value


def from_wire(obj: Any, registry: TypeRegistry) -> Message:
    """Parse a wire object; raises :class:`DecodeError` / :class:`UnknownMessageType`.

    Strict (docs/contract.md section 4): ``entity.id`` and ``metadata.eventId`` are SQS ids
    (:func:`is_sqs_id`), ``correlationId``/``causationId`` too when non-empty, ``sequenceNo`` an
    integer within 1..2^63-1, ``isReplay``/``isNew`` JSON booleans, ``occurredOn`` an ISO-8601
    UTC timestamp, ``properties`` an object of strings."""
    if not isinstance(obj, dict):
        raise DecodeError("message body must be a JSON object")
    name = _req(obj, "name", str, "message")
    kind = registry.kind_of(name)
    payload = registry.payload_from_dict(name, obj.get("payload"), kind)
    entity = _req(obj, "entity", dict, "message")
    entity_id = _check_id(_req(entity, "id", str, "entity"), "entity.id")
    raw = _req(obj, "metadata", dict, "message")
    props = raw.get("properties")
    if props is None:
        props = {}
    if not isinstance(props, dict) or not all(isinstance(v, str) for v in props.values()):
        raise DecodeError("metadata.properties must map strings to strings")
    causation = raw.get("causationId")
    if causation is not None:
        _check_id(causation, "metadata.causationId")
    correlation = raw.get("correlationId")
    if correlation is None:
        correlation = ""
    elif correlation != "":
        _check_id(correlation, "metadata.correlationId")
    is_replay = raw.get("isReplay", False)
    if not isinstance(is_replay, bool):
        raise DecodeError("metadata.isReplay must be a boolean")
    sequence_no = _req(raw, "sequenceNo", int, "metadata")
    if not 1 <= sequence_no <= INT64_MAX:
        raise DecodeError("metadata.sequenceNo must be within 1..2^63-1")
    meta = Metadata(
        event_id=_check_id(_req(raw, "eventId", str, "metadata"), "metadata.eventId"),
        occurred_on=_check_stamp(_req(raw, "occurredOn", str, "metadata")),
        sequence_no=sequence_no,
        correlation_id=correlation,
        is_replay=is_replay,
        # a command's causation id is not part of its wire form (``to_wire`` writes it only for
        # events): checked above like any id, then ignored, so a decoded command re-encodes to itself
        causation_id=causation if kind == "event" else None,
        properties=props,
    )
    if kind == "command":
        is_new = entity.get("isNew", False)
        if not isinstance(is_new, bool):
            raise DecodeError("entity.isNew must be a boolean")
        return Command(payload=payload, entity=EntityRef(entity_id, is_new), metadata=meta)
    return Event(payload=payload, entity_id=entity_id, metadata=meta)


def decode(body: str | bytes, registry: TypeRegistry) -> Message:
    """Parse JSON text into a command or event; every failure is a :class:`MessageError`
    (:func:`loads_strict`, then :func:`from_wire`)."""
    return from_wire(loads_strict(body), registry)
