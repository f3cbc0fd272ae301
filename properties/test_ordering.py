"""Property 1: per-entity order on FIFO under crashes, stalls and visibility expiry."""

from __future__ import annotations

from hypothesis import given

from flowgate.harness.simulation import SimConfig
from properties.support import assert_valid, fault_plans, sim_configs, sim_label, simulate


@given(sim_configs(fifo=True, faults=fault_plans(duplicate=False, resend=False)))
def test_fifo_per_entity_order(config: SimConfig) -> None:
    """Every order's commands take effect in sequence-number order, without gaps, and none is lost."""
    sim_label("Ordering", "FIFO groups", "crashes + visibility expiry")
    result = simulate(config)
    assert_valid(result, ["per_entity_order", "total_queue", "dead_letter"])
