"""Failure detection on the simulator (``harness/detection.py``, ``docs/operating.md``): for every
failure of the matrix the matching alarm fires within the stated virtual time and clears after
recovery, no alarm fires in a clean run; the backlog counts in-flight messages; the partner
feed's error path (seed 004) is the sound one: retention as the seed says, a DLQ on the error
queue, ``MessageGroupId`` = partnerId, rejected orders counted and logged."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowgate.harness.detection import (
    CASES,
    ERRORS,
    ERRORS_RETENTION,
    ORDERS,
    ORDERS_RETENTION,
    DetectionWorld,
    run_case,
    run_clean,
    table,
)
from flowgate.harness.sim import SimAws
from flowgate.reference.monitoring import Monitor


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_failure_is_detected(case) -> None:
    detection = run_case(case)
    print(table([detection]))
    assert detection.ok, detection.verdict()


def test_clean_run_fires_no_alarm() -> None:
    fired = run_clean(seconds=900.0)
    assert fired == [], "flowgate-anomalies: false-alarm\n" + "\n".join(
        f"{t.alarm} at {t.time}: {t.reason}" for t in fired
    )


@settings(max_examples=25, deadline=None)
@given(sent=st.integers(0, 40), received=st.integers(0, 40), deleted=st.integers(0, 40))
def test_backlog_counts_visible_and_in_flight(sent: int, received: int, deleted: int) -> None:
    """Backlog = visible + in flight; DLQ depth and growth from the DLQ's own counts."""
    aws = SimAws(seed=1)
    sqs = aws.client("sqs")
    url = sqs.create_queue(QueueName="q")["QueueUrl"]
    dlq = sqs.create_queue(QueueName="q-dlq")["QueueUrl"]
    for n in range(sent):
        sqs.send_message(QueueUrl=url, MessageBody=str(n))
    handles = []
    while len(handles) < min(received, sent):
        got = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=min(10, received - len(handles)), VisibilityTimeout=300
        ).get("Messages", [])
        handles += [m["ReceiptHandle"] for m in got]
    for h in handles[:deleted]:
        sqs.delete_message(QueueUrl=url, ReceiptHandle=h)
    gone = min(deleted, len(handles))
    monitor = Monitor(sqs, "q", url, dlq, gauges=list, clock=aws.clock.now)
    first = monitor.sample()
    want = {"Backlog": sent - gone, "InFlight": len(handles) - gone, "Visible": sent - len(handles)}
    got = {k: first[k] for k in want}
    assert got == want, f"flowgate-anomalies: backlog-wrong\n{got} != {want}"
    assert first["DlqGrowth"] is None  # no earlier datapoint
    sqs.send_message(QueueUrl=dlq, MessageBody="dead")
    second = monitor.sample()
    assert (second["DlqDepth"], second["DlqGrowth"]) == (1.0, 1.0)


def test_error_path_is_the_sound_version() -> None:
    """Seed 004's queues with the seed's retention, the error queue WITH a DLQ (D31), orders
    grouped per partner, rejected orders counted (OrdersRejected) and in the error log."""
    try:
        _error_path()
    except (AssertionError, KeyError) as exc:
        raise AssertionError(f"flowgate-anomalies: error-path\n{exc}") from exc


def _error_path() -> None:
    world = DetectionWorld(seed=3, rate=2.0)
    sqs = world.sqs
    attrs = {
        q: sqs.get_queue_attributes(QueueUrl=world.resources.queue_urls[q], AttributeNames=["All"])[
            "Attributes"
        ]
        for q in (ORDERS, ERRORS)
    }
    assert attrs[ORDERS]["MessageRetentionPeriod"] == str(ORDERS_RETENTION)
    assert attrs[ERRORS]["MessageRetentionPeriod"] == str(ERRORS_RETENTION)
    error_dlq = sqs.get_queue_attributes(QueueUrl=world.resources.dlq_urls[ERRORS], AttributeNames=["All"])[
        "Attributes"
    ]
    assert json.loads(attrs[ERRORS]["RedrivePolicy"])["deadLetterTargetArn"] == error_dlq["QueueArn"]
    assert error_dlq["MessageRetentionPeriod"] == str(ERRORS_RETENTION)
    # ordering per partner: the order queue's MessageGroupId is the partnerId
    world.alive = [False] * world.workers
    world.run_for(5)
    got = sqs.receive_message(
        QueueUrl=world.resources.queue_urls[ORDERS],
        MaxNumberOfMessages=10,
        AttributeNames=["MessageGroupId"],
        VisibilityTimeout=0,
    )["Messages"]
    for m in got:
        body = json.loads(m["Body"])
        assert m["Attributes"]["MessageGroupId"] == body["payload"]["partnerId"]
    world.alive = [True] * world.workers
    world.invalid_share = 0.5
    world.run_for(120)
    world.rate = 0.0
    world.run_for(120)
    rejected = sum(p["OrdersRejected"] or 0 for _, p in world.monitor.datapoints)
    validated = sum(p["OrdersValidated"] or 0 for _, p in world.monitor.datapoints)
    received = sum(p["OrdersReceived"] or 0 for _, p in world.monitor.datapoints)
    assert rejected > 0
    assert validated > 0
    assert received == rejected + validated == world.sent
    assert len(world.storage.list_view("partner-errors")) == rejected
