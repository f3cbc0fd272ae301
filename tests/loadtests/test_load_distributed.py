"""Locust's distributed mode on loopback: a master and 2 Locust worker processes (``--processes 2``).

The master starts the system under load once and judges; each Locust worker paces its share of
the users, sends, records its own sends and ships them to the master, which merges them with
the workers' histories. The run must give one clean verdict, and an order lost in a Locust worker
process (mutant ``load-sender-drops-order``, installed in the sending processes) must turn the
merged verdict into FAIL. ~10 s at 600 orders/min, 127.0.0.1 only.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LOSES_AN_ORDER = "load-sender-drops-order"


def _distributed_run(endpoint: str, report_dir: Path, mutant: str | None) -> tuple[int, str, dict]:
    if importlib.util.find_spec("locust") is None:  # not imported here: it monkey-patches with gevent
        pytest.fail("the load extra (locust) is not installed: pip install 'flowgate[load]'", pytrace=False)
    env = {k: v for k, v in os.environ.items() if k != "FLOWGATE_MUTANT"}
    env["AWS_ENDPOINT_URL"] = endpoint
    if mutant:
        env["FLOWGATE_MUTANT"] = mutant
    cmd = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(ROOT / "loadtests"),
        "--headless",
        "--only-summary",
        "--processes",
        "2",
        "--master-bind-host",
        "127.0.0.1",
        "--shape",
        "steady-10k",
        "--target-rate",
        "600",
        "--shape-duration",
        "8",
        "--workers",
        "1",
        "--drain-timeout",
        "30",
        "--min-effect-ratio",
        "0",
        "--min-rate-ratio",
        "0.5",
        "--report-dir",
        str(report_dir),
        "--csv",
        str(report_dir / "locust"),
    ]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240, check=False)
    summary_path = report_dir / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    return proc.returncode, proc.stdout + proc.stderr, summary


def _senders_sent(report_dir: Path) -> set[str]:
    """The history processes that recorded acknowledged sends."""
    out = set()
    for line in (report_dir / "history.jsonl").read_text().splitlines():
        op = json.loads(line)
        if op["f"] == "send" and op["type"] == "ok":
            out.add(op["process"])
    return out


@pytest.mark.localstack
@pytest.mark.slow
def test_distributed_run_is_clean(
    localstack_endpoint: str | None, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """2 Locust workers send, the master merges and passes (fails under ``--mutant``)."""
    if localstack_endpoint is None:
        pytest.skip("the distributed load test runs on LocalStack only")
    mutant = request.config.getoption("--mutant")
    rc, output, summary = _distributed_run(localstack_endpoint, tmp_path, mutant)
    assert "VERDICT: PASS" in output, output[-4000:]
    assert rc == 0, output[-4000:]
    assert summary["locust_role"] == "master"
    assert summary["senders"] == 2
    assert all(c["valid"] for c in summary["checkers"].values()), summary["checkers"]
    assert summary["acked"] > 0
    assert summary["effected"] == summary["acked"]
    # both Locust workers sent, each under its own name; the master sent nothing itself
    assert _senders_sent(tmp_path) == {"producer-1", "producer-2"}


@pytest.mark.localstack
@pytest.mark.slow
def test_order_lost_in_a_locust_worker_fails_the_merged_verdict(
    localstack_endpoint: str | None, tmp_path: Path
) -> None:
    """Each Locust worker process acknowledges one order it never sends: the master must FAIL."""
    if localstack_endpoint is None:
        pytest.skip("the distributed load test runs on LocalStack only")
    rc, output, summary = _distributed_run(localstack_endpoint, tmp_path, LOSES_AN_ORDER)
    assert "VERDICT: FAIL" in output, output[-4000:]
    assert rc != 0
    assert not summary["checkers"]["total_queue"]["valid"], summary["checkers"]
    assert summary["missing_after_drain"] >= 1, summary
    assert _senders_sent(tmp_path) == {"producer-1", "producer-2"}
