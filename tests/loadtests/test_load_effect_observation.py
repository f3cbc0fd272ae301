"""Effects observed at the view: the load test tails the workers' history files (no probe queue)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("gevent", reason="the load extra (locust, gevent) is not installed")

from loadtests._runtime import Config, Run, Tracked
from loadtests._sut import Order


class _FakeSut:
    final_event = "OrderPlaced"
    worker_history = True

    def __init__(self, paths: list[Path]) -> None:
        self.paths = paths

    def worker_histories(self) -> list[Path]:
        return self.paths


def _line(f: str, event_type: str, entity: str, event_id: str, when: float, kind: str = "ok") -> str:
    value = {"event_id": event_id, "entity_id": entity, "seq": 1, "event_type": event_type, "view": "orders"}
    return json.dumps({"process": "worker-1", "type": kind, "f": f, "value": value, "time": when})


def _run(tmp_path: Path, fired: list[dict[str, Any]]) -> tuple[Run, Path]:
    history = tmp_path / "worker-1-x.jsonl"
    history.write_text("")
    run = Run(Config(), fire=lambda **kw: fired.append(kw), log=lambda _m: None)
    run.sut = _FakeSut([history])  # type: ignore[assignment]
    for entity, sent in (("ord-1", 100.0), ("ord-2", 100.5)):
        order = Order(f"cmd-{entity}", entity, 1, "PlaceOrder")
        run.orders[entity] = Tracked(due=sent, order=order, sent=sent, acked=True)
        run.acked += 1
    run._start_view_tail()
    return run, history


def test_a_projected_final_event_is_the_effect_timed_by_the_worker_clock(tmp_path: Path) -> None:
    fired: list[dict[str, Any]] = []
    run, history = _run(tmp_path, fired)
    with history.open("a") as out:
        out.write(_line("publish", "OrderPlaced", "ord-1", "e1", 100.1) + "\n")  # not the view: ignored
        out.write(_line("project", "OrderPlaced", "ord-1", "e1", 100.25) + "\n")
        out.write(_line("project", "OrderPlaced", "ord-1", "e1", 100.40) + "\n")  # a second view, same event
        out.write(_line("project", "OrderPlaced", "ord-9", "e9", 100.40) + "\n")  # another run's order
        out.write(_line("project", "OrderPlaced", "ord-2", "e2", 101.0)[:40])  # cut: no newline yet
    run.probe_stop.set()
    run.probes[0].join(timeout=5)
    assert run.effected == 1
    assert run.duplicates == 0
    assert run.latencies == [(100.25, pytest.approx(250.0))]
    assert [e["name"] for e in fired] == ["send-to-effect"]


def test_a_line_written_in_two_parts_is_read_once_complete(tmp_path: Path) -> None:
    fired: list[dict[str, Any]] = []
    run, history = _run(tmp_path, fired)
    line = _line("project", "OrderPlaced", "ord-2", "e2", 101.0)
    with history.open("a") as out:
        out.write(line[:30])
        out.flush()
        import gevent

        gevent.sleep(0.15)  # the tail reads the first half and keeps it
        out.write(line[30:] + "\n")
    gevent.sleep(0.15)
    run.probe_stop.set()
    run.probes[0].join(timeout=5)
    assert run.effected == 1
    assert run.latencies == [(101.0, pytest.approx(500.0))]


def test_a_different_event_id_for_an_effected_order_counts_as_a_duplicate(tmp_path: Path) -> None:
    run, history = _run(tmp_path, [])
    with history.open("a") as out:
        out.write(_line("project", "OrderPlaced", "ord-1", "e1", 100.2) + "\n")
        out.write(_line("project", "OrderPlaced", "ord-1", "e1-bis", 100.3) + "\n")
        out.write(_line("project", "OrderConfirmed", "ord-2", "e3", 100.3) + "\n")  # not the final event
    run.probe_stop.set()
    run.probes[0].join(timeout=5)
    assert (run.effected, run.duplicates) == (1, 1)


def test_view_observation_needs_worker_histories() -> None:
    run = Run(Config(effect_at="view", workers=0), fire=lambda **kw: None, log=lambda _m: None)
    run.sut = _FakeSut([])  # type: ignore[assignment]
    with pytest.raises(RuntimeError, match="needs reference workers"):
        run._effect_source()
    run.cfg.effect_at = "auto"
    assert run._effect_source() == "probe"
    run.cfg.workers = 1
    assert run._effect_source() == "view"
