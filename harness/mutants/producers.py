"""Mutants of command replay and of the producers (replay persistence, sequencers, the outbox and its error path, sequence allocation).

Each builder returns the ``unittest.mock`` patches that install its bug; its entry in
:data:`MUTANTS` below names it."""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from typing import Any
from unittest import mock

from sqlalchemy import insert, select, update

from flowgate.harness.mutants.model import (
    PRODUCERS,
    PRODUCERS_ALLOCATE,
    PRODUCERS_LS,
    PRODUCERS_OUTBOX,
    REPLAY,
    Mutant,
)
from flowgate.reference.bus import CommandBus, ReplayResult
from flowgate.reference.idempotency import Claimed
from flowgate.reference.messages import (
    Command,
    encode,
)
from flowgate.reference.sql import SqlStorage
from flowgate.reference.stores import (
    Effect,
    InMemoryStorage,
    with_sequence,
)

log = logging.getLogger(__name__)


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


#: this module's mutants (aggregated, in this order, by :data:`flowgate.harness.mutants.catalog.MUTANTS`)
MUTANTS: tuple[Mutant, ...] = (
    Mutant(
        "replay-persists",
        "replay appends the replayed commands to the command store",
        (REPLAY,),
        ("replay-divergence",),
        _replay_persists,
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
)
