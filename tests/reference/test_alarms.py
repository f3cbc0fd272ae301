"""The alarm evaluator's CloudWatch semantics (``reference/alarms.py``) and the failure-detection
numbers in the health report (``reference/health.py``, ``reference/monitoring.py``)."""

from __future__ import annotations

from typing import Any

import pytest

from flowgate.harness.detection import ORDERS, DetectionWorld
from flowgate.reference.alarms import ALARM, INSUFFICIENT_DATA, OK, AlarmEvaluator, AlarmSpec
from flowgate.reference.health import alarm_health, check_health
from flowgate.reference.monitoring import default_alarms


def _run(spec: AlarmSpec, values: list[float | None]) -> list[str]:
    ev = AlarmEvaluator([spec])
    out = []
    for t, v in enumerate(values):
        ev.observe(float(t), {spec.metric: v})
        out.append(ev.states()[spec.name])
    return out


def test_m_out_of_n() -> None:
    spec = AlarmSpec("a", "m", ">", 10, evaluation_periods=3, datapoints_to_alarm=2)
    assert _run(spec, [11, 1, 1, 11, 11, 1, 1, 1]) == [OK, OK, OK, OK, ALARM, ALARM, OK, OK]


def test_all_periods_by_default_and_transitions_are_recorded() -> None:
    spec = AlarmSpec("a", "m", ">=", 5, evaluation_periods=2)
    ev = AlarmEvaluator([spec])
    for t, v in enumerate([5, 1, 5, 5, 0]):
        ev.observe(float(t), {"m": v})
    state = ev.alarms["a"]
    assert state.fired_at() == [3.0]
    assert state.cleared_at() == [4.0]
    assert [(x.old, x.new) for x in state.transitions] == [(INSUFFICIENT_DATA, OK), (OK, ALARM), (ALARM, OK)]


@pytest.mark.parametrize(
    ("treat", "expected"),
    [
        ("missing", [INSUFFICIENT_DATA, INSUFFICIENT_DATA]),
        ("breaching", [OK, ALARM]),
        ("notBreaching", [OK, OK]),
        ("ignore", [INSUFFICIENT_DATA, INSUFFICIENT_DATA]),
    ],
)
def test_missing_data(treat: str, expected: list[str]) -> None:
    spec = AlarmSpec("a", "m", "<", 1, evaluation_periods=2, treat_missing=treat)  # type: ignore[arg-type]
    assert _run(spec, [None, None]) == expected


def test_ignore_keeps_the_state_while_data_is_missing() -> None:
    spec = AlarmSpec("a", "m", ">", 0, treat_missing="ignore")
    assert _run(spec, [1, None, None, 0]) == [ALARM, ALARM, ALARM, OK]


def test_invalid_specs_are_refused() -> None:
    with pytest.raises(ValueError, match="datapoints_to_alarm"):
        AlarmSpec("a", "m", ">", 1, evaluation_periods=2, datapoints_to_alarm=3)
    with pytest.raises(ValueError, match="comparison"):
        AlarmSpec("a", "m", "==", 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="twice"):
        AlarmEvaluator([AlarmSpec("a", "m", ">", 1), AlarmSpec("a", "n", ">", 1)])


def test_default_alarms_carry_the_seed_thresholds() -> None:
    rules = {a.name: (a.metric, a.comparison, a.threshold) for a in default_alarms()}
    assert rules["backlog-over-1000"] == ("Backlog", ">", 1000)
    assert rules["rejected-share-over-5pct"] == ("RejectedShare", ">", 0.05)
    assert rules["no-worker-polling"] == ("PollingWorkers", "<", 1)
    assert rules["dlq-growth"] == ("DlqGrowth", ">", 0)
    assert rules["sustained-backlog"][0] == "OldestMessageAgeSeconds"


def test_health_report_carries_backlog_age_dlq_depth_and_alarms() -> None:
    seen: list[dict[str, Any]] = []

    def look(w: DetectionWorld) -> None:
        if 0 in w.stalled and not seen and w.clock.now() - start > 60:
            seen.extend(w.runtimes[0].health().as_dict()["metrics"]["consumers"])

    world = DetectionWorld(seed=5, rate=3.0, on_step=look)
    world.run_for(61)
    start = world.clock.now()
    world.stall(0, 120.0)
    world.run_for(30)  # worker 0 sits 120 s in a handler with a message, the world runs on
    orders = next(c for c in seen if c["queue"] == ORDERS)
    assert orders["held"] >= 1
    assert start - 1 <= orders["oldest_held_sent_at"] <= start + 1
    assert orders["effects"].get("SubmitPartnerOrder", 0) > 0
    report = check_health(world.config, world.resources, sqs=world.sqs, sns=world.aws.client("sns"))
    queues = report.as_dict()["metrics"]["queues"]
    assert set(queues[ORDERS]) == {"visible", "in_flight", "delayed", "backlog", "dlq_depth"}
    assert queues[ORDERS]["backlog"] == queues[ORDERS]["visible"] + queues[ORDERS]["in_flight"]
    with_alarms = alarm_health(world.monitor.report(), report).as_dict()
    assert with_alarms["alarms"]["no-worker-polling"]["state"] == OK
    assert with_alarms["status"] == "ok"  # metrics and alarms never change reachability


def test_a_gap_in_the_data_does_not_clear_an_alarm() -> None:
    """``missing``: the evaluation looks back for present datapoints (CloudWatch)."""
    spec = AlarmSpec("a", "m", ">", 4, evaluation_periods=3)
    assert _run(spec, [5, 6, 7, None, 8, 1]) == [OK, OK, ALARM, ALARM, ALARM, OK]
    assert _run(spec, [5, 6, 7, None, None, None]) == [OK, OK, ALARM, ALARM, ALARM, INSUFFICIENT_DATA]
