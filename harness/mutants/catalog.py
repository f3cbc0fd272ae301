"""The mutants and their patches (see :mod:`harness.mutants`)."""

from __future__ import annotations

import contextvars
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from typing import Any
from unittest import mock

from reference.bootstrap import Bootstrapper
from reference.bus import CommandBus, ReplayResult
from reference.envelope import MessageBinding
from reference.errors import MessageError
from reference.idempotency import COMPLETED, IN_PROGRESS, Claimed, ClaimResult, Duplicate
from reference.listener import SqsListener, _Flight
from reference.sql import SqlStorage
from reference.stores import UNCHECKED, Effect, InMemoryStorage, _Record, outbox_from_json

ENV = "FLOWGATE_MUTANT"
P = "properties/"


@dataclass(frozen=True)
class Mutant:
    name: str
    bug: str
    killers: tuple[str, ...]            # pytest node ids (relative to the repo root) that must fail
    expected: tuple[str, ...]           # anomaly kinds the killers are expected to report
    patches: Callable[[], Sequence[Any]]  # context managers that install the bug


# ------------------------------------------------------------------ patch builders
def _fifo_parallel_group() -> list[Any]:
    def _run_group(self: SqsListener, flights: list[_Flight]) -> None:
        # as if each message of the group ran on its own thread: no stop at the first unfinished
        # message, and the later messages finish first
        for flight in reversed(flights):
            self._process(flight)

    return [mock.patch.object(SqsListener, "_run_group", _run_group)]


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

    return [mock.patch.object(SqsListener, "_process", _process), mock.patch.object(SqsListener, "_delete", _delete)]


def _unfenced_commit_fn(orig_commit: Callable[[InMemoryStorage, Effect], None]) -> Callable[..., None]:
    def commit(self: InMemoryStorage, effect: Effect) -> None:
        with self._lock:  # "mark" the claim as ours whatever happened since: no fencing
            rec = self._m.records.get(effect.key)
            lease = rec.lease_until if rec is not None else effect.expires_at
            self._m.records[effect.key] = _Record(IN_PROGRESS, effect.token, lease, lease, effect.message_type)
        orig_commit(self, effect)

    return commit


def _check_then_mark() -> list[Any]:
    def claim(self: InMemoryStorage, key: str, *, now: float, lease_until: float, message_type: str) -> ClaimResult:
        with self._lock:  # the check ...
            rec = self._m.records.get(key)
            if rec is not None and rec.status == COMPLETED and rec.expires_at > now:
                outbox = rec.outbox
            else:
                self._tokens += 1
                return Claimed(self._tokens, lease_until)  # ... and the mark comes later, at commit
        return Duplicate(outbox_from_json(outbox, self._registry))

    return [mock.patch.object(InMemoryStorage, "claim", claim),
            mock.patch.object(InMemoryStorage, "commit", _unfenced_commit_fn(InMemoryStorage.commit)),
            mock.patch.object(InMemoryStorage, "extend", lambda self, key, token, lease_until: True)]  # noqa: PT008


def _no_idempotency() -> list[Any]:
    def claim(self: InMemoryStorage, key: str, *, now: float, lease_until: float, message_type: str) -> ClaimResult:
        with self._lock:
            self._tokens += 1
            return Claimed(self._tokens, lease_until)

    return [mock.patch.object(InMemoryStorage, "claim", claim),
            mock.patch.object(InMemoryStorage, "commit", _unfenced_commit_fn(InMemoryStorage.commit)),
            mock.patch.object(InMemoryStorage, "extend", lambda self, key, token, lease_until: True)]  # noqa: PT008


_CURRENT_MESSAGE: contextvars.ContextVar[str | None] = contextvars.ContextVar("fg_mutant_message", default=None)


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

    return [mock.patch.object(SqsListener, "_process", _process),
            mock.patch("reference.listener.command_key", command_key),
            mock.patch("reference.listener.event_key", event_key),
            mock.patch("reference.bus.command_key", command_key),
            mock.patch("reference.bus.event_key", event_key)]


def _no_aad() -> list[Any]:
    return [mock.patch.object(MessageBinding, "context", lambda self: {"flowgate:version": "1"}),  # noqa: PT008
            mock.patch.object(MessageBinding, "aad", lambda self, key_id: b"")]  # noqa: PT008


def _no_redrive() -> list[Any]:
    orig_attrs = Bootstrapper._queue_attributes

    def _queue_attributes(self: Bootstrapper, name: str, redrive_to: str | None) -> dict[str, str]:
        return orig_attrs(self, name, None)

    def _poison(self: SqsListener, f: _Flight, exc: MessageError) -> bool:
        return False  # never dead-lettered: left for redelivery forever

    return [mock.patch.object(Bootstrapper, "_queue_attributes", _queue_attributes),
            mock.patch.object(SqsListener, "_poison", _poison)]


def _no_poison_dlq() -> list[Any]:
    def _poison(self: SqsListener, f: _Flight, exc: MessageError) -> bool:
        if f.receive_count < self.options.max_receive_count:
            return False
        return self._delete(f, {"message_id": f.message_id, "queue": self.queue})  # dropped silently

    return [mock.patch.object(SqsListener, "_poison", _poison)]


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
            storage.commit(Effect(key=key, token=claim.token, message_type=command.name, expires_at=now + 60,
                                  command=command))
        return result

    return [mock.patch.object(CommandBus, "replay", replay)]


def _unconditional_row_write() -> list[Any]:
    def _write_row(c: Any, table: Any, where: Any, ident: dict[str, str], state: Any, expected: Any,
                   what: str) -> None:
        orig_write_row(c, table, where, ident, state, UNCHECKED, what)

    orig_write_row = SqlStorage._write_row
    return [mock.patch("reference.stores._check_expected", return_value=None),
            mock.patch.object(SqlStorage, "_write_row", staticmethod(_write_row))]


def _unfenced_commit() -> list[Any]:
    return [mock.patch.object(InMemoryStorage, "commit", _unfenced_commit_fn(InMemoryStorage.commit))]


ORDER = P + "test_ordering.py"
ONCE = P + "test_exactly_once.py"
LOSS = P + "test_no_loss.py"
CRYPTO = P + "test_encryption.py"
REPLAY = P + "test_replay.py"

MUTANTS: dict[str, Mutant] = {m.name: m for m in (
    Mutant("fifo-parallel-group", "processes a FIFO group's messages in parallel / out of order",
           (ORDER,), ("nonmonotonic", "skip", "unexpected-business-dead-letter"), _fifo_parallel_group),
    Mutant("delete-before-handle", "deletes the message before handling it (a crash loses it)",
           (LOSS,), ("lost",), _delete_before_handle),
    Mutant("check-then-mark", "idempotency check, then mark at commit: not one atomic conditional write",
           (ONCE,), ("duplicate-projection", "unexpected-business-dead-letter"), _check_then_mark),
    Mutant("no-idempotency", "no idempotency store: every delivery is handled",
           (ONCE,), ("duplicate-projection", "unexpected-business-dead-letter"), _no_idempotency),
    Mutant("idempotency-on-message-id", "idempotency key from the SQS MessageId instead of the command id",
           (ONCE,), ("duplicate-projection", "unexpected-business-dead-letter"), _idempotency_on_message_id),
    Mutant("no-aad", "AAD/encryption context not bound: a ciphertext moved to another destination decrypts",
           (CRYPTO,), ("integrity-breach",), _no_aad),
    Mutant("no-redrive", "no redrive policy and the listener never dead-letters",
           (LOSS,), ("poison-not-dead-lettered", "no-drain"), _no_redrive),
    Mutant("replay-persists", "replay appends the replayed commands to the command store",
           (REPLAY,), ("replay-divergence",), _replay_persists),
    Mutant("unconditional-row-write", "entity/view rows written blindly: concurrent projections lose updates",
           (REPLAY,), ("replay-divergence",), _unconditional_row_write),
    Mutant("unfenced-commit", "the effect commit ignores the claim's fencing token",
           (ONCE,), ("duplicate-projection", "unexpected-business-dead-letter"), _unfenced_commit),
    Mutant("no-poison-dlq", "poison is deleted silently instead of forwarded to the DLQ with a reason",
           (LOSS,), ("poison-not-dead-lettered",), _no_poison_dlq),
)}


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
