"""The report of a green run: 0 failed, mutation testing and load as their own sections.

A green run has passing tests, killed mutants (whose checks *failed* under them, as they must),
an integration session with its scenario summary and a load run. This builds exactly that from
real pytest runs in subprocesses (the mutant's checks fail for real and are folded into one
result by :func:`flowgate.harness.mutants.allure.write_mutant_result`), renders the Allure 3 report in
headless Chromium and checks what a reviewer sees on the first page: no failed counter, the
mutation score, the integration headline, the load verdict, and the Mutation testing and Load
sections in the tree. Never skips: without npm or Chromium it fails with the install command.
"""

from __future__ import annotations

import html
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from flowgate.harness import report
from flowgate.harness.load_report import write_load_result
from flowgate.harness.mutants.allure import write_mutant_result

CLEAN_TESTS = textwrap.dedent(
    """
    from flowgate.fixtures.allure_support import label

    def test_order_kept():
        label(epic="Ordering", backend="sim", implementation="reference")

    def test_effect_once():
        label(epic="Deduplication", backend="sim", implementation="reference")
    """
)

# what the checks of a mutant see: the planted bug makes them fail
MUTANT_CHECKS = textwrap.dedent(
    """
    from flowgate.fixtures.allure_support import attach_seed, label

    def test_nothing_lost():
        label(epic="Ordering", backend="sim", implementation="mutant:demo")
        attach_seed(7, "flowgate replay --seed 7")
        assert False, "anomaly lost: m-1 acknowledged but never applied"

    def test_order_kept_under_mutant():
        label(epic="Ordering", backend="sim", implementation="mutant:demo")
    """
)

SCENARIOS = textwrap.dedent(
    """
    def test_lifecycle(summary):
        summary.add("order lifecycle", orders=40, faults=3, anomalies=0)

    def test_dead_letters(summary):
        summary.add("poison to the DLQ", orders=12, faults=2, anomalies=0)
    """
)


def _pytest(cwd: Path, test_file: str, alluredir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(report.REPO_ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly", *extra,
         test_file, f"--alluredir={alluredir}"],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def _load_summary() -> dict[str, object]:
    return {
        "command": "locust -f loadtests --shape steady-10k -t 1m", "shape": "steady-10k", "sut": "reference",
        "workers": 2, "target_per_min": 600.0, "achieved_per_min": 598.0, "achieved_ratio": 0.9967,
        "effected_in_window_per_min": 597.0, "released": 598, "acked": 598, "effected": 598,
        "missing_after_drain": 0, "duplicate_final_events": 0, "api_calls_per_order": 2.1,
        "send_to_effect_ms": {"p50": 120.0, "p95": 240.0, "p99": 410.0}, "exit_code": 0, "reasons": [],
    }  # fmt: skip


def test_green_run_report_shows_no_failure_and_its_sections(tmp_path: Path) -> None:
    try:
        report.ensure_allure_cli()
        report.ensure_chromium()
    except report.ReportError as exc:
        pytest.fail(str(exc), pytrace=False)
    (tmp_path / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    for name, text in (("test_clean.py", CLEAN_TESTS), ("test_mutant.py", MUTANT_CHECKS),
                       ("test_scenarios.py", SCENARIOS)):  # fmt: skip
        (tmp_path / name).write_text(text, encoding="utf-8")
    root = tmp_path / "allure-results"

    clean = _pytest(tmp_path, "test_clean.py", root / "tests")
    assert "2 passed" in clean.stdout, clean.stdout + clean.stderr
    scenarios = _pytest(
        tmp_path, "test_scenarios.py", root / "integration", "-p", "flowgate.fixtures.summary"
    )
    assert "2 passed" in scenarios.stdout, scenarios.stdout + scenarios.stderr
    # two mutants, each killed by a check that really failed under it
    for mutant in ("demo-a", "demo-b"):
        run_dir = root / "mutants-properties" / f".run-{mutant}"
        killed = _pytest(tmp_path, "test_mutant.py", run_dir)
        assert "1 failed, 1 passed" in killed.stdout, killed.stdout + killed.stderr
        write_mutant_result(
            root / "mutants-properties", mutant=mutant, suite="property suites", status="killed",
            bug="loses a message", killed_by=["test_mutant.py::test_nothing_lost"], anomalies=["lost"],
            replay=f"flowgate mutants --only {mutant}", output=killed.stdout, source_dir=run_dir,
        )  # fmt: skip
    begin = 1_700_000_000.0
    latencies = [(begin + i * 0.1, 100.0 + (i % 50) * 6.0) for i in range(600)]
    write_load_result(
        root / "load", _load_summary(), checker_table="checker  valid\ntotal_queue  yes\n",
        latencies=latencies, begin=begin, end=begin + 60.0, commanded=[(begin, 600.0)],
    )  # fmt: skip

    index = report.generate_report(root, tmp_path / "reports" / "allure-report", single_file=False)
    stats = json.loads((index.parent / "summary.json").read_text(encoding="utf-8"))["stats"]
    assert stats.get("failed", 0) == 0, stats
    assert stats.get("broken", 0) == 0, stats
    assert stats["passed"] == stats["total"] == 2 + 2 + 2 + 1, stats  # clean, scenarios, mutants, load

    text = report.overview_text(index)
    lines = text.splitlines()
    counts = report.overview_counts(text)
    assert counts.get("Failed", 0) == 0, f"{counts}\n{text}"
    assert counts["Total"] == counts["Passed"] == 7, f"{counts}\n{text}"
    for section in ("Mutation testing", "Load"):
        assert section in lines, f"section {section!r} missing from the overview\n{text}"
    assert "Mutants (sim)" in lines, text
    assert "2/2 killed (100 %)" in lines, text
    for headline in (
        "Integration",
        "2/2 PASS · 0 anomalies",
        "Load steady-10k",
        "PASS · 598/min · p99 410 ms",
    ):
        assert headline in lines, f"{headline!r} missing from the first page\n{text}"
    globals_widget = (index.parent / "widgets" / "globals.json").read_text(encoding="utf-8")
    assert "load steady-10k: latency over time" in globals_widget
    assert "Integration scenario summary" in globals_widget
    # the load section: its result page shows the verdict table and the plot inline
    load_id = next(
        path.stem
        for path in (index.parent / "data" / "test-results").glob("*.json")
        if '"name":"load steady-10k' in path.read_text(encoding="utf-8")
    )
    page = report.dump_dom(index, route=f"#/{load_id}")
    frame = re.search(r'<iframe data-testid="test-result-description-frame"[^>]*srcdoc="([^"]*)"', page)
    assert frame, f"the load result's description is not rendered\n{report.html_text(page)}"
    description = html.unescape(frame.group(1))
    assert "598 orders/min (99.7% of target)" in report.html_text(description), description[:3000]
    assert 'alt="latency over time"' in description
    assert "data:image/png;base64," in description
    shot = report.screenshot(index, tmp_path / "green-run.png")
    assert shot.stat().st_size > 30_000, "screenshot suspiciously small: blank page?"
