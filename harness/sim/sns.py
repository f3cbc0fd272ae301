"""Simulated SNS: standard and FIFO topics with SQS subscriptions, fanned out synchronously.

* Raw delivery (``RawMessageDelivery=true``) sends the message as the SQS body and copies the
  message attributes; otherwise the body is the SNS JSON envelope (Type, MessageId, TopicArn,
  Subject, Message, Timestamp, MessageAttributes {Type, Value}, and SignatureVersion/Signature/
  SigningCertURL for standard topics or SequenceNumber for FIFO topics, UnsubscribeURL).
* FIFO topic -> FIFO queue forwards MessageGroupId and MessageDeduplicationId (sha256 of the
  message when the topic uses content-based dedup); standard topic with a MessageGroupId forwards
  the group id (fair queues), as LocalStack does.
* FIFO topics deduplicate at the topic within 300 s of the first accepted publish (AWS); the key
  is the explicit MessageDeduplicationId or the SHA-256 of the message (ContentBasedDeduplication),
  scoped to the topic or, with ``FifoThroughputScope=MessageGroup``, to the message group; a
  duplicate is accepted (the original's MessageId) and delivered to no subscription. LocalStack
  leaves it to the subscribed FIFO queues (a duplicate answers with a new MessageId there).
* PublishBatch validates every entry before it publishes any: one invalid entry refuses the
  whole request (AWS for a missing group id, LocalStack for every check), so ``Failed`` is empty.
* A delivery that the queue refuses (queue deleted, attribute limits) is dropped, as LocalStack
  logs and drops it (AWS would retry and then use the subscription's DLQ).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from . import errors as E
from ._core import SimCore
from .errors import SimError
from .sqs import DEDUP_WINDOW, SqsBackend

MAX_PUBLISH_BYTES: Final = 262_144
_TOPIC_NAME_RE: Final = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
_BATCH_ID_RE: Final = re.compile(r"^[\w-]{1,80}$")
_SUBSCRIPTION_ATTRIBUTES: Final = ("RawMessageDelivery",)


def _invalid(message: str) -> SimError:
    return SimError(E.SNS_INVALID_PARAMETER, f"Invalid parameter: {message}")


@dataclass
class Subscription:
    arn: str
    topic_arn: str
    protocol: str
    endpoint: str
    attributes: dict[str, str] = field(default_factory=dict)

    @property
    def raw(self) -> bool:
        return self.attributes.get("RawMessageDelivery", "false").lower() == "true"


@dataclass
class Topic:
    name: str
    arn: str
    fifo: bool
    attributes: dict[str, str]
    subscriptions: dict[str, Subscription] = field(default_factory=dict)
    dedup: dict[str, tuple[float, str]] = field(default_factory=dict)
    sequence: int = 0


def _timestamp(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(now * 1000) % 1000:03d}Z"


class SnsBackend:
    def __init__(self, core: SimCore, sqs: SqsBackend) -> None:
        self.core = core
        self.sqs = sqs
        self.topics: dict[str, Topic] = {}

    def topic_arn(self, name: str) -> str:
        return f"arn:aws:sns:{self.core.region}:{self.core.account}:{name}"

    def resolve(self, arn: str | None) -> Topic:
        topic = self.topics.get(arn or "")
        if topic is None:
            raise SimError(E.SNS_NOT_FOUND, "Topic does not exist")
        return topic

    def create_topic(self, name: str, attributes: Mapping[str, str] | None) -> str:
        attributes = dict(attributes or {})
        fifo = attributes.get("FifoTopic", "false").lower() == "true"
        base = name[:-5] if name.endswith(".fifo") else name
        if not _TOPIC_NAME_RE.match(base) or fifo != name.endswith(".fifo"):
            raise _invalid("Topic Name")
        arn = self.topic_arn(name)
        existing = self.topics.get(arn)
        if existing is not None:
            for key, value in attributes.items():
                if existing.attributes.get(key) != value:
                    raise _invalid("Attributes Reason: Topic already exists with different attributes")
            return arn
        for key, value in attributes.items():
            check_topic_attribute(fifo, key, value)
        defaults = {"DisplayName": "", "Owner": self.core.account, "TopicArn": arn}
        if fifo:
            defaults.update(FifoTopic="true", ContentBasedDeduplication="false")
        defaults.update(attributes)
        self.topics[arn] = Topic(name=name, arn=arn, fifo=fifo, attributes=defaults)
        return arn

    def topic_attributes(self, topic: Topic) -> dict[str, str]:
        result = dict(topic.attributes)
        result.update(
            SubscriptionsConfirmed=str(len(topic.subscriptions)),
            SubscriptionsPending="0",
            SubscriptionsDeleted="0",
        )
        return result

    def subscribe(
        self, topic: Topic, protocol: str, endpoint: str | None, attributes: Mapping[str, str] | None
    ) -> str:
        if protocol != "sqs":
            raise _invalid(
                f"Protocol Reason: the simulator only supports sqs subscriptions, not {protocol!r}"
            )
        if not endpoint or not endpoint.startswith("arn:aws:sqs:"):
            raise _invalid("SQS endpoint ARN")
        if endpoint.endswith(".fifo") and not topic.fifo:
            raise _invalid(
                "Invalid parameter: Endpoint Reason: FIFO SQS Queues can not be subscribed to standard SNS topics"
            )
        attributes = dict(attributes or {})
        for key in attributes:
            if key not in _SUBSCRIPTION_ATTRIBUTES:
                raise _invalid(f"Attributes Reason: the simulator does not model the attribute {key}")
        for sub in topic.subscriptions.values():
            if sub.protocol == protocol and sub.endpoint == endpoint:
                if any(sub.attributes.get(k) != v for k, v in attributes.items()):
                    raise _invalid("Attributes Reason: Subscription already exists with different attributes")
                return sub.arn
        arn = f"{topic.arn}:{self.core.new_uuid()}"
        topic.subscriptions[arn] = Subscription(arn, topic.arn, protocol, endpoint, attributes)
        return arn

    def find_subscription(self, arn: str) -> Subscription | None:
        for topic in self.topics.values():
            if arn in topic.subscriptions:
                return topic.subscriptions[arn]
        return None

    def unsubscribe(self, arn: str) -> None:
        for topic in self.topics.values():
            topic.subscriptions.pop(arn, None)

    # ------------------------------------------------------------------ publish
    def check_publish(
        self,
        topic: Topic,
        message: str | None,
        attributes: Mapping[str, Mapping[str, Any]] | None,
        group_id: str | None,
        dedup_id: str | None,
    ) -> None:
        if not message:
            raise _invalid("Empty message")
        size = len(message.encode("utf-8")) + sum(
            len(k.encode("utf-8")) + sum(len(str(v).encode("utf-8")) for v in a.values())
            for k, a in (attributes or {}).items()
        )
        if size > MAX_PUBLISH_BYTES:
            raise _invalid("Message too long")
        for name, attr in (attributes or {}).items():
            data_type = str(attr.get("DataType", ""))
            if not data_type.startswith(("String", "Number", "Binary")):
                raise SimError(
                    E.SNS_INVALID_PARAMETER_VALUE,
                    f"The message attribute '{name}' has an invalid message attribute type, the set of supported "
                    "type prefixes is Binary, Number, and String.",
                )
        if topic.fifo:
            if not group_id:
                raise _invalid("The MessageGroupId parameter is required for FIFO topics")
            if not dedup_id and topic.attributes.get("ContentBasedDeduplication", "false").lower() != "true":
                raise _invalid(
                    "The topic should either have ContentBasedDeduplication enabled or MessageDeduplicationId "
                    "provided explicitly"
                )
        elif dedup_id:
            raise _invalid(
                "MessageDeduplicationId Reason: The request includes MessageDeduplicationId parameter that is not "
                "valid for this topic type"
            )

    def publish(
        self,
        topic: Topic,
        message: str | None,
        *,
        subject: str | None = None,
        attributes: Mapping[str, Mapping[str, Any]] | None = None,
        group_id: str | None = None,
        dedup_id: str | None = None,
    ) -> dict[str, Any]:
        self.check_publish(topic, message, attributes, group_id, dedup_id)
        assert message is not None
        now = self.core.clock.now()
        sequence: str | None = None
        if topic.fifo:
            if not dedup_id:
                dedup_id = hashlib.sha256(message.encode("utf-8")).hexdigest()
            scope_key = _dedup_key(topic, group_id, dedup_id)
            seen = topic.dedup.get(scope_key)
            if seen is not None and now < seen[0] + DEDUP_WINDOW:
                return {
                    "MessageId": seen[1],
                    "SequenceNumber": str(10_000_000_000_000_000_000 + topic.sequence),
                }
            topic.sequence += 1
            sequence = str(10_000_000_000_000_000_000 + topic.sequence)
        message_id = self.core.new_uuid()
        if topic.fifo:
            assert dedup_id is not None
            topic.dedup[_dedup_key(topic, group_id, dedup_id)] = (now, message_id)
        for sub in list(topic.subscriptions.values()):
            self._deliver(
                topic, sub, message_id, message, subject, attributes, group_id, dedup_id, sequence, now
            )
        result: dict[str, Any] = {"MessageId": message_id}
        if sequence is not None:
            result["SequenceNumber"] = sequence
        return result

    def _deliver(
        self,
        topic: Topic,
        sub: Subscription,
        message_id: str,
        message: str,
        subject: str | None,
        attributes: Mapping[str, Mapping[str, Any]] | None,
        group_id: str | None,
        dedup_id: str | None,
        sequence: str | None,
        now: float,
    ) -> None:
        queue = self.sqs.resolve_arn(sub.endpoint)
        if queue is None:
            return
        if sub.raw:
            body = message
            sqs_attributes = {k: dict(v) for k, v in attributes.items()} if attributes else None
        else:
            envelope: dict[str, Any] = {
                "Type": "Notification",
                "MessageId": message_id,
                "TopicArn": topic.arn,
                "Message": message,
                "Timestamp": _timestamp(now),
                "UnsubscribeURL": (
                    f"https://sns.{self.core.region}.amazonaws.com/?Action=Unsubscribe&SubscriptionArn={sub.arn}"
                ),
            }
            if subject:
                envelope["Subject"] = subject
            if attributes:
                envelope["MessageAttributes"] = {
                    name: {
                        "Type": attr["DataType"],
                        "Value": base64.b64encode(attr["BinaryValue"]).decode("ascii")
                        if str(attr["DataType"]).startswith("Binary")
                        else attr.get("StringValue"),
                    }
                    for name, attr in attributes.items()
                }
            if topic.fifo:
                envelope["SequenceNumber"] = sequence
            else:
                envelope.update(
                    SignatureVersion="1",
                    Signature=base64.b64encode(
                        hashlib.sha256(f"{message_id}{message}".encode()).digest()
                    ).decode("ascii"),
                    SigningCertURL=f"https://sns.{self.core.region}.amazonaws.com/SimpleNotificationService-sim.pem",
                )
            body = json.dumps(envelope)
            sqs_attributes = None
        send_group: str | None = None
        send_dedup: str | None = None
        if topic.fifo:
            if queue.fifo:
                send_group, send_dedup = group_id, dedup_id
        elif group_id:
            send_group = group_id
        try:
            self.sqs.send(queue, body, attributes=sqs_attributes, dedup_id=send_dedup, group_id=send_group)
        except SimError:
            return

    def check_batch(self, entries: Sequence[Mapping[str, Any]]) -> None:
        if not entries:
            raise SimError(E.SNS_EMPTY_BATCH, "The batch request doesn't contain any entries.")
        if len(entries) > 10:
            raise SimError(
                E.SNS_TOO_MANY_ENTRIES, "The batch request contains more entries than permissible."
            )
        ids = [str(e.get("Id", "")) for e in entries]
        for entry_id in ids:
            if not _BATCH_ID_RE.match(entry_id):
                raise SimError(
                    E.SNS_INVALID_BATCH_ENTRY_ID,
                    "The Id of a batch entry in a batch request doesn't abide by the specification.",
                )
        if len(set(ids)) != len(ids):
            raise SimError(
                E.SNS_IDS_NOT_DISTINCT, "Two or more batch entries in the request have the same Id."
            )


def _dedup_key(topic: Topic, group_id: str | None, dedup_id: str) -> str:
    """A FIFO topic's deduplication key: the id, per message group with
    ``FifoThroughputScope=MessageGroup`` (AWS's high-throughput FIFO topics)."""
    if topic.attributes.get("FifoThroughputScope") == "MessageGroup":
        return f"{group_id}\x00{dedup_id}"
    return dedup_id


#: values of ``FifoThroughputScope`` (FIFO topics only): deduplication per topic or per group
FIFO_THROUGHPUT_SCOPES: Final = ("Topic", "MessageGroup")


def check_topic_attribute(fifo: bool, name: str, value: str | None) -> None:
    """Refuse a ``FifoThroughputScope`` that is not one of :data:`FIFO_THROUGHPUT_SCOPES` or is
    set on a standard topic (AWS: InvalidParameter)."""
    if name == "FifoThroughputScope" and (not fifo or value not in FIFO_THROUGHPUT_SCOPES):
        raise _invalid("Attributes Reason: FifoThroughputScope must be Topic or MessageGroup on a FIFO topic")
