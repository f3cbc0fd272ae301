"""Replay equivalence: replaying the command store rebuilds the live state exactly."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flowgate.harness.history import Op

from .model import Anomaly, HistoryLike, Verdict, as_ops, sid, verdict

NAME = "replay_equivalence"

_MISSING = object()


def diff_paths(left: Any, right: Any, path: str = "", limit: int = 50) -> list[tuple[str, Any, Any]]:
    """The paths where two JSON-like values differ, with the value on each side.

    Mappings are compared key by key (a missing key shows as ``<missing>``), lists and tuples
    index by index, everything else with ``==``. At most ``limit`` differences are returned.
    """
    found: list[tuple[str, Any, Any]] = []

    def walk(a: Any, b: Any, at: str) -> None:
        if len(found) >= limit:
            return
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            for key in sorted(set(a) | set(b), key=str):
                walk(a.get(key, _MISSING), b.get(key, _MISSING), f"{at}.{key}" if at else str(key))
            return
        if isinstance(a, list | tuple) and isinstance(b, list | tuple):
            for position in range(max(len(a), len(b))):
                walk(
                    a[position] if position < len(a) else _MISSING,
                    b[position] if position < len(b) else _MISSING,
                    f"{at}[{position}]",
                )
            return
        if a is _MISSING or b is _MISSING or type(a) is bool or type(b) is bool:
            same = a is b or (type(a) is type(b) and a == b)
        else:
            same = a == b
        if not same:
            found.append((at or "<root>", a, b))

    walk(left, right, path)
    return found


def _show(value: Any) -> str:
    return "<missing>" if value is _MISSING else repr(value)


def _snapshot(op: Op) -> dict[str, Any]:
    return {"entity": op.value.get("entity", {}), "views": op.value.get("views", {})}


def replay_equivalence(history: HistoryLike, *, max_paths: int = 10) -> Verdict:
    """For each entity with both a ``state`` and a ``replay`` snapshot (the last of each),
    the entity and its views are deep-equal.

    * ``replay-divergence`` -- the paths where the replayed state differs from the live one.

    Entities with only one of the two snapshots are counted (``unpaired``), not judged.
    """
    ops = as_ops(history)
    live: dict[str, Op] = {}
    replayed: dict[str, Op] = {}
    for op in ops:
        if op.f not in ("state", "replay") or op.type == "fail":
            continue
        entity = sid(op.value.get("entity_id"))
        if entity is None:
            continue
        (live if op.f == "state" else replayed)[entity] = op

    anomalies: list[Anomaly] = []
    compared = 0
    for entity, state_op in live.items():
        replay_op = replayed.get(entity)
        if replay_op is None:
            continue
        compared += 1
        differences = diff_paths(_snapshot(state_op), _snapshot(replay_op), limit=max_paths + 1)
        if differences:
            shown = differences[:max_paths]
            more = " ..." if len(differences) > max_paths else ""
            anomalies.append(
                Anomaly(
                    "replay-divergence",
                    f"entity {entity}: live state #{state_op.index} and replay #{replay_op.index} differ at "
                    + "; ".join(f"{path}: live {_show(a)} != replay {_show(b)}" for path, a, b in shown)
                    + more,
                    (state_op.index, replay_op.index),
                )
            )
    unpaired = len(set(live) ^ set(replayed))
    return verdict(NAME, anomalies, {"compared": compared, "unpaired": unpaired})
