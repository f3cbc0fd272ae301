"""How mutation testing reads in the Allure report: one result per mutant, a proof that a check
has teeth, never a failed test of a green run.

A mutant run (``flowgate mutants`` with ``FLOWGATE_MUTANT_ALLURE``, or a gate self-test) executes
the mutant's killing checks, which *must* fail. Left as they are, those results are failed tests
of the checks' own epics: a green run's headline would count every killed mutant as a failure.
:func:`write_mutant_result` turns one mutant's run into one result instead:

* epic ``Mutation testing``, feature = the suite (``property suites``, ``LocalStack scenarios``,
  ``CI gate``), story = the mutant; labels ``implementation=mutant:NAME`` and ``mutant=NAME``;
* status ``passed`` when the mutant was **killed**, ``failed`` when it **survived** (none of its
  checks failed), ``broken`` when its run errored (timeout, crash: no verdict either way);
* the message names the check(s) that failed and the anomaly kinds; the description repeats it
  under the bug the mutant plants (Allure shows no message on a passed result);
* one step per check that ran, carrying that check's failure message and its attachments (the
  history, the timeline, the replay command): ``passed`` for a check that failed under the mutant
  (it killed it), ``skipped`` for one that passed under a killed mutant, ``failed`` for every
  check of a survivor;
* attachments: the command that replays the mutant and the tail of its output;
* its own ``historyId`` (``mutation:<suite>:<mutant>``), so trends follow the mutant and it is
  never merged with a clean run of the same tests.

The per-check results of the run (``source_dir``, pytest's ``--alluredir`` of that run) are
consumed: their attachments move into ``results_dir`` and the per-check files are deleted.
:func:`mutation_summary` reads the mutant results back for the report's first page (the score).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

EPIC: Final = "Mutation testing"
#: the suites of mutant runs (the ``feature`` of their results) and their short first-page labels
SUITE_LABELS: Final = {
    "property suites": "Mutants (sim)",
    "LocalStack scenarios": "Mutants (LS)",
    "CI gate": "Mutants (gate)",
}
#: the outcome of a mutant run as the runners decide it -> the status of its one result
STATUS: Final = {"killed": "passed", "SURVIVED": "failed", "ERROR": "broken"}


def _check_results(source_dir: Path) -> list[dict[str, Any]]:
    results = []
    for path in sorted(source_dir.glob("*-result.json")):
        try:
            results.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue
    return sorted(results, key=lambda r: (int(r.get("start") or 0), str(r.get("name"))))


def _move_attachments(step: Mapping[str, Any], source_dir: Path, results_dir: Path) -> None:
    for attachment in step.get("attachments") or []:
        src = source_dir / str(attachment.get("source", ""))
        if src.is_file() and src.parent != results_dir:
            shutil.move(src, results_dir / src.name)
    for child in step.get("steps") or []:
        _move_attachments(child, source_dir, results_dir)


def _check_step(check: Mapping[str, Any], status: str) -> dict[str, Any]:
    name = str(check.get("name", "?"))
    was = check.get("status")
    message = str((check.get("statusDetails") or {}).get("message") or "")
    failed_here = was in ("failed", "broken")
    if status == "killed":
        step_status, verdict = (
            ("passed", "failed under the mutant: killed it")
            if failed_here
            else (
                "skipped",
                "passed under the mutant (another check killed it)",
            )
        )
    else:
        step_status = "failed"
        verdict = "failed under the mutant" if failed_here else "passed under the mutant: did not detect it"
    return {
        "name": f"{name}: {verdict}",
        "status": step_status,
        "statusDetails": {
            "message": message[:4000],
            "trace": str((check.get("statusDetails") or {}).get("trace") or "")[:20000],
        },
        "stage": "finished",
        "start": check.get("start"),
        "stop": check.get("stop"),
        "steps": list(check.get("steps") or []),
        "attachments": list(check.get("attachments") or []),
        "parameters": list(check.get("parameters") or []),
    }


def _attach_text(results_dir: Path, name: str, text: str) -> dict[str, str]:
    target = results_dir / f"{uuid.uuid4()}-attachment.txt"
    target.write_text(text, encoding="utf-8")
    return {"name": name, "source": target.name, "type": "text/plain"}


def write_mutant_result(
    results_dir: Path,
    *,
    mutant: str,
    suite: str,
    status: str,
    bug: str,
    killed_by: Sequence[str],
    anomalies: Sequence[str],
    replay: str,
    output: str = "",
    source_dir: Path | None = None,
    seconds: float | None = None,
    start_ms: int | None = None,
) -> Path:
    """Write the one Allure result of ``mutant`` into ``results_dir``; returns its path.

    ``status`` is the runner's verdict (``killed`` / ``SURVIVED`` / ``ERROR``, see :data:`STATUS`);
    ``killed_by`` the checks that failed under the mutant, ``anomalies`` the anomaly kinds they
    reported, ``replay`` the command that runs this mutant again, ``output`` the tail of its run.
    ``source_dir``, when given, holds the per-check results of the run (``--alluredir``): each
    becomes a step, its attachments move into ``results_dir``, and the per-check files
    (results and containers) are removed. A ``source_dir`` equal to ``results_dir`` is allowed.
    """
    if status not in STATUS:
        raise ValueError(f"unknown mutant run status {status!r} (expected one of {sorted(STATUS)})")
    results_dir.mkdir(parents=True, exist_ok=True)
    checks = _check_results(source_dir) if source_dir is not None and source_dir.is_dir() else []
    steps = [_check_step(check, status) for check in checks]
    if source_dir is not None and source_dir.is_dir():
        for check in checks:
            _move_attachments(check, source_dir, results_dir)
        for stale in [*source_dir.glob("*-result.json"), *source_dir.glob("*-container.json")]:
            stale.unlink()
        if source_dir != results_dir and not any(source_dir.iterdir()):
            source_dir.rmdir()
    kinds = ", ".join(anomalies) or "-"
    if status == "killed":
        message = f"mutant {mutant} killed by {', '.join(killed_by) or 'its checks'} (anomalies: {kinds})"
    elif status == "SURVIVED":
        message = f"mutant {mutant} SURVIVED: none of its checks failed under it"
    else:
        message = f"mutant {mutant}: the run errored, no verdict (see the output)"
    starts = [int(c["start"]) for c in checks if c.get("start")]
    stops = [int(c["stop"]) for c in checks if c.get("stop")]
    start = start_ms if start_ms is not None else (min(starts) if starts else 0)
    stop = max(stops) if stops else start + int(1000 * (seconds or 0))
    history_id = hashlib.md5(f"mutation:{suite}:{mutant}".encode(), usedforsecurity=False).hexdigest()
    result: dict[str, Any] = {
        "uuid": str(uuid.uuid4()),
        "historyId": history_id,
        "testCaseId": history_id,
        "name": f"mutant {mutant}",
        "fullName": f"flowgate.mutation.{suite}.{mutant}",
        "description": f"**Planted bug:** {bug}\n\n**Verdict:** {message}",
        "status": STATUS[status],
        "statusDetails": {"message": message, "trace": output[-20000:]},
        "stage": "finished",
        "start": start,
        "stop": stop,
        "labels": [
            {"name": "epic", "value": EPIC},
            {"name": "feature", "value": suite},
            {"name": "story", "value": mutant},
            {"name": "parentSuite", "value": EPIC},
            {"name": "suite", "value": suite},
            {"name": "implementation", "value": f"mutant:{mutant}"},
            {"name": "mutant", "value": mutant},
        ],
        "parameters": [{"name": "verdict", "value": status}],
        "steps": steps,
        "attachments": [
            _attach_text(results_dir, "replay", replay + "\n"),
            _attach_text(results_dir, "killed by", "\n".join(killed_by) + "\n" if killed_by else "-\n"),
            *([_attach_text(results_dir, "output (tail)", output)] if output else []),
        ],
    }
    path = results_dir / f"{result['uuid']}-result.json"
    path.write_text(json.dumps(result), encoding="utf-8")
    return path


@dataclass(frozen=True)
class MutationScore:
    """The mutants of one suite as the report holds them."""

    suite: str
    killed: int
    survived: tuple[str, ...]
    errored: tuple[str, ...]

    @property
    def label(self) -> str:
        """The first page's label of this suite's score (short: the overview truncates)."""
        return SUITE_LABELS.get(self.suite, f"Mutants ({self.suite})")

    @property
    def total(self) -> int:
        return self.killed + len(self.survived) + len(self.errored)

    def headline(self) -> str:
        """``"42/42 killed (100 %)"``, plus the survivors and errored runs by name."""
        text = f"{self.killed}/{self.total} killed ({100.0 * self.killed / max(1, self.total):.0f} %)"
        if self.survived:
            text += "; SURVIVED: " + ", ".join(self.survived)
        if self.errored:
            text += "; errored: " + ", ".join(self.errored)
        return text


def _labels(result: Mapping[str, Any]) -> dict[str, str]:
    return {str(lab.get("name")): str(lab.get("value")) for lab in result.get("labels") or []}


def mutation_summary(results_dirs: Iterable[Path]) -> list[MutationScore]:
    """The mutation score per suite, read from the mutant results (epic ``Mutation testing``)."""
    by_suite: dict[str, dict[str, str]] = {}
    for directory in results_dirs:
        for path in directory.glob("*-result.json"):
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            labels = _labels(data)
            if labels.get("epic") != EPIC or "mutant" not in labels:
                continue
            by_suite.setdefault(labels.get("feature", "?"), {})[labels["mutant"]] = str(data.get("status"))
    return [
        MutationScore(
            suite=suite,
            killed=sum(s == "passed" for s in outcomes.values()),
            survived=tuple(sorted(m for m, s in outcomes.items() if s == "failed")),
            errored=tuple(sorted(m for m, s in outcomes.items() if s not in ("passed", "failed"))),
        )
        for suite, outcomes in sorted(by_suite.items())
    ]
