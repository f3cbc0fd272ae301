"""flowgate.fixtures.workers: worker history files are parsed incrementally, whole lines only, once."""

from __future__ import annotations

import json
from pathlib import Path

from flowgate.fixtures.workers import Worker, Workers
from flowgate.harness.history import NEMESIS, History


def _line(f: str, **value: object) -> str:
    return json.dumps({"process": "w1", "type": "ok", "f": f, "value": value, "time": 1.0}) + "\n"


def test_appended_lines_are_read_once_and_a_torn_line_waits_for_its_newline(tmp_path: Path) -> None:
    workers = Workers(tmp_path, History(), endpoint_url=None)
    path = tmp_path / "history-1.jsonl"
    worker = Worker("w1", tmp_path / "worker.json", tmp_path, {}, service="svc", history_files=[path])
    workers.workers["w1"] = worker
    assert list(workers.worker_ops()) == []  # no file yet
    torn = _line("project", event_id="e2", view="orders")
    path.write_text(
        _line("project", event_id="e1", view="orders") + _line("crash", point="mid_handler") + torn[:20]
    )
    first = list(workers.worker_ops())
    assert [raw["f"] for raw in first] == ["project", "crash"]
    assert first[0]["value"]["view"] == "svc/orders"
    assert first[1]["process"] == NEMESIS
    assert first[1]["value"]["worker"] == "w1"
    with path.open("a") as handle:
        handle.write(torn[20:])
    again = list(workers.worker_ops())
    assert [raw["value"].get("event_id") for raw in again] == ["e1", None, "e2"]
    assert again[0]["value"]["view"] == "svc/orders"  # qualified once, not on every read
    assert again[2]["value"]["view"] == "svc/orders"
