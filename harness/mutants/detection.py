"""Mutants of failure detection and of the partner feed's error path (``docs/operating.md``):
patch builders used by :mod:`flowgate.harness.mutants.catalog`."""

from __future__ import annotations

from typing import Any
from unittest import mock

from flowgate.harness.mutants.model import (
    DETECT,
    DETECT_BACKLOG,
    DETECT_ERRORS,
    DETECT_LS,
    Mutant,
)
from flowgate.reference import alarms
from flowgate.reference.bootstrap import Bootstrapper
from flowgate.reference.config import BusConfiguration
from flowgate.reference.dispatchers import SqsCommandDispatcher
from flowgate.reference.messages import Message
from flowgate.reference.monitoring import ConsumerGauge, QueueDepth

_evaluate = alarms._evaluate


def alarm_never_fires() -> list[Any]:
    """Every evaluation that would enter ALARM reports OK instead."""

    def evaluate(spec: alarms.AlarmSpec, current: str, window: Any, newest: Any) -> tuple[str, str]:
        state, reason = _evaluate(spec, current, window, newest)
        return (alarms.OK, reason) if state == alarms.ALARM else (state, reason)

    return [mock.patch.object(alarms, "_evaluate", evaluate)]


def alarm_never_clears() -> list[Any]:
    """An alarm in ALARM stays there whatever the datapoints say."""

    def evaluate(spec: alarms.AlarmSpec, current: str, window: Any, newest: Any) -> tuple[str, str]:
        state, reason = _evaluate(spec, current, window, newest)
        return (alarms.ALARM, reason) if current == alarms.ALARM else (state, reason)

    return [mock.patch.object(alarms, "_evaluate", evaluate)]


def backlog_visible_only() -> list[Any]:
    """The backlog reads ApproximateNumberOfMessages only (in-flight messages not counted)."""
    return [mock.patch.object(QueueDepth, "total", property(lambda self: self.visible))]


def age_ignores_held_messages() -> list[Any]:
    """The age of the oldest message comes from receives only: a message a consumer holds (a
    stuck handler) no longer ages."""
    orig = ConsumerGauge.snapshot

    def snapshot(self: ConsumerGauge) -> dict[str, Any]:
        return {**orig(self), "oldest_held_sent_at": None}

    return [mock.patch.object(ConsumerGauge, "snapshot", snapshot)]


def failed_not_counted() -> list[Any]:
    """Business dead letters are not counted: WorkerFailedCount stays 0."""

    def on_failed(self: ConsumerGauge) -> None:
        return None

    return [mock.patch.object(ConsumerGauge, "on_failed", on_failed)]


def error_queue_without_dlq() -> list[Any]:
    """Seed 004 as written: subscription queues (the error queue) get no RedrivePolicy."""
    orig = Bootstrapper._queue_attributes

    def queue_attributes(self: Bootstrapper, name: str, redrive_to: str | None) -> dict[str, str]:
        return orig(self, name, None if name in self.config.subscriptions else redrive_to)

    return [mock.patch.object(Bootstrapper, "_queue_attributes", queue_attributes)]


def groups_by_entity() -> list[Any]:
    """``with_message_group`` is ignored: MessageGroupId is always the entity id."""

    def group_id(self: SqsCommandDispatcher, message: Message, destination: str) -> str:
        return message.entity_id

    return [mock.patch.object(SqsCommandDispatcher, "_group_id", group_id)]


def retention_ignored() -> list[Any]:
    """Per-queue retention is ignored: every queue keeps the bus-wide retention."""

    def retention_for(self: BusConfiguration, queue: str) -> int:
        return self.options.message_retention_seconds

    return [mock.patch.object(BusConfiguration, "retention_for", retention_for)]


#: this module's mutants (aggregated, in this order, by :data:`flowgate.harness.mutants.catalog.MUTANTS`)
MUTANTS: tuple[Mutant, ...] = (
    # failure detection and the partner feed's error path (docs/operating.md)
    Mutant(
        "alarm-never-fires",
        "the alarm evaluator reports OK where it should enter ALARM",
        (DETECT,),
        ("alarm-not-fired",),
        alarm_never_fires,
        scenarios=(DETECT_LS + "test_poison_flood",),
    ),
    Mutant(
        "alarm-never-clears",
        "an alarm in ALARM never returns to OK",
        (DETECT,),
        ("alarm-not-cleared",),
        alarm_never_clears,
        scenarios=(DETECT_LS + "test_partner_sending_invalid_orders",),
    ),
    Mutant(
        "backlog-visible-only",
        "the backlog metric reads only the visible messages (ApproximateNumberOfMessages)",
        (DETECT_BACKLOG,),
        ("backlog-wrong",),
        backlog_visible_only,
    ),
    Mutant(
        "age-ignores-held-messages",
        "the age of the oldest message ignores the messages a consumer holds: a stuck handler "
        "never raises the sustained-backlog alarm",
        (DETECT + "[stalled-handler]",),
        ("alarm-not-fired",),
        age_ignores_held_messages,
        scenarios=(DETECT_LS + "test_stalled_handler",),
    ),
    Mutant(
        "failed-not-counted",
        "business dead letters are not counted: retry exhaustion never raises worker-failed",
        (DETECT + "[business-retry-exhaustion]",),
        ("alarm-not-fired",),
        failed_not_counted,
    ),
    Mutant(
        "error-queue-without-dlq",
        "seed 004 as written: the error queue (a subscription queue) has no DLQ",
        (DETECT_ERRORS,),
        ("error-path",),
        error_queue_without_dlq,
    ),
    Mutant(
        "groups-by-entity",
        "the partner queue's MessageGroupId option is ignored (always the entity id)",
        (DETECT_ERRORS,),
        ("error-path",),
        groups_by_entity,
    ),
    Mutant(
        "retention-ignored",
        "per-queue retention is ignored (valid orders kept 14 days like errors)",
        (DETECT_ERRORS,),
        ("error-path",),
        retention_ignored,
    ),
)
