"""Property 4: nothing acknowledged is lost after the drain; poison ends in the DLQ with a
reason, valid commands never do."""

from __future__ import annotations

from hypothesis import given

from flowgate.harness.faults import POISON_KINDS
from flowgate.harness.simulation import SimConfig
from properties.support import assert_valid, fault_plans, sim_configs, sim_label, simulate


@given(sim_configs(faults=fault_plans(poison=POISON_KINDS), invalid_ratio=0.2))
def test_nothing_lost_and_poison_dead_lettered(config: SimConfig) -> None:
    sim_label("Dead letters", "drain + DLQ", "crashes, poison of every kind, business failures")
    result = simulate(config)
    assert_valid(result, ["total_queue", "dead_letter", "resolution"])
