"""Jepsen's total-queue checker applied to commands and their effects."""

from __future__ import annotations

from typing import Any

from flowgate.harness.history import Op

from .model import (
    Anomaly,
    HistoryLike,
    Verdict,
    as_ops,
    has_drain,
    index_sends,
    revived_commands,
    settled_in_doubt,
    sid,
    verdict,
)

NAME = "total_queue"


def total_queue(history: HistoryLike) -> Verdict:
    """Every acknowledged command takes effect; nothing takes effect that was not sent.

    * ``lost`` -- an ``ok`` send whose command has no ``effect`` op once the run drained
      (and was not recorded as a ``business_dead_letter``);
    * ``unexpected`` -- an ``effect`` for a command id never sent, or whose send certainly failed;
    * ``duplicated`` -- more than one ``effect`` for one command id;
    * ``recovered`` (counted, not an anomaly) -- an ``info`` send that did take effect;
    * ``in_doubt_settled`` (counted, not an anomaly) -- an effect recorded only as an open
      ``invoke`` (its worker was killed between commit and record) that a later ``duplicate``
      confirmed (:func:`~flowgate.harness.checkers.model.settled_in_doubt`): it counts as the effect;
    * ``no-drain`` -- the history has no completed ``drain`` op: lost commands cannot be judged.

    A command business dead-lettered and then replayed from the DLQ after its cause was fixed
    (:func:`~flowgate.harness.checkers.model.revived_commands`, decision D24) is no longer accounted for
    by its dead letter: without an ``effect`` after the replay it is ``lost``.
    """
    ops = as_ops(history)
    commands = index_sends(ops)
    effects: dict[str, list[Op]] = {}
    business: dict[str, Op] = {}
    dead: dict[str, Op] = {}
    for op in ops:
        if op.type != "ok":
            continue
        command_id = sid(op.value.get("command_id"))
        if command_id is None:
            continue
        if op.f == "effect":
            effects.setdefault(command_id, []).append(op)
        elif op.f == "business_dead_letter":
            business.setdefault(command_id, op)
        elif op.f == "dead_letter":
            dead.setdefault(command_id, op)

    in_doubt = settled_in_doubt(ops, "effect")
    for command_id, invoke in in_doubt.items():
        effects.setdefault(command_id, []).append(invoke)
    revived = revived_commands(ops)

    anomalies: list[Anomaly] = []
    drain = has_drain(ops)
    if drain is None:
        anomalies.append(
            Anomaly("no-drain", "the history has no completed drain op: lost commands cannot be judged", ())
        )

    stats: dict[str, Any] = {
        "attempted": len(commands),
        "ok": 0,
        "fail": 0,
        "info": 0,
        "effects": sum(len(found) for found in effects.values()),
        "lost": 0,
        "recovered": 0,
        "unexpected": 0,
        "duplicated": 0,
        "business_dead_lettered": 0,
        "in_doubt_settled": len(in_doubt),
        "revived": len(revived),
    }
    for command in commands.values():
        stats[command.status] += 1
        applied = effects.get(command.command_id)
        if command.status == "info" and applied:
            stats["recovered"] += 1
        revival = revived.get(command.command_id)
        if revival is not None and command.status == "ok":
            if drain is not None and not any(op.index > revival.index for op in applied or ()):
                stats["lost"] += 1
                anomalies.append(
                    Anomaly(
                        "lost",
                        f"{command.label()} was replayed from the DLQ by {revival.describe()} after its "
                        f"cause was fixed and never took effect before the drain #{drain.index}",
                        (revival.index,),
                    )
                )
            continue
        if command.status != "ok" or applied:
            continue
        if command.command_id in business:
            stats["business_dead_lettered"] += 1
            continue
        if drain is None:
            continue
        stats["lost"] += 1
        assert command.outcome is not None
        involved = [command.outcome]
        note = ""
        if command.command_id in dead:
            involved.append(dead[command.command_id])
            note = f", dead-lettered by #{dead[command.command_id].index}"
        anomalies.append(
            Anomaly(
                "lost",
                f"{command.label()} acknowledged by {command.outcome.describe()} never took effect "
                f"before the drain #{drain.index}{note}",
                tuple(op.index for op in involved),
            )
        )

    for command_id, applied in effects.items():
        sent = commands.get(command_id)
        if sent is None or sent.status == "fail":
            stats["unexpected"] += 1
            why = "was never sent" if sent is None else f"certainly failed ({sent.first.describe()})"
            anomalies.append(
                Anomaly(
                    "unexpected",
                    f"command {command_id} took effect in {applied[0].describe()} but {why}",
                    tuple(op.index for op in applied) + ((sent.first.index,) if sent else ()),
                )
            )
        if len(applied) > 1:
            stats["duplicated"] += 1
            anomalies.append(
                Anomaly(
                    "duplicated",
                    f"command {command_id} took effect {len(applied)} times: "
                    + "; ".join(op.describe() for op in applied),
                    tuple(op.index for op in applied),
                )
            )
    return verdict(NAME, anomalies, stats)
