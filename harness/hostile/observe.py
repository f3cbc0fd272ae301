"""What the reference does today with each catalog kind, observed on the simulator, and the
``docs/hostile.md`` table built from it (``python -m flowgate.harness.hostile --markdown``)."""

from __future__ import annotations

import traceback
from collections.abc import Iterable
from typing import Any

from .catalog import CATALOG
from .core import HostileKind

SEEDS = range(6)  # a kind that needs an applied command is retried on the next seed until sent


def observe(name: str, *, encrypted: bool, fifo: bool = True, mutant: str | None = None) -> str:
    """One short simulation with one message of ``name``; what became of it, e.g.
    ``DeadLetter(DecodeError)``, ``Applied``, ``crash: RecursionError``, ``dropped``."""
    from flowgate.harness.faults import FaultPlan
    from flowgate.harness.simulation import SimConfig, run_simulation

    for seed in SEEDS:
        config = SimConfig(
            seed=seed,
            orders=3,
            workers=2,
            fifo=fifo,
            encryption=encrypted,
            faults=FaultPlan(poison=(name,)),
            snapshots=False,
        )
        try:
            result = run_simulation(config, mutant=mutant)
        except Exception as exc:  # a poll that raised: the defect the table must show
            where = "poll" if "reference" in "".join(traceback.format_tb(exc.__traceback__)) else "harness"
            return f"crash in {where}: {type(exc).__name__}"
        found = _outcome(name, result.history.ops)
        if found is not None:
            return found
    return "not sent"


def _outcome(name: str, ops: list[Any]) -> str | None:
    sent = [
        op
        for op in ops
        if op.process == "harness"
        and op.f in ("poison", "send")
        and (op.value.get("kind") == name or op.value.get("hostile") == name)
    ]
    if not sent:
        return None
    op = sent[0]
    if op.f == "poison" and op.type == "fail":
        return "Refused"
    message_id = op.value.get("message_id")
    entity = op.value.get("entity_id")
    command_id = op.value.get("command_id")
    dead = [
        o for o in ops if o.f == "dead_letter" and o.type == "ok" and o.value.get("message_id") == message_id
    ]
    effects = [
        o
        for o in ops
        if o.f == "effect"
        and o.type == "ok"
        and (o.value.get("entity_id") == entity or o.value.get("command_id") == command_id)
    ]
    projections = [
        o for o in ops if o.f == "project" and o.type == "ok" and o.value.get("entity_id") == entity
    ]
    business = [o for o in ops if o.f == "business_dead_letter" and o.value.get("command_id") == command_id]
    parts = []
    if dead:
        reason = str(dead[0].value.get("reason", ""))
        parts.append(f"DeadLetter({reason.split(':', 1)[0]})")
    if effects:
        parts.append("Applied" if len(effects) == 1 else f"Applied x{len(effects)}")
    if business:
        parts.append("BusinessDeadLetter")
    if projections and not effects:
        parts.append("Projected")
    return " + ".join(parts) or "dropped"


def rows(kinds: Iterable[HostileKind] | None = None) -> list[tuple[HostileKind, str, str]]:
    """(kind, observed on a plaintext bus, observed on an encrypted bus); ``-`` where it does not apply."""
    out = []
    for k in kinds if kinds is not None else CATALOG.values():
        plain = observe(k.name, encrypted=False) if k.applies(encrypted=False) else "-"
        sealed = observe(k.name, encrypted=True) if k.applies(encrypted=True) else "-"
        out.append((k, plain, sealed))
    return out


def _cell(documented: str, observed: str) -> str:
    if observed == "-":
        return "-"
    return observed if observed == documented else f"**{observed}**"


def markdown(table: list[tuple[HostileKind, str, str]] | None = None) -> str:
    """The generated part of docs/hostile.md."""
    table = table if table is not None else rows()
    lines = [
        "| kind | category | encryption | documented outcome | reference today (plaintext) "
        "| reference today (encrypted) | description |",
        "|---|---|---|---|---|---|---|",
    ]
    differ = 0
    for k, plain, sealed in table:
        documented = str(k.outcome)
        if any(o not in ("-", documented) for o in (plain, sealed)):
            differ += 1
        why = f" ({k.outcome.why})" if hasattr(k.outcome, "why") else ""
        queue = "" if k.queue == "any" else f" ({k.queue} only)"
        lines.append(
            f"| `{k.name}` | {k.category} | {k.encryption}{queue} | {documented}{why} | "
            f"{_cell(documented, plain)} | {_cell(documented, sealed)} | {k.description.replace('|', '/')} |"
        )
    lines.append("")
    lines.append(
        f"{len(table)} kinds; {differ} where the reference today differs from the documented "
        "outcome (in bold)."
    )
    return "\n".join(lines) + "\n"


BEGIN = "<!-- BEGIN GENERATED: python -m flowgate.harness.hostile --markdown -->"
END = "<!-- END GENERATED -->"


def splice(document: str, table: str) -> str:
    """``document`` with the text between the generated markers replaced by ``table``."""
    head, sep, rest = document.partition(BEGIN)
    if not sep:
        raise ValueError("docs/hostile.md lacks the generated-table markers")
    _, sep2, tail = rest.partition(END)
    if not sep2:
        raise ValueError("docs/hostile.md lacks the end marker")
    return f"{head}{BEGIN}\n{table}{END}{tail}"


__all__ = ["BEGIN", "END", "hostile_problems", "markdown", "observe", "rows", "splice"]


def hostile_problems(ops: list[Any]) -> list[str]:
    """Every hostile message of a simulated history that did not end as documented:

    * a ``poison`` op (dead-letter kind) needs a ``dead_letter`` op *from a listener* with its
      ``reason_code`` (``*``: any agreed code) -- SQS's redrive (``sqs-redrive``) means the listener
      never forwarded it -- and no effect or projection for its entity;
    * a harness ``send`` op of a hostile kind needs exactly one effect (or a business dead letter
      when it expects one) and no dead letter."""
    from .core import REASON_CODES

    problems: list[str] = []
    dead: dict[str, list[Any]] = {}
    effects: dict[str, int] = {}
    touched: set[str] = set()
    business: set[str] = set()
    for op in ops:
        if op.type != "ok":
            continue
        if op.f == "dead_letter":
            dead.setdefault(str(op.value.get("message_id")), []).append(op)
        elif op.f == "effect":
            effects[str(op.value.get("command_id"))] = effects.get(str(op.value.get("command_id")), 0) + 1
            touched.add(str(op.value.get("entity_id")))
        elif op.f == "project":
            touched.add(str(op.value.get("entity_id")))
        elif op.f == "business_dead_letter":
            business.add(str(op.value.get("command_id")))
    for op in ops:
        if op.process != "harness" or op.type != "ok":
            continue
        if op.f == "poison" and op.value.get("reason_code"):
            kind, code = op.value.get("kind"), str(op.value["reason_code"])
            found = dead.get(str(op.value.get("message_id")), [])
            reasons = [str(d.value.get("reason", "")).split(":", 1)[0] for d in found]
            if not found:
                problems.append(f"{kind}: never dead-lettered (expected {code})")
            elif not any(r == code or (code == "*" and r in REASON_CODES) for r in reasons):
                problems.append(f"{kind}: dead-lettered as {reasons}, expected {code}")
            if op.value.get("entity_id") in touched:
                problems.append(f"{kind}: took effect on {op.value.get('entity_id')}")
        elif op.f == "send" and op.value.get("hostile"):
            kind, command_id = op.value["hostile"], str(op.value.get("command_id"))
            if op.value.get("expect_business_failure"):
                if command_id not in business:
                    problems.append(f"{kind}: expected a business dead letter for {command_id}")
            elif effects.get(command_id, 0) != 1:
                problems.append(f"{kind}: took effect {effects.get(command_id, 0)} times (expected once)")
            if str(op.value.get("message_id")) in dead:
                problems.append(f"{kind}: dead-lettered although it is valid")
    return problems
