"""Strict decoding of untrusted bodies (issue 13): every hostile body is a :class:`MessageError`
(poison with a reason), never another exception, and nothing a store would refuse gets through.

The table names each refusal; the hypothesis tests fuzz ``decode`` with arbitrary JSON values put
anywhere in a valid wire object, and with arbitrary text."""

from __future__ import annotations

import copy
import json
import string
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowgate.reference.domain import PlaceOrder, order_registry
from flowgate.reference.domain.orders import OrderPlaced
from flowgate.reference.errors import DecodeError, MessageError
from flowgate.reference.messages import (
    INT64_MAX,
    MAX_JSON_DEPTH,
    Command,
    Event,
    decode,
    encode,
    event_for,
    is_sqs_id,
    new_command,
    to_wire,
)

REGISTRY = order_registry()
CMD = new_command(PlaceOrder("c-1", "SKU-1", 2, 500), "o-1", is_new=True, sequence_no=1,
                  event_id="5f0c1d2e-0000-4000-8000-000000000001")
EVT = event_for(CMD, 0, OrderPlaced("c-1", "SKU-1", 2, 500))


def wire(message: Command | Event = CMD) -> dict[str, Any]:
    return copy.deepcopy(to_wire(message))


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def with_(path: str, value: Any, base: Command | Event = CMD) -> dict[str, Any]:
    obj = wire(base)
    *parents, last = path.split(".")
    target = obj
    for p in parents:
        target = target[p]
    target[last] = value
    return obj


def text_of(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False)


def deep_text(depth: int) -> str:
    """A body whose payload nests ``depth`` arrays (built as text: json.dumps would recurse)."""
    body = text_of(wire())
    return body.replace('"quantity":2', '"quantity":' + "[" * depth + "2" + "]" * depth).replace(
        '"quantity": 2', '"quantity": ' + "[" * depth + "2" + "]" * depth)


HOSTILE: dict[str, Callable[[], str | bytes]] = {
    "deep nesting in the payload (100000)": lambda: deep_text(100_000),
    "deep nesting just past the limit": lambda: deep_text(MAX_JSON_DEPTH),
    "deep nesting in properties": lambda: text_of(with_("metadata.properties", {"p": "x"})).replace(
        '"p": "x"', '"p": ' + "[" * 5000 + "]" * 5000),
    "deep nesting as the whole body": lambda: "[" * 200_000 + "]" * 200_000,
    "duplicate key": lambda: text_of(wire()).replace('"name": "PlaceOrder"',
                                                     '"name": "PlaceOrder", "name": "PlaceOrder"'),
    "duplicate key in the payload": lambda: text_of(wire()).replace('"sku": "SKU-1"',
                                                                    '"sku": "SKU-1", "sku": "SKU-2"'),
    "NaN": lambda: text_of(with_("payload.amountCents", 1)).replace('"amountCents": 1', '"amountCents": NaN'),
    "Infinity": lambda: text_of(wire()).replace('"amountCents": 500', '"amountCents": Infinity'),
    "-Infinity": lambda: text_of(wire()).replace('"amountCents": 500', '"amountCents": -Infinity'),
    "1e999 (parses to inf)": lambda: text_of(wire()).replace('"amountCents": 500', '"amountCents": 1e999'),
    "lone surrogate in a payload string": lambda: text_of(wire()).replace('"SKU-1"', '"SKU-\\ud800"'),
    "lone surrogate in a key": lambda: text_of(with_("metadata.properties", {"\ud800": "x"})),
    "lone surrogate in a property value": lambda: json.dumps(with_("metadata.properties", {"k": "\udfff"})),
    "NUL in a payload string": lambda: text_of(with_("payload.sku", "S\x00KU")),
    "NUL in a property": lambda: text_of(with_("metadata.properties", {"k": "\x00"})),
    "bytes that are not UTF-8": lambda: b'{"name": "\xff"}',
    "int above int64 in the payload": lambda: text_of(with_("payload.amountCents", 2**63)),
    "int below int64 in the payload": lambda: text_of(with_("payload.quantity", -(2**63) - 1)),
    "huge int literal": lambda: text_of(wire()).replace('"amountCents": 500', '"amountCents": ' + "9" * 5000),
    "float for an int field": lambda: text_of(with_("payload.quantity", 2.0)),
    "bool for an int field": lambda: text_of(with_("payload.quantity", True)),
    "entity id with a space": lambda: text_of(with_("entity.id", "o 1")),
    "entity id non-ASCII": lambda: text_of(with_("entity.id", "ordre-é")),
    "entity id empty": lambda: text_of(with_("entity.id", "")),
    "entity id of 129 characters": lambda: text_of(with_("entity.id", "o" * 129)),
    "entity id with a newline": lambda: text_of(with_("entity.id", "o\n1")),
    "eventId of 129 characters": lambda: text_of(with_("metadata.eventId", "e" * 129)),
    "eventId empty": lambda: text_of(with_("metadata.eventId", "")),
    "eventId with a tab": lambda: text_of(with_("metadata.eventId", "e\t1")),
    "correlationId non-ASCII": lambda: text_of(with_("metadata.correlationId", "ç")),
    "correlationId not a string": lambda: text_of(with_("metadata.correlationId", 7)),
    "correlationId of 129 characters": lambda: text_of(with_("metadata.correlationId", "c" * 129)),
    "causationId of 129 characters": lambda: text_of(with_("metadata.causationId", "c" * 129, EVT)),
    "causationId empty": lambda: text_of(with_("metadata.causationId", "", EVT)),
    "sequenceNo 0": lambda: text_of(with_("metadata.sequenceNo", 0)),
    "sequenceNo negative": lambda: text_of(with_("metadata.sequenceNo", -1)),
    "sequenceNo 2^63": lambda: text_of(with_("metadata.sequenceNo", 2**63)),
    "sequenceNo float": lambda: text_of(with_("metadata.sequenceNo", 1.0)),
    "sequenceNo string": lambda: text_of(with_("metadata.sequenceNo", "1")),
    "isReplay the string false": lambda: text_of(with_("metadata.isReplay", "false")),
    "isReplay 0": lambda: text_of(with_("metadata.isReplay", 0)),
    "isReplay null": lambda: text_of(with_("metadata.isReplay", None)),
    "occurredOn prose": lambda: text_of(with_("metadata.occurredOn", "yesterday")),
    "occurredOn month 13": lambda: text_of(with_("metadata.occurredOn", "2026-13-01T00:00:00.000Z")),
    "occurredOn 30 February": lambda: text_of(with_("metadata.occurredOn", "2026-02-30T00:00:00Z")),
    "occurredOn not UTC": lambda: text_of(with_("metadata.occurredOn", "2026-01-01T00:00:00+01:00")),
    "occurredOn without zone": lambda: text_of(with_("metadata.occurredOn", "2026-01-01T00:00:00")),
    "occurredOn not a string": lambda: text_of(with_("metadata.occurredOn", 1_700_000_000)),
    "properties a list": lambda: text_of(with_("metadata.properties", ["a"])),
    "properties with an int value": lambda: text_of(with_("metadata.properties", {"a": 1})),
    "properties a string": lambda: text_of(with_("metadata.properties", "a")),
    "isNew a string": lambda: text_of(with_("entity.isNew", "true")),
    "body a list": lambda: "[]",
    "body a string": lambda: '"x"',
    "empty body": lambda: "",
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_body_is_a_decode_error(name: str) -> None:
    with pytest.raises(DecodeError):
        decode(HOSTILE[name](), REGISTRY)


def test_limits_themselves_are_accepted() -> None:
    punctuation = string.punctuation
    entity = (punctuation * 5)[:128]
    cmd = new_command(PlaceOrder("c", "S", 2**63 - 1, -(2**63)), entity, sequence_no=INT64_MAX,
                      event_id="E" * 128, correlation_id="c" * 128)
    assert decode(encode(cmd), REGISTRY) == cmd
    evt = event_for(cmd, 0, OrderPlaced("c", "S", 1, 1))
    assert decode(encode(evt), REGISTRY) == evt
    body = text_of(wire()).replace('"quantity": 2', '"quantity": ' + "[" * 10 + "2" + "]" * 10)
    with pytest.raises(DecodeError, match="wrong type"):  # depth 13 parses; the type is what is wrong
        decode(body, REGISTRY)
    assert decode(text_of(with_("metadata.occurredOn", "2026-01-01T00:00:00+00:00")), REGISTRY)
    assert decode(text_of(with_("metadata.isReplay", True)), REGISTRY).metadata.is_replay is True
    assert decode(text_of(with_("metadata.properties", None)), REGISTRY).metadata.properties == {}
    brackets_in_strings = text_of(with_("payload.sku", "[" * 100 + "{" * 100))
    assert decode(brackets_in_strings, REGISTRY).payload.sku == "[" * 100 + "{" * 100  # type: ignore[attr-defined]


def test_is_sqs_id() -> None:
    assert is_sqs_id("a")
    assert is_sqs_id(string.punctuation)
    assert is_sqs_id("x" * 128)
    assert not is_sqs_id("x" * 129)
    assert not is_sqs_id("")
    assert not is_sqs_id("a b")
    assert not is_sqs_id("é")
    assert not is_sqs_id(None)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
PATHS = ["name", "entity", "entity.id", "entity.isNew", "payload", "payload.sku", "payload.quantity",
         "metadata", "metadata.eventId", "metadata.sequenceNo", "metadata.isReplay", "metadata.occurredOn",
         "metadata.correlationId", "metadata.causationId", "metadata.properties"]


@settings(max_examples=300)
@given(st.sampled_from(PATHS), JSON, st.booleans())
def test_fuzz_any_value_anywhere_is_decoded_or_a_message_error(path: str, value: Any, event: bool) -> None:
    """Whatever JSON value replaces a field, ``decode`` either returns a message that re-encodes
    to valid, strictly decodable JSON, or raises :class:`MessageError` -- nothing else."""
    obj = with_(path, value, EVT if event else CMD)
    try:
        body = json.dumps(obj, allow_nan=True)
    except (ValueError, UnicodeEncodeError):
        return
    try:
        message = decode(body, REGISTRY)
    except MessageError:
        return
    again = encode(message)
    again.encode("utf-8")  # storable and sendable
    assert "\x00" not in again
    assert decode(again, REGISTRY) == message


@settings(max_examples=300)
@given(st.text() | st.binary())
def test_fuzz_any_text_is_a_message_error(body: str | bytes) -> None:
    with pytest.raises(MessageError):
        decode(body, REGISTRY)
