"""SQS command dispatcher and SNS event dispatcher.

Wire attributes (all ``String``; at most 8 of SQS's 10):

* commands: ``CommandType`` (registry name), ``EntityId``, ``SequenceNo``, ``EventId``,
  ``CorrelationId``, optional ``traceparent``, ``Encryption`` = ``kms-aes256gcm-v1`` when sealed;
* events: ``EventType``, ``EventName`` (both the registry name), ``EntityId``, ``SequenceNo``,
  ``EventId``, ``CorrelationId``, optional ``traceparent``/``Encryption``; SNS ``Subject`` = name.

FIFO destinations get ``MessageGroupId`` = entity id and ``MessageDeduplicationId`` = the
message's eventId (never random, never the ciphertext, so a resend within 5 minutes is dropped).

With ``sourceflow=True`` (default ``BusOptions.sourceflow_emit``) both dispatchers write
SourceFlow.Net v2's shape instead (:mod:`flowgate.reference.sourceflow`, ``docs/sourceflow.md``):
``CommandType`` (the type's alias) / ``EntityId`` / ``SequenceNo``, or ``EventType`` /
``EventName`` and ``Subject``; integer ids in the body; ``MessageGroupId`` on FIFO destinations
and no ``MessageDeduplicationId`` (the destination deduplicates by content; bodies are
deterministic). Plaintext only.

Two send paths: ``dispatch`` (one message, synchronous; through a shared batcher when
``batch_linger`` > 0 and ``batching=True``, so concurrent callers share SendMessageBatch/PublishBatch
calls of up to 10 entries), ``dispatch_many`` (explicit batches, in order) and
``dispatch_each`` (several independent message lists, e.g. the outboxes of a listener's poll,
sent in order in shared batch calls, one outcome per list). Per-entry failures of batch calls
raise :class:`DispatchError` (``dispatch_each`` returns them instead). Bodies over 256 KiB raise
:class:`OversizedMessage` before any call.

Tracing (:mod:`flowgate.reference.telemetry`): every message sent gets its own PRODUCER span
(``AwsSqsCommandDispatcher.Dispatch`` / ``AwsSnsEventDispatcher.Dispatch``), started before its
entry is built -- so the ``traceparent`` attribute names that span -- and ended when the send's
outcome is known (ERROR status on failure). Its parent is the caller's current span, or for
``dispatch_each`` the context given per item (``parents``: the listener's processing spans).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from opentelemetry import trace
from opentelemetry.trace import Span

from flowgate.reference import sourceflow as sourceflow_wire
from flowgate.reference.bootstrap import Resources
from flowgate.reference.config import BusConfiguration, is_fifo
from flowgate.reference.envelope import ENCRYPTION_MARKER, EnvelopeCipher, MessageBinding
from flowgate.reference.errors import ConfigurationError, DispatchError, OversizedMessage
from flowgate.reference.hooks import NullObserver, Observer
from flowgate.reference.linger import FillLinger
from flowgate.reference.messages import Command, Message, encode, payload_to_dict
from flowgate.reference.telemetry import (
    COMMAND_DISPATCH_SPAN,
    CORRELATION_ATTRIBUTE,
    EVENT_DISPATCH_SPAN,
    NOOP,
    ParentContext,
    Telemetry,
)

MAX_BODY_BYTES = 256 * 1024
MAX_BATCH = 10


def _attr(value: str) -> dict[str, str]:
    return {"DataType": "String", "StringValue": value}


def message_attributes(message: Message, *, encrypted: bool, traceparent: str | None) -> dict[str, Any]:
    """The SQS/SNS message attributes of ``message`` (see the module docstring)."""
    meta = message.metadata
    attrs: dict[str, Any] = {}
    if isinstance(message, Command):
        attrs["CommandType"] = _attr(message.name)
        attrs["EntityId"] = _attr(message.entity_id)
    else:
        attrs["EventType"] = _attr(message.name)
        attrs["EventName"] = _attr(message.name)
        attrs["EntityId"] = _attr(message.entity_id)
    attrs["SequenceNo"] = _attr(str(meta.sequence_no))
    attrs["EventId"] = _attr(meta.event_id)
    if meta.correlation_id:
        attrs["CorrelationId"] = _attr(meta.correlation_id)
    if traceparent:
        attrs["traceparent"] = _attr(traceparent)
    if encrypted:
        attrs["Encryption"] = _attr(ENCRYPTION_MARKER)
    return attrs


def build_body(message: Message, destination: str, cipher: EnvelopeCipher | None) -> str:
    """JSON body, sealed for ``destination`` when a cipher is given; checks the 256 KiB limit."""
    body = encode(message)
    if cipher is not None:
        body = cipher.seal(
            body, MessageBinding(message.metadata.event_id, destination, message.entity_id, message.name)
        )
    size = len(body.encode("utf-8"))
    if size > MAX_BODY_BYTES:
        raise OversizedMessage(f"{message.name} {message.metadata.event_id} body is {size} bytes > 256 KiB")
    return body


def _checked(body: str, message: Message) -> str:
    size = len(body.encode("utf-8"))
    if size > MAX_BODY_BYTES:
        raise OversizedMessage(f"{message.name} {message.metadata.event_id} body is {size} bytes > 256 KiB")
    return body


@dataclass
class _Pending:
    entry: dict[str, Any]
    future: Future[None]


class Batcher:
    """Collects single sends from many threads into batch calls (<= 10 entries, ``linger`` seconds).

    ``send_batch(destination, entries)`` returns one error (or None) per entry, in order. How long
    a partial batch waits is :class:`flowgate.reference.linger.FillLinger`'s decision, one per destination:
    with ``adaptive`` (D35) only after a full batch to that destination, else always ``linger``;
    never longer than ``linger``. When several destinations are pending, the shortest wait applies
    to all of them. Calls are made one at a time by the batcher's thread, so entries that arrive
    while a call is in flight go together in the next one.
    """

    def __init__(
        self,
        send_batch: Callable[[str, list[dict[str, Any]]], list[Exception | None]],
        linger: float,
        *,
        adaptive: bool = False,
    ) -> None:
        self._send_batch = send_batch
        self._linger = linger
        self._adaptive = adaptive
        self._lingers: dict[str, FillLinger] = {}
        self._cond = threading.Condition()
        self._pending: dict[str, list[_Pending]] = {}
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="flowgate-batcher", daemon=True)
        self._thread.start()

    def submit(self, destination: str, entry: dict[str, Any]) -> Future[None]:
        fut: Future[None] = Future()
        with self._cond:
            if self._closed:
                raise DispatchError("batcher is closed")
            self._pending.setdefault(destination, []).append(_Pending(entry, fut))
            self._cond.notify()
        return fut

    def _linger_for(self, destination: str) -> FillLinger:
        linger = self._lingers.get(destination)
        if linger is None:
            linger = self._lingers[destination] = FillLinger(self._linger, adaptive=self._adaptive)
        return linger

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if not self._pending and self._closed:
                    return
                deadline = time.monotonic() + min(
                    self._linger_for(d).wait(len(v)) for d, v in self._pending.items()
                )
                while (
                    not self._closed
                    and max(len(v) for v in self._pending.values()) < MAX_BATCH
                    and (remaining := deadline - time.monotonic()) > 0
                ):
                    self._cond.wait(remaining)
                work = {d: v[:MAX_BATCH] for d, v in self._pending.items()}
                for d, v in list(self._pending.items()):
                    rest = v[MAX_BATCH:]
                    if rest:
                        self._pending[d] = rest
                    else:
                        del self._pending[d]
            for destination, items in work.items():
                self._linger_for(destination).sent(len(items))
                entries = [dict(p.entry, Id=str(n)) for n, p in enumerate(items)]
                try:
                    errors = self._send_batch(destination, entries)
                except Exception as exc:
                    errors = [exc] * len(items)
                for p, err in zip(items, errors, strict=True):
                    if err is None:
                        p.future.set_result(None)
                    else:
                        p.future.set_exception(err)


class _Dispatcher:
    """Shared plumbing: entries, single/batch sends, observations, telemetry."""

    kind = "command"
    #: the PRODUCER span of one send (doc 000's names) and the ``messaging.system`` it names
    span_name = COMMAND_DISPATCH_SPAN
    messaging_system = "aws_sqs"

    def __init__(
        self,
        config: BusConfiguration,
        resources: Resources,
        *,
        cipher: EnvelopeCipher | None,
        observer: Observer | None,
        telemetry: Telemetry | None,
        batching: bool,
        linger: float | None = None,
        sourceflow: bool | None = None,
    ) -> None:
        self.config = config
        self.resources = resources
        self.cipher = cipher
        #: emit SourceFlow.Net v2's shape (:mod:`flowgate.reference.sourceflow`); default
        #: ``options.sourceflow_emit``. Plaintext only
        self.sourceflow = config.options.sourceflow_emit if sourceflow is None else sourceflow
        if self.sourceflow and cipher is not None:
            raise ConfigurationError("SourceFlow's shape is plaintext: no cipher with sourceflow=True")
        self.observer = observer or NullObserver()
        self.telemetry = telemetry or NOOP
        linger = config.options.batch_linger if linger is None else linger
        self._batcher = (
            Batcher(self._send_batch, linger, adaptive=config.options.adaptive_linger)
            if batching and linger > 0
            else None
        )

    def close(self) -> None:
        if self._batcher is not None:
            self._batcher.close()

    # subclass API
    def _destination(self, message: Message) -> str | None:
        raise NotImplementedError

    def _entry(self, message: Message, destination: str) -> dict[str, Any]:
        raise NotImplementedError

    def _send_one(self, destination: str, entry: dict[str, Any]) -> None:
        raise NotImplementedError

    def _send_batch(self, destination: str, entries: list[dict[str, Any]]) -> list[Exception | None]:
        raise NotImplementedError

    def _observe(self, message: Message, destination: str, kind: str) -> None:
        raise NotImplementedError

    def _metric(self, ok: bool, destination: str, name: str, ms: float) -> None:
        raise NotImplementedError

    def _start_span(self, message: Message, destination: str, parent: ParentContext | None = None) -> Span:
        """The PRODUCER span of one send of ``message`` (see the module docstring)."""
        meta = message.metadata
        attributes: dict[str, str | int] = {
            "messaging.system": self.messaging_system,
            "messaging.operation.type": "send",
            "messaging.destination.name": destination,
            "messaging.message.id": meta.event_id,
            "sourceflow.message.type": message.name,
            "sourceflow.entity.id": message.entity_id,
            "sourceflow.sequence_no": meta.sequence_no,
        }
        if meta.correlation_id:
            attributes[CORRELATION_ATTRIBUTE] = meta.correlation_id
        return self.telemetry.start_producer_span(self.span_name, attributes, parent)

    def _entry_in(self, span: Span, message: Message, destination: str) -> dict[str, Any]:
        """``_entry`` built with ``span`` current, so its ``traceparent`` names ``span``."""
        with trace.use_span(span, end_on_exit=False):
            return self._entry(message, destination)

    def dispatch(self, message: Message) -> None:
        destination = self._destination(message)
        if destination is None:
            return
        self._observe(message, destination, "invoke")
        start = time.perf_counter()
        span = self._start_span(message, destination)
        try:
            entry = self._entry_in(span, message, destination)
            if self._batcher is not None:
                self._batcher.submit(destination, entry).result()
            else:
                self._send_one(destination, entry)
        except Exception as exc:
            self._observe(message, destination, "fail")
            self._metric(False, destination, message.name, 0.0)
            self.telemetry.end_span(span, exc)
            raise
        self._observe(message, destination, "ok")
        self._metric(True, destination, message.name, (time.perf_counter() - start) * 1000)
        self.telemetry.end_span(span)

    def dispatch_many(self, messages: Sequence[Message]) -> None:
        """Send in order, batching consecutive messages for the same destination (<= 10 per call)."""
        routed = [(m, d) for m in messages if (d := self._destination(m)) is not None]
        i = 0
        failures: list[str] = []
        while i < len(routed):
            dest = routed[i][1]
            chunk = [routed[i]]
            while (
                i + len(chunk) < len(routed) and len(chunk) < MAX_BATCH and routed[i + len(chunk)][1] == dest
            ):
                chunk.append(routed[i + len(chunk)])
            i += len(chunk)
            entries = []
            spans: list[Span] = []
            for n, (m, _) in enumerate(chunk):
                self._observe(m, dest, "invoke")
                span = self._start_span(m, dest)
                spans.append(span)
                try:
                    entry = self._entry_in(span, m, dest)
                except Exception as exc:
                    for s in spans:
                        self.telemetry.end_span(s, exc)
                    raise
                entry["Id"] = str(n)
                entries.append(entry)
            start = time.perf_counter()
            try:
                errors = (
                    self._send_batch(dest, entries) if len(entries) > 1 else [self._try_one(dest, entries[0])]
                )
            except Exception as exc:
                errors = [exc] * len(entries)
            ms = (time.perf_counter() - start) * 1000
            for (m, _), err, span in zip(chunk, errors, spans, strict=True):
                self._observe(m, dest, "ok" if err is None else "fail")
                self._metric(err is None, dest, m.name, ms)
                self.telemetry.end_span(span, err)
                if err is not None:
                    failures.append(f"{m.name} {m.metadata.event_id}: {err}")
        if failures:
            raise DispatchError("; ".join(failures))

    def dispatch_each(
        self, items: Sequence[Sequence[Message]], parents: Sequence[ParentContext | None] | None = None
    ) -> list[Exception | None]:
        """Send several independent lists of messages with as few batch calls as possible.

        ``items`` are, e.g., the outboxes of the messages a listener finished in one poll. All their
        messages go out in the given order (item by item), consecutive messages for the same
        destination sharing SendMessageBatch/PublishBatch calls of <= 10 entries, across item
        boundaries. Returns one outcome per item: None when every message of the item was
        acknowledged, else the first error among them (a failed call fails each of its entries).
        Never raises for a send failure; the caller decides what a failed item means.

        ``parents`` (one per item, or None): the trace context the item's producer spans are
        children of -- the processing span of the message whose outbox the item is.
        """
        routed = [
            (n, m, d) for n, msgs in enumerate(items) for m in msgs if (d := self._destination(m)) is not None
        ]
        outcome: list[Exception | None] = [None] * len(items)
        spans = [self._start_span(m, d, parents[n] if parents is not None else None) for n, m, d in routed]
        if self._batcher is not None:
            return self._each_through_batcher(routed, spans, outcome)
        i = 0
        while i < len(routed):
            dest = routed[i][2]
            j = i
            while j < len(routed) and j - i < MAX_BATCH and routed[j][2] == dest:
                j += 1
            chunk, chunk_spans, i = routed[i:j], spans[i:j], j
            entries: list[dict[str, Any]] = []
            errors: list[Exception | None] = []
            for k, ((_n, m, _d), span) in enumerate(zip(chunk, chunk_spans, strict=True)):
                self._observe(m, dest, "invoke")
                try:
                    entry = self._entry_in(span, m, dest)
                except Exception as exc:  # e.g. OversizedMessage: this entry only
                    entries.append({})
                    errors.append(exc)
                    continue
                entry["Id"] = str(k)
                entries.append(entry)
                errors.append(None)
            todo = [e for e, err in zip(entries, errors, strict=True) if err is None]
            start = time.perf_counter()
            try:
                if len(todo) > 1:
                    sent = self._send_batch(dest, todo)
                else:
                    sent = [self._try_one(dest, e) for e in todo]
            except Exception as exc:
                sent = [exc] * len(todo)
            ms = (time.perf_counter() - start) * 1000
            it = iter(sent)
            for k, ((n, m, _d), span) in enumerate(zip(chunk, chunk_spans, strict=True)):
                err = errors[k] if errors[k] is not None else next(it)
                self._observe(m, dest, "ok" if err is None else "fail")
                self._metric(err is None, dest, m.name, ms)
                self.telemetry.end_span(span, err)
                if err is not None and outcome[n] is None:
                    outcome[n] = err
        return outcome

    def _each_through_batcher(
        self, routed: list[tuple[int, Message, str]], spans: list[Span], outcome: list[Exception | None]
    ) -> list[Exception | None]:
        """``dispatch_each`` through the shared batcher: entries of concurrent callers (e.g. all
        pollers of a worker) share full batch calls. Each destination's entries keep their
        submission order, so a FIFO group's events stay in order."""
        assert self._batcher is not None
        start = time.perf_counter()
        waiting: list[tuple[int, Message, str, Future[None], Span]] = []
        for (n, m, d), span in zip(routed, spans, strict=True):
            self._observe(m, d, "invoke")
            try:
                fut = self._batcher.submit(d, self._entry_in(span, m, d))
            except Exception as exc:
                fut = Future()
                fut.set_exception(exc)
            waiting.append((n, m, d, fut, span))
        for n, m, d, fut, span in waiting:
            err = fut.exception()
            err = err if err is None or isinstance(err, Exception) else DispatchError(str(err))
            self._observe(m, d, "ok" if err is None else "fail")
            self._metric(err is None, d, m.name, (time.perf_counter() - start) * 1000)
            self.telemetry.end_span(span, err)
            if err is not None and outcome[n] is None:
                outcome[n] = err
        return outcome

    def _try_one(self, destination: str, entry: dict[str, Any]) -> Exception | None:
        try:
            entry = {k: v for k, v in entry.items() if k != "Id"}
            self._send_one(destination, entry)
            return None
        except Exception as exc:
            return exc


class SqsCommandDispatcher(_Dispatcher):
    """Sends commands to the queue their type is routed to (``ConfigurationError`` if none)."""

    def __init__(
        self,
        sqs: Any,
        config: BusConfiguration,
        resources: Resources,
        *,
        cipher: EnvelopeCipher | None = None,
        observer: Observer | None = None,
        telemetry: Telemetry | None = None,
        batching: bool = False,
        sourceflow: bool | None = None,
    ) -> None:
        super().__init__(
            config,
            resources,
            cipher=cipher,
            observer=observer,
            telemetry=telemetry,
            batching=batching,
            sourceflow=sourceflow,
        )
        self.sqs = sqs

    def _destination(self, message: Message) -> str | None:
        return self.config.queue_for(message.name)

    def _entry(self, message: Message, destination: str) -> dict[str, Any]:
        if self.sourceflow:
            # AwsSqsCommandDispatcher.cs: its three attributes, MessageGroupId = entity id, no
            # MessageDeduplicationId (the FIFO queue deduplicates by content)
            entry = {
                "MessageBody": _checked(sourceflow_wire.encode(message, self.config.registry), message),
                "MessageAttributes": sourceflow_wire.attributes(message, self.config.registry),
            }
            if is_fifo(destination):
                entry["MessageGroupId"] = self._group_id(message, destination)
            return entry
        entry = {
            "MessageBody": build_body(message, destination, self.cipher),
            "MessageAttributes": message_attributes(
                message, encrypted=self.cipher is not None, traceparent=self.telemetry.current_traceparent()
            ),
        }
        if is_fifo(destination):
            entry["MessageGroupId"] = self._group_id(message, destination)
            entry["MessageDeduplicationId"] = message.metadata.event_id
        return entry

    def _group_id(self, message: Message, destination: str) -> str:
        """The entity id, or the configured payload field (``with_message_group``) when it is set."""
        payload_field = self.config.message_groups.get(destination)
        if payload_field:
            value = payload_to_dict(message.payload).get(payload_field)
            if isinstance(value, str) and value:
                return value
        return message.entity_id

    def _send_one(self, destination: str, entry: dict[str, Any]) -> None:
        try:
            self.sqs.send_message(QueueUrl=self.resources.queue_urls[destination], **entry)
        except (ClientError, BotoCoreError) as exc:
            raise DispatchError(f"SendMessage to {destination} failed: {exc}") from exc

    def _send_batch(self, destination: str, entries: list[dict[str, Any]]) -> list[Exception | None]:
        try:
            resp = self.sqs.send_message_batch(
                QueueUrl=self.resources.queue_urls[destination], Entries=entries
            )
        except (ClientError, BotoCoreError) as exc:
            raise DispatchError(f"SendMessageBatch to {destination} failed: {exc}") from exc
        return _batch_errors(entries, resp, "SendMessageBatch")

    def _observe(self, message: Message, destination: str, kind: str) -> None:
        self.observer.observe(
            "send",
            kind,
            {
                "command_id": message.metadata.event_id,
                "entity_id": message.entity_id,
                "seq": message.metadata.sequence_no,
                "command_type": message.name,
                "destination": destination,
            },
        )

    def _metric(self, ok: bool, destination: str, name: str, ms: float) -> None:
        attrs = {"destination": destination, "type": name}
        if ok:
            self.telemetry.command_dispatched.add(1, attrs)
            self.telemetry.command_dispatch_duration.record(ms, attrs)
        else:
            self.telemetry.command_dispatch_error.add(1, attrs)


class SnsEventDispatcher(_Dispatcher):
    """Publishes events to the topic their type is raised to; unrouted events are skipped.

    With ``batching`` its batcher lingers ``options.publish_linger`` (the worker's shared outbox
    publisher; full PublishBatch calls matter more than a few ms of latency)."""

    span_name = EVENT_DISPATCH_SPAN
    messaging_system = "aws_sns"

    def __init__(
        self,
        sns: Any,
        config: BusConfiguration,
        resources: Resources,
        *,
        cipher: EnvelopeCipher | None = None,
        observer: Observer | None = None,
        telemetry: Telemetry | None = None,
        batching: bool = False,
        sourceflow: bool | None = None,
    ) -> None:
        super().__init__(
            config,
            resources,
            cipher=cipher,
            observer=observer,
            telemetry=telemetry,
            batching=batching,
            linger=config.options.publish_linger,
            sourceflow=sourceflow,
        )
        self.sns = sns

    def _destination(self, message: Message) -> str | None:
        return self.config.topic_for(message.name)

    def _entry(self, message: Message, destination: str) -> dict[str, Any]:
        if self.sourceflow:
            # AwsSnsEventDispatcher.cs: EventType + EventName, Subject = Name; on a FIFO topic
            # (SourceFlow creates standard ones) the group is the entity, dedup by content
            attributes = sourceflow_wire.attributes(message, self.config.registry)
            entry = {
                "Message": _checked(sourceflow_wire.encode(message, self.config.registry), message),
                "Subject": attributes["EventName"]["StringValue"],
                "MessageAttributes": attributes,
            }
            if is_fifo(destination):
                entry["MessageGroupId"] = message.entity_id
            return entry
        entry = {
            "Message": build_body(message, destination, self.cipher),
            "Subject": message.name,
            "MessageAttributes": message_attributes(
                message, encrypted=self.cipher is not None, traceparent=self.telemetry.current_traceparent()
            ),
        }
        if is_fifo(destination):
            entry["MessageGroupId"] = message.entity_id
            entry["MessageDeduplicationId"] = message.metadata.event_id
        return entry

    def _send_one(self, destination: str, entry: dict[str, Any]) -> None:
        try:
            self.sns.publish(TopicArn=self.resources.topic_arns[destination], **entry)
        except (ClientError, BotoCoreError) as exc:
            raise DispatchError(f"Publish to {destination} failed: {exc}") from exc

    def _send_batch(self, destination: str, entries: list[dict[str, Any]]) -> list[Exception | None]:
        try:
            resp = self.sns.publish_batch(
                TopicArn=self.resources.topic_arns[destination], PublishBatchRequestEntries=entries
            )
        except (ClientError, BotoCoreError) as exc:
            raise DispatchError(f"PublishBatch to {destination} failed: {exc}") from exc
        return _batch_errors(entries, resp, "PublishBatch")

    def _observe(self, message: Message, destination: str, kind: str) -> None:
        if kind != "ok":
            return  # "publish" is a single ok observation (hooks.OBSERVATIONS)
        self.observer.observe(
            "publish",
            "ok",
            {
                "event_id": message.metadata.event_id,
                "entity_id": message.entity_id,
                "seq": message.metadata.sequence_no,
                "event_type": message.name,
                "destination": destination,
            },
        )

    def _metric(self, ok: bool, destination: str, name: str, ms: float) -> None:
        attrs = {"destination": destination, "type": name}
        if ok:
            self.telemetry.event_published.add(1, attrs)
            self.telemetry.event_publish_duration.record(ms, attrs)
        else:
            self.telemetry.event_publish_error.add(1, attrs)


def _batch_errors(entries: list[dict[str, Any]], resp: Any, op: str) -> list[Exception | None]:
    failed = {f["Id"]: f for f in resp.get("Failed", [])}
    out: list[Exception | None] = []
    for e in entries:
        f = failed.get(e["Id"])
        out.append(
            None
            if f is None
            else DispatchError(
                f"{op} entry failed: {f.get('Code')} {f.get('Message', '')} (sender fault: {f.get('SenderFault')})"
            )
        )
    return out
