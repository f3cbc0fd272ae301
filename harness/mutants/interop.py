"""Mutants of the SourceFlow.Net interop mode (``docs/sourceflow.md``): patch builders used by
:mod:`flowgate.harness.mutants.catalog`. Each is killed by ``properties/test_sourceflow.py``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from unittest import mock

from flowgate.harness.mutants.model import Mutant, P
from flowgate.reference import sourceflow
from flowgate.reference.config import BusOptions
from flowgate.reference.errors import DecodeError, UnknownMessageType
from flowgate.reference.messages import ALIAS_FORMAT, Kind, Message, Payload, TypeRegistry, loads_strict

_by_alias = TypeRegistry.by_alias
_to_wire = sourceflow.to_wire
_decode = sourceflow.decode


def alias_by_class_name() -> list[Any]:
    """An alias that is not registered still resolves when its class name (the last segment of
    the type part) is some alias's: ``Evil.Commands.PlaceOrder, Evil`` is taken for the
    registered ``Shop.Orders.Commands.PlaceOrder, Shop.Orders, ...`` -- resolution by suffix."""

    def by_alias(self: TypeRegistry, dotnet_name: str, kind: Kind) -> type[Payload]:
        try:
            return _by_alias(self, dotnet_name, kind)
        except UnknownMessageType:
            wanted = sourceflow.dotnet_name(dotnet_name)
            for name, (k, cls) in self._aliases.items():
                if k == kind and sourceflow.dotnet_name(name) == wanted:
                    return cls
            raise

    return [mock.patch.object(TypeRegistry, "by_alias", by_alias)]


def int_id_coerced() -> list[Any]:
    """A SourceFlow entity id is coerced with ``int(...)`` instead of being a JSON integer:
    ``"42"``, ``42.0`` and ``true`` are all taken as entity ``42`` / ``1``."""

    def entity_id_of(value: object, where: str) -> str:
        try:
            n = int(value)  # type: ignore[call-overload]
        except (TypeError, ValueError) as exc:
            raise DecodeError(f"{where} is not an integer") from exc
        if not 1 <= n <= sourceflow.INT32_MAX:
            raise DecodeError(f"{where} out of range")
        return str(n)

    return [mock.patch.object(sourceflow, "entity_id_of", entity_id_of)]


def interop_on_by_default() -> list[Any]:
    """``BusOptions.sourceflow_interop`` defaults to True: every bus accepts SourceFlow's shape."""
    orig_init = BusOptions.__init__

    def init(self: BusOptions, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("sourceflow_interop", True)
        orig_init(self, *args, **kwargs)

    return [mock.patch.object(BusOptions, "__init__", init)]


def emitted_id_as_string() -> list[Any]:
    """The emitter writes ``entity.id`` (and an event's ``payload.id``) as the string it is held
    as internally, not as SourceFlow's ``int``: System.Text.Json refuses the command."""

    def to_wire(message: Message, registry: TypeRegistry) -> dict[str, Any]:
        out = _to_wire(message, registry)
        if "entity" in out:
            out["entity"]["id"] = str(out["entity"]["id"])
        else:
            out["payload"]["id"] = str(out["payload"]["id"])
        return out

    return [mock.patch.object(sourceflow, "to_wire", to_wire)]


def entity_attribute_unchecked() -> list[Any]:
    """The ``EntityId`` attribute of a SourceFlow message is not compared with the body."""

    return [mock.patch.object(sourceflow, "decode", _decode_without_entity)]


def _decode_without_entity(
    body: str, attrs: Mapping[str, str], kind: Kind, alias: str, registry: TypeRegistry
) -> Message:
    """:func:`flowgate.reference.sourceflow.decode` with the ``EntityId`` attribute replaced by the body's."""
    obj = loads_strict(body)
    if isinstance(obj, dict):
        holder = obj.get("entity") if kind == "command" else obj.get("payload")
        if isinstance(holder, dict) and "id" in holder and "EntityId" in attrs:
            attrs = {**attrs, "EntityId": str(holder["id"])}
    return _decode(body, attrs, kind, alias, registry)


def occurred_on_not_normalised() -> list[Any]:
    """``occurredOn`` is kept as SourceFlow wrote it (up to 7 fraction digits): the events the
    reference raises for the command carry it, and the native decoder (at most 6) refuses them."""
    orig = sourceflow._stamp

    def stamp(value: object) -> str:
        orig(value)  # still validated
        assert isinstance(value, str)
        return value

    return [mock.patch.object(sourceflow, "_stamp", stamp)]


def event_sequence_zero_refused() -> list[Any]:
    """SourceFlow events need ``sequenceNo`` >= 1 like commands: every event a SourceFlow saga
    raises (``SequenceNo`` 0) is dead-lettered."""
    orig = sourceflow._metadata

    def metadata(raw: object, kind: Kind) -> Any:
        return orig(raw, "command")

    return [mock.patch.object(sourceflow, "_metadata", metadata)]


def interop_off_without_reason() -> list[Any]:
    """With interop off a SourceFlow alias is refused like any unknown name: the dead letter no
    longer says that the message is SourceFlow's and that the mode is off."""
    from flowgate.reference.listener import SqsListener

    def is_sourceflow(self: SqsListener, type_name: str) -> bool:
        return (
            not self.registry.has_name(type_name)
            and self.options.sourceflow_interop
            and (self.registry.has_alias(type_name) or ALIAS_FORMAT.fullmatch(type_name) is not None)
        )

    return [mock.patch.object(SqsListener, "_is_sourceflow", is_sourceflow)]


SF = P + "test_sourceflow.py::"
SF_PROPERTY = SF + "test_sourceflow_interop_holds_with_hostile_input"
SF_ALL = SF + "test_every_hostile_kind_beside_every_kind_of_valid_message"
SF_DEFAULTS = SF + "test_a_bus_left_at_its_defaults_refuses_sourceflow_messages"
SF_EMIT = SF + "test_what_the_reference_emits_sourceflows_listener_parses"

MUTANTS: tuple[Mutant, ...] = (
    # SourceFlow.Net interop mode (docs/sourceflow.md)
    Mutant(
        "sourceflow-alias-by-class-name",
        "an unregistered assembly-qualified name resolves when its class name matches an alias's",
        (SF_ALL, SF_PROPERTY),
        (),
        alias_by_class_name,
    ),
    Mutant(
        "sourceflow-int-id-coerced",
        'a SourceFlow entity id is coerced with int(): "42", 42.0 and true are taken as ids',
        (SF_ALL, SF_PROPERTY),
        (),
        int_id_coerced,
    ),
    Mutant(
        "sourceflow-interop-on-by-default",
        "BusOptions.sourceflow_interop defaults to True",
        (SF_DEFAULTS,),
        (),
        interop_on_by_default,
    ),
    Mutant(
        "sourceflow-emits-string-id",
        "the SourceFlow emitter writes entity.id as a string, which System.Text.Json refuses for int",
        (SF_EMIT,),
        (),
        emitted_id_as_string,
    ),
    Mutant(
        "sourceflow-entity-attribute-unchecked",
        "the EntityId attribute of a SourceFlow message is not compared with the body",
        (SF_ALL, SF_PROPERTY),
        (),
        entity_attribute_unchecked,
    ),
    Mutant(
        "sourceflow-occurred-on-kept",
        "occurredOn kept with SourceFlow's 7 fraction digits: the reference's own events for it are refused",
        (SF_ALL, SF_PROPERTY),
        (),
        occurred_on_not_normalised,
    ),
    Mutant(
        "sourceflow-event-seq-zero-refused",
        "SourceFlow events need sequenceNo >= 1: every event a SourceFlow saga raises is dead-lettered",
        (SF_ALL, SF_PROPERTY),
        (),
        event_sequence_zero_refused,
    ),
    Mutant(
        "sourceflow-off-without-reason",
        "with interop off a SourceFlow alias is refused as an unknown name, without saying why",
        (SF_DEFAULTS,),
        (),
        interop_off_without_reason,
    ),
)
