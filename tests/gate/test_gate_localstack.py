"""The gate end to end on LocalStack: the Node example worker passes the smoke profile, and a
deliberately broken variant of it fails with the anomaly named."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from flowgate.harness.gate import EXIT_ANOMALY, EXIT_PASS, run_gate

ROOT = Path(__file__).resolve().parents[2]
WORKER = ROOT / "docs" / "examples" / "node-worker"
IMPL = f"node {WORKER / 'worker.js'}"

pytestmark = [pytest.mark.localstack, pytest.mark.slow]


@pytest.fixture(scope="module")
def node_worker() -> Path:
    if shutil.which("node") is None:
        pytest.fail("node (>= 20) is required for the gate's language-neutrality test; install Node.js")
    if not (WORKER / "node_modules" / "@aws-sdk" / "client-sqs").exists():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=WORKER, check=True, timeout=300)
    return WORKER


def test_node_worker_own_tests_pass(node_worker: Path) -> None:
    """The example worker's tests against a scripted endpoint (heartbeat, business dead letters,
    SIGTERM release, transport errors); they need its npm dependencies, hence this module."""
    result = subprocess.run(
        ["node", "--test", "test/worker.test.js"],
        cwd=node_worker,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_node_worker_passes_smoke(localstack_endpoint: str | None, node_worker: Path, tmp_path: Path) -> None:
    result = run_gate(
        IMPL,
        profile="smoke",
        backend="localstack",
        seed=1,
        out_dir=tmp_path,
        endpoint_url=localstack_endpoint,
    )
    assert result.passed, result.table
    assert result.exit_code == EXIT_PASS
    assert result.stats["effects"] == result.stats["commands"]
    assert (tmp_path / "junit.xml").exists()
    assert list((tmp_path / "allure-results").glob("*-result.json"))


def test_broken_node_worker_fails_with_the_anomaly_named(
    localstack_endpoint: str | None, node_worker: Path, tmp_path: Path
) -> None:
    # skip-dedup: no idempotency check and "isNew creates the order" -- a late PlaceOrder resend
    # resets an order that had moved on, so its next commands fail as business errors: lost.
    result = run_gate(
        IMPL,
        profile="smoke",
        backend="localstack",
        seed=1,
        out_dir=tmp_path,
        endpoint_url=localstack_endpoint,
        extra_env={"FLOWGATE_BROKEN": "skip-dedup"},
    )
    assert not result.passed
    assert result.exit_code == EXIT_ANOMALY
    by_name = {v.checker: v for v in result.verdicts}
    assert "lost" in by_name["total_queue"].kinds(), result.table
    assert "lost:" in result.table


def test_node_worker_that_drops_poison_fails_dead_letter(
    localstack_endpoint: str | None, node_worker: Path, tmp_path: Path
) -> None:
    result = run_gate(
        IMPL,
        profile="smoke",
        backend="localstack",
        seed=2,
        out_dir=tmp_path,
        endpoint_url=localstack_endpoint,
        extra_env={"FLOWGATE_BROKEN": "drop-poison"},
    )
    by_name = {v.checker: v for v in result.verdicts}
    assert "poison-not-dead-lettered" in by_name["dead_letter"].kinds(), result.table
    assert result.exit_code == EXIT_ANOMALY
