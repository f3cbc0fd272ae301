"""Strategies and the verdict assertion shared by the property suites."""

from __future__ import annotations

import os
from collections.abc import Iterable

from hypothesis import note
from hypothesis import strategies as st

from flowgate.fixtures.allure_support import (
    attach_anomalies,
    attach_history,
    attach_seed,
    attach_timeline,
    label,
)
from flowgate.harness.faults import FaultPlan
from flowgate.harness.simulation import SimConfig, SimResult, run_simulation

PROBS = st.sampled_from([0.0, 0.02, 0.05, 0.1, 0.2])


def active_mutant() -> str | None:
    return os.environ.get("FLOWGATE_ACTIVE_MUTANT") or None


def fault_plans(*, crash: bool = True, stall: bool = True, duplicate: bool = True, resend: bool = True,
                restart: bool = True, poison: tuple[str, ...] = ()) -> st.SearchStrategy[FaultPlan]:
    off = st.just(0.0)
    return st.builds(
        FaultPlan,
        crash=PROBS if crash else off,
        stall=PROBS if stall else off,
        expire_lease=PROBS if stall else off,
        redeliver=PROBS if stall else off,
        duplicate=PROBS if duplicate else off,
        delay_delete=PROBS if duplicate else off,
        resend=PROBS if resend else off,
        restart=st.sampled_from([0.0, 0.01]) if restart else off,
        poison=st.just(poison),
    )


def sim_configs(*, fifo: bool | None = None, encryption: bool | None = None,
                faults: st.SearchStrategy[FaultPlan] | None = None, orders: tuple[int, int] = (2, 12),
                invalid_ratio: float = 0.0, reads: bool = False) -> st.SearchStrategy[SimConfig]:
    """Simulator configs; ``reads`` mixes ``GetOrder`` reads into every order (``SimConfig.reads``:
    the ``read_state`` checker then judges each answer)."""
    return st.builds(
        SimConfig,
        seed=st.integers(0, 2**32 - 1),
        orders=st.integers(*orders),
        workers=st.integers(2, 3),
        fifo=st.booleans() if fifo is None else st.just(fifo),
        encryption=st.booleans() if encryption is None else st.just(encryption),
        visibility_timeout=st.sampled_from([5, 30]),
        max_receive_count=st.sampled_from([3, 4, 5]),
        faults=faults if faults is not None else fault_plans(),
        invalid_ratio=st.just(invalid_ratio),
        reads=st.just(reads),
    )


def simulate(config: SimConfig) -> SimResult:
    note(f"config: {config}")
    note(f"replay: {config.replay_command(active_mutant())}")
    return run_simulation(config)


def assert_valid(result: SimResult, checkers: Iterable[str]) -> None:
    """Fail with the seed, the replay command and the anomalies when a named checker objects."""
    wanted = set(checkers)
    bad = [v for v in result.verdicts if v.checker in wanted and not v.valid]
    if not bad:
        return
    kinds = sorted({a.kind for v in bad for a in v.anomalies})
    attach_seed(result.seed, result.replay_command())
    attach_history(result.history)
    attach_timeline(result.history)
    attach_anomalies([{"checker": v.checker, "anomalies": [str(a) for a in v.anomalies[:20]]} for v in bad])
    lines = [f"flowgate-anomalies: {','.join(kinds)}", f"seed {result.seed}; replay: {result.replay_command()}"]
    for v in bad:
        lines += [f"  {v.checker}: {str(a)[:400]}" for a in v.anomalies[:3]]
    raise AssertionError("\n".join(lines))


def sim_label(epic: str, feature: str, story: str) -> None:
    mutant = active_mutant()
    label(epic=epic, feature=feature, story=story, backend="sim",
          implementation=f"mutant:{mutant}" if mutant else "reference")
