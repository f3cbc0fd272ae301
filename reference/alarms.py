"""Alarms with CloudWatch's evaluation semantics, over the datapoints of :mod:`flowgate.reference.monitoring`.

An :class:`AlarmSpec` is what a CloudWatch metric alarm is: a metric name, a comparison with a
threshold, ``evaluation_periods`` (N: how many of the most recent periods are looked at),
``datapoints_to_alarm`` (M: how many of those must breach, "M out of N") and what a missing
datapoint means (``treat_missing``):

* ``missing`` (CloudWatch's default): missing datapoints are left out and the evaluation looks
  further back for present ones (the last N present datapoints among the last 3 N periods), so a
  gap in the data never clears an alarm by itself; when all of the last N are missing the state
  becomes ``INSUFFICIENT_DATA``;
* ``notBreaching`` / ``breaching``: a missing datapoint counts as within / beyond the threshold;
* ``ignore``: the state stays what it is while the newest datapoint is missing.

:class:`AlarmEvaluator` is fed one datapoint per period (``observe(time, metrics)``: a mapping
metric name -> value, a metric absent or ``None`` = missing) and moves each alarm between
``INSUFFICIENT_DATA`` (the start), ``OK`` and ``ALARM``: ``ALARM`` when at least M of the last N
datapoints breach, ``OK`` when fewer do (and, with ``missing``, at least one is present). Every
state change is kept as a :class:`Transition` (time, from, to, reason), so a test or an operator
reads when an alarm fired and when it cleared. It is pure: no clock, no I/O, deterministic.
"""

from __future__ import annotations

import math
import operator
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

OK = "OK"
ALARM = "ALARM"
INSUFFICIENT_DATA = "INSUFFICIENT_DATA"

Comparison = Literal[">", ">=", "<", "<="]
TreatMissing = Literal["missing", "notBreaching", "breaching", "ignore"]

#: ``missing``: how many evaluation ranges back the evaluation looks for present datapoints
LOOK_BACK = 3

_COMPARE: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}


@dataclass(frozen=True)
class AlarmSpec:
    """One alarm: ``metric comparison threshold`` breached in ``datapoints_to_alarm`` of the last
    ``evaluation_periods`` datapoints (see the module docstring). ``description`` says what the
    alarm detects (the failure of the seeds' detection matrix it stands for)."""

    name: str
    metric: str
    comparison: Comparison
    threshold: float
    evaluation_periods: int = 1
    datapoints_to_alarm: int | None = None
    treat_missing: TreatMissing = "missing"
    description: str = ""

    def __post_init__(self) -> None:
        if self.comparison not in _COMPARE:
            raise ValueError(f"{self.name}: comparison must be one of {sorted(_COMPARE)}")
        if self.evaluation_periods < 1:
            raise ValueError(f"{self.name}: evaluation_periods must be >= 1")
        m = self.m
        if not 1 <= m <= self.evaluation_periods:
            raise ValueError(f"{self.name}: datapoints_to_alarm must be within 1..evaluation_periods")
        if self.treat_missing not in ("missing", "notBreaching", "breaching", "ignore"):
            raise ValueError(f"{self.name}: unknown treat_missing {self.treat_missing!r}")
        if math.isnan(self.threshold):
            raise ValueError(f"{self.name}: threshold must be a number")

    @property
    def m(self) -> int:
        """Datapoints to alarm (default: all ``evaluation_periods``)."""
        return self.datapoints_to_alarm if self.datapoints_to_alarm is not None else self.evaluation_periods

    def breaches(self, value: float) -> bool:
        return _COMPARE[self.comparison](value, self.threshold)

    def describe(self) -> str:
        return (
            f"{self.metric} {self.comparison} {self.threshold:g} for {self.m} of {self.evaluation_periods} "
            f"period(s), missing data: {self.treat_missing}"
        )


@dataclass(frozen=True)
class Transition:
    """``alarm`` went from ``old`` to ``new`` at ``time`` (the datapoint's time)."""

    alarm: str
    time: float
    old: str
    new: str
    reason: str


@dataclass
class AlarmState:
    """The evaluated state of one alarm and its recent datapoints (newest last)."""

    spec: AlarmSpec
    state: str = INSUFFICIENT_DATA
    window: deque[float | None] = field(default_factory=deque)
    transitions: list[Transition] = field(default_factory=list)

    def fired_at(self) -> list[float]:
        """Times the alarm entered ``ALARM``."""
        return [t.time for t in self.transitions if t.new == ALARM]

    def cleared_at(self) -> list[float]:
        """Times the alarm left ``ALARM`` for ``OK``."""
        return [t.time for t in self.transitions if t.old == ALARM and t.new == OK]


class AlarmEvaluator:
    """Evaluates a set of alarms, one datapoint per period (see the module docstring)."""

    def __init__(self, specs: Iterable[AlarmSpec]) -> None:
        self.alarms: dict[str, AlarmState] = {}
        for spec in specs:
            if spec.name in self.alarms:
                raise ValueError(f"alarm {spec.name!r} defined twice")
            self.alarms[spec.name] = AlarmState(spec)

    def observe(self, time: float, metrics: Mapping[str, float | None]) -> list[Transition]:
        """Add one datapoint per alarm (``metrics[spec.metric]``, missing when absent or None) and
        re-evaluate; returns the transitions this datapoint caused."""
        changed = []
        for alarm in self.alarms.values():
            spec = alarm.spec
            value = metrics.get(spec.metric)
            alarm.window.append(value)
            while len(alarm.window) > LOOK_BACK * spec.evaluation_periods:
                alarm.window.popleft()
            new, reason = _evaluate(spec, alarm.state, list(alarm.window), value)
            if new != alarm.state:
                t = Transition(spec.name, time, alarm.state, new, reason)
                alarm.transitions.append(t)
                alarm.state = new
                changed.append(t)
        return changed

    def states(self) -> dict[str, str]:
        return {name: a.state for name, a in self.alarms.items()}

    def firing(self) -> list[str]:
        return [name for name, a in self.alarms.items() if a.state == ALARM]

    def transitions(self) -> list[Transition]:
        return sorted((t for a in self.alarms.values() for t in a.transitions), key=lambda t: t.time)


def _evaluate(
    spec: AlarmSpec, current: str, window: list[float | None], newest: float | None
) -> tuple[str, str]:
    """The next state of one alarm from its history of datapoints (newest last)."""
    if newest is None and spec.treat_missing == "ignore":
        return current, "newest datapoint missing: state kept"
    recent = window[-spec.evaluation_periods :]
    if spec.treat_missing == "missing":
        if all(v is None for v in recent):
            return INSUFFICIENT_DATA, f"no datapoint in the last {len(recent)} period(s)"
        kept: list[float | None] = [v for v in window if v is not None]
        window = kept[-spec.evaluation_periods :]
    else:
        window = recent
    breaching = 0
    present = 0
    for value in window:
        if value is None:
            if spec.treat_missing == "breaching":
                breaching += 1
                present += 1
            elif spec.treat_missing == "notBreaching":
                present += 1
            continue
        present += 1
        if spec.breaches(value):
            breaching += 1
    shown = ", ".join("-" if v is None else f"{v:g}" for v in window)
    if breaching >= spec.m:
        return ALARM, f"{breaching} of the last {len(window)} datapoints [{shown}] breach {spec.describe()}"
    if present == 0:
        return INSUFFICIENT_DATA, f"no datapoint in the last {len(window)} period(s)"
    return OK, f"{breaching} of the last {len(window)} datapoints [{shown}] breach {spec.describe()}"
