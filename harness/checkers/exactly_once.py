"""Exactly-once effects under at-least-once delivery (idempotency)."""

from __future__ import annotations

from typing import Any

from flowgate.harness.history import Op

from .model import Anomaly, HistoryLike, Verdict, as_ops, sid, verdict

NAME = "exactly_once_effect"


def exactly_once_effect(history: HistoryLike) -> Verdict:
    """Every command that took effect did so exactly once; every event is projected at most
    once into each view.

    * ``duplicate-effect`` -- two or more ``effect`` ops for one command id;
    * ``duplicate-projection`` -- two or more ``project`` ops for one (event id, view).

    Recognised redeliveries (``duplicate`` ops) and events published more than once are
    counted in the stats: at-least-once delivery allows both.
    """
    ops = as_ops(history)
    effects: dict[str, list[Op]] = {}
    projections: dict[tuple[str, str], list[Op]] = {}
    published: dict[str, int] = {}
    recognised = 0
    for op in ops:
        if op.type != "ok":
            continue
        if op.f == "effect":
            command_id = sid(op.value.get("command_id"))
            if command_id is not None:
                effects.setdefault(command_id, []).append(op)
        elif op.f == "project":
            event_id = sid(op.value.get("event_id"))
            if event_id is not None:
                view = sid(op.value.get("view")) or ""
                projections.setdefault((event_id, view), []).append(op)
        elif op.f == "publish":
            event_id = sid(op.value.get("event_id"))
            if event_id is not None:
                published[event_id] = published.get(event_id, 0) + 1
        elif op.f == "duplicate":
            recognised += 1

    anomalies: list[Anomaly] = []
    for command_id, applied in effects.items():
        if len(applied) > 1:
            anomalies.append(
                Anomaly(
                    "duplicate-effect",
                    f"command {command_id} took effect {len(applied)} times: "
                    + "; ".join(op.describe() for op in applied),
                    tuple(op.index for op in applied),
                )
            )
    for (event_id, view), projected in projections.items():
        if len(projected) > 1:
            anomalies.append(
                Anomaly(
                    "duplicate-projection",
                    f"event {event_id} projected {len(projected)} times into view {view!r}: "
                    + "; ".join(op.describe() for op in projected),
                    tuple(op.index for op in projected),
                )
            )
    stats: dict[str, Any] = {
        "commands_applied": len(effects),
        "effects": sum(len(applied) for applied in effects.values()),
        "projections": sum(len(projected) for projected in projections.values()),
        "duplicates_recognised": recognised,
        "events_published": len(published),
        "events_republished": sum(1 for count in published.values() if count > 1),
    }
    return verdict(NAME, anomalies, stats)
