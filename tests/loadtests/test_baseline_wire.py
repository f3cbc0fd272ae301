"""The baseline's two message shapes: bare (HARNESS.md) and contract-shaped (attributes, body)."""

from __future__ import annotations

import json

import pytest

from flowgate.harness.baseline import command_entry, event_entry, run_baseline


def test_bare_wire_is_a_tiny_body_without_attributes() -> None:
    entry = command_entry(3, "o-1", 12.5, "bare")
    assert entry["Id"] == "3"
    assert (entry["MessageGroupId"], entry["MessageDeduplicationId"]) == ("o-1", "o-1")
    assert "MessageAttributes" not in entry
    assert json.loads(entry["MessageBody"]) == {"order": "o-1", "t": 12.5}
    event = event_entry(0, json.loads(entry["MessageBody"]), "bare")
    assert "MessageAttributes" not in event
    assert json.loads(event["Message"]) == {"order": "o-1", "t": 12.5, "event": "Placed"}


def test_contract_wire_carries_the_contract_attributes_and_body_size() -> None:
    entry = command_entry(0, "o-1", 12.5, "contract")
    assert sorted(entry["MessageAttributes"]) == [
        "CommandType",
        "CorrelationId",
        "EntityId",
        "EventId",
        "SequenceNo",
    ]
    body = json.loads(entry["MessageBody"])
    assert (body["order"], body["t"], body["name"]) == ("o-1", 12.5, "PlaceOrder")
    assert len(entry["MessageBody"]) > 300  # about the reference's command body
    event = event_entry(0, body, "contract")
    assert sorted(event["MessageAttributes"]) == [
        "CorrelationId",
        "EntityId",
        "EventId",
        "EventName",
        "EventType",
        "SequenceNo",
    ]
    assert event["Subject"] == "OrderPlaced"
    assert json.loads(event["Message"])["metadata"]["causationId"] == "o-1"


def test_unknown_wire_is_refused_before_anything_is_created() -> None:
    with pytest.raises(ValueError, match="wire must be one of"):
        run_baseline(100, 1, endpoint="http://127.0.0.1:9", wire="fancy")
