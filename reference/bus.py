"""The core bus: CommandBus (sequence numbers, dispatch, replay), EventQueue, and the Processor
that turns one command or event into one atomic :class:`~flowgate.reference.stores.Effect`.

Sagas, aggregates and views are *pure deciders*: ``decide(state, command) -> (new_state, [event
payloads and FollowUp commands])``, ``react(root, event) -> (new_root, [FollowUp commands])`` and
``project(row, event) -> new_row``. They never write nor send; the :class:`Processor` collects their
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

from flowgate.reference.errors import BusinessError, IdempotencyConflict, LeaseLost, TransportError
from flowgate.reference.hooks import Clock, Faults, NoFaults, NullObserver, Observer, SystemClock
from flowgate.reference.idempotency import (
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
from flowgate.reference.messages import Command, Event, FollowUp, Payload, event_for, follow_up_command
from flowgate.reference.stores import (
    DeadLetter,
    Effect,
    EntityWrite,
    State,
    Storage,
    ViewWrite,
    with_sequence,
)

log = logging.getLogger(__name__)


class Saga(Protocol):
    """Handles commands for one entity kind; ``decide`` must be pure (no I/O, no clock)."""

    kind: str

    def handles(self, command_type: type[Payload]) -> bool: ...

    def decide(self, state: State | None, command: Command) -> tuple[State, Sequence[Payload | FollowUp]]:
        """New entity state and what it decided, in order: event payloads to raise and
        :class:`~flowgate.reference.messages.FollowUp` commands to issue (seed 003's ``PublishCommand``
        inside a saga's ``Handle``, committed with the effect: docs/decisions.md D33); raise
        BusinessError to refuse."""
        ...


class View(Protocol):
    """Projects events into rows of one view model; ``project`` must be pure."""

    name: str

    def projects(self, event_type: type[Payload]) -> bool: ...

    def row_id(self, event: Event) -> str: ...

    def project(self, row: State | None, event: Event) -> State: ...


class Aggregate(Protocol):
    """An entity root that subscribes to events and issues commands (seed 003's ``Aggregate``
    with ``ISubscribes<TEvent>``; docs/decisions.md D33).

    ``react`` is a pure decider like a saga's ``decide``: from the root's stored state (``None``:
    none yet) and one event it returns the root's new state and the commands to issue. The
    processor commits both atomically with the idempotency completion of
    ``event:{eventId}:aggregate:{kind}`` (:meth:`Processor.aggregate_effect`), so each event
    reaches each aggregate's root exactly once and its commands exist exactly once (ids derived
    from the event, numbered by the store, sent from the producer outbox). Unlike the seed, an
    aggregate never sends by itself (no ``Send`` on a bus it holds): what it issues is part of its
    decision, so a crash can neither lose it nor send it twice with two identities."""

    kind: str

    def subscribes(self, event_type: type[Payload]) -> bool: ...

    def root_id(self, event: Event) -> str:
        """The id of the root instance ``event`` concerns (its row in the entity store)."""
        ...

    def react(self, state: State | None, event: Event) -> tuple[State, Sequence[FollowUp]]: ...


def aggregate_name(aggregate: Aggregate) -> str:
    """The name an aggregate's idempotency keys and ``project`` observations use
    (``aggregate:{kind}``), never a view's name."""
    return f"aggregate:{aggregate.kind}"


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
    #: follow-up commands (``sequenceNo`` 0; the commit numbers them, D33)
    commands: tuple[Command, ...] = ()


@dataclass(frozen=True)
class ReplayResult:
    """State rebuilt from the command store, and the events the replay produced (``isReplay``)."""

    entity_id: str
    states: dict[str, State]
    events: tuple[Event, ...]
    #: the follow-up commands the replayed decisions issue (same ids as the live ones, unnumbered;
    #: never sent)
    commands: tuple[Command, ...] = ()


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
        aggregates: Sequence[Aggregate] = (),
    ) -> None:
        self.storage = storage
        self.sagas = tuple(sagas)
        self.views = tuple(views)
        self.aggregates = tuple(aggregates)
        self.clock = clock or SystemClock()
        self.ttl_seconds = ttl_seconds

    def sagas_for(self, command_type: type[Payload]) -> list[Saga]:
        return [s for s in self.sagas if s.handles(command_type)]

    def views_for(self, event_type: type[Payload]) -> list[View]:
        return [v for v in self.views if v.projects(event_type)]

    def aggregates_for(self, event_type: type[Payload]) -> list[Aggregate]:
        return [a for a in self.aggregates if a.subscribes(event_type)]

    def decide(self, command: Command, states: dict[str, State] | None = None) -> Decision:
        """Run every saga handling ``command`` on the current (or given) state; no writes."""
        writes: list[EntityWrite] = []
        events: list[Event] = []
        commands: list[Command] = []
        for saga in self.sagas_for(type(command.payload)):
            if states is None:
                current = self.storage.get_entity(saga.kind, command.entity_id)
            else:
                current = states.get(saga.kind)
            new_state, decided = saga.decide(current, command)
            writes.append(EntityWrite(saga.kind, command.entity_id, new_state, expected=current))
            for item in decided:
                if isinstance(item, FollowUp):
                    commands.append(follow_up_command(command, len(commands), item))
                else:
                    events.append(event_for(command, len(events), item))
        return Decision(tuple(writes), tuple(events), tuple(commands))

    def command_effect(self, command: Command, token: int, decision: Decision) -> Effect:
        return Effect(
            key=command_key(command.event_id),
            token=token,
            message_type=command.name,
            expires_at=self.clock.now() + self.ttl_seconds,
            entities=decision.entities,
            command=command,
            outbox=decision.events,
            commands=decision.commands,
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

    def aggregate_effect(self, aggregate: Aggregate, event: Event, token: int) -> Effect:
        """The aggregate's reaction to ``event`` as one effect: its root's new state (checked
        against the state it was decided from) and its follow-up commands (ids derived from the
        event, numbered by the commit), completing ``event:{eventId}:aggregate:{kind}``."""
        root = aggregate.root_id(event)
        before = self.storage.get_entity(aggregate.kind, root)
        state, follow_ups = aggregate.react(before, event)
        commands = tuple(follow_up_command(event, n, f) for n, f in enumerate(follow_ups))
        return Effect(
            key=event_key(event.event_id, aggregate_name(aggregate)),
            token=token,
            message_type=event.name,
            expires_at=self.clock.now() + self.ttl_seconds,
            entities=(EntityWrite(aggregate.kind, root, state, expected=before),),
            commands=commands,
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
    both locally and remotely still has one effect. The decision's follow-up commands are
    committed with it (numbered, in the producer outbox) and then sent by ``commands`` (a
    :class:`CommandBus` on the same store: :meth:`CommandBus.send_unsent`); a recognised
    duplicate sends those of its first commit still unsent. Without ``commands`` they stay in
    the producer outbox for the next ``send_unsent``.
    """

    def __init__(
        self,
        processor: Processor,
        events: EventQueue | None = None,
        *,
        observer: Observer | None = None,
        lease_seconds: float = 30.0,
        commands: CommandBus | None = None,
    ) -> None:
        self.processor = processor
        self.events = events
        self.observer = observer or NullObserver()
        self.lease_seconds = lease_seconds
        self.commands = commands

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
            outbox, issued = claim.outbox, claim.commands
            observe_issued(self.observer, command.event_id, issued)
        else:
            try:
                decision = self.processor.decide(command)
            except BusinessError:
                self.processor.storage.release(command_key(command.event_id), claim.token)
                raise
            issued = (
                self.processor.storage.commit(self.processor.command_effect(command, claim.token, decision))
                or ()
            )
            observe_issued(self.observer, command.event_id, issued)
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
        send_issued(self.commands, issued)
        if self.events is not None:
            for event in outbox:
                self.events.enqueue(event)


def observe_issued(observer: Observer, cause: str, issued: Sequence[Command]) -> None:
    """One ``issue`` ok per follow-up command committed with ``cause``'s effect (D33)."""
    for command in issued:
        observer.observe(
            "issue",
            "ok",
            {
                "command_id": command.event_id,
                "entity_id": command.entity_id,
                "seq": command.metadata.sequence_no,
                "command_type": command.name,
                "cause": cause,
            },
        )


def send_issued(bus: CommandBus | None, issued: Sequence[Command]) -> None:
    """Send the producer outbox's unsent commands of each entity ``issued`` targets, up to the
    highest number issued for it (:meth:`CommandBus.send_unsent`: lower unsent numbers first, so
    the queue never holds an issued number before a lower one). Already sent ones are skipped:
    the outbox, not the caller, knows what is still to send."""
    if bus is None:
        return
    top: dict[str, int] = {}
    for command in issued:
        top[command.entity_id] = max(top.get(command.entity_id, 0), command.metadata.sequence_no)
    for entity_id, seq in top.items():
        bus.send_unsent(entity_id, up_to=seq)


class LocalEventDispatcher:
    """Projects an event into every view that ``projects`` it (idempotent per view), then has
    every aggregate that ``subscribes`` to it react (idempotent per aggregate: :func:`react_into`)
    and sends what they issued through ``commands`` (see :class:`LocalCommandDispatcher`).

    ``aggregates`` (default: the processor's) are the aggregates this dispatcher runs."""

    def __init__(
        self,
        processor: Processor,
        aggregates: Sequence[Aggregate] | None = None,
        *,
        observer: Observer | None = None,
        lease_seconds: float = 30.0,
        commands: CommandBus | None = None,
    ) -> None:
        self.processor = processor
        self.aggregates = processor.aggregates if aggregates is None else tuple(aggregates)
        self.observer = observer or NullObserver()
        self.lease_seconds = lease_seconds
        self.commands = commands

    def dispatch(self, event: Event) -> None:
        for view in self.processor.views_for(type(event.payload)):
            project_into(self.processor, view, event, self.lease_seconds, self.observer)
        for aggregate in self.aggregates:
            if aggregate.subscribes(type(event.payload)):
                issued = react_into(self.processor, aggregate, event, self.lease_seconds, self.observer)
                if issued is None:
                    raise LeaseLost(f"{event.name} {event.event_id} is being processed elsewhere")
                send_issued(self.commands, issued)


def react_into(
    processor: Processor, aggregate: Aggregate, event: Event, lease_seconds: float, observer: Observer
) -> tuple[Command, ...] | None:
    """Claim ``event:{id}:aggregate:{kind}``, react, commit; the follow-up commands of the commit
    (numbered), or of the first commit when it is a duplicate; None if busy. Observed as
    ``project`` with ``view`` = ``aggregate:{kind}`` (one reaction per event and aggregate), and
    one ``issue`` per command."""
    name = aggregate_name(aggregate)
    key = event_key(event.event_id, name)
    claim = processor.claim(key, event.name, lease_seconds, message_digest(event, name))
    if isinstance(claim, Conflict):
        raise IdempotencyConflict(f"event id {event.event_id} is already known to {name} with other content")
    if isinstance(claim, Busy):
        return None
    if isinstance(claim, Duplicate):
        observer.observe(
            "duplicate",
            "ok",
            {
                "key": key,
                "event_id": event.event_id,
                "view": name,
                "entity_id": event.entity_id,
                "seq": event.metadata.sequence_no,
            },
        )
        observe_issued(observer, event.event_id, claim.commands)
        return claim.commands
    try:
        effect = processor.aggregate_effect(aggregate, event, claim.token)
    except Exception:
        processor.storage.release(key, claim.token)
        raise
    issued = processor.storage.commit(effect) or ()
    observe_issued(observer, event.event_id, issued)
    observer.observe(
        "project",
        "ok",
        {
            "event_id": event.event_id,
            "entity_id": event.entity_id,
            "seq": event.metadata.sequence_no,
            "event_type": event.name,
            "view": name,
        },
    )
    return issued


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

    ``faults`` is called at :data:`~flowgate.reference.hooks.PRODUCER_FAULT_POINTS` (the simulator's
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
        #: per thread: the (entity, seq) this thread's :meth:`send_unsent` is dispatching
        self._sending = threading.local()

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

        A :class:`~flowgate.reference.errors.TransportError` (the command did not go out) stops here and
        propagates: the command stays recorded, and nothing after it is sent before it. Any other
        exception is the command's own outcome (a local dispatcher's business refusal, a message
        no route or size limit admits): it is marked sent, so it never blocks its entity, and the
        exception is raised after the loop when it is command ``up_to``'s, else logged.

        Re-entrant: a dispatch may send again in the same thread (a local dispatcher whose saga
        issues a follow-up command, D33); such a nested call skips the commands this thread is
        dispatching right now (they are handed over already) instead of sending them again."""
        if self.outbox is None:
            return 0
        sent = 0
        own_error: Exception | None = None
        busy: set[tuple[str, int]] = self._sending.__dict__.setdefault("busy", set())
        for command in self.outbox.unsent_commands(entity_id):
            seq = command.metadata.sequence_no
            if (up_to is not None and seq > up_to) or (command.entity_id, seq) in busy:
                continue
            busy.add((command.entity_id, seq))
            try:
                self._dispatch(command)
            except TransportError:
                raise
            except Exception as exc:
                if up_to == seq and entity_id == command.entity_id:
                    own_error = exc
                else:
                    log.warning("unsent %s %s seq %d refused: %s", command.name, command.event_id, seq, exc)
            finally:
                busy.discard((command.entity_id, seq))
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
        commands: list[Command] = []
        for stored in self.processor.storage.load_commands(entity_id):
            command = replace(stored, metadata=replace(stored.metadata, is_replay=True))
            decision = self.processor.decide(command, states)
            for w in decision.entities:
                states[w.kind] = w.state
            events.extend(decision.events)
            commands.extend(decision.commands)
        return ReplayResult(entity_id, states, tuple(events), tuple(commands))


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
