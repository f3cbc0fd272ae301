"""Codec and registry."""

from __future__ import annotations

import dataclasses
import json
import typing

import pytest

from flowgate.reference.errors import ConfigurationError, DecodeError, UnknownMessageType
from flowgate.reference.messages import (
    Command,
    Event,
    Payload,
    TypeRegistry,
    decode,
    derived_event_id,
    encode,
    event_for,
    new_command,
    payload_to_dict,
)

SAMPLES = {str: "x-é", int: 7, float: 1.5, bool: True, tuple[str, ...]: ("a", "b-é")}


def sample(cls: type[Payload]) -> Payload:
    hints = typing.get_type_hints(cls)
    return cls(**{f.name: SAMPLES[hints[f.name]] for f in dataclasses.fields(cls)})  # type: ignore[arg-type]


def test_every_registered_type_round_trips(registry: TypeRegistry) -> None:
    assert registry.names(), "registry must not be empty"
    for name in registry.names():
        cls = registry.lookup(name)
        cmd = new_command(sample(cls), "entity-1", is_new=True, sequence_no=3, correlation_id="corr")
        message: Command | Event = (
            cmd if registry.kind_of(name) == "command" else event_for(cmd, 0, sample(cls))
        )
        text = encode(message)
        back = decode(text, registry)
        assert back == message
        assert encode(back) == text


def test_wire_shape_is_camel_case_sourceflow(registry: TypeRegistry) -> None:
    from flowgate.reference.domain import OrderPlaced, PlaceOrder

    cmd = new_command(PlaceOrder("c1", "SKU", 2, 100), "o-1", is_new=True, sequence_no=1)
    obj = json.loads(encode(cmd))
    assert obj["name"] == "PlaceOrder"
    assert obj["entity"] == {"id": "o-1", "isNew": True}
    assert obj["payload"] == {"customerId": "c1", "sku": "SKU", "quantity": 2, "amountCents": 100}
    assert set(obj["metadata"]) == {
        "eventId",
        "isReplay",
        "occurredOn",
        "sequenceNo",
        "correlationId",
        "properties",
    }
    assert obj["metadata"]["occurredOn"].endswith("Z")
    evt = json.loads(encode(event_for(cmd, 0, OrderPlaced("c1", "SKU", 2, 100))))
    assert evt["entity"] == {"id": "o-1"}
    assert evt["metadata"]["causationId"] == cmd.event_id


def test_event_ids_are_derived_deterministically() -> None:
    a = derived_event_id("0d6a1b8e-2f0c-4f43-9d6f-3f2a4b5c6d7e", 0, "OrderPlaced")
    assert a == derived_event_id("0d6a1b8e-2f0c-4f43-9d6f-3f2a4b5c6d7e", 0, "OrderPlaced")
    assert a != derived_event_id("0d6a1b8e-2f0c-4f43-9d6f-3f2a4b5c6d7e", 1, "OrderPlaced")
    assert a != derived_event_id("0d6a1b8e-2f0c-4f43-9d6f-3f2a4b5c6d7e", 0, "OrderConfirmed")


@pytest.mark.parametrize(
    "name", ["os.system", "flowgate.reference.domain.orders.PlaceOrder", "builtins.eval", "Nope"]
)
def test_unknown_type_rejected_without_import(registry: TypeRegistry, name: str) -> None:
    body = json.dumps(
        {
            "name": name,
            "entity": {"id": "1"},
            "payload": {},
            "metadata": {"eventId": "e", "occurredOn": "t", "sequenceNo": 1},
        }
    )
    with pytest.raises(UnknownMessageType):
        decode(body, registry)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda o: o.pop("payload"),
        lambda o: o["payload"].pop("sku"),
        lambda o: o["payload"].update(quantity="2"),
        lambda o: o["payload"].update(quantity=True),
        lambda o: o["metadata"].update(sequenceNo="1"),
        lambda o: o["metadata"].pop("eventId"),
        lambda o: o["entity"].update(id=5),
        lambda o: o.update(name=7),
    ],
    ids=[
        "no-payload",
        "missing-field",
        "str-for-int",
        "bool-for-int",
        "seq-str",
        "no-event-id",
        "int-id",
        "name",
    ],
)
def test_malformed_bodies_are_decode_errors(registry: TypeRegistry, mutate: typing.Any) -> None:
    from flowgate.reference.domain import PlaceOrder

    obj = json.loads(encode(new_command(PlaceOrder("c", "SKU", 1, 1), "o", sequence_no=1)))
    mutate(obj)
    with pytest.raises((DecodeError, UnknownMessageType)):
        decode(json.dumps(obj), registry)


def test_not_json_is_decode_error(registry: TypeRegistry) -> None:
    with pytest.raises(DecodeError):
        decode("{not json", registry)
    with pytest.raises(DecodeError):
        decode("[1, 2]", registry)


def test_registry_rejects_conflicts_and_non_payloads() -> None:
    @dataclasses.dataclass(frozen=True)
    class A(Payload):
        x: int

    @dataclasses.dataclass(frozen=True)
    class B(Payload):
        message_name = "A"
        y: int

    reg = TypeRegistry().commands(A)
    with pytest.raises(ConfigurationError):
        reg.events(A)
    with pytest.raises(ConfigurationError):
        reg.commands(B)
    with pytest.raises(ConfigurationError):
        reg.commands(int)  # type: ignore[arg-type]
    assert payload_to_dict(A(1)) == {"x": 1}
    with pytest.raises(UnknownMessageType):
        reg.lookup("A", "event")


@pytest.mark.parametrize("correlation", [None, "", "absent"])
def test_an_event_always_carries_a_correlation_id(registry: TypeRegistry, correlation: str | None) -> None:
    """Contract v1.4 section 3: a command without a correlationId (absent, empty or null) is
    accepted, and its events carry the command's eventId as their correlationId, never an empty one."""
    from flowgate.reference.domain.orders import OrderPlaced, PlaceOrder

    cmd = new_command(PlaceOrder("c", "sku-1", 1, 100), "o-1", is_new=True, sequence_no=1)
    body = json.loads(encode(cmd))
    if correlation == "absent":
        del body["metadata"]["correlationId"]
    else:
        body["metadata"]["correlationId"] = correlation
    decoded = decode(json.dumps(body), registry)
    assert isinstance(decoded, Command)
    event = event_for(decoded, 0, OrderPlaced("c", "sku-1", 1, 100))
    assert event.metadata.correlation_id == decoded.metadata.event_id
    assert json.loads(encode(event))["metadata"]["correlationId"] == decoded.metadata.event_id
