"""SourceFlow.Net interop mode on LocalStack (docs/sourceflow.md): a command and an event sent
exactly as SourceFlow.Net v2's dispatchers send them (``flowgate.harness.sourceflow``: no deduplication
id on a content-based-dedup FIFO queue, a standard topic) are applied; an unknown
assembly-qualified name is dead-lettered with its reason; what the reference emits in SourceFlow's
shape is deduplicated by content and parsed by the model of SourceFlow's listener."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest

from flowgate.harness import sourceflow as sf
from flowgate.reference.config import BusConfiguration
from flowgate.reference.domain.orders import (
    ORDER_COMMANDS,
    ORDER_EVENTS,
    InventoryView,
    OrderSaga,
    OrderView,
    PaymentsView,
    PlaceOrder,
)
from flowgate.reference.messages import new_command
from flowgate.reference.stores import InMemoryStorage
from flowgate.reference.worker import Runtime, build_runtime

pytestmark = pytest.mark.localstack

PLACE = {"customerId": "C-7", "sku": "SKU-1", "quantity": 2, "amountCents": 500}
ENTITY = {"customerId": "C-9", "sku": "SKU-2", "quantity": 1, "amountCents": 250}
LOADED = {
    sf.ORDER_ALIASES["PlaceOrder"]: sf.command_type(
        "PlaceOrder", {"customerId": "string", "sku": "string", "quantity": "int", "amountCents": "int"}
    )
}


def _runtime(aws: SimpleNamespace, uid: str, *, emit: bool) -> Runtime:
    registry = sf.interop_registry()
    cfg = (
        BusConfiguration(registry)
        .send(*ORDER_COMMANDS)
        .to_queue(f"fg-sf-{uid}.fifo")
        .raise_events(*ORDER_EVENTS)
        .to_topic(f"fg-sf-ev-{uid}")  # SourceFlow creates standard topics
        .listen_to(f"fg-sf-{uid}.fifo")
        .subscribe(f"fg-sf-views-{uid}")
        .to_topics(f"fg-sf-ev-{uid}")
        .with_options(
            visibility_timeout=5,
            wait_time_seconds=0,
            max_receive_count=1,
            business_max_attempts=1,
            sourceflow_interop=True,
            sourceflow_emit=emit,
        )
    )
    return build_runtime(
        cfg,
        sqs=aws.sqs,
        sns=aws.sns,
        sts=aws.sts,
        storage=InMemoryStorage(registry),
        sagas=[OrderSaga()],
        views=[OrderView(), InventoryView(), PaymentsView()],
    )


def _until(rt: Runtime, done: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for listener in rt.listeners:
            listener.poll_once()
        if done():
            return
    raise AssertionError("timed out")


def _dead(aws: SimpleNamespace, url: str) -> list[dict[str, Any]]:
    got = aws.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"])
    return list(got.get("Messages", []))


def test_sourceflow_messages_on_localstack(aws: SimpleNamespace, aws_cleanup: list[Any], uid: str) -> None:
    rt = _runtime(aws, uid, emit=False)
    aws_cleanup.append(rt.resources)
    queue = rt.resources.queue_urls[f"fg-sf-{uid}.fifo"]
    topic = rt.resources.topic_arns[f"fg-sf-ev-{uid}"]
    storage = rt.processor.storage
    # exactly AwsSqsCommandDispatcher's request: no MessageDeduplicationId
    aws.sqs.send_message(QueueUrl=queue, **sf.command_send("PlaceOrder", 42, PLACE, 1, is_new=True))
    aws.sqs.send_message(
        QueueUrl=queue, **sf.command_send("AuthorizePayment", 42, {"paymentId": "P-1", "amountCents": 500}, 2)
    )
    # exactly AwsSnsEventDispatcher's request
    aws.sns.publish(TopicArn=topic, **sf.event_publish("OrderPlaced", {"id": 77, **ENTITY}))
    # an unknown assembly-qualified name: poison with its reason, never loaded
    evil = "Evil.Commands.PlaceOrder, " + sf.ASSEMBLY
    aws.sqs.send_message(QueueUrl=queue, **sf.command_send("PlaceOrder", 43, PLACE, 1, is_new=True, command_type=evil))

    def applied() -> bool:
        state = storage.get_entity("order", "42")
        row = storage.get_view("orders", "77")
        return bool(state and state["status"] == "PAID" and row and row["status"] == "PENDING")

    _until(rt, applied)
    dlq = rt.resources.dlq_urls[f"fg-sf-{uid}.fifo"]
    deadline = time.monotonic() + 20
    dead: list[dict[str, Any]] = []
    while not dead and time.monotonic() < deadline:
        for listener in rt.listeners:
            listener.poll_once()
        dead = _dead(aws, dlq)
    [msg] = dead
    reason = msg["MessageAttributes"]["DeadLetterReason"]["StringValue"]
    assert reason.startswith("UnknownMessageType: unknown SourceFlow command type"), reason
    assert storage.get_entity("order", "43") is None
    assert storage.get_view("orders", "42")["status"] == "PAID"  # the reference's own events


def test_reference_emits_sourceflows_shape_on_localstack(
    aws: SimpleNamespace, aws_cleanup: list[Any], uid: str
) -> None:
    rt = _runtime(aws, uid, emit=True)
    aws_cleanup.append(rt.resources)
    queue = rt.resources.queue_urls[f"fg-sf-{uid}.fifo"]
    cmd = new_command(PlaceOrder("C-7", "SKU-1", 2, 500), "42", is_new=True, sequence_no=1)
    rt.commands.dispatch(cmd)
    rt.commands.dispatch(cmd)  # a retried send: same bytes, dropped by content-based dedup
    got = aws.sqs.receive_message(
        QueueUrl=queue, MaxNumberOfMessages=10, MessageAttributeNames=["All"], AttributeNames=["All"]
    )["Messages"]
    assert len(got) == 1
    [msg] = got
    assert msg["Attributes"]["MessageDeduplicationId"] == hashlib.sha256(msg["Body"].encode()).hexdigest()
    assert msg["Attributes"]["MessageGroupId"] == "42"
    assert set(msg["MessageAttributes"]) == {"CommandType", "EntityId", "SequenceNo"}
    parsed = sf.parse_command(msg, LOADED)
    assert parsed["entity"] == {"id": 42, "isNew": True}
    assert parsed["metadata"]["eventId"] == cmd.event_id
    assert json.loads(msg["Body"])["name"] == "PlaceOrder"
    aws.sqs.change_message_visibility(QueueUrl=queue, ReceiptHandle=msg["ReceiptHandle"], VisibilityTimeout=0)
    _until(rt, lambda: rt.processor.storage.get_entity("order", "42") is not None)
    assert rt.processor.storage.get_entity("order", "42")["applied"] == [cmd.event_id]
