"""Verdicts, anomalies and the small history-indexing helpers every checker shares."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from flowgate.harness.anomalies import require
from flowgate.harness.history import History, Op

#: What a checker accepts: a :class:`History` or any iterable of ops (a list, a loaded file).
HistoryLike = History | Iterable[Op]


@dataclass(frozen=True, slots=True)
class Anomaly:
    """One thing a checker found wrong. ``ops`` are the indexes of the ops involved.

    ``kind`` must be registered in :data:`flowgate.harness.anomalies.KINDS` (``UnknownAnomalyKind``
    otherwise): a misspelt kind would never match an expectation or a report category."""

    kind: str
    message: str
    ops: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        require(self.kind)

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"


@dataclass(slots=True)
class Verdict:
    """The result of one checker over one history."""

    checker: str
    valid: bool
    anomalies: list[Anomaly] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)

    def kinds(self) -> dict[str, int]:
        """Anomaly count per kind."""
        counts: dict[str, int] = {}
        for anomaly in self.anomalies:
            counts[anomaly.kind] = counts.get(anomaly.kind, 0) + 1
        return counts

    def __bool__(self) -> bool:
        return self.valid


def as_ops(history: HistoryLike) -> list[Op]:
    """A plain list of ops, whatever the checker was handed."""
    if isinstance(history, History):
        return history.ops
    if isinstance(history, list):
        return history
    return list(history)


def verdict(checker: str, anomalies: list[Anomaly], stats: dict[str, Any]) -> Verdict:
    stats = dict(stats)
    stats["anomalies"] = len(anomalies)
    return Verdict(checker, not anomalies, anomalies, stats)


def sid(value: Any) -> str | None:
    """An id from an op value as a string (``None`` when absent or empty)."""
    if value is None or value == "":
        return None
    return str(value)


def get_seq(value: Mapping[str, Any]) -> int | None:
    raw = value.get("seq")
    if raw is None or isinstance(raw, bool):
        return None
    try:
        return int(raw)
    except (TypeError, ValueError):
        return None


def is_harness_poison(op: Op) -> bool:
    """A poison message the harness sent (a ``poison`` op whose send did not fail)."""
    return op.f == "poison" and op.type != "fail"


def poison_ids(op: Op) -> tuple[str, ...]:
    """The identifiers a poison op may be matched by (message id, poison id)."""
    ids = []
    for key in ("message_id", "poison_id"):
        found = sid(op.value.get(key))
        if found is not None:
            ids.append(found)
    return tuple(ids)


def has_drain(ops: list[Op]) -> Op | None:
    """The first completed ``drain`` op, if the run drained."""
    for op in ops:
        if op.f == "drain" and op.type == "ok":
            return op
    return None


@dataclass(slots=True)
class Command:
    """What the history says about one command id: its send ops and their outcome."""

    command_id: str
    invoke: Op | None = None
    outcome: Op | None = None  # the ok / fail / info completion (ok wins over info, info over fail)
    value: dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> str:
        """``ok`` (acknowledged), ``fail`` (certainly not sent), ``info`` (unknown: info or no completion)."""
        if self.outcome is None:
            return "info"
        return self.outcome.type

    @property
    def first(self) -> Op:
        op = self.invoke or self.outcome
        assert op is not None
        return op

    @property
    def entity_id(self) -> str | None:
        return sid(self.value.get("entity_id"))

    @property
    def seq(self) -> int | None:
        return get_seq(self.value)

    @property
    def destination(self) -> str | None:
        return sid(self.value.get("destination"))

    def label(self) -> str:
        return f"command {self.command_id} (entity {self.entity_id} seq {self.seq})"


_RANK = {"ok": 3, "info": 2, "fail": 1}


#: the ops that put a command on the bus: a producer's ``send`` and a saga's or aggregate's
#: ``issue`` (an ok committed with its cause's effect, D33: acknowledged work like a client's)
SEND_OPS = frozenset({"send", "issue"})


def index_sends(ops: Iterable[Op]) -> dict[str, Command]:
    """Every ``send`` and ``issue`` op grouped by command id.

    A send's outcome is its ``ok``/``fail``/``info`` completion; an ``invoke`` never completed
    counts as ``info`` (unknown). When several completions exist (a resend), ``ok`` wins. An
    ``issue`` (a follow-up command a saga or aggregate committed, D33) is an ``ok``: the command
    is acknowledged from its cause's commit on, whether or not a ``send`` of it ever follows.
    """
    commands: dict[str, Command] = {}
    for op in ops:
        if op.f not in SEND_OPS:
            continue
        command_id = sid(op.value.get("command_id"))
        if command_id is None:
            continue
        command = commands.get(command_id)
        if command is None:
            command = commands[command_id] = Command(command_id)
        for key, item in op.value.items():
            command.value.setdefault(key, item)
        if op.type == "invoke":
            if command.invoke is None:
                command.invoke = op
        elif command.outcome is None or _RANK.get(op.type, 0) > _RANK.get(command.outcome.type, 0):
            command.outcome = op
    return commands


def effect_key(f: str, value: Mapping[str, Any]) -> str | None:
    """What identifies one effect of kind ``f``: the command id (``effect``), or the event id
    and view (``project``); ``None`` when ``value`` does not name one."""
    if f == "effect":
        return sid(value.get("command_id"))
    event_id, view = sid(value.get("event_id")), sid(value.get("view"))
    return None if event_id is None or view is None else f"{event_id}\x00{view}"


def settled_in_doubt(ops: Iterable[Op], f: str = "effect") -> dict[str, Op]:
    """Effects the history holds only as an open ``invoke`` that the idempotency store later
    confirmed, keyed by :func:`effect_key` (decision D20).

    A worker records ``f`` (``effect`` or ``project``) ``invoke`` just before its commit and
    ``ok`` just after. Killed between the two, it leaves an effect that happened but was never
    recorded as ``ok``. When a later ``duplicate`` names the same command (or event and view) --
    the store refused a second claim because the first commit is there -- the effect is settled:
    it took place at the last ``invoke`` before that duplicate, which is returned.

    Never returned: anything with an ``ok`` (recorded normally), an ``invoke`` closed by a
    ``fail`` (the commit was refused), an ``invoke`` followed by a business dead letter of the
    command (its key was committed without an effect; a later replay of the dead letter starts
    afresh, D24), and a duplicate with no ``invoke`` before it (nothing says an effect was ever
    attempted: the loss stays a loss)."""
    completed: set[str] = set()
    pending: dict[str, Op] = {}
    settled: dict[str, Op] = {}
    for op in ops:
        if op.f == f:
            key = effect_key(f, op.value)
            if key is None:
                continue
            if op.type == "invoke":
                pending[key] = op
            elif op.type == "ok":
                completed.add(key)
            elif op.type == "fail":
                pending.pop(key, None)
        elif op.type != "ok":
            continue
        elif op.f == "duplicate":
            key = effect_key(f, op.value)
            if key is not None and key in pending and key not in settled:
                settled[key] = pending[key]
        elif op.f == "business_dead_letter" and f == "effect":
            key = effect_key(f, op.value)
            if key is not None:
                pending.pop(key, None)  # dead-lettered: no effect so far (D24)
    return {key: op for key, op in settled.items() if key not in completed}


def effects_taken(ops: Iterable[Op], f: str = "effect") -> set[str]:
    """Keys (:func:`effect_key`) of every ``f`` recorded ``ok`` or settled in doubt
    (:func:`settled_in_doubt`): what a drain waits for."""
    ops = list(ops)
    done = {
        key for op in ops if op.f == f and op.type == "ok" and (key := effect_key(f, op.value)) is not None
    }
    return done | set(settled_in_doubt(ops, f))


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


def reason_code(reason: Any) -> str:
    """The ``DeadLetterReason`` code: the text before the first ``":"`` (``""`` when none)."""
    return str(reason or "").split(":", 1)[0].strip()


def dlq_replays(ops: Iterable[Op]) -> list[Op]:
    """The ``dlq_replay`` ok ops: one per dead letter a DLQ replay moved back to its source queue
    (``flowgate.reference.dlq.replay_dead_letters``): ``message_id`` (the copy on the source queue),
    ``source_message_id`` (the message that was dead-lettered, when the dead letter names it),
    ``command_id``, ``reason`` (the ``DeadLetterReason`` it carried)."""
    return [op for op in ops if op.f == "dlq_replay" and op.type == "ok"]


def revived_commands(ops: Iterable[Op]) -> dict[str, Op]:
    """Commands a DLQ replay moved back after a business failure (reason code ``BusinessError``)
    or SQS's reason-less redrive, expected to take effect now: command id -> the (last) replay op.

    The earlier dead letter no longer accounts for such a command: it must take effect after its
    replay, once and in sequence order (decision D24: a dead-lettered command's key is not an
    effect). A replay op carrying ``expect_business_failure: true`` (the harness knows the cause
    is not fixed) does not revive its command; poison (any other code) is never revived
    (:func:`replayed_poison`)."""
    out: dict[str, Op] = {}
    for op in dlq_replays(ops):
        command_id = sid(op.value.get("command_id"))
        if command_id is None or reason_code(op.value.get("reason")) not in ("", "BusinessError"):
            continue
        if _truthy(op.value.get("expect_business_failure")):
            out.pop(command_id, None)
        else:
            out[command_id] = op
    return out


def replayed_poison(ops: Iterable[Op]) -> list[Op]:
    """DLQ replay ops of poison (a reason code other than ``BusinessError``): the copy
    (``message_id``) must be dead-lettered again, with the same code."""
    return [
        op
        for op in dlq_replays(ops)
        if reason_code(op.value.get("reason")) not in ("", "BusinessError")
        and sid(op.value.get("message_id"))
    ]
