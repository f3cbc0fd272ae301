"""The reference adapter's contract extensions: the ready line declares the ``replay`` capability,
business failures are dead-lettered (``business_failures_to_dlq``), and replay mode
(``FLOWGATE_MODE=replay``, ``FLOWGATE_REPLAY_ENTITIES``) prints the stored entities' events from
the shared store directory without writing to it -- also through the mutant worker, where
``replay-persists`` makes two replays differ."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from flowgate.harness.gate.adapters import reference_worker
from flowgate.harness.gate.adapters.reference_worker import config_from_env
from flowgate.reference.bus import EventQueue, LocalCommandDispatcher, Processor
from flowgate.reference.domain.orders import AuthorizePayment, OrderSaga, PlaceOrder, order_registry
from flowgate.reference.messages import Event, encode, new_command
from flowgate.reference.sql import SqlStorage

ROOT = Path(__file__).resolve().parents[2]


def contract_env(store: Path, **extra: str) -> dict[str, str]:
    return {
        "FLOWGATE_COMMAND_QUEUE_URL": "http://127.0.0.1:1/000000000000/fg-r1-commands.fifo",
        "FLOWGATE_DEAD_LETTER_QUEUE_URL": "http://127.0.0.1:1/000000000000/fg-r1-commands-dlq.fifo",
        "FLOWGATE_EVENT_TOPIC_ARN": "arn:aws:sns:us-east-1:000000000000:fg-r1-events.fifo",
        "FLOWGATE_VISIBILITY_TIMEOUT": "3",
        "FLOWGATE_MAX_RECEIVE_COUNT": "5",
        "FLOWGATE_IDEMPOTENCY_URL": f"file://{store}",
        "AWS_REGION": "us-east-1",
        **extra,
    }


class Recording:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def dispatch(self, event: Event) -> None:
        self.events.append(event)


def populate(store: Path) -> list[Event]:
    """Apply two orders' commands through the processor into the adapter's SQLite file."""
    registry = order_registry()
    storage = SqlStorage(registry, f"sqlite:///{store / 'reference.db'}")
    live = Recording()
    local = LocalCommandDispatcher(Processor(storage, sagas=[OrderSaga()]), EventQueue([live]))
    for entity in ("a1", "a2"):
        local.dispatch(new_command(PlaceOrder("c", "S", 1, 7), entity, sequence_no=1, is_new=True))
        local.dispatch(new_command(AuthorizePayment("p", 7), entity, sequence_no=2))
    storage.engine.dispose()
    return live.events


def replayed(events: Sequence[Event], order: Sequence[str]) -> list[dict[str, Any]]:
    out = []
    for entity in order:
        for e in events:
            if e.entity_id == entity:
                wire = json.loads(encode(e))
                wire["metadata"]["isReplay"] = True
                out.append(wire)
    return out


def snapshot(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


def run_adapter(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], env: dict[str, str]
) -> tuple[int, str]:
    for key in [k for k in os.environ if k.startswith("FLOWGATE_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    code = reference_worker.main()
    return code, capsys.readouterr().out


def test_adapter_dead_letters_business_failures(tmp_path: Path) -> None:
    assert config_from_env(contract_env(tmp_path))["options"]["business_failures_to_dlq"] is True


def test_adapter_ready_line_declares_replay(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    handed: list[list[str]] = []

    def fake_worker(env: dict[str, str]) -> Any:
        return lambda argv: handed.append(list(argv)) or 0

    monkeypatch.setattr(reference_worker, "_worker_main", fake_worker)
    env = contract_env(tmp_path, FLOWGATE_DEAD_LETTER_QUEUE_URL="http://h/000000000000/gate-dlq.fifo")
    code, out = run_adapter(monkeypatch, capsys, env)
    assert code == 0
    assert out == ""  # the worker prints the ready line once its pollers run, not the adapter
    ((flag, config, ready_flag, line),) = handed
    assert (flag, ready_flag) == ("--config", "--ready")
    token, _, rest = line.partition(" ")
    assert token == "flowgate-ready"
    ready = json.loads(rest)
    assert ready["capabilities"] == ["replay"]
    assert ready["impl"] == "reference"
    assert ready["config"] == config
    written = json.loads(Path(config).read_text())
    queue = written["listen"][0]
    assert written["deadLetterQueues"] == {queue: "gate-dlq.fifo"}  # the gate's DLQ, not q-dlq


def test_adapter_replay_mode_prints_events_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    live = populate(tmp_path)
    before = snapshot(tmp_path)
    env = contract_env(tmp_path, FLOWGATE_MODE="replay", FLOWGATE_REPLAY_ENTITIES="a2, unknown,a1")
    code, out = run_adapter(monkeypatch, capsys, env)
    assert code == 0
    assert "flowgate-ready" not in out
    assert [json.loads(line) for line in out.splitlines()] == replayed(live, ["a2", "a1"])
    assert snapshot(tmp_path) == before, "replay mode wrote into the store directory"
    assert run_adapter(monkeypatch, capsys, env) == (0, out)
    empty = contract_env(tmp_path, FLOWGATE_MODE="replay", FLOWGATE_REPLAY_ENTITIES="")
    assert run_adapter(monkeypatch, capsys, empty) == (0, "")


def test_adapter_replay_applies_the_replay_persists_mutant(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    populate(tmp_path)
    env = contract_env(
        tmp_path, FLOWGATE_MODE="replay", FLOWGATE_REPLAY_ENTITIES="a1,a2", FLOWGATE_MUTANT="replay-persists"
    )
    first, second = run_adapter(monkeypatch, capsys, env), run_adapter(monkeypatch, capsys, env)
    assert first[0] == 0
    assert first[1]
    assert first != second, "the mutant's first replay appended commands the second one sees"


def test_adapter_replay_mode_as_a_process(tmp_path: Path) -> None:
    live = populate(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWGATE_")}
    env.update(contract_env(tmp_path, FLOWGATE_MODE="replay", FLOWGATE_REPLAY_ENTITIES="a1"))
    proc = subprocess.run(
        [sys.executable, "-m", "flowgate.harness.gate.adapters.reference_worker"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")] == replayed(
        live, ["a1"]
    )
    assert "flowgate-ready" not in proc.stdout
