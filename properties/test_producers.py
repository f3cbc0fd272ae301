"""Property: several producers per entity, restarted mid-publish, share the store's sequence
numbers (docs/decisions.md D25).

Each send goes to a random one of 2-3 producers (``SimConfig.bus_numbers``: the producers' bus
numbers the commands); the ``producer_restart`` fault kills a producer before a publish, after
its number was allocated and the command recorded (nothing sent), or after the send (not yet
marked sent), and starts it again with nothing in memory, while workers crash, stall and lose
visibility. Every order's commands must take effect once each, in sequence order, none lost
and none business-dead-lettered for a taken number (``SequenceConflict``).
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from harness.faults import FaultPlan
from harness.simulation import SimConfig
from properties.support import PROBS, assert_valid, sim_label, simulate


def producer_configs() -> st.SearchStrategy[SimConfig]:
    faults = st.builds(
        FaultPlan,
        producer_restart=st.sampled_from([0.05, 0.1, 0.3]),
        crash=PROBS,
        stall=PROBS,
        redeliver=PROBS,
    )
    return st.builds(
        SimConfig,
        seed=st.integers(0, 2**32 - 1),
        orders=st.integers(2, 10),
        workers=st.integers(2, 3),
        producers=st.integers(2, 3),
        bus_numbers=st.just(True),
        fifo=st.just(True),
        encryption=st.booleans(),
        visibility_timeout=st.sampled_from([5, 30]),
        max_receive_count=st.sampled_from([3, 4, 5]),
        faults=faults,
    )


@given(producer_configs())
def test_producers_share_the_sequence(config: SimConfig) -> None:
    """Commands of several producers, restarted at any point of a publish, take effect exactly
    once each, in sequence order, and nothing acknowledged (or recorded by the outbox) is lost."""
    sim_label("Ordering", "producers", "several producers per entity + producer restarts")
    result = simulate(config)
    assert_valid(result, ["per_entity_order", "total_queue", "exactly_once_effect", "dead_letter"])
