"""The mutants and their patches (see :mod:`harness.mutants`)."""

from __future__ import annotations

import contextvars
import json
import logging
import os
import secrets
import signal
import threading
import time
import types
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from typing import Any
from unittest import mock

from botocore.exceptions import BotoCoreError, ClientError
from opentelemetry import trace
from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from harness.mutants import detection as detection_mutants
from harness.mutants import load as load_mutants
from reference import health, iam
from reference.bootstrap import Bootstrapper
from reference.breaker import CircuitBreaker
from reference.bus import CommandBus, ReplayResult
from reference.cleanup import IdempotencyCleaner
from reference.config import BusOptions
from reference.dispatchers import SnsEventDispatcher, _Dispatcher, message_attributes
from reference.envelope import POISON_CODES, MessageBinding
from reference.errors import DecodeError, LeaseLost, MessageError, MissingAttribute, TransportError
from reference.idempotency import COMPLETED, IN_PROGRESS, Busy, Claimed, ClaimResult, Conflict, Duplicate
from reference.keycache import CachedKey, CacheLimits, DataKeyCache
from reference.listener import SqsListener, _Flight, _Heartbeat
from reference.messages import (
    Command,
    Event,
    Message,
    Metadata,
    Payload,
    derived_event_id,
    encode,
    event_for,
    to_wire,
)
from reference.sql import SqlStorage
from reference.stores import (
    UNCHECKED,
    Effect,
    EntityWrite,
    InMemoryStorage,
    _Record,
    digests_match,
    outbox_from_json,
    with_sequence,
)

ENV = "FLOWGATE_MUTANT"
P = "properties/"
S = "scenarios/"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Mutant:
    name: str
    bug: str
    killers: tuple[str, ...]  # pytest node ids (relative to the repo root) that must fail
    expected: tuple[str, ...]  # anomaly kinds the killers are expected to report
    patches: Callable[[], Sequence[Any]]  # context managers that install the bug
    #: LocalStack scenario node ids that must fail under this mutant (``flowgate mutants --suite
    #: scenarios``); the scenario's worker processes run it via ``harness.mutants.worker``
    scenarios: tuple[str, ...] = ()
    #: what the patches break: ``reference`` (the bus; the gate runs it as a mutant worker) or
    #: ``simulator`` (``harness.sim``; killed by the differential tests that compare the simulator
    #: with LocalStack, ``scenarios/test_fidelity.py``; nothing for the gate to run) or ``load``
    #: (the load test's producer side, installed in the Locust processes that send:
    #: ``harness/mutants/load.py``; killed by the load test's own verdict)
    subject: str = "reference"


# ------------------------------------------------------------------ patch builders
def _fifo_parallel_group() -> list[Any]:
    def _run_group(self: SqsListener, flights: list[_Flight]) -> None:
        # as if each message of the group ran on its own thread: no stop at the first unfinished
        # message, and the later messages finish first
        for flight in reversed(flights):
            self._process(flight)

    # ... and trusts that order blindly: no wait for a missing predecessor (sequence number)
    return [
        mock.patch.object(SqsListener, "_run_group", _run_group),
        mock.patch.object(SqsListener, "_predecessor_missing", lambda self, f, cmd: False),  # noqa: PT008
    ]


def _delete_before_handle() -> list[Any]:
    orig_process, orig_delete = SqsListener._process, SqsListener._delete

    def _process(self: SqsListener, f: _Flight) -> bool:
        orig_delete(self, f, {"message_id": f.message_id, "queue": self.queue})
        self.__dict__["_fg_deleted"] = f.message_id
        try:
            return orig_process(self, f)
        finally:
            self.__dict__.pop("_fg_deleted", None)

    def _delete(self: SqsListener, f: _Flight, ctx: Any) -> bool:
        if self.__dict__.get("_fg_deleted") == f.message_id:
            return True
        return orig_delete(self, f, ctx)

    return [
        mock.patch.object(SqsListener, "_process", _process),
        mock.patch.object(SqsListener, "_delete", _delete),
    ]


def _unfenced_commit_fn(orig_commit: Callable[[InMemoryStorage, Effect], None]) -> Callable[..., None]:
    def commit(self: InMemoryStorage, effect: Effect) -> None:
        with self._lock:  # "mark" the claim as ours whatever happened since: no fencing
            rec = self._m.records.get(effect.key)
            lease = rec.lease_until if rec is not None else effect.expires_at
            self._m.records[effect.key] = _Record(
                IN_PROGRESS, effect.token, lease, lease, effect.message_type
            )
        orig_commit(self, effect)

    return commit


def _sql_unfenced_commit_fn(orig_commit: Callable[[SqlStorage, Effect], None]) -> Callable[..., None]:
    """SQL flavour: the completion ignores the token/status condition (the record is overwritten
    as ours first, whatever another worker did since), then the original commit runs."""

    def commit(self: SqlStorage, effect: Effect) -> None:
        t = self.idempotency
        for attempt in range(3):
            with self._guard(), self.engine.begin() as c:
                n = c.execute(
                    update(t)
                    .where(t.c.key == effect.key)
                    .values(status=IN_PROGRESS, fencing_token=effect.token)
                ).rowcount
                if n == 0:
                    try:
                        with c.begin_nested():
                            c.execute(
                                insert(t).values(
                                    key=effect.key,
                                    status=IN_PROGRESS,
                                    lease_expires_at=effect.expires_at,
                                    fencing_token=effect.token,
                                    expires_at=effect.expires_at,
                                    message_type=effect.message_type,
                                    outbox="[]",
                                )
                            )
                    except IntegrityError:
                        pass
            try:
                orig_commit(self, effect)
                return
            except LeaseLost:  # someone overwrote the record in between: overwrite it again
                if attempt == 2:
                    raise

    return commit


def _sql_claim(*, check: bool) -> Callable[..., ClaimResult]:
    """SQL claim without the conditional write: ``check`` = SELECT first (duplicate only when a
    COMPLETED, unexpired record is seen), else no look at the store at all; never INSERT/UPDATE."""

    def claim(
        self: SqlStorage,
        key: str,
        *,
        now: float,
        lease_until: float,
        message_type: str,
        digest: str | None = None,
    ) -> ClaimResult:
        if check:
            t = self.idempotency
            with self.engine.connect() as c:
                row = c.execute(select(t.c.status, t.c.expires_at, t.c.outbox).where(t.c.key == key)).first()
            if row is not None and row.status == COMPLETED and float(row.expires_at) > now:
                return Duplicate(outbox_from_json(row.outbox, self._registry))
        return Claimed(secrets.randbits(62), lease_until)  # ... and the mark comes later, at commit

    return claim


def _check_then_mark() -> list[Any]:
    def claim(
        self: InMemoryStorage,
        key: str,
        *,
        now: float,
        lease_until: float,
        message_type: str,
        digest: str | None = None,
    ) -> ClaimResult:
        with self._lock:  # the check ...
            rec = self._m.records.get(key)
            if rec is not None and rec.status == COMPLETED and rec.expires_at > now:
                outbox = rec.outbox
            else:
                self._tokens += 1
                return Claimed(self._tokens, lease_until)  # ... and the mark comes later, at commit
        return Duplicate(outbox_from_json(outbox, self._registry))

    return [
        mock.patch.object(InMemoryStorage, "claim", claim),
        mock.patch.object(InMemoryStorage, "commit", _unfenced_commit_fn(InMemoryStorage.commit)),
        mock.patch.object(InMemoryStorage, "extend", lambda self, key, token, lease_until: True),  # noqa: PT008
        mock.patch.object(SqlStorage, "claim", _sql_claim(check=True)),
        mock.patch.object(SqlStorage, "commit", _sql_unfenced_commit_fn(SqlStorage.commit)),
        mock.patch.object(SqlStorage, "extend", lambda self, key, token, lease_until: True),  # noqa: PT008
    ]


def _no_idempotency() -> list[Any]:
    def claim(
        self: InMemoryStorage,
        key: str,
        *,
        now: float,
        lease_until: float,
        message_type: str,
        digest: str | None = None,
    ) -> ClaimResult:
        with self._lock:
            self._tokens += 1
            return Claimed(self._tokens, lease_until)

    return [
        mock.patch.object(InMemoryStorage, "claim", claim),
        mock.patch.object(InMemoryStorage, "commit", _unfenced_commit_fn(InMemoryStorage.commit)),
        mock.patch.object(InMemoryStorage, "extend", lambda self, key, token, lease_until: True),  # noqa: PT008
        mock.patch.object(SqlStorage, "claim", _sql_claim(check=False)),
        mock.patch.object(SqlStorage, "commit", _sql_unfenced_commit_fn(SqlStorage.commit)),
        mock.patch.object(SqlStorage, "extend", lambda self, key, token, lease_until: True),  # noqa: PT008
    ]


_CURRENT_MESSAGE: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "fg_mutant_message", default=None
)


def _idempotency_on_message_id() -> list[Any]:
    orig_process = SqsListener._process

    def _process(self: SqsListener, f: _Flight) -> bool:
        token = _CURRENT_MESSAGE.set(f.message_id)
        try:
            return orig_process(self, f)
        finally:
            _CURRENT_MESSAGE.reset(token)

    def command_key(event_id: str) -> str:
        return f"command:{_CURRENT_MESSAGE.get() or event_id}"

    def event_key(event_id: str, view: str) -> str:
        return f"event:{_CURRENT_MESSAGE.get() or event_id}:{view}"

    return [
        mock.patch.object(SqsListener, "_process", _process),
        mock.patch("reference.listener.command_key", command_key),
        mock.patch("reference.listener.event_key", event_key),
        mock.patch("reference.bus.command_key", command_key),
        mock.patch("reference.bus.event_key", event_key),
    ]


def _no_aad() -> list[Any]:
    return [
        mock.patch.object(MessageBinding, "context", lambda self: {"flowgate:version": "1"}),  # noqa: PT008
        mock.patch.object(MessageBinding, "aad", lambda self, key_id: b""),  # noqa: PT008
    ]


def _no_redrive() -> list[Any]:
    orig_attrs = Bootstrapper._queue_attributes

    def _queue_attributes(self: Bootstrapper, name: str, redrive_to: str | None) -> dict[str, str]:
        return orig_attrs(self, name, None)

    def _poison(self: SqsListener, f: _Flight, exc: MessageError) -> bool:
        return False  # never dead-lettered: left for redelivery forever

    return [
        mock.patch.object(Bootstrapper, "_queue_attributes", _queue_attributes),
        mock.patch.object(SqsListener, "_poison", _poison),
    ]


def _no_poison_dlq() -> list[Any]:
    def _poison(self: SqsListener, f: _Flight, exc: MessageError) -> bool:
        if f.receive_count < self.options.max_receive_count:
            return False
        return self._delete(f, {"message_id": f.message_id, "queue": self.queue})  # dropped silently

    return [mock.patch.object(SqsListener, "_poison", _poison)]


def _poison_wrong_reason() -> list[Any]:
    orig = SqsListener._poison

    class _Anything(MessageError):
        reason = "DecodeError"

    def _poison(self: SqsListener, f: _Flight, exc: MessageError) -> bool:
        return orig(self, f, _Anything(str(exc)))  # every poison reported as a DecodeError

    return [mock.patch.object(SqsListener, "_poison", _poison)]


def _strict_unknown_fields() -> list[Any]:
    import reference.messages as messages

    orig = messages.from_wire

    def from_wire(obj: Any, registry: Any) -> Any:
        if isinstance(obj, dict) and set(obj) - {"name", "entity", "payload", "metadata"}:
            raise DecodeError("unknown top-level field")  # over-strict: forward compatibility lost
        return orig(obj, registry)

    return [mock.patch.object(messages, "from_wire", from_wire)]


def _no_json_depth_limit() -> list[Any]:
    import reference.messages as messages

    return [mock.patch.object(messages, "check_json_depth", lambda text, limit=16: None)]  # noqa: PT008


def _duplicate_keys_accepted() -> list[Any]:
    import reference.messages as messages

    return [mock.patch.object(messages, "_unique_object", dict)]  # the last duplicate key wins


def _loose_envelope_version() -> list[Any]:
    import reference.envelope as envelope

    # the comparison Python does by default: True == 1 and 1.0 == 1 pass
    return [mock.patch.object(envelope, "is_supported_version", lambda value: value == envelope.VERSION)]


def _command_type_wins() -> list[Any]:
    import reference.listener as listener

    def _message_kind(attrs: Any) -> tuple[str, str]:
        # CommandType silently preferred when both type attributes are present
        if "CommandType" in attrs:
            return "command", attrs["CommandType"]
        if "EventType" in attrs:
            return "event", attrs["EventType"]
        raise MissingAttribute("neither CommandType nor EventType attribute present")

    return [mock.patch.object(listener, "_message_kind", _message_kind)]


def _replay_persists() -> list[Any]:
    orig_replay = CommandBus.replay

    def replay(self: CommandBus, entity_id: str) -> ReplayResult:
        result = orig_replay(self, entity_id)
        assert self.processor is not None
        storage, now = self.processor.storage, self.processor.clock.now()
        for stored in storage.load_commands(entity_id):  # "persist the replayed commands"
            seq = storage.last_sequence(entity_id) + 1
            command = replace(stored, metadata=replace(stored.metadata, sequence_no=seq, is_replay=True))
            key = f"replay:{entity_id}:{seq}"
            claim = storage.claim(key, now=now, lease_until=now + 30, message_type=command.name)
            assert isinstance(claim, Claimed)
            storage.commit(
                Effect(
                    key=key,
                    token=claim.token,
                    message_type=command.name,
                    expires_at=now + 60,
                    command=command,
                )
            )
        return result

    return [mock.patch.object(CommandBus, "replay", replay)]


def _sequencer_from_applied() -> list[Any]:
    """The old producer: numbers from a counter in the producer's memory that starts after the
    store's last *applied* number; sent directly (no outbox). A second producer, or a restarted
    one, re-assigns the numbers of commands still in flight."""

    def publish(self: CommandBus, command: Command) -> Command:
        if command.metadata.sequence_no <= 0:
            last: dict[str, int] = self.__dict__.setdefault("_fg_last", {})
            entity = command.entity_id
            if entity not in last:
                last[entity] = self.processor.storage.last_sequence(entity) if self.processor else 0
            last[entity] += 1
            command = with_sequence(command, last[entity])
        self._dispatch(command)
        return command

    return [mock.patch.object(CommandBus, "publish", publish)]


def _unsent_not_resent() -> list[Any]:
    """A producer sends only the command it publishes: one its predecessor recorded and then died
    before sending stays unsent for ever (no re-send on restart, nor by the next publish)."""

    def send_unsent(self: CommandBus, entity_id: str | None = None, *, up_to: int | None = None) -> int:
        if self.outbox is None or entity_id is None:
            return 0
        for command in self.outbox.unsent_commands(entity_id):
            if command.metadata.sequence_no == up_to:
                self._dispatch(command)
                self.faults.hit("after_send", {"command_id": command.event_id})
                self.outbox.mark_sent(command.entity_id, command.metadata.sequence_no)
                return 1
        return 0

    return [mock.patch.object(CommandBus, "send_unsent", send_unsent)]


def _outbox_own_first() -> list[Any]:
    """A publish sends its own command first, then the entity's older unsent ones: a number
    reaches the queue before a lower one a dead producer left unsent."""

    def send_unsent(self: CommandBus, entity_id: str | None = None, *, up_to: int | None = None) -> int:
        if self.outbox is None:
            return 0
        unsent = self.outbox.unsent_commands(entity_id)
        own = [c for c in unsent if c.metadata.sequence_no == up_to]
        rest = [c for c in unsent if c not in own and (up_to is None or c.metadata.sequence_no < up_to)]
        for command in own + rest:
            self._dispatch(command)
            self.faults.hit("after_send", {"command_id": command.event_id})
            self.outbox.mark_sent(command.entity_id, command.metadata.sequence_no)
        return len(own) + len(rest)

    return [mock.patch.object(CommandBus, "send_unsent", send_unsent)]


def _outbox_errors(*, refusal_blocks: bool) -> list[Any]:
    """``send_unsent`` with one of its two error rules inverted: ``refusal_blocks`` -- a command a
    dispatcher refused stays unsent and is tried again (and refused again) before every later
    command of its entity; otherwise -- a command whose send failed is marked sent (dropped)."""

    def send_unsent(self: CommandBus, entity_id: str | None = None, *, up_to: int | None = None) -> int:
        if self.outbox is None:
            return 0
        sent = 0
        for command in self.outbox.unsent_commands(entity_id):
            if up_to is not None and command.metadata.sequence_no > up_to:
                continue
            try:
                self._dispatch(command)
            except Exception:
                if not refusal_blocks:
                    self.outbox.mark_sent(command.entity_id, command.metadata.sequence_no)
                raise
            self.outbox.mark_sent(command.entity_id, command.metadata.sequence_no)
            sent += 1
        return sent

    return [mock.patch.object(CommandBus, "send_unsent", send_unsent)]


def _allocate_read_then_write() -> list[Any]:
    """Sequence allocation as two steps: read the entity's counter, then write it + 1 (in memory:
    two lock sections; SQL: the read on its own connection, outside the writing transaction), so
    two producers allocating at once can both get the same number."""

    def mem_allocate(self: InMemoryStorage, entity_id: str) -> int:
        with self._lock:
            last = max(self._m.sequences.get(entity_id, 0), max(self._m.commands.get(entity_id, {0: ""})))
        time.sleep(0.0005)
        with self._lock:
            self._m.sequences[entity_id] = last + 1
        return last + 1

    def mem_record(self: InMemoryStorage, command: Command) -> Command:
        numbered = with_sequence(command, mem_allocate(self, command.entity_id))
        with self._lock:
            pending = self._m.unsent.setdefault(command.entity_id, {})
            pending[numbered.metadata.sequence_no] = (numbered.event_id, encode(numbered))
        return numbered

    def sql_allocate(self: SqlStorage, c: Any, entity_id: str) -> int:
        s = self.sequences
        with self.engine.connect() as other:
            last = int(other.execute(select(s.c.last_no).where(s.c.entity_id == entity_id)).scalar() or 0)
        time.sleep(0.0005)
        if c.execute(update(s).where(s.c.entity_id == entity_id).values(last_no=last + 1)).rowcount == 0:
            c.execute(insert(s).values(entity_id=entity_id, last_no=last + 1))
        return last + 1

    return [
        mock.patch.object(InMemoryStorage, "allocate_sequence", mem_allocate),
        mock.patch.object(InMemoryStorage, "record_publish", mem_record),
        mock.patch.object(SqlStorage, "_allocate", sql_allocate),
    ]


def _unconditional_row_write() -> list[Any]:
    def _write_row(
        c: Any, table: Any, where: Any, ident: dict[str, str], state: Any, expected: Any, what: str
    ) -> None:
        orig_write_row(c, table, where, ident, state, UNCHECKED, what)

    orig_write_row = SqlStorage._write_row
    return [
        mock.patch("reference.stores._check_expected", return_value=None),
        mock.patch.object(SqlStorage, "_write_row", staticmethod(_write_row)),
    ]


def _unfenced_commit() -> list[Any]:
    return [
        mock.patch.object(InMemoryStorage, "commit", _unfenced_commit_fn(InMemoryStorage.commit)),
        mock.patch.object(SqlStorage, "commit", _sql_unfenced_commit_fn(SqlStorage.commit)),
    ]


def _duplicate_reapplies_row() -> list[Any]:
    """A recognised duplicate of a command re-applies its effect to the entity row (the command is
    appended to the order's ``applied`` log again) and then re-publishes the recorded outbox as the
    reference does: the same event ids, so nothing new reaches the topic. Only a read shows it."""

    def wrap(orig: Callable[..., ClaimResult]) -> Callable[..., ClaimResult]:
        def claim(self: Any, key: str, **kwargs: Any) -> ClaimResult:
            result = orig(self, key, **kwargs)
            if isinstance(result, Duplicate) and key.startswith("command:") and result.outbox:
                first = result.outbox[0]
                _reapply(self, first.entity_id, key.removeprefix("command:"), orig, kwargs)
            return result

        return claim

    def _reapply(
        storage: Any, entity_id: str, command_id: str, orig: Callable[..., ClaimResult], kwargs: Any
    ) -> None:
        state = storage.get_entity("order", entity_id)
        if state is None or command_id not in state.get("applied", []):
            return
        new = dict(state, applied=[*state["applied"], command_id])
        # written through the store's own claim + commit (a key of its own), like any effect
        key = f"reapply:{command_id}:{secrets.token_hex(8)}"
        fresh = orig(storage, key, **kwargs)
        if isinstance(fresh, Claimed):
            storage.commit(
                Effect(
                    key=key,
                    token=fresh.token,
                    message_type="reapply",
                    expires_at=kwargs["lease_until"],
                    entities=(EntityWrite("order", entity_id, new, expected=state),),
                )
            )

    return [
        mock.patch.object(InMemoryStorage, "claim", wrap(InMemoryStorage.claim)),
        mock.patch.object(SqlStorage, "claim", wrap(SqlStorage.claim)),
    ]


def _process_local_entity_lock() -> list[Any]:
    """The claim and its fence live in the store *client's* memory (a per-process lock table
    keyed like the idempotency records: held = Busy, taken over once its lease ran out, checked by
    commit, extend and release); the shared data only ever sees COMPLETED records. One store
    client (every serial simulation: all workers share one store object) behaves exactly as the
    reference; two processes each with its own client over the same data both claim, and both
    commit."""
    tables: weakref.WeakKeyDictionary[InMemoryStorage, dict[str, _Record]] = weakref.WeakKeyDictionary()
    orig_commit = InMemoryStorage.commit

    def local(store: InMemoryStorage) -> dict[str, _Record]:
        return tables.setdefault(store, {})

    def claim(
        self: InMemoryStorage,
        key: str,
        *,
        now: float,
        lease_until: float,
        message_type: str,
        digest: str | None = None,
    ) -> ClaimResult:
        held = local(self)
        with self._lock:
            rec = self._m.records.get(key)
            if rec is not None and rec.status == COMPLETED and rec.expires_at > now:
                if not digests_match(rec.digest, digest):
                    assert rec.digest is not None
                    return Conflict(rec.digest)
                return Duplicate(outbox_from_json(rec.outbox, self._registry))
            mine = held.get(key)
            if mine is not None and not digests_match(mine.digest, digest):
                assert mine.digest is not None
                return Conflict(mine.digest)
            if mine is not None and mine.lease_until > now:
                return Busy(mine.lease_until)
            self._tokens += 1
            held[key] = _Record(
                IN_PROGRESS, self._tokens, lease_until, lease_until, message_type, digest=digest
            )
            return Claimed(self._tokens, lease_until)

    def extend(self: InMemoryStorage, key: str, token: int, lease_until: float) -> bool:
        mine = local(self).get(key)
        if mine is None or mine.token != token:
            return False
        mine.lease_until = max(mine.lease_until, lease_until)
        mine.expires_at = max(mine.expires_at, lease_until)
        return True

    def release(self: InMemoryStorage, key: str, token: int) -> None:
        held = local(self)
        if key in held and held[key].token == token:
            del held[key]

    def commit(self: InMemoryStorage, effect: Effect) -> None:
        held = local(self)
        mine = held.get(effect.key)
        if mine is None or mine.token != effect.token:
            raise LeaseLost(f"claim on {effect.key!r} is no longer ours")
        with self._lock:  # our lock says it is ours: the shared record is (over)written as ours
            self._m.records[effect.key] = _Record(
                IN_PROGRESS,
                mine.token,
                mine.lease_until,
                mine.expires_at,
                mine.message_type,
                digest=mine.digest,
            )
        orig_commit(self, effect)
        held.pop(effect.key, None)

    return [
        mock.patch.object(InMemoryStorage, "claim", claim),
        mock.patch.object(InMemoryStorage, "extend", extend),
        mock.patch.object(InMemoryStorage, "release", release),
        mock.patch.object(InMemoryStorage, "commit", commit),
    ]


def _heartbeat_holds_given_up() -> list[Any]:
    """The heartbeat extends every message of the poll until the poll ends, also those it gave up
    (busy elsewhere, waiting for the predecessor): a slow handler of another group holds them."""
    return [mock.patch.object(_Heartbeat, "wanted", staticmethod(lambda flight: not flight.deleted))]


def _committed_claim_kept() -> list[Any]:
    """A command keeps its claim's key and token after the commit, so the heartbeat's lease
    ``extend`` of the COMPLETED record is False and the message leaves the heartbeat while it waits
    for its poll's publish and delete: its visibility lapses and another worker receives it."""
    claims: dict[int, tuple[str, int]] = {}
    orig_beat, orig_ready = SqsListener._beat, SqsListener._ready

    def _beat(self: SqsListener, f: _Flight) -> bool:
        if f.key is not None and f.token is not None:
            claims[id(f)] = (f.key, f.token)
        return orig_beat(self, f)

    def _ready(
        self: SqsListener, f: _Flight, ctx: Any, outbox: Any = (), *, publish_point: bool = False
    ) -> bool:
        if publish_point and id(f) in claims:
            f.key, f.token = claims.pop(id(f))
        return orig_ready(self, f, ctx, outbox, publish_point=publish_point)

    return [mock.patch.object(SqsListener, "_beat", _beat), mock.patch.object(SqsListener, "_ready", _ready)]


def _sigterm_abandons_batch() -> list[Any]:
    real_signal = signal.signal

    def install(signum: int, handler: Any) -> Any:
        def abandon(signo: int, frame: Any) -> None:
            log.info("signal %d: exiting at once", signo)  # no stop flag, no drain of the batch in hand
            os._exit(0)

        return real_signal(signum, abandon)

    shim = types.SimpleNamespace(signal=install, SIGTERM=signal.SIGTERM, SIGINT=signal.SIGINT)
    return [mock.patch("reference.worker.signal", shim)]


def _poll_loop_dies_on_error() -> list[Any]:
    def run(self: SqsListener, stop: Any) -> None:
        while not stop.is_set():
            self.poll_once()
            if self.breaker.is_open:  # a transport error escapes: the listener thread (and the worker) ends
                raise TransportError(self.breaker.status().error)

    return [mock.patch.object(SqsListener, "run", run)]


def _plaintext_on_encrypted_bus() -> list[Any]:
    def no_cipher(kms: Any, key_id: str, **_: Any) -> None:
        return None  # the configured key is never wired: dispatchers seal nothing, listeners accept plaintext

    return [mock.patch("reference.worker.KmsEnvelopeCipher", no_cipher)]


def _drops_correlation_id() -> list[Any]:
    def event_for(command: Command, index: int, payload: Payload) -> Event:
        meta = command.metadata
        eid = derived_event_id(meta.event_id, index, type(payload).message_name)
        return Event(
            payload=payload,
            entity_id=command.entity_id,
            metadata=Metadata(
                event_id=eid,
                occurred_on=meta.occurred_on,
                sequence_no=meta.sequence_no,
                correlation_id=eid,  # a new chain per event: the command's correlation id is dropped
                is_replay=meta.is_replay,
                causation_id=meta.event_id,
            ),
        )

    return [mock.patch("reference.bus.event_for", event_for)]


def _wire_format_drift() -> list[Any]:
    orig = to_wire

    def drifted(message: Any) -> dict[str, Any]:
        obj = dict(orig(message))
        meta = dict(obj["metadata"])
        meta["sequence_no"] = meta.pop("sequenceNo")  # snake_case creeps into the camelCase contract
        obj["metadata"] = meta
        return obj

    return [mock.patch("reference.messages.to_wire", drifted)]


def _drops_causation_id() -> list[Any]:
    orig = event_for

    def wrapped(command: Command, index: int, payload: Payload) -> Event:
        event = orig(command, index, payload)
        # the event no longer says which command caused it
        return replace(event, metadata=replace(event.metadata, causation_id=None))

    return [mock.patch("reference.bus.event_for", wrapped)]


def _drops_correlation_attribute() -> list[Any]:
    orig = message_attributes

    def attributes(message: Any, *, encrypted: bool, traceparent: str | None) -> dict[str, Any]:
        attrs = orig(message, encrypted=encrypted, traceparent=traceparent)
        attrs.pop("CorrelationId", None)  # the body keeps it; the wire attribute is never written
        return attrs

    return [mock.patch("reference.dispatchers.message_attributes", attributes)]


def _no_heartbeat() -> list[Any]:
    def _beat(self: SqsListener, f: _Flight) -> bool:
        return True  # never ChangeMessageVisibility, never extends the lease

    return [mock.patch.object(SqsListener, "_beat", _beat)]


# -- simulator mutants (subject="simulator"): broken variants of harness.sim, killed by the
# differential tests against LocalStack
def _sim_fifo_topic_no_dedup() -> list[Any]:
    from harness.sim import sns as sim_sns

    orig_deliver = sim_sns.SnsBackend._deliver
    fresh = iter(range(1 << 62))

    def _dedup_key(topic: sim_sns.Topic, group_id: str | None, dedup_id: str) -> str:
        return f"{dedup_id}\x00{next(fresh)}"  # never seen before: the topic drops nothing

    def _deliver(
        self: sim_sns.SnsBackend, topic: sim_sns.Topic, sub: Any, message_id: str, *rest: Any
    ) -> None:
        message, subject, attributes, group_id, dedup_id, sequence, now = rest
        # ... and forwards the publish's own MessageId as the deduplication id, so the subscribed
        # FIFO queue cannot drop the copy either
        forwarded = message_id if topic.fifo else dedup_id
        orig_deliver(
            self, topic, sub, message_id, message, subject, attributes, group_id, forwarded, sequence, now
        )

    return [
        mock.patch.object(sim_sns, "_dedup_key", _dedup_key),
        mock.patch.object(sim_sns.SnsBackend, "_deliver", _deliver),
    ]


def _sim_dedup_window_never_ends() -> list[Any]:
    from harness.sim import sns as sim_sns
    from harness.sim import sqs as sim_sqs

    # a duplicate id is dropped forever: the 5-minute window of FIFO queues and topics never ends
    return [
        mock.patch.object(sim_sqs, "DEDUP_WINDOW", float("inf")),
        mock.patch.object(sim_sns, "DEDUP_WINDOW", float("inf")),
    ]


def _sim_decrypt_ignores_context() -> list[Any]:
    from harness.sim import kms as sim_kms

    def _aad(key_id: str, context: Any) -> bytes:
        return key_id.encode("ascii") + b"\x00"  # the encryption context is not bound

    return [mock.patch.object(sim_kms, "_aad", _aad)]


def _sim_disabled_key_decrypts() -> list[Any]:
    from harness.sim import kms as sim_kms

    orig_decrypt = sim_kms.KmsBackend.decrypt

    def decrypt(self: sim_kms.KmsBackend, blob: bytes, context: Any, key_ref: str | None) -> Any:
        states = {key_id: key.state for key_id, key in self.keys.items()}
        for key in self.keys.values():
            key.state = "Enabled"  # Decrypt does not look at the key's state
        try:
            return orig_decrypt(self, blob, context, key_ref)
        finally:
            for key_id, state in states.items():
                self.keys[key_id].state = state

    return [mock.patch.object(sim_kms.KmsBackend, "decrypt", decrypt)]


def _no_breaker() -> list[Any]:
    def trip(self: CircuitBreaker, dependency: str, error: object) -> None:
        return None  # never opens: the listener keeps receiving while its dependency is down

    return [mock.patch.object(CircuitBreaker, "trip", trip)]


def _store_error_escapes_poll() -> list[Any]:
    orig_outage = SqsListener._outage

    def _beat(self: SqsListener, f: _Flight) -> bool:
        vt = self.options.visibility_timeout
        now = self.clock.now()
        if not self.options.heartbeat or now - f.extended_at <= vt / 2:
            return True
        try:
            self.sqs.change_message_visibility(
                QueueUrl=self.queue_url, ReceiptHandle=f.receipt, VisibilityTimeout=vt
            )
        except Exception:
            return False
        f.deadline, f.extended_at = now + vt, now
        if f.key is not None and f.token is not None:
            return self.processor.storage.extend(f.key, f.token, f.deadline)  # a store error escapes
        return True

    def _outage(self: SqsListener, exc: BaseException, where: str) -> None:
        if where == "sqs":
            raise exc  # the failed ReceiveMessage escapes poll_once, as before the breaker
        orig_outage(self, exc, where)

    return [
        mock.patch.object(SqsListener, "_beat", _beat),
        mock.patch.object(SqsListener, "_outage", _outage),
    ]


def _heartbeat_dies_on_error() -> list[Any]:
    def _beat_one(self: _Heartbeat, flight: _Flight) -> None:
        self.listener._beat(flight)  # an exception ends the heartbeat thread; nothing restarts it

    return [mock.patch.object(_Heartbeat, "_beat_one", _beat_one)]


def _redrive_without_headroom() -> list[Any]:
    orig_attrs = Bootstrapper._queue_attributes

    def _queue_attributes(self: Bootstrapper, name: str, redrive_to: str | None) -> dict[str, str]:
        attrs = orig_attrs(self, name, redrive_to)
        if "RedrivePolicy" in attrs:  # SQS's redrive fires on the listener's own poison threshold
            attrs["RedrivePolicy"] = json.dumps(
                {
                    "deadLetterTargetArn": redrive_to,
                    "maxReceiveCount": str(self.config.options.max_receive_count),
                }
            )
        return attrs

    return [mock.patch.object(Bootstrapper, "_queue_attributes", _queue_attributes)]


# ------------------------------------------------------------------ resolution and DLQ replay (issue 19)
#: SQS's longest visibility timeout (12 h): what a listener that parks a message sets.
MAX_VISIBILITY = 43200


def _poison_parked() -> list[Any]:
    orig_poison, orig_delete = SqsListener._poison, SqsListener._delete

    def _poison(self: SqsListener, f: _Flight, exc: MessageError) -> bool:
        self.__dict__["_fg_park"] = f.message_id
        try:
            return orig_poison(self, f, exc)
        finally:
            self.__dict__.pop("_fg_park", None)

    def _delete(self: SqsListener, f: _Flight, ctx: Any) -> bool:
        if self.__dict__.get("_fg_park") != f.message_id:
            return orig_delete(self, f, ctx)
        # forwarded to the DLQ with its reason, then "put away" instead of deleted: the original
        # stays in the queue, invisible for 12 h, and comes back long after the run
        f.deleted = True  # the heartbeat leaves it alone from now on
        try:
            self.sqs.change_message_visibility(
                QueueUrl=self.queue_url, ReceiptHandle=f.receipt, VisibilityTimeout=MAX_VISIBILITY
            )
        except (ClientError, BotoCoreError) as exc:
            log.warning("could not park %s: %s", f.message_id, exc)
        return True

    return [
        mock.patch.object(SqsListener, "_poison", _poison),
        mock.patch.object(SqsListener, "_delete", _delete),
    ]


def _dead_letter_completes_key() -> list[Any]:
    orig_memory, orig_sql = InMemoryStorage.commit, SqlStorage.commit

    def memory(self: InMemoryStorage, effect: Effect) -> None:
        orig_memory(self, effect)
        if effect.dead_letter is not None:  # the pre-D24 commit: the refused command's key completed
            with self._lock:
                self._m.records[effect.key].status = COMPLETED

    def sql(self: SqlStorage, effect: Effect) -> None:
        orig_sql(self, effect)
        if effect.dead_letter is not None:
            t = self.idempotency
            with self.engine.begin() as c:
                c.execute(update(t).where(t.c.key == effect.key).values(status=COMPLETED))

    return [
        mock.patch.object(InMemoryStorage, "commit", memory),
        mock.patch.object(SqlStorage, "commit", sql),
    ]


def _replay_reversed() -> list[Any]:
    import reference.dlq as dlq

    orig = dlq.replay_dead_letters

    class Reversing:
        """An SQS client whose DLQ receives come back in reverse: each batch is replayed last first."""

        def __init__(self, sqs: Any) -> None:
            self._sqs = sqs

        def receive_message(self, **kwargs: Any) -> dict[str, Any]:
            resp = dict(self._sqs.receive_message(**kwargs))
            resp["Messages"] = list(reversed(resp.get("Messages", [])))
            return resp

        def __getattr__(self, name: str) -> Any:
            return getattr(self._sqs, name)

    def replay(sqs: Any, **kwargs: Any) -> int:
        return orig(Reversing(sqs), **kwargs)

    return [mock.patch.object(dlq, "replay_dead_letters", replay)]


# ------------------------------------------------------------------ hostile messages (issue 13)
def _recursion_escapes_poll() -> list[Any]:
    def loads(body: str | bytes) -> Any:
        # the pre-fix decode: plain json.loads, only ValueError is the message's fault
        try:
            return json.loads(body)
        except ValueError as exc:
            raise DecodeError(f"body is not JSON: {exc}") from exc

    # ... and the listener lets anything else out of _process (the whole poll dies)
    return [
        mock.patch("reference.messages.loads_strict", loads),
        mock.patch("reference.listener._MESSAGE_FAULTS", ()),
    ]


def _id_reuse_is_duplicate() -> list[Any]:
    # idempotency records bound to the key only: a known id with other content is a "duplicate"
    return [mock.patch("reference.listener.message_digest", lambda message, view=None: None)]  # noqa: PT008


def _event_on_command_queue_projected() -> list[Any]:
    # no queue roles: any registered message is handled wherever it arrives
    return [mock.patch.object(SqsListener, "_check_route", lambda self, kind, type_name: None)]  # noqa: PT008


def _kms_disabled_is_poison() -> list[Any]:
    # the pre-fix classification: the key's state (disabled, pending deletion, not found,
    # access denied) counted as a property of the message
    old = frozenset(
        {
            *POISON_CODES,
            "AccessDeniedException",
            "NotFoundException",
            "KMSInvalidStateException",
            "DisabledException",
            "InvalidKeyUsageException",
        }
    )
    return [mock.patch("reference.envelope.POISON_CODES", old)]


def _kms_transport_is_poison() -> list[Any]:
    # contract v1.3 section 5 step 5 read literally ("any failure is poison"): KMS unreachable
    # (connection refused/reset, a timeout: botocore's transport errors) counted as the message's fault
    from reference.envelope import KmsEnvelopeCipher
    from reference.errors import DecryptionError

    orig = KmsEnvelopeCipher.open

    def open_(self: KmsEnvelopeCipher, sealed: str, **kw: Any) -> str:
        try:
            return orig(self, sealed, **kw)
        except TransportError as exc:
            if isinstance(exc.__cause__, BotoCoreError):
                raise DecryptionError(f"envelope cannot be opened: {exc}") from exc
            raise

    return [mock.patch.object(KmsEnvelopeCipher, "open", open_)]


def _sealed_contradiction_is_decryption_error() -> list[Any]:
    # the v1.3 section 5 step 5 reading: on an encrypted bus, a body that opened but contradicts its
    # attributes is reported as DecryptionError (v1.4 decode rule 7: DecodeError)
    from reference.errors import DecryptionError

    orig = SqsListener._decode

    def _decode(self: SqsListener, m: Any, attrs: Any) -> Any:
        try:
            return orig(self, m, attrs)
        except DecodeError as exc:
            if attrs.get("Encryption") is not None and "contradicts" in str(exc):
                raise DecryptionError(str(exc)) from exc
            raise

    return [mock.patch.object(SqsListener, "_decode", _decode)]


def _type_checked_after_envelope() -> list[Any]:
    # the registered type judged only after the envelope is opened (v1.3's rule order read
    # literally): a sealed message whose CommandType attribute names an unregistered type is a
    # DecryptionError when its seal no longer opens (v1.4 decode rule 2: UnknownMessageType first)
    from reference.errors import DecryptionError, UnknownMessageType

    orig = SqsListener._decode

    def _decode(self: SqsListener, m: Any, attrs: Any) -> Any:
        try:
            return orig(self, m, attrs)
        except UnknownMessageType:
            event_id, entity_id = attrs.get("EventId"), attrs.get("EntityId")
            if self.cipher is None or attrs.get("Encryption") is None or not event_id or not entity_id:
                raise
            try:
                self.cipher.open(
                    str(m.get("Body", "")),
                    message_id=event_id,
                    entity_id=entity_id,
                    message_type=str(attrs.get("CommandType") or attrs.get("EventType") or ""),
                    destinations=self.destinations,
                )
            except DecryptionError:
                raise
            except Exception as exc:
                raise DecryptionError(f"envelope cannot be opened: {exc}") from exc
            raise

    return [mock.patch.object(SqsListener, "_decode", _decode)]


def _ttl_shorter_than_retention() -> list[Any]:
    orig = BusOptions.__post_init__

    def __post_init__(self: BusOptions) -> None:
        object.__setattr__(self, "idempotency_ttl_seconds", 24 * 3600.0)  # SourceFlow's 24 h
        orig(self)

    return [
        mock.patch.object(BusOptions, "__post_init__", __post_init__),
        mock.patch("reference.config.check_ttl_outlives_retention", lambda options, longest=None: None),  # noqa: PT008
    ]


def _unvalidated_group_id() -> list[Any]:
    # ids are only checked to be strings: an entity id no MessageGroupId can carry gets through
    return [mock.patch("reference.messages._check_id", lambda value, where: value)]


def _unstable_event_dedup_id() -> list[Any]:
    orig_entry = SnsEventDispatcher._entry

    def _entry(self: SnsEventDispatcher, message: Message, destination: str) -> dict[str, Any]:
        # the event id in the body and attributes stays derived; only the SNS deduplication id is
        # fresh per publish, so a redelivered command's re-publish is never deduplicated
        entry = orig_entry(self, message, destination)
        if "MessageDeduplicationId" in entry:
            entry["MessageDeduplicationId"] = secrets.token_hex(16)
        return entry

    return [mock.patch.object(SnsEventDispatcher, "_entry", _entry)]


# ------------------------------------------------------------------ telemetry, health, cleanup
def _producer_span_missing() -> list[Any]:
    def _start_span(self: _Dispatcher, message: Message, destination: str, parent: Any = None) -> Any:
        # no span of its own: the wire's traceparent names whatever span the caller had current
        return trace.NonRecordingSpan(trace.get_current_span(parent).get_span_context())

    return [mock.patch.object(_Dispatcher, "_start_span", _start_span)]


def _traceparent_lost() -> list[Any]:
    orig = message_attributes

    def attributes(message: Any, *, encrypted: bool, traceparent: str | None) -> dict[str, Any]:
        return orig(message, encrypted=encrypted, traceparent=None)  # never written on the wire

    return [mock.patch("reference.dispatchers.message_attributes", attributes)]


def _outbox_span_orphaned() -> list[Any]:
    orig = SqsListener._publish

    def _publish(self: SqsListener, outboxes: list[Sequence[Message]], parents: list[Any]) -> list[Any]:
        # the outbox goes out after the processing span ended, without its context: a new trace
        return orig(self, outboxes, [None] * len(outboxes))

    return [mock.patch.object(SqsListener, "_publish", _publish)]


def _event_metrics_missing() -> list[Any]:
    def _metric(self: SnsEventDispatcher, ok: bool, destination: str, name: str, ms: float) -> None:
        return None  # no event.published / publish_duration / publish_error

    return [mock.patch.object(SnsEventDispatcher, "_metric", _metric)]


def _health_ignores_missing_resources() -> list[Any]:
    orig = health.check_health

    def check_health(*args: Any, **kwargs: Any) -> health.HealthReport:
        # only "the endpoint answered" counts: a queue, DLQ or topic that does not exist is ok
        report = orig(*args, **kwargs)
        for name, value in list(report.checks.items()):
            if name.startswith(("sqs:", "sns:")) and ("NonExistent" in value or "NotFound" in value):
                report.checks[name] = "ok"
        return report

    return [mock.patch("reference.health.check_health", check_health)]


def _cleanup_deletes_unexpired() -> list[Any]:
    # the sweep keys on the status only: every finished record goes, expired or not
    def memory(self: InMemoryStorage, now: float, *, abandoned_after: float, limit: int | None = None) -> int:
        with self._lock:
            dead = [k for k, r in self._m.records.items() if r.status != IN_PROGRESS][:limit]
            for k in dead:
                del self._m.records[k]
            return len(dead)

    def sql(self: SqlStorage, now: float, *, abandoned_after: float, limit: int | None = None) -> int:
        t = self.idempotency
        with self._guard(), self.engine.begin() as c:
            return int(c.execute(delete(t).where(t.c.status != IN_PROGRESS)).rowcount)

    return [
        mock.patch.object(InMemoryStorage, "cleanup", memory),
        mock.patch.object(SqlStorage, "cleanup", sql),
    ]


def _cleanup_deletes_leased() -> list[Any]:
    # expiry checked, but an IN_PROGRESS record's lease ignored: a claim held right now goes
    def memory(self: InMemoryStorage, now: float, *, abandoned_after: float, limit: int | None = None) -> int:
        with self._lock:
            dead = [k for k, r in self._m.records.items() if r.status == IN_PROGRESS or r.expires_at <= now][
                :limit
            ]
            for k in dead:
                del self._m.records[k]
            return len(dead)

    def sql(self: SqlStorage, now: float, *, abandoned_after: float, limit: int | None = None) -> int:
        t = self.idempotency
        with self._guard(), self.engine.begin() as c:
            rule = or_(t.c.status == IN_PROGRESS, t.c.expires_at <= now)
            return int(c.execute(delete(t).where(rule)).rowcount)

    return [
        mock.patch.object(InMemoryStorage, "cleanup", memory),
        mock.patch.object(SqlStorage, "cleanup", sql),
    ]


def _cleanup_never_scheduled() -> list[Any]:
    def run(self: IdempotencyCleaner, stop: threading.Event) -> None:
        while stop.wait(self.interval):  # inverted: wait() is False on timeout, so it never sweeps
            self.run_due(stop)

    return [mock.patch.object(IdempotencyCleaner, "run", run)]


def _data_key_limits_without(bound: str) -> list[Any]:
    """The data-key cache forgets one of its bounds (``messages``, ``age`` or ``bytes``)."""

    def within_limits(self: DataKeyCache, entry: CachedKey, nbytes: int) -> bool:
        lim = self.limits
        return (
            (bound == "age" or self.clock() - entry.created < lim.max_age_seconds)
            and (bound == "messages" or entry.messages + 1 <= lim.max_messages)
            and (bound == "bytes" or entry.bytes + nbytes <= lim.max_bytes)
        )

    return [mock.patch.object(DataKeyCache, "within_limits", within_limits)]


def _data_key_cache_without_context() -> list[Any]:
    # cache entries keyed by the KMS key (and EDK) only: a key issued for destination A seals B
    return [mock.patch("reference.envelope._context_key", return_value=())]


def _data_key_not_wiped() -> list[Any]:
    return [mock.patch.object(CachedKey, "wipe", lambda self: None)]  # noqa: PT008


def _data_key_past_2_32() -> list[Any]:
    def post_init(self: CacheLimits) -> None:
        if not self.max_messages >= 1:
            raise ValueError("max_messages")

    return [mock.patch.object(CacheLimits, "__post_init__", post_init)]


ORDER = P + "test_ordering.py"
ONCE = P + "test_exactly_once.py"


# -- IAM role policies (reference.iam) and the runtime's resolve-only start -----------------------
def _edit_policies(edit: Callable[[iam.Role, dict[str, Any]], None]) -> list[Any]:
    """Wrap :func:`reference.iam.role_policies` so ``edit(role, statement)`` rewrites each statement."""
    original = iam.role_policies

    def role_policies(config: Any, **kwargs: Any) -> dict[iam.Role, dict[str, Any]]:
        policies = original(config, **kwargs)
        for role, policy in policies.items():
            for statement in policy["Statement"]:
                edit(role, statement)
        return policies

    return [mock.patch.object(iam, "role_policies", role_policies)]


def _iam_extra_action() -> list[Any]:
    def edit(role: iam.Role, statement: dict[str, Any]) -> None:
        if role is iam.Role.PRODUCER and statement["Sid"] == "SendCommands":
            statement["Action"] = sorted({*statement["Action"], "sqs:ReceiveMessage"})

    return _edit_policies(edit)


def _iam_missing_action() -> list[Any]:
    def edit(role: iam.Role, statement: dict[str, Any]) -> None:
        if role is iam.Role.COMMAND_CONSUMER:
            statement["Action"] = [a for a in statement["Action"] if a != "sqs:ChangeMessageVisibility"]

    return _edit_policies(edit)


def _iam_no_context_condition() -> list[Any]:
    def edit(role: iam.Role, statement: dict[str, Any]) -> None:
        if any(a in ("kms:GenerateDataKey", "kms:Decrypt") for a in statement["Action"]):
            statement.pop("Condition", None)

    return _edit_policies(edit)


def _iam_subscribe_any_endpoint() -> list[Any]:
    def edit(role: iam.Role, statement: dict[str, Any]) -> None:
        if statement["Action"] == ["sns:Subscribe"]:
            statement.pop("Condition", None)

    return _edit_policies(edit)


def _iam_wildcard_account() -> list[Any]:
    return [mock.patch.object(iam, "check_account", lambda account: account or "*")]


def _worker_bootstraps_anyway() -> list[Any]:
    return [mock.patch.object(Bootstrapper, "resolve", Bootstrapper.run)]


DEDUP = ONCE + "::test_fifo_deduplication_is_effective"
LOSS = P + "test_no_loss.py"
CRYPTO = P + "test_encryption.py"
DK_CACHE = P + "test_data_key_cache.py::"
REPLAY = P + "test_replay.py"
READS = P + "test_reads.py"
ONCE_EFFECT = ONCE + "::test_exactly_once_effect"
STATEFUL = P + "test_stateful.py"
SERIAL = P + "test_serialization.py"
HOSTILE = P + "test_hostile.py::test_catalog_kind"
HOSTILE_LS = S + "test_hostile.py::test_catalog_kinds_between_valid_orders[plaintext]"
HOSTILE_GEN = P + "test_hostile.py::test_hostile_messages_between_valid_orders"
OUTAGES = P + "test_outages.py"
CONCURRENCY = P + "test_concurrency.py"
OUT_HEARTBEAT = OUTAGES + "::test_heartbeat_survives_a_failing_beat"
HOSTILE_DECODE = P + "test_hostile_decode.py"
H_DECODE = (
    HOSTILE_DECODE + "::test_hostile_message_is_dead_lettered_with_its_reason_and_valid_ones_apply_once"
)
H_KMS = HOSTILE_DECODE + "::test_a_kms_outage_is_never_blamed_on_the_messages"
H_TTL = HOSTILE_DECODE + "::test_a_copy_within_queue_plus_dlq_retention_is_still_a_duplicate"

TELEMETRY = P + "test_telemetry.py"
TRACE = TELEMETRY + "::test_one_order_is_one_trace_from_the_client_command_to_the_view_update"
METRICS = TELEMETRY + "::test_every_seed_metric_is_emitted"
HEALTH = TELEMETRY + "::test_health_check_on_the_simulator_names_what_is_missing"
CLEANUP = P + "test_idempotency_cleanup.py"
CLEANUP_RULE = CLEANUP + "::test_a_sweep_deletes_exactly_the_expired_and_abandoned_records"
CLEANUP_IN_FLIGHT = CLEANUP + "::test_a_sweep_during_processing_never_touches_the_message_in_flight"
CLEANUP_SCHEDULED = CLEANUP + "::test_the_worker_schedules_cleanup_on_its_own_thread"

LIFE_PLAIN = S + "test_lifecycle.py::test_order_lifecycle[plaintext]"
LIFE_KMS = S + "test_lifecycle.py::test_order_lifecycle[kms]"
CONC = S + "test_concurrency.py"
STD_SQLITE = S + "test_standard_queue.py::test_standard_queue_sqlite"
STD_PG = S + "test_standard_queue.py::test_standard_queue_postgres"
BOOT = S + "test_bootstrap.py"
DEAD_POISON = S + "test_dead_letters.py::test_poison_and_business_dead_letters"
DEAD_REPLAY = S + "test_dead_letters.py::test_dlq_replay_keeps_group_order"
DEAD_REPLAY_FIXED = S + "test_dead_letters.py::test_replay_of_fixed_dead_letters_of_one_entity"
DLQ_REPLAY = P + "test_dlq_replay.py"
PARTNERS = S + "test_partners.py"
CH_DUP = S + "test_chaos.py::test_duplicate_injection_fifo"
CH_KILL = S + "test_chaos.py::test_sigkill_and_crash_between_effect_and_delete"
CH_SIGTERM = S + "test_chaos.py::test_sigterm_drains_in_flight"
CH_VT_NO_HB = S + "test_chaos.py::test_visibility_expiry[no-heartbeat]"
CH_VT_HB = S + "test_chaos.py::test_visibility_expiry[heartbeat]"
#: the long chaos set (``nox -s chaos`` only): 1,000 orders, 120 seeded SIGKILLs
CH_LONG = S + "test_chaos_long.py::test_sigkill_storm_1000_orders"
RESTART = S + "test_localstack_restart.py::test_localstack_restart_is_detected_and_reported"
OUT_KMS = S + "test_outages.py::test_kms_key_disabled_for_10_vt"
OUT_STORE = S + "test_outages.py::test_store_down_for_10_vt"
OUT_SQS = S + "test_outages.py::test_sqs_unreachable_for_10_vt"
PRODUCERS = P + "test_producers.py"
PRODUCERS_LS = S + "test_producers.py::test_two_producer_processes_one_restarted"
PRODUCERS_OUTBOX = PRODUCERS + "::test_refusals_and_send_failures_never_block_an_entity"
FIDELITY_SNS_KMS = S + "test_fidelity.py::test_sns_and_kms_agree_with_localstack"
FIDELITY_WINDOW = S + "test_fidelity.py::test_dedup_window_end_agrees_with_localstack"
#: the load test in Locust's distributed mode (2 Locust worker processes on loopback)
LOAD_DISTRIBUTED = "tests/loadtests/test_load_distributed.py::test_distributed_run_is_clean"
PRODUCERS_ALLOCATE = PRODUCERS + "::test_concurrent_producers_never_share_a_number"
IAM_ROLES = P + "test_iam.py::test_each_role_is_allowed_what_it_needs_and_denied_the_rest"
IAM_ACCOUNT = P + "test_iam.py::test_policies_need_a_real_account_id"
IAM_LS = S + "test_iam.py::test_every_call_allowed_and_every_grant_used"
DETECT = P + "test_detection.py::test_failure_is_detected"
DETECT_BACKLOG = P + "test_detection.py::test_backlog_counts_visible_and_in_flight"
DETECT_ERRORS = P + "test_detection.py::test_error_path_is_the_sound_version"
DETECT_LS = S + "test_detection.py::"

MUTANTS: dict[str, Mutant] = {
    m.name: m
    for m in (
        Mutant(
            "fifo-parallel-group",
            "processes a FIFO group's messages in parallel / out of order, without the sequence-number wait",
            (ORDER,),
            ("nonmonotonic", "skip", "unexpected-business-dead-letter"),
            _fifo_parallel_group,
            scenarios=(LIFE_PLAIN, DEAD_REPLAY, CONC),
        ),
        Mutant(
            "process-local-entity-lock",
            "the idempotency claim and its fence are a lock in the store client's process memory: "
            "correct with one process, two processes both claim and both commit",
            (CONCURRENCY + "::test_processes_sharing_a_store_apply_each_effect_once",),
            ("duplicate-projection", "replay-divergence", "unexpected-business-dead-letter"),
            _process_local_entity_lock,
        ),
        Mutant(
            "heartbeat-holds-given-up",
            "the heartbeat keeps extending messages the poll gave up until the whole poll ends: a FIFO "
            "group's head waits behind a slow handler while its successor, in flight elsewhere, is "
            "redelivered and handled without it",
            (CONCURRENCY + "::test_processes_sharing_a_store_apply_each_effect_once",),
            ("unexpected-business-dead-letter", "skip", "nonmonotonic"),
            _heartbeat_holds_given_up,
        ),
        Mutant(
            "committed-claim-kept",
            "a command keeps its claim's token after the commit: the heartbeat's lease extend fails on "
            "the COMPLETED record and drops the message while it waits for its poll's delete",
            (OUTAGES + "::test_a_finished_command_stays_under_the_heartbeat_until_its_poll_deletes_it",),
            (),
            _committed_claim_kept,
            scenarios=(CH_VT_HB,),
        ),
        Mutant(
            "delete-before-handle",
            "deletes the message before handling it (a crash loses it)",
            (LOSS,),
            ("lost",),
            _delete_before_handle,
            scenarios=(CH_KILL, CH_VT_NO_HB, CH_LONG),
        ),
        Mutant(
            "check-then-mark",
            "idempotency check, then mark at commit: not one atomic conditional write",
            (ONCE,),
            ("duplicate-projection", "unexpected-business-dead-letter"),
            _check_then_mark,
            scenarios=(STD_SQLITE,),
        ),  # STD_PG: race-dependent (killed once, survived once)
        Mutant(
            "no-idempotency",
            "no idempotency store: every delivery is handled",
            (ONCE,),
            ("duplicate-projection", "unexpected-business-dead-letter"),
            _no_idempotency,
            scenarios=(CH_DUP,),
        ),
        Mutant(
            "idempotency-on-message-id",
            "idempotency key from the SQS MessageId instead of the command id",
            (ONCE,),
            ("duplicate-projection", "unexpected-business-dead-letter"),
            _idempotency_on_message_id,
            scenarios=(STD_SQLITE, PARTNERS),
        ),
        Mutant(
            "no-aad",
            "AAD/encryption context not bound: a ciphertext moved to another destination decrypts",
            (CRYPTO, HOSTILE_GEN, HOSTILE + "[swapped_aad-encrypted-fifo]"),
            ("integrity-breach",),
            _no_aad,
        ),
        Mutant(
            "no-redrive",
            "no redrive policy and the listener never dead-letters",
            (LOSS, HOSTILE_GEN, HOSTILE + "[unknown_type-plaintext-fifo]"),
            ("poison-not-dead-lettered", "no-drain"),
            _no_redrive,
            scenarios=(BOOT,),
        ),
        Mutant(
            "replay-persists",
            "replay appends the replayed commands to the command store",
            (REPLAY,),
            ("replay-divergence",),
            _replay_persists,
        ),
        Mutant(
            "unconditional-row-write",
            "entity/view rows written blindly: concurrent projections lose updates",
            (REPLAY,),
            ("replay-divergence",),
            _unconditional_row_write,
            scenarios=(CONC,),
        ),
        # contract v1.3: only the reads see it (the same event ids are re-published, nothing new)
        Mutant(
            "duplicate-reapplies-row",
            "a recognised duplicate re-applies the command to the entity row (its command log) before "
            "re-publishing the recorded events",
            # the simulator's properties with reads (SimConfig.reads: exactly-once, the stateful
            # machine) see it through read_state; the simulator's replay property compares the live
            # entity row with the rebuilt one (the gate's replay check compares event identities
            # only, so through the gate only reads see it)
            (READS, ONCE_EFFECT, STATEFUL, REPLAY),
            ("double-effect", "replay-divergence"),
            _duplicate_reapplies_row,
        ),
        # unfenced-commit: no scenario kills it on SqlStorage -- the pre-commit heartbeat
        # (ChangeMessageVisibility with a stale receipt, then a fenced extend()) stops a superseded
        # worker before it reaches the commit; observed surviving test_visibility_expiry[no-heartbeat]
        Mutant(
            "unfenced-commit",
            "the effect commit ignores the claim's fencing token",
            (ONCE,),
            ("duplicate-projection", "unexpected-business-dead-letter"),
            _unfenced_commit,
        ),
        Mutant(
            "no-json-depth-limit",
            "no nesting limit before parsing: a 17-deep body is accepted (and a deep one only survives "
            "because the parser's RecursionError is caught)",
            (HOSTILE_GEN, HOSTILE + "[depth_17-plaintext-fifo]", HOSTILE + "[depth_17-encrypted-standard]"),
            ("poison-not-dead-lettered", "unexpected"),
            _no_json_depth_limit,
        ),
        Mutant(
            "loose-envelope-version",
            "the envelope's Version is compared with ==, so true and 1.0 pass as version 1",
            (
                HOSTILE + "[env_version_true-encrypted-fifo]",
                HOSTILE + "[env_version_float-encrypted-standard]",
            ),
            ("poison-not-dead-lettered", "unexpected"),
            _loose_envelope_version,
        ),
        Mutant(
            "command-type-wins",
            "a message with both CommandType and EventType is taken as a command (EventType ignored)",
            (
                HOSTILE + "[both_type_attributes-plaintext-fifo]",
                HOSTILE + "[both_type_attributes-encrypted-standard]",
            ),
            ("poison-not-dead-lettered", "unexpected"),
            _command_type_wins,
        ),
        Mutant(
            "duplicate-keys-accepted",
            "duplicate JSON object keys are accepted (the last one wins)",
            (HOSTILE_GEN, HOSTILE + "[duplicate_payload_key-plaintext-fifo]"),
            ("poison-not-dead-lettered", "unexpected"),
            _duplicate_keys_accepted,
        ),
        Mutant(
            "poison-wrong-reason",
            "every poison message is dead-lettered with the reason code DecodeError",
            (
                HOSTILE_GEN,
                HOSTILE + "[missing_attribute-plaintext-fifo]",
                HOSTILE + "[tampered-encrypted-standard]",
                HOSTILE + "[oversized-plaintext-fifo]",
            ),
            ("wrong-dead-letter-reason",),
            _poison_wrong_reason,
            scenarios=(HOSTILE_LS,),
        ),
        Mutant(
            "strict-unknown-fields",
            "the decoder refuses unknown top-level fields (valid newer messages are dead-lettered)",
            (
                HOSTILE_GEN,
                HOSTILE + "[unknown_top_field-plaintext-fifo]",
                HOSTILE + "[depth_3_extra-encrypted-standard]",
            ),
            ("lost", "valid-dead-lettered"),
            _strict_unknown_fields,
        ),
        Mutant(
            "no-poison-dlq",
            "poison is deleted silently instead of forwarded to the DLQ with a reason",
            (
                LOSS,
                HOSTILE_GEN,
                HOSTILE + "[bad_json-plaintext-fifo]",
                HOSTILE + "[missing_attribute-encrypted-standard]",
            ),
            ("poison-not-dead-lettered",),
            _no_poison_dlq,
            scenarios=(DEAD_POISON, HOSTILE_LS),
        ),
        # process lifecycle, transport outages, heartbeats against real visibility timers and tracing
        # are not modelled by the simulated properties: killers=() keeps those scenario-only mutants
        # out of the properties suite (``flowgate mutants --suite scenarios`` runs them)
        Mutant(
            "sigterm-abandons-batch",
            "SIGTERM exits the worker at once: the batch in hand is left unfinished",
            (),
            ("scenario:torn-batch",),
            _sigterm_abandons_batch,
            scenarios=(CH_SIGTERM,),
        ),
        Mutant(
            "poll-loop-dies-on-error",
            "the listener's run loop ends on the first transport error "
            "(a LocalStack/SQS outage stops the worker)",
            (),
            ("scenario:worker-died-in-outage",),
            _poll_loop_dies_on_error,
            scenarios=(RESTART,),
        ),
        Mutant(
            "plaintext-on-encrypted-bus",
            "a configured KMS key is never wired: dispatchers send plaintext (and listeners accept it)",
            (CRYPTO,),
            ("unencrypted-wire",),
            _plaintext_on_encrypted_bus,
            scenarios=(LIFE_KMS,),
        ),
        Mutant(
            "drops-correlation-id",
            "events get a correlation id of their own instead of the command's",
            (TRACE,),
            ("scenario:correlation-id",),
            _drops_correlation_id,
            scenarios=(LIFE_PLAIN,),
        ),
        Mutant(
            "wire-format-drift",
            "the wire body writes metadata.sequence_no instead of the contract's sequenceNo",
            (SERIAL,),
            ("schema", "round-trip"),
            _wire_format_drift,
        ),
        Mutant(
            "drops-causation-id",
            "events do not carry the eventId of the command that caused them",
            (),
            ("scenario:causation-id",),
            _drops_causation_id,
            scenarios=(LIFE_PLAIN,),
        ),
        Mutant(
            "drops-correlation-attribute",
            "commands and events are sent without the CorrelationId attribute",
            (TRACE,),
            ("scenario:correlation-id",),
            _drops_correlation_attribute,
            scenarios=(LIFE_PLAIN,),
        ),
        Mutant(
            "no-breaker",
            "no circuit breaker: the listener keeps receiving while a dependency is down",
            (OUTAGES,),
            ("outage-receive-storm", "outage-not-reported", "valid-dead-lettered"),
            _no_breaker,
            scenarios=(OUT_KMS, OUT_STORE),
        ),
        Mutant(
            "store-error-escapes-poll",
            "a store error in a lease extension, or a failed ReceiveMessage, escapes the poll",
            (OUTAGES,),
            ("poll-escaped",),
            _store_error_escapes_poll,
            scenarios=(OUT_SQS,),
        ),
        Mutant(
            "heartbeat-dies-on-error",
            "the heartbeat thread dies on the first failing beat and is never restarted",
            (OUT_HEARTBEAT,),
            ("heartbeat-dead",),
            _heartbeat_dies_on_error,
        ),
        Mutant(
            "redrive-without-headroom",
            "the SQS redrive maxReceiveCount equals the listener's poison threshold",
            (OUTAGES,),
            ("valid-dead-lettered", "dead-letter-without-reason"),
            _redrive_without_headroom,
        ),
        Mutant(
            "recursion-escapes-poll",
            "a deeply nested body raises RecursionError out of the poll: its whole batch is redelivered "
            "until the SQS redrive moves it, valid messages included",
            (
                H_DECODE,
                HOSTILE_GEN,
                HOSTILE + "[deep_body-plaintext-fifo]",
                HOSTILE + "[deep_envelope-encrypted-standard]",
            ),
            ("dead-letter-wrong-reason", "lost"),
            _recursion_escapes_poll,
            scenarios=(HOSTILE_LS,),
        ),
        Mutant(
            "id-reuse-is-duplicate",
            "idempotency keyed on the id alone: a completed command's id with other content is a duplicate",
            (
                H_DECODE,
                HOSTILE_GEN,
                HOSTILE + "[reused_event_id_applied-plaintext-fifo]",
                HOSTILE + "[reused_event_id_pending-encrypted-fifo]",
            ),
            ("poison-not-dead-lettered",),
            _id_reuse_is_duplicate,
            scenarios=(HOSTILE_LS,),
        ),
        Mutant(
            "event-on-command-queue-projected",
            "listeners ignore their queue's role: an event sent to a command queue is projected",
            (
                H_DECODE,
                HOSTILE_GEN,
                HOSTILE + "[event_on_command_queue-plaintext-fifo]",
                HOSTILE + "[command_on_view_queue-encrypted-standard]",
            ),
            ("poison-not-dead-lettered",),
            _event_on_command_queue_projected,
            scenarios=(HOSTILE_LS,),
        ),
        Mutant(
            "unvalidated-group-id",
            "entity/event ids are not checked against the SQS id rules: an entity id no MessageGroupId "
            "can carry commits its effect, then every publish of its events fails",
            (
                H_DECODE,
                HOSTILE_GEN,
                HOSTILE + "[entity_id_spaces-plaintext-fifo]",
                HOSTILE + "[event_id_too_long-encrypted-standard]",
            ),
            ("poison-not-dead-lettered", "unexpected", "dead-letter-wrong-reason"),
            _unvalidated_group_id,
            scenarios=(HOSTILE_LS,),
        ),
        Mutant(
            "kms-disabled-is-poison",
            "a disabled / pending-deletion / inaccessible KMS key is treated as the message's fault (poison)",
            (H_KMS,),
            ("lost",),
            _kms_disabled_is_poison,
        ),
        # contract v1.4: KMS transport errors are transient; the precedence of the decode checks
        Mutant(
            "kms-transport-is-poison",
            "KMS unreachable (connection refused or reset, a timeout) is treated as the message's fault: "
            "DecryptionError instead of a transient failure",
            (HOSTILE_DECODE + "::test_kms_transport_errors_are_transient_never_poison",),
            ("lost",),
            _kms_transport_is_poison,
        ),
        Mutant(
            "sealed-contradiction-is-decryption-error",
            "on an encrypted bus, a body that opened and contradicts its attributes is dead-lettered as "
            "DecryptionError instead of DecodeError",
            (
                HOSTILE + "[contradict_name_sealed-encrypted-fifo]",
                HOSTILE + "[contradict_SequenceNo-encrypted-fifo]",
            ),
            ("wrong-dead-letter-reason",),
            _sealed_contradiction_is_decryption_error,
        ),
        Mutant(
            "type-checked-after-envelope",
            "the registered type is judged only after the envelope opens: a sealed message whose "
            "CommandType attribute names an unregistered type is dead-lettered as DecryptionError",
            (HOSTILE + "[unknown_type_after_sealing-encrypted-fifo]",),
            ("wrong-dead-letter-reason",),
            _type_checked_after_envelope,
        ),
        Mutant(
            "data-key-cache-ignores-message-bound",
            "the data-key cache reuses a key past max_messages (towards the 2^32 random-nonce limit)",
            (
                DK_CACHE + "test_no_key_seals_past_its_message_bound",
                DK_CACHE + "test_open_cache_is_bounded_and_keyed_by_context",
            ),
            ("data-key-over-message-bound",),
            lambda: _data_key_limits_without("messages"),
        ),
        Mutant(
            "data-key-cache-ignores-age-bound",
            "the data-key cache reuses a key past max_age (a disabled key or revoked grant unnoticed)",
            (
                DK_CACHE + "test_no_key_seals_past_its_age",
                DK_CACHE + "test_open_cache_is_bounded_and_keyed_by_context",
            ),
            ("data-key-over-age",),
            lambda: _data_key_limits_without("age"),
        ),
        Mutant(
            "data-key-cache-ignores-byte-bound",
            "the data-key cache reuses a key past max_bytes",
            (DK_CACHE + "test_no_key_seals_past_its_byte_bound",),
            ("data-key-over-byte-bound",),
            lambda: _data_key_limits_without("bytes"),
        ),
        Mutant(
            "data-key-cache-without-context",
            "data-key cache entries keyed without the encryption context: a key KMS issued for "
            "destination A seals messages for B (and the open cache answers for a context KMS never saw)",
            (
                DK_CACHE + "test_a_key_serves_one_destination_and_opens_without_a_cache",
                DK_CACHE + "test_open_cache_is_bounded_and_keyed_by_context",
            ),
            ("data-key-across-destinations",),
            _data_key_cache_without_context,
        ),
        Mutant(
            "data-key-not-wiped",
            "evicted (expired, exhausted, displaced, cleared) plaintext data keys are not zeroed",
            (DK_CACHE + "test_evicted_keys_are_wiped",),
            ("data-key-not-wiped",),
            _data_key_not_wiped,
        ),
        Mutant(
            "data-key-past-2-32",
            "the data-key cache accepts max_messages above 2^32 (AES-GCM random 96-bit nonces)",
            (DK_CACHE + "test_no_key_can_be_configured_past_2_32_messages",),
            (),
            _data_key_past_2_32,
        ),
        Mutant(
            "ttl-shorter-than-retention",
            "idempotency records expire after 24 h while a copy of the message lives 14 + 14 days",
            (H_TTL,),
            ("unexpected-business-dead-letter",),
            _ttl_shorter_than_retention,
        ),
        # issue 19: every message resolved; DLQ replay of an entity's dead letters
        Mutant(
            "poison-parked",
            "poison is forwarded to the DLQ with its reason, but the original is parked (visibility 12 h) "
            "instead of deleted: it comes back long after the run",
            (LOSS, HOSTILE_GEN),
            ("unresolved",),
            _poison_parked,
        ),
        Mutant(
            "dead-letter-completes-key",
            "a business dead letter completes the command's idempotency key: the command replayed after "
            "its cause was fixed is acknowledged as a duplicate and never takes effect",
            (DLQ_REPLAY,),
            ("lost",),
            _dead_letter_completes_key,
            scenarios=(DEAD_REPLAY_FIXED,),
        ),
        Mutant(
            "replay-reversed",
            "the DLQ replay tool sends each batch of dead letters back last first (not in sequence order)",
            (DLQ_REPLAY,),
            ("lost", "unexpected-business-dead-letter", "nonmonotonic", "skip"),
            _replay_reversed,
            scenarios=(DEAD_REPLAY_FIXED, DEAD_REPLAY),
        ),
        Mutant(
            "unstable-event-dedup-id",
            "events published with a random MessageDeduplicationId (the event id stays derived): "
            "a re-publish is never deduplicated by the FIFO topic",
            (DEDUP,),
            ("dedup-not-effective",),
            _unstable_event_dedup_id,
            scenarios=(CH_DUP,),
        ),
        Mutant(
            "sequencer-from-applied",
            "the producer's sequencer lives in its memory and starts after the store's last applied "
            "number: a second producer, or a restarted one, re-assigns numbers of commands in flight",
            (PRODUCERS,),
            ("unexpected-business-dead-letter",),
            _sequencer_from_applied,
            scenarios=(PRODUCERS_LS,),
        ),
        Mutant(
            "unsent-not-resent",
            "a command recorded by a producer that died before sending it is never sent (neither by "
            "the restarted producer nor by the next publish to its entity)",
            (PRODUCERS,),
            ("lost", "unexpected-business-dead-letter"),
            _unsent_not_resent,
        ),
        Mutant(
            "outbox-own-first",
            "a publish sends its own command before the older unsent commands of its entity (left by a "
            "producer that died after recording them): the queue holds a number before a lower one",
            (PRODUCERS,),
            ("unexpected-business-dead-letter",),
            _outbox_own_first,
        ),
        Mutant(
            "refusal-blocks-outbox",
            "a command a dispatcher refused (its own fault) stays in the producer outbox: every later "
            "publish to its entity tries it first and is refused with it",
            (PRODUCERS_OUTBOX,),
            ("lost",),
            lambda: _outbox_errors(refusal_blocks=True),
        ),
        Mutant(
            "send-failure-drops-command",
            "a command whose send failed (transport) is dropped from the producer outbox: never sent",
            (PRODUCERS_OUTBOX,),
            ("lost",),
            lambda: _outbox_errors(refusal_blocks=False),
        ),
        Mutant(
            "allocate-read-then-write",
            "the store's sequence allocation reads the counter, then writes it + 1 in a second step: "
            "two producers allocating at once get the same number",
            (PRODUCERS_ALLOCATE,),
            ("nonmonotonic",),
            _allocate_read_then_write,
        ),
        # telemetry (doc 000 names), the health check, scheduled idempotency cleanup
        Mutant(
            "producer-span-missing",
            "the dispatchers emit no AwsSqsCommandDispatcher.Dispatch / AwsSnsEventDispatcher.Dispatch "
            "span: the wire's traceparent names the caller's span",
            (TRACE, METRICS),
            ("missing-span",),
            _producer_span_missing,
        ),
        Mutant(
            "traceparent-lost",
            "the traceparent attribute is never written on the wire: every consumer starts a new trace",
            (TRACE,),
            ("broken-trace",),
            _traceparent_lost,
        ),
        Mutant(
            "outbox-span-orphaned",
            "a command's events are published without its processing span's context (after that span "
            "ended): the event starts a new trace",
            (TRACE,),
            ("broken-trace",),
            _outbox_span_orphaned,
        ),
        Mutant(
            "event-metrics-missing",
            "the SNS dispatcher records no sourceflow.aws.event.* metric",
            (METRICS,),
            ("missing-metric",),
            _event_metrics_missing,
        ),
        Mutant(
            "health-ignores-missing-resources",
            "the health check only asks whether SQS/SNS answer: a missing queue, DLQ or topic reports ok",
            (HEALTH,),
            ("health-ok-while-missing",),
            _health_ignores_missing_resources,
        ),
        Mutant(
            "cleanup-deletes-unexpired",
            "the idempotency cleanup deletes every completed record, expired or not",
            # the simulated workers sweep too: a producer's resend within queue + DLQ retention
            # then applies a second time (H_TTL)
            (CLEANUP_RULE, CLEANUP_IN_FLIGHT, H_TTL),
            ("deleted-unexpired", "unexpected-business-dead-letter"),
            _cleanup_deletes_unexpired,
        ),
        Mutant(
            "cleanup-deletes-leased",
            "the idempotency cleanup deletes IN_PROGRESS claims whatever their lease (a message in flight "
            "loses its claim and its commit fails)",
            (CLEANUP_RULE, CLEANUP_IN_FLIGHT),
            ("deleted-in-flight",),
            _cleanup_deletes_leased,
        ),
        Mutant(
            "cleanup-never-scheduled",
            "the worker's cleanup loop has its wait inverted and never sweeps: the store grows forever",
            (CLEANUP_SCHEDULED,),
            ("never-swept",),
            _cleanup_never_scheduled,
        ),
        Mutant(
            "no-heartbeat",
            "never calls ChangeMessageVisibility nor extends the lease during slow handlers",
            (),
            ("scenario:taken-over-despite-heartbeat",),
            _no_heartbeat,
            scenarios=(CH_VT_HB,),
        ),
        Mutant(
            "iam-extra-action",
            "the producer's policy also grants sqs:ReceiveMessage on its command queues (more than it calls)",
            (IAM_ROLES,),
            (),
            _iam_extra_action,
            scenarios=(IAM_LS,),
        ),
        Mutant(
            "iam-missing-action",
            "the command consumer's policy lacks sqs:ChangeMessageVisibility (its heartbeat is refused)",
            (IAM_ROLES,),
            (),
            _iam_missing_action,
            scenarios=(IAM_LS,),
        ),
        Mutant(
            "iam-no-context-condition",
            "KMS data-key grants carry no kms:EncryptionContext condition: any role opens or seals any destination",
            (IAM_ROLES,),
            (),
            _iam_no_context_condition,
        ),
        Mutant(
            "iam-subscribe-any-endpoint",
            "the bootstrapper may sns:Subscribe any endpoint and protocol to the bus's topics",
            (IAM_ROLES,),
            (),
            _iam_subscribe_any_endpoint,
        ),
        Mutant(
            "iam-wildcard-account",
            "policies accept a wildcard (or any) account id instead of the caller's 12-digit account",
            (IAM_ACCOUNT,),
            (),
            _iam_wildcard_account,
        ),
        Mutant(
            "worker-bootstraps-anyway",
            "a worker started with --no-bootstrap provisions anyway (CreateQueue, SetQueueAttributes, "
            "Subscribe): a runtime role needs admin rights",
            (),
            ("scenario:iam-denied",),
            _worker_bootstraps_anyway,
            scenarios=(IAM_LS,),
        ),
        # the simulator's own mutants: killed by the differential test against LocalStack
        Mutant(
            "sim-fifo-topic-no-dedup",
            "the simulated SNS FIFO topic does not deduplicate and forwards each publish's own "
            "MessageId as MessageDeduplicationId: a duplicate publish reaches the subscribed FIFO queue",
            (),
            ("scenario:simulator-divergence",),
            _sim_fifo_topic_no_dedup,
            scenarios=(FIDELITY_SNS_KMS,),
            subject="simulator",
        ),
        Mutant(
            "sim-dedup-window-never-ends",
            "the simulated FIFO queues and topics never end the 5-minute deduplication window: the "
            "same id after 300 s is still dropped",
            (),
            ("scenario:simulator-divergence",),
            _sim_dedup_window_never_ends,
            scenarios=(FIDELITY_WINDOW,),
            subject="simulator",
        ),
        Mutant(
            "sim-decrypt-ignores-context",
            "the simulated KMS does not bind the encryption context: Decrypt with a wrong or missing "
            "context returns the data key",
            (),
            ("scenario:simulator-divergence",),
            _sim_decrypt_ignores_context,
            scenarios=(FIDELITY_SNS_KMS,),
            subject="simulator",
        ),
        Mutant(
            "sim-disabled-key-decrypts",
            "the simulated KMS Decrypt ignores the key's state: a disabled key (or one pending "
            "deletion) still decrypts",
            (),
            ("scenario:simulator-divergence",),
            _sim_disabled_key_decrypts,
            scenarios=(FIDELITY_SNS_KMS,),
            subject="simulator",
        ),
        # failure detection and the partner feed's error path (docs/operating.md)
        Mutant(
            "alarm-never-fires",
            "the alarm evaluator reports OK where it should enter ALARM",
            (DETECT,),
            ("alarm-not-fired",),
            detection_mutants.alarm_never_fires,
            scenarios=(DETECT_LS + "test_poison_flood",),
        ),
        Mutant(
            "alarm-never-clears",
            "an alarm in ALARM never returns to OK",
            (DETECT,),
            ("alarm-not-cleared",),
            detection_mutants.alarm_never_clears,
            scenarios=(DETECT_LS + "test_partner_sending_invalid_orders",),
        ),
        Mutant(
            "backlog-visible-only",
            "the backlog metric reads only the visible messages (ApproximateNumberOfMessages)",
            (DETECT_BACKLOG,),
            ("backlog-wrong",),
            detection_mutants.backlog_visible_only,
        ),
        Mutant(
            "age-ignores-held-messages",
            "the age of the oldest message ignores the messages a consumer holds: a stuck handler "
            "never raises the sustained-backlog alarm",
            (DETECT + "[stalled-handler]",),
            ("alarm-not-fired",),
            detection_mutants.age_ignores_held_messages,
            scenarios=(DETECT_LS + "test_stalled_handler",),
        ),
        Mutant(
            "failed-not-counted",
            "business dead letters are not counted: retry exhaustion never raises worker-failed",
            (DETECT + "[business-retry-exhaustion]",),
            ("alarm-not-fired",),
            detection_mutants.failed_not_counted,
        ),
        Mutant(
            "error-queue-without-dlq",
            "seed 004 as written: the error queue (a subscription queue) has no DLQ",
            (DETECT_ERRORS,),
            ("error-path",),
            detection_mutants.error_queue_without_dlq,
        ),
        Mutant(
            "groups-by-entity",
            "the partner queue's MessageGroupId option is ignored (always the entity id)",
            (DETECT_ERRORS,),
            ("error-path",),
            detection_mutants.groups_by_entity,
        ),
        Mutant(
            "retention-ignored",
            "per-queue retention is ignored (valid orders kept 14 days like errors)",
            (DETECT_ERRORS,),
            ("error-path",),
            detection_mutants.retention_ignored,
        ),
        # the load test's producer side (harness/mutants/load.py): killed by the distributed run,
        # where a Locust worker process sends and the master judges
        Mutant(
            "load-sender-drops-order",
            "the command dispatcher of a sending process acknowledges its first command without "
            "sending it: one order reported sent never reaches the queue (in distributed mode: in "
            "a Locust worker process, which the master's merged verdict must catch)",
            (),
            ("lost",),
            load_mutants.sender_drops_one_order,
            scenarios=(LOAD_DISTRIBUTED,),
            subject="load",
        ),
    )
}


#: scenario nodes that need more than ``flowgate mutants --suite scenarios``' per-run timeout
#: (seconds): the long chaos run keeps its whole kill schedule under a mutant (~6 min), then
#: waits 60 s without progress before it gives up on the missing effects
SCENARIO_TIMEOUTS_S: dict[str, float] = {CH_LONG: 900.0}


@contextmanager
def apply_mutant(name: str) -> Iterator[Mutant]:
    """Install mutant ``name`` for the duration of the ``with`` block."""
    try:
        mutant = MUTANTS[name]
    except KeyError:
        raise ValueError(f"unknown mutant {name!r}; known: {', '.join(MUTANTS)}") from None
    with ExitStack() as stack:
        for patch in mutant.patches():
            stack.enter_context(patch)
        yield mutant


def mutant_from_env() -> str | None:
    return os.environ.get(ENV) or None
