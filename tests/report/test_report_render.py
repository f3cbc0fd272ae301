"""End-to-end check of the Allure pipeline: pytest results -> Allure 3 HTML -> headless Chromium.

Runs a tiny pytest session with known outcomes in a subprocess, generates both report variants
with :func:`flowgate.harness.report.generate_report`, renders the overview in Chromium, checks the counts
a reviewer sees and saves ``reports/allure-overview.png``.

Never skips: without npm or Chromium it fails with the install command to run.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from flowgate.harness import report

SAMPLE_TESTS = textwrap.dedent(
    """
    import pytest

    from flowgate.fixtures.allure_support import (
        attach_anomalies, attach_history, attach_latency_histogram, attach_seed, attach_table,
        attach_throughput, attach_timeline, label, step,
    )
    from flowgate.harness.history import History

    def _history():
        h = History()
        h.append("producer", "invoke", "send", {"id": "m-1", "group": "g"})
        h.append("producer", "ok", "send", {"id": "m-1", "group": "g"})
        h.append("worker-1", "ok", "effect", {"id": "m-1", "group": "g"})
        h.append("harness", "ok", "drain", {})
        return h

    def test_fifo_order_kept():
        label(epic="Ordering", feature="FIFO groups", story="single worker", backend="sim",
              implementation="reference")
        with step("send and drain"):
            h = _history()
        attach_history(h)
        attach_timeline(h)
        attach_seed(7, "flowgate replay --seed 7")

    def test_dedup_window():
        label(epic="Deduplication", feature="content dedup", backend="sim", implementation="reference")
        attach_table("kind   count\\nlost   0\\n", "verdicts")
        attach_latency_histogram([1.0, 2.0, 2.5, 3.0, 8.0, 13.0])
        attach_throughput([(0, 10.0), (1, 30.0), (2, 25.0)])

    def test_replay_rebuilds_state():
        label(epic="Replay", backend="sim", implementation="reference")

    def test_poison_goes_to_dlq():
        label(epic="Dead letters", feature="poison messages", backend="sim", implementation="reference")
        attach_anomalies([{"kind": "poison-not-dead-lettered", "message": "m-7"}])
        assert False, "anomaly poison-not-dead-lettered: m-7 was retried forever"

    def test_localstack_down():
        label(epic="Chaos", backend="localstack", implementation="reference")
        raise ConnectionError("EndpointConnectionError: Could not connect to the endpoint URL")

    def test_kms_on_aws():
        label(epic="Encryption", backend="aws", implementation="reference")
        pytest.skip("needs real AWS")
    """
)
EXPECTED = {"Total": 6, "Passed": 3, "Failed": 1, "Broken": 1, "Skipped": 1}


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()[:24]
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


def _tools() -> None:
    """Install (or fail with the command to install) the Allure CLI and Chromium."""
    try:
        report.ensure_allure_cli()
        report.ensure_chromium()
    except report.ReportError as exc:
        pytest.fail(str(exc), pytrace=False)


def test_report_renders_expected_overview(tmp_path: Path) -> None:
    _tools()
    # (a) a tiny pytest session with known outcomes, in a subprocess like a nox session
    (tmp_path / "test_sample.py").write_text(SAMPLE_TESTS, encoding="utf-8")
    (tmp_path / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    results_root = tmp_path / "allure-results"
    env = {**os.environ, "PYTHONPATH": str(report.REPO_ROOT), "FLOWGATE_SEED": "7"}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_sample.py",
         "--alluredir", str(results_root / "tests")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert "2 failed, 3 passed, 1 skipped" in proc.stdout, proc.stdout + proc.stderr
    report.write_environment(results_root / "tests", {"implementation": "reference", "session": "tests"})

    # (b) the Allure 3 report, twice: the second run must see the first in its history
    out = tmp_path / "reports" / "allure-report"
    index = report.generate_report(results_root, out, single_file=False)
    index = report.generate_report(results_root, out, single_file=False)
    history = tmp_path / "reports" / "allure-history" / "allure-report.jsonl"
    assert len(history.read_text(encoding="utf-8").splitlines()) == 2
    single = report.generate_report(
        results_root, tmp_path / "reports" / "allure-report-single", single_file=True
    )
    assert sorted(p.name for p in single.parent.iterdir() if p.suffix == ".html") == ["index.html"]
    assert (results_root / "tests" / "categories.json").exists()

    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))["stats"]
    assert {k.lower(): v for k, v in EXPECTED.items()}.items() <= summary.items()
    categories = (out / "widgets" / "categories.json").read_text(encoding="utf-8")
    assert "Infrastructure failure" in categories
    assert "Poison not dead-lettered / valid dead-lettered" in categories

    # (c) what a reviewer sees: the rendered overview in headless Chromium
    text = report.overview_text(index)
    counts = report.overview_counts(text)
    assert counts == EXPECTED, (
        f"overview counters {counts}, expected {EXPECTED}\n--- rendered text ---\n{text}"
    )
    for epic in ("Ordering", "Deduplication", "Replay", "Dead letters", "Chaos", "Encryption"):
        assert epic in text.splitlines(), f"epic {epic!r} missing from the overview tree"
    assert "reference" in text  # environment.properties -> Metadata
    assert report.overview_counts(report.overview_text(single)) == EXPECTED

    # (d) the screenshot kept for humans (and for checking it is not a blank page)
    png = report.screenshot(index, report.OVERVIEW_PNG)
    width, height = _png_size(png)
    assert (width, height) == (1440, 1400)
    assert png.stat().st_size > 30_000, "screenshot suspiciously small: blank page?"


def test_properties_and_categories(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWGATE_LOCALSTACK_VERSION", "4.4.0")
    monkeypatch.setenv("FLOWGATE_SEED", "1234")
    props = report.write_environment(tmp_path, {"implementation": "candidate a=b"})
    lines = props.read_text(encoding="utf-8").splitlines()
    assert "LocalStack=4.4.0" in lines
    assert "seed=1234" in lines
    assert "implementation=candidate a=b" in lines
    assert any(line.startswith("boto3=") for line in lines)
    assert any(line.startswith("Python=3.") for line in lines)
    cats = report.load_categories()
    names = [c["name"] for c in cats]
    assert names[0] == "Infrastructure failure"  # Allure 3: first matching category wins
    assert json.loads((tmp_path / "categories.json").read_text(encoding="utf-8")) == cats


def test_no_results_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(report.ReportError, match="no Allure results"):
        report.generate_report(tmp_path / "nothing", tmp_path / "out", single_file=False)


@pytest.mark.parametrize(
    ("message", "category"),
    [
        ("AssertionError: anomaly lost: m-3 acknowledged but never applied", "Lost messages"),
        ("anomaly duplicated: effect of m-4 applied twice", "Duplicated effects"),
        ("anomalies:\n  nonmonotonic group g-1: 5 after 7", "Reordered within a message group"),
        ("anomaly skip in group g-2", "Reordered within a message group"),
        ("anomaly valid-dead-lettered: m-9", "Poison not dead-lettered / valid dead-lettered"),
        ("botocore.exceptions.EndpointConnectionError: Could not connect", "Infrastructure failure"),
        ("RuntimeError: LocalStack is not ready after 60s (lost connection)", "Infrastructure failure"),
    ],
)
def test_category_regexes(message: str, category: str) -> None:
    """First match wins (Allure 3); Allure 2 needs a full match, so check with fullmatch."""
    import re

    first = next(c["name"] for c in report.load_categories() if re.fullmatch(c["messageRegex"], message))
    assert first == category


def test_helpers_are_noops_without_allure() -> None:
    code = textwrap.dedent(
        """
        import sys
        sys.modules["allure"] = None  # make `import allure` fail
        from flowgate.fixtures import allure_support as a
        assert not a.allure_available()
        a.label(epic="Ordering", backend="sim", implementation="reference")
        with a.step("x"):
            pass
        a.attach_history([]); a.attach_seed(1, "cmd"); a.attach_anomalies([]); a.attach_timeline([])
        a.attach_table("t", "n"); a.attach_latency_histogram([1.0]); a.attach_throughput([(0, 1.0)])
        assert a.latency_histogram_svg([1.0, 2.0]).startswith("<svg")
        print("ok")
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=report.REPO_ROOT, capture_output=True, text=True, check=False
    )
    assert proc.stdout.strip() == "ok", proc.stderr
