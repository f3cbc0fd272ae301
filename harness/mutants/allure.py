"""How a mutant run reads in the Allure report: as a proof that a check has teeth, never as a
failed test of a green run.

``flowgate mutants`` runs a mutant's killing checks with ``--alluredir`` (``FLOWGATE_MUTANT_ALLURE``).
Left as they are, those results are failed tests filed under the checks' own epics, next to the
clean runs of the same tests (and taken by Allure for retries of them): a green run's headline
would count every killed mutant as a failure. :func:`relabel` rewrites one mutant's results in
place, after the run:

* filed under the epic ``Mutation testing``, feature = the mutant, story = the check;
* a check that **failed** under a killed mutant -> ``passed`` ("killed by this check"; its message,
  history, timeline and replay command kept as evidence);
* a check that passed under a killed mutant -> ``skipped`` (another of its checks killed it);
* every check of a mutant that **survived** (or errored) -> ``failed``: that is the real failure;
* its own ``historyId`` / ``testCaseId`` (the clean test's, suffixed with the mutant), so it is
  never merged with the clean run as a retry.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

EPIC = "Mutation testing"
_GROUPING = {"epic", "feature", "story", "parentSuite", "suite", "subSuite"}


def _suffixed(value: Any, mutant: str) -> str:
    return hashlib.md5(f"{value}:mutant:{mutant}".encode(), usedforsecurity=False).hexdigest()


def relabel(results_dir: Path, mutant: str, status: str) -> int:
    """Rewrite the ``*-result.json`` files of one mutant's run (``status``: killed / SURVIVED /
    ERROR, as ``flowgate mutants`` decided it); returns how many were rewritten."""
    count = 0
    for path in sorted(results_dir.glob("*-result.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        check = str(data.get("name", "?"))
        was = data.get("status")
        details = data.get("statusDetails") or {}
        message = str(details.get("message") or "")
        if status == "killed" and was in ("failed", "broken"):
            new, text = "passed", f"mutant {mutant} killed by this check:\n{message}"
        elif status == "killed":
            new, text = "skipped", f"mutant {mutant} was killed by another of its checks; this one passed"
        else:
            new, text = "failed", f"mutant {mutant} {status}: this check did not fail under it\n{message}"
        data["status"] = new
        data["statusDetails"] = {**details, "message": text[:4000]}
        data["name"] = f"{check} [mutant {mutant}]"
        labels = [lab for lab in data.get("labels", []) if lab.get("name") not in _GROUPING]
        labels += [
            {"name": "epic", "value": EPIC},
            {"name": "feature", "value": mutant},
            {"name": "story", "value": check},
            {"name": "parentSuite", "value": "mutants"},
            {"name": "suite", "value": mutant},
        ]
        data["labels"] = labels
        for key in ("historyId", "testCaseId"):
            if key in data:
                data[key] = _suffixed(data[key], mutant)
        path.write_text(json.dumps(data), encoding="utf-8")
        count += 1
    return count
