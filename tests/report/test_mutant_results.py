"""A mutant run reads in the Allure report as one result (flowgate.harness.mutants.allure)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from flowgate.harness.mutants import MUTANTS
from flowgate.harness.mutants.allure import EPIC, mutation_summary, write_mutant_result
from flowgate.harness.mutants.cli import ScenarioOutcome, _write_scenario_results


def _check(directory: Path, name: str, status: str) -> None:
    """A per-check result as allure-pytest writes it, with one attachment."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}-history-attachment.txt").write_text("op\n", encoding="utf-8")
    (directory / f"{name}-result.json").write_text(json.dumps({
        "name": name, "status": status, "historyId": "h-" + name, "start": 10, "stop": 20,
        "statusDetails": {"message": f"anomaly lost under {name}"},
        "labels": [{"name": "epic", "value": "Dead letters"}],
        "attachments": [{"name": "history", "source": f"{name}-history-attachment.txt", "type": "text/plain"}],
    }), encoding="utf-8")  # fmt: skip
    (directory / f"{name}-container.json").write_text(json.dumps({"children": [name]}), encoding="utf-8")


def _results(directory: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(directory.glob("*-result.json"))]


def _labels(result: dict[str, Any]) -> dict[str, str]:
    return {lab["name"]: lab["value"] for lab in result["labels"]}


def _write(out: Path, run: Path | None, status: str, mutant: str = "no-poison-dlq") -> Path:
    return write_mutant_result(
        out, mutant=mutant, suite="property suites", status=status, bug="poison is retried forever",
        killed_by=["properties/test_dlq.py::test_a"] if status == "killed" else [], anomalies=["lost"],
        replay=f"flowgate mutants --only {mutant}", output="1 failed", source_dir=run,
    )  # fmt: skip


def test_killed_mutant_is_one_passed_result_with_the_evidence(tmp_path: Path) -> None:
    out, run = tmp_path / "mutants-properties", tmp_path / "mutants-properties" / ".run-x"
    _check(run, "test_a", "failed")
    _check(run, "test_b", "passed")
    _write(out, run, "killed")
    [result] = _results(out)
    assert result["status"] == "passed"
    assert result["name"] == "mutant no-poison-dlq"
    assert "killed by properties/test_dlq.py::test_a" in result["statusDetails"]["message"]
    assert "lost" in result["statusDetails"]["message"]
    assert "poison is retried forever" in result["description"]
    assert result["statusDetails"]["message"] in result["description"]
    labels = _labels(result)
    assert (labels["epic"], labels["feature"], labels["story"]) == (EPIC, "property suites", "no-poison-dlq")
    assert labels["implementation"] == "mutant:no-poison-dlq"
    steps = {s["name"].split(":")[0]: s for s in result["steps"]}
    assert steps["test_a"]["status"] == "passed"
    assert "anomaly lost under test_a" in steps["test_a"]["statusDetails"]["message"]
    assert steps["test_b"]["status"] == "skipped"
    # the check's evidence moved along; the per-check files are gone
    assert (out / steps["test_a"]["attachments"][0]["source"]).read_text(encoding="utf-8") == "op\n"
    assert not run.exists()
    assert not list(out.glob("*-container.json"))
    names = {a["name"] for a in result["attachments"]}
    assert {"replay", "killed by", "output (tail)"} <= names
    assert result["historyId"] not in ("h-test_a", "h-test_b")


@pytest.mark.parametrize(("verdict", "status"), [("SURVIVED", "failed"), ("ERROR", "broken")])
def test_surviving_or_errored_mutant_is_not_passed(tmp_path: Path, verdict: str, status: str) -> None:
    run = tmp_path / ".run"
    _check(run, "test_a", "passed")
    _write(tmp_path, run, verdict)
    [result] = _results(tmp_path)
    assert result["status"] == status
    assert all(step["status"] == "failed" for step in result["steps"])


def test_unknown_verdict_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown mutant run status"):
        _write(tmp_path, None, "maybe")


def test_mutation_summary_scores_each_suite(tmp_path: Path) -> None:
    for name, verdict in (("a", "killed"), ("b", "killed"), ("c", "SURVIVED"), ("d", "ERROR")):
        _write(tmp_path, None, verdict, mutant=name)
    [score] = mutation_summary([tmp_path])
    assert (score.suite, score.killed, score.total) == ("property suites", 2, 4)
    assert score.headline() == "2/4 killed (50 %); SURVIVED: c; errored: d"


def test_scenario_suite_mutant_is_one_result_over_its_nodes(tmp_path: Path) -> None:
    name = next(iter(MUTANTS))
    rows = [
        ScenarioOutcome(f"scenarios/test_{i}.py", name, "killed", ["lost"], "lost m-1", 1.0) for i in range(2)
    ]
    for index in range(2):  # each node's run as pytest --alluredir left it, with its own headline
        run = tmp_path / f".run-{name}" / str(index)
        _check(run, "test_node", "failed")
        (run / "flowgate-headline.json").write_text("{}", encoding="utf-8")
    _write_scenario_results(tmp_path, rows)
    [result] = _results(tmp_path)
    assert result["status"] == "passed"
    assert _labels(result)["feature"] == "LocalStack scenarios"
    assert [s["status"] for s in result["steps"]] == ["passed", "passed"]
    assert not (tmp_path / f".run-{name}").exists()
    rows[1].status = "SURVIVED"
    _check(tmp_path / f".run-{name}" / "0", "test_node", "failed")
    out = tmp_path / "again"
    out.mkdir()
    (tmp_path / f".run-{name}").rename(out / f".run-{name}")
    _write_scenario_results(out, rows)
    assert [r["status"] for r in _results(out)] == ["failed"]
