"""A mutant run's Allure results read as proofs (harness.mutants.allure.relabel)."""

from __future__ import annotations

import json
from pathlib import Path

from harness.mutants.allure import EPIC, relabel


def _result(directory: Path, name: str, status: str) -> Path:
    path = directory / f"{name}-result.json"
    labels = [{"name": "epic", "value": "Dead letters"}, {"name": "implementation", "value": "mutant:m"}]
    path.write_text(json.dumps({"name": name, "status": status, "historyId": "h-" + name,
                                "testCaseId": "t-" + name, "statusDetails": {"message": "anomaly x"},
                                "labels": labels}))
    return path


def _load(path: Path) -> dict:
    return json.loads(path.read_text())


def test_killed_mutant_reads_as_passed_checks(tmp_path: Path) -> None:
    killer, other = _result(tmp_path, "test_a", "failed"), _result(tmp_path, "test_b", "passed")
    assert relabel(tmp_path, "no-poison-dlq", "killed") == 2
    a, b = _load(killer), _load(other)
    assert a["status"] == "passed"
    assert "killed by this check" in a["statusDetails"]["message"]
    assert "anomaly x" in a["statusDetails"]["message"]  # the evidence is kept
    assert b["status"] == "skipped"
    for r in (a, b):
        epics = [lab["value"] for lab in r["labels"] if lab["name"] == "epic"]
        assert epics == [EPIC]
        assert {"name": "feature", "value": "no-poison-dlq"} in r["labels"]
        assert {"name": "implementation", "value": "mutant:m"} in r["labels"]
    assert a["historyId"] != "h-test_a"
    assert a["testCaseId"] != "t-test_a"


def test_surviving_mutant_reads_as_failed(tmp_path: Path) -> None:
    check = _result(tmp_path, "test_a", "passed")
    relabel(tmp_path, "lazy", "SURVIVED")
    r = _load(check)
    assert r["status"] == "failed"
    assert "SURVIVED" in r["statusDetails"]["message"]
