"""Per-entity ordering of effects on FIFO routes (Jepsen Kafka's nonmonotonic / skip)."""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Collection
from typing import Any

from flowgate.harness.history import Op

from .model import (
    Anomaly,
    HistoryLike,
    Verdict,
    as_ops,
    get_seq,
    index_sends,
    revived_commands,
    settled_in_doubt,
    sid,
    verdict,
)

NAME = "per_entity_order"

#: Which routes promise order: a predicate on the destination, a set of destinations,
#: or ``None`` for the default (SQS FIFO naming: the destination ends in ``.fifo``).
FifoRoutes = Callable[[str], bool] | Collection[str] | None


def _fifo_predicate(fifo: FifoRoutes) -> Callable[[str], bool]:
    if fifo is None:
        return lambda destination: destination.endswith(".fifo")
    if callable(fifo):
        return fifo
    routes = frozenset(fifo)
    return lambda destination: destination in routes


def per_entity_order(history: HistoryLike, *, fifo: FifoRoutes = None) -> Verdict:
    """Effects of one entity are applied in sequence-number order, with no gaps.

    Only commands whose route (the send's ``destination``, else the effect's own) is FIFO
    according to ``fifo`` are judged. For each entity, in history order:

    * ``nonmonotonic`` -- an effect with a seq not above one already applied (lower, or the
      same seq again under another command id);
    * ``skip`` -- an effect with seq ``n`` while some lower seq ``k`` that had to be applied
      (acknowledged, or took effect at some point, and not dead-lettered) was not applied yet.

    A command dead-lettered and then replayed from the DLQ after its cause was fixed
    (:func:`~flowgate.harness.checkers.model.revived_commands`, D24) has to be applied again: its seq is
    required like any acknowledged one, so replayed commands must take effect in seq order.

    A second effect of the same command is left to the exactly-once checker. An effect recorded
    only as an open ``invoke`` and settled by a later ``duplicate``
    (:func:`~flowgate.harness.checkers.model.settled_in_doubt`) is placed at that ``invoke``.
    """
    is_fifo = _fifo_predicate(fifo)
    ops = as_ops(history)
    commands = index_sends(ops)
    dead: set[str] = set()
    effects: list[tuple[str, str, int, Op]] = []  # (entity, command, seq, op)
    effect_of: dict[str, Op] = {}
    unrouted = 0
    in_doubt = {op.index for op in settled_in_doubt(ops, "effect").values()}
    for op in ops:
        if op.f in ("dead_letter", "business_dead_letter") and op.type == "ok":
            command_id = sid(op.value.get("command_id"))
            if command_id is not None:
                dead.add(command_id)
        elif op.f == "effect" and (op.type == "ok" or op.index in in_doubt):
            command_id = sid(op.value.get("command_id"))
            if command_id is None:
                continue
            command = commands.get(command_id)
            destination = (command.destination if command else None) or sid(op.value.get("destination"))
            if destination is None:
                unrouted += 1
                continue
            if not is_fifo(destination):
                continue
            entity = sid(op.value.get("entity_id")) or (command.entity_id if command else None)
            seq = get_seq(op.value)
            if seq is None and command is not None:
                seq = command.seq
            if entity is None or seq is None:
                unrouted += 1
                continue
            effects.append((entity, command_id, seq, op))
            effect_of.setdefault(command_id, op)

    dead -= set(revived_commands(ops))
    # seqs each entity had to apply, with the command behind each
    required: dict[str, dict[int, str]] = {}
    for command in commands.values():
        entity, seq, destination = command.entity_id, command.seq, command.destination
        if entity is None or seq is None or destination is None or not is_fifo(destination):
            continue
        if command.command_id in dead:
            continue
        if command.status == "ok" or command.command_id in effect_of:
            required.setdefault(entity, {})[seq] = command.command_id
    required_sorted = {entity: sorted(seqs) for entity, seqs in required.items()}

    anomalies: list[Anomaly] = []
    applied: dict[str, dict[int, Op]] = {}
    last: dict[str, Op] = {}  # the effect that applied the highest seq so far
    last_seq: dict[str, int] = {}
    seen_commands: set[str] = set()
    stats: dict[str, Any] = {"entities": 0, "effects": 0, "unrouted": unrouted, "nonmonotonic": 0, "skip": 0}
    for entity, command_id, seq, op in effects:
        if command_id in seen_commands:
            continue  # a duplicate effect: the exactly-once checker's business
        seen_commands.add(command_id)
        stats["effects"] += 1
        done = applied.setdefault(entity, {})
        top = last_seq.get(entity)
        if top is not None and seq <= top:
            stats["nonmonotonic"] += 1
            previous = last[entity]
            anomalies.append(
                Anomaly(
                    "nonmonotonic",
                    f"entity {entity}: seq {seq} (command {command_id}) applied by {op.describe()} "
                    f"after seq {top} was already applied by {previous.describe()}",
                    (previous.index, op.index),
                )
            )
        elif top is None or seq > top:
            seqs = required_sorted.get(entity, [])
            low = bisect_right(seqs, top) if top is not None else 0
            high = bisect_left(seqs, seq)
            missing = [k for k in seqs[low:high] if k not in done]
            if missing:
                stats["skip"] += 1
                involved = [last[entity]] if entity in last else []
                involved.append(op)
                notes = []
                for k in missing:
                    missing_command = required[entity][k]
                    later = effect_of.get(missing_command)
                    if later is not None:
                        notes.append(f"seq {k} ({missing_command}) applied later by #{later.index}")
                        involved.append(later)
                    else:
                        send = commands[missing_command].outcome or commands[missing_command].first
                        notes.append(f"seq {k} ({missing_command}, sent {send.describe()}) never applied")
                        involved.append(send)
                after = f"after seq {top} (#{last[entity].index})" if top is not None else "as the first"
                anomalies.append(
                    Anomaly(
                        "skip",
                        f"entity {entity}: seq {seq} applied by {op.describe()} {after}; " + "; ".join(notes),
                        tuple(sorted({o.index for o in involved})),
                    )
                )
            last_seq[entity] = seq
            last[entity] = op
        done[seq] = op
    stats["entities"] = len(applied)
    return verdict(NAME, anomalies, stats)
