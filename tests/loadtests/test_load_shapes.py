"""The load profiles' schedules, the shape tick arithmetic and the capacity step verdict."""

from __future__ import annotations

import math

import pytest

from loadtests import _shapes as s


def test_every_profile_is_selectable_by_name() -> None:
    assert set(s.PROFILES) == {"steady-10k", "ramp", "spike", "soak", "capacity"}
    with pytest.raises(ValueError, match="unknown shape"):
        s.make_schedule("nope")


def test_steady_10k_holds_100_users_of_100_per_min_then_ends() -> None:
    sched = s.make_schedule("steady-10k")
    assert sched.duration_s == 120
    assert s.tick_for(sched, 0.0) == (100, 200.0)
    assert s.tick_for(sched, 119.9) == (100, 200.0)
    assert s.tick_for(sched, 120.0) is None
    assert sched.expected_orders(60.0) == pytest.approx(10_000, rel=1e-6)


def test_target_rate_and_duration_override_the_profile() -> None:
    sched = s.make_schedule("steady-10k", rate=600, duration_s=10)
    assert s.tick_for(sched, 5.0) == (6, 200.0)
    assert s.tick_for(sched, 10.0) is None


def test_ramp_goes_linearly_from_0_to_20k() -> None:
    sched = s.make_schedule("ramp")
    assert sched.rate_at(0.0) == 0
    assert sched.rate_at(150.0) == pytest.approx(10_000)
    assert s.tick_for(sched, 0.0) == (0, 200.0)
    assert s.tick_for(sched, 299.0)[0] == 199  # type: ignore[index]
    assert s.tick_for(sched, 300.0) is None
    assert sched.expected_orders(300.0) == pytest.approx(20_000 * 5 / 2, rel=1e-3)


def test_spike_bursts_3x_for_30s_every_120s() -> None:
    sched = s.make_schedule("spike")
    assert [sched.rate_at(t) for t in (0, 59, 60, 89, 90, 179, 180, 209, 210)] == [
        10_000,
        10_000,
        30_000,
        30_000,
        10_000,
        10_000,
        30_000,
        30_000,
        10_000,
    ]
    assert s.tick_for(sched, 75.0) == (300, 200.0)


def test_soak_is_10k_for_an_hour() -> None:
    sched = s.make_schedule("soak")
    assert sched.rate_at(3599) == 10_000
    assert sched.rate_at(3600) is None


def test_capacity_steps_up_until_a_step_fails() -> None:
    sched = s.make_schedule("capacity")
    assert isinstance(sched, s.Capacity)
    assert s.tick_for(sched, 0.0) == (10, 200.0)
    sched.end_step(True)
    assert sched.rate_at(31) == 2_000
    sched.end_step(True)
    sched.end_step(False)
    assert sched.rate_at(100) is None
    assert sched.capacity == 2_000
    assert sched.history == [(1_000, True), (2_000, True), (3_000, False)]


def test_capacity_stops_at_max_rate() -> None:
    sched = s.Capacity("capacity", 5_000, 600, step_rate=5_000, max_rate=10_000)
    sched.end_step(True)
    sched.end_step(True)
    assert sched.stopped
    assert sched.capacity == 10_000


@pytest.mark.parametrize(
    ("rate", "user_rate", "users"),
    [
        (0, 100, 0),
        (1, 100, 1),
        (10_000, 100, 100),
        (10_049, 100, 100),
        (10_050, 100, 100),
        (10_051, 100, 101),
        (20_000, 250, 80),
    ],
)
def test_users_for_rounds_to_the_nearest_user(rate: float, user_rate: float, users: int) -> None:
    assert s.users_for(rate, user_rate) == users


def test_integrate_steps_is_the_commanded_target() -> None:
    points = [(100.0, 600.0), (110.0, 1_200.0), (120.0, 0.0)]
    assert s.integrate_steps(points, 100.0, 120.0) == pytest.approx(100 + 200)
    assert s.integrate_steps(points, 105.0, 115.0) == pytest.approx(50 + 100)
    assert s.integrate_steps(points, 100.0, 130.0) == pytest.approx(300)
    assert s.integrate_steps([], 0.0, 10.0) == 0


def _step(**kw: float) -> s.StepStats:
    base = {
        "target_per_min": 10_000,
        "due": 5_000,
        "acked": 5_000,
        "p99_ms": 300.0,
        "backlog_start": 0,
        "backlog_end": 100,
    }
    base.update(kw)
    return s.StepStats(**base)  # type: ignore[arg-type]


def test_step_ok_passes_a_healthy_step() -> None:
    assert s.step_ok(_step()) == (True, "ok")


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"acked": 4_800}, "achieved 96.0%"),
        ({"p99_ms": 2_500.0}, "p99 send-to-effect 2500 ms"),
        ({"p99_ms": math.nan}, "no order took effect"),
        ({"backlog_end": 3_000}, "backlog grew by 3000"),
        ({"due": 0}, "nothing was due"),
    ],
)
def test_step_ok_stops_on_rate_latency_or_backlog(change: dict[str, float], reason: str) -> None:
    ok, why = s.step_ok(_step(**change))
    assert not ok
    assert reason in why


def test_capacity_summary_gives_a_ratio_per_baseline_wire() -> None:
    entries = s.baseline_entries(9_000.0, {"bare": 12_000.0, "contract": 10_000.0})
    assert entries == {
        "baseline_capacity_per_min": 12_000.0,
        "capacity_ratio": 0.75,
        "baseline_contract_capacity_per_min": 10_000.0,
        "capacity_ratio_contract": 0.9,
    }
    line = s.capacity_line({"capacity_per_min": 9_000.0, **entries})
    assert line == (
        "capacity: reference 9,000/min; baseline (bare wire) 12,000/min, ratio 0.75; "
        "baseline (contract wire) 10,000/min, ratio 0.9"
    )


def test_capacity_summary_names_a_failed_baseline_and_a_zero_one() -> None:
    entries = s.baseline_entries(9_000.0, {"bare": 0.0, "contract": "baseline exited 1"})
    assert entries["baseline_contract_error"] == "baseline exited 1"
    assert math.isnan(entries["capacity_ratio"])  # type: ignore[arg-type]
    assert "baseline (contract wire) baseline exited 1" in s.capacity_line(
        {"capacity_per_min": 9e3, **entries}
    )


def test_capacity_measures_every_baseline_wire_under_the_report_s_keys() -> None:
    from flowgate.harness.baseline import WIRES
    from flowgate.harness.load_report import BASELINE_KEYS

    assert set(s.BASELINE_WIRES) == set(WIRES)
    assert [
        (w, s.baseline_key(w, "capacity"), s.baseline_key(w, "ratio"), s.baseline_key(w, "error"))
        for w in s.BASELINE_WIRES
    ] == list(BASELINE_KEYS)
