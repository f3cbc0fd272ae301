"""Property 9: a long dependency outage never dead-letters valid work.

The outage nemesis (``flowgate.harness.outages``) takes the idempotency store, the KMS key (disabled, or
KMS unreachable), the SQS endpoint or the SNS endpoint away for >= 10 visibility timeouts, with
other faults going on. Afterwards: nothing valid dead-lettered (by a listener or by SQS's own
redrive: those carry no reason), nothing lost, every effect exactly once, per-entity order kept;
and during the outage each worker received each message at most ``STORM_RECEIVES`` times (its
circuit breaker stopped it receiving), its health said ``degraded`` naming the dependency, and
``ok`` again after the drain (the ``outage`` checker).
"""

from __future__ import annotations

import threading
import time
from typing import Any
from unittest import mock

import pytest
from hypothesis import given, note
from hypothesis import strategies as st

from flowgate.harness.faults import OUTAGE_KINDS, FaultPlan
from flowgate.harness.simulation import SimConfig, run_simulation
from flowgate.reference.bus import Processor
from flowgate.reference.config import BusOptions
from flowgate.reference.domain.orders import order_registry
from flowgate.reference.listener import SqsListener, _Flight
from flowgate.reference.stores import InMemoryStorage
from properties.support import assert_valid, sim_label, simulate

ALL = [
    "total_queue",
    "per_entity_order",
    "exactly_once_effect",
    "replay_equivalence",
    "dead_letter",
    "outage",
]


@st.composite
def outage_configs(draw: st.DrawFn) -> SimConfig:
    outages = tuple(draw(st.lists(st.sampled_from(OUTAGE_KINDS), min_size=1, max_size=2)))
    fifo = draw(st.booleans())
    plan = FaultPlan(
        crash=draw(st.sampled_from([0.0, 0.02, 0.05])),
        stall=draw(st.sampled_from([0.0, 0.02, 0.05])),
        redeliver=draw(st.sampled_from([0.0, 0.02])),
        # standard-queue duplicates are a second copy of the same message: its receives are not
        # the worker's doing, so they stay out of the receive bound
        delay_delete=draw(st.sampled_from([0.0, 0.02])) if fifo else 0.0,
        resend=draw(st.sampled_from([0.0, 0.05])),
        restart=draw(st.sampled_from([0.0, 0.01])),
        poison=draw(st.sampled_from([(), ("bad_json",), ("bad_json", "missing_attribute")])),
        outages=outages,
        outage_length=draw(st.integers(10, 14)),
        outage_after=draw(st.integers(0, 25)),
    )
    return SimConfig(
        seed=draw(st.integers(0, 2**32 - 1)),
        orders=draw(st.integers(2, 10)),
        workers=draw(st.integers(2, 3)),
        fifo=fifo,
        # the KMS kinds only act on an encrypted bus
        encryption=any(k.startswith("kms") for k in outages) or draw(st.booleans()),
        visibility_timeout=draw(st.sampled_from([5, 30])),
        max_receive_count=draw(st.sampled_from([3, 4, 5])),
        faults=plan,
    )


@given(outage_configs())
def test_outages_never_dead_letter_valid_work(config: SimConfig) -> None:
    sim_label("Chaos", "outages: " + "circuit breaker", "store/KMS/SQS/SNS down for >= 10 VT, with other faults")
    result = simulate(config)
    outage_stats = next(v.stats for v in result.verdicts if v.checker == "outage")
    note(f"outage checker: {outage_stats}; faults: {result.stats['faults']}")
    assert_valid(result, ALL)


@pytest.mark.parametrize("kind", OUTAGE_KINDS)
@pytest.mark.parametrize("seed", [1, 7])
def test_each_outage_costs_each_message_one_receive_per_worker(kind: str, seed: int) -> None:
    """No other fault: each worker receives a message at most once during a 10 x VT outage, the
    workers report the dependency degraded, then ok; the backlog is processed after it."""
    sim_label("Chaos", "outages: " + "circuit breaker", f"{kind} for 10 VT, no other fault")
    config = SimConfig(
        seed=seed, orders=8, workers=3, encryption=True, faults=FaultPlan(outages=(kind,), outage_after=6)
    )
    result = run_simulation(config)
    assert_valid(result, ALL)
    ops = result.history.ops
    start, end = (op for op in ops if op.f == "outage")
    assert end.time - start.time >= 10 * config.visibility_timeout
    stats = next(v.stats for v in result.verdicts if v.checker == "outage")
    assert stats["max_receives_per_worker"] <= 1, stats
    during = [op for op in ops if op.f == "health" and op.value["phase"] == "during"]
    after = [op for op in ops if op.f == "health" and op.value["phase"] == "after"]
    dependency = start.value["dependency"]
    assert any(dependency in op.value["degraded"] for op in during), [op.value for op in during]
    assert after
    assert all(op.value["status"] == "ok" for op in after)
    assert result.stats["effects"] + result.stats["business_dead_letters"] == result.stats["commands_sent"]


class _FlakySqs:
    """ChangeMessageVisibility that raises a non-AWS error for one receipt (a bug, a closed pool)."""

    def __init__(self, bad_receipt: str) -> None:
        self.bad = bad_receipt
        self.calls: list[str] = []
        self.lock = threading.Lock()

    def change_message_visibility(self, *, QueueUrl: str, ReceiptHandle: str, VisibilityTimeout: int) -> Any:
        with self.lock:
            self.calls.append(ReceiptHandle)
        if ReceiptHandle == self.bad:
            raise RuntimeError("connection pool is closed")
        return {}


def test_heartbeat_survives_a_failing_beat() -> None:
    """A beat that raises is that flight's failure only: logged, no longer extended; the heartbeat
    thread lives on and keeps extending the other flights."""
    sim_label("Chaos", "outages: " + "heartbeat", "one failing beat does not stop the others")
    sqs = _FlakySqs("bad")
    registry = order_registry()
    listener = SqsListener(
        sqs,
        queue="q.fifo",
        queue_url="url",
        dlq_url="dlq",
        registry=registry,
        processor=Processor(InMemoryStorage(registry)),
        options=BusOptions(visibility_timeout=1),
        executor=mock.Mock(),  # production mode: the heartbeat thread exists
    )
    assert listener._heartbeat is not None
    now = time.time()
    bad = _Flight({"MessageId": "m-bad", "ReceiptHandle": "bad"}, 1, now + 1, now - 10)
    good = _Flight({"MessageId": "m-good", "ReceiptHandle": "good"}, 1, now + 1, now - 10)
    listener._heartbeat.track([bad, good])
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and sqs.calls.count("good") < 3:
            time.sleep(0.05)
    finally:
        listener._heartbeat.untrack([bad, good])
    assert sqs.calls.count("bad") == 1, "a failed flight is not beaten again"
    assert sqs.calls.count("good") >= 3, f"heartbeat-dead: the other flight was extended {sqs.calls.count('good')}x"


def test_a_finished_command_stays_under_the_heartbeat_until_its_poll_deletes_it() -> None:
    """A command's idempotency claim ends with its commit; the message then waits for its poll's
    publish and delete (behind a slower group of the same poll) and must stay invisible. Its beats
    used to keep the committed claim's token: the lease ``extend`` of a COMPLETED record is False,
    the heartbeat dropped the message, its visibility lapsed and another worker received it while it
    was still in hand (LocalStack: slow messages taken over despite the heartbeat)."""
    from flowgate.harness.sim import SimAws
    from flowgate.reference.config import BusConfiguration
    from flowgate.reference.domain.orders import ORDER_COMMANDS, ORDER_EVENTS, OrderSaga, PlaceOrder
    from flowgate.reference.messages import new_command
    from flowgate.reference.worker import build_runtime

    sim_label("Chaos", "outages: " + "heartbeat", "a finished message is extended until its delete")
    aws = SimAws(seed=3)
    registry = order_registry()
    cfg = (
        BusConfiguration(registry)
        .send(*ORDER_COMMANDS)
        .to_queue("orders.fifo")
        .raise_events(*ORDER_EVENTS)
        .to_topic("order-events.fifo")
        .listen_to("orders.fifo")
        .with_options(visibility_timeout=10, wait_time_seconds=0)
    )
    storage = InMemoryStorage(registry)
    runtime = build_runtime(
        cfg,
        sqs=aws.client("sqs"),
        sns=aws.client("sns"),
        sts=aws.client("sts"),
        storage=storage,
        sagas=[OrderSaga()],
        views=[],
        clock=aws.clock,
    )
    listener = runtime.listeners[0]
    runtime.commands.dispatch_many(
        [new_command(PlaceOrder("C1", "SKU-1", 1, 100), "o-1", is_new=True, sequence_no=1)]
    )
    listener._probed = True
    [[flight]] = listener._receive()
    assert listener._process(flight)
    assert flight.ready
    vt = listener.options.visibility_timeout
    for beat in range(3):  # three more visibility timeouts in hand, waiting for the poll
        aws.clock.advance(vt * 0.6)
        assert listener._beat(flight), f"beat {beat + 1}: the finished message left the heartbeat"
    listener._finish([[flight]])
    assert flight.deleted
    left = aws.client("sqs").receive_message(QueueUrl=listener.queue_url, WaitTimeSeconds=0).get("Messages")
    assert not left, "deleted with its receipt handle after 1.8 visibility timeouts in hand"
