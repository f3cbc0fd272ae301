"""Property 2: exactly-once effect under duplicates, redeliveries, crashes between effect and
delete, and producer resends. Every order's script carries ``GetOrder`` reads (contract v1.3,
``SimConfig.reads``): a redelivered or resent command re-published with the same event ids shows
nothing new in the events, only a read's ``applied`` log shows it applied twice (``read_state``)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from flowgate.harness.faults import FaultPlan
from flowgate.harness.simulation import SimConfig
from properties.support import PROBS, assert_valid, sim_configs, sim_label, simulate

PLANS = st.builds(
    FaultPlan,
    crash=PROBS, stall=PROBS, expire_lease=st.sampled_from([0.05, 0.1, 0.2]), redeliver=PROBS,
    duplicate=PROBS, delay_delete=PROBS, resend=st.sampled_from([0.05, 0.1, 0.3]),
    crash_points=st.just(("after_effect_before_delete", "after_publish", "before_delete", "mid_handler")),
    scripted=st.just(("crash@after_effect_before_delete",)),
)


@given(sim_configs(faults=PLANS, reads=True))
def test_exactly_once_effect(config: SimConfig) -> None:
    """Each command's effect is committed once and each event projected once per view; every read
    sees each acknowledged command below it applied exactly once, in sequence order."""
    sim_label("Deduplication", "idempotency", "duplicates, redeliveries, crashes, resends")
    result = simulate(config)
    assert_valid(result, ["exactly_once_effect", "total_queue", "dead_letter", "read_state"])


#: faults that make the reference re-publish within the FIFO window: a crash right after the
#: publish (scripted once, then at random), lost leases and redeliveries, producer resends
DEDUP_PLANS = st.builds(
    FaultPlan,
    crash=PROBS, expire_lease=PROBS, redeliver=PROBS, resend=st.sampled_from([0.05, 0.1, 0.3]),
    crash_points=st.just(("after_publish", "before_delete")),
    scripted=st.just(("crash@after_publish",)),
)


@given(sim_configs(fifo=True, faults=DEDUP_PLANS))
def test_fifo_deduplication_is_effective(config: SimConfig) -> None:
    """A re-published event carries the deduplication id of its first publish (its event id), so
    no FIFO queue delivers one deduplication key twice within SQS/SNS's 300 s window; also checks
    the simulator's own SQS/SNS deduplication (``fifo_dedup``)."""
    sim_label("Deduplication", "FIFO deduplication", "re-publishes after crashes and redeliveries")
    result = simulate(config)
    assert_valid(result, ["fifo_dedup"])
