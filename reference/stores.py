"""Persistence ports and their in-memory adapter.

One port, :class:`Storage`, groups the command store (append-only, ordered, unique
``(entity, seq)``), the entity store, the view-model store, the idempotency store and the
business dead-letter store, because exactly-once effects need them written in **one atomic
commit** (:meth:`Storage.commit`), fenced by the idempotency claim's token: the saga decides
without side effects, then the effect, the command-store append, the view rows, the outbox and
the idempotency completion are written together or not at all (eventsourcing's tracking record
in the same transaction; powertools' conditional put plus a fencing token).

The port also holds the producers' side (docs/decisions.md D25), outside that commit: one
durable sequence counter per entity (:meth:`Storage.allocate_sequence`), shared by every producer
on the store, and the producer outbox (:meth:`Storage.record_publish`, ``unsent_commands``,
``mark_sent``) that :class:`~flowgate.reference.bus.CommandBus` sends from.
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, Self

from flowgate.reference.errors import DecodeError, LeaseLost, SequenceConflict, WriteConflict
from flowgate.reference.idempotency import (
    COMPLETED,
    DEAD_LETTERED,
    IN_PROGRESS,
    Busy,
    Claimed,
    ClaimResult,
    Conflict,
    Duplicate,
)
from flowgate.reference.messages import Command, Event, TypeRegistry, decode, encode

State = dict[str, Any]


#: ``expected`` value meaning "write without checking what is stored" (local dispatch, tests).
UNCHECKED: Any = object()


@dataclass(frozen=True)
class EntityWrite:
    """New state of one entity (``kind`` = the saga's entity kind, e.g. ``order``).

    ``expected`` is the state the decision was computed from (``None``: the entity did not
    exist). The commit fails with :class:`~flowgate.reference.errors.WriteConflict` if the stored state
    is no longer that one -- optimistic concurrency, so two workers deciding from the same state
    (standard queues, shared rows) can never both write and lose an update.
    """

    kind: str
    entity_id: str
    state: State
    expected: State | None = UNCHECKED


@dataclass(frozen=True)
class ViewWrite:
    """New state of one view-model row; ``expected`` as for :class:`EntityWrite`.

    View rows are often shared by many entities (per-SKU inventory), so events of different
    FIFO groups update one row concurrently: without the check one projection overwrites the
    other's.
    """

    view: str
    row_id: str
    state: State
    expected: State | None = UNCHECKED


@dataclass(frozen=True)
class DeadLetter:
    """A business failure that exhausted its retries (the V3 "business DLQ", doc 002)."""

    key: str
    message_type: str
    entity_id: str
    sequence_no: int
    reason: str
    body: str
    recorded_at: float


@dataclass(frozen=True)
class Effect:
    """Everything one processed message changes, committed atomically and fenced by ``token``."""

    key: str
    token: int
    message_type: str
    expires_at: float
    entities: tuple[EntityWrite, ...] = ()
    command: Command | None = None
    views: tuple[ViewWrite, ...] = ()
    outbox: tuple[Event, ...] = ()
    dead_letter: DeadLetter | None = None
    #: follow-up commands the decision issues (``sequenceNo`` 0, ids derived from the message):
    #: the commit numbers each from its entity's counter and records it in the producer outbox
    #: (docs/decisions.md D33)
    commands: tuple[Command, ...] = ()


class Storage(Protocol):
    """The persistence port. Every method is thread-safe and each call is atomic."""

    def load_commands(self, entity_id: str) -> list[Command]:
        """The entity's commands in sequence order."""
        ...

    def last_sequence(self, entity_id: str) -> int:
        """The highest sequence number in the entity's command store (0: none): what was
        *applied*, not what was allocated (:meth:`allocate_sequence`)."""
        ...

    def allocate_sequence(self, entity_id: str) -> int:
        """The entity's next sequence number, taken atomically and durably (docs/decisions.md D25).

        Every producer sharing this store draws from one counter per entity: a number is never
        returned twice, whatever the concurrency (threads, processes) and across restarts. The
        counter never falls behind the command store (an entity numbered by its callers goes on
        after its highest applied number). Numbers may be skipped only by a caller that allocates
        and then never sends (use :meth:`record_publish` to close that window)."""
        ...

    def record_publish(self, command: Command) -> Command:
        """Allocate ``command``'s sequence number and record the numbered command as *unsent*, in
        one atomic step; returns the numbered command. If an unsent record with the same command
        id exists for the entity (a retry of a publish that failed after it was recorded), that
        record is returned and nothing is allocated."""
        ...

    def unsent_commands(self, entity_id: str | None = None) -> list[Command]:
        """Recorded, not yet :meth:`mark_sent` commands of one entity (or of all), ordered by
        entity then sequence number."""
        ...

    def mark_sent(self, entity_id: str, sequence_no: int) -> None:
        """Drop the unsent record ``(entity_id, sequence_no)`` (no-op if there is none)."""
        ...

    def get_entity(self, kind: str, entity_id: str) -> State | None: ...

    def get_view(self, view: str, row_id: str) -> State | None: ...

    def list_view(self, view: str) -> dict[str, State]: ...

    def dead_letters(self) -> list[DeadLetter]: ...

    def claim(
        self, key: str, *, now: float, lease_until: float, message_type: str, digest: str | None = None
    ) -> ClaimResult:
        """One atomic conditional write (see :mod:`flowgate.reference.idempotency`).

        ``digest`` (:func:`~flowgate.reference.idempotency.message_digest`) is stored with the claim; a
        known key (IN_PROGRESS, even with an expired lease, or COMPLETED and unexpired) whose
        stored digest differs gives :class:`~flowgate.reference.idempotency.Conflict` and changes nothing.
        ``None`` on either side matches anything."""
        ...

    def extend(self, key: str, token: int, lease_until: float) -> bool:
        """Move the lease of an IN_PROGRESS claim we still own; False if it was taken over."""
        ...

    def release(self, key: str, token: int) -> None:
        """Drop our IN_PROGRESS claim (the handler failed) so a redelivery can run at once."""
        ...

    def cleanup(self, now: float, *, abandoned_after: float, limit: int | None = None) -> int:
        """Delete up to ``limit`` (None: all) idempotency records that can no longer matter, as
        :func:`cleanable` decides: a COMPLETED or DEAD_LETTERED record whose ``expires_at`` passed
        (its TTL ran out), an IN_PROGRESS record whose lease ended ``abandoned_after`` seconds
        (the TTL) or more ago (a claim its worker abandoned). Never a leased claim, never a record
        younger than the TTL. One short atomic step per call (callers loop while it returns
        ``limit``: :class:`flowgate.reference.cleanup.IdempotencyCleaner`); returns how many it deleted."""
        ...

    def commit(self, effect: Effect) -> tuple[Command, ...]:
        """Write ``effect`` atomically; :class:`LeaseLost` (nothing written) if the token is stale,
        :class:`SequenceConflict` if the command store holds another command at that seq.

        The effect's follow-up commands (``effect.commands``, D33) are numbered in the same atomic
        step, in order, each from its entity's counter (:meth:`allocate_sequence`'s, after the
        effect's own command is in the command store), recorded as unsent in the producer outbox
        (:meth:`unsent_commands`) and kept in the idempotency record (a :class:`Duplicate` returns
        them); the numbered commands are returned. A stale commit numbers nothing.

        The claim ends ``COMPLETED`` (a duplicate from now on), or ``DEAD_LETTERED`` when the effect
        records a dead letter: that is no effect, and the next claim of the key decides again
        (docs/decisions.md D24)."""
        ...

    def ping(self) -> None:
        """A cheap round trip that reads and writes nothing (the listener's circuit-breaker probe);
        raises :class:`~flowgate.reference.errors.StoreUnavailable` while the store cannot serve."""
        ...


@dataclass
class _Record:
    status: str
    token: int
    lease_until: float
    expires_at: float
    message_type: str
    outbox: str = "[]"
    digest: str | None = None


@dataclass
class _Memory:
    commands: dict[str, dict[int, str]] = field(default_factory=dict)
    entities: dict[tuple[str, str], str] = field(default_factory=dict)
    views: dict[str, dict[str, str]] = field(default_factory=dict)
    records: dict[str, _Record] = field(default_factory=dict)
    dead: list[DeadLetter] = field(default_factory=list)
    #: last allocated sequence number per entity (allocate_sequence)
    sequences: dict[str, int] = field(default_factory=dict)
    #: recorded, unsent publishes: entity -> seq -> (command id, encoded command)
    unsent: dict[str, dict[int, tuple[str, str]]] = field(default_factory=dict)
    #: the fencing-token sequence (the last token handed out): part of the data, like a
    #: database sequence, so every client of the data hands out distinct tokens
    tokens: int = 0


def outbox_to_json(events: tuple[Event, ...], commands: tuple[Command, ...] = ()) -> str:
    """An idempotency record's outbox: its events, then its numbered follow-up commands."""
    messages: list[Command | Event] = [*events, *commands]
    return json.dumps([encode(m) for m in messages])


def decode_outbox(text: str, registry: TypeRegistry) -> tuple[tuple[Event, ...], tuple[Command, ...]]:
    """The events and the follow-up commands of an idempotency record's outbox."""
    events: list[Event] = []
    commands: list[Command] = []
    for body in json.loads(text or "[]"):
        message = decode(body, registry)
        if isinstance(message, Event):
            events.append(message)
        else:
            commands.append(message)
    return tuple(events), tuple(commands)


def outbox_from_json(text: str, registry: TypeRegistry) -> tuple[Event, ...]:
    """The events of an idempotency record's outbox."""
    return decode_outbox(text, registry)[0]


def duplicate_of(text: str, registry: TypeRegistry) -> Duplicate:
    """The :class:`Duplicate` answer for a COMPLETED record whose outbox is ``text``."""
    events, commands = decode_outbox(text, registry)
    return Duplicate(events, commands)


class InMemoryStorage:
    """In-process :class:`Storage`; one lock makes every call (and every commit) atomic.

    States are stored as JSON text so callers can never mutate stored state by aliasing.
    """

    def __init__(self, registry: TypeRegistry) -> None:
        self._registry = registry
        self._lock = threading.Lock()
        self._m = _Memory()

    def __repr__(self) -> str:
        return f"InMemoryStorage(records={len(self._m.records)})"

    @property
    def _tokens(self) -> int:
        return self._m.tokens

    @_tokens.setter
    def _tokens(self, value: int) -> None:
        self._m.tokens = value

    def connect(self) -> Self:
        """Another client of the same data, as a second process's connection to one database:
        the records, rows, token sequence and lock are shared; whatever else the adapter object
        holds is this client's own. The deterministic simulator gives each worker *process* one
        (``flowgate.harness.sim.processes``); a store shared by one object models threads of one process."""
        return copy.copy(self)

    def ping(self) -> None:
        """Always answers (a simulated outage overrides it, see ``flowgate.harness.outages``)."""
        return None

    def load_commands(self, entity_id: str) -> list[Command]:
        with self._lock:
            rows = sorted(self._m.commands.get(entity_id, {}).items())
        out = []
        for _, body in rows:
            message = decode(body, self._registry)
            assert isinstance(message, Command)
            out.append(message)
        return out

    def last_sequence(self, entity_id: str) -> int:
        with self._lock:
            return max(self._m.commands.get(entity_id, {0: ""}), default=0)

    def _allocate(self, entity_id: str) -> int:
        """Next number of ``entity_id`` (the lock is held)."""
        applied = max(self._m.commands.get(entity_id, {0: ""}), default=0)
        seq = max(self._m.sequences.get(entity_id, 0), applied) + 1
        self._m.sequences[entity_id] = seq
        return seq

    def allocate_sequence(self, entity_id: str) -> int:
        with self._lock:
            return self._allocate(entity_id)

    def record_publish(self, command: Command) -> Command:
        with self._lock:
            pending = self._m.unsent.setdefault(command.entity_id, {})
            for command_id, body in pending.values():
                if command_id == command.event_id:
                    return as_command(decode(body, self._registry))
            numbered = with_sequence(command, self._allocate(command.entity_id))
            pending[numbered.metadata.sequence_no] = (numbered.event_id, encode(numbered))
            return numbered

    def unsent_commands(self, entity_id: str | None = None) -> list[Command]:
        with self._lock:
            rows = [
                (e, seq, body)
                for e, pending in self._m.unsent.items()
                if entity_id is None or e == entity_id
                for seq, (_, body) in pending.items()
            ]
        return [as_command(decode(body, self._registry)) for _, _, body in sorted(rows)]

    def mark_sent(self, entity_id: str, sequence_no: int) -> None:
        with self._lock:
            pending = self._m.unsent.get(entity_id, {})
            pending.pop(sequence_no, None)
            if not pending:
                self._m.unsent.pop(entity_id, None)

    def get_entity(self, kind: str, entity_id: str) -> State | None:
        with self._lock:
            text = self._m.entities.get((kind, entity_id))
        return None if text is None else _loads(text)

    def get_view(self, view: str, row_id: str) -> State | None:
        with self._lock:
            text = self._m.views.get(view, {}).get(row_id)
        return None if text is None else _loads(text)

    def list_view(self, view: str) -> dict[str, State]:
        with self._lock:
            rows = dict(self._m.views.get(view, {}))
        return {k: _loads(v) for k, v in rows.items()}

    def dead_letters(self) -> list[DeadLetter]:
        with self._lock:
            return list(self._m.dead)

    def claim(
        self, key: str, *, now: float, lease_until: float, message_type: str, digest: str | None = None
    ) -> ClaimResult:
        with self._lock:
            rec = self._m.records.get(key)
            expired = rec is not None and rec.status != IN_PROGRESS and rec.expires_at <= now
            if rec is not None and not expired and not digests_match(rec.digest, digest):
                assert rec.digest is not None
                return Conflict(rec.digest)
            takeover = (
                rec is None
                or expired
                or rec.status == DEAD_LETTERED  # no effect: decide again (D24)
                or (rec.status == IN_PROGRESS and rec.lease_until <= now)
            )
            if takeover:
                self._tokens += 1
                self._m.records[key] = _Record(
                    IN_PROGRESS, self._tokens, lease_until, lease_until, message_type, digest=digest
                )
                return Claimed(self._tokens, lease_until)
            assert rec is not None
            if rec.status == COMPLETED:
                outbox = rec.outbox
            else:
                return Busy(rec.lease_until)
        return duplicate_of(outbox, self._registry)

    def extend(self, key: str, token: int, lease_until: float) -> bool:
        with self._lock:
            rec = self._m.records.get(key)
            if rec is None or rec.status != IN_PROGRESS or rec.token != token:
                return False
            rec.lease_until = max(rec.lease_until, lease_until)
            rec.expires_at = max(rec.expires_at, lease_until)
            return True

    def release(self, key: str, token: int) -> None:
        with self._lock:
            rec = self._m.records.get(key)
            if rec is not None and rec.status == IN_PROGRESS and rec.token == token:
                del self._m.records[key]

    def cleanup(self, now: float, *, abandoned_after: float, limit: int | None = None) -> int:
        with self._lock:
            dead = [
                k
                for k, r in self._m.records.items()
                if cleanable(r.status, r.lease_until, r.expires_at, now=now, abandoned_after=abandoned_after)
            ][:limit]
            for k in dead:
                del self._m.records[k]
            return len(dead)

    def commit(self, effect: Effect) -> tuple[Command, ...]:
        check_effect_keys(effect)
        with self._lock:
            rec = self._m.records.get(effect.key)
            if rec is None or rec.status != IN_PROGRESS or rec.token != effect.token:
                raise LeaseLost(f"claim on {effect.key!r} is no longer ours")
            if effect.command is not None:
                cmd = effect.command
                existing = self._m.commands.get(cmd.entity_id, {}).get(cmd.metadata.sequence_no)
                if existing is not None:
                    raise SequenceConflict(f"{cmd.entity_id} already has seq {cmd.metadata.sequence_no}")
            for w in effect.entities:
                _check_expected(
                    self._m.entities.get((w.kind, w.entity_id)), w.expected, f"{w.kind} {w.entity_id}"
                )
            for v in effect.views:
                _check_expected(
                    self._m.views.get(v.view, {}).get(v.row_id), v.expected, f"view {v.view} row {v.row_id}"
                )
            # every check passed: apply all writes (nothing below can fail)
            if effect.command is not None:
                cmd = effect.command
                self._m.commands.setdefault(cmd.entity_id, {})[cmd.metadata.sequence_no] = encode(cmd)
            for w in effect.entities:
                self._m.entities[(w.kind, w.entity_id)] = _dumps(w.state)
            for v in effect.views:
                self._m.views.setdefault(v.view, {})[v.row_id] = _dumps(v.state)
            if effect.dead_letter is not None:
                self._m.dead.append(effect.dead_letter)
            numbered = []
            for follow in effect.commands:  # after the effect's own command (same entity: next no.)
                cmd = with_sequence(follow, self._allocate(follow.entity_id))
                self._m.unsent.setdefault(cmd.entity_id, {})[cmd.metadata.sequence_no] = (
                    cmd.event_id,
                    encode(cmd),
                )
                numbered.append(cmd)
            self._m.records[effect.key] = _Record(
                DEAD_LETTERED if effect.dead_letter is not None else COMPLETED,
                effect.token,
                rec.lease_until,
                effect.expires_at,
                effect.message_type,
                outbox_to_json(effect.outbox, tuple(numbered)),
                rec.digest,
            )
            return tuple(numbered)


#: Longest entity id / view row id / entity kind / view name any backend stores (the SQL key
#: columns are VARCHAR(200) / VARCHAR(100)); checked by every backend before it writes, so an
#: over-long id derived from a payload (e.g. a view keyed by SKU) is refused the same way on
#: SQLite, PostgreSQL and in memory, never first by the database.
MAX_ROW_ID_CHARS = 200
MAX_NAME_CHARS = 100


def cleanable(
    status: str, lease_until: float, expires_at: float, *, now: float, abandoned_after: float
) -> bool:
    """Whether :meth:`Storage.cleanup` at ``now`` may delete an idempotency record (the rule every
    backend implements; the SQL one as the same WHERE clause):

    * COMPLETED / DEAD_LETTERED: once ``expires_at`` (commit time + TTL) passed. The TTL outlives
      every copy of the message (queue + DLQ retention, D22), so nothing can claim it again.
    * IN_PROGRESS: only once its lease ended ``abandoned_after`` (= the TTL) or more ago. A leased
      claim is in flight (a worker holds the message: lease = visibility deadline) and is never
      deleted; a claim whose lease just lapsed is left to the redelivery's takeover, and keeps its
      content digest (a reused id with other content is still a Conflict) for the whole TTL.

    ``expires_at <= now`` holds for both (an IN_PROGRESS record's ``expires_at`` is its last lease
    end), which lets SQL use the ``expires_at`` index."""
    if expires_at > now:
        return False
    return status != IN_PROGRESS or lease_until <= now - abandoned_after


def check_effect_keys(effect: Effect) -> None:
    """:class:`DecodeError` (the message's content, so poison) if a row key of ``effect`` is
    longer than the stores' key columns hold, or contains NUL."""
    for kind, row_id in [(w.kind, w.entity_id) for w in effect.entities] + [
        (v.view, v.row_id) for v in effect.views
    ]:
        if len(row_id) > MAX_ROW_ID_CHARS or len(kind) > MAX_NAME_CHARS:
            raise DecodeError(f"row id {row_id[:40]!r}... of {kind[:40]!r} is longer than {MAX_ROW_ID_CHARS}")
        if "\x00" in row_id:  # PostgreSQL refuses NUL in VARCHAR, SQLite stores it
            raise DecodeError(f"row id {row_id[:40]!r} of {kind[:40]!r} contains NUL")


def with_sequence(command: Command, sequence_no: int) -> Command:
    """``command`` carrying ``sequence_no``."""
    return replace(command, metadata=replace(command.metadata, sequence_no=sequence_no))


def as_command(message: Command | Event) -> Command:
    assert isinstance(message, Command)
    return message


def digests_match(stored: str | None, claimed: str | None) -> bool:
    """A claim's digest matches a record's unless both are known and differ."""
    return stored is None or claimed is None or stored == claimed


def _check_expected(stored: str | None, expected: State | None, what: str) -> None:
    """Raise :class:`WriteConflict` unless ``stored`` (serialised) is the state a write expects."""
    if expected is UNCHECKED:
        return
    if stored != (None if expected is None else _dumps(expected)):
        raise WriteConflict(f"{what} changed since it was read")


def _dumps(state: Mapping[str, Any]) -> str:
    return json.dumps(state, sort_keys=True, separators=(",", ":"))


def _loads(text: str) -> State:
    value = json.loads(text)
    assert isinstance(value, dict)
    return value
