"""The end-of-run verdict and the process exit code (pure; unit-tested without LocalStack)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

#: Anomaly kinds that mean a lost or duplicated effect (always fail the run).
LOSS_OR_DUPLICATE = frozenset(
    {"lost", "duplicated", "duplicate-effect", "duplicate-projection", "unexpected", "no-drain"}
)


@dataclass
class RunFigures:
    target_orders: float  # integral of the profile's rate over the run
    due_orders: int  # orders the pacers released
    acked_orders: int  # orders whose send was acknowledged
    failed_orders: int
    elapsed_s: float
    effected_orders: int  # orders whose final event the probe saw
    p50_ms: float = math.nan
    p95_ms: float = math.nan
    p99_ms: float = math.nan
    effected_in_window: int = -1  # orders effected while the load ran (-1: not measured)

    @property
    def target_per_min(self) -> float:
        return self.target_orders * 60.0 / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def achieved_per_min(self) -> float:
        return self.acked_orders * 60.0 / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def ratio(self) -> float:
        return self.acked_orders / self.target_orders if self.target_orders > 0 else 0.0


@dataclass
class RunVerdict:
    exit_code: int
    reasons: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


def _anomaly_kind(anomaly: Any) -> str:
    return str(getattr(anomaly, "kind", None) or getattr(anomaly, "name", None) or anomaly)


def judge(
    figures: RunFigures,
    checker_verdicts: Iterable[Any],
    *,
    min_ratio: float = 0.98,
    p99_ms: float | None = None,
    p95_ms: float | None = None,
    missing_effects: int = 0,
    extra_reasons: Sequence[str] = (),
    allowance_orders: float = 0.0,
    min_effect_ratio: float | None = None,
) -> RunVerdict:
    """Exit 0 only when every checker is valid, the achieved rate is at least ``min_ratio`` of
    the target, and the latency thresholds given hold. ``missing_effects`` are orders the
    probe never saw finish after the drain (lost end-to-end even if no checker can tell).
    ``allowance_orders`` forgives the pacing quantum: each pacer user releases whole orders, so
    at any instant it may be up to one order short of its schedule (pass the peak user count);
    it matters only for short, low-rate runs. ``min_effect_ratio``: the orders effected while the
    load ran must be at least this share of those acknowledged in that window -- a system that
    falls behind (a backlog growing for the whole run) fails even if the drain catches up."""
    reasons = list(extra_reasons)
    for found in checker_verdicts:
        if not getattr(found, "valid", True):
            kinds = sorted({_anomaly_kind(a) for a in getattr(found, "anomalies", ())})
            reasons.append(f"checker {getattr(found, 'checker', '?')} invalid: {', '.join(kinds) or '?'}")
    if missing_effects:
        reasons.append(f"{missing_effects} acknowledged orders never reached their final event")
    if figures.acked_orders + allowance_orders < min_ratio * figures.target_orders:
        reasons.append(
            f"achieved {figures.achieved_per_min:,.0f}/min = {figures.ratio:.1%} of target "
            f"{figures.target_per_min:,.0f}/min (< {min_ratio:.0%})"
        )
    if (
        min_effect_ratio is not None
        and figures.effected_in_window >= 0
        and figures.effected_in_window < min_effect_ratio * figures.acked_orders
    ):
        per_min = figures.effected_in_window * 60.0 / figures.elapsed_s if figures.elapsed_s > 0 else 0.0
        reasons.append(
            f"effects fell behind: {per_min:,.0f}/min effected during the load vs "
            f"{figures.achieved_per_min:,.0f}/min acknowledged (< {min_effect_ratio:.0%})"
        )
    for label, limit, value in (("p99", p99_ms, figures.p99_ms), ("p95", p95_ms, figures.p95_ms)):
        if limit is None:
            continue
        if math.isnan(value):
            reasons.append(f"no send-to-effect latency measured ({label} limit {limit:.0f} ms)")
        elif value > limit:
            reasons.append(f"{label} send-to-effect {value:.0f} ms > {limit:.0f} ms")
    return RunVerdict(1 if reasons else 0, reasons)
