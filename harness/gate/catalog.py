"""The gate's side of the hostile-input catalog (:mod:`flowgate.harness.hostile`, contract v1.2 section 6):
the context a kind's ``transform`` builds its message from, the outcome the gate expects, and the
per-kind verdict.

Each planned hostile message (``workload.PlannedHostile``) is a fresh ``PlaceOrder`` of its own
entity (its own message group). :func:`context` gives a kind a :class:`flowgate.harness.hostile.BasicContext`
over the gate's KMS client: the valid wire message of that command (the reference's encoding and
attributes, sealed for the main command queue with the run's key when encryption is on), the
command and the event it raises, the run's second key (``other_key``), the ``eventId`` of a command
the probe has seen take effect (``known_event_id``) and of one sent and not yet applied
(``pending``). :func:`judge` compares what the implementation did with the kind's outcome:

* ``DeadLetter(code)`` and ``BusinessDeadLetter`` (code ``BusinessError``: the contract forwards a
  refused command to the DLQ) -- the message must end in a DLQ with that ``DeadLetterReason`` code
  and take no effect. Anomalies: ``hostile-not-dead-lettered``, ``hostile-wrong-reason`` (another
  code -- from the contract's table or not), ``hostile-dead-letter-without-reason`` (moved by SQS's
  native redrive), ``hostile-applied`` (an event was published for it);
* ``Applied(why)`` -- the message is a valid command in a hostile shape: it must take effect
  exactly once (one event per event name) and never be dead-lettered. Anomalies:
  ``hostile-not-applied``, ``hostile-dead-lettered``;
* ``Refused(why)`` -- SQS refuses the send: the gate expects the send to fail (a backend that
  accepts it is reported, not judged: nothing then says what a consumer must do).

A planned kind the gate could not send for another reason is ``hostile-not-sent`` (never a silent
pass); one whose context cannot supply what it needs (:class:`flowgate.harness.hostile.Unavailable`, e.g.
no command has taken effect yet) or that targets a view queue (the gate contract has none) is
listed as *not run*, with the reason.

The shared checkers see the same run too (a DeadLetter kind is a ``poison`` op, an Applied kind a
client ``send``), so a failure usually shows twice: once by kind here, once as the generic anomaly
(``poison-not-dead-lettered``, ``lost``, ``integrity-breach``...).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from flowgate.harness import hostile as hc
from flowgate.harness.checkers.model import Anomaly, Verdict
from flowgate.harness.gate.workload import PlannedHostile
from flowgate.reference.domain.orders import PlaceOrder
from flowgate.reference.messages import new_command

#: expected outcome of a kind SQS itself refuses (``Refused``)
REFUSED = "Refused"
#: the gate contract has no view queue; kinds aimed at one are not run
COMMANDS_TARGET = "commands"


def outcome_code(kind: hc.HostileKind) -> str:
    """The expected outcome as a string: the DeadLetter reason code (``BusinessError`` for a
    business refusal, ``*`` for any agreed code), :data:`REFUSED`, or ``""`` for Applied."""
    outcome = kind.outcome
    if isinstance(outcome, hc.DeadLetter):
        return outcome.reason
    if isinstance(outcome, hc.BusinessDeadLetter):
        return "BusinessError"
    if isinstance(outcome, hc.AnyDeadLetter):
        return "*"
    if isinstance(outcome, hc.Refused):
        return REFUSED
    return ""


def applicable(encrypted: bool) -> list[hc.HostileKind]:
    """Every catalog kind that applies to a gate run (FIFO queues) with encryption on (or off),
    in catalog order."""
    return list(hc.kinds(encrypted=encrypted, fifo=True))


def by_name() -> dict[str, hc.HostileKind]:
    return dict(hc.CATALOG)


def context(
    planned: PlannedHostile,
    *,
    encrypted: bool,
    queue: str,
    rng: random.Random,
    kms: Any,
    key_id: str,
    other_key: str,
    known: Callable[[], str | None],
    pending: Callable[[], tuple[str, str] | None],
) -> hc.BasicContext:
    """The context of one planned hostile message: its fresh PlaceOrder as the reference encodes
    it (correlation id = command id, as the gate sends every command), sealed for ``queue`` with
    ``key_id`` when ``encrypted``."""
    c = planned.command
    p = c.payload
    payload = PlaceOrder(str(p["customerId"]), str(p["sku"]), int(p["quantity"]), int(p["amountCents"]))
    cmd = new_command(
        payload,
        c.entity_id,
        is_new=True,
        sequence_no=c.seq,
        event_id=c.command_id,
        correlation_id=c.command_id,
    )
    return hc.context_for(
        cmd,
        encrypted=encrypted,
        queue=queue,
        views_queue=f"{queue.removesuffix('.fifo')}-order-views.fifo",
        group_id=c.entity_id,
        dedup_id=planned.hostile_id,
        rng=rng,
        kms=kms,
        key_id=key_id,
        known=known,
        pending=pending,
        other_key=(lambda: other_key) if other_key else None,
    )


def string_attributes(attributes: dict[str, dict[str, Any]]) -> dict[str, str]:
    """The String values of SQS-shaped message attributes (others dropped)."""
    return {k: v["StringValue"] for k, v in attributes.items() if isinstance(v.get("StringValue"), str)}


def carried(wire: hc.WireMessage, ctx: hc.HostileContext) -> tuple[str, str, int, str]:
    """(eventId, entity id, sequenceNo, command type) of the command a hostile message carries."""
    event_id, entity, seq = hc.carried_identity(wire, ctx)
    ctype = string_attributes(wire.attributes).get("CommandType", ctx.command.name)
    return event_id, entity, seq, ctype


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the hostile report."""

    hostile_id: str
    kind: str
    category: str
    expected: str  # "DeadLetter(<code>)" | "Applied"
    observed: str
    ok: bool
    anomaly: str = ""
    detail: str = ""


def _expected(planned: PlannedHostile) -> str:
    if planned.reason == REFUSED:
        return "Refused (by SQS)"
    return f"DeadLetter({planned.reason})" if planned.reason else "Applied"


def judge(
    planned: Sequence[PlannedHostile],
    ops: Sequence[Any],
    *,
    excuse_reasonless: bool = False,
) -> tuple[Verdict, list[Row]]:
    """Judge every planned hostile message against the history (``hostile`` send ops carrying
    ``hostile_id``, ``dead_letter`` ops carrying ``hostile_id``, ``effect`` ops by ``command_id``).
    ``excuse_reasonless``: a reason-less dead letter of a DeadLetter kind is not an anomaly (the
    run SIGKILLed a worker and the implementation forwarded other poison with a reason itself:
    contract section 6, crash-stranded poison)."""
    kinds = by_name()
    sent: dict[str, Any] = {}
    letters: dict[str, list[Any]] = {}
    effects: dict[str, list[Any]] = {}
    for op in ops:
        if op.f == "hostile":
            sent[str(op.value.get("hostile_id"))] = op
        elif op.f == "dead_letter" and op.value.get("hostile_id"):
            letters.setdefault(str(op.value["hostile_id"]), []).append(op)
        elif op.f == "effect" and op.type == "ok":
            effects.setdefault(str(op.value.get("command_id")), []).append(op)
    rows: list[Row] = []
    anomalies: list[Anomaly] = []
    for p in planned:
        kind = kinds.get(p.kind)
        category = str(getattr(kind, "category", "?"))
        send = sent.get(p.hostile_id)
        expected = _expected(p)
        if send is not None and send.value.get("not_run"):
            observed = f"not run: {send.value['not_run']}"
            rows.append(Row(p.hostile_id, p.kind, category, expected, observed, True, detail=observed))
            continue
        if p.reason == REFUSED:
            refused = send is not None and not send.value.get("sent")
            observed = (
                "refused by SQS"
                if refused
                else "accepted by the backend: not judged (nothing says what a consumer must do)"
            )
            rows.append(Row(p.hostile_id, p.kind, category, expected, observed, True, detail=observed))
            continue
        if send is None or not send.value.get("sent"):
            # never silently passed: a kind the gate could not send is not a kind that was judged
            why = str(send.value.get("error", "?")) if send is not None else "the run ended before"
            detail = f"{p.kind} ({category}) was not sent: {why}"
            rows.append(
                Row(p.hostile_id, p.kind, category, expected, "not sent", False, "hostile-not-sent", detail)
            )
            anomalies.append(Anomaly("hostile-not-sent", detail, (send.index,) if send is not None else ()))
            continue
        command_id = str(send.value.get("command_id") or p.command.command_id)
        dls = letters.get(p.hostile_id, [])
        codes = [str(op.value.get("reason", "")).split(":", 1)[0].strip() for op in dls]
        # an event caused by the hostile message: the command id the send recorded (the message's
        # EventId, unless that is a valid command of the run -- a reused id -- then its planned id)
        applied = effects.get(command_id, [])
        ids = tuple(op.index for op in (send, *dls, *applied))
        if p.reason:
            if applied:
                observed, anomaly = f"applied ({len(applied)} event(s))", "hostile-applied"
            elif not dls:
                observed, anomaly = "not dead-lettered", "hostile-not-dead-lettered"
            elif not codes[0]:
                observed = "dead-lettered without a reason (native redrive)"
                anomaly = "" if excuse_reasonless else "hostile-dead-letter-without-reason"
            elif codes[0] != p.reason and p.reason != "*":
                observed, anomaly = f"DeadLetter({codes[0]})", "hostile-wrong-reason"
            else:
                observed, anomaly = f"DeadLetter({codes[0]})", ""
        elif dls:
            observed = f"dead-lettered ({codes[0] or 'no reason'})"
            anomaly = "hostile-dead-lettered"
        elif not applied:
            observed, anomaly = "no effect", "hostile-not-applied"
        else:
            observed, anomaly = f"applied ({len(applied)} event(s))", ""
        detail = f"{p.kind} ({category}) sent as {p.hostile_id}: expected {expected}, observed {observed}"
        rows.append(Row(p.hostile_id, p.kind, category, expected, observed, not anomaly, anomaly, detail))
        if anomaly:
            anomalies.append(Anomaly(anomaly, detail, ids))
    stats = {
        "kinds": len(planned),
        "not_run": sum(1 for r in rows if r.observed.startswith("not run")),
        "dead_letter_kinds": sum(1 for p in planned if p.reason),
        "applied_kinds": sum(1 for p in planned if not p.reason),
        "ok": sum(1 for r in rows if r.ok),
    }
    return Verdict("hostile", not anomalies, anomalies, stats), rows


def render_markdown(rows: Sequence[Row], header: str = "") -> str:
    """The report section: one line per kind, what was expected and what the implementation did."""
    lines = [f"# Hostile inputs{f' -- {header}' if header else ''}", ""]
    lines += ["| kind | category | expected | observed | verdict |", "|---|---|---|---|---|"]
    for r in rows:
        verdict = "ok" if r.ok else f"FAIL ({r.anomaly})"
        lines.append(f"| `{r.kind}` | {r.category} | {r.expected} | {r.observed} | {verdict} |")
    failed = sum(1 for r in rows if not r.ok)
    lines += ["", f"{len(rows)} kind(s), {failed} failed."]
    return "\n".join(lines) + "\n"


def rows_json(rows: Sequence[Row]) -> str:
    return json.dumps(
        [
            {
                "hostile_id": r.hostile_id,
                "kind": r.kind,
                "category": r.category,
                "expected": r.expected,
                "observed": r.observed,
                "ok": r.ok,
                "anomaly": r.anomaly,
            }
            for r in rows
        ],
        indent=2,
    )
