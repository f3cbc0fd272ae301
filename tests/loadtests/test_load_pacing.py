"""The open-loop pacer and the rate arithmetic shared by Locust and the baseline."""

from __future__ import annotations

import math

import pytest

from flowgate.harness.baseline import Pacer, achieved_per_min, chunks, percentile


def test_pacer_releases_rate_times_elapsed_whatever_the_tick_cadence() -> None:
    fine = Pacer(6_000, start=0.0)  # 100/s
    released_fine = sum(fine.due(t / 1000) for t in range(1, 10_001))  # every ms for 10 s
    coarse = Pacer(6_000, start=0.0)
    released_coarse = sum(coarse.due(t) for t in (0.5, 3.0, 3.0, 9.99, 10.0))  # late, irregular ticks
    assert released_fine == released_coarse == 1_000
    assert fine.released == 1_000


def test_pacer_does_not_lose_arrivals_when_late() -> None:
    p = Pacer(600, start=0.0)  # 10/s
    assert p.due(0.05) == 0
    assert p.due(5.0) == 50  # a 5 s stall releases the backlog at once (no coordinated omission)


def test_pacer_rate_change_keeps_what_was_due() -> None:
    p = Pacer(600, start=0.0)
    p.set_rate(1_200, now=1.0)  # 10 due at the old rate
    assert p.due(2.0) == 30


def test_pacer_initial_credit_is_a_phase() -> None:
    p = Pacer(60, start=0.0, _credit=0.75)  # 1/s, first order 0.25 s in
    assert p.next_due_in() == pytest.approx(0.25)
    assert p.due(0.3) == 1
    assert p.next_due_in() == pytest.approx(1.0, abs=0.06)


def test_pacer_negative_phase_delays_the_first_order() -> None:
    p = Pacer(60, start=0.0, _credit=-0.5)  # first order 1.5 s in: unbiased phase in [-0.5, 0.5)
    assert p.due(1.0) == 0
    assert p.next_due_in() == pytest.approx(0.5)
    assert p.due(1.6) == 1


def test_pacer_with_zero_rate_never_releases() -> None:
    p = Pacer(0, start=0.0)
    assert p.due(100.0) == 0
    assert p.next_due_in() == math.inf


def test_percentile_nearest_rank_and_helpers() -> None:
    values = sorted(float(v) for v in range(1, 101))
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100
    assert math.isnan(percentile([], 50))
    assert achieved_per_min(500, 30.0) == 1_000
    assert achieved_per_min(5, 0.0) == 0
    assert chunks(list(range(23))) == [list(range(10)), list(range(10, 20)), [20, 21, 22]]
