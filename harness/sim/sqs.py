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

The data model is :mod:`flowgate.harness.sim.sqs_model`; request validation, MD5 digests and the rendering
of a received message are :mod:`flowgate.harness.sim.sqs_checks`. Their public names are re-exported here.
"""

from __future__ import annotations

import base64
import hashlib
import heapq
from collections.abc import Mapping, Sequence
from typing import Any, Final

from . import errors as E
from ._core import SimCore
from .errors import SimError
from .sqs_checks import (
    _invalid,
    check_batch,
    check_message,
    md5_hex,
    md5_of_message_attributes,
    render_message,
)
from .sqs_model import (
    DEFAULT_MAX_MESSAGE_SIZE,
    DELAYED,
    GONE,
    INFLIGHT,
    MAX_BATCH,
    MAX_MESSAGE_ATTRIBUTES,
    MAX_VISIBILITY,
    VISIBLE,
    Message,
    Queue,
)
from .sqs_queues import QueueRegistry

#: FIFO deduplication window (seconds from the first accepted send); read at every send
DEDUP_WINDOW: Final = 300.0

__all__ = [
    "DEDUP_WINDOW",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "DELAYED",
    "GONE",
    "INFLIGHT",
    "MAX_BATCH",
    "MAX_MESSAGE_ATTRIBUTES",
    "MAX_VISIBILITY",
    "VISIBLE",
    "Message",
    "Queue",
    "SqsBackend",
    "md5_hex",
    "md5_of_message_attributes",
]


class SqsBackend(QueueRegistry):
    """All queues of one simulated account/region."""

    def __init__(self, core: SimCore) -> None:
        super().__init__(core)
        self._next_key = 0
        self._scheduled_deletes: list[tuple[float, int, str, str]] = []  # (when, n, queue name, handle)
        self._scheduled_no = 0
        self._stamp = 0

    def _new_key(self) -> int:
        self._next_key += 1
        return self._next_key

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

    def purge_queue(self, queue: Queue) -> None:
        for message in list(queue.messages.values()):
            self._remove(queue, message)
        queue.ready.clear()
        queue.groups.clear()
        queue.ready_groups.clear()
        queue.group_inflight.clear()
        queue.timers.clear()

    check_message = staticmethod(check_message)
    check_batch = staticmethod(check_batch)

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
        result = self._send_result(message_id, body, attributes, sequence_number)
        # the digests a receive renders again: the message's attributes are a copy of these
        message.body_md5 = result["MD5OfMessageBody"]
        message.attributes_md5 = result.get("MD5OfMessageAttributes")
        return result

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
        return render_message(self.core.account, message, handle, attribute_names, message_attribute_names)

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

    def expire_visibility(self, queue: Queue, message_id: str) -> bool:
        """Make an in-flight message visible now (a lease that ran out). True if one was found."""
        hit = False
        for message in list(queue.messages.values()):
            if message.message_id == message_id and message.state == INFLIGHT:
                self._set_timer(queue, message, INFLIGHT, self.now)
                hit = True
        self._tick_queue(queue, self.now)
        return hit
