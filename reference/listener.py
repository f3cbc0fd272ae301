"""The SQS listener: THE processing step, plain synchronous code with named fault points.

For each received message (fault points of :mod:`flowgate.reference.hooks` in this order)::

    receive -> after_receive -> decode (decrypt, parse, registry) -> after_decode
      -> idempotency claim -> after_claim -> saga/view decides (pure) -> mid_handler
      -> [effect invoke] ONE atomic fenced commit -> after_commit_before_record -> [effect ok]
      -> after_effect_before_delete -> publish outbox events
      -> after_publish -> before_delete -> delete -> after_delete

(``[...]`` are the observer's records: ``invoke`` just before the commit and ``ok`` after it, so
a worker killed in between leaves an open ``invoke`` that the redelivery's ``duplicate`` settles;
docs/decisions.md D20.)

The publish and the delete are batched over the whole poll (:meth:`SqsListener._finish`): every
message is first taken up to its commit (``after_effect_before_delete``); then the outboxes of
all finished messages are published (PublishBatch, <= 10 per call and topic; each FIFO group's
events in order, one message of a group per call) and ``after_publish`` is hit for each; then
``before_delete`` for each, the deletes go out as DeleteMessageBatch (<= 10; a failed entry is a
stale receipt: observed as a ``delete`` fail, never fatal) and ``after_delete`` is hit for each
deleted message. Per message the order of the points and the safety order commit -> publish ->
delete are unchanged; across the messages of one poll the later points interleave. A message is
deleted only after its events were published; if that publish fails, it and the rest of its
group stay for redelivery (committed, so the redelivery is a duplicate that re-publishes).
Poison is forwarded to the DLQ and deleted on the spot (single calls: rare).

Outcomes:

* **done** (effect committed, or already completed = *duplicate*: its outbox is re-published with
  the same ids, then the message is deleted);
* **busy** (another worker holds the lease): left alone;
* **poison** (bad JSON or anything strict decoding refuses, unknown type or one this queue is not
  for, missing attribute, failed/tampered decryption, wrong key, oversized, an id already known
  with other content = ``IdempotencyConflict``, a saga/view that raised = ``HandlerError``; any
  unexpected exception while decoding counts as ``DecodeError``): left for redelivery until the
  receive where ApproximateReceiveCount >= ``max_receive_count``, then forwarded to the queue's
  DLQ with a ``DeadLetterReason`` attribute and deleted. Transient failures (KMS/SQS/SNS/database
  errors, a disabled or inaccessible KMS key) are never poison; nothing but ``WorkerCrash``
  escapes the processing of one message (docs/decisions.md D21);
* **business failure** (:class:`BusinessError`): claim released, retried by redelivery; on the
  attempt whose receive count >= ``business_max_attempts`` it is recorded in the business
  dead-letter store (which ends the claim as ``DEAD_LETTERED``: no effect, so a replay after the
  cause is fixed decides again, docs/decisions.md D24) and deleted (V3's dual DLQ, doc 002). With
  ``BusOptions.business_failures_to_dlq`` it is first forwarded to the queue's DLQ like poison
  (``DeadLetterReason`` = ``BusinessError: <ErrorType>: <detail>``); if that forward fails the
  claim is released and the message left for redelivery (nothing recorded, nothing deleted).

Ordering: messages are grouped by MessageGroupId (standard queues: each message is its own
group). A group is processed strictly in order and stops at its first unfinished message; the
rest of that group in the batch is left for redelivery. Groups run in parallel on ``executor``
(production, up to ``max_concurrent_calls``) or one after another when ``executor`` is None
(simulation: :meth:`SqsListener.poll_once` is then deterministic). A worker runs
``BusOptions.pollers`` threads per listener, each calling :meth:`SqsListener.poll_once` in a
loop (SQS FIFO never hands a group's messages to a second receiver while some are in flight).

Timeouts: the message is invisible for VT = ``visibility_timeout`` from receipt; the idempotency
lease ends at the same deadline. At every step boundary, when more than VT/2 has passed since the
last extension, the listener calls ChangeMessageVisibility(VT) and extends the lease to the new
deadline (deterministic under a virtual clock). If either extension fails, the worker stops
working on the message (another worker may own it now); the fenced commit guarantees that a
worker whose lease was taken over can never write.

Outages: an infrastructure failure (:class:`~flowgate.reference.errors.TransportError`: the store's
:class:`~flowgate.reference.errors.StoreUnavailable`, KMS, a failed SNS publish, a failed ReceiveMessage,
a heartbeat whose lease extension cannot reach the store) opens the listener's circuit breaker
(:mod:`flowgate.reference.breaker`, which documents how its back-off relates to VT, ``wait_time_seconds``
and the redrive count). While it is open the listener does not call ReceiveMessage (a poll returns
0), stops working on the rest of the batch in hand (left for redelivery: one receive per message
and worker per outage) and probes the failing dependency; the first answered probe closes it.
A listener's first poll probes every dependency it uses (the store; KMS when it decrypts; SNS
when it publishes outboxes, i.e. on a command queue; SQS) before its first receive, so a worker
(re)started during an outage does not spend one receive per message to find out.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError
from opentelemetry import context as otel_context

from flowgate.reference import sourceflow
from flowgate.reference.breaker import BreakerStatus, CircuitBreaker
from flowgate.reference.bus import CommandBus, Processor, aggregate_name, observe_issued, send_issued
from flowgate.reference.config import BusOptions, is_fifo
from flowgate.reference.dispatchers import MAX_BATCH, MAX_BODY_BYTES
from flowgate.reference.envelope import ENCRYPTION_MARKER, EnvelopeCipher
from flowgate.reference.errors import (
    BusinessError,
    DecodeError,
    DecryptionError,
    DispatchError,
    FlowgateError,
    HandlerError,
    IdempotencyConflict,
    LeaseLost,
    MessageError,
    MissingAttribute,
    OversizedMessage,
    SequenceConflict,
    StoreError,
    StoreUnavailable,
    TransportError,
    UnknownMessageType,
    WriteConflict,
)
from flowgate.reference.hooks import Clock, Faults, NoFaults, NullObserver, Observer, SystemClock
from flowgate.reference.idempotency import Busy, Conflict, Duplicate, command_key, event_key, message_digest
from flowgate.reference.linger import FillLinger
from flowgate.reference.messages import ALIAS_FORMAT, Command, Event, Kind, Message, TypeRegistry, decode
from flowgate.reference.monitoring import ConsumerGauge
from flowgate.reference.stores import Effect
from flowgate.reference.telemetry import (
    CORRELATION_ATTRIBUTE,
    NOOP,
    PROCESS_SPAN,
    TRACEPARENT,
    ParentContext,
    Telemetry,
)

log = logging.getLogger(__name__)
DEAD_LETTER_REASON = "DeadLetterReason"
#: The source queue's MessageId of a forwarded dead letter (contract section 6: when the
#: 10-attribute limit allows); the DLQ replay tool reports it so a replayed copy can be traced.
DEAD_LETTER_SOURCE = "DeadLetterSourceMessageId"
#: How often a decision is recomputed when its entity/view row changed under it (another worker
#: committed first) before the message is left for redelivery.
WRITE_CONFLICT_ATTEMPTS = 5
#: What decoding one message may raise that is still *that message's* fault (poison
#: ``DecodeError``), besides :class:`MessageError`: anything (RecursionError, UnicodeError,
#: OverflowError, a bug). :class:`TransportError` is caught before it; ``WorkerCrash`` is a
#: ``BaseException`` and never caught.
_MESSAGE_FAULTS: tuple[type[Exception], ...] = (Exception,)


class OutboxPublisher(Protocol):
    """Publishes a command's events (the SNS dispatcher, or anything with ``dispatch_many``)."""

    def dispatch_many(self, events: Sequence[Message]) -> None: ...


@dataclass
class _Flight:
    """One received message while it is being processed."""

    message: Mapping[str, Any]
    receive_count: int
    deadline: float
    extended_at: float
    #: the idempotency claim held while processing (its lease is extended with the visibility);
    #: cleared when the claim ends (committed, released), so a finished message waiting for its
    #: poll's publish and delete is still extended, visibility only
    key: str | None = None
    token: int | None = None
    #: set by ``_command``/``_event`` when the message is finished up to its publish + delete,
    #: which :meth:`SqsListener._finish` then does for the whole poll in batch calls
    ready: bool = False
    outbox: Sequence[Message] = ()
    #: the follow-up commands its commit (or, for a duplicate, its first commit) numbered and
    #: recorded in the producer outbox (D33): sent by :meth:`SqsListener._finish` before the delete
    issued: tuple[Command, ...] = ()
    ctx: dict[str, Any] | None = None
    #: ``after_publish`` is hit after the outbox publish (effects and projections, not duplicates)
    publish_point: bool = False
    #: the trace context of its ``ProcessMessage`` span: the parent of its outbox's producer spans
    #: (published by :meth:`SqsListener._finish` after that span ended)
    trace_context: ParentContext | None = None
    #: a delete was attempted: the heartbeat thread stops extending its visibility
    deleted: bool = False
    #: the poll gave it up (its group stopped at it or before it: busy elsewhere, waiting for its
    #: predecessor, poison below ``max_receive_count``, a transient failure): left for redelivery,
    #: so the heartbeat no longer extends it -- it becomes visible at its deadline even while the
    #: rest of the poll runs on (a slow handler of another group)
    given_up: bool = False

    @property
    def message_id(self) -> str:
        return str(self.message["MessageId"])

    @property
    def receipt(self) -> str:
        return str(self.message["ReceiptHandle"])


class SqsListener:
    """Consumes one queue: commands (sagas) and/or events (views). See the module docstring."""

    def __init__(
        self,
        sqs: Any,
        *,
        queue: str,
        queue_url: str,
        dlq_url: str,
        registry: TypeRegistry,
        processor: Processor,
        options: BusOptions | None = None,
        destinations: Collection[str] | None = None,
        publisher: OutboxPublisher | None = None,
        cipher: EnvelopeCipher | None = None,
        clock: Clock | None = None,
        faults: Faults | None = None,
        observer: Observer | None = None,
        telemetry: Telemetry | None = None,
        executor: Executor | None = None,
        accepts: Kind | None = None,
        accepted_types: Collection[str] | None = None,
        command_bus: CommandBus | None = None,
    ) -> None:
        self.sqs = sqs
        self.queue = queue
        self.queue_url = queue_url
        self.dlq_url = dlq_url
        self.registry = registry
        self.processor = processor
        self.options = options or BusOptions()
        #: envelope destinations accepted: this queue (commands) and the topics it subscribes to
        self.destinations = frozenset(destinations or {queue})
        #: the kind of message this queue is for (a command queue: "command"; a subscription
        #: queue: "event"; None: both, for listeners built by hand) and, if given, the type names
        #: routed here; anything else is poison ``UnknownMessageType`` (see :meth:`_decode`)
        self.accepts = accepts
        self.accepted_types = frozenset(accepted_types) if accepted_types is not None else None
        self.publisher = publisher
        #: sends the follow-up commands sagas and aggregates issued (from the producer outbox,
        #: :meth:`CommandBus.send_unsent`); None: they stay recorded for the next sender (D33)
        self.command_bus = command_bus
        self.cipher = cipher
        self.clock = clock or SystemClock()
        self.faults = faults or NoFaults()
        self.observer = observer or NullObserver()
        self.telemetry = telemetry or NOOP
        self.executor = executor
        #: production: each poll thread hands its poll's publish + delete (:meth:`_finish`) to this
        #: pool and receives again; it waits for its previous poll's before handing over the next
        #: (one in flight per poll thread)
        self._finisher = (
            ThreadPoolExecutor(max_workers=self.options.pollers, thread_name_prefix=f"finish-{queue}")
            if executor
            else None
        )
        self._pending = threading.local()
        #: opened by an infrastructure failure: no receives until a probe of the dependency answers
        self.breaker = CircuitBreaker(
            f"listener:{queue}",
            clock=self.clock,
            initial=self.options.breaker_initial_backoff,
            maximum=self.options.breaker_max_backoff,
            on_transition=self._breaker_transition,
        )
        self._probed = False
        #: what this listener saw, for failure detection (:mod:`flowgate.reference.monitoring`): last
        #: receive, SentTimestamp of the messages it holds, effects and events raised
        self.gauge = ConsumerGauge(queue)
        #: production heartbeat: keeps every received, not yet deleted message invisible
        self._heartbeat = _Heartbeat(self) if executor is not None and self.options.heartbeat else None

    def __repr__(self) -> str:
        return f"SqsListener(queue={self.queue!r}, encrypted={self.cipher is not None})"

    # -- driving -----------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Poll until ``stop`` is set; the batch in hand is always finished first (graceful stop).

        Stop latency is at most ``wait_time_seconds`` (the long poll) plus one batch.

        Infrastructure failures open the circuit breaker (module docstring): while it is open the
        loop waits for the next probe (``stop.wait``, so a stop is noticed at once) instead of
        receiving. Any other failure of a poll (anything unexpected) is logged and the loop goes
        on after a 1 s back-off: what was not deleted is redelivered. Only
        :class:`~flowgate.reference.hooks.WorkerCrash` (a ``BaseException``) ends it.

        After a receive of 1..9 messages the loop may wait ``options.receive_linger`` before the
        next one (fuller batches, fewer calls; never after a full or an empty receive): with
        ``options.adaptive_linger`` (D35) only when the receive before it was full (a backlog just
        ran out), else after every partial receive (:class:`flowgate.reference.linger.FillLinger`).
        """
        lingers = FillLinger(self.options.receive_linger, adaptive=self.options.adaptive_linger)
        try:
            while not stop.is_set():
                if self.breaker.is_open:
                    wait = self.breaker.seconds_to_probe()
                    if wait > 0:
                        stop.wait(min(wait, 1.0))
                        continue
                try:
                    received = self._poll(wait_for_finish=False)
                    wait = lingers.wait(received) if received > 0 else 0.0
                    lingers.sent(received)
                    if wait > 0:
                        stop.wait(wait)
                except (FlowgateError, ClientError, BotoCoreError) as exc:
                    log.warning("poll of %s failed: %s", self.queue, exc)
                    stop.wait(1.0)
                except Exception:
                    log.exception("poll of %s failed unexpectedly; polling on", self.queue)
                    stop.wait(1.0)
        finally:
            self._await_finish()

    def poll_once(self) -> int:
        """One ReceiveMessage (long poll, up to 10) and the processing of everything received,
        including the publish and delete (:meth:`_finish`) before it returns.

        Returns the number of messages received: 0 while the circuit breaker is open (no
        ReceiveMessage unless a due probe of the failing dependency answered) and when the receive
        itself fails (that opens it). :class:`~flowgate.reference.hooks.WorkerCrash` always propagates.
        """
        return self._poll(wait_for_finish=True)

    def _poll(self, *, wait_for_finish: bool) -> int:
        """``poll_once``; with ``wait_for_finish=False`` (the run loop) the poll's publish and
        delete are handed to the finisher pool and may still be in flight on return (at most one
        poll's worth per poll thread: it first waits for its previous poll's). The messages stay
        under the heartbeat until their poll is finished.

        Handing the publish over cannot reorder a FIFO group: the next message of a group is not
        delivered while this one is in flight (it is deleted only after its events are published),
        and the per-entity sequence check (:meth:`_predecessor_missing`) covers visibility lapses.

        Nothing is received while the breaker is open (see the module docstring); a failed receive
        opens it (dependency ``sqs``) and counts as a poll of 0 messages."""
        if not self._probed:
            self._probed = True
            self._probe_all()
        if not self.breaker.allow(self._probe):
            return 0
        try:
            groups = self._receive()
        except TransportError as exc:
            self._outage(exc, "sqs")
            return 0
        flights = [f for group in groups for f in group]
        if self.breaker.is_open:
            # another poll thread opened it while this long poll was in flight: leave the batch
            # untouched (each message becomes visible again after VT; this receive was its one)
            self.gauge.on_release(f.message_id for f in flights)
            return len(flights)
        if self._heartbeat is not None:
            self._heartbeat.track(flights)
        handed_over = False
        try:
            self._process_groups(groups)
            self._await_finish()  # the previous poll's, if still in flight
            if wait_for_finish or self._finisher is None:
                self._finish(groups)
            else:
                self._pending.future = self._finisher.submit(self._finish_and_release, groups, flights)
                handed_over = True
        finally:
            if not handed_over:
                self._release(flights)
        return len(flights)

    def _finish_and_release(self, groups: list[list[_Flight]], flights: list[_Flight]) -> None:
        try:
            self._finish(groups)
        finally:
            self._release(flights)

    def _release(self, flights: list[_Flight]) -> None:
        """The poll is over for ``flights``: the heartbeat stops extending them (what was not
        deleted becomes visible again when its visibility timeout runs out)."""
        if self._heartbeat is not None:
            self._heartbeat.untrack(flights)
        self.gauge.on_release(f.message_id for f in flights)

    def _await_finish(self) -> None:
        """Wait for this poll thread's poll handed to the finisher pool. Publish failures and
        failed deletes are logged and observed there, never raised; an unexpected error or a
        :class:`~flowgate.reference.hooks.WorkerCrash` raised there is re-raised here."""
        pending = getattr(self._pending, "future", None)
        if pending is not None:
            self._pending.future = None
            pending.result()

    def _receive(self) -> list[list[_Flight]]:
        """ReceiveMessage (long poll, up to 10); the messages grouped by MessageGroupId."""
        vt = self.options.visibility_timeout
        trips = self.breaker.trips
        try:
            resp = self.sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=10,
                WaitTimeSeconds=self.options.wait_time_seconds,
                VisibilityTimeout=vt,
                # only the system attributes used here: fewer to build and serialize per message
                AttributeNames=[
                    "ApproximateReceiveCount",
                    "MessageGroupId",
                    "MessageDeduplicationId",
                    "SentTimestamp",
                ],
                MessageAttributeNames=["All"],
            )
        except (ClientError, BotoCoreError) as exc:
            raise TransportError(f"ReceiveMessage on {self.queue} failed: {exc}") from exc
        messages: list[Mapping[str, Any]] = resp.get("Messages", [])
        # the breaker opened while the call was in flight (another poll thread): recorded, so the
        # history can tell this from a receive started while open
        raced = {"breaker_opened_in_flight": True} if self.breaker.trips != trips else {}
        now = self.clock.now()
        groups: dict[str, list[_Flight]] = {}
        for m in messages:
            attrs = m.get("Attributes", {})
            count = int(attrs.get("ApproximateReceiveCount", "1"))
            self.observer.observe(
                "receive",
                "ok",
                {
                    "message_id": m["MessageId"],
                    "queue": self.queue,
                    "receive_count": count,
                    **_dedup_facts(m, attrs),
                    **raced,
                },
            )
            self.telemetry.message_received.add(1, {"queue": self.queue})
            group = attrs.get("MessageGroupId") or f"msg:{m['MessageId']}"
            groups.setdefault(group, []).append(_Flight(m, count, now + vt, now))
        self.gauge.on_receive(now, [(str(m["MessageId"]), _sent_at(m)) for m in messages])
        return list(groups.values())

    def _process_groups(self, groups: list[list[_Flight]]) -> None:
        """Take every message up to its commit (``_run_group`` per FIFO group)."""
        if self.executor is None:
            for flights in groups:
                self._run_group(flights)
        else:
            futures = [self.executor.submit(self._run_group, flights) for flights in groups]
            for fut in futures:
                fut.result()

    def _finish(self, groups: list[list[_Flight]]) -> None:
        """Publish the outboxes, then delete, of every message of this poll that is ready.

        Per message the safety order is unchanged: commit -> publish its events -> delete it. The
        calls are shared: publishing goes in rounds (round r = the r-th ready message of every
        group, so one call never holds two messages of a group and a failed publish cannot be
        overtaken by a later message of its group); each round is one ``dispatch_each`` (PublishBatch,
        <= 10 entries per topic and call, each group's events in order). A message whose publish
        failed is not deleted, nor is anything after it in its group (their effects are committed:
        the redeliveries are duplicates and re-publish, in group order). The deletes of all
        published messages then go out as DeleteMessageBatch calls of <= 10 entries.
        """
        # each group's ready messages in group order (``_run_group`` stopped the group at its first
        # unfinished message; poison was dead-lettered and deleted on the spot, so is not "ready")
        pending = [ready for flights in groups if (ready := [f for f in flights if f.ready])]
        to_delete: list[_Flight] = []
        round_no = 0
        while pending:
            batch = [g[round_no] for g in pending]
            # the issued commands first (D33): a message is deleted only once they are sent too
            outcomes: list[Exception | None] = [self._send_issued(f) for f in batch]
            unsent = {i for i, e in enumerate(outcomes) if e is not None}
            if self.publisher is not None and any(
                f.outbox for f, e in zip(batch, outcomes, strict=True) if e is None
            ):
                published = self._publish(
                    [f.outbox if e is None else () for f, e in zip(batch, outcomes, strict=True)],
                    [f.trace_context for f in batch],
                )
                outcomes = [e if e is not None else p for e, p in zip(outcomes, published, strict=True)]
            alive = []
            for i, (g, f, err) in enumerate(zip(pending, batch, outcomes, strict=True)):
                if err is not None:
                    what = "sending its issued commands" if i in unsent else "publish"
                    self._outage(err, "sqs" if i in unsent else "sns")
                    log.warning("%s left for redelivery: %s failed: %s", f.message_id, what, err)
                    self.telemetry.message_processing_error.add(1, {"queue": self.queue})
                    continue  # this message and the rest of its group stay for redelivery
                if f.publish_point:
                    self.faults.hit("after_publish", f.ctx or {})
                to_delete.append(f)
                if round_no + 1 < len(g):
                    alive.append(g)
            pending = alive
            round_no += 1
        for f in to_delete:
            self.faults.hit("before_delete", f.ctx or {})
        self._delete_all(to_delete)

    def _send_issued(self, f: _Flight) -> Exception | None:
        """Send ``f``'s issued commands still unsent (:func:`~flowgate.reference.bus.send_issued`); the
        transport failure that stopped it, if any (the message then stays for redelivery, whose
        duplicate sends them again from the producer outbox)."""
        if not f.issued:
            return None
        try:
            send_issued(self.command_bus, f.issued)
        except TransportError as exc:
            return exc
        return None

    def _delete_all(self, flights: Sequence[_Flight]) -> None:
        for i in range(0, len(flights), MAX_BATCH):
            chunk = flights[i : i + MAX_BATCH]
            if len(chunk) == 1:
                self._delete(chunk[0], chunk[0].ctx or {})
            else:
                self._delete_batch(chunk)

    def _publish(
        self, outboxes: list[Sequence[Message]], parents: list[ParentContext | None]
    ) -> list[Exception | None]:
        """One outcome per outbox; batched when the publisher can (``dispatch_each``). Each
        outbox's producer spans are children of ``parents`` (its message's processing span)."""
        assert self.publisher is not None
        each = getattr(self.publisher, "dispatch_each", None)
        if each is not None:
            return list(each(outboxes, parents))
        out: list[Exception | None] = []
        for events, parent in zip(outboxes, parents, strict=True):
            token = otel_context.attach(parent) if parent is not None else None
            try:
                if events:
                    self.publisher.dispatch_many(events)
                out.append(None)
            except TransportError as exc:
                out.append(exc)
            finally:
                if token is not None:
                    otel_context.detach(token)
        return out

    def _ready(
        self, f: _Flight, ctx: dict[str, Any], outbox: Sequence[Message] = (), *, publish_point: bool = False
    ) -> bool:
        """Hand ``f`` to :meth:`_finish` (publish ``outbox``, then delete) and report it done."""
        f.ready, f.outbox, f.ctx, f.publish_point = True, tuple(outbox), ctx, publish_point
        return True

    def _run_group(self, flights: list[_Flight]) -> None:
        for index, flight in enumerate(flights):
            if self.breaker.is_open or not self._process(flight):
                for left in flights[index:]:  # stop the group at its first unfinished message
                    left.given_up = True
                return
            for waiting in flights[index + 1 :]:
                # messages queued behind the head in this batch are invisible too: keep them so
                # (a follower whose visibility lapses is redelivered while we still hold it)
                self._beat(waiting)

    # -- one message -------------------------------------------------------------------------
    def _process(self, f: _Flight) -> bool:
        """One message up to its commit; True when it is finished (ready, or dead-lettered).

        Nothing raised while handling one message leaves this method except
        :class:`~flowgate.reference.hooks.WorkerCrash`, so no message can take its batch down:

        * decoding: a :class:`MessageError` is poison with its reason; a :class:`TransportError`
          (KMS unavailable) leaves it for redelivery; **anything else** (RecursionError,
          UnicodeError, OverflowError, a bug) is the message's fault: poison ``DecodeError``;
        * after decoding: a :class:`MessageError` (``IdempotencyConflict``, ``HandlerError``, an
          over-long row id) is poison; :class:`TransportError` / :class:`LeaseLost` and anything
          unexpected (a store failure) release the claim still held and leave the message for
          redelivery -- never poison (the SQS redrive policy is the backstop).
        """
        ctx = {"message_id": f.message_id, "queue": self.queue, "receive_count": f.receive_count}
        start = time.perf_counter()
        attrs = _string_attributes(f.message)
        span_attributes: dict[str, str | int] = {
            "messaging.system": "aws_sqs",
            "messaging.operation.type": "process",
            "messaging.destination.name": self.queue,
            "messaging.message.id": f.message_id,
            "queue": self.queue,
        }
        if attrs.get("CorrelationId"):
            span_attributes[CORRELATION_ATTRIBUTE] = attrs["CorrelationId"]
        with self.telemetry.consumer_span(PROCESS_SPAN, span_attributes, attrs.get(TRACEPARENT)) as span:
            f.trace_context = self.telemetry.context_of(span)
            self.faults.hit("after_receive", ctx)
            try:
                message = self._decode(f.message, attrs)
            except MessageError as exc:
                return self._poison(f, exc)
            except TransportError as exc:
                self._outage(exc, "kms")
                log.warning("transient failure decoding %s: %s", f.message_id, exc)
                self.telemetry.message_processing_error.add(1, {"queue": self.queue})
                return False
            except _MESSAGE_FAULTS as exc:  # the message's fault, whatever it is (D21)
                return self._poison(f, DecodeError(f"undecodable message: {type(exc).__name__}: {exc}"))
            ctx = {
                **ctx,
                "message_type": message.name,
                "entity_id": message.entity_id,
                "seq": message.metadata.sequence_no,
                "event_id": message.metadata.event_id,
            }
            self.faults.hit("after_decode", ctx)
            span.set_attributes(
                {
                    "sourceflow.message.type": message.name,
                    "sourceflow.entity.id": message.entity_id,
                    "sourceflow.sequence_no": message.metadata.sequence_no,
                    "sourceflow.event_id": message.metadata.event_id,
                }
            )
            if message.metadata.correlation_id:
                span.set_attribute(CORRELATION_ATTRIBUTE, message.metadata.correlation_id)
            try:
                if isinstance(message, Command):
                    done = self._command(f, message, ctx)
                else:
                    done = self._event(f, message, ctx)
            except (TransportError, LeaseLost) as exc:
                self._outage(exc, "store")
                log.warning("%s left for redelivery: %s", f.message_id, exc)
                self._release_claim(f)
                done = False
            except MessageError as exc:
                self._release_claim(f)
                done = self._poison(f, exc)
            except Exception:
                log.exception("%s left for redelivery: unexpected failure", f.message_id)
                self._release_claim(f)
                done = False
            span.set_attribute("sourceflow.outcome", "done" if done else "left")
            if done:
                self.telemetry.message_processed.add(1, {"queue": self.queue, "type": message.name})
                self.telemetry.message_processing_duration.record(
                    (time.perf_counter() - start) * 1000, {"queue": self.queue, "type": message.name}
                )
            else:
                self.telemetry.message_processing_error.add(1, {"queue": self.queue, "type": message.name})
            return done

    def _release_claim(self, f: _Flight) -> None:
        """Drop the IN_PROGRESS claim ``f`` still holds (if any) so a redelivery runs at once; a
        failure to do so is logged (the lease then simply expires)."""
        if f.key is None or f.token is None:
            return
        key, token = f.key, f.token
        f.key = f.token = None
        try:
            self.processor.storage.release(key, token)
        except Exception as exc:
            log.warning("could not release the claim on %s: %s", key, exc)

    def _handler_failed(self, f: _Flight, what: str, exc: Exception) -> bool:
        """A saga/view raised something unexpected: claim released; left for redelivery, and on
        the receive where ApproximateReceiveCount >= ``max_receive_count`` dead-lettered as
        ``HandlerError`` (docs/decisions.md D21)."""
        log.error("%s failed on %s: %s: %s", what, f.message_id, type(exc).__name__, exc, exc_info=exc)
        self._release_claim(f)
        return self._poison(f, HandlerError(f"{what}: {type(exc).__name__}: {exc}"))

    def _command(self, f: _Flight, cmd: Command, ctx: dict[str, Any]) -> bool:
        key = command_key(cmd.event_id)
        claim = self.processor.storage.claim(
            key,
            now=self.clock.now(),
            lease_until=f.deadline,
            message_type=cmd.name,
            digest=message_digest(cmd),
        )
        if isinstance(claim, Busy):
            return False
        if isinstance(claim, Conflict):
            raise IdempotencyConflict(f"command id {cmd.event_id} is already known with other content")
        if isinstance(claim, Duplicate):
            self.observer.observe(
                "duplicate",
                "ok",
                {
                    "key": key,
                    "command_id": cmd.event_id,
                    "entity_id": cmd.entity_id,
                    "seq": cmd.metadata.sequence_no,
                },
            )
            observe_issued(self.observer, cmd.event_id, claim.commands)
            f.issued = claim.commands  # sent if still unsent (never new ones)
            return self._ready(f, ctx, claim.outbox)  # re-published with the same ids, then deleted
        f.key, f.token = key, claim.token
        self.faults.hit("after_claim", ctx)
        if self._predecessor_missing(f, cmd):
            self.processor.storage.release(key, claim.token)
            return False
        if not self._beat(f):
            return False
        effect = {
            "command_id": cmd.event_id,
            "entity_id": cmd.entity_id,
            "seq": cmd.metadata.sequence_no,
            "command_type": cmd.name,
        }
        for _attempt in range(WRITE_CONFLICT_ATTEMPTS):
            try:
                decision = self.processor.decide(cmd)
            except BusinessError as exc:
                return self._business_failure(f, cmd, exc, ctx)
            except Exception as exc:
                return self._handler_failed(f, f"saga on {cmd.name}", exc)
            self.faults.hit("mid_handler", ctx)
            if not self._beat(f):
                return False
            # recorded before the commit: a worker killed between the commit and the ``ok`` below
            # leaves this ``invoke`` open, and the redelivery's ``duplicate`` settles it (D20)
            self.observer.observe("effect", "invoke", effect)
            try:
                issued = self.processor.storage.commit(
                    self.processor.command_effect(cmd, claim.token, decision)
                )
                break
            except SequenceConflict as exc:
                self.observer.observe("effect", "fail", {**effect, "error": str(exc)})
                return self._business_failure(f, cmd, exc, ctx)
            except MessageError as exc:  # the store refused the content (e.g. a row id): poison
                self.observer.observe("effect", "fail", {**effect, "error": str(exc)})
                raise
            except WriteConflict as exc:
                self.observer.observe("effect", "fail", {**effect, "error": str(exc)})
                log.info("%s: %s; deciding again", cmd.event_id, exc)
        else:
            self.processor.storage.release(key, claim.token)
            return False
        self.faults.hit("after_commit_before_record", ctx)
        self.observer.observe("effect", "ok", effect)
        f.issued = tuple(issued or ())
        observe_issued(self.observer, cmd.event_id, f.issued)
        # the claim ended with the commit: from here on the heartbeat extends only the message's
        # visibility (a stale token's ``extend`` is False, and would drop the message from the
        # heartbeat while it waits for its poll's publish and delete)
        f.key = f.token = None
        sent = _sent_at(f.message)
        self.gauge.on_effect(
            cmd.name, [e.name for e in decision.events], None if sent is None else self.clock.now() - sent
        )
        self.faults.hit("after_effect_before_delete", ctx)
        return self._ready(f, ctx, decision.events, publish_point=True)

    def _predecessor_missing(self, f: _Flight, cmd: Command) -> bool:
        """True when ``cmd`` must wait: the entity's command store ends below ``seq - 1`` (the
        previous command has not taken effect) and this is not yet the receive where
        ``ApproximateReceiveCount >= business_max_attempts``. The message is then left for
        redelivery (after the visibility timeout) with its claim released.

        FIFO delivery alone does not guarantee the order: when a message's visibility lapses while
        the next one of its group is in flight elsewhere, SQS (LocalStack, and the simulator that
        follows it) may hand out the one after next. The per-entity sequence number catches that.
        The wait is bounded because a predecessor may never take effect (dead-lettered as poison
        or as a business failure): from that receive on, the command is handled anyway."""
        seq = cmd.metadata.sequence_no
        if seq <= 1 or f.receive_count >= self.options.business_max_attempts:
            return False
        last = self.processor.storage.last_sequence(cmd.entity_id)
        if last >= seq - 1:
            return False
        log.info(
            "%s (%s seq %d) waits for seq %d (the store ends at %d); left for redelivery",
            cmd.event_id,
            cmd.entity_id,
            seq,
            seq - 1,
            last,
        )
        return True

    def _business_failure(self, f: _Flight, cmd: Command, exc: Exception, ctx: dict[str, Any]) -> bool:
        """A command the domain refused (or whose sequence number is taken): retried by redelivery
        until ``business_max_attempts``, then (optionally forwarded to the DLQ,) recorded in the
        business dead-letter store and handed to :meth:`_finish` for the delete."""
        assert f.key is not None
        assert f.token is not None
        if f.receive_count < self.options.business_max_attempts:
            log.info("business failure on %s (attempt %d): %s", cmd.event_id, f.receive_count, exc)
            self.processor.storage.release(f.key, f.token)
            return False
        reason = f"{type(exc).__name__}: {exc}"
        if self.options.business_failures_to_dlq and not self._forward_to_dlq(f, f"BusinessError: {reason}"):
            # not forwarded (transport failure): nothing recorded, retried by redelivery
            self.processor.storage.release(f.key, f.token)
            return False
        self.processor.storage.commit(
            self.processor.dead_letter_effect(cmd, f.token, reason, str(f.message["Body"]))
        )
        f.key = f.token = None  # the claim ended with the commit (see :meth:`_command`)
        self.observer.observe(
            "business_dead_letter",
            "ok",
            {
                "command_id": cmd.event_id,
                "entity_id": cmd.entity_id,
                "seq": cmd.metadata.sequence_no,
                "reason": reason,
            },
        )
        self.gauge.on_failed()
        return self._ready(f, ctx)

    def _event(self, f: _Flight, evt: Event, ctx: dict[str, Any]) -> bool:
        """Project ``evt`` into every view that projects it, then have every aggregate that
        subscribes to it react (D33), each under its own claim ``event:{id}:{name}`` and commit;
        an aggregate's issued commands are sent by :meth:`_finish` before the delete."""
        targets: list[tuple[str, str, Callable[[int], Effect]]] = [
            (view.name, f"view {view.name}", functools.partial(self.processor.view_effect, view, evt))
            for view in self.processor.views_for(type(evt.payload))
        ]
        targets += [
            (
                aggregate_name(aggregate),
                f"aggregate {aggregate.kind}",
                functools.partial(self.processor.aggregate_effect, aggregate, evt),
            )
            for aggregate in self.processor.aggregates_for(type(evt.payload))
        ]
        issued: list[Command] = []
        for name, what, build in targets:
            key = event_key(evt.event_id, name)
            claim = self.processor.storage.claim(
                key,
                now=self.clock.now(),
                lease_until=f.deadline,
                message_type=evt.name,
                digest=message_digest(evt, name),
            )
            if isinstance(claim, Busy):
                return False
            if isinstance(claim, Conflict):
                raise IdempotencyConflict(
                    f"event id {evt.event_id} is already known to {what} with other content"
                )
            if isinstance(claim, Duplicate):
                self.observer.observe(
                    "duplicate",
                    "ok",
                    {
                        "key": key,
                        "event_id": evt.event_id,
                        "view": name,
                        "entity_id": evt.entity_id,
                        "seq": evt.metadata.sequence_no,
                    },
                )
                observe_issued(self.observer, evt.event_id, claim.commands)
                issued.extend(claim.commands)
                continue
            f.key, f.token = key, claim.token
            self.faults.hit("after_claim", {**ctx, "view": name})
            if not self._beat(f):
                return False
            projection = {
                "event_id": evt.event_id,
                "entity_id": evt.entity_id,
                "seq": evt.metadata.sequence_no,
                "event_type": evt.name,
                "view": name,
            }
            for _attempt in range(WRITE_CONFLICT_ATTEMPTS):
                try:
                    effect = build(claim.token)
                except Exception as exc:
                    return self._handler_failed(f, what, exc)
                self.faults.hit("mid_handler", {**ctx, "view": name})
                if not self._beat(f):
                    return False
                self.observer.observe("project", "invoke", projection)  # see _command (D20)
                try:
                    committed = self.processor.storage.commit(effect)
                    break
                except MessageError as exc:  # the store refused the content: poison
                    self.observer.observe("project", "fail", {**projection, "error": str(exc)})
                    raise
                except WriteConflict as exc:
                    self.observer.observe("project", "fail", {**projection, "error": str(exc)})
                    log.info("%s into %s: %s; projecting again", evt.event_id, name, exc)
            else:
                self.processor.storage.release(key, claim.token)
                return False
            self.faults.hit("after_commit_before_record", {**ctx, "view": name})
            self.observer.observe("project", "ok", projection)
            observe_issued(self.observer, evt.event_id, committed or ())
            issued.extend(committed or ())
            f.key = f.token = None
        f.issued = tuple(issued)
        self.faults.hit("after_effect_before_delete", ctx)
        return self._ready(f, ctx, publish_point=True)

    # -- helpers -----------------------------------------------------------------------------
    def _decode(self, m: Mapping[str, Any], attrs: Mapping[str, str]) -> Message:
        """Attributes, size, routing, envelope, strict body (:func:`~flowgate.reference.messages.decode`),
        then body/attribute agreement. A failure inside the envelope path that is neither a
        :class:`MessageError` nor a :class:`TransportError` is a :class:`DecryptionError`."""
        body = str(m.get("Body", ""))
        try:
            size = len(body) if body.isascii() else len(body.encode("utf-8"))  # ASCII: 1 byte a char
        except UnicodeEncodeError as exc:
            raise DecodeError("body is not encodable as UTF-8 (lone surrogate)") from exc
        if size > MAX_BODY_BYTES:
            raise OversizedMessage("body exceeds 256 KiB")
        kind: Kind
        kind, type_name = _message_kind(attrs)
        if self._is_sourceflow(type_name):
            message = self._decode_sourceflow(body, attrs, kind, type_name)
        else:
            message = self._decode_native(body, attrs, kind, type_name)
        if isinstance(message, Command) and not self.processor.sagas_for(type(message.payload)):
            raise UnknownMessageType(f"no saga handles {message.name} on {self.queue}")
        if self.options.sourceflow_emit and not sourceflow.representable(message.entity_id):
            # its events could never be published in SourceFlow's shape (an int entity id)
            raise DecodeError(f"entity id {message.entity_id!r} is not a SourceFlow int (sourceflow_emit)")
        return message

    def _is_sourceflow(self, type_name: str) -> bool:
        """True when interop is on and ``type_name`` is not a registry name but a registered
        alias or shaped like an assembly-qualified name (then it must be an exact alias:
        ``UnknownMessageType`` otherwise). With interop off a registered alias is refused with a
        reason that says so; any other unknown name is refused by the registry as before."""
        if self.registry.has_name(type_name):
            return False
        if self.options.sourceflow_interop:
            return self.registry.has_alias(type_name) or ALIAS_FORMAT.fullmatch(type_name) is not None
        if self.registry.has_alias(type_name):
            raise UnknownMessageType(
                f"type {type_name!r} is a SourceFlow.Net alias, but SourceFlow interop is off "
                "(BusOptions.sourceflow_interop)"
            )
        return False

    def _decode_sourceflow(self, body: str, attrs: Mapping[str, str], kind: Kind, alias: str) -> Message:
        """A message in SourceFlow.Net v2's shape (:func:`flowgate.reference.sourceflow.decode`): the alias
        must be registered exactly and routed here; plaintext only (SourceFlow does not encrypt)."""
        cls = self.registry.by_alias(alias, kind)
        self._check_route(kind, cls.message_name)
        if "Encryption" in attrs:
            raise DecryptionError(
                "an Encryption attribute on a SourceFlow.Net message (SourceFlow does not encrypt)"
            )
        if self.cipher is not None:
            raise DecryptionError("plaintext SourceFlow.Net message on an encrypted bus")
        return sourceflow.decode(body, attrs, kind, alias, self.registry)

    def _decode_native(self, body: str, attrs: Mapping[str, str], kind: Kind, type_name: str) -> Message:
        self.registry.lookup(type_name, kind)
        self._check_route(kind, type_name)
        entity_id = attrs.get("EntityId")
        if not entity_id:
            raise MissingAttribute("EntityId attribute missing")
        sequence_no = attrs.get("SequenceNo")
        if not sequence_no:
            raise MissingAttribute("SequenceNo attribute missing")
        marker = attrs.get("Encryption")
        if marker is not None:
            if marker != ENCRYPTION_MARKER:
                raise DecryptionError(f"unknown encryption scheme {marker!r}")
            if self.cipher is None:
                raise DecryptionError("encrypted message but this listener has no key")
            event_id = attrs.get("EventId")
            if not event_id:
                raise MissingAttribute("EventId attribute missing on an encrypted message")
            try:
                body = self.cipher.open(
                    body,
                    message_id=event_id,
                    entity_id=entity_id,
                    message_type=type_name,
                    destinations=self.destinations,
                )
            except (MessageError, TransportError):
                raise
            except Exception as exc:  # e.g. RecursionError in the envelope JSON
                raise DecryptionError(f"envelope cannot be opened: {type(exc).__name__}: {exc}") from exc
        elif self.cipher is not None:
            raise DecryptionError("plaintext message on an encrypted bus")
        message = decode(body, self.registry)
        if message.name != type_name or message.entity_id != entity_id:
            raise DecodeError("body contradicts the CommandType/EventType or EntityId attribute")
        if attrs.get("EventId", message.metadata.event_id) != message.metadata.event_id:
            raise DecodeError("body contradicts the EventId attribute")
        if sequence_no != str(message.metadata.sequence_no):
            raise DecodeError("body contradicts the SequenceNo attribute")
        return message

    def _check_route(self, kind: Kind, type_name: str) -> None:
        """:class:`UnknownMessageType` unless this queue is for ``kind`` messages of this type: an
        event on a command queue would otherwise be projected (a forged view effect), a command on
        a view queue run by whatever saga handles it."""
        if self.accepts is not None and kind != self.accepts:
            raise UnknownMessageType(
                f"{kind} {type_name!r} on {self.queue}, which takes {self.accepts}s only"
            )
        if self.accepted_types is not None and type_name not in self.accepted_types:
            raise UnknownMessageType(f"{kind} {type_name!r} is not routed to {self.queue}")

    def _poison(self, f: _Flight, exc: MessageError) -> bool:
        """Left for redelivery until the receive where ApproximateReceiveCount >=
        ``max_receive_count``, then forwarded to the DLQ with ``DeadLetterReason`` =
        ``<Code>: <detail>`` and deleted. Never raises (a failed forward leaves the message)."""
        # the detail may quote hostile text: keep the attribute valid UTF-8 without NULs
        reason = (
            f"{exc.reason}: {exc}".encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\0")
        )
        if f.receive_count < self.options.max_receive_count:
            log.info(
                "poison %s on receive %d (left for redelivery): %s", f.message_id, f.receive_count, reason
            )
            return False
        try:
            if not self._forward_to_dlq(f, reason):
                return False
        except Exception as exc2:  # e.g. a body the SQS client cannot even encode
            log.warning("could not forward %s to the DLQ: %s: %s", f.message_id, type(exc2).__name__, exc2)
            return False
        return self._delete(f, {"message_id": f.message_id, "queue": self.queue})

    def _forward_to_dlq(self, f: _Flight, reason: str) -> bool:
        """Send ``f`` to this queue's DLQ: same body and MessageGroupId, its attributes (at most 9,
        ``traceparent`` dropped first) plus ``DeadLetterReason`` = ``reason`` (cut to 1000
        characters) and, when that leaves room, ``DeadLetterSourceMessageId``, deduplicated by the original MessageDeduplicationId (else its MessageId).

        Observes ``dead_letter`` and returns True when sent; a failed send is logged and returns
        False (the caller leaves the message for redelivery). Does not delete the original.
        """
        reason = reason[:1000]
        attrs = dict(f.message.get("MessageAttributes", {}))
        attrs.pop(DEAD_LETTER_REASON, None)
        attrs.pop(DEAD_LETTER_SOURCE, None)
        if len(attrs) >= 10:
            attrs.pop("traceparent", None)
        forwarded = {
            k: {kk: vv for kk, vv in v.items() if kk in ("DataType", "StringValue", "BinaryValue")}
            for k, v in list(attrs.items())[:9]
        }
        forwarded[DEAD_LETTER_REASON] = {"DataType": "String", "StringValue": reason}
        if len(forwarded) < 10:
            forwarded[DEAD_LETTER_SOURCE] = {"DataType": "String", "StringValue": f.message_id}
        params: dict[str, Any] = {
            "QueueUrl": self.dlq_url,
            "MessageBody": str(f.message.get("Body") or "-"),
            "MessageAttributes": forwarded,
        }
        if is_fifo(self.queue):
            sys_attrs = f.message.get("Attributes", {})
            params["MessageGroupId"] = sys_attrs.get("MessageGroupId") or "poison"
            params["MessageDeduplicationId"] = sys_attrs.get("MessageDeduplicationId") or f.message_id
        try:
            self.sqs.send_message(**params)
        except (ClientError, BotoCoreError) as exc2:
            log.warning("could not forward %s to the DLQ: %s", f.message_id, exc2)
            return False
        self.observer.observe(
            "dead_letter", "ok", {"message_id": f.message_id, "queue": self.queue, "reason": reason}
        )
        return True

    # -- outages -----------------------------------------------------------------------------
    def _outage(self, exc: BaseException, where: str) -> None:
        """Open the breaker if ``exc`` is an infrastructure failure. ``where`` names the dependency
        the failing step talks to (decode: KMS; claim/commit: the store; publish: SNS; receive:
        SQS); the error's own class wins (a store error is the store's, a failed send SNS's, any
        other transport error in a publish is the cipher's KMS call)."""
        if not isinstance(exc, TransportError):
            return  # LeaseLost, a business or domain error: not an outage
        if isinstance(exc, StoreUnavailable):
            dependency = "store"
        elif isinstance(exc, DispatchError):
            dependency = "sns"
        elif where == "sns":
            dependency = "kms"  # sealing the outbox failed
        else:
            dependency = where
        self.breaker.trip(dependency, exc)

    def _probe(self, dependency: str) -> None:
        """One cheap call that receives nothing; raises while ``dependency`` is down."""
        if dependency == "store":
            self.processor.storage.ping()
        elif dependency == "kms":
            probe = getattr(self.cipher, "probe", None)
            if probe is not None:
                probe()
        elif dependency == "sns":
            sns = getattr(self.publisher, "sns", None)
            topics = getattr(getattr(self.publisher, "resources", None), "topic_arns", None)
            if sns is not None and topics:
                sns.get_topic_attributes(TopicArn=next(iter(topics.values())))
        else:
            self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])

    def _probe_all(self) -> None:
        """The start-up probe (module docstring): opens the breaker on the first dependency that
        does not answer."""
        dependencies = ["store", "sqs"]
        if self.cipher is not None:
            dependencies.append("kms")
        if self.publisher is not None and self.queue in self.destinations:
            dependencies.append("sns")
        for dependency in dependencies:
            try:
                self._probe(dependency)
            except Exception as exc:
                self.breaker.trip(dependency, exc)
                return

    def _breaker_transition(self, name: str, state: str, dependency: str, error: str) -> None:
        value = {"queue": self.queue, "state": state, "dependency": dependency}
        self.observer.observe("breaker", "info", {**value, "error": error} if error else value)
        self.telemetry.breaker_transition.add(1, value)

    def health(self) -> BreakerStatus:
        """The breaker's status (``flowgate.reference.health`` reports ``degraded: <dependency>`` while open)."""
        return self.breaker.status()

    def _beat(self, f: _Flight) -> bool:
        """Extend visibility and lease together when more than VT/2 passed since the last extension.

        Never raises for an infrastructure failure: a failed ChangeMessageVisibility or lease
        extension (the store down: that also opens the breaker) returns False, and the caller stops
        working on the message."""
        vt = self.options.visibility_timeout
        now = self.clock.now()
        if not self.options.heartbeat or now - f.extended_at <= vt / 2:
            return True
        try:
            self.sqs.change_message_visibility(
                QueueUrl=self.queue_url, ReceiptHandle=f.receipt, VisibilityTimeout=vt
            )
        except (ClientError, BotoCoreError) as exc:
            log.warning("heartbeat for %s failed (message may be redelivered): %s", f.message_id, exc)
            return False
        f.deadline, f.extended_at = now + vt, now
        if f.key is not None and f.token is not None:
            try:
                return self.processor.storage.extend(f.key, f.token, f.deadline)
            except StoreError as exc:
                self._outage(exc, "store")
                log.warning(
                    "lease extension for %s failed (message may be redelivered): %s", f.message_id, exc
                )
                return False
        return True

    def _delete(self, f: _Flight, ctx: Mapping[str, Any]) -> bool:
        value = {"message_id": f.message_id, "queue": self.queue}
        f.deleted = True
        try:
            self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=f.receipt)
        except (ClientError, BotoCoreError) as exc:
            # stale/invalid receipt handle (visibility expired, redelivered): the redelivery will be
            # recognised as a duplicate, so this is logged and observed, never fatal
            log.warning("delete of %s failed: %s", f.message_id, exc)
            self.observer.observe("delete", "fail", {**value, "error": str(exc)})
            return False
        self.observer.observe("delete", "ok", value)
        self.faults.hit("after_delete", ctx)
        return True

    def _delete_batch(self, flights: Sequence[_Flight]) -> None:
        """DeleteMessageBatch (<= 10). A failed entry is a stale receipt (visibility expired, the
        message redelivered): observed as a ``delete`` fail and logged, never fatal; the redelivery
        is recognised as a duplicate. A failed call fails every entry the same way."""
        assert len(flights) <= MAX_BATCH
        for f in flights:
            f.deleted = True
        failed: dict[str, str] = {}
        try:
            resp = self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(n), "ReceiptHandle": f.receipt} for n, f in enumerate(flights)],
            )
            for entry in resp.get("Failed", []):
                failed[str(entry.get("Id"))] = f"{entry.get('Code')}: {entry.get('Message', '')}"
            answered = {str(e.get("Id")) for e in resp.get("Successful", [])} | set(failed)
            for n in range(len(flights)):
                if str(n) not in answered:
                    failed[str(n)] = "no result for this entry"
        except (ClientError, BotoCoreError) as exc:
            failed = {str(n): str(exc) for n in range(len(flights))}
        for n, f in enumerate(flights):
            value = {"message_id": f.message_id, "queue": self.queue}
            error = failed.get(str(n))
            if error is not None:
                log.warning("delete of %s failed: %s", f.message_id, error)
                self.observer.observe("delete", "fail", {**value, "error": error})
                continue
            self.observer.observe("delete", "ok", value)
            self.faults.hit("after_delete", f.ctx or value)


class _Heartbeat:
    """Production heartbeat of one listener: a thread that keeps every received message invisible
    (and its idempotency lease alive) until its poll has deleted it or given it up
    (:attr:`_Flight.given_up`: a message left for redelivery is not held back while the rest of
    the poll runs on -- its group's next message, in flight elsewhere, could overtake it).

    Step-boundary beats cover the message in hand; with groups on an executor and publishes and
    deletes batched per poll (and handed to the finisher pool), a message that finished early, or
    waits behind its group's head or for its poll's publish, would otherwise sit undeleted past its
    visibility timeout and another worker would receive it. The thread wakes every VT/4 and calls
    the same ``_beat`` (which only extends past VT/2), so at most one ChangeMessageVisibility per
    message per VT/2. It runs while anything is tracked and exits when nothing is. Not used with
    ``executor=None`` (simulation), where only the deterministic step-boundary beats run.

    A beat that fails (False: visibility or lease could not be extended; or any exception, e.g. a
    store error) is that flight's failure only: it is logged and the flight is no longer extended
    (its processing thread notices at its next step boundary); the thread goes on beating the
    others.
    """

    def __init__(self, listener: SqsListener) -> None:
        self.listener = listener
        self._tracked: dict[int, _Flight] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def track(self, flights: list[_Flight]) -> None:
        if not flights:
            return
        with self._lock:
            for f in flights:
                self._tracked[id(f)] = f
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name=f"heartbeat-{self.listener.queue}", daemon=True
                )
                self._thread.start()

    def untrack(self, flights: list[_Flight]) -> None:
        with self._lock:
            for f in flights:
                self._tracked.pop(id(f), None)

    def _run(self) -> None:
        period = max(0.05, self.listener.options.visibility_timeout / 4)
        while True:
            time.sleep(period)
            with self._lock:
                if not self._tracked:
                    self._thread = None
                    return
                flights = list(self._tracked.values())
            for flight in flights:
                if self.wanted(flight):
                    self._beat_one(flight)

    @staticmethod
    def wanted(flight: _Flight) -> bool:
        """Whether ``flight`` is still extended: received, neither deleted nor given up."""
        return not flight.deleted and not flight.given_up

    def _beat_one(self, flight: _Flight) -> None:
        try:
            alive = self.listener._beat(flight)
        except Exception:
            log.exception("heartbeat for %s failed; no longer extended", flight.message_id)
            alive = False
        if not alive:
            with self._lock:
                self._tracked.pop(id(flight), None)


def _message_kind(attrs: Mapping[str, str]) -> tuple[Kind, str]:
    """``("command", CommandType)`` or ``("event", EventType)`` from the string attributes.

    Exactly one of the two must be present: a message naming both is a contradiction
    (:class:`DecodeError`), never resolved by preferring one; neither is :class:`MissingAttribute`."""
    command_type, event_type = attrs.get("CommandType"), attrs.get("EventType")
    if command_type is not None and event_type is not None:
        raise DecodeError("both CommandType and EventType attributes present")
    if command_type is not None:
        return "command", command_type
    if event_type is not None:
        return "event", event_type
    raise MissingAttribute("neither CommandType nor EventType attribute present")


def _string_attributes(m: Mapping[str, Any]) -> dict[str, str]:
    out = {}
    for name, v in (m.get("MessageAttributes") or {}).items():
        if isinstance(v, Mapping) and isinstance(v.get("StringValue"), str):
            out[name] = v["StringValue"]
    return out


def _dedup_facts(m: Mapping[str, Any], system: Mapping[str, Any]) -> dict[str, Any]:
    """What the ``receive`` observation records for the FIFO deduplication check
    (``flowgate.harness.checkers.dedup``): ``dedup_id`` (the SQS ``MessageDeduplicationId``), ``sent_at``
    (``SentTimestamp`` in seconds), ``group_id`` (``MessageGroupId``) and, for an event message
    (an ``EventType`` attribute and no ``CommandType``), ``wire_event_id`` (its ``EventId``
    attribute, undecoded). Absent values are left out; nothing here is trusted for processing."""
    facts: dict[str, Any] = {}
    for key, name in (("dedup_id", "MessageDeduplicationId"), ("group_id", "MessageGroupId")):
        value = system.get(name)
        if isinstance(value, str) and value:
            facts[key] = value
    with contextlib.suppress(TypeError, ValueError):
        facts["sent_at"] = int(system["SentTimestamp"]) / 1000.0
    attrs = _string_attributes(m)
    if "EventType" in attrs and "CommandType" not in attrs and attrs.get("EventId"):
        facts["wire_event_id"] = attrs["EventId"]
    return facts


def _sent_at(m: Mapping[str, Any]) -> float | None:
    """The message's ``SentTimestamp`` in seconds (None when absent or malformed)."""
    try:
        return int(m.get("Attributes", {})["SentTimestamp"]) / 1000.0
    except (KeyError, TypeError, ValueError):
        return None
