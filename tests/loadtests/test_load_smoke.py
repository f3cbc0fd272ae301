"""End-to-end smoke of the Locust load test: ~10 s headless at a low rate on LocalStack."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.localstack
@pytest.mark.slow
@pytest.mark.parametrize(
    ("sut", "extra"),
    [
        ("reference", []),
        ("reference", ["--no-worker-history"]),
        ("raw", []),
        ("reference", ["--encryption"]),
        ("reference", ["--encryption", "--data-key-cache"]),
    ],
    ids=["reference-worker-history", "reference-probe-history", "raw", "reference-kms", "reference-kms-cached"],
)
def test_locust_steady_smoke_is_clean(
    localstack_endpoint: str | None, tmp_path: Path, sut: str, extra: list[str]
) -> None:
    if localstack_endpoint is None:
        pytest.skip("the load smoke runs on LocalStack only")
    if importlib.util.find_spec("locust") is None:  # not imported here: it monkey-patches with gevent
        pytest.fail("the load extra (locust) is not installed: pip install 'flowgate-harness[load]'", pytrace=False)
    env = {**os.environ, "AWS_ENDPOINT_URL": localstack_endpoint}
    cmd = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(ROOT / "loadtests"),
        "--headless",
        "--only-summary",
        "--shape",
        "steady-10k",
        "--target-rate",
        "600",
        "--shape-duration",
        "8",
        "--sut",
        sut,
        "--workers",
        "1",
        "--drain-timeout",
        "30",
        # no latency limit (--p99-ms): speed is measured by the load runs and `nox -s bench`, never
        # asserted by a test. An 8 s run at 600/min: the orders of the last seconds take effect
        # after the window by design; keeping up is a property of full-length runs, not of this
        # functional smoke
        "--min-effect-ratio",
        "0",
        "--report-dir",
        str(tmp_path),
        "--csv",
        str(tmp_path / "locust"),
        "--html",
        str(tmp_path / "locust.html"),
        *extra,
    ]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180, check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    assert "VERDICT: PASS" in output
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert all(c["valid"] for c in summary["checkers"].values()), summary["checkers"]
    assert summary["acked"] > 0
    assert summary["effected"] == summary["acked"]
    history = (tmp_path / "history.jsonl").read_text().splitlines()
    assert history, "the history is empty"
    fs = {json.loads(line)["f"] for line in history}
    assert {"send", "effect", "drain"} <= fs
    kms = summary["kms_calls_per_order"]
    if "--encryption" not in extra:
        assert kms["total"] == 0, kms
    elif "--data-key-cache" not in extra:
        # one GenerateDataKey and one Decrypt per sealed message: the command and its event
        assert kms["GenerateDataKey"] >= 2, kms
        assert kms["Decrypt"] >= 2, kms
    else:  # one data key per destination and process for the whole run
        assert 0 < kms["GenerateDataKey"] + kms["Decrypt"] < 0.5, kms
    if sut == "reference" and not extra:  # the workers' own observations were merged in
        assert {"receive", "publish", "delete"} <= fs
        assert summary["worker_histories"]
    assert (tmp_path / "locust_stats.csv").exists()
    assert (tmp_path / "locust.html").exists()
