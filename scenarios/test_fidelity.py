"""Differential test: the simulator and LocalStack must agree on what a client can observe.

One hypothesis ``RuleBasedStateMachine`` (the pattern of hypothesis's
``tests/nocover/test_database_agreement.py``) applies the same generated operations to a FIFO
queue (explicit dedup ids), a FIFO queue with ContentBasedDeduplication (no explicit ids) and a
standard queue on both backends and compares, after every step:

* which bodies a receive returns, in order (FIFO: per-group order and group locking);
* ApproximateReceiveCount, MessageGroupId and MessageDeduplicationId of each received message;
* dedup outcomes (a resend of any earlier id -- in another group, with another body, after the
  original was received or deleted -- answers with the MessageId of the earlier send and is not
  delivered; ids are normalised to the index of their first appearance); the 300 s end of the
  window is not reached (no real waiting: ``tests/sim/test_sim_dedup.py`` checks it on the
  virtual clock);
* error codes (or success) of deletes and visibility changes with live, stale and deleted
  receipt handles.

No real waiting: visibility is ended with ChangeMessageVisibility(0) or receives with
VisibilityTimeout=0, so LocalStack's once-a-second expiry scan never matters. Known divergences
are listed in ``docs/simulator.md``.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from harness.sim import SimAws

pytestmark = pytest.mark.localstack

KINDS = ("fifo", "cbd", "std")
FIFO_KINDS = ("fifo", "cbd")


def outcome(call: Callable[[], Any]) -> tuple[str, Any]:
    try:
        return ("ok", call())
    except ClientError as exc:
        return ("error", exc.response["Error"]["Code"])


class Side:
    """One backend: its SQS client, its two queue URLs and its id normalisation."""

    def __init__(self, sqs: Any, suffix: str) -> None:
        self.sqs = sqs
        self.urls = {
            "fifo": sqs.create_queue(
                QueueName=f"fid-{suffix}.fifo", Attributes={"FifoQueue": "true", "VisibilityTimeout": "60"}
            )["QueueUrl"],
            "cbd": sqs.create_queue(
                QueueName=f"fid-{suffix}-cbd.fifo",
                Attributes={
                    "FifoQueue": "true",
                    "ContentBasedDeduplication": "true",
                    "VisibilityTimeout": "60",
                },
            )["QueueUrl"],
            "std": sqs.create_queue(QueueName=f"fid-{suffix}", Attributes={"VisibilityTimeout": "60"})[
                "QueueUrl"
            ],
        }
        self.ids: dict[str, int] = {}
        self.handles: list[tuple[str, str]] = []  # (kind, receipt handle), index shared by both sides

    def norm(self, message_id: str) -> int:
        return self.ids.setdefault(message_id, len(self.ids))

    def close(self) -> None:
        for url in self.urls.values():
            with contextlib.suppress(ClientError):
                self.sqs.delete_queue(QueueUrl=url)


def make_machine(endpoint: str) -> type[RuleBasedStateMachine]:
    ls_sqs = boto3.client(
        "sqs",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )

    class Agreement(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            suffix = uuid.uuid4().hex[:10]
            self.sim = Side(SimAws(seed=0).client("sqs"), suffix)
            self.real = Side(ls_sqs, suffix)
            self.sent = 0

        def teardown(self) -> None:
            self.real.close()

        def both(self, fn: Callable[[Side], Any]) -> tuple[Any, Any]:
            return fn(self.sim), fn(self.real)

        @rule(
            kind=st.sampled_from(KINDS),
            group=st.sampled_from("ab"),
            resend=st.booleans(),
            back=st.integers(0, 3),
        )
        def send(self, kind: str, group: str, resend: bool, back: int) -> None:
            if resend and self.sent:
                # the dedup id of an earlier send (any group): FIFO drops it inside the window
                body_no = max(1, self.sent - back)
            else:
                self.sent += 1
                body_no = self.sent
            # explicit ids: a resend's body differs (the id decides); content-based: the body is the id
            body = f"{kind}-{body_no}" + (f"-{self.sent}" if kind == "fifo" else "")
            params: dict[str, Any] = {"MessageBody": body}
            if kind == "fifo":
                params.update(MessageGroupId=group, MessageDeduplicationId=f"d{body_no}")
            elif kind == "cbd":
                params.update(MessageGroupId=group)

            def go(side: Side) -> tuple[str, Any]:
                status, value = outcome(lambda: side.sqs.send_message(QueueUrl=side.urls[kind], **params))
                return (status, side.norm(value["MessageId"]) if status == "ok" else value)

            sim, real = self.both(go)
            assert sim == real, f"send {params}: sim={sim} localstack={real}"

        @rule(kind=st.sampled_from(KINDS), count=st.integers(1, 10), zero_visibility=st.booleans())
        def receive(self, kind: str, count: int, zero_visibility: bool) -> None:
            extra = {"VisibilityTimeout": 0} if zero_visibility else {}

            def go(side: Side) -> list[tuple[Any, ...]]:
                got = side.sqs.receive_message(
                    QueueUrl=side.urls[kind], MaxNumberOfMessages=count, AttributeNames=["All"], **extra
                ).get("Messages", [])
                seen = []
                for m in got:
                    side.handles.append((kind, m["ReceiptHandle"]))
                    attrs = m["Attributes"]
                    seen.append(
                        (
                            m["Body"],
                            side.norm(m["MessageId"]),
                            attrs["ApproximateReceiveCount"],
                            attrs.get("MessageGroupId") if kind in FIFO_KINDS else None,
                            attrs.get("MessageDeduplicationId") if kind in FIFO_KINDS else None,
                        )
                    )
                return seen

            sim, real = self.both(go)
            assert sim == real, f"receive {kind} x{count} {extra}: sim={sim} localstack={real}"

        @precondition(lambda self: bool(self.sim.handles))
        @rule(data=st.data())
        def delete(self, data: st.DataObject) -> None:
            index = data.draw(st.integers(0, len(self.sim.handles) - 1))

            def go(side: Side) -> tuple[str, Any]:
                kind, handle = side.handles[index]
                status, value = outcome(
                    lambda: side.sqs.delete_message(QueueUrl=side.urls[kind], ReceiptHandle=handle)
                )
                return (status, None if status == "ok" else value)

            sim, real = self.both(go)
            assert sim == real, f"delete #{index}: sim={sim} localstack={real}"

        @precondition(lambda self: bool(self.sim.handles))
        @rule(data=st.data())
        def release(self, data: st.DataObject) -> None:
            index = data.draw(st.integers(0, len(self.sim.handles) - 1))

            def go(side: Side) -> tuple[str, Any]:
                kind, handle = side.handles[index]
                status, value = outcome(
                    lambda: side.sqs.change_message_visibility(
                        QueueUrl=side.urls[kind], ReceiptHandle=handle, VisibilityTimeout=0
                    )
                )
                return (status, None if status == "ok" else value)

            sim, real = self.both(go)
            assert sim == real, f"change visibility #{index} -> 0: sim={sim} localstack={real}"

        @invariant()
        def counts_agree(self) -> None:
            def go(side: Side) -> list[tuple[str, str]]:
                result = []
                for kind in KINDS:
                    attrs = side.sqs.get_queue_attributes(
                        QueueUrl=side.urls[kind],
                        AttributeNames=[
                            "ApproximateNumberOfMessages",
                            "ApproximateNumberOfMessagesNotVisible",
                        ],
                    )["Attributes"]
                    result.append(
                        (attrs["ApproximateNumberOfMessages"], attrs["ApproximateNumberOfMessagesNotVisible"])
                    )
                return result

            sim, real = self.both(go)
            assert sim == real, f"queue counts (visible, in flight): sim={sim} localstack={real}"

    return Agreement


def test_simulator_agrees_with_localstack(localstack_endpoint: str | None) -> None:
    if localstack_endpoint is None:
        pytest.skip("the fidelity test compares the simulator with LocalStack, not with real AWS")
    endpoint = os.environ.get("AWS_ENDPOINT_URL", localstack_endpoint)
    machine = make_machine(endpoint)
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=int(os.environ.get("FLOWGATE_FIDELITY_EXAMPLES", "15")),
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )


def _fifo_fan_out(sqs: Any, sns: Any, suffix: str, *, content_based: bool) -> list[tuple[str, str, str]]:
    """Publish to a FIFO topic with duplicates (single, batch, across groups, after the first copy
    was received and deleted) and return what its raw FIFO subscription delivered: (body, group,
    deduplication id). The publishes' own MessageIds are not compared: LocalStack answers a
    duplicate with a new one, the simulator (like SQS) with the original's (docs/simulator.md)."""
    attributes = {"FifoTopic": "true", "ContentBasedDeduplication": str(content_based).lower()}
    topic = sns.create_topic(Name=f"fid-{suffix}.fifo", Attributes=attributes)["TopicArn"]
    url = sqs.create_queue(QueueName=f"fid-sub-{suffix}.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    try:
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"})

        def publish(body: str, group: str, dedup: str) -> None:
            extra = {} if content_based else {"MessageDeduplicationId": dedup}
            sns.publish(TopicArn=topic, Message=body, MessageGroupId=group, **extra)

        delivered: list[tuple[str, str, str]] = []

        def take() -> None:
            for _ in range(3):
                got = sqs.receive_message(
                    QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"], WaitTimeSeconds=1
                ).get("Messages", [])
                for m in got:
                    attrs = m["Attributes"]
                    delivered.append((m["Body"], attrs["MessageGroupId"], attrs["MessageDeduplicationId"]))
                    sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
                if not got and delivered:
                    return

        publish("e1", "g1", "d1")
        publish("e1" if content_based else "e1-again", "g2", "d1")  # another group: still a duplicate
        publish("e2", "g1", "d2")
        take()
        publish("e1" if content_based else "e1-late", "g1", "d1")  # after its copy was deleted
        entries = [
            {"Id": "1", "Message": "e3", "MessageGroupId": "g1", "MessageDeduplicationId": "d3"},
            {"Id": "2", "Message": "e3", "MessageGroupId": "g1", "MessageDeduplicationId": "d3"},
            {"Id": "3", "Message": "e2", "MessageGroupId": "g2", "MessageDeduplicationId": "d2"},
        ]
        if content_based:
            entries = [{k: v for k, v in e.items() if k != "MessageDeduplicationId"} for e in entries]
        sns.publish_batch(TopicArn=topic, PublishBatchRequestEntries=entries)
        take()
        return delivered
    finally:
        with contextlib.suppress(ClientError):
            sqs.delete_queue(QueueUrl=url)
        with contextlib.suppress(ClientError):
            sns.delete_topic(TopicArn=topic)


@pytest.mark.parametrize("content_based", [False, True], ids=["explicit-ids", "content-based"])
def test_fifo_topic_deduplication_agrees_with_localstack(
    localstack_endpoint: str | None, content_based: bool
) -> None:
    """A FIFO topic's duplicates (explicit ids or SHA-256 of the message) reach its FIFO
    subscription once on both backends (the simulator deduplicates at the topic, LocalStack at
    the queue: one subscription cannot tell them apart)."""
    if localstack_endpoint is None:
        pytest.skip("the fidelity test compares the simulator with LocalStack, not with real AWS")
    endpoint = os.environ.get("AWS_ENDPOINT_URL", localstack_endpoint)
    creds = {"region_name": "us-east-1", "aws_access_key_id": "test", "aws_secret_access_key": "test"}
    real = [boto3.client(s, endpoint_url=endpoint, **creds) for s in ("sqs", "sns")]  # type: ignore[call-overload]
    sim = SimAws(seed=0)
    suffix = uuid.uuid4().hex[:10]
    expected = _fifo_fan_out(sim.client("sqs"), sim.client("sns"), suffix, content_based=content_based)
    assert [body for body, _, _ in expected] == ["e1", "e2", "e3"]
    assert _fifo_fan_out(*real, suffix, content_based=content_based) == expected
