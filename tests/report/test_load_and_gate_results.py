"""Load runs and gate runs in the Allure report (flowgate.harness.load_report, flowgate.harness.gate.cli)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from flowgate.harness.checkers.model import Anomaly, Verdict
from flowgate.harness.gate.cli import _report_gate_mutant, report_gate_run
from flowgate.harness.gate.driver import GateResult
from flowgate.harness.gate.mutants import Mutant, Outcome
from flowgate.harness.load_report import capacity_table, latency_plot_png, write_load_result
from flowgate.harness.report import HEADLINE_FILE, read_headlines

PNG = b"\x89PNG\r\n\x1a\n"


def _results(directory: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(directory.glob("*-result.json"))]


def _attachment(directory: Path, result: dict[str, Any], name: str) -> bytes:
    source = next(a["source"] for a in result["attachments"] if a["name"] == name)
    return (directory / source).read_bytes()


def _capacity_summary() -> dict[str, Any]:
    return {
        "command": "locust -f loadtests --shape capacity", "shape": "capacity", "sut": "reference",
        "workers": 2, "target_per_min": 7000.0, "achieved_per_min": 6100.0, "achieved_ratio": 0.87,
        "send_to_effect_ms": {"p50": 300.0, "p95": 900.0, "p99": 2500.0}, "exit_code": 1,
        "reasons": ["achieved 87.1% of the target rate (< 98%)"], "capacity_per_min": 6000.0,
        "baseline_capacity_per_min": 7500.0, "capacity_ratio": 0.8,
        "baseline_contract_capacity_per_min": 6000.0, "capacity_ratio_contract": 1.0,
        "capacity_steps": [
            {"rate": 5000.0, "ok": True, "reason": "kept up", "due": 1250, "acked": 1250, "p99_ms": 800.0,
             "backlog_start": 0, "backlog_end": 3},
            {"rate": 6000.0, "ok": False, "reason": "p99 2500 ms > 2000 ms", "due": 1500, "acked": 1400,
             "p99_ms": 2500.0, "backlog_start": 3, "backlog_end": 400},
        ],
    }  # fmt: skip


def test_failed_capacity_run_is_a_failed_result_with_its_figures(tmp_path: Path) -> None:
    begin = 1_700_000_000.0
    latencies = [(begin + i * 0.05, 200.0 + i) for i in range(1200)]
    write_load_result(
        tmp_path, _capacity_summary(), checker_table="checker  valid\n", latencies=latencies,
        begin=begin, end=begin + 60.0, commanded=[(begin, 5000.0), (begin + 30.0, 6000.0)],
    )  # fmt: skip
    [result] = _results(tmp_path)
    assert result["status"] == "failed"
    assert "87.1%" in result["statusDetails"]["message"]
    labels = {lab["name"]: lab["value"] for lab in result["labels"]}
    assert (labels["epic"], labels["feature"]) == ("Load", "capacity")
    verdict = _attachment(tmp_path, result, "verdict").decode()
    for figure in (
        "6,100 orders/min",
        "300 / 900 / 2500 ms",
        "capacity / baseline (bare wire)",
        "0.8",
        "baseline capacity (contract wire)",
        "capacity / baseline (contract wire)",
        "FAIL: achieved 87.1%",
    ):
        assert figure in verdict, verdict
    steps = _attachment(tmp_path, result, "capacity steps").decode()
    assert "6,000" in steps
    assert "STOP" in steps
    assert "3 -> 400" in steps
    assert _attachment(tmp_path, result, "latency over time").startswith(PNG)
    assert "data:image/png;base64," in result["descriptionHtml"]
    assert "capacity steps" in result["descriptionHtml"]
    headlines = read_headlines([tmp_path])
    assert headlines["Load capacity"] == "FAIL · 6,100/min · p99 2,500 ms"
    assert headlines["Capacity"] == "6,000/min · 0.8x baseline (bare) · 1.0x baseline (contract)"
    assert len(list(tmp_path.glob("*-globals.json"))) == 2


def test_latency_plot_is_drawn_from_the_data() -> None:
    begin = 1_700_000_000.0
    fast = [(begin + i * 0.1, 50.0 + i % 7) for i in range(300)]
    slow = [(begin + i * 0.1, 50.0 + i * 3.0) for i in range(300)]
    one, other = latency_plot_png(fast, begin=begin), latency_plot_png(slow, begin=begin)
    assert one.startswith(PNG)
    assert other.startswith(PNG)
    assert one != other


def test_capacity_table_lists_every_step() -> None:
    table = capacity_table(_capacity_summary()["capacity_steps"])
    assert len(table.strip().splitlines()) == 2 + 2


def _gate_result(tmp_path: Path, name: str, *, valid: bool) -> GateResult:
    allure_dir = tmp_path / name / "allure-results"
    allure_dir.mkdir(parents=True)
    (allure_dir / "c-result.json").write_text(json.dumps({
        "uuid": "c", "name": "gate smoke: total_queue", "status": "passed" if valid else "failed",
        "labels": [{"name": "epic", "value": "Gate"}], "attachments": [],
    }), encoding="utf-8")  # fmt: skip
    anomalies = [] if valid else [Anomaly("lost", "m-1 never applied")]
    verdicts = [Verdict("total_queue", valid, anomalies), Verdict("per_entity_order", True)]
    return GateResult(
        passed=valid, exit_code=0 if valid else 1, verdicts=verdicts, table="checker  valid\n",
        out_dir=tmp_path / name, history_path=tmp_path / "h.jsonl", junit_path=tmp_path / "j.xml",
        allure_dir=allure_dir, duration=1.0, run_id=name,
    )  # fmt: skip


def test_gate_run_and_gate_mutant_in_the_report(tmp_path: Path) -> None:
    out = tmp_path / "allure-gate"
    report_gate_run(out, _gate_result(tmp_path, "reference", valid=True), name="reference", profile="smoke")
    mutant = Mutant("node:lose", "node w.js", {}, "drops a message", frozenset({"lost"}))
    killed = Outcome(mutant, True, ["lost"], 2.0, _gate_result(tmp_path, "mutant", valid=False))
    _report_gate_mutant(out, killed, "node:lose", seed=1)
    results = {r["name"]: r for r in _results(out)}
    assert results["gate smoke: total_queue"]["status"] == "passed"
    assert results["mutant node:lose"]["status"] == "passed"
    assert "killed by total_queue" in results["mutant node:lose"]["statusDetails"]["message"]
    replay = _attachment(out, results["mutant node:lose"], "replay").decode()
    assert replay.strip() == "python -m flowgate.harness.gate.mutants --seed 1 node:lose"
    headlines = read_headlines([out])
    assert headlines["Gate smoke"] == "PASS · 2/2 checkers"
    assert headlines["Mutants (gate)"] == "1/1 killed (100 %)"
    assert (out / HEADLINE_FILE).exists()
    survived = Outcome(mutant, False, [], 2.0, _gate_result(tmp_path, "mutant2", valid=True))
    _report_gate_mutant(out, survived, "node:lose2", seed=1)
    assert read_headlines([out])["Mutants (gate)"] == "1/2 killed (50 %); SURVIVED: node:lose2"
