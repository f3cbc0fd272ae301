"""The gate's side of the hostile catalog (``harness/hostile.py``, contract v1.2 section 6):
the :class:`GateContext` a kind's ``transform`` builds its message from, and the per-kind verdict.

Each planned hostile message (``workload.PlannedHostile``) is a fresh ``PlaceOrder`` of its own
entity (its own message group). :class:`GateContext` offers a kind the valid wire message of that
command (sealed for the main command queue with the run's key when encryption is on), its body
and plaintext, and :meth:`GateContext.seal` to seal other bytes with the run's KMS key (through
``harness/gate/envelope.py``); the kind returns the :class:`~harness.hostile.WireMessage` the gate
sends. :func:`judge` compares what the implementation did with the kind's declared outcome:

* ``DeadLetter(code)`` -- the message must end in a DLQ with ``DeadLetterReason`` code ``code``
  and take no effect. Anomalies: ``hostile-not-dead-lettered``, ``hostile-wrong-reason`` (another
  code -- from the contract's table or not), ``hostile-dead-letter-without-reason`` (moved by SQS's
  native redrive), ``hostile-applied`` (an event was published for it);
* ``Applied(why)`` -- the message is a valid command in a hostile shape: it must take effect
  exactly once (one event per event name) and never be dead-lettered. Anomalies:
  ``hostile-not-applied``, ``hostile-dead-lettered``.

A planned kind the gate could not build or send is ``hostile-not-sent`` (never a silent pass).

The shared checkers see the same run too (a DeadLetter kind is a ``poison`` op, an Applied kind a
client ``send``), so a failure usually shows twice: once by kind here, once as the generic anomaly
(``poison-not-dead-lettered``, ``lost``, ``integrity-breach``...).
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness import hostile as catalog
from harness.checkers.model import Anomaly, Verdict
from harness.gate import envelope
from harness.gate.workload import PlannedHostile

#: how long :meth:`GateContext.known_event_id` waits for a first effect of the run
KNOWN_ID_WAIT = 30.0


def outcome_code(kind: catalog.HostileKind) -> str:
    """The expected outcome as a string: the DeadLetter reason code, or ``""`` for Applied."""
    outcome = kind.outcome
    return str(outcome.reason_code) if isinstance(outcome, catalog.DeadLetter) else ""


def applicable(encrypted: bool) -> list[catalog.HostileKind]:
    """Every catalog kind that applies to a run with encryption on (or off), in catalog order."""
    return list(catalog.kinds(encrypted=encrypted))


def by_name() -> dict[str, catalog.HostileKind]:
    return {k.name: k for k in catalog.CATALOG}


@dataclass(slots=True)
class GateContext:
    """:class:`harness.hostile.HostileContext` for one planned hostile message of a gate run.

    ``sealer(key_id, ctx, plaintext) -> body`` seals with KMS; ``known`` returns the command ids
    whose effect the probe has seen so far (read at call time)."""

    planned: PlannedHostile
    valid: catalog.WireMessage
    command: dict[str, Any]
    plaintext: bytes
    encrypted: bool
    queue: str
    rng: random.Random
    key_id: str
    foreign_key_id: str
    sealer: Callable[[str, dict[str, str], bytes], str]
    known: Callable[[], Iterable[str]]
    done: threading.Event = field(default_factory=threading.Event)

    def seal(
        self,
        plaintext: bytes,
        destination: str | None = None,
        key: str | None = None,
        *,
        message_id: str | None = None,
        entity_id: str | None = None,
        message_type: str | None = None,
    ) -> str:
        """``plaintext`` sealed as this message (its ``EventId``, entity and command type, unless
        overridden: a kind that changes an attribute seals for the changed value) for
        ``destination`` (default: the command queue) with ``key`` (default: the run's key;
        ``"foreign"``: the run's second key, which the implementation must not accept; any other
        value: that key id)."""
        c = self.planned.command
        ctx = envelope.context(
            message_id or c.command_id,
            destination or self.queue,
            entity_id or c.entity_id,
            message_type or c.command_type,
        )
        key_id = self.key_id if key is None else self.foreign_key_id if key == "foreign" else key
        return self.sealer(key_id, ctx, plaintext)

    def known_event_id(self) -> str:
        """The ``eventId`` of a command of this run that has already taken effect (waits up to
        :data:`KNOWN_ID_WAIT` for a first one; then any command id the run sent validly)."""
        deadline = time.monotonic() + KNOWN_ID_WAIT
        while True:
            seen = sorted(self.known())
            if seen:
                return seen[self.rng.randrange(len(seen))]
            if time.monotonic() >= deadline or self.done.wait(0.25):
                break
        raise LookupError("no command of this run has taken effect yet")


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
            elif codes[0] != p.reason:
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
