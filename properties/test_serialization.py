"""Property 6: every registered command/event type round-trips through the wire format, and the
wire format matches the documented JSON schemas (docs/schemas/command|event.schema.json)."""

from __future__ import annotations

import dataclasses
import json
import string
import typing
from pathlib import Path
from typing import Any

import jsonschema
from hypothesis import given
from hypothesis import strategies as st

from flowgate.reference.domain import order_registry, partner_registry
from flowgate.reference.domain.orders import OrderState, OrderStatus
from flowgate.reference.messages import (
    Command,
    Event,
    Payload,
    decode,
    encode,
    event_for,
    new_command,
    to_wire,
)
from properties.support import sim_label

SCHEMAS = Path(__file__).resolve().parents[1] / "docs" / "schemas"
REGISTRY = partner_registry(order_registry())
# the schemas constrain payload values (amounts >= 0, non-empty ids), stricter than the registry
# (no lone surrogates, no NUL: strict decoding refuses both, properties/test_hostile_decode.py)
TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1, max_size=40)
#: entity ids are SQS MessageGroupIds: 1..128 ASCII alphanumerics and punctuation
SQS_ID = st.text(st.sampled_from(string.ascii_letters + string.digits + string.punctuation), min_size=1, max_size=128)
SIMPLE: dict[Any, st.SearchStrategy[Any]] = {str: TEXT, int: st.integers(1, 2**31), bool: st.booleans(),
                                             float: st.floats(allow_nan=False, allow_infinity=False),
                                             # OrderState.applied: the command ids of the order's log
                                             tuple[str, ...]: st.lists(SQS_ID, max_size=5).map(tuple)}


#: fields the schemas constrain beyond their Python type
FIELDS: dict[tuple[type[Payload], str], st.SearchStrategy[Any]] = {
    (OrderState, "status"): st.sampled_from([s.value for s in OrderStatus]),
}


def payloads(cls: type[Payload]) -> st.SearchStrategy[Payload]:
    hints = typing.get_type_hints(cls)
    return st.builds(
        cls, **{f.name: FIELDS.get((cls, f.name), SIMPLE[hints[f.name]]) for f in dataclasses.fields(cls)}
    )


def _validator(kind: str) -> jsonschema.protocols.Validator:
    schema = json.loads((SCHEMAS / f"{kind}.schema.json").read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


COMMAND_SCHEMA, EVENT_SCHEMA = _validator("command"), _validator("event")
ORDER_NAMES = set(order_registry().names())
COMMANDS = [REGISTRY.lookup(n, "command") for n in REGISTRY.names("command")]
EVENTS = [REGISTRY.lookup(n, "event") for n in REGISTRY.names("event")]


@st.composite
def messages(draw: st.DrawFn) -> Command | Event:
    cls = draw(st.sampled_from(COMMANDS + EVENTS))
    payload = draw(payloads(cls))
    command = new_command(payload, draw(SQS_ID), is_new=draw(st.booleans()),
                          sequence_no=draw(st.integers(1, 10**6)), event_id=str(draw(st.uuids())))
    if cls in COMMANDS:
        return command
    return event_for(command, draw(st.integers(0, 5)), payload)


@given(messages())
def test_round_trip_and_schema(message: Command | Event) -> None:
    sim_label("Gate", "wire format", "round trip + JSON schema")
    assert decode(encode(message), REGISTRY) == message
    if message.name not in ORDER_NAMES:
        return  # docs/schemas describe the order domain only (partner types: round trip only)
    validator = COMMAND_SCHEMA if isinstance(message, Command) else EVENT_SCHEMA
    # judged as the JSON the wire carries (a tuple field is a JSON array there)
    errors = sorted(validator.iter_errors(json.loads(json.dumps(to_wire(message)))), key=str)
    assert not errors, f"{message.name}: {errors[0].message} at {list(errors[0].absolute_path)}"


def test_every_registered_type_is_generated() -> None:
    assert len(COMMANDS) >= 6, COMMANDS
    assert len(EVENTS) >= 7, EVENTS
