"""CommandBus, EventQueue, local dispatch and replay (in-memory)."""

from __future__ import annotations

import pytest

from flowgate.reference.bus import (
    CommandBus,
    EventQueue,
    LocalCommandDispatcher,
    LocalEventDispatcher,
    Processor,
    rebuild_views,
)
from flowgate.reference.domain import (
    AuthorizePayment,
    CancelOrder,
    ConfirmOrder,
    InventoryView,
    OrderSaga,
    OrderView,
    PaymentsView,
    PlaceOrder,
    ReserveInventory,
)
from flowgate.reference.errors import InvalidTransition
from flowgate.reference.messages import Command, Event, TypeRegistry, new_command
from flowgate.reference.stores import InMemoryStorage


class Recorder:
    def __init__(self) -> None:
        self.seen: list[Command | Event] = []

    def dispatch(self, message: Command | Event) -> None:
        self.seen.append(message)


def make(registry: TypeRegistry) -> tuple[CommandBus, Processor, Recorder, Recorder]:
    storage = InMemoryStorage(registry)
    processor = Processor(storage, sagas=[OrderSaga()], views=[OrderView(), InventoryView(), PaymentsView()])
    remote_events = Recorder()
    events = EventQueue([LocalEventDispatcher(processor), remote_events])
    remote_cmds = Recorder()
    bus = CommandBus([LocalCommandDispatcher(processor, events), remote_cmds], processor=processor)
    return bus, processor, remote_cmds, remote_events


def test_sequence_numbers_per_entity_and_all_dispatchers(registry: TypeRegistry) -> None:
    bus, processor, remote, _ = make(registry)
    a1 = bus.publish(new_command(PlaceOrder("c", "S", 1, 5), "a"))
    b1 = bus.publish(new_command(PlaceOrder("c", "S", 1, 5), "b"))
    a2 = bus.publish(new_command(AuthorizePayment("p", 5), "a"))
    assert (a1.metadata.sequence_no, b1.metadata.sequence_no, a2.metadata.sequence_no) == (1, 1, 2)
    assert [m.event_id for m in remote.seen] == [a1.event_id, b1.event_id, a2.event_id]
    assert [c.metadata.sequence_no for c in processor.storage.load_commands("a")] == [1, 2]
    explicit = bus.publish(new_command(ReserveInventory("S", 1), "a", sequence_no=3))
    assert explicit.metadata.sequence_no == 3


def test_events_reach_views_and_remote_dispatchers(registry: TypeRegistry) -> None:
    bus, processor, _, remote_events = make(registry)
    for p in (PlaceOrder("c", "S", 2, 5), AuthorizePayment("p", 5), ReserveInventory("S", 2), CancelOrder("x")):
        bus.publish(new_command(p, "o"))
    storage = processor.storage
    assert storage.get_view("orders", "o") == {"status": "CANCELLED", "amountCents": 5, "lastSeq": 4, "applied": 4}
    assert storage.get_view("inventory", "S") == {"reserved": 0}
    assert storage.get_view("payments", "o") == {"authorizedCents": 5, "refundedCents": 5}
    assert [e.name for e in remote_events.seen] == ["OrderPlaced", "PaymentAuthorized", "InventoryReserved",
                                                    "OrderCancelled"]
    assert all(isinstance(e, Event) and e.metadata.correlation_id for e in remote_events.seen)


def test_republished_command_and_events_have_one_effect(registry: TypeRegistry) -> None:
    bus, processor, _, _ = make(registry)
    cmd = bus.publish(new_command(PlaceOrder("c", "S", 2, 5), "o"))
    bus.publish(cmd)  # resend: same identity
    assert len(processor.storage.load_commands("o")) == 1
    assert processor.storage.get_view("orders", "o")["applied"] == 1  # type: ignore[index]


def test_business_failure_writes_nothing(registry: TypeRegistry) -> None:
    bus, processor, _, _ = make(registry)
    with pytest.raises(InvalidTransition):
        bus.publish(new_command(ConfirmOrder(), "o"))
    assert processor.storage.load_commands("o") == []
    assert processor.storage.get_entity("order", "o") is None


def test_replay_rebuilds_state_and_views_without_side_effects(registry: TypeRegistry) -> None:
    bus, processor, remote_cmds, remote_events = make(registry)
    for p in (PlaceOrder("c", "S", 2, 5), AuthorizePayment("p", 5), ReserveInventory("S", 2), ConfirmOrder()):
        bus.publish(new_command(p, "o"))
    sent_cmds, sent_events = len(remote_cmds.seen), len(remote_events.seen)
    live_events = list(remote_events.seen)
    result = bus.replay("o")
    assert result.states["order"] == processor.storage.get_entity("order", "o")
    assert all(e.metadata.is_replay for e in result.events)
    assert [e.event_id for e in result.events] == [e.event_id for e in live_events]
    assert (len(remote_cmds.seen), len(remote_events.seen)) == (sent_cmds, sent_events)
    assert len(processor.storage.load_commands("o")) == 4
    rebuilt = rebuild_views(processor.views, result.events)
    for view in ("orders", "inventory", "payments"):
        assert rebuilt[view] == processor.storage.list_view(view)
