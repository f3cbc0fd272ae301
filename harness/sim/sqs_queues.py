"""Simulated SQS: the queues of one account (names, URLs, ARNs, attributes) and their inspection.

:class:`QueueRegistry` creates, configures, finds and deletes queues and answers the read-only
questions the nemesis and the drain ask (what is in flight, what is left); the message
operations (send, receive, delete, visibility) are :class:`flowgate.harness.sim.sqs.SqsBackend`'s, which
extends it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from . import errors as E
from ._core import SimCore
from .errors import SimError
from .hooks import InFlight
from .sqs_checks import _QUEUE_NAME_RE, _invalid, validate_attributes
from .sqs_model import (
    _BASE_ATTRIBUTES,
    _COMPUTED_ATTRIBUTES,
    _FIFO_ATTRIBUTES,
    DEFAULT_MAX_MESSAGE_SIZE,
    DELAYED,
    INFLIGHT,
    VISIBLE,
    Queue,
)


class QueueRegistry:
    """All queues of one simulated account/region, by name."""

    def __init__(self, core: SimCore) -> None:
        self.core = core
        self.queues: dict[str, Queue] = {}

    # ------------------------------------------------------------------ helpers
    @property
    def now(self) -> float:
        return self.core.clock.now()

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
        validate_attributes(attributes, fifo, creating=creating)

    def set_queue_attributes(self, queue: Queue, attributes: Mapping[str, str]) -> None:
        self._validate_attributes(attributes, queue.fifo, creating=False)
        for key, value in attributes.items():
            if key == "RedrivePolicy" and value == "":
                queue.attributes.pop(key, None)
            else:
                queue.attributes[key] = value

    def get_queue_attributes(self, queue: Queue, names: Sequence[str] | None) -> dict[str, str]:
        everything = dict(queue.attributes)
        counts = queue.counts()
        everything.update(
            ApproximateNumberOfMessages=str(counts[VISIBLE]),
            ApproximateNumberOfMessagesNotVisible=str(counts[INFLIGHT]),
            ApproximateNumberOfMessagesDelayed=str(counts[DELAYED]),
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
