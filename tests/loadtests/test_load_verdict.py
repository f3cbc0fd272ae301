"""The end-of-run verdict: exit code from checkers, achieved rate and latency thresholds."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from loadtests._verdict import RunFigures, judge


@dataclass
class _Anomaly:
    kind: str


@dataclass
class _Verdict:
    checker: str
    valid: bool
    anomalies: list[_Anomaly] = field(default_factory=list)


CLEAN = [_Verdict("total_queue", True), _Verdict("exactly_once_effect", True)]


def _figures(**kw: float) -> RunFigures:
    base: dict[str, float] = {
        "target_orders": 10_000,
        "due_orders": 10_000,
        "acked_orders": 10_000,
        "failed_orders": 0,
        "elapsed_s": 60.0,
        "effected_orders": 10_000,
        "p50_ms": 100.0,
        "p95_ms": 200.0,
        "p99_ms": 300.0,
    }
    base.update(kw)
    return RunFigures(**base)  # type: ignore[arg-type]


def test_clean_run_exits_0() -> None:
    verdict = judge(_figures(), CLEAN, p99_ms=500)
    assert verdict.ok
    assert verdict.exit_code == 0
    assert verdict.reasons == []


def test_rates_per_minute() -> None:
    f = _figures(acked_orders=4_900, target_orders=5_000, elapsed_s=30.0)
    assert f.achieved_per_min == 9_800
    assert f.target_per_min == 10_000
    assert f.ratio == 0.98


def test_lost_or_duplicated_effect_fails() -> None:
    lost = [_Verdict("total_queue", False, [_Anomaly("lost"), _Anomaly("lost")])]
    verdict = judge(_figures(), lost)
    assert verdict.exit_code == 1
    assert verdict.reasons == ["checker total_queue invalid: lost"]
    dup = [_Verdict("exactly_once_effect", False, [_Anomaly("duplicate-effect")])]
    assert judge(_figures(), dup).exit_code == 1


def test_missing_effects_after_drain_fail_even_with_clean_checkers() -> None:
    verdict = judge(_figures(), CLEAN, missing_effects=3)
    assert verdict.exit_code == 1
    assert "3 acknowledged orders never reached their final event" in verdict.reasons


def test_achieved_rate_below_98_percent_fails_at_exactly_98_passes() -> None:
    assert judge(_figures(acked_orders=9_800), CLEAN).ok
    verdict = judge(_figures(acked_orders=9_799), CLEAN)
    assert not verdict.ok
    assert "of target 10,000/min (< 98%)" in verdict.reasons[0]


def test_latency_thresholds() -> None:
    assert judge(_figures(p99_ms=500.0), CLEAN, p99_ms=500).ok
    assert "p99 send-to-effect 501 ms > 500 ms" in judge(_figures(p99_ms=501.0), CLEAN, p99_ms=500).reasons
    assert not judge(_figures(p95_ms=900.0), CLEAN, p95_ms=800).ok
    assert not judge(_figures(p99_ms=math.nan), CLEAN, p99_ms=500).ok  # nothing measured is no pass
    assert judge(_figures(p99_ms=99_999.0), CLEAN).ok  # no threshold given: latency does not gate


def test_reasons_accumulate() -> None:
    bad = [_Verdict("total_queue", False, [_Anomaly("duplicated")])]
    verdict = judge(_figures(acked_orders=5_000, p99_ms=900.0), bad, p99_ms=500, extra_reasons=["x"])
    assert verdict.exit_code == 1
    assert len(verdict.reasons) == 4


def test_pacing_quantum_allowance_only_forgives_whole_orders_per_user() -> None:
    short = _figures(target_orders=80, acked_orders=75)  # 93.75%: 5 orders short
    assert not judge(short, CLEAN).ok
    assert not judge(short, CLEAN, allowance_orders=3).ok  # 78 < 78.4
    assert judge(short, CLEAN, allowance_orders=4).ok  # 6 users, each up to 1 order behind


def test_a_system_that_falls_behind_fails_even_if_the_drain_catches_up() -> None:
    behind = _figures(effected_in_window=8_900)  # 89 % effected while the load ran
    verdict = judge(behind, CLEAN, min_effect_ratio=0.95)
    assert verdict.exit_code == 1
    assert any("effects fell behind" in r and "8,900/min" in r for r in verdict.reasons)
    assert judge(_figures(effected_in_window=9_960), CLEAN, min_effect_ratio=0.95).ok
    # not measured, or not asked for (capacity judges its steps itself): no verdict on it
    assert judge(_figures(), CLEAN, min_effect_ratio=0.95).ok
    assert judge(behind, CLEAN).ok
