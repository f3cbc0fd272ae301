"""Bootstrapper, dispatchers, DLQ replay and health check on LocalStack."""

from __future__ import annotations

import json
import threading
from types import SimpleNamespace
from typing import Any

import pytest

from flowgate.reference.bootstrap import Bootstrapper
from flowgate.reference.config import BusConfiguration
from flowgate.reference.dispatchers import SqsCommandDispatcher
from flowgate.reference.dlq import replay_dead_letters
from flowgate.reference.domain import CancelOrder, OrderPlaced, PlaceOrder
from flowgate.reference.domain.orders import ORDER_COMMANDS, ORDER_EVENTS
from flowgate.reference.errors import DispatchError, OversizedMessage
from flowgate.reference.health import check_health
from flowgate.reference.messages import TypeRegistry, decode, event_for, new_command

pytestmark = pytest.mark.localstack


def config(registry: TypeRegistry, uid: str) -> BusConfiguration:
    return (BusConfiguration(registry)
            .send(*ORDER_COMMANDS).to_queue(f"fg-b-{uid}.fifo")
            .raise_events(*ORDER_EVENTS).to_topic(f"fg-b-ev-{uid}.fifo")
            .listen_to(f"fg-b-{uid}.fifo")
            .subscribe(f"fg-b-views-{uid}.fifo").to_topics(f"fg-b-ev-{uid}.fifo")
            .with_options(max_receive_count=4, visibility_timeout=7, wait_time_seconds=0))


def receive_all(aws: SimpleNamespace, url: str, n: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for _ in range(10):
        resp = aws.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                                       AttributeNames=["All"], MessageAttributeNames=["All"])
        for m in resp.get("Messages", []):
            out.append(m)
            aws.sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        if len(out) >= n:
            break
    return out


def test_bootstrap_creates_and_adopts_idempotently(aws: SimpleNamespace, aws_cleanup: list[Any],
                                                   registry: TypeRegistry, uid: str) -> None:
    cfg = config(registry, uid)
    # a pre-existing FIFO queue without content-based dedup and with another timeout is adopted
    pre = aws.sqs.create_queue(QueueName=f"fg-b-{uid}.fifo", Attributes={"FifoQueue": "true",
                                                                        "VisibilityTimeout": "99"})["QueueUrl"]
    aws_cleanup.append(pre)
    res = Bootstrapper(cfg, sqs=aws.sqs, sns=aws.sns, sts=aws.sts).run()
    aws_cleanup.append(res)
    again = Bootstrapper(cfg, sqs=aws.sqs, sns=aws.sns, sts=aws.sts).run()
    assert again == res
    q = f"fg-b-{uid}.fifo"
    attrs = aws.sqs.get_queue_attributes(QueueUrl=res.queue_urls[q], AttributeNames=["All"])["Attributes"]
    assert attrs["FifoQueue"] == "true"
    assert attrs["VisibilityTimeout"] == "7"
    redrive = json.loads(attrs["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"] == res.dlq_arns[q]
    # the backstop has headroom above the listener's poison threshold (4): max(10, 3 x 4)
    assert int(redrive["maxReceiveCount"]) == cfg.options.redrive_receive_count == 12
    assert res.dlq_urls[q].endswith(f"fg-b-{uid}-dlq.fifo")
    views = f"fg-b-views-{uid}.fifo"
    policy = json.loads(aws.sqs.get_queue_attributes(QueueUrl=res.queue_urls[views],
                                                     AttributeNames=["Policy"])["Attributes"]["Policy"])
    assert policy["Statement"][-1]["Condition"]["ArnEquals"]["aws:SourceArn"] == [res.topic_arns[f"fg-b-ev-{uid}.fifo"]]
    sub = aws.sns.get_subscription_attributes(SubscriptionArn=next(iter(res.subscription_arns.values())))
    assert sub["Attributes"]["RawMessageDelivery"] == "true"
    topic = aws.sns.get_topic_attributes(TopicArn=res.topic_arns[f"fg-b-ev-{uid}.fifo"])["Attributes"]
    assert topic["FifoTopic"] == "true"
    health = check_health(cfg, res, sqs=aws.sqs, sns=aws.sns)
    assert health.healthy, health.checks
    aws.sqs.delete_queue(QueueUrl=res.dlq_urls[views])
    assert not check_health(cfg, res, sqs=aws.sqs, sns=aws.sns).healthy


def test_dispatchers_wire_format_batching_and_dlq_replay(aws: SimpleNamespace, aws_cleanup: list[Any],
                                                         registry: TypeRegistry, uid: str) -> None:
    cfg = config(registry, uid)
    res = Bootstrapper(cfg, sqs=aws.sqs, sns=aws.sns, sts=aws.sts).run()
    aws_cleanup.append(res)
    q = f"fg-b-{uid}.fifo"
    calls: list[str] = []
    aws.sqs.meta.events.register("before-call.sqs.*", lambda model, **_: calls.append(model.name))
    try:
        d = SqsCommandDispatcher(aws.sqs, cfg, res)
        cmds = [new_command(PlaceOrder("c", "S", 1, i), f"o{i % 3}", sequence_no=i + 1, correlation_id="corr")
                for i in range(12)]
        d.dispatch_many(cmds)
        d.dispatch(cmds[0])  # resend within the dedup window: dropped by SQS FIFO
        assert calls.count("SendMessageBatch") == 2
        assert calls.count("SendMessage") == 1
        got = receive_all(aws, res.queue_urls[q], 12)
    finally:
        aws.sqs.meta.events.unregister("before-call.sqs.*")
    assert len(got) == 12
    by_id = {m["MessageAttributes"]["EventId"]["StringValue"]: m for m in got}
    for c in cmds:
        m = by_id[c.event_id]
        a = {k: v["StringValue"] for k, v in m["MessageAttributes"].items()}
        assert a == {"CommandType": "PlaceOrder", "EntityId": c.entity_id, "SequenceNo": str(c.metadata.sequence_no),
                     "EventId": c.event_id, "CorrelationId": "corr"}
        assert m["Attributes"]["MessageGroupId"] == c.entity_id
        assert m["Attributes"]["MessageDeduplicationId"] == c.event_id
        assert decode(m["Body"], registry) == c
    for group in ("o0", "o1", "o2"):  # FIFO order within each group
        seqs = [int(m["MessageAttributes"]["SequenceNo"]["StringValue"]) for m in got
                if m["Attributes"]["MessageGroupId"] == group]
        assert seqs == sorted(seqs)

    big = new_command(CancelOrder("x" * 300_000), "o1", sequence_no=99)
    with pytest.raises(OversizedMessage):
        d.dispatch(big)

    # DLQ replay: preserves group, dedup id and attributes minus DeadLetterReason, in order
    dlq = res.dlq_urls[q]
    for i in range(3):
        aws.sqs.send_message(QueueUrl=dlq, MessageBody=f"body-{i}", MessageGroupId="g", MessageDeduplicationId=f"d{i}",
                             MessageAttributes={"CommandType": {"DataType": "String", "StringValue": "PlaceOrder"},
                                                "DeadLetterReason": {"DataType": "String", "StringValue": "x"}})
    assert replay_dead_letters(aws.sqs, dlq_url=dlq, source_url=res.queue_urls[q], fifo=True) == 3
    back = receive_all(aws, res.queue_urls[q], 3)
    assert [m["Body"] for m in back] == ["body-0", "body-1", "body-2"]
    assert all(set(m["MessageAttributes"]) == {"CommandType"} for m in back)
    assert [m["Attributes"]["MessageDeduplicationId"] for m in back] == ["d0", "d1", "d2"]


def test_batching_sender_and_event_publish(aws: SimpleNamespace, aws_cleanup: list[Any], registry: TypeRegistry,
                                           uid: str) -> None:
    from flowgate.reference.dispatchers import SnsEventDispatcher

    cfg = config(registry, uid).with_options(batch_linger=0.05)
    res = Bootstrapper(cfg, sqs=aws.sqs, sns=aws.sns, sts=aws.sts).run()
    aws_cleanup.append(res)
    d = SqsCommandDispatcher(aws.sqs, cfg, res, batching=True)
    calls: list[str] = []
    aws.sqs.meta.events.register("before-call.sqs.*", lambda model, **_: calls.append(model.name))
    try:
        cmds = [new_command(PlaceOrder("c", "S", 1, i), f"b{i}", sequence_no=1) for i in range(20)]
        threads = [threading.Thread(target=d.dispatch, args=(c,)) for c in cmds]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        aws.sqs.meta.events.unregister("before-call.sqs.*")
        d.close()
    assert calls.count("SendMessageBatch") <= 4
    assert "SendMessage" not in calls
    assert len(receive_all(aws, res.queue_urls[f"fg-b-{uid}.fifo"], 20)) == 20
    # events: PublishBatch with SNS attributes, raw delivery to the subscribed FIFO queue
    e = SnsEventDispatcher(aws.sns, cfg, res)
    cmd = new_command(PlaceOrder("c", "S", 1, 1), "o9", sequence_no=1)
    events = [event_for(cmd, i, OrderPlaced("c", "S", 1, i)) for i in range(3)]
    e.dispatch_many(events)
    got = receive_all(aws, res.queue_urls[f"fg-b-views-{uid}.fifo"], 3)
    assert [decode(m["Body"], registry) for m in got] == events
    a = {k: v["StringValue"] for k, v in got[0]["MessageAttributes"].items()}
    assert a["EventType"] == a["EventName"] == "OrderPlaced"
    assert a["EntityId"] == "o9"
    assert got[0]["Attributes"]["MessageGroupId"] == "o9"


def test_batch_entry_failures_raise() -> None:
    class Stub:
        def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:
            return {"Successful": [{"Id": "0"}], "Failed": [{"Id": "1", "Code": "InternalError", "SenderFault": False}]}

    from flowgate.reference.bootstrap import Resources
    from flowgate.reference.domain import order_registry

    reg = order_registry()
    cfg = BusConfiguration(reg).send(PlaceOrder).to_queue("q")
    d = SqsCommandDispatcher(Stub(), cfg, Resources("1", "us-east-1", queue_urls={"q": "url"}))
    with pytest.raises(DispatchError, match="InternalError"):
        d.dispatch_many([new_command(PlaceOrder("c", "S", 1, 1), "a", sequence_no=1),
                         new_command(PlaceOrder("c", "S", 1, 1), "b", sequence_no=1)])


def test_bootstrap_points_the_redrive_at_a_configured_dead_letter_queue(
    aws: SimpleNamespace, aws_cleanup: list[Any], registry: TypeRegistry, uid: str
) -> None:
    """A queue provisioned by someone else with its own DLQ (the gate) keeps that DLQ."""
    q, dlq = f"fg-b-{uid}.fifo", f"fg-b-other-dlq-{uid}.fifo"
    cfg = config(registry, uid).with_dead_letter_queue(q, dlq)
    res = Bootstrapper(cfg, sqs=aws.sqs, sns=aws.sns, sts=aws.sts).run()
    aws_cleanup.append(res)
    assert res.dlq_urls[q].endswith("/" + dlq)
    redrive = json.loads(
        aws.sqs.get_queue_attributes(QueueUrl=res.queue_urls[q], AttributeNames=["RedrivePolicy"])[
            "Attributes"
        ]["RedrivePolicy"]
    )
    assert redrive["deadLetterTargetArn"].endswith(":" + dlq)

