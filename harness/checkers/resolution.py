"""Resolution: every message sent to the implementation has a decided fate by the end of the run."""

from __future__ import annotations

from typing import Any

from flowgate.harness.history import Op

from .model import Anomaly, HistoryLike, Verdict, as_ops, effects_taken, is_harness_poison, sid, verdict

NAME = "resolution"

#: What a message still in a queue after the drain is, as the history tells it.
KINDS = ("valid", "hostile", "duplicate")


def _last_drain(ops: list[Op]) -> Op | None:
    found = None
    for op in ops:
        if op.f == "drain" and op.type == "ok":
            found = op
    return found


def _state(entry: dict[str, Any]) -> str:
    state = str(entry.get("state") or "in queue")
    count = entry.get("receive_count")
    return f"{state}, receive count {count}" if count is not None else state


def resolution(history: HistoryLike) -> Verdict:
    """Every message the run sent ends effected, deleted as a duplicate, or dead-lettered.

    Reads the last ``ok`` ``drain`` op's ``unresolved`` list: the messages still in a command or
    subscription queue (visible, in flight or delayed) once the run waited, bounded, for every
    fate -- including SQS's own redrive, VT x its ``maxReceiveCount`` plus a receive interval after
    the last receive. Each entry may carry ``message_id``, ``command_id``, ``queue``, ``state``
    (``visible`` / ``in flight`` / ``delayed``), ``receive_count``, ``kind`` and, when the
    recorder cannot name an in-flight message (SQS shows only its count), ``candidates`` (the
    sent messages that could be it, with ``count``).

    * ``unresolved`` -- one per entry: the message (or the candidates), its kind -- ``hostile``
      (a ``poison`` op names its message or command), ``duplicate`` (a copy of a command that
      already took effect, or the entry says so), else ``valid`` -- and its last known state.

    A message neither handled, nor deleted, nor dead-lettered (parked with a long visibility,
    or left for SQS to redrive without a reason after the run) is otherwise invisible: the
    effect may be there, the DLQ empty, yet the message comes back after the run.
    """
    ops = as_ops(history)
    drain = _last_drain(ops)
    if drain is None:
        return verdict(NAME, [], {"judged": False})
    entries = [e for e in drain.value.get("unresolved") or () if isinstance(e, dict)]
    poison_ids: set[str] = set()
    for op in ops:
        if is_harness_poison(op):
            for key in ("message_id", "poison_id", "command_id"):
                found = sid(op.value.get(key))
                if found is not None:
                    poison_ids.add(found)
    effected = effects_taken(ops, "effect")
    anomalies: list[Anomaly] = []
    counts = dict.fromkeys((*KINDS, "unnamed"), 0)
    for entry in entries:
        message_id, command_id = sid(entry.get("message_id")), sid(entry.get("command_id"))
        where = entry.get("queue") or "?"
        if message_id is None:  # SQS shows only a count of in-flight messages (the gate)
            count = int(entry.get("count") or 1)
            counts["unnamed"] += count
            candidates = [str(c) for c in entry.get("candidates") or []]
            shown = "; ".join(candidates[:8]) + (
                f"; ... ({len(candidates)} in all)" if len(candidates) > 8 else ""
            )
            anomalies.append(
                Anomaly(
                    "unresolved",
                    f"{count} unnamed message(s) still in {where} after the drain #{drain.index} "
                    f"({_state(entry)}): neither effected, nor deleted as a duplicate, nor dead-lettered "
                    f"with a reason; sent messages that could be it, most likely first: {shown or 'none recorded'}",
                    (drain.index,),
                )
            )
            continue
        kind = str(entry.get("kind") or "")
        if kind not in KINDS:
            if (message_id in poison_ids) or (command_id in poison_ids):
                kind = "hostile"
            elif command_id is not None and command_id in effected:
                kind = "duplicate"
            else:
                kind = "valid"
        counts[kind] += 1
        what = f"message {message_id}" + (f" (command {command_id})" if command_id else "")
        if entry.get("event_id"):
            what += f" (event {entry['event_id']})"
        anomalies.append(
            Anomaly(
                "unresolved",
                f"{kind} {what} is still in {where} after the drain #{drain.index} ({_state(entry)}): "
                "neither effected, nor deleted as a duplicate, nor dead-lettered with a reason",
                (drain.index,),
            )
        )
    stats: dict[str, Any] = {"judged": True, "unresolved": sum(counts.values()), **counts}
    return verdict(NAME, anomalies, stats)
