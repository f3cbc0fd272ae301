"""Differential tests: the simulator and LocalStack must agree on what a client can observe.

Two hypothesis ``RuleBasedStateMachine`` s (the pattern of hypothesis's
``tests/nocover/test_database_agreement.py``) apply the same generated operations to both
backends and compare after every step; a third test waits out the 5-minute dedup window.

**SQS** (``test_simulator_agrees_with_localstack``): a FIFO queue (explicit dedup ids), a FIFO
queue with ContentBasedDeduplication (no explicit ids) and a standard queue; compared:

* which bodies a receive returns, in order (FIFO: per-group order and group locking);
* ApproximateReceiveCount, MessageGroupId and MessageDeduplicationId of each received message;
* dedup outcomes (a resend of any earlier id -- in another group, with another body, after the
  original was received or deleted -- answers with the MessageId of the earlier send and is not
  delivered; ids are normalised to the index of their first appearance); the 300 s end of the
  window is not reached here (``test_dedup_window_end_agrees_with_localstack``, below);
* error codes (or success) of deletes and visibility changes with live, stale and deleted
  receipt handles.

No real waiting: visibility is ended with ChangeMessageVisibility(0) or receives with
VisibilityTimeout=0, so LocalStack's once-a-second expiry scan never matters.

**SNS and KMS** (``test_sns_and_kms_agree_with_localstack``): every SNS and KMS call the
reference and the gate make -- CreateTopic, GetTopicAttributes, Subscribe, Unsubscribe, Publish,
PublishBatch (resends within and across batches, invalid entries), raw and envelope fan-out with
message attributes to FIFO and standard queues; CreateKey, DescribeKey, GenerateDataKey, Decrypt
(wrong, missing and extra context, wrong / unknown KeyId, tampered blob), DisableKey, EnableKey,
ScheduleKeyDeletion. LocalStack fans out asynchronously: after each publish it is given up to
``FAN_OUT_WAIT`` seconds to reach the message counts the simulator reached at once.

**Dedup window** (``test_dedup_window_end_agrees_with_localstack``, ``realtime``: ``nox -s
realtime``, not ``nox -s integration``): a duplicate inside and the same id after the 300 s
window, on a FIFO queue and two FIFO topics; the simulator's clock jumps, LocalStack is waited for.

Under ``--mutant NAME`` the simulator runs as that mutant (``harness/mutants/catalog.py``,
``subject="simulator"``): these tests are its killers. Known divergences are listed in
``docs/simulator.md``.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from flowgate.fixtures.scenario import in_process_mutant
from flowgate.harness.sim import SimAws
from flowgate.harness.sim.sqs import DEDUP_WINDOW

pytestmark = pytest.mark.localstack

KINDS = ("fifo", "cbd", "std")
FIFO_KINDS = ("fifo", "cbd")


@pytest.fixture(autouse=True)
def in_mutant(mutant: str | None) -> Iterator[str | None]:
    """The simulator (and reference) as mutant ``--mutant NAME`` for every test of this module:
    the differential tests are the killers of the simulator's mutants."""
    with in_process_mutant(mutant):
        yield mutant


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


# ============================================================================ SNS and KMS
#: topics of the SNS/KMS machine: a FIFO topic with explicit dedup ids, a FIFO topic with
#: content-based dedup, a standard topic; each with the SQS subscriptions listed in SUBSCRIPTIONS
TOPICS = ("fifo", "cbd", "std")
#: subscription name -> (topic, FIFO queue, raw delivery)
SUBSCRIPTIONS: dict[str, tuple[str, bool, bool]] = {
    "fifo-raw": ("fifo", True, True),
    "fifo-env": ("fifo", True, False),
    "cbd-raw": ("cbd", True, True),
    "std-raw": ("std", False, True),
    "std-env": ("std", False, False),
}
#: message attributes a publish may carry (raw delivery must hand them to SQS unchanged)
ATTRIBUTE_SETS: tuple[dict[str, dict[str, Any]], ...] = (
    {},
    {"EventType": {"DataType": "String", "StringValue": "OrderPlaced"}},
    {
        "EventType": {"DataType": "String", "StringValue": "OrderPaid"},
        "SequenceNo": {"DataType": "Number", "StringValue": "7"},
        "Blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01fg"},
        "Trace.Id": {"DataType": "String.custom", "StringValue": "00-abc-01"},
    },
)
#: PublishBatch entries that make a topic refuse the whole request, at most one kind per batch (the
#: order of the checks differs; an empty message and a dedup id on a standard topic are left out:
#: LocalStack accepts them in a batch; docs/simulator.md)
BAD_ENTRIES = ("no-group", "bad-type")
#: encryption contexts a data key is made under (the reference's binding has four fields)
CONTEXTS: tuple[dict[str, str], ...] = (
    {},
    {"message_id": "m1", "destination": "orders.fifo"},
    {"message_id": "m2", "destination": "orders.fifo", "entity_id": "o-1", "type": "PlaceOrder"},
)
KEYS = ("k1", "k2", "k3")
#: time (s) LocalStack gets to fan a publish out to its subscribed queues (asynchronous there,
#: synchronous in the simulator)
FAN_OUT_WAIT = 5.0


class Cloud:
    """One backend of the SNS/KMS machine: clients, topics, subscribed queues, keys, and the
    normalisation of its identifiers (ARNs and key ids become names shared by both sides)."""

    def __init__(self, sqs: Any, sns: Any, kms: Any, suffix: str) -> None:
        self.sqs, self.sns, self.kms = sqs, sns, kms
        self.topic_attrs = {
            "fifo": {"FifoTopic": "true", "ContentBasedDeduplication": "false"},
            "cbd": {"FifoTopic": "true", "ContentBasedDeduplication": "true"},
            "std": {},
        }
        self.topics = {
            kind: sns.create_topic(Name=self.topic_name(kind, suffix), Attributes=attrs)["TopicArn"]
            for kind, attrs in self.topic_attrs.items()
        }
        self.suffix = suffix
        self.urls: dict[str, str] = {}
        self.arns: dict[str, str] = {}
        self.subscriptions: dict[str, str | None] = {}
        for name, (_, fifo, _raw) in SUBSCRIPTIONS.items():
            attrs = {"FifoQueue": "true"} if fifo else {}
            queue = f"fsk-{suffix}-{name}" + (".fifo" if fifo else "")
            self.urls[name] = sqs.create_queue(QueueName=queue, Attributes=attrs)["QueueUrl"]
            self.arns[name] = sqs.get_queue_attributes(QueueUrl=self.urls[name], AttributeNames=["QueueArn"])[
                "Attributes"
            ]["QueueArn"]
            self.subscriptions[name] = self.subscribe(name)[1]
        self.keys: dict[str, dict[str, str]] = {}
        for key in KEYS:
            meta = kms.create_key(Description=f"flowgate fidelity {suffix} {key}")["KeyMetadata"]
            self.keys[key] = {"id": meta["KeyId"], "arn": meta["Arn"]}
        #: data keys made so far (index shared by both sides): (key, context, blob, plaintext)
        self.data_keys: list[tuple[str, dict[str, str], bytes, bytes]] = []

    @staticmethod
    def topic_name(kind: str, suffix: str) -> str:
        return f"fsk-{suffix}-{kind}" + (".fifo" if kind in ("fifo", "cbd") else "")

    def subscribe(self, name: str, raw: bool | None = None) -> tuple[str, Any]:
        topic, _, default_raw = SUBSCRIPTIONS[name]
        raw = default_raw if raw is None else raw
        status, value = outcome(
            lambda: self.sns.subscribe(
                TopicArn=self.topics[topic],
                Protocol="sqs",
                Endpoint=self.arns[name],
                Attributes={"RawMessageDelivery": str(raw).lower()},
                ReturnSubscriptionArn=True,
            )["SubscriptionArn"]
        )
        return status, value

    def norm(self, value: Any) -> Any:
        """Replace this side's ARNs, key ids and queue URLs by names both sides share."""
        if isinstance(value, str):
            for key, ids in self.keys.items():
                value = value.replace(ids["arn"], f"<{key}-arn>").replace(ids["id"], f"<{key}-id>")
            for name, sub in self.subscriptions.items():
                if sub:
                    value = value.replace(sub, f"<sub-{name}>")
            return value.replace(self.suffix, "<suffix>")
        if isinstance(value, dict):
            return {k: self.norm(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.norm(v) for v in value]
        return value

    def counts(self, names: Sequence[str]) -> list[int]:
        """Messages in each named queue (visible + in flight)."""
        result = []
        for name in names:
            attrs = self.sqs.get_queue_attributes(
                QueueUrl=self.urls[name],
                AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
            )["Attributes"]
            result.append(
                int(attrs["ApproximateNumberOfMessages"])
                + int(attrs["ApproximateNumberOfMessagesNotVisible"])
            )
        return result

    def close(self) -> None:
        for name, sub in self.subscriptions.items():
            if sub:
                with contextlib.suppress(ClientError):
                    self.sns.unsubscribe(SubscriptionArn=sub)
            with contextlib.suppress(ClientError):
                self.sqs.delete_queue(QueueUrl=self.urls[name])
        for arn in self.topics.values():
            with contextlib.suppress(ClientError):
                self.sns.delete_topic(TopicArn=arn)
        for ids in self.keys.values():
            with contextlib.suppress(ClientError):
                self.kms.schedule_key_deletion(KeyId=ids["id"], PendingWindowInDays=7)


def _delivery(cloud: Cloud, name: str, message: dict[str, Any]) -> tuple[Any, ...]:
    """What a subscriber sees of one delivered message, identifiers normalised: the body (for an
    SNS envelope: its fields that carry content, and the set of its keys), message attributes
    with MD5OfMessageAttributes, group and deduplication ids."""
    fifo = SUBSCRIPTIONS[name][1]
    body: Any = message["Body"]
    # told apart by the body, not by the subscription: a queue re-subscribed with the other
    # delivery still holds messages of the first (the machine's raw bodies are never JSON)
    if body.startswith("{"):
        envelope = json.loads(body)
        body = (
            sorted(envelope),
            envelope.get("Type"),
            envelope.get("Message"),
            envelope.get("Subject"),
            cloud.norm(envelope.get("TopicArn")),
            envelope.get("MessageAttributes"),
        )
    attrs = message.get("Attributes", {})
    return (
        body,
        message.get("MessageAttributes"),
        message.get("MD5OfMessageAttributes"),
        attrs.get("MessageGroupId") if fifo else None,
        attrs.get("MessageDeduplicationId") if fifo else None,
    )


def make_sns_kms_machine(endpoint: str) -> type[RuleBasedStateMachine]:
    creds = {"region_name": "us-east-1", "aws_access_key_id": "test", "aws_secret_access_key": "test"}
    real_clients = [boto3.client(s, endpoint_url=endpoint, **creds) for s in ("sqs", "sns", "kms")]  # type: ignore[call-overload]

    class SnsKmsAgreement(RuleBasedStateMachine):
        """The calls the reference and the gate make on SNS and KMS, on both backends, compared
        after every step (``docs/simulator.md``, "Divergences")."""

        def __init__(self) -> None:
            super().__init__()
            suffix = uuid.uuid4().hex[:10]
            sim = SimAws(seed=0)
            self.sim = Cloud(sim.client("sqs"), sim.client("sns"), sim.client("kms"), suffix)
            self.real = Cloud(*real_clients, suffix)
            self.published = 0
            self.scheduled = False

        def teardown(self) -> None:
            """Drain every subscribed queue on both sides and compare what is left, then delete
            this example's resources."""
            try:
                for name in SUBSCRIPTIONS:
                    for _ in range(5):
                        if not self.take(name):
                            break
            finally:
                self.real.close()

        def both(self, fn: Callable[[Cloud], Any]) -> tuple[Any, Any]:
            return fn(self.sim), fn(self.real)

        def agree(self, what: str, fn: Callable[[Cloud], Any]) -> tuple[Any, Any]:
            sim, real = self.both(fn)
            assert sim == real, f"{what}: sim={sim} localstack={real}"
            return sim, real

        def settle(self, topic: str) -> None:
            """Wait (bounded) until LocalStack has fanned out what the simulator delivered at
            once, then compare the subscribed queues' message counts."""
            names = [n for n, (t, _, _) in SUBSCRIPTIONS.items() if t == topic]
            want = self.sim.counts(names)
            ends = time.monotonic() + FAN_OUT_WAIT
            have = self.real.counts(names)
            while have != want and time.monotonic() < ends:
                time.sleep(0.05)
                have = self.real.counts(names)
            assert want == have, f"messages in {names} after fan-out: sim={want} localstack={have}"

        # ------------------------------------------------------------------ SNS
        def _message(self, topic: str, resend: bool, back: int) -> tuple[str, str]:
            """(body, dedup id): a resend repeats an earlier id (explicit-id topic: with another
            body) or an earlier body (content-based topic)."""
            if resend and self.published:
                number = max(1, self.published - back)
            else:
                self.published += 1
                number = self.published
            body = f"{topic}-{number}" + (f"-{self.published}" if topic != "cbd" else "")
            return body, f"d{number}"

        @rule(
            topic=st.sampled_from(TOPICS),
            group=st.sampled_from("ab"),
            resend=st.booleans(),
            back=st.integers(0, 3),
            attributes=st.sampled_from(ATTRIBUTE_SETS),
            subject=st.sampled_from([None, "PlaceOrder"]),
        )
        def publish(
            self,
            topic: str,
            group: str,
            resend: bool,
            back: int,
            attributes: dict[str, Any],
            subject: str | None,
        ) -> None:
            body, dedup = self._message(topic, resend, back)
            params: dict[str, Any] = {"Message": body}
            if attributes:
                params["MessageAttributes"] = attributes
            if subject:
                params["Subject"] = subject
            if topic != "std":
                params["MessageGroupId"] = group
            if topic == "fifo":
                params["MessageDeduplicationId"] = dedup

            def go(cloud: Cloud) -> tuple[str, Any]:
                status, value = outcome(lambda: cloud.sns.publish(TopicArn=cloud.topics[topic], **params))
                # MessageIds differ by construction; a duplicate's id is a known divergence
                return (
                    status,
                    sorted(k for k in value if k != "ResponseMetadata") if status == "ok" else value,
                )

            self.agree(f"publish to {topic} {params}", go)
            self.settle(topic)

        @rule(
            topic=st.sampled_from(TOPICS),
            entries=st.lists(
                st.tuples(
                    st.sampled_from(("new", "resend", *BAD_ENTRIES)), st.sampled_from("ab"), st.integers(0, 3)
                ),
                min_size=1,
                max_size=4,
            ).filter(lambda es: len({k for k, _, _ in es} & set(BAD_ENTRIES)) <= 1),
            attributes=st.sampled_from(ATTRIBUTE_SETS),
        )
        def publish_batch(
            self, topic: str, entries: list[tuple[str, str, int]], attributes: dict[str, Any]
        ) -> None:
            batch = []
            for index, (kind, group, back) in enumerate(entries):
                body, dedup = self._message(topic, kind == "resend", back)
                entry: dict[str, Any] = {"Id": f"e{index}", "Message": body}
                if attributes:
                    entry["MessageAttributes"] = attributes
                if topic != "std" and kind != "no-group":
                    entry["MessageGroupId"] = group
                if topic == "fifo":
                    entry["MessageDeduplicationId"] = dedup
                if kind == "bad-type":
                    entry["MessageAttributes"] = {"EventType": {"DataType": "Text", "StringValue": "x"}}
                batch.append(entry)

            def go(cloud: Cloud) -> tuple[str, Any]:
                status, value = outcome(
                    lambda: cloud.sns.publish_batch(
                        TopicArn=cloud.topics[topic], PublishBatchRequestEntries=batch
                    )
                )
                if status != "ok":
                    return (status, value)
                return (
                    status,
                    sorted(e["Id"] for e in value["Successful"]),
                    sorted((e["Id"], e["Code"], e["SenderFault"]) for e in value["Failed"]),
                )

            self.agree(f"publish_batch to {topic} {[e for e, _, _ in entries]}", go)
            self.settle(topic)

        @rule(name=st.sampled_from(sorted(SUBSCRIPTIONS)))
        def receive(self, name: str) -> None:
            self.take(name)

        def take(self, name: str) -> int:
            """Receive up to 10 messages of a subscribed queue, compare them, delete them; returns
            how many."""
            fifo = SUBSCRIPTIONS[name][1]

            def go(cloud: Cloud) -> list[tuple[Any, ...]]:
                got = cloud.sqs.receive_message(
                    QueueUrl=cloud.urls[name],
                    MaxNumberOfMessages=10,
                    AttributeNames=["All"],
                    MessageAttributeNames=["All"],
                ).get("Messages", [])
                if got:
                    cloud.sqs.delete_message_batch(
                        QueueUrl=cloud.urls[name],
                        Entries=[
                            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)
                        ],
                    )
                seen = [_delivery(cloud, name, m) for m in got]
                # a standard topic fans a batch out concurrently on LocalStack: order is not kept
                return seen if fifo else sorted(seen, key=repr)

            sim, _ = self.agree(f"receive from {name}", go)
            return len(sim)

        def create_topic_again(self, topic: str, same: bool) -> None:
            """CreateTopic is idempotent with the same attributes; other attributes are refused
            (the bootstrapper adopts the topic on InvalidParameter)."""
            attrs = dict(self.sim.topic_attrs[topic])
            if not same:
                attrs = (
                    {**attrs, "ContentBasedDeduplication": "true" if topic == "fifo" else "false"}
                    if topic != "std"
                    else {"FifoTopic": "true"}
                )

            def go(cloud: Cloud) -> tuple[str, Any]:
                status, value = outcome(
                    lambda: cloud.sns.create_topic(
                        Name=cloud.topic_name(topic, cloud.suffix), Attributes=attrs
                    )
                )
                return (status, value["TopicArn"] == cloud.topics[topic] if status == "ok" else value)

            self.agree(f"create_topic {topic} again with {attrs}", go)

        def topic_attributes(self, topic: str) -> None:
            def go(cloud: Cloud) -> dict[str, Any]:
                attrs = cloud.sns.get_topic_attributes(TopicArn=cloud.topics[topic])["Attributes"]
                # SubscriptionsConfirmed: LocalStack says 0 (docs/simulator.md, divergences)
                keys = ("FifoTopic", "ContentBasedDeduplication", "TopicArn")
                return cloud.norm({k: attrs.get(k) for k in keys})

            self.agree(f"get_topic_attributes {topic}", go)

        def subscribe_again(self, name: str, flip_raw: bool) -> None:
            """Subscribe is idempotent (same ARN) for the same attributes; another
            RawMessageDelivery on an existing subscription is refused."""
            raw = SUBSCRIPTIONS[name][2] != flip_raw

            def go(cloud: Cloud) -> tuple[str, Any]:
                status, value = cloud.subscribe(name, raw)
                if status == "ok" and cloud.subscriptions[name] is None:
                    cloud.subscriptions[name] = value
                    return (status, "new")
                return (status, value == cloud.subscriptions[name] if status == "ok" else value)

            self.agree(f"subscribe {name} again raw={raw}", go)

        def unsubscribe(self, name: str) -> None:
            def go(cloud: Cloud) -> tuple[str, Any]:
                arn = cloud.subscriptions[name]
                status, value = outcome(lambda: cloud.sns.unsubscribe(SubscriptionArn=arn))
                cloud.subscriptions[name] = None
                return (status, None if status == "ok" else value)

            self.agree(f"unsubscribe {name}", go)

        #: topology actions, weighted (repeats) so that publishing and receiving dominate a run
        @rule(
            data=st.data(),
            action=st.sampled_from(("create_topic", "attributes", "subscribe", "subscribe", "unsubscribe")),
        )
        def topology(self, data: st.DataObject, action: str) -> None:
            """The bootstrapper's and the gate's topology calls: CreateTopic again (same or other
            attributes), GetTopicAttributes, Subscribe again (same or other raw delivery; a new
            subscription after Unsubscribe), Unsubscribe."""
            if action == "create_topic":
                self.create_topic_again(data.draw(st.sampled_from(TOPICS)), data.draw(st.booleans()))
            elif action == "attributes":
                self.topic_attributes(data.draw(st.sampled_from(TOPICS)))
            elif action == "subscribe" or not any(self.sim.subscriptions.values()):
                self.subscribe_again(
                    data.draw(st.sampled_from(sorted(SUBSCRIPTIONS))), data.draw(st.booleans())
                )
            else:
                live = sorted(n for n, s in self.sim.subscriptions.items() if s)
                self.unsubscribe(data.draw(st.sampled_from(live)))

        # ------------------------------------------------------------------ KMS
        @rule(
            data=st.data(),
            action=st.sampled_from(("describe", "describe", "disable", "enable", "enable", "schedule")),
        )
        def key_admin(self, data: st.DataObject, action: str) -> None:
            """DescribeKey (id, ARN, unknown key), DisableKey / EnableKey (the gate's KMS outage),
            ScheduleKeyDeletion of k3 once (the gate's teardown)."""
            if action == "describe":
                self.describe_key(
                    data.draw(st.sampled_from((*KEYS, "unknown"))), data.draw(st.sampled_from(("id", "arn")))
                )
            elif action == "schedule" and not self.scheduled:
                self.scheduled = True
                self.schedule_key_deletion()
            else:
                self.set_key_enabled(data.draw(st.sampled_from(KEYS)), action == "enable")

        def _key_ref(self, cloud: Cloud, key: str, form: str) -> str:
            if key == "unknown":
                unknown = "0b9a8f4e-1d1c-4e8e-9d4a-3f0c2b7a6e51"
                return unknown if form == "id" else f"arn:aws:kms:us-east-1:000000000000:key/{unknown}"
            return cloud.keys[key][form]

        @rule(
            key=st.sampled_from((*KEYS, "unknown")),
            form=st.sampled_from(("id", "arn")),
            context=st.sampled_from(CONTEXTS),
            # NumberOfBytes=16: LocalStack returns 32 bytes (docs/simulator.md, divergences)
            spec=st.sampled_from(("AES_256", 32)),
        )
        def generate_data_key(self, key: str, form: str, context: dict[str, str], spec: str | int) -> None:
            size = {"KeySpec": spec} if isinstance(spec, str) else {"NumberOfBytes": spec}

            def go(cloud: Cloud) -> tuple[str, Any]:
                status, value = outcome(
                    lambda: cloud.kms.generate_data_key(
                        KeyId=self._key_ref(cloud, key, form), EncryptionContext=context, **size
                    )
                )
                if status != "ok":
                    return (status, value)
                cloud.data_keys.append((key, context, value["CiphertextBlob"], value["Plaintext"]))
                return (status, cloud.norm(value["KeyId"]), len(value["Plaintext"]))

            self.agree(f"generate_data_key {key} ({form}) {size} context={context}", go)

        @precondition(lambda self: bool(self.sim.data_keys))
        @rule(
            data=st.data(),
            context_change=st.sampled_from(
                ("same", "same", "none", "other-value", "extra-pair", "missing-pair")
            ),
            key_id=st.sampled_from(("none", "own", "own", "own-id", "other", "unknown")),
            tamper=st.sampled_from((False, False, False, True)),
        )
        def decrypt(self, data: st.DataObject, context_change: str, key_id: str, tamper: bool) -> None:
            index = data.draw(st.integers(0, len(self.sim.data_keys) - 1))
            sim_key = self.sim.data_keys[index][0]

            def go(cloud: Cloud) -> tuple[str, Any]:
                key, context, blob, plaintext = cloud.data_keys[index]
                ctx = dict(context)
                if context_change == "none":
                    ctx = {}
                elif context_change == "other-value":
                    ctx = {**ctx, "message_id": "m-other"}
                elif context_change == "extra-pair":
                    ctx = {**ctx, "extra": "x"}
                elif context_change == "missing-pair" and ctx:
                    ctx.pop(sorted(ctx)[0])
                extra: dict[str, str] = {}
                if key_id == "own":
                    extra["KeyId"] = cloud.keys[key]["arn"]
                elif key_id == "own-id":
                    extra["KeyId"] = cloud.keys[key]["id"]
                elif key_id == "other":
                    extra["KeyId"] = cloud.keys["k2" if key != "k2" else "k1"]["arn"]
                elif key_id == "unknown":
                    extra["KeyId"] = self._key_ref(cloud, "unknown", "arn")
                if tamper:
                    blob = blob[:-1] + bytes([blob[-1] ^ 1])
                status, value = outcome(
                    lambda: cloud.kms.decrypt(CiphertextBlob=blob, EncryptionContext=ctx, **extra)
                )
                if status != "ok":
                    return (status, value)
                return (status, cloud.norm(value["KeyId"]), value["Plaintext"] == plaintext)

            self.agree(
                f"decrypt data key #{index} (of {sim_key}) context {context_change}, KeyId {key_id}, "
                f"tampered={tamper}",
                go,
            )

        def set_key_enabled(self, key: str, enable: bool) -> None:
            def go(cloud: Cloud) -> tuple[str, Any]:
                call = cloud.kms.enable_key if enable else cloud.kms.disable_key
                status, value = outcome(lambda: call(KeyId=cloud.keys[key]["id"]))
                return (status, None if status == "ok" else value)

            self.agree(f"{'enable' if enable else 'disable'}_key {key}", go)

        def schedule_key_deletion(self) -> None:
            """k3 goes pending deletion (the gate's teardown); later calls with it fail."""

            def go(cloud: Cloud) -> tuple[str, Any]:
                status, value = outcome(
                    lambda: cloud.kms.schedule_key_deletion(
                        KeyId=cloud.keys["k3"]["id"], PendingWindowInDays=7
                    )
                )
                return (status, cloud.norm(value["KeyState"]) if status == "ok" else value)

            self.agree("schedule_key_deletion k3", go)

        def describe_key(self, key: str, form: str) -> None:
            def go(cloud: Cloud) -> tuple[str, Any]:
                status, value = outcome(lambda: cloud.kms.describe_key(KeyId=self._key_ref(cloud, key, form)))
                if status != "ok":
                    return (status, value)
                meta = value["KeyMetadata"]
                fields = ("KeyId", "Arn", "KeyState", "Enabled", "KeyUsage", "KeySpec")
                return (status, cloud.norm({k: meta.get(k) for k in fields}))

            self.agree(f"describe_key {key} ({form})", go)

    return SnsKmsAgreement


def test_sns_and_kms_agree_with_localstack(localstack_endpoint: str | None, in_mutant: str | None) -> None:
    if localstack_endpoint is None:
        pytest.skip("the fidelity test compares the simulator with LocalStack, not with real AWS")
    endpoint = os.environ.get("AWS_ENDPOINT_URL", localstack_endpoint)
    run_state_machine_as_test(
        make_sns_kms_machine(endpoint),
        settings=settings(
            max_examples=int(os.environ.get("FLOWGATE_FIDELITY_EXAMPLES", "20")),
            stateful_step_count=40,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
            # under a mutant: no shrinking (a kill is a kill), no example database
            **({"database": None, "phases": [Phase.generate]} if in_mutant else {}),
        ),
    )


def _dedup_window(sqs: Any, sns: Any, suffix: str, wait: Callable[[], None]) -> list[Any]:
    """Duplicates inside the 300 s window and after it, on a FIFO queue (explicit id) and on two
    FIFO topics (explicit id; content-based) with raw FIFO subscriptions: ``wait`` ends the window
    (virtual clock or real time). Returns, per phase, the bodies each queue delivered."""
    fifo = {"FifoQueue": "true"}
    direct = sqs.create_queue(QueueName=f"fdw-{suffix}-q.fifo", Attributes=fifo)["QueueUrl"]
    topics, queues = {}, {"direct": direct}
    for kind, cbd in (("fifo", "false"), ("cbd", "true")):
        topics[kind] = sns.create_topic(
            Name=f"fdw-{suffix}-{kind}.fifo",
            Attributes={"FifoTopic": "true", "ContentBasedDeduplication": cbd},
        )["TopicArn"]
        queues[kind] = sqs.create_queue(QueueName=f"fdw-{suffix}-{kind}-sub.fifo", Attributes=fifo)[
            "QueueUrl"
        ]
        arn = sqs.get_queue_attributes(QueueUrl=queues[kind], AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        sns.subscribe(
            TopicArn=topics[kind], Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"}
        )

    def send_twice(tag: str) -> None:
        for copy in ("", "-again"):
            sqs.send_message(
                QueueUrl=direct, MessageBody=f"{tag}{copy}", MessageGroupId="g", MessageDeduplicationId="d1"
            )
            sns.publish(
                TopicArn=topics["fifo"],
                Message=f"{tag}{copy}",
                MessageGroupId="g",
                MessageDeduplicationId="d1",
            )
            sns.publish(TopicArn=topics["cbd"], Message="same body", MessageGroupId="g")

    def drain() -> dict[str, list[str]]:
        got: dict[str, list[str]] = {}
        for name, url in queues.items():
            bodies: list[str] = []
            for _ in range(10):  # LocalStack fans out asynchronously: a few short long-polls
                messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
                    "Messages", []
                )
                for m in messages:
                    bodies.append(m["Body"])
                    sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
                if bodies and not messages:
                    break
            got[name] = bodies
        return got

    try:
        send_twice("first")
        inside = drain()
        wait()
        send_twice("late")
        return [inside, drain()]
    finally:
        for url in queues.values():
            with contextlib.suppress(ClientError):
                sqs.delete_queue(QueueUrl=url)
        for arn in topics.values():
            with contextlib.suppress(ClientError):
                sns.delete_topic(TopicArn=arn)


@pytest.mark.slow
@pytest.mark.realtime
def test_dedup_window_end_agrees_with_localstack(localstack_endpoint: str | None) -> None:
    """A duplicate inside the 5-minute window is dropped, the same id after it is delivered (and
    opens a new window), on a FIFO queue and through FIFO topics: the simulator's virtual clock
    jumps 301 s, LocalStack is waited for in real time (5 minutes: ``nox -s realtime``, not part
    of ``nox -s integration``)."""
    if localstack_endpoint is None:
        pytest.skip("the fidelity test compares the simulator with LocalStack, not with real AWS")
    endpoint = os.environ.get("AWS_ENDPOINT_URL", localstack_endpoint)
    creds = {"region_name": "us-east-1", "aws_access_key_id": "test", "aws_secret_access_key": "test"}
    real = [boto3.client(s, endpoint_url=endpoint, **creds) for s in ("sqs", "sns")]  # type: ignore[call-overload]
    sim = SimAws(seed=0)
    suffix = uuid.uuid4().hex[:10]
    window = DEDUP_WINDOW + 1
    expected = _dedup_window(sim.client("sqs"), sim.client("sns"), suffix, lambda: sim.clock.advance(window))
    assert expected == [
        {"direct": ["first"], "fifo": ["first"], "cbd": ["same body"]},
        {"direct": ["late"], "fifo": ["late"], "cbd": ["same body"]},
    ]
    assert _dedup_window(*real, suffix, lambda: time.sleep(window)) == expected
