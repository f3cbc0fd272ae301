"""Simulated SQS: the data model (queues, messages, their states) and the attribute names.

:class:`Message` is one copy of a message in one queue (an injected duplicate is another copy with
the same MessageId); :class:`Queue` holds a queue's messages and the indexes the backend
(:mod:`flowgate.harness.sim.sqs`) keeps over them: visibility timers, the ready heap (standard), the
per-group heaps and ready groups (FIFO), receipt handles, the deduplication table.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Final

MAX_BATCH: Final = 10
MAX_MESSAGE_ATTRIBUTES: Final = 10
MAX_VISIBILITY: Final = 43_200
DEFAULT_MAX_MESSAGE_SIZE: Final = 1_048_576

_BASE_ATTRIBUTES: Final = (
    "DelaySeconds",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
    "VisibilityTimeout",
    "RedrivePolicy",
    "RedriveAllowPolicy",
    "Policy",
    "KmsMasterKeyId",
    "KmsDataKeyReusePeriodSeconds",
    "SqsManagedSseEnabled",
)
_FIFO_ATTRIBUTES: Final = (
    "FifoQueue",
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "FifoThroughputLimit",
)
_COMPUTED_ATTRIBUTES: Final = (
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
    "CreatedTimestamp",
    "LastModifiedTimestamp",
    "QueueArn",
)
_SYSTEM_ATTRIBUTES: Final = (
    "SenderId",
    "SentTimestamp",
    "ApproximateReceiveCount",
    "ApproximateFirstReceiveTimestamp",
    "MessageGroupId",
    "MessageDeduplicationId",
    "SequenceNumber",
    "DeadLetterQueueSourceArn",
)

VISIBLE: Final = "visible"
INFLIGHT: Final = "inflight"
DELAYED: Final = "delayed"
GONE: Final = "gone"


@dataclass(eq=False)
class Message:
    key: int
    message_id: str
    body: str
    attributes: dict[str, dict[str, Any]]
    sent_at: float
    group_id: str | None
    dedup_id: str | None
    sequence_number: str | None
    receive_count: int = 0
    first_receive_at: float | None = None
    state: str = VISIBLE
    visible_at: float = 0.0
    version: int = 0
    handles: set[str] = field(default_factory=set)
    dlq_source_arn: str | None = None

    #: MD5 of the body and of all its message attributes, computed once (both never change)
    body_md5: str | None = None
    attributes_md5: str | None = None


@dataclass
class Queue:
    name: str
    url: str
    arn: str
    fifo: bool
    attributes: dict[str, str]
    created_at: float
    messages: dict[int, Message] = field(default_factory=dict)
    # (visible_at, stamp, key, version): ties broken by the order deadlines were set, so messages
    # received together come back in the order they were received (LocalStack's inflight order).
    timers: list[tuple[float, int, int, int]] = field(default_factory=list)
    ready: list[tuple[int, int]] = field(default_factory=list)  # standard: (key, version)
    groups: dict[str, list[tuple[int, int]]] = field(default_factory=dict)  # fifo: group -> heap
    group_inflight: dict[str, int] = field(default_factory=dict)
    ready_groups: dict[str, None] = field(default_factory=dict)
    receipts: dict[str, int] = field(default_factory=dict)
    dedup: dict[str, tuple[float, str]] = field(default_factory=dict)
    sequence: int = 0

    def int_attr(self, name: str) -> int:
        return int(self.attributes[name])

    @property
    def max_receive_count(self) -> int | None:
        raw = self.attributes.get("RedrivePolicy")
        if not raw:
            return None
        return int(json.loads(raw)["maxReceiveCount"])

    @property
    def dead_letter_target_arn(self) -> str | None:
        raw = self.attributes.get("RedrivePolicy")
        if not raw:
            return None
        return str(json.loads(raw)["deadLetterTargetArn"])

    def count(self, state: str) -> int:
        return sum(1 for m in self.messages.values() if m.state == state)

    def counts(self) -> dict[str, int]:
        """How many messages are in each state (one pass over the messages)."""
        out = {VISIBLE: 0, INFLIGHT: 0, DELAYED: 0}
        for m in self.messages.values():
            out[m.state] = out.get(m.state, 0) + 1
        return out
