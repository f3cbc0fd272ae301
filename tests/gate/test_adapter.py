"""The reference adapter maps the contract's environment onto the reference's config file; the
Node worker derives the same event ids as the contract's uuid5 rule."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from flowgate.harness.gate.adapters.reference_worker import config_from_env
from flowgate.harness.gate.observe import derived_event_id

ROOT = Path(__file__).resolve().parents[2]


def test_reference_config_from_contract_env(tmp_path: Path) -> None:
    env = {
        "FLOWGATE_COMMAND_QUEUE_URL": "http://localhost:4566/000000000000/fg-r1-commands.fifo",
        "FLOWGATE_EVENT_TOPIC_ARN": "arn:aws:sns:us-east-1:000000000000:fg-r1-events.fifo",
        "FLOWGATE_KMS_KEY_ID": "k-1",
        "FLOWGATE_VISIBILITY_TIMEOUT": "3",
        "FLOWGATE_MAX_RECEIVE_COUNT": "5",
        "FLOWGATE_IDEMPOTENCY_URL": f"file://{tmp_path}",
        "AWS_REGION": "us-east-1",
    }
    cfg = config_from_env(env)
    assert cfg["listen"] == ["fg-r1-commands.fifo"]
    assert list(cfg["raise"]) == ["fg-r1-events.fifo"]
    assert cfg["encryption"] == {"kmsKeyId": "k-1"}
    assert cfg["options"]["visibility_timeout"] == 3
    assert cfg["options"]["max_receive_count"] == 5
    assert cfg["idempotency"]["url"] == f"sqlite:///{tmp_path / 'reference.db'}"
    assert "idempotency" not in config_from_env({**env, "FLOWGATE_IDEMPOTENCY_URL": "memory:"})


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
@pytest.mark.parametrize("command_id", ["6f1c2f3a-1d2e-4b5c-8d9e-0a1b2c3d4e5f", "not-a-uuid"])
def test_node_worker_event_ids_match_the_contract(command_id: str) -> None:
    script = f"console.log(require('./lib/ids').derivedEventId({command_id!r}, 0, 'OrderPlaced'))"
    out = subprocess.run(
        ["node", "-e", script],
        cwd=ROOT / "docs" / "examples" / "node-worker",
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.strip()
    assert out == derived_event_id(command_id, 0, "OrderPlaced")
