"""The gate's judgement and reports: the shared checkers over the run's history plus the gate's
own verdicts, then the verdict table, ``verdicts.{txt,json}``, the hostile report, JUnit and Allure.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence

from flowgate.harness.checkers import check_all, render_table
from flowgate.harness.checkers.model import Anomaly, Verdict
from flowgate.harness.gate import catalog
from flowgate.harness.gate.reporting import write_allure, write_junit
from flowgate.harness.gate.state import EXIT_ANOMALY, EXIT_PASS, GateResult, RunState
from flowgate.harness.history import Op


def excuse_crash_stranded_poison(verdict: Verdict, ops: Sequence[Op]) -> Verdict:
    """A worker SIGKILLed while it holds a poison message on its ``maxReceive``-th receive cannot
    forward it; the queue's native redrive (same count, section 6) then moves it without a reason
    on the next receive. That is the backstop working, not a bug -- but only for *poison*, only in
    a run with a SIGKILL, and only if the implementation forwarded some poison itself with a reason
    (a listener that never dead-letters is still caught in every profile)."""
    if verdict.checker != "dead_letter" or verdict.valid:
        return verdict
    killed = any(op.f == "kill" for op in ops)
    with_reason = sum(
        1 for op in ops if op.f == "dead_letter" and op.value.get("poison") and op.value.get("reason")
    )

    def excused(a: Anomaly) -> bool:
        return (
            a.kind == "dead-letter-without-reason"
            and killed
            and with_reason > 0
            and bool(a.ops)
            and all(ops[i].f == "dead_letter" and ops[i].value.get("poison") for i in a.ops)
        )

    kept = [a for a in verdict.anomalies if not excused(a)]
    if len(kept) == len(verdict.anomalies):
        return verdict
    stats = dict(verdict.stats, excused_crash_stranded_poison=len(verdict.anomalies) - len(kept))
    return Verdict(verdict.checker, not kept, kept, stats)


def judge(
    s: RunState,
    *,
    require: frozenset[str],
    capabilities: frozenset[str],
    extra: list[Verdict],
    started: float,
    t_start: float,
) -> GateResult:
    """Judge the run in ``s`` once it is over: dump the history (``history.jsonl``), run the shared
    checkers, the event mapper's and the hostile catalog's per-kind verdicts, the cluster's
    ``lifecycle`` anomalies, ``extra`` (the replay verdict) and ``capability-missing`` for every
    ``require``d capability not among the ``capabilities`` declared; then write ``verdicts.txt``,
    ``verdicts.json``, ``hostile.md``, ``hostile.json``, ``junit.xml`` and ``allure-results/`` into
    ``s.out_dir``. ``started`` (wall clock) and ``t_start`` (monotonic) are when the run began.
    Passed = every verdict valid; checks in ``s.skipped`` are shown as not run, never as passed."""
    history_path = s.history.dump(s.out_dir / "history.jsonl")
    ops = s.history.ops
    # every DeadLetter kind is hostile: an effect caused by one is an integrity-breach
    dead_letter_kinds = {h.kind for h in s.plan.hostile if h.reason}
    verdicts = [
        excuse_crash_stranded_poison(v, ops)
        for v in check_all(s.history, require_encryption=s.encrypted, integrity_kinds=dead_letter_kinds)
    ]
    killed = any(op.f == "kill" for op in ops)
    forwarded = any(op.f == "dead_letter" and op.value.get("poison") and op.value.get("reason") for op in ops)
    hostile_verdict, hostile_rows = catalog.judge(s.plan.hostile, ops, excuse_reasonless=killed and forwarded)
    verdicts = [v for v in verdicts if not (v.checker == "replay_equivalence" and v.valid)] + [
        s.mapper.verdict(),
        hostile_verdict,
        Verdict(
            "lifecycle",
            not s.cluster.anomalies,
            list(s.cluster.anomalies),
            {"instances_started": len(s.cluster.instances)},
        ),
        *extra,
    ]
    missing = sorted(require - capabilities)
    if missing:
        verdicts.append(
            Verdict(
                "capabilities",
                False,
                [
                    Anomaly(
                        "capability-missing",
                        f"required capability {name!r} not declared on the ready line "
                        f"(declared: {sorted(capabilities) or 'none'})",
                    )
                    for name in missing
                ],
                {"declared": sorted(capabilities), "required": sorted(require)},
            )
        )
    table = render_table(verdicts) + "".join(
        f"\nnot run: {check} -- {why}" for check, why in sorted(s.skipped.items())
    )
    passed = all(v.valid for v in verdicts)
    duration = time.monotonic() - t_start
    header = (
        f"flowgate gate: impl={s.impl_command!r} profile={s.profile.name} seed={s.seed} "
        f"backend={s.backend} instances={s.instances} run={s.run_id} "
        f"encrypted={s.encrypted} ({duration:.1f}s)"
    )
    (s.out_dir / "verdicts.txt").write_text(header + "\n" + table + "\n", encoding="utf-8")
    hostile_md = s.out_dir / "hostile.md"
    hostile_md.write_text(catalog.render_markdown(hostile_rows, header), encoding="utf-8")
    (s.out_dir / "hostile.json").write_text(catalog.rows_json(hostile_rows), encoding="utf-8")
    (s.out_dir / "verdicts.json").write_text(
        json.dumps(
            [
                {
                    "checker": v.checker,
                    "valid": v.valid,
                    "anomalies": [str(a) for a in v.anomalies],
                    "stats": v.stats,
                }
                for v in verdicts
            ]
            + [{"checker": check, "valid": None, "skipped": why} for check, why in sorted(s.skipped.items())],
            indent=2,
            default=str,
        ),
        encoding="utf-8",
    )
    junit = write_junit(
        s.out_dir / "junit.xml",
        verdicts,
        suite=f"gate-{s.profile.name}",
        duration=duration,
        skipped=s.skipped,
        properties={
            "impl": s.impl_command,
            "seed": str(s.seed),
            "backend": s.backend,
            "profile": s.profile.name,
            "run_id": s.run_id,
        },
    )
    allure_dir = write_allure(
        s.out_dir / "allure-results",
        verdicts,
        implementation=s.impl_command,
        backend=s.backend,
        profile=s.profile.name,
        seed=s.seed,
        table=table,
        history_path=history_path,
        extra_attachments=[("hostile inputs", hostile_md, "text/markdown", "md")],
        started=started,
        stopped=time.time(),
    )
    return GateResult(
        passed,
        EXIT_PASS if passed else EXIT_ANOMALY,
        verdicts,
        header + "\n" + table,
        s.out_dir,
        history_path,
        junit,
        allure_dir,
        duration,
        s.run_id,
        {
            "commands": len(s.plan.commands),
            "hostile": len(s.plan.hostile),
            "effects": len(s.effects_seen),
        },
    )
