"""State reads judged against the model of acknowledged commands (Jepsen's list-append reads).

Events alone cannot show a command applied twice: its event ids derive from the command and the
FIFO topic drops repeats, so a second application publishes nothing new. The workload therefore
mixes *reads* into every entity's commands (contract v1.3: ``GetOrder``, an ordinary command of
the entity's FIFO group, answered by an ``OrderState`` event). A read reports the entity's state
at its place in the group: ``applied`` (the eventIds of the state-changing commands in the order
they took effect: the entity's command log), ``version`` and ``status``. Whoever observes the
answer records a ``read`` op (:func:`read_op_value`); :func:`read_state` judges every one.

The model: an entity's state-changing commands take effect exactly once each, in sequence
order, and a read at sequence ``n`` sees exactly those below ``n`` -- every acknowledged one
(``ok`` send, not dead-lettered), and any subset of those in doubt (``info`` send, or
dead-lettered), never one whose send failed, one of another entity or one above ``n``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any, Final

from flowgate.harness.history import Op

from .model import Anomaly, Command, HistoryLike, Verdict, as_ops, get_seq, index_sends, sid, verdict

NAME = "read_state"
#: the command type of a read and the event that answers it (contract v1.3, section 2)
READ_COMMANDS: Final = frozenset({"GetOrder"})
STATE_EVENTS: Final = frozenset({"OrderState"})
#: the order's status once a command of that type is the last one applied (contract section 2)
STATUS_AFTER: Final[Mapping[str, str]] = {
    "PlaceOrder": "PENDING",
    "AuthorizePayment": "PAID",
    "ReserveInventory": "RESERVED",
    "ConfirmOrder": "CONFIRMED",
    "CancelOrder": "CANCELLED",
}


def read_op_value(
    event_name: str, entity_id: str, seq: int, causation_id: str, payload: Any
) -> dict[str, Any] | None:
    """The value of the ``read`` op for one observed event, or ``None`` if it answers no read.

    ``state`` keeps ``status``, ``version`` and ``applied`` as the implementation reported them
    (a malformed field is kept as is and judged a ``read-mismatch``)."""
    if event_name not in STATE_EVENTS:
        return None
    body = payload if isinstance(payload, dict) else {}
    return {
        "command_id": causation_id,
        "entity_id": entity_id,
        "seq": seq,
        "state": {key: body.get(key) for key in ("status", "version", "applied")},
    }


def _dead_lettered(ops: list[Op]) -> set[str]:
    return {
        command_id
        for op in ops
        if op.type == "ok"
        and op.f in ("dead_letter", "business_dead_letter")
        and (command_id := sid(op.value.get("command_id"))) is not None
    }


def read_state(history: HistoryLike) -> Verdict:
    """Every ``read`` op's state equals the model of the acknowledged commands before it.

    * ``double-effect`` -- a command's eventId appears more than once in a read's ``applied``:
      its effect was applied twice (whatever the events said);
    * ``read-mismatch`` -- otherwise different from the model: an acknowledged command below the
      read missing, a command that must not be there (failed send, another entity, at or above
      the read's seq), the log not in sequence order, ``version`` not the log's length, or
      ``status`` not the one the last applied command leads to.

    A read whose own send is unknown is still judged (it was answered); reads of entities with
    no state-changing command below them are judged as well (an empty log is the model).
    """
    ops = as_ops(history)
    sends = index_sends(ops)
    dead = _dead_lettered(ops)
    writes: dict[str, list[Command]] = {}
    for command in sends.values():
        if command.entity_id is None or command.seq is None:
            continue
        if str(command.value.get("command_type", "")) in READ_COMMANDS:
            continue
        writes.setdefault(command.entity_id, []).append(command)
    anomalies: list[Anomaly] = []
    reads = 0
    for op in ops:
        if op.f != "read" or op.type != "ok":
            continue
        reads += 1
        entity, seq = sid(op.value.get("entity_id")), get_seq(op.value)
        state = op.value.get("state")
        state = state if isinstance(state, dict) else {}
        applied_raw = state.get("applied")
        if entity is None or seq is None or not isinstance(applied_raw, list | tuple):
            anomalies.append(
                Anomaly(
                    "read-mismatch", f"read without entity, seq or applied list: {op.describe()}", (op.index,)
                )
            )
            continue
        applied = [str(x) for x in applied_raw]
        found = _judge(entity, seq, applied, state, writes.get(entity, []), sends, dead)
        anomalies += [replace(a, message=f"{a.message}: {op.describe()}", ops=(op.index,)) for a in found]
    return verdict(NAME, anomalies, {"reads": reads})


def _judge(
    entity: str,
    seq: int,
    applied: list[str],
    state: Mapping[str, Any],
    writes: list[Command],
    sends: Mapping[str, Command],
    dead: set[str],
) -> list[Anomaly]:
    """Everything wrong with one read of ``entity`` at ``seq`` (the caller adds the read op)."""
    twice = sorted({x for x in applied if applied.count(x) > 1})
    if twice:
        counts = ", ".join(f"{x} x{applied.count(x)}" for x in twice)
        return [
            Anomaly(
                "double-effect",
                f"read of {entity} at seq {seq} shows command(s) applied more than once ({counts})",
            )
        ]
    below = {c.command_id: c for c in writes if c.seq is not None and c.seq < seq and c.status != "fail"}
    problems: list[str] = []
    extra = [x for x in applied if x not in below]
    if extra:
        where = [
            f"{x} ({'entity ' + str(sends[x].entity_id) + ' seq ' + str(sends[x].seq) if x in sends else 'never sent'})"
            for x in extra
        ]
        problems.append("extra effect(s) " + ", ".join(where))
    required = [c for c in below.values() if c.status == "ok" and c.command_id not in dead]
    missing = [c for c in required if c.command_id not in applied]
    if missing:
        problems.append("missing acknowledged " + ", ".join(f"{c.command_id} (seq {c.seq})" for c in missing))
    seqs = [s for x in applied if x in below and (s := below[x].seq) is not None]
    if seqs != sorted(seqs):
        problems.append(f"effects out of sequence order (seqs {seqs})")
    version = state.get("version")
    if not (isinstance(version, int) and not isinstance(version, bool)) or version != len(applied):
        problems.append(f"version {version!r} but {len(applied)} applied")
    last = below[applied[-1]] if applied and applied[-1] in below else None
    expected_status = STATUS_AFTER.get(str(last.value.get("command_type", ""))) if last else None
    if applied and expected_status is not None and state.get("status") != expected_status:
        problems.append(f"status {state.get('status')!r}, the model says {expected_status!r}")
    if problems:
        return [Anomaly("read-mismatch", f"read of {entity} at seq {seq}: " + "; ".join(problems))]
    return []
