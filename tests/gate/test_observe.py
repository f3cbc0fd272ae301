"""History mapping from probe observations, and the verdicts it leads to."""

from __future__ import annotations

import json
from typing import Any

from flowgate.harness.checkers import check_all
from flowgate.harness.gate.observe import EventMapper, SentCommand, derived_event_id
from flowgate.harness.history import History

CMD = "6f1c2f3a-1d2e-4b5c-8d9e-0a1b2c3d4e5f"
CMD2 = "0c3e1a7e-8a51-4b33-9d7a-5a9b0f1e2d3c"


def setup() -> tuple[History, EventMapper]:
    history = History()
    sent = {
        CMD: SentCommand(CMD, "order-1", 1, "PlaceOrder", "q.fifo", "secret-1"),
        CMD2: SentCommand(CMD2, "order-1", 2, "AuthorizePayment", "q.fifo", "secret-1"),
    }
    for c in sent.values():
        value = {
            "command_id": c.command_id,
            "entity_id": c.entity_id,
            "seq": c.seq,
            "command_type": c.command_type,
            "destination": c.destination,
        }
        history.append("client-0", "invoke", "send", value)
        history.append("client-0", "ok", "send", value)
    return history, EventMapper(history, sent, "events.fifo", markers={"order-1": "secret-1"})


def event(cause: str, seq: int, name: str, event_id: str | None = None) -> tuple[str, dict[str, str]]:
    eid = event_id or derived_event_id(cause, 0, name)
    body = {
        "name": name,
        "entity": {"id": "order-1"},
        "payload": {},
        "metadata": {
            "eventId": eid,
            "isReplay": False,
            "occurredOn": "2026-11-21T10:00:00.000Z",
            "sequenceNo": seq,
            "correlationId": cause,
            "causationId": cause,
            "properties": {},
        },
    }
    attrs = {
        "EventType": name,
        "EventName": name,
        "EntityId": "order-1",
        "SequenceNo": str(seq),
        "EventId": eid,
        "CorrelationId": cause,
    }
    return json.dumps(body), attrs


def see(
    mapper: EventMapper,
    body: str,
    attrs: dict[str, str],
    *,
    encrypted: bool = True,
    message_id: str | None = None,
    sent_at: float | None = 1_000.0,
) -> None:
    """One probe receipt; each call is a new SQS message unless ``message_id`` is given."""
    mapper.observe(
        raw_body="b64-envelope" if encrypted else body,
        attributes=attrs,
        plaintext=body,
        encrypted=encrypted,
        message_id=message_id or f"m-{len(mapper.history)}",
        sent_at=sent_at,
        dedup_id=attrs.get("EventId"),
    )


def drained(history: History) -> History:
    history.append("harness", "ok", "drain", {})
    return history


def verdicts(history: History, **options: Any) -> dict[str, Any]:
    return {v.checker: v for v in check_all(history, **options)}


def test_derived_event_id_matches_python_uuid5() -> None:
    import uuid

    assert derived_event_id(CMD, 0, "OrderPlaced") == str(uuid.uuid5(uuid.UUID(CMD), "0:OrderPlaced"))
    assert derived_event_id("not-a-uuid", 1, "X") == str(
        uuid.uuid5(uuid.uuid5(uuid.NAMESPACE_URL, "not-a-uuid"), "1:X")
    )


def test_events_become_publish_and_effect_ops_and_pass() -> None:
    history, mapper = setup()
    see(mapper, *event(CMD, 1, "OrderPlaced"))
    see(mapper, *event(CMD2, 2, "PaymentAuthorized"))
    fs = [op.f for op in history.ops if op.process != "client-0"]
    assert fs == ["receive", "wire", "publish", "effect"] * 2
    effect = next(op for op in history.ops if op.f == "effect")
    assert effect.value["command_id"] == CMD
    assert effect.value["seq"] == 1
    assert effect.value["command_type"] == "PlaceOrder"
    result = verdicts(drained(history), require_encryption=True)
    assert all(v.valid for v in result.values()), {k: v.anomalies for k, v in result.items()}
    assert mapper.verdict().valid


def test_same_event_id_after_the_dedup_window_is_a_duplicate_not_an_effect() -> None:
    history, mapper = setup()
    see(mapper, *event(CMD, 1, "OrderPlaced"), sent_at=1_000.0)
    see(mapper, *event(CMD, 1, "OrderPlaced"), sent_at=1_300.0)  # a re-publish after the window
    see(mapper, *event(CMD2, 2, "PaymentAuthorized"))
    assert [op.f for op in history.ops].count("duplicate") == 1
    result = verdicts(drained(history))
    assert all(v.valid for v in result.values()), {k: v.anomalies for k, v in result.items()}


def test_same_event_id_twice_within_the_dedup_window_is_dedup_not_effective() -> None:
    history, mapper = setup()
    see(mapper, *event(CMD, 1, "OrderPlaced"), sent_at=1_000.0)
    see(mapper, *event(CMD, 1, "OrderPlaced"), sent_at=1_294.9)
    see(mapper, *event(CMD2, 2, "PaymentAuthorized"))
    result = verdicts(drained(history))
    assert result["fifo_dedup"].kinds() == {"dedup-not-effective": 1}
    assert "probe.fifo" in str(result["fifo_dedup"].anomalies[0])
    # nothing else objects: the copy is a duplicate, not a second effect
    assert [k for k, v in result.items() if not v.valid] == ["fifo_dedup"]


def test_one_probe_message_received_twice_is_not_a_dedup_failure() -> None:
    history, mapper = setup()
    see(mapper, *event(CMD, 1, "OrderPlaced"), message_id="m-1")
    see(mapper, *event(CMD, 1, "OrderPlaced"), message_id="m-1")  # its delete failed: redelivered
    see(mapper, *event(CMD2, 2, "PaymentAuthorized"))
    assert verdicts(drained(history))["fifo_dedup"].valid


def test_two_event_ids_for_one_command_is_a_duplicated_effect() -> None:
    history, mapper = setup()
    see(mapper, *event(CMD, 1, "OrderPlaced"))
    see(mapper, *event(CMD, 1, "OrderPlaced", event_id="11111111-1111-4111-8111-111111111111"))
    see(mapper, *event(CMD2, 2, "PaymentAuthorized"))
    result = verdicts(drained(history))
    assert result["exactly_once_effect"].kinds() == {"duplicate-effect": 1}
    assert result["total_queue"].kinds() == {"duplicated": 1}
    assert mapper.verdict().kinds() == {"event-id-not-derived": 1}


def test_missing_event_is_lost_and_out_of_order_is_nonmonotonic() -> None:
    history, mapper = setup()
    see(mapper, *event(CMD2, 2, "PaymentAuthorized"))
    see(mapper, *event(CMD, 1, "OrderPlaced"))
    result = verdicts(drained(history))
    assert not result["per_entity_order"].valid
    history2, mapper2 = setup()
    see(mapper2, *event(CMD, 1, "OrderPlaced"))
    assert verdicts(drained(history2))["total_queue"].kinds() == {"lost": 1}


def test_plaintext_event_is_caught_when_encryption_is_required() -> None:
    history, mapper = setup()
    body, attrs = event(CMD, 1, "OrderPlaced")
    body = body.replace('"payload": {}', '"payload": {"customer_id": "secret-1"}')
    see(mapper, body, attrs, encrypted=False)
    result = verdicts(drained(history), require_encryption=True)
    assert "unencrypted-wire" in result["confidentiality_integrity"].kinds()


def test_contract_violations_are_named() -> None:
    _history, mapper = setup()
    body, attrs = event(CMD, 1, "OrderPlaced")
    del attrs["EventId"]
    attrs["SequenceNo"] = "7"
    see(mapper, body, attrs)
    mapper.observe(raw_body="x", attributes={}, plaintext=None, encrypted=True, decrypt_error="bad tag")
    mapper.observe(raw_body="x", attributes={}, plaintext="{not json", encrypted=False)
    kinds = mapper.verdict().kinds()
    assert kinds == {
        "missing-attribute": 1,
        "attribute-mismatch": 1,
        "undecryptable-event": 1,
        "malformed-event": 1,
    }
    assert not mapper.verdict().valid


def test_event_for_unknown_command_is_unexpected() -> None:
    history, mapper = setup()
    see(mapper, *event("22222222-2222-4222-8222-222222222222", 1, "OrderPlaced"))
    assert "unexpected" in verdicts(drained(history))["total_queue"].kinds()
