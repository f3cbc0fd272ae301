"""The core bus: CommandBus (sequence numbers, dispatch, replay), EventQueue, and the Processor
that turns one command or event into one atomic :class:`~reference.stores.Effect`.

Sagas and views are *pure deciders*: ``decide(state, command) -> (new_state, [event payloads])``
and ``project(row, event) -> new_row``. They never write; the :class:`Processor` collects their
decisions into one effect that the storage commits atomically, fenced by the idempotency claim.
That is what makes effects exactly-once under at-least-once delivery, and what makes
:meth:`CommandBus.replay` trivially side-effect free.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from reference.errors import BusinessError, IdempotencyConflict, LeaseLost, TransportError
from reference.hooks import Clock, Faults, NoFaults, NullObserver, Observer, SystemClock
from reference.idempotency import (
    DEFAULT_TTL_SECONDS,
    Busy,
    Claimed,
    ClaimResult,
    Conflict,
    Duplicate,
    command_key,
    event_key,
    message_digest,
)
from reference.messages import Command, Event, Payload, event_for
from reference.stores import DeadLetter, Effect, EntityWrite, State, Storage, ViewWrite, with_sequence

log = logging.getLogger(__name__)


class Saga(Protocol):
    """Handles commands for one entity kind; ``decide`` must be pure (no I/O, no clock)."""

    kind: str

    def handles(self, command_type: type[Payload]) -> bool: ...

    def decide(self, state: State | None, command: Command) -> tuple[State, Sequence[Payload]]:
        """New entity state and the event payloads to raise; raise BusinessError to refuse."""
        ...


class View(Protocol):
    """Projects events into rows of one view model; ``project`` must be pure."""

    name: str

    def projects(self, event_type: type[Payload]) -> bool: ...

    def row_id(self, event: Event) -> str: ...

    def project(self, row: State | None, event: Event) -> State: ...


class Aggregate(Protocol):
    """Reacts to events in-process (local dispatch only; may publish further commands)."""

    def subscribes(self, event_type: type[Payload]) -> bool: ...

    def on(self, event: Event) -> None: ...


class CommandDispatcher(Protocol):
    def dispatch(self, command: Command) -> None: ...


class EventDispatcher(Protocol):
    def dispatch(self, event: Event) -> None: ...


class Sequencer(Protocol):
    """Assigns per-entity sequence numbers (1, 2, 3, ...)."""

    def next(self, entity_id: str) -> int: ...


class InMemorySequencer:
    """Thread-safe per-entity counter of ONE process, starting at 1: only for a bus without a
    store, with a single producer per entity that never restarts (docs/decisions.md D25)."""

    def __init__(self) -> None:
        self._last: dict[str, int] = {}
        self._lock = threading.Lock()

    def next(self, entity_id: str) -> int:
        with self._lock:
            self._last[entity_id] = self._last.get(entity_id, 0) + 1
            return self._last[entity_id]


class StoreSequencer:
    """Numbers from :meth:`Storage.allocate_sequence`: one durable counter per entity shared by
    every producer on the store, never the same number twice (restarts, several processes)."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    def next(self, entity_id: str) -> int:
        return self.storage.allocate_sequence(entity_id)


@dataclass(frozen=True)
class Decision:
    """What every saga handling one command decided (not yet written)."""

    entities: tuple[EntityWrite, ...]
    events: tuple[Event, ...]


@dataclass(frozen=True)
class ReplayResult:
    """State rebuilt from the command store, and the events the replay produced (``isReplay``)."""

    entity_id: str
    states: dict[str, State]
    events: tuple[Event, ...]


class Processor:
    """Pure decisions + effect construction, shared by the SQS listener and local dispatch.

    ``ttl_seconds`` is how long a completed idempotency record keeps recognising duplicates; it
    must exceed the longest time a message can be redelivered (retention, DLQ replays).
    """

    def __init__(
        self,
        storage: Storage,
        *,
        sagas: Sequence[Saga] = (),
        views: Sequence[View] = (),
        clock: Clock | None = None,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
    ) -> None:
        self.storage = storage
        self.sagas = tuple(sagas)
        self.views = tuple(views)
        self.clock = clock or SystemClock()
        self.ttl_seconds = ttl_seconds

    def sagas_for(self, command_type: type[Payload]) -> list[Saga]:
        return [s for s in self.sagas if s.handles(command_type)]

    def views_for(self, event_type: type[Payload]) -> list[View]:
        return [v for v in self.views if v.projects(event_type)]

    def decide(self, command: Command, states: dict[str, State] | None = None) -> Decision:
        """Run every saga handling ``command`` on the current (or given) state; no writes."""
        writes: list[EntityWrite] = []
        events: list[Event] = []
        for saga in self.sagas_for(type(command.payload)):
            if states is None:
                current = self.storage.get_entity(saga.kind, command.entity_id)
            else:
                current = states.get(saga.kind)
            new_state, payloads = saga.decide(current, command)
            writes.append(EntityWrite(saga.kind, command.entity_id, new_state, expected=current))
            for payload in payloads:
                events.append(event_for(command, len(events), payload))
        return Decision(tuple(writes), tuple(events))

    def command_effect(self, command: Command, token: int, decision: Decision) -> Effect:
        return Effect(
            key=command_key(command.event_id),
            token=token,
            message_type=command.name,
            expires_at=self.clock.now() + self.ttl_seconds,
            entities=decision.entities,
            command=command,
            outbox=decision.events,
        )

    def dead_letter_effect(self, command: Command, token: int, reason: str, body: str) -> Effect:
        """Ends the claim without any business effect, recording the failure: the key becomes
        ``DEAD_LETTERED`` (content-bound, never a duplicate), so a replay of the dead letter after
        its cause is fixed is claimed again and takes effect once (docs/decisions.md D24)."""
        now = self.clock.now()
        return Effect(
            key=command_key(command.event_id),
            token=token,
            message_type=command.name,
            expires_at=now + self.ttl_seconds,
            dead_letter=DeadLetter(
                command_key(command.event_id),
                command.name,
                command.entity_id,
                command.metadata.sequence_no,
                reason,
                body,
                now,
            ),
        )

    def view_effect(self, view: View, event: Event, token: int) -> Effect:
        row_id = view.row_id(event)
        before = self.storage.get_view(view.name, row_id)
        row = view.project(before, event)
        return Effect(
            key=event_key(event.event_id, view.name),
            token=token,
            message_type=event.name,
            expires_at=self.clock.now() + self.ttl_seconds,
            views=(ViewWrite(view.name, row_id, row, expected=before),),
        )

    def claim(
        self, key: str, message_type: str, lease_seconds: float, digest: str | None = None
    ) -> ClaimResult:
        now = self.clock.now()
        return self.storage.claim(
            key, now=now, lease_until=now + lease_seconds, message_type=message_type, digest=digest
        )


class LocalCommandDispatcher:
    """Routes a command to the sagas in-process and enqueues the resulting events.

    Uses the same claim -> decide -> fenced commit path as the listener, so a command published
    both locally and remotely still has one effect.
    """

    def __init__(
        self,
        processor: Processor,
        events: EventQueue | None = None,
        *,
        observer: Observer | None = None,
        lease_seconds: float = 30.0,
    ) -> None:
        self.processor = processor
        self.events = events
        self.observer = observer or NullObserver()
        self.lease_seconds = lease_seconds

    def dispatch(self, command: Command) -> None:
        if not self.processor.sagas_for(type(command.payload)):
            return
        claim = self.processor.claim(
            command_key(command.event_id), command.name, self.lease_seconds, message_digest(command)
        )
        if isinstance(claim, Busy):
            raise LeaseLost(f"{command.name} {command.event_id} is being processed elsewhere")
        if isinstance(claim, Conflict):
            raise IdempotencyConflict(f"command id {command.event_id} is already known with other content")
        if isinstance(claim, Duplicate):
            self.observer.observe(
                "duplicate",
                "ok",
                {
                    "key": command_key(command.event_id),
                    "command_id": command.event_id,
                    "entity_id": command.entity_id,
                    "seq": command.metadata.sequence_no,
                },
            )
            outbox = claim.outbox
        else:
            try:
                decision = self.processor.decide(command)
            except BusinessError:
                self.processor.storage.release(command_key(command.event_id), claim.token)
                raise
            self.processor.storage.commit(self.processor.command_effect(command, claim.token, decision))
            self.observer.observe(
                "effect",
                "ok",
                {
                    "command_id": command.event_id,
                    "entity_id": command.entity_id,
                    "seq": command.metadata.sequence_no,
                    "command_type": command.name,
                },
            )
            outbox = decision.events
        if self.events is not None:
            for event in outbox:
                self.events.enqueue(event)


class LocalEventDispatcher:
    """Projects an event into every view that ``projects`` it (idempotent per view), then
    notifies aggregates that ``subscribes`` to it."""

    def __init__(
        self,
        processor: Processor,
        aggregates: Sequence[Aggregate] = (),
        *,
        observer: Observer | None = None,
        lease_seconds: float = 30.0,
    ) -> None:
        self.processor = processor
        self.aggregates = tuple(aggregates)
        self.observer = observer or NullObserver()
        self.lease_seconds = lease_seconds

    def dispatch(self, event: Event) -> None:
        for view in self.processor.views_for(type(event.payload)):
            project_into(self.processor, view, event, self.lease_seconds, self.observer)
        for aggregate in self.aggregates:
            if aggregate.subscribes(type(event.payload)):
                aggregate.on(event)


def project_into(
    processor: Processor, view: View, event: Event, lease_seconds: float, observer: Observer
) -> bool:
    """Claim ``event:{id}:{view}``, project, commit. True when done (now or before), False if busy."""
    key = event_key(event.event_id, view.name)
    claim = processor.claim(key, event.name, lease_seconds, message_digest(event, view.name))
    if isinstance(claim, Conflict):
        raise IdempotencyConflict(
            f"event id {event.event_id} is already known to {view.name} with other content"
        )
    if isinstance(claim, Duplicate):
        observer.observe(
            "duplicate",
            "ok",
            {
                "key": key,
                "event_id": event.event_id,
                "view": view.name,
                "entity_id": event.entity_id,
                "seq": event.metadata.sequence_no,
            },
        )
        return True
    if isinstance(claim, Busy):
        return False
    assert isinstance(claim, Claimed)
    try:
        effect = processor.view_effect(view, event, claim.token)
    except Exception:
        processor.storage.release(key, claim.token)
        raise
    processor.storage.commit(effect)
    observer.observe(
        "project",
        "ok",
        {
            "event_id": event.event_id,
            "entity_id": event.entity_id,
            "seq": event.metadata.sequence_no,
            "event_type": event.name,
            "view": view.name,
        },
    )
    return True


class EventQueue:
    """Hands every enqueued event to ALL event dispatchers (local views, SNS, ...)."""

    def __init__(self, dispatchers: Iterable[EventDispatcher] = ()) -> None:
        self.dispatchers = list(dispatchers)

    def enqueue(self, event: Event) -> None:
        for dispatcher in self.dispatchers:
            dispatcher.dispatch(event)


class CommandBus:
    """Assigns sequence numbers and hands commands to ALL command dispatchers.

    The producer model (docs/decisions.md D25, docs/reference.md "Producers"): with a processor
    (a store), :meth:`publish` numbers a command through the store's producer outbox
    (:meth:`Storage.record_publish`: number allocated and command recorded as unsent in one atomic
    step), then sends every unsent command of the entity up to it in sequence order and marks each
    sent. Any number of producers (threads, processes, restarts) may publish to one entity as long
    as they share the store; a producer that died between recording and sending leaves its command
    unsent, and the next publish to that entity, or :meth:`send_unsent` (call it when a producer
    starts), sends it. Without a store, numbers come from ``sequencer`` (default: a process-local
    :class:`InMemorySequencer`, single producer per entity only) and are sent directly.

    ``faults`` is called at :data:`~reference.hooks.PRODUCER_FAULT_POINTS` (the simulator's
    producer restarts). ``replay`` needs the processor (command store + sagas); publishing does not.
    """

    def __init__(
        self,
        dispatchers: Iterable[CommandDispatcher] = (),
        *,
        sequencer: Sequencer | None = None,
        processor: Processor | None = None,
        faults: Faults | None = None,
    ) -> None:
        self.dispatchers = list(dispatchers)
        self.processor = processor
        #: the producer outbox; None when an explicit ``sequencer`` or no store is given
        self.outbox: Storage | None = (
            processor.storage if processor is not None and sequencer is None else None
        )
        self.sequencer: Sequencer = sequencer or (
            StoreSequencer(self.outbox) if self.outbox is not None else InMemorySequencer()
        )
        self.faults = faults or NoFaults()

    def publish(self, command: Command) -> Command:
        """Assign ``sequenceNo`` if unset (0), dispatch everywhere, return the sent command.

        A command that already carries a number is dispatched as it is (a resend). With the store's
        outbox (:meth:`send_unsent`), a transport failure leaves the command (and any unsent
        predecessor) recorded and propagates; publishing the same command (same id, ``sequenceNo``
        0) again sends the recorded one, with its number, instead of numbering it twice. Any other
        dispatch error (e.g. a local dispatcher's business refusal) is the command's outcome: it is
        marked sent and propagates."""
        if command.metadata.sequence_no > 0:
            self._dispatch(command)
            return command
        if self.outbox is None:
            command = with_sequence(command, self.sequencer.next(command.entity_id))
            self._dispatch(command)
            return command
        command = self.outbox.record_publish(command)
        self.faults.hit("after_allocate", _producer_context(command))
        self.send_unsent(command.entity_id, up_to=command.metadata.sequence_no)
        return command

    def send_unsent(self, entity_id: str | None = None, *, up_to: int | None = None) -> int:
        """Dispatch the outbox's unsent commands of ``entity_id`` (all entities: ``None``), in
        sequence order, up to number ``up_to``, marking each sent after its dispatch; returns how
        many were dispatched. A command two producers send at once reaches the queue twice with
        one deduplication id (FIFO deduplication, then the consumer's idempotency, absorb it); the
        queue never holds a number before a lower unsent one of its entity, because each sender
        sends every lower unsent number first.

        A :class:`~reference.errors.TransportError` (the command did not go out) stops here and
        propagates: the command stays recorded, and nothing after it is sent before it. Any other
        exception is the command's own outcome (a local dispatcher's business refusal, a message
        no route or size limit admits): it is marked sent, so it never blocks its entity, and the
        exception is raised after the loop when it is command ``up_to``'s, else logged."""
        if self.outbox is None:
            return 0
        sent = 0
        own_error: Exception | None = None
        for command in self.outbox.unsent_commands(entity_id):
            seq = command.metadata.sequence_no
            if up_to is not None and seq > up_to:
                continue
            try:
                self._dispatch(command)
            except TransportError:
                raise
            except Exception as exc:
                if up_to == seq and entity_id == command.entity_id:
                    own_error = exc
                else:
                    log.warning("unsent %s %s seq %d refused: %s", command.name, command.event_id, seq, exc)
            self.faults.hit("after_send", _producer_context(command))
            self.outbox.mark_sent(command.entity_id, seq)
            sent += 1
        if own_error is not None:
            raise own_error
        return sent

    def _dispatch(self, command: Command) -> None:
        for dispatcher in self.dispatchers:
            dispatcher.dispatch(command)

    def replay(self, entity_id: str) -> ReplayResult:
        """Re-run the entity's stored commands, in order, through the sagas into fresh state.

        Nothing is written and nothing is dispatched; the returned events carry ``isReplay``
        and the same ids as the live ones (ids derive from the command), so views rebuilt from
        them in a scratch store (:func:`rebuild_views`) must equal the live views.
        """
        if self.processor is None:
            raise ValueError("replay needs a processor (command store + sagas)")
        states: dict[str, State] = {}
        events: list[Event] = []
        for stored in self.processor.storage.load_commands(entity_id):
            command = replace(stored, metadata=replace(stored.metadata, is_replay=True))
            decision = self.processor.decide(command, states)
            for w in decision.entities:
                states[w.kind] = w.state
            events.extend(decision.events)
        return ReplayResult(entity_id, states, tuple(events))


def _producer_context(command: Command) -> dict[str, object]:
    return {
        "command_id": command.event_id,
        "entity_id": command.entity_id,
        "seq": command.metadata.sequence_no,
        "command_type": command.name,
    }


def rebuild_views(views: Sequence[View], events: Iterable[Event]) -> dict[str, dict[str, State]]:
    """Project ``events`` (deduplicated by event id) into empty views; returns view -> row -> state."""
    out: dict[str, dict[str, State]] = {v.name: {} for v in views}
    seen: set[tuple[str, str]] = set()
    for event in events:
        for view in views:
            if not view.projects(type(event.payload)) or (view.name, event.event_id) in seen:
                continue
            seen.add((view.name, event.event_id))
            rid = view.row_id(event)
            out[view.name][rid] = view.project(out[view.name].get(rid), event)
    return out
