"""What the simulation observes: the producers' and workers' history observers, the worker
reports the driver and the nemesis read (:class:`Deliveries`), the wire samples and the reads.

The observers only record and *report*: a worker observer tells a :class:`WorkerReports`
(two calls: a message was received, a command is done) and never touches the scheduler's state.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

from flowgate.harness.checkers.reads import read_op_value
from flowgate.harness.history import HARNESS, History, HistoryObserver
from flowgate.reference.domain.orders import OrderState
from flowgate.reference.messages import Event, Payload, payload_to_dict
from flowgate.reference.stores import State


class WorkerReports(Protocol):
    """The narrow interface a worker observer reports through."""

    def received(self, process: str, message_id: str, receive_count: int) -> None: ...

    def command_done(self, command_id: str) -> None: ...


class Deliveries:
    """What the workers' observations say about deliveries (a :class:`WorkerReports`): each
    message's last receive count, the batch each worker process is handling, the commands whose
    effect is committed. The driver reads it (standard queues send a command only after the
    previous one is done; poison kinds pick applied/pending ids) and so does the nemesis (the
    redrive budget, :meth:`flowgate.harness.simulation.nemesis.Nemesis.may_harm`)."""

    def __init__(self) -> None:
        self.last_count: dict[str, int] = {}
        self.batches: dict[str, list[str]] = {}
        self.done_commands: set[str] = set()

    def received(self, process: str, message_id: str, receive_count: int) -> None:
        self.last_count[message_id] = receive_count
        self.batches.setdefault(process, []).append(message_id)

    def command_done(self, command_id: str) -> None:
        self.done_commands.add(command_id)

    def new_batch(self, process: str) -> None:
        """``process`` starts a poll: its batch so far is empty."""
        self.batches[process] = []

    def batch(self, process: str) -> Sequence[str]:
        return self.batches.get(process, ())

    def receive_count(self, message_id: str) -> int:
        return self.last_count.get(message_id, 0)


class ProducerObserver(HistoryObserver):
    """Adds ``expect_business_failure`` to the sends of commands the workload means to fail."""

    def __init__(self, history: History, process: str, expected_failures: set[str]) -> None:
        super().__init__(history, process)
        self.expected = expected_failures

    def observe(self, f: str, kind: str, value: Mapping[str, Any]) -> None:
        if f == "send" and value.get("command_id") in self.expected:
            value = {**value, "expect_business_failure": True}
        super().observe(f, kind, value)


class WorkerObserver(HistoryObserver):
    """Records a worker's ops and reports its receives and done commands to ``reports``."""

    def __init__(self, history: History, process: str, reports: WorkerReports) -> None:
        super().__init__(history, process)
        self.reports = reports

    def observe(self, f: str, kind: str, value: Mapping[str, Any]) -> None:
        super().observe(f, kind, value)
        if f == "receive":
            self.reports.received(
                self.process, str(value.get("message_id")), int(value.get("receive_count", 1))
            )
        if kind == "ok" and (
            f in ("effect", "business_dead_letter") or (f == "duplicate" and "command_id" in value)
        ):
            # a command's duplicate: its first commit is in the store (its ok may be missing, D20)
            self.reports.command_done(str(value.get("command_id")))


class WireSampler:
    """Records the first ``samples`` bodies the bus sends or publishes as harness ``wire`` ops
    (the ``encryption`` checker reads them); off while the harness sends poison."""

    def __init__(self, history: History, samples: int) -> None:
        self.history = history
        self.left = samples
        self._paused = False

    @contextmanager
    def paused(self) -> Iterator[None]:
        """No samples meanwhile (the harness's own hostile sends are not the bus's wire)."""
        self._paused = True
        try:
            yield
        finally:
            self._paused = False

    def after_call(
        self,
        service: str,
        operation: str,
        params: Mapping[str, Any],
        response: Mapping[str, Any] | None,
        error: Any,
    ) -> None:
        if error is not None or self._paused or self.left <= 0:
            return
        if operation == "SendMessage":
            entries: Sequence[Mapping[str, Any]] = [params]
            body_key = "MessageBody"
        elif operation == "SendMessageBatch":
            entries, body_key = params.get("Entries", []), "MessageBody"
        elif operation == "Publish":
            entries, body_key = [params], "Message"
        elif operation == "PublishBatch":
            entries, body_key = params.get("PublishBatchRequestEntries", []), "Message"
        else:
            return
        for entry in entries:
            if self.left <= 0:
                return
            attrs = {k: v.get("StringValue") for k, v in (entry.get("MessageAttributes") or {}).items()}
            if "DeadLetterReason" in attrs:
                continue  # a DLQ forward is a verbatim copy of a received (possibly hostile) message
            markers = [
                m for m in (attrs.get("EntityId"), attrs.get("CommandType") or attrs.get("EventType")) if m
            ]
            body = str(entry.get(body_key, ""))
            self.left -= 1
            self.history.append(
                HARNESS,
                "info",
                "wire",
                {
                    "service": service,
                    "operation": operation,
                    "body": body[:2000],
                    "encrypted": "Encryption" in attrs,
                    "plaintext_markers": markers,
                },
            )


class ReadProbe:
    """Where the simulation observes the answers to reads (``SimConfig.reads``; the counterpart of
    the gate's probe queue): a view of every worker's views listener that projects ``OrderState``
    only. The first time it sees an answer's event id (an event re-projected after a crash, a
    re-published one, a second worker's copy: the same id, one op) it records a ``read`` op with
    the value the gate's probe records (:func:`flowgate.harness.checkers.reads.read_op_value`), so
    ``read_state`` judges both alike. Its row (entity id -> the sequence number of the last answer
    it projected) is never read; it is left out of the snapshot's view rebuild."""

    name = "reads"

    def __init__(self, history: History) -> None:
        self.history = history
        self.seen: set[str] = set()

    def projects(self, event_type: type[Payload]) -> bool:
        return event_type is OrderState

    def row_id(self, event: Event) -> str:
        return event.entity_id

    def project(self, row: State | None, event: Event) -> State:
        if event.event_id not in self.seen:
            self.seen.add(event.event_id)
            body = {
                k: list(v) if isinstance(v, tuple) else v for k, v in payload_to_dict(event.payload).items()
            }
            value = read_op_value(
                event.name,
                event.entity_id,
                event.metadata.sequence_no,
                str(event.metadata.causation_id),
                body,
            )
            if value is not None:
                self.history.append(HARNESS, "ok", "read", value)
        return {"lastSeq": event.metadata.sequence_no}


__all__ = ["Deliveries", "ProducerObserver", "ReadProbe", "WireSampler", "WorkerObserver", "WorkerReports"]
