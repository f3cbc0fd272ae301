"""Load profiles as pure schedules: ``rate_at(t)`` orders/minute, no Locust import.

The Locust shape (``loadtests/locustfile.py``) turns a schedule into users with
:func:`tick_for`: every user is an open-loop pacer releasing ``user_rate`` orders a minute
whatever the response times, so ``users = round(rate / user_rate)`` makes the arrival rate
the target. This also holds with ``--processes`` (Locust spreads users over processes).

Profiles (``--shape NAME`` or ``FLOWGATE_SHAPE``):

* ``steady-10k`` -- 10,000/min for ``duration`` (default 120 s);
* ``ramp`` -- linear 0 -> 20,000/min over ``duration`` (default 300 s);
* ``spike`` -- 10,000/min with 30 s bursts at 3x every 120 s (bursts start at 60 s);
* ``soak`` -- 10,000/min for an hour;
* ``capacity`` -- steps of ``step_s`` (30 s) from 1,000/min up by 1,000/min until a step's
  verdict (:func:`step_ok`) says stop: achieved rate < 98% of the step's target, p99
  send-to-effect above the threshold, or a backlog that kept growing.

``--target-rate`` scales every profile (the base rate: 10,000 for steady/spike/soak, the
peak for ramp, the start for capacity; ``--step-rate`` sets capacity's increment) so that a smoke can run ``steady-10k`` at 600/min.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

DEFAULT_USER_RATE = 100.0  # orders per minute per pacer user


@dataclass
class Schedule:
    """A rate over time. ``rate_at`` returns orders/min, or ``None`` once the profile ends."""

    name: str
    base_rate: float
    duration_s: float

    def rate_at(self, t: float) -> float | None:
        raise NotImplementedError

    def expected_orders(self, until: float, step: float = 0.1) -> float:
        """The integral of the rate from 0 to ``until`` (the orders the profile asks for)."""
        total = 0.0
        t = 0.0
        while t < until:
            dt = min(step, until - t)
            rate = self.rate_at(t + dt / 2)
            if rate is None:
                break
            total += rate * dt / 60.0
            t += dt
        return total


@dataclass
class Steady(Schedule):
    def rate_at(self, t: float) -> float | None:
        return self.base_rate if t < self.duration_s else None


@dataclass
class Ramp(Schedule):
    """0 -> ``base_rate`` (the peak) linearly over ``duration_s``."""

    def rate_at(self, t: float) -> float | None:
        if t >= self.duration_s:
            return None
        return self.base_rate * t / self.duration_s


@dataclass
class Spike(Schedule):
    factor: float = 3.0
    burst_s: float = 30.0
    period_s: float = 120.0
    first_burst_s: float = 60.0

    def rate_at(self, t: float) -> float | None:
        if t >= self.duration_s:
            return None
        if t >= self.first_burst_s and (t - self.first_burst_s) % self.period_s < self.burst_s:
            return self.base_rate * self.factor
        return self.base_rate


@dataclass
class Capacity(Schedule):
    """Step up by ``step_rate`` every ``step_s`` until :meth:`stop` is called or ``max_rate``.

    ``duration_s`` caps the whole run. The shape calls :meth:`end_step` at each step
    boundary with the step's verdict; a failed step ends the profile and the last good step's
    rate is the capacity.
    """

    step_rate: float = 1_000.0
    step_s: float = 30.0
    max_rate: float = 40_000.0
    step: int = 0
    stopped: bool = False
    history: list[tuple[float, bool]] = field(default_factory=list)

    def current(self) -> float:
        return self.base_rate + self.step * self.step_rate

    def rate_at(self, t: float) -> float | None:
        if self.stopped or t >= self.duration_s:
            return None
        return min(self.current(), self.max_rate)

    def end_step(self, ok: bool) -> None:
        self.history.append((self.current(), ok))
        if not ok or self.current() >= self.max_rate:
            self.stopped = True
        else:
            self.step += 1

    @property
    def capacity(self) -> float:
        """Highest step rate that passed (0 when none did)."""
        good = [rate for rate, ok in self.history if ok]
        return max(good) if good else 0.0


PROFILES: Mapping[str, tuple[type[Schedule], float, float]] = {
    # name: (class, default base rate/min, default duration s)
    "steady-10k": (Steady, 10_000.0, 120.0),
    "ramp": (Ramp, 20_000.0, 300.0),
    "spike": (Spike, 10_000.0, 240.0),
    "soak": (Steady, 10_000.0, 3_600.0),
    "capacity": (Capacity, 1_000.0, 900.0),
}


def make_schedule(name: str, *, rate: float | None = None, duration_s: float | None = None) -> Schedule:
    if name not in PROFILES:
        raise ValueError(f"unknown shape {name!r}; known: {', '.join(PROFILES)}")
    cls, base, duration = PROFILES[name]
    return cls(name=name, base_rate=rate or base, duration_s=duration_s or duration)


def users_for(rate_per_min: float, user_rate: float = DEFAULT_USER_RATE) -> int:
    """Pacer users needed for ``rate_per_min`` (each releases ``user_rate``/min)."""
    if rate_per_min <= 0:
        return 0
    return max(1, round(rate_per_min / user_rate))


def tick_for(
    schedule: Schedule, run_time: float, user_rate: float = DEFAULT_USER_RATE, spawn_rate: float = 200.0
) -> tuple[int, float] | None:
    """What ``LoadTestShape.tick()`` returns at ``run_time``: ``(users, spawn_rate)`` or ``None``."""
    rate = schedule.rate_at(run_time)
    if rate is None:
        return None
    return users_for(rate, user_rate), spawn_rate


def integrate_steps(points: list[tuple[float, float]], start: float, end: float) -> float:
    """Orders asked for by a piecewise-constant rate: ``points`` are ``(time, rate/min)`` in
    time order, each rate holding until the next point; integrated over ``[start, end]``."""
    total = 0.0
    for i, (t, rate) in enumerate(points):
        t_next = points[i + 1][0] if i + 1 < len(points) else end
        lo, hi = max(t, start), min(t_next, end)
        if hi > lo:
            total += rate * (hi - lo) / 60.0
    return total


@dataclass(frozen=True)
class StepStats:
    """What one capacity step measured."""

    target_per_min: float
    due: int  # orders the pacers released in the step
    acked: int  # orders whose send was acknowledged in the step
    p99_ms: float  # send-to-effect p99 over the step (nan when nothing completed)
    backlog_start: int  # orders sent but not yet effected at the step's start
    backlog_end: int


def step_ok(
    stats: StepStats, *, p99_limit_ms: float = 2_000.0, min_ratio: float = 0.98, backlog_growth: float = 0.5
) -> tuple[bool, str]:
    """The capacity step verdict: ``(ok, reason)``.

    A step fails when the achieved send rate is below ``min_ratio`` of what was due, when
    its p99 send-to-effect latency exceeds ``p99_limit_ms``, or when the backlog of orders
    not yet effected grew by more than ``backlog_growth`` x the step's orders (the system is
    falling behind even if sends still succeed).
    """
    if stats.due <= 0:
        return False, "nothing was due"
    ratio = stats.acked / stats.due
    if ratio < min_ratio:
        return False, f"achieved {ratio:.1%} of the due orders (< {min_ratio:.0%})"
    if math.isnan(stats.p99_ms):
        return False, "no order took effect in the step"
    if stats.p99_ms > p99_limit_ms:
        return False, f"p99 send-to-effect {stats.p99_ms:.0f} ms > {p99_limit_ms:.0f} ms"
    growth = stats.backlog_end - stats.backlog_start
    if growth > backlog_growth * stats.due:
        return False, f"backlog grew by {growth} orders (> {backlog_growth:.0%} of the step's {stats.due})"
    return True, "ok"


#: the baseline's wires a capacity run measures, in this order (``flowgate.harness.baseline.WIRES``):
#: ``bare`` is HARNESS.md's tiny message, ``contract`` the reference's own message shape, so the
#: ``contract`` ratio compares like with like and the ``bare`` one shows what the wire costs
BASELINE_WIRES = ("bare", "contract")


def baseline_key(wire: str, name: str) -> str:
    """The summary key of a baseline figure: ``bare`` keeps the historical names
    (``baseline_capacity_per_min``, ``capacity_ratio``, ``baseline_error``); any other wire
    inserts its name (``baseline_contract_capacity_per_min``, ``capacity_ratio_contract``,
    ``baseline_contract_error``)."""
    if wire == "bare":
        return {
            "capacity": "baseline_capacity_per_min",
            "ratio": "capacity_ratio",
            "error": "baseline_error",
        }[name]
    return {
        "capacity": f"baseline_{wire}_capacity_per_min",
        "ratio": f"capacity_ratio_{wire}",
        "error": f"baseline_{wire}_error",
    }[name]


def baseline_entries(reference_capacity: float, baselines: Mapping[str, float | str]) -> dict[str, object]:
    """Summary entries for the baselines measured in a capacity run.

    ``baselines`` maps a wire to its capacity (orders/min) or to an error text (the baseline run
    failed). Per wire: the capacity and ``reference / baseline`` rounded to 3 places (nan when the
    baseline's capacity is 0), or the error, under :func:`baseline_key`'s names.
    """
    out: dict[str, object] = {}
    for wire, value in baselines.items():
        if isinstance(value, str):
            out[baseline_key(wire, "error")] = value
            continue
        out[baseline_key(wire, "capacity")] = value
        out[baseline_key(wire, "ratio")] = round(reference_capacity / value, 3) if value else math.nan
    return out


def capacity_line(summary: Mapping[str, Any]) -> str:
    """The capacity run's one-line result: the reference's capacity and, per baseline wire, the
    baseline's capacity and the ratio (or why it is missing)."""
    parts = [f"capacity: reference {float(summary.get('capacity_per_min') or 0):,.0f}/min"]
    for wire in BASELINE_WIRES:
        cap = summary.get(baseline_key(wire, "capacity"))
        err = summary.get(baseline_key(wire, "error"))
        if cap is not None:
            ratio = summary.get(baseline_key(wire, "ratio"))
            parts.append(f"baseline ({wire} wire) {float(cap):,.0f}/min, ratio {ratio}")
        elif err is not None:
            parts.append(f"baseline ({wire} wire) {err}")
    return "; ".join(parts)
