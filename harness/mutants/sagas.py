"""Mutants of the commands sagas and aggregates issue (docs/decisions.md D33): patch builders used
by :mod:`flowgate.harness.mutants.catalog`."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import replace
from typing import Any
from unittest import mock

from flowgate.harness.checkers import model as checker_model
from flowgate.harness.mutants.model import Mutant, P, S
from flowgate.reference import bus as bus_module
from flowgate.reference import listener as listener_module
from flowgate.reference.bus import CommandBus, Processor
from flowgate.reference.idempotency import ClaimResult, Duplicate
from flowgate.reference.messages import Command
from flowgate.reference.sql import SqlStorage
from flowgate.reference.stores import Effect, InMemoryStorage


def follow_up_sent_outside_commit() -> list[Any]:
    """The follow-up commands are not part of the commit: the commit writes the effect without
    them, then the store numbers them (a second step) and they are sent straight from the worker's
    memory after the commit -- neither the producer outbox nor the idempotency record holds them,
    so a worker that dies between its commit and the send loses them (its redelivery is a
    duplicate with nothing to send)."""
    patches: list[Any] = []
    for cls in (InMemoryStorage, SqlStorage):
        orig = cls.commit

        def commit(self: Any, effect: Effect, _orig: Any = orig) -> tuple[Command, ...]:
            _orig(self, replace(effect, commands=()))
            return tuple(
                replace(c, metadata=replace(c.metadata, sequence_no=self.allocate_sequence(c.entity_id)))
                for c in effect.commands
            )

        patches.append(mock.patch.object(cls, "commit", commit))

    def send_issued(bus: CommandBus | None, issued: Sequence[Command]) -> None:
        if bus is not None:
            for command in issued:
                bus._dispatch(command)

    patches += [
        mock.patch.object(listener_module, "send_issued", send_issued),
        mock.patch.object(bus_module, "send_issued", send_issued),
    ]
    return patches


def follow_up_reissued_on_redelivery() -> list[Any]:
    """A redelivered cause issues its follow-up commands again under fresh ids (as a saga that
    calls ``PublishCommand`` with a new command on every delivery would): the recorded commands
    of a duplicate are replaced by new ones, numbered and recorded anew (``record_publish``), so a
    redelivery sends a second, distinct command."""
    patches: list[Any] = []
    for cls in (InMemoryStorage, SqlStorage):
        orig = cls.claim

        def claim(self: Any, key: str, *args: Any, _orig: Any = orig, **kwargs: Any) -> ClaimResult:
            result: ClaimResult = _orig(self, key, *args, **kwargs)
            if not isinstance(result, Duplicate) or not result.commands:
                return result
            fresh = tuple(
                self.record_publish(
                    replace(c, metadata=replace(c.metadata, event_id=str(uuid.uuid4()), sequence_no=0))
                )
                for c in result.commands
            )
            return Duplicate(result.outbox, fresh)

        patches.append(mock.patch.object(cls, "claim", claim))
    return patches


def issued_not_counted() -> list[Any]:
    """The checkers count only a producer's ``send`` as acknowledged work: a command a saga or
    aggregate issued and that never took effect is not ``lost``, one applied out of order not a
    ``skip``."""
    return [mock.patch.object(checker_model, "SEND_OPS", frozenset({"send"}))]


def aggregate_not_run() -> list[Any]:
    """The listener never runs the aggregates subscribed to an event (only the views): the
    fulfilment aggregate never issues ``ConfirmOrder``, paid orders stay RESERVED."""
    return [mock.patch.object(Processor, "aggregates_for", lambda self, event_type: [])]  # noqa: PT008


SAGA_COMMANDS = P + "test_saga_commands.py::test_issued_commands_take_effect_exactly_once_in_order"
SAGA_LOST = P + "test_saga_commands.py::test_an_issued_command_never_sent_nor_applied_is_lost"
LIFE_SAGA = S + "test_lifecycle.py::test_saga_commands_lifecycle"

MUTANTS: tuple[Mutant, ...] = (
    # the saga-command flow (docs/decisions.md D33)
    Mutant(
        "follow-up-sent-outside-commit",
        "a saga's or aggregate's follow-up command is not committed with its cause's effect: "
        "numbered after the commit and sent from the worker's memory, lost when the worker dies "
        "between the commit and the send",
        (SAGA_COMMANDS,),
        ("lost", "saga-flow"),
        follow_up_sent_outside_commit,
    ),
    Mutant(
        "follow-up-reissued-on-redelivery",
        "a redelivered cause issues its follow-up commands again under fresh ids instead of "
        "sending the recorded ones: a second, distinct command per redelivery",
        (SAGA_COMMANDS,),
        ("unexpected-business-dead-letter", "saga-flow"),
        follow_up_reissued_on_redelivery,
    ),
    Mutant(
        "issued-not-counted",
        "the checkers count only a producer's send as acknowledged work: a saga-issued command "
        "never applied is not lost, one applied out of order not a skip",
        (SAGA_LOST,),
        ("lost-not-reported",),
        issued_not_counted,
    ),
    Mutant(
        "aggregate-not-run",
        "the listener never runs the aggregates an event is for: the fulfilment aggregate never "
        "issues ConfirmOrder and paid orders stay RESERVED",
        (SAGA_COMMANDS,),
        ("saga-flow",),
        aggregate_not_run,
        scenarios=(LIFE_SAGA,),
    ),
)
