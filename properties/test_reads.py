"""Property 13 (contract v1.3): reads see every acknowledged command's effect exactly once, in order.

Orders of the gate's command sequences, with ``GetOrder`` reads at random places and copies of
already-handled commands redelivered at random points (a producer's late resend, an SQS
redelivery), go through the reference's claim -> decide -> fenced commit path in process
(:class:`~flowgate.reference.bus.LocalCommandDispatcher`, the path the SQS listener shares). Every
``OrderState`` answer becomes a ``read`` op and :func:`flowgate.harness.checkers.reads.read_state` -- the
checker the gate runs on the same ops -- judges it against the model of the acknowledged commands.
A redelivery publishes nothing new (same event ids), so only the reads can show a command whose
effect was applied twice (the ``duplicate-reapplies-row`` mutant).
"""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from flowgate.fixtures.allure_support import label
from flowgate.harness.checkers import read_state
from flowgate.harness.checkers.reads import read_op_value
from flowgate.harness.gate.workload import READ, SEQUENCES, payload_for
from flowgate.harness.history import History
from flowgate.reference.bus import EventQueue, LocalCommandDispatcher, Processor
from flowgate.reference.domain.orders import OrderSaga, order_registry
from flowgate.reference.messages import Command, Event, TypeRegistry, new_command, payload_to_dict
from flowgate.reference.stores import InMemoryStorage


class _Reads:
    """An event dispatcher that records every read's answer as a ``read`` op."""

    def __init__(self, history: History) -> None:
        self.history = history

    def dispatch(self, event: Event) -> None:
        value = read_op_value(
            event.name,
            event.entity_id,
            event.metadata.sequence_no,
            str(event.metadata.causation_id),
            payload_to_dict(event.payload),
        )
        if value is not None:
            self.history.append("impl", "ok", "read", value)


def _orders(registry: TypeRegistry, data: st.DataObject) -> list[list[Command]]:
    orders = []
    for n in range(data.draw(st.integers(1, 4), label="orders")):
        order = {"customer_id": f"c-{n}", "sku": "sku-1", "quantity": 2, "amount_cents": 1250}
        kinds: list[str] = []
        for kind in data.draw(st.sampled_from(SEQUENCES), label="sequence"):
            kinds.append(kind)
            kinds += [READ] * data.draw(st.integers(0, 1), label="reads")
        kinds.append(READ)
        commands = []
        for seq, kind in enumerate(kinds, start=1):
            payload = registry.payload_from_dict(kind, payload_for(kind, random.Random(seq), order))
            commands.append(
                new_command(payload, f"order-{n}", is_new=seq == 1, sequence_no=seq, correlation_id=f"c-{n}")
            )
        orders.append(commands)
    return orders


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_reads_see_each_acknowledged_command_once(data: st.DataObject) -> None:
    """Every read's ``applied`` log is the acknowledged commands below it, each once, in order."""
    label(epic="Deduplication", feature="reads", story="reads between redelivered commands")
    registry = order_registry()
    history = History()
    storage = InMemoryStorage(registry)
    processor = Processor(storage, sagas=[OrderSaga()])
    dispatcher = LocalCommandDispatcher(
        processor, EventQueue([_Reads(history)]), observer=history.observer("worker")
    )
    pending = _orders(registry, data)
    handled: list[Command] = []
    while any(pending):
        queue = data.draw(st.sampled_from([q for q in pending if q]), label="next order")
        command = queue.pop(0)
        value = {
            "command_id": command.event_id,
            "entity_id": command.entity_id,
            "seq": command.metadata.sequence_no,
            "command_type": command.name,
        }
        history.append("client", "invoke", "send", value)
        history.append("client", "ok", "send", value)
        dispatcher.dispatch(command)
        handled.append(command)
        if data.draw(st.booleans(), label="redeliver?"):
            dispatcher.dispatch(data.draw(st.sampled_from(handled), label="redelivered"))
    found = read_state(history)
    assert found.stats["reads"] >= 1
    assert found.valid, "\n".join(str(a) for a in found.anomalies[:5])
