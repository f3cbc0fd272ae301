"""Simulated SQS: standard and FIFO queues, visibility, receive counts, redrive, long polling.

Rules (LocalStack 2026.3 parity unless said otherwise; see ``docs/simulator.md``):

* Time is the :class:`VirtualClock`. Visibility deadlines and delays are applied lazily at the
  start of every call, *exactly* at the deadline (LocalStack checks once a second).
* Standard queues hand out visible messages oldest-first (a message whose visibility expired goes
  back to its original place). With ``reorder=True`` the seeded RNG shuffles a window of up to
  twice the requested count. With ``redelivery_probability > 0`` a delete may silently not take
  effect (the message comes back when its visibility timeout expires) -- AWS's at-least-once.
* FIFO: a message group is locked while any of its messages is in flight -- except that a
  message whose visibility ends (expiry or ChangeMessageVisibility 0) re-opens its group at once,
  even if later messages of the group are still in flight (LocalStack's rule). Groups are served
  in the order they became available, and a receive takes as many messages as possible from one
  group, in send order, before moving on. Dedup by MessageDeduplicationId (or sha256 of the body with
  ContentBasedDeduplication) within 300 s of the first accepted send; a duplicate send answers
  with the original MessageId and enqueues nothing.
* Redrive: a receive increments the message's receive count; when the count would exceed
  ``maxReceiveCount`` the message is moved to the dead-letter queue on that receive instead of
  being returned (``count > maxReceiveCount``), keeping its MessageId, body, attributes, and
  with ``DeadLetterQueueSourceArn`` added.
* Long polling: ``WaitTimeSeconds > 0`` with nothing to return advances the virtual clock to the
  next moment something in this queue becomes visible (or to the end of the wait).
* Stale receipt handles: standard queue delete succeeds and removes the message; FIFO delete of a
  message that is visible again fails with InvalidParameterValue ("receipt handle has expired").
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import json
import re
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from . import errors as E
from ._core import SimCore
from .errors import SimError
from .hooks import InFlight

DEDUP_WINDOW: Final = 300.0
MAX_BATCH: Final = 10
MAX_MESSAGE_ATTRIBUTES: Final = 10
MAX_VISIBILITY: Final = 43_200
DEFAULT_MAX_MESSAGE_SIZE: Final = 1_048_576

_MSG_CONTENT_RE: Final = re.compile("^[\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]*$")
_ATTR_NAME_RE: Final = re.compile("^[\u00c0-\u017fa-zA-Z0-9_.-]*$")
_ATTR_PREFIX_RE: Final = re.compile(r"^(?!(aws\.|amazon\.|\.)).*(?<!\.)$")
_ATTR_TYPE_RE: Final = re.compile("^(String|Number|Binary).*$")
_FIFO_ID_RE: Final = re.compile("^[0-9a-zA-Z!\"#$%&'()*+,./:;<=>?@\\[\\\\\\]^_`{|}~-]{1,128}$")
_QUEUE_NAME_RE: Final = re.compile(r"^[a-zA-Z0-9_-]{1,80}$")
_BATCH_ID_RE: Final = re.compile(r"^[\w-]{1,80}$")

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


def md5_hex(data: str) -> str:
    return hashlib.md5(data.encode("utf-8")).hexdigest()


def _len_prefixed(value: bytes) -> bytes:
    return struct.pack("!I", len(value)) + value


def md5_of_message_attributes(attributes: Mapping[str, Mapping[str, Any]]) -> str:
    """AWS's MD5OfMessageAttributes (length-prefixed name, type, transport byte, value)."""
    digest = hashlib.md5()
    for name in sorted(attributes):
        attr = attributes[name]
        digest.update(_len_prefixed(name.encode("utf-8")))
        digest.update(_len_prefixed(str(attr["DataType"]).encode("utf-8")))
        if attr.get("StringValue") is not None:
            digest.update(b"\x01")
            digest.update(_len_prefixed(str(attr["StringValue"]).encode("utf-8")))
        elif attr.get("BinaryValue") is not None:
            raw = attr["BinaryValue"]
            digest.update(b"\x02")
            digest.update(_len_prefixed(raw if isinstance(raw, bytes) else str(raw).encode("utf-8")))
    return digest.hexdigest()


def _bytesize(value: Any) -> int:
    if isinstance(value, bytes):
        return len(value)
    return len(str(value).encode("utf-8"))


def _attributes_size(attributes: Mapping[str, Mapping[str, Any]] | None) -> int:
    if not attributes:
        return 0
    return sum(_bytesize(k) for k in attributes) + sum(
        sum(_bytesize(v) for v in attr.values()) for attr in attributes.values()
    )


def _invalid(message: str) -> SimError:
    return SimError(E.SQS_INVALID_PARAMETER_VALUE, message)


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


def _validate_redrive_policy(raw: str) -> None:
    try:
        policy = json.loads(raw)
    except ValueError as exc:
        raise _invalid(f"Value {raw} for parameter RedrivePolicy is invalid. Reason: Invalid JSON.") from exc
    if not isinstance(policy, dict) or not policy.get("deadLetterTargetArn"):
        raise _invalid("The required parameter 'deadLetterTargetArn' is missing")
    count = policy.get("maxReceiveCount")
    if count is None:
        raise _invalid("The required parameter 'maxReceiveCount' is missing")
    try:
        valid = 1 <= int(count) <= 1000
    except (TypeError, ValueError):
        valid = False
    if not valid:
        raise _invalid(
            f"Value {raw} for parameter RedrivePolicy is invalid. Reason: Invalid value for "
            f"maxReceiveCount: {count}, valid values are from 1 to 1000 both inclusive."
        )


def _check_int_attr(name: str, value: str, low: int, high: int) -> None:
    try:
        ok = low <= int(value) <= high
    except ValueError:
        ok = False
    if not ok:
        raise SimError(E.SQS_INVALID_ATTRIBUTE_VALUE, f"Invalid value for the parameter {name}.")


_INT_ATTR_RANGES: Final = {
    "DelaySeconds": (0, 900),
    "MaximumMessageSize": (1024, 1_048_576),
    "MessageRetentionPeriod": (60, 1_209_600),
    "ReceiveMessageWaitTimeSeconds": (0, 20),
    "VisibilityTimeout": (0, MAX_VISIBILITY),
}


class SqsBackend:
    """All queues of one simulated account/region."""

    def __init__(self, core: SimCore) -> None:
        self.core = core
        self.queues: dict[str, Queue] = {}
        self._next_key = 0
        self._scheduled_deletes: list[tuple[float, int, str, str]] = []  # (when, n, queue name, handle)
        self._scheduled_no = 0
        self._stamp = 0

    # ------------------------------------------------------------------ helpers
    @property
    def now(self) -> float:
        return self.core.clock.now()

    def _new_key(self) -> int:
        self._next_key += 1
        return self._next_key

    def queue_url(self, name: str) -> str:
        return f"https://sqs.{self.core.region}.amazonaws.com/{self.core.account}/{name}"

    def queue_arn(self, name: str) -> str:
        return f"arn:aws:sqs:{self.core.region}:{self.core.account}:{name}"

    def resolve_url(self, queue_url: str) -> Queue:
        """Find a queue by URL (any host, as LocalStack) or by bare name."""
        name = queue_url.rstrip("/").rsplit("/", 1)[-1]
        queue = self.queues.get(name)
        if queue is None:
            raise SimError(E.SQS_NON_EXISTENT_QUEUE, "The specified queue does not exist.")
        return queue

    def resolve_arn(self, arn: str) -> Queue | None:
        name = arn.rsplit(":", 1)[-1]
        queue = self.queues.get(name)
        return queue if queue is not None and queue.arn == arn else None

    # ------------------------------------------------------------------ time
    def tick(self) -> None:
        """Apply everything due at the current virtual time (deadlines, delayed deletes)."""
        now = self.now
        while self._scheduled_deletes and self._scheduled_deletes[0][0] <= now:
            _, _, name, handle = heapq.heappop(self._scheduled_deletes)
            queue = self.queues.get(name)
            if queue is not None and handle in queue.receipts:
                message = queue.messages.get(queue.receipts[handle])
                if message is not None:
                    self._remove(queue, message)
        for queue in self.queues.values():
            self._tick_queue(queue, now)

    def _tick_queue(self, queue: Queue, now: float) -> None:
        timers = queue.timers
        while timers and timers[0][0] <= now:
            _, _, key, version = heapq.heappop(timers)
            message = queue.messages.get(key)
            if message is None or message.version != version or message.state not in (INFLIGHT, DELAYED):
                continue
            was_inflight = message.state == INFLIGHT
            self._make_visible(queue, message)
            if was_inflight and message.group_id is not None and queue.fifo:
                self._group_release(queue, message.group_id)

    def next_event(self, queue: Queue) -> float | None:
        """The earliest future moment a message of ``queue`` becomes visible, if any."""
        best: float | None = None
        for when, _, key, version in queue.timers:
            message = queue.messages.get(key)
            if message is None or message.version != version or message.state not in (INFLIGHT, DELAYED):
                continue
            if best is None or when < best:
                best = when
        return best

    # ------------------------------------------------------------------ state changes
    def _make_visible(self, queue: Queue, message: Message) -> None:
        message.state = VISIBLE
        message.version += 1
        if queue.fifo:
            assert message.group_id is not None
            heap = queue.groups.setdefault(message.group_id, [])
            heapq.heappush(heap, (message.key, message.version))
            # LocalStack (models.py FifoQueue._put_message): a message coming back from flight
            # re-opens its group even if other messages of the group are still in flight.
            if queue.group_inflight.get(message.group_id, 0) == 0 or message.receive_count >= 1:
                queue.ready_groups.setdefault(message.group_id, None)
        else:
            heapq.heappush(queue.ready, (message.key, message.version))

    def _set_timer(self, queue: Queue, message: Message, state: str, when: float) -> None:
        message.state = state
        message.version += 1
        message.visible_at = when
        self._stamp += 1
        heapq.heappush(queue.timers, (when, self._stamp, message.key, message.version))

    def _group_release(self, queue: Queue, group: str) -> None:
        left = queue.group_inflight.get(group, 0) - 1
        queue.group_inflight[group] = max(left, 0)
        if left <= 0 and queue.groups.get(group):
            queue.ready_groups.setdefault(group, None)

    def _remove(self, queue: Queue, message: Message) -> None:
        was_inflight = message.state == INFLIGHT
        message.state = GONE
        message.version += 1
        queue.messages.pop(message.key, None)
        for handle in message.handles:
            queue.receipts.pop(handle, None)
        message.handles.clear()
        if was_inflight and queue.fifo and message.group_id is not None:
            self._group_release(queue, message.group_id)

    def _store(self, queue: Queue, message: Message, delay: int) -> None:
        queue.messages[message.key] = message
        if delay > 0:
            self._set_timer(queue, message, DELAYED, self.now + delay)
        else:
            self._make_visible(queue, message)

    # ------------------------------------------------------------------ queues
    def create_queue(
        self, name: str, attributes: Mapping[str, str] | None, tags: Mapping[str, str] | None
    ) -> str:
        attributes = dict(attributes or {})
        fifo = attributes.get("FifoQueue", "false").lower() == "true"
        check_name = name
        if name.endswith(".fifo"):
            if not fifo:
                raise _invalid(
                    "Can only include alphanumeric characters, hyphens, or underscores. 1 to 80 in length"
                )
            check_name = name[:-5] + "_fifo"
        elif fifo:
            raise _invalid(
                "The name of a FIFO queue can only include alphanumeric characters, hyphens, or underscores, "
                "must end with .fifo suffix and be 1 to 80 in length"
            )
        if not _QUEUE_NAME_RE.match(check_name):
            raise _invalid(
                "Can only include alphanumeric characters, hyphens, or underscores. 1 to 80 in length"
            )
        self._validate_attributes(attributes, fifo, creating=True)
        existing = self.queues.get(name)
        if existing is not None:
            for key, value in attributes.items():
                if existing.attributes.get(key) != value:
                    raise SimError(
                        E.SQS_QUEUE_EXISTS,
                        f"A queue already exists with the same name and a different value for attribute {key}",
                    )
            return existing.url
        defaults = {
            "DelaySeconds": "0",
            "MaximumMessageSize": str(DEFAULT_MAX_MESSAGE_SIZE),
            "MessageRetentionPeriod": "345600",
            "ReceiveMessageWaitTimeSeconds": "0",
            "VisibilityTimeout": "30",
            "SqsManagedSseEnabled": "true",
        }
        if fifo:
            defaults.update(
                FifoQueue="true",
                ContentBasedDeduplication="false",
                DeduplicationScope="queue",
                FifoThroughputLimit="perQueue",
            )
        defaults.update(attributes)
        self.queues[name] = Queue(
            name=name,
            url=self.queue_url(name),
            arn=self.queue_arn(name),
            fifo=fifo,
            attributes=defaults,
            created_at=self.now,
        )
        return self.queues[name].url

    def _validate_attributes(self, attributes: Mapping[str, str], fifo: bool, *, creating: bool) -> None:
        allowed = set(_BASE_ATTRIBUTES) | (set(_FIFO_ATTRIBUTES) if fifo else set())
        for key, value in attributes.items():
            if key == "FifoQueue" and creating and value.lower() == "false" and not fifo:
                continue
            if key not in allowed:
                if key in _FIFO_ATTRIBUTES[2:]:
                    raise SimError(
                        E.SQS_INVALID_ATTRIBUTE_NAME,
                        f"You can specify the {key} only when FifoQueue is set to true.",
                    )
                raise SimError(E.SQS_INVALID_ATTRIBUTE_NAME, f"Unknown Attribute {key}.")
            if key in _INT_ATTR_RANGES:
                _check_int_attr(key, value, *_INT_ATTR_RANGES[key])
            if key == "RedrivePolicy" and value:
                _validate_redrive_policy(value)
            if key == "FifoQueue" and not creating:
                raise SimError(
                    E.SQS_INVALID_ATTRIBUTE_VALUE,
                    "Invalid value for the parameter FifoQueue. Reason: Modifying queue type is not supported.",
                )

    def set_queue_attributes(self, queue: Queue, attributes: Mapping[str, str]) -> None:
        self._validate_attributes(attributes, queue.fifo, creating=False)
        for key, value in attributes.items():
            if key == "RedrivePolicy" and value == "":
                queue.attributes.pop(key, None)
            else:
                queue.attributes[key] = value

    def get_queue_attributes(self, queue: Queue, names: Sequence[str] | None) -> dict[str, str]:
        everything = dict(queue.attributes)
        everything.update(
            ApproximateNumberOfMessages=str(queue.count(VISIBLE)),
            ApproximateNumberOfMessagesNotVisible=str(queue.count(INFLIGHT)),
            ApproximateNumberOfMessagesDelayed=str(queue.count(DELAYED)),
            CreatedTimestamp=str(int(queue.created_at)),
            LastModifiedTimestamp=str(int(queue.created_at)),
            QueueArn=queue.arn,
        )
        if not names:
            return {}
        if "All" in names:
            return everything
        result: dict[str, str] = {}
        known = set(_BASE_ATTRIBUTES) | set(_FIFO_ATTRIBUTES) | set(_COMPUTED_ATTRIBUTES)
        for name in names:
            if name not in known:
                raise SimError(E.SQS_INVALID_ATTRIBUTE_NAME, f"Unknown Attribute {name}.")
            if name in everything:
                result[name] = everything[name]
        return result

    def delete_queue(self, queue: Queue) -> None:
        del self.queues[queue.name]

    def purge_queue(self, queue: Queue) -> None:
        for message in list(queue.messages.values()):
            self._remove(queue, message)
        queue.ready.clear()
        queue.groups.clear()
        queue.ready_groups.clear()
        queue.group_inflight.clear()
        queue.timers.clear()

    # ------------------------------------------------------------------ send
    def check_message(
        self,
        queue: Queue,
        body: str | None,
        attributes: Mapping[str, Mapping[str, Any]] | None,
        dedup_id: str | None,
        group_id: str | None,
    ) -> None:
        if not body:
            raise SimError(E.SQS_MISSING_PARAMETER, "The request must contain the parameter MessageBody.")
        limit = queue.int_attr("MaximumMessageSize")
        if _bytesize(body) + _attributes_size(attributes) > limit:
            raise _invalid(
                f"One or more parameters are invalid. Reason: Message must be shorter than {limit} bytes."
            )
        if not _MSG_CONTENT_RE.match(body):
            raise SimError(
                E.SQS_INVALID_MESSAGE_CONTENTS,
                "Invalid characters found. Valid unicode characters are #x9 | #xA | #xD | #x20 to #xD7FF | "
                "#xE000 to #xFFFD | #x10000 to #x10FFFF",
            )
        if attributes:
            if len(attributes) > MAX_MESSAGE_ATTRIBUTES:
                raise _invalid(
                    f"Number of message attributes [{len(attributes)}] exceeds the allowed maximum "
                    f"[{MAX_MESSAGE_ATTRIBUTES}]."
                )
            for name, attr in attributes.items():
                self._check_attribute(name, attr)
        for value, param in ((dedup_id, "MessageDeduplicationId"), (group_id, "MessageGroupId")):
            if value is not None and not _FIFO_ID_RE.match(value):
                raise _invalid(
                    f"Value {value} for parameter {param} is invalid. Reason: {param} can only include "
                    "alphanumeric and punctuation characters. 1 to 128 in length."
                )

    @staticmethod
    def _check_attribute(name: str, attr: Mapping[str, Any]) -> None:
        if len(name) >= 256:
            raise _invalid("Message (user) attribute names must be shorter than 256 Bytes")
        if not _ATTR_NAME_RE.match(name.lower()):
            raise _invalid(
                "Message (user) attributes name can only contain upper and lower score characters, digits, "
                "periods, hyphens and underscores. "
            )
        if not _ATTR_PREFIX_RE.match(name.lower()):
            raise _invalid(
                "You can't use message attribute names beginning with 'AWS.' or 'Amazon.'. These strings are "
                "reserved for internal use. Additionally, they cannot start or end with '.'."
            )
        data_type = attr.get("DataType")
        if not data_type:
            raise _invalid("Missing required parameter DataType")
        if not _ATTR_TYPE_RE.match(str(data_type)):
            raise _invalid(
                "Type for parameter MessageAttributes.Attribute_name.DataType must be prefixedwith "
                f'"String", "Binary", or "Number", but was: {data_type}'
            )
        if str(data_type).startswith(("String", "Number")):
            value = attr.get("StringValue")
            if not value:
                raise _invalid(
                    f"Message (user) attribute '{name}' must contain a non-empty value of type "
                    f"'{str(data_type).split('.')[0]}'."
                )
            if not _MSG_CONTENT_RE.match(str(value)):
                raise _invalid(
                    "Invalid characters found. Valid unicode characters are #x9 | #xA | #xD | #x20 to #xD7FF | "
                    "#xE000 to #xFFFD | #x10000 to #x10FFFF"
                )
        elif attr.get("BinaryValue") is None:
            raise _invalid(
                f"Message (user) attribute '{name}' must contain a non-empty value of type 'Binary'."
            )

    def send(
        self,
        queue: Queue,
        body: str | None,
        *,
        delay: int | None = None,
        attributes: Mapping[str, Mapping[str, Any]] | None = None,
        dedup_id: str | None = None,
        group_id: str | None = None,
        _original: Message | None = None,
    ) -> dict[str, Any]:
        self.check_message(queue, body, attributes, dedup_id, group_id)
        assert body is not None
        if delay is not None and not 0 <= delay <= 900:
            raise _invalid(
                f"Value {delay} for parameter DelaySeconds is invalid. Reason: DelaySeconds must be >= 0 and <= 900."
            )
        sequence_number: str | None = None
        if not queue.fifo:
            if dedup_id:
                raise _invalid(
                    f"Value {dedup_id} for parameter MessageDeduplicationId is invalid. Reason: The request "
                    "includes a parameter that is not valid for this queue type."
                )
            effective_delay = queue.int_attr("DelaySeconds") if delay is None else delay
        else:
            if delay:
                raise _invalid(
                    f"Value {delay} for parameter DelaySeconds is invalid. Reason: The request include parameter "
                    "that is not valid for this queue type."
                )
            if not group_id:
                raise SimError(
                    E.SQS_MISSING_PARAMETER, "The request must contain the parameter MessageGroupId."
                )
            if not dedup_id:
                if queue.attributes.get("ContentBasedDeduplication", "false").lower() == "true":
                    dedup_id = hashlib.sha256(body.encode("utf-8")).hexdigest()
                else:
                    raise _invalid(
                        "The queue should either have ContentBasedDeduplication enabled or "
                        "MessageDeduplicationId provided explicitly"
                    )
            effective_delay = queue.int_attr("DelaySeconds")
            queue.sequence += 1
            sequence_number = str(18_000_000_000_000_000_000 + queue.sequence)
            scope_key = (
                dedup_id
                if queue.attributes.get("DeduplicationScope") != "messageGroup"
                else (f"{group_id}\x00{dedup_id}")
            )
            seen = queue.dedup.get(scope_key)
            if seen is not None and self.now < seen[0] + DEDUP_WINDOW:
                return self._send_result(seen[1], body, attributes, sequence_number)
        message_id = _original.message_id if _original is not None else self.core.new_uuid()
        message = Message(
            key=self._new_key(),
            message_id=message_id,
            body=body,
            attributes={k: dict(v) for k, v in (attributes or {}).items()},
            sent_at=_original.sent_at if _original is not None else self.now,
            group_id=group_id,
            dedup_id=dedup_id if queue.fifo else None,
            sequence_number=sequence_number,
        )
        if _original is not None:
            message.receive_count = _original.receive_count
            message.first_receive_at = _original.first_receive_at
            message.dlq_source_arn = _original.dlq_source_arn
        if queue.fifo:
            assert dedup_id is not None
            key = (
                dedup_id
                if queue.attributes.get("DeduplicationScope") != "messageGroup"
                else (f"{group_id}\x00{dedup_id}")
            )
            queue.dedup[key] = (self.now, message_id)
        self._store(queue, message, effective_delay)
        return self._send_result(message_id, body, attributes, sequence_number)

    @staticmethod
    def _send_result(
        message_id: str, body: str, attributes: Mapping[str, Mapping[str, Any]] | None, sequence: str | None
    ) -> dict[str, Any]:
        result: dict[str, Any] = {"MD5OfMessageBody": md5_hex(body), "MessageId": message_id}
        if attributes:
            result["MD5OfMessageAttributes"] = md5_of_message_attributes(attributes)
        if sequence is not None:
            result["SequenceNumber"] = sequence
        return result

    # ------------------------------------------------------------------ receive
    def _handle(self, queue: Queue, message: Message) -> str:
        raw = f"{self.core.new_uuid()} {queue.arn} {message.message_id} {self.now:.6f}"
        return base64.b64encode(raw.encode("utf-8")).decode("ascii")

    def _expired(self, queue: Queue, message: Message) -> bool:
        return self.now >= message.sent_at + queue.int_attr("MessageRetentionPeriod")

    def _pop_standard(self, queue: Queue, count: int) -> list[Message]:
        found: list[Message] = []
        while queue.ready and len(found) < count:
            key, version = heapq.heappop(queue.ready)
            message = queue.messages.get(key)
            if message is None or message.version != version or message.state != VISIBLE:
                continue
            if self._expired(queue, message):
                self._remove(queue, message)
                continue
            found.append(message)
        return found

    def receive(
        self,
        queue: Queue,
        *,
        max_number: int | None,
        visibility: int | None,
        wait: int | None,
        attribute_names: Sequence[str] | None,
        message_attribute_names: Sequence[str] | None,
    ) -> dict[str, Any]:
        number = 1 if max_number is None else max_number
        if not 1 <= number <= MAX_BATCH:
            raise _invalid(
                f"Value {number} for parameter MaxNumberOfMessages is invalid. "
                "Reason: Must be between 1 and 10, if provided."
            )
        if wait is None:
            wait = queue.int_attr("ReceiveMessageWaitTimeSeconds")
        elif not 0 <= wait <= 20:
            raise _invalid(
                f"Value {wait} for parameter WaitTimeSeconds is invalid. Reason: Must be >= 0 and <= 20, if provided."
            )
        if visibility is not None and not 0 <= visibility <= MAX_VISIBILITY:
            raise _invalid(
                f"Value {visibility} for parameter VisibilityTimeout is invalid. "
                f"Reason: Must be >= 0 and <= {MAX_VISIBILITY}, if provided."
            )
        timeout = queue.int_attr("VisibilityTimeout") if visibility is None else visibility
        deadline = self.now + wait
        while True:
            received = self._receive_once(queue, number, timeout)
            if received or self.now >= deadline:
                break
            upcoming = self.next_event(queue)
            target = deadline if upcoming is None else min(upcoming, deadline)
            self.core.clock.advance_to(target)
            self.tick()
        messages = [self._render(queue, m, h, attribute_names, message_attribute_names) for m, h in received]
        return {"Messages": messages} if messages else {}

    def _receive_once(self, queue: Queue, number: int, timeout: int) -> list[tuple[Message, str]]:
        max_count = queue.max_receive_count
        dead: list[Message] = []
        taken: list[Message] = []
        if queue.fifo:
            for group in list(queue.ready_groups):
                heap = queue.groups.get(group, [])
                if not heap:
                    queue.ready_groups.pop(group, None)
                    continue
                while heap and len(taken) < number:
                    key, version = heapq.heappop(heap)
                    message = queue.messages.get(key)
                    if message is None or message.version != version or message.state != VISIBLE:
                        continue
                    if self._expired(queue, message):
                        self._remove(queue, message)
                        continue
                    message.receive_count += 1
                    if max_count is not None and message.receive_count > max_count:
                        dead.append(message)
                        continue
                    taken.append(message)
                    queue.group_inflight[group] = queue.group_inflight.get(group, 0) + 1
                    self._set_timer(queue, message, INFLIGHT, self.now + timeout)
                if queue.group_inflight.get(group, 0) > 0 or not heap:
                    queue.ready_groups.pop(group, None)
                if len(taken) >= number:
                    break
        else:
            while len(taken) < number:
                window = number - len(taken)
                batch = self._pop_standard(queue, window * 2 if self.core.reorder else window)
                if not batch:
                    break
                if self.core.reorder:
                    self.core.rng.shuffle(batch)
                    for extra in batch[window:]:
                        heapq.heappush(queue.ready, (extra.key, extra.version))
                    batch = batch[:window]
                for message in batch:
                    message.receive_count += 1
                    if max_count is not None and message.receive_count > max_count:
                        dead.append(message)
                        continue
                    taken.append(message)
                    self._set_timer(queue, message, INFLIGHT, self.now + timeout)
        self._dead_letter(queue, dead)
        result: list[tuple[Message, str]] = []
        for message in taken:
            if message.first_receive_at is None:
                message.first_receive_at = self.now
            handle = self._handle(queue, message)
            message.handles.add(handle)
            queue.receipts[handle] = message.key
            result.append((message, handle))
            if not queue.fifo and self.core.tap.duplicate_delivery(queue.url, message.message_id):
                self.inject_duplicate(queue, message)
        if timeout == 0:
            self._tick_queue(queue, self.now)
        return result

    def inject_duplicate(self, queue: Queue, message: Message) -> None:
        """Leave an independent visible copy of a standard-queue message (same MessageId)."""
        if queue.fifo:
            raise ValueError("FIFO queues do not duplicate deliveries")
        copy = Message(
            key=self._new_key(),
            message_id=message.message_id,
            body=message.body,
            attributes={k: dict(v) for k, v in message.attributes.items()},
            sent_at=message.sent_at,
            group_id=message.group_id,
            dedup_id=None,
            sequence_number=None,
            receive_count=message.receive_count,
            first_receive_at=message.first_receive_at,
            dlq_source_arn=message.dlq_source_arn,
        )
        queue.messages[copy.key] = copy
        self._make_visible(queue, copy)

    def _dead_letter(self, queue: Queue, dead: list[Message]) -> None:
        if not dead:
            return
        target_arn = queue.dead_letter_target_arn
        assert target_arn is not None
        target = self.resolve_arn(target_arn)
        for message in dead:
            self._remove(queue, message)
            if target is None:
                raise SimError(E.SQS_NON_EXISTENT_QUEUE, "The specified queue does not exist.")
            original = Message(
                key=0,
                message_id=message.message_id,
                body=message.body,
                attributes=message.attributes,
                sent_at=message.sent_at,
                group_id=message.group_id,
                dedup_id=message.dedup_id,
                sequence_number=None,
                receive_count=message.receive_count - 1,
                first_receive_at=message.first_receive_at,
                dlq_source_arn=queue.arn,
            )
            self.send(
                target,
                message.body,
                attributes=message.attributes or None,
                dedup_id=message.dedup_id if target.fifo else None,
                group_id=message.group_id,
                _original=original,
            )

    def _render(
        self,
        queue: Queue,
        message: Message,
        handle: str,
        attribute_names: Sequence[str] | None,
        message_attribute_names: Sequence[str] | None,
    ) -> dict[str, Any]:
        result: dict[str, Any] = {
            "MessageId": message.message_id,
            "ReceiptHandle": handle,
            "MD5OfBody": md5_hex(message.body),
            "Body": message.body,
        }
        system: dict[str, str] = {
            "SenderId": self.core.account,
            "SentTimestamp": str(int(message.sent_at * 1000)),
            "ApproximateReceiveCount": str(message.receive_count),
            "ApproximateFirstReceiveTimestamp": str(int((message.first_receive_at or 0) * 1000)),
        }
        if message.group_id is not None:
            system["MessageGroupId"] = message.group_id
        if message.dedup_id is not None:
            system["MessageDeduplicationId"] = message.dedup_id
        if message.sequence_number is not None:
            system["SequenceNumber"] = message.sequence_number
        if message.dlq_source_arn is not None:
            system["DeadLetterQueueSourceArn"] = message.dlq_source_arn
        if attribute_names:
            if "All" in attribute_names:
                result["Attributes"] = system
            else:
                chosen = {k: v for k, v in system.items() if k in attribute_names}
                if chosen:
                    result["Attributes"] = chosen
        if message_attribute_names and message.attributes:
            chosen_attrs: dict[str, dict[str, Any]] = {}
            for name, attr in message.attributes.items():
                for pattern in message_attribute_names:
                    if (
                        pattern in ("All", ".*")
                        or pattern == name
                        or (pattern.endswith(".*") and name.startswith(pattern[:-1]))
                    ):
                        chosen_attrs[name] = dict(attr)
                        break
            if chosen_attrs:
                result["MD5OfMessageAttributes"] = md5_of_message_attributes(chosen_attrs)
                result["MessageAttributes"] = chosen_attrs
        return result

    # ------------------------------------------------------------------ delete / visibility
    def _lookup(self, queue: Queue, handle: str) -> Message | None:
        try:
            parts = base64.b64decode(handle, validate=True).decode("utf-8").split(" ")
        except (ValueError, UnicodeDecodeError):
            parts = []
        if len(parts) != 4 or parts[1] != queue.arn:
            raise SimError(
                E.SQS_RECEIPT_HANDLE_INVALID,
                f'The input receipt handle "{handle}" is not a valid receipt handle.',
            )
        key = queue.receipts.get(handle)
        return None if key is None else queue.messages.get(key)

    def delete(self, queue: Queue, handle: str) -> None:
        message = self._lookup(queue, handle)
        if message is None:
            return
        if queue.fifo and message.state == VISIBLE:
            raise _invalid(
                f"Value {handle} for parameter ReceiptHandle is invalid. Reason: The receipt handle has expired."
            )
        delay = self.core.tap.delete_delay(queue.url, message.message_id)
        if delay > 0:
            self._scheduled_no += 1
            heapq.heappush(
                self._scheduled_deletes, (self.now + delay, self._scheduled_no, queue.name, handle)
            )
            return
        if (
            not queue.fifo
            and self.core.redelivery_probability > 0
            and self.core.rng.random() < self.core.redelivery_probability
        ):
            return  # the delete "missed a replica": the message comes back after its visibility timeout
        self._remove(queue, message)

    def change_visibility(self, queue: Queue, handle: str, timeout: int) -> None:
        message = self._lookup(queue, handle)
        if message is None:
            raise _invalid(
                f"Value {handle} for parameter ReceiptHandle is invalid. Reason: Message does not exist or is not "
                "available for visibility timeout change."
            )
        if not 0 <= timeout <= MAX_VISIBILITY:
            raise _invalid(
                f"Value {timeout} for parameter VisibilityTimeout is invalid. Reason: Must be between 0 and "
                f"{MAX_VISIBILITY}."
            )
        if message.state != INFLIGHT:
            return
        self._set_timer(queue, message, INFLIGHT, self.now + timeout)
        if timeout == 0:
            self._tick_queue(queue, self.now)

    # ------------------------------------------------------------------ batches
    @staticmethod
    def check_batch(entries: Sequence[Mapping[str, Any]]) -> None:
        if not entries:
            raise SimError(E.SQS_EMPTY_BATCH, "")
        if len(entries) > MAX_BATCH:
            raise SimError(
                E.SQS_TOO_MANY_ENTRIES,
                f"Maximum number of entries per request are {MAX_BATCH}. You have sent {len(entries)}.",
            )
        seen: set[str] = set()
        for entry in entries:
            entry_id = str(entry.get("Id", ""))
            if not _BATCH_ID_RE.match(entry_id):
                raise SimError(
                    E.SQS_INVALID_BATCH_ENTRY_ID,
                    "A batch entry id can only contain alphanumeric characters, hyphens and underscores. "
                    "It can be at most 80 letters long.",
                )
            if entry_id in seen:
                raise SimError(E.SQS_IDS_NOT_DISTINCT, "")
            seen.add(entry_id)

    # ------------------------------------------------------------------ nemesis surface
    def in_flight(self, queue: Queue | None = None) -> list[InFlight]:
        queues = [queue] if queue is not None else list(self.queues.values())
        found: list[InFlight] = []
        for q in queues:
            handles: dict[int, str] = {}
            for handle, key in q.receipts.items():
                handles[key] = handle  # the newest handle wins (dict keeps insertion order)
            for message in q.messages.values():
                if message.state == INFLIGHT:
                    found.append(
                        InFlight(
                            queue_url=q.url,
                            message_id=message.message_id,
                            receipt_handle=handles.get(message.key, ""),
                            receive_count=message.receive_count,
                            visible_at=message.visible_at,
                            message_group_id=message.group_id,
                        )
                    )
        return found

    def left_in(self, queue: Queue) -> list[dict[str, Any]]:
        """Every message still in ``queue`` (visible, in flight or delayed), oldest first: its id,
        state (``visible`` / ``in flight`` / ``delayed``), receive count, when it becomes visible
        and its ``EventId`` attribute (``None`` when absent)."""
        out: list[dict[str, Any]] = []
        for message in sorted(queue.messages.values(), key=lambda m: m.key):
            event_id = (message.attributes.get("EventId") or {}).get("StringValue")
            out.append(
                {
                    "message_id": message.message_id,
                    "state": "in flight" if message.state == INFLIGHT else message.state,
                    "receive_count": message.receive_count,
                    "visible_at": round(message.visible_at, 3),
                    "command_id": event_id,
                }
            )
        return out

    def expire_visibility(self, queue: Queue, message_id: str) -> bool:
        """Make an in-flight message visible now (a lease that ran out). True if one was found."""
        hit = False
        for message in list(queue.messages.values()):
            if message.message_id == message_id and message.state == INFLIGHT:
                self._set_timer(queue, message, INFLIGHT, self.now)
                hit = True
        self._tick_queue(queue, self.now)
        return hit
