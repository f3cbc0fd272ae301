"""Where each SIGKILL landed: the listener phase of the killed worker, read from the history.

A killed worker process writes nothing after its death, so every op an incarnation recorded
(``process`` = its name, e.g. ``w2#7``) precedes its ``kill`` (even one stamped a moment after
the harness recorded the kill and before the signal arrived). Each nemesis ``kill`` op names
the incarnation it killed (``value.worker``, :meth:`flowgate.fixtures.workers.Workers.kill`); this module
replays that incarnation's ops up to the kill and asks, for every message it still held, how far
the listener had taken it. Nothing is recorded by the worker for this purpose: the stages follow
from the observations the reference emits anyway (:data:`flowgate.reference.hooks.OBSERVATIONS`).

A message is *held* at the kill when the incarnation recorded its ``receive`` and neither its
``delete`` ok nor its ``dead_letter``, and no other process received it since (it was given up
and redelivered elsewhere). A held message is in one of these stages (:data:`MESSAGE_STAGES`, in
the order the listener takes one message through them):

* ``received -> commit`` -- decoded, claimed or in its handler: no effect/projection recorded;
* ``commit in flight`` -- the last ``effect`` (command) or ``project`` (event) op of it is an
  ``invoke`` with no ``ok``/``fail`` yet: killed between the two records around the commit (D20);
* ``committed -> publish`` -- a command whose ``effect`` ok (or ``duplicate``) is recorded and
  none of its events' ``publish`` (same entity and seq) yet;
* ``ready -> delete`` -- a command whose events are published, or an event whose projections are
  recorded (ok or duplicate): only the ``delete`` is missing.

A command message is tied to its command through the client's ``send`` ok (``message_id`` ->
``command_id``, ``entity_id``, ``seq``); an event message through its ``receive``'s
``wire_event_id``. The *kill's* phase is the furthest stage any held message had reached;
a kill with nothing held is ``idle`` (long poll, or between polls), one whose incarnation recorded
nothing at all is ``start-up`` (interpreter start, bootstrap, first long poll).

The stages assume the reference's order per message (commit, publish, then delete): a worker
that deletes a message earlier (the ``delete-before-handle`` mutant) holds nothing past the
delete, so its kills show as idle or ``received -> commit`` only.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from flowgate.harness.history import NEMESIS, Op

START_UP: Final = "start-up (nothing recorded yet)"
IDLE: Final = "idle (long poll, nothing held)"
RECEIVED: Final = "received -> commit (decode, claim, handler)"
COMMITTING: Final = "commit in flight (invoke, no ok)"
COMMITTED: Final = "committed -> publish (command's events unpublished)"
READY: Final = "ready -> delete (published / projected)"
#: the stages of one held message, in the order the listener takes it through them
MESSAGE_STAGES: Final[tuple[str, ...]] = (RECEIVED, COMMITTING, COMMITTED, READY)
#: every phase a kill can land in, in table order
PHASES: Final[tuple[str, ...]] = (START_UP, IDLE, *MESSAGE_STAGES)
#: kill reasons that are not part of a schedule (the harness tearing a scenario down)
NOT_SCHEDULED: Final = frozenset({"teardown"})


@dataclass(frozen=True)
class KillLanding:
    """One kill: the incarnation, when, its phase, and the stage of every message it held."""

    op_index: int
    worker: str
    time: float
    phase: str
    held: Mapping[str, str]  # message id -> stage


@dataclass
class KillPhases:
    """Every scheduled kill of a history with its phase; :meth:`render` prints the table."""

    landings: list[KillLanding] = field(default_factory=list)

    @property
    def kills(self) -> int:
        return len(self.landings)

    def by_phase(self) -> Counter[str]:
        return Counter(landing.phase for landing in self.landings)

    def messages_by_stage(self) -> Counter[str]:
        return Counter(stage for landing in self.landings for stage in landing.held.values())

    def phases_hit(self) -> list[str]:
        counts = self.by_phase()
        return [phase for phase in PHASES if counts[phase]]

    def kills_holding(self) -> Counter[str]:
        """Per stage: the kills that caught at least one held message in it (a kill counts in
        every stage it caught a message in; start-up and idle kills as their phase)."""
        counts: Counter[str] = Counter()
        for landing in self.landings:
            counts.update(set(landing.held.values()) or {landing.phase})
        return counts

    def render(self) -> str:
        """The kill-phase table: kills per phase (each kill once, by the furthest stage it caught),
        kills that caught a message in each stage, and the held messages per stage."""
        kills, holding, messages = self.by_phase(), self.kills_holding(), self.messages_by_stage()
        head = ("phase the kill landed in", "kills (furthest stage)", "kills catching one", "held messages")
        rows = [
            (
                phase,
                str(kills[phase]),
                str(holding[phase]),
                str(messages[phase]) if phase in MESSAGE_STAGES else "-",
            )
            for phase in PHASES
        ]
        widths = [max(len(r[i]) for r in (head, *rows)) for i in range(len(head))]
        lines = [
            "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in (head, *rows)
        ]
        lines.insert(1, "  ".join("-" * w for w in widths))
        lines.append(
            f"total: {self.kills} kills, {sum(messages.values())} held messages, "
            f"{len(self.phases_hit())} of {len(PHASES)} phases hit"
        )
        return "\n".join(lines)


def kill_phases(ops: Iterable[Op]) -> KillPhases:
    """Attribute every scheduled nemesis ``kill`` of a merged history to a listener phase."""
    ops = list(ops)
    commands: dict[str, tuple[str, str, object]] = {}  # message id -> (command id, entity, seq)
    for op in ops:
        if op.f == "send" and op.type == "ok" and op.value.get("message_id"):
            commands[str(op.value["message_id"])] = (
                str(op.value.get("command_id")),
                str(op.value.get("entity_id")),
                op.value.get("seq"),
            )
    by_process: dict[str, list[Op]] = {}
    receivers: dict[str, list[tuple[int, str]]] = {}  # message id -> (op index, process)
    for op in ops:
        by_process.setdefault(op.process, []).append(op)
        if op.f == "receive" and op.type == "ok":
            receivers.setdefault(str(op.value.get("message_id")), []).append((op.index, op.process))
    result = KillPhases()
    for op in ops:
        if op.process != NEMESIS or op.f != "kill" or op.value.get("reason") in NOT_SCHEDULED:
            continue
        worker = str(op.value.get("worker"))
        # all of the incarnation's ops: it wrote nothing after its death (a line stamped between
        # the kill's record and the signal's delivery sorts after the kill op, yet came before)
        own = by_process.get(worker, [])
        held = _held(own, op.index, receivers, commands)
        phase = START_UP if not own else max(held.values(), key=MESSAGE_STAGES.index) if held else IDLE
        result.landings.append(KillLanding(op.index, worker, op.time, phase, held))
    return result


def _held(
    own: Sequence[Op],
    kill_index: int,
    receivers: Mapping[str, list[tuple[int, str]]],
    commands: Mapping[str, tuple[str, str, object]],
) -> dict[str, str]:
    """Message id -> stage of every message the incarnation (``own``: its ops) held at the kill."""
    if not own:
        return {}
    process = own[0].process
    last_receive: dict[str, Op] = {}
    for op in own:
        message_id = str(op.value.get("message_id"))
        if op.f == "receive" and op.type == "ok":
            last_receive[message_id] = op
        elif (op.f == "delete" and op.type == "ok") or (op.f == "dead_letter" and op.type == "ok"):
            last_receive.pop(message_id, None)
    held: dict[str, str] = {}
    for message_id, receive in last_receive.items():
        taken_over = any(
            receive.index < index < kill_index and other != process
            for index, other in receivers.get(message_id, ())
        )
        if taken_over:
            continue
        after = [o for o in own if o.index > receive.index]
        if message_id in commands:
            held[message_id] = _command_stage(after, *commands[message_id])
        else:
            held[message_id] = _event_stage(after, receive.value.get("wire_event_id"))
    return held


def _command_stage(after: Sequence[Op], command_id: str, entity_id: str, seq: object) -> str:
    last = None
    for op in after:
        if op.value.get("command_id") == command_id and op.f in ("effect", "duplicate"):
            last = op
    if last is None or (last.f == "effect" and last.type == "fail"):
        return RECEIVED
    if last.f == "effect" and last.type == "invoke":
        return COMMITTING
    published = any(
        op.f == "publish"
        and op.type == "ok"
        and op.index > last.index
        and str(op.value.get("entity_id")) == entity_id
        and op.value.get("seq") == seq
        for op in after
    )
    return READY if published else COMMITTED


def _event_stage(after: Sequence[Op], event_id: object) -> str:
    last = None
    for op in after:
        if event_id is not None and op.value.get("event_id") == event_id and op.f in ("project", "duplicate"):
            last = op
    if last is None or (last.f == "project" and last.type == "fail"):
        return RECEIVED
    if last.f == "project" and last.type == "invoke":
        return COMMITTING
    return READY
