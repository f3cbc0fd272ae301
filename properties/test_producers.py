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

import tempfile
import threading
from collections import Counter
from contextlib import suppress

from hypothesis import given, settings
from hypothesis import strategies as st

from flowgate.harness.faults import FaultPlan
from flowgate.harness.simulation import SimConfig
from flowgate.reference.bus import CommandBus, Processor
from flowgate.reference.domain.orders import ConfirmOrder, PlaceOrder, order_registry
from flowgate.reference.errors import DispatchError, InvalidTransition
from flowgate.reference.messages import Command, new_command
from flowgate.reference.sql import SqlStorage
from flowgate.reference.stores import InMemoryStorage, Storage
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


class _Flaky:
    """A dispatcher that refuses ``ConfirmOrder`` (the command's own fault, like a local
    dispatcher's business refusal) and fails to send while ``down`` (a transport failure)."""

    def __init__(self) -> None:
        self.down = False
        self.sent: list[Command] = []

    def dispatch(self, command: Command) -> None:
        if self.down:
            raise DispatchError("SendMessage failed: endpoint unreachable")
        if isinstance(command.payload, ConfirmOrder):
            raise InvalidTransition("refused")
        self.sent.append(command)


STEPS = st.lists(
    st.tuples(st.integers(0, 2), st.sampled_from(["o1", "o2"]), st.sampled_from(["ok", "refused", "down"])),
    min_size=1,
    max_size=25,
)


@given(STEPS)
def test_refusals_and_send_failures_never_block_an_entity(steps: list[tuple[int, str, str]]) -> None:
    """Three buses on one store publish interleaved commands to two entities. A refused command
    is numbered and settled (never sent again, never in the way of its successors); one whose
    send failed stays in the outbox and is sent, with its number, before anything after it. In the
    end every accepted command was sent exactly once, in number order per entity."""
    sim_label("Ordering", "producers", "refusals and send failures in the producer outbox")
    storage = InMemoryStorage(order_registry())
    wire = _Flaky()
    buses = [CommandBus([wire], processor=Processor(storage)) for _ in range(3)]
    accepted: dict[str, list[str]] = {}
    for n, (producer, entity, outcome) in enumerate(steps):
        payload = ConfirmOrder() if outcome == "refused" else PlaceOrder(f"c{n}", "S", 1, 5)
        command = new_command(payload, entity)
        wire.down = outcome == "down"
        with suppress(InvalidTransition, DispatchError):
            buses[producer].publish(command)
        if outcome != "refused":
            accepted.setdefault(entity, []).append(command.event_id)
    wire.down = False
    with suppress(InvalidTransition):
        CommandBus([wire], processor=Processor(storage)).send_unsent()  # a producer starting later
    problems: dict[str, list[str]] = {}
    for entity, ids in accepted.items():
        sent = [c for c in wire.sent if c.entity_id == entity]
        sent_ids = [c.event_id for c in sent]
        seqs = [c.metadata.sequence_no for c in sent]
        if set(ids) - set(sent_ids):
            problems.setdefault("lost", []).append(f"{entity}: {len(set(ids) - set(sent_ids))} never sent")
        if len(sent_ids) != len(set(sent_ids)):
            problems.setdefault("duplicated", []).append(f"{entity}: sent {sent_ids}")
        if seqs != sorted(seqs) or [i for i in sent_ids if i in ids] != [i for i in ids if i in sent_ids]:
            problems.setdefault("nonmonotonic", []).append(f"{entity}: numbers in send order {seqs}")
    assert not problems, f"flowgate-anomalies: {','.join(sorted(problems))}\n{problems}"


def _storage(backend: str, directory: str) -> tuple[Storage, Storage]:
    """Two handles on one store: the same object in memory, two engines on one SQLite file."""
    registry = order_registry()
    if backend == "memory":
        shared = InMemoryStorage(registry)
        return shared, shared
    url = f"sqlite:///{directory}/producers.db"
    return SqlStorage(registry, url), SqlStorage(registry, url)


@settings(max_examples=6, deadline=None)
@given(backend=st.sampled_from(["memory", "sqlite"]), threads=st.integers(2, 4), each=st.integers(4, 12))
def test_concurrent_producers_never_share_a_number(backend: str, threads: int, each: int) -> None:
    """Producer threads on two handles of one store allocate numbers of one entity at once
    (``allocate_sequence`` and ``record_publish``): every number is handed out once, 1..n."""
    sim_label("Ordering", "producers", "concurrent sequence allocation on one store")
    with tempfile.TemporaryDirectory() as directory:
        handles = _storage(backend, directory)
        got: list[int] = []
        lock = threading.Lock()
        barrier = threading.Barrier(threads)

        def produce(n: int) -> None:
            barrier.wait()
            mine = []
            for k in range(each):
                store = handles[(n + k) % 2]
                if k % 2:
                    mine.append(store.allocate_sequence("o1"))
                else:
                    command = store.record_publish(new_command(PlaceOrder("c", "S", 1, 5), "o1"))
                    mine.append(command.metadata.sequence_no)
            with lock:
                got.extend(mine)

        workers = [threading.Thread(target=produce, args=(n,)) for n in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        for h in handles:
            if isinstance(h, SqlStorage):
                h.engine.dispose()
    repeated = sorted(n for n, count in Counter(got).items() if count > 1)
    assert sorted(got) == list(range(1, threads * each + 1)), (
        f"flowgate-anomalies: nonmonotonic\nnumbers handed out twice: {repeated[:10]}; all: {sorted(got)[:40]}"
    )
