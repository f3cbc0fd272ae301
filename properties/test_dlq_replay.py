"""Property 9: replaying several dead letters of one entity, once their cause is fixed, takes
effect exactly once and in sequence order; poison that is replayed goes back to the DLQ with its
reason (contract v1.3 section 7, docs/decisions.md D24).

One FIFO group (one order) on the simulator, business failures forwarded to the SQS DLQ as the
gate's reference adapter does:

1. the order's later commands (AuthorizePayment, ReserveInventory, ConfirmOrder: ``refused`` of
   them) arrive before its PlaceOrder, which is held back -- the cause; the domain refuses each
   (``InvalidTransition``: unknown order) and, after the retries, they are dead-lettered with
   ``BusinessError``; poison (a body that is not JSON) in the same group, at seeded places
   between them, is dead-lettered with ``DecodeError``;
2. the fix: the PlaceOrder is sent and takes effect;
3. after SQS's 5-minute FIFO deduplication window (or at once with a dedup suffix), every dead
   letter is replayed (``flowgate.reference.dlq.replay_dead_letters``; ``dlq_replay`` ops in the history);
4. the drain; then ``total_queue`` (every replayed command takes effect after its replay),
   ``per_entity_order`` (in seq order), ``exactly_once_effect`` (once), ``dead_letter`` (no
   business dead letter after the replay; each replayed poison dead-lettered again with
   ``DecodeError``) and ``resolution`` judge the run.

The ``dead-letter-completes-key`` mutant (a dead-letter commit completes the idempotency key: the
replay is acknowledged as a duplicate with no effect) and ``replay-reversed`` (each batch the DLQ
returns is sent back in reverse) are killed here.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st

from flowgate.harness.history import HARNESS, HistoryObserver
from flowgate.harness.sim.sqs import DEDUP_WINDOW
from flowgate.harness.simulation import SimConfig, SimResult, Simulation, _quiet_reference
from flowgate.reference import dlq
from flowgate.reference.dispatchers import message_attributes
from flowgate.reference.domain.orders import AuthorizePayment, ConfirmOrder, PlaceOrder, ReserveInventory
from flowgate.reference.messages import Command, Payload, new_command
from properties.support import assert_valid, sim_label

CHECKERS = ("total_queue", "per_entity_order", "exactly_once_effect", "dead_letter", "resolution")
ENTITY = "ord-replay-1"
LATER: tuple[Payload, ...] = (
    AuthorizePayment("pay-1", 700),
    ReserveInventory("SKU-7", 2),
    ConfirmOrder(),
)


@dataclass(frozen=True)
class ReplayCase:
    seed: int
    workers: int
    visibility_timeout: int
    max_receive_count: int
    refused: int  # how many of LATER are sent (and refused) before the PlaceOrder
    poison_at: tuple[int, ...]  # poison is sent before the refused command at each index (or last)
    dedup_suffix: bool  # replay at once with a suffix, or after SQS's 5-minute window


cases = st.builds(
    ReplayCase,
    seed=st.integers(0, 2**32 - 1),
    workers=st.integers(1, 3),
    visibility_timeout=st.sampled_from([5, 30]),
    max_receive_count=st.sampled_from([3, 4, 5]),
    refused=st.integers(1, len(LATER)),
    poison_at=st.lists(st.integers(0, len(LATER)), max_size=2).map(lambda xs: tuple(sorted(xs))),
    dedup_suffix=st.booleans(),
)


def _settle(sim: Simulation, rounds: int = 200) -> None:
    """Poll every worker on both queues until they are empty (time advances past VT when idle)."""
    queues = (sim.config.command_queue, sim.views_queue)
    for _ in range(rounds):
        got = sum(sim.poll(w, q) for w in range(sim.config.workers) for q in queues)
        if not any(sim.queue_depth().values()):
            return
        if not got:
            sim.advance(sim.config.visibility_timeout + 1)


def _command(sim: Simulation, payload: Payload, seq: int) -> Command:
    return new_command(
        payload,
        ENTITY,
        is_new=isinstance(payload, PlaceOrder),
        sequence_no=seq,
        event_id=f"cmd-{sim.config.seed}-{seq}",
        clock=sim.clock,
    )


def _poison(sim: Simulation, number: int) -> None:
    """A body that is not JSON, in the order's own group, with valid-looking attributes."""
    fake = _command(sim, ConfirmOrder(), 90 + number)
    attrs = message_attributes(fake, encrypted=False, traceparent=None)
    url = sim.resources.queue_urls[sim.config.command_queue]
    sent = sim.sqs.send_message(
        QueueUrl=url,
        MessageBody="{not json",
        MessageAttributes=attrs,
        MessageGroupId=ENTITY,
        MessageDeduplicationId=f"poison-{number}",
    )
    sim.history.append(
        HARNESS,
        "info",
        "poison",
        {"message_id": sent["MessageId"], "kind": "bad_json", "expected_reason": "DecodeError"},
    )


def run_case(case: ReplayCase) -> tuple[SimResult, int]:
    """The four steps of the module docstring; returns the result and how many were replayed."""
    config = SimConfig(
        seed=case.seed,
        orders=0,
        workers=case.workers,
        fifo=True,
        visibility_timeout=case.visibility_timeout,
        max_receive_count=case.max_receive_count,
        business_failures_to_dlq=True,
        snapshots=False,
        wire_samples=0,
    )
    with _quiet_reference():
        sim = Simulation(config)
        try:
            sim.nemesis.stop()
            bus = sim.producers.runtimes[0].command_bus
            place = _command(sim, PlaceOrder("c-1", "SKU-7", 2, 700), 1)
            poison = 0
            places = [min(at, case.refused) for at in case.poison_at]
            for index in range(case.refused + 1):
                for _ in range(places.count(index)):
                    poison += 1
                    _poison(sim, poison)
                if index < case.refused:
                    refused = _command(sim, LATER[index], index + 2)
                    sim.producers.expected_failures.add(refused.event_id)
                    bus.publish(refused)
            _settle(sim)
            bus.publish(place)  # the fix: the order now exists
            _settle(sim)
            if not case.dedup_suffix:
                sim.advance(DEDUP_WINDOW + 1)
            urls = sim.resources
            queue = sim.config.command_queue
            dlq_depth = int(
                sim.sqs.get_queue_attributes(QueueUrl=urls.dlq_urls[queue], AttributeNames=["All"])[
                    "Attributes"
                ]["ApproximateNumberOfMessages"]
            )
            moved = dlq.replay_dead_letters(  # through the module: a mutant may patch it
                sim.sqs,
                dlq_url=urls.dlq_urls[queue],
                source_url=urls.queue_urls[queue],
                fifo=True,
                limit=dlq_depth,
                wait_time_seconds=0,
                dedup_suffix="-replay" if case.dedup_suffix else "",
                observer=HistoryObserver(sim.history, "dlq-replay"),
            )
            _settle(sim)
            sim.drain()
            return sim.finish(), moved
        finally:
            sim.close()


@given(cases)
def test_replayed_dead_letters_of_one_entity_apply_once_in_order(case: ReplayCase) -> None:
    sim_label("Dead letters", "DLQ replay", "several dead letters of one FIFO group, fixed and replayed")
    result, moved = run_case(case)
    assert_valid(result, CHECKERS)
    # not vacuous: every refused command and every poison message was dead-lettered and replayed,
    # and every replayed command took effect after its replay
    assert moved == case.refused + len(case.poison_at), f"replayed {moved}: {result.summary()}"
    replays = [op for op in result.history.ops if op.f == "dlq_replay"]
    effects = {
        str(op.value["command_id"]): op.index
        for op in result.history.ops
        if op.f == "effect" and op.type == "ok"
    }
    revived = [op for op in replays if str(op.value.get("reason", "")).startswith("BusinessError")]
    assert len(revived) == case.refused
    assert all(effects.get(str(op.value["command_id"]), -1) > op.index for op in revived)


def test_business_dead_letters_replayed_after_the_fifo_window_take_effect() -> None:
    """The case of issue 19: three refused commands and a poison message of one order, fixed,
    replayed after the 5-minute window with their original dedup ids."""
    result, moved = run_case(
        ReplayCase(
            seed=19,
            workers=2,
            visibility_timeout=5,
            max_receive_count=3,
            refused=3,
            poison_at=(1,),
            dedup_suffix=False,
        )
    )
    assert_valid(result, CHECKERS)
    assert moved == 4
