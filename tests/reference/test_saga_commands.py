"""Sagas that issue commands and aggregates (docs/decisions.md D33), on both stores.

The follow-up commands are part of the decision: committed with it, numbered by the store after
the effect's own command, recorded in the producer outbox and in the idempotency record, and sent
from there; a redelivery of the cause sends the same commands (same ids, same numbers), never new
ones.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from flowgate.reference.bus import (
    CommandBus,
    EventQueue,
    LocalCommandDispatcher,
    LocalEventDispatcher,
    Processor,
    aggregate_name,
)
from flowgate.reference.domain import (
    AuthorizePayment,
    CancelOrder,
    ConfirmOrder,
    InventoryView,
    OrderFulfilment,
    OrderView,
    PlaceOrder,
    ReserveInventory,
    order_domain,
    order_registry,
)
from flowgate.reference.domain.orders import InventoryReserved
from flowgate.reference.errors import StoreUnavailable
from flowgate.reference.idempotency import Claimed, Duplicate, command_key, event_key, message_digest
from flowgate.reference.messages import Command, FollowUp, derived_event_id, event_for, new_command
from flowgate.reference.sql import SqlStorage
from flowgate.reference.stores import InMemoryStorage, Storage, with_sequence


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def storage(request: pytest.FixtureRequest, tmp_path: object) -> Iterator[Storage]:
    registry = order_registry()
    if request.param == "memory":
        yield InMemoryStorage(registry)
        return
    if request.param == "sqlite":
        store = SqlStorage(registry, f"sqlite:///{tmp_path}/saga.db")
    else:
        pytest.importorskip("psycopg")
        url = os.environ.get("FLOWGATE_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
        try:
            store = SqlStorage(registry, url, prefix=f"t{uuid.uuid4().hex[:8]}_")
        except StoreUnavailable:
            pytest.skip("no PostgreSQL on 127.0.0.1:5432")
    yield store
    store.drop()


class Recorder:
    def __init__(self) -> None:
        self.seen: list[Command] = []

    def dispatch(self, message: Command) -> None:
        self.seen.append(message)


def local_bus(storage: Storage) -> tuple[CommandBus, Recorder]:
    sagas, aggregates = order_domain(saga_commands=True)
    processor = Processor(storage, sagas=sagas, views=[OrderView(), InventoryView()], aggregates=aggregates)
    bus = CommandBus(processor=processor)
    events = EventQueue([LocalEventDispatcher(processor, commands=bus)])
    remote = Recorder()
    bus.dispatchers += [LocalCommandDispatcher(processor, events, commands=bus), remote]
    return bus, remote


def test_the_saga_and_the_aggregate_drive_an_order_to_confirmed(storage: Storage) -> None:
    bus, remote = local_bus(storage)
    placed = bus.publish(new_command(PlaceOrder("c", "SKU-1", 2, 500), "o1", is_new=True))
    paid = bus.publish(new_command(AuthorizePayment("p", 500), "o1"))
    order = storage.get_entity("order", "o1")
    assert order is not None
    assert order["status"] == "CONFIRMED"
    stored = storage.load_commands("o1")
    assert [(c.name, c.metadata.sequence_no) for c in stored] == [
        ("PlaceOrder", 1),
        ("AuthorizePayment", 2),
        ("ReserveInventory", 3),
        ("ConfirmOrder", 4),
    ]
    reserve, confirm = stored[2], stored[3]
    # ids derive from the cause (a command's causationId is not on the wire); the correlation goes on
    assert reserve.event_id == derived_event_id(paid.event_id, 0, "command:ReserveInventory")
    assert reserve.metadata.correlation_id == paid.metadata.correlation_id
    reserved = derived_event_id(reserve.event_id, 0, "InventoryReserved")
    assert confirm.event_id == derived_event_id(reserved, 0, "command:ConfirmOrder")
    # each sent once (local dispatch nests: a follow-up reaches the remote before its cause does)
    assert sorted(c.event_id for c in remote.seen) == sorted(
        [
            placed.event_id,
            paid.event_id,
            reserve.event_id,
            confirm.event_id,
        ]
    )
    assert storage.unsent_commands() == []
    assert storage.get_entity("fulfilment", "o1") == {
        "confirmIssued": True,
        "sku": "SKU-1",
        "quantity": 2,
        "reservedBy": reserved,
    }
    assert storage.get_view("inventory", "SKU-1") == {"reserved": 2}


def test_a_commit_numbers_its_follow_ups_once_and_a_duplicate_returns_the_same(storage: Storage) -> None:
    sagas, _ = order_domain(saga_commands=True)
    processor = Processor(storage, sagas=sagas)
    LocalCommandDispatcher(processor).dispatch(
        with_sequence(new_command(PlaceOrder("c", "S", 1, 100), "o1"), 1)
    )
    paid = with_sequence(new_command(AuthorizePayment("p", 100), "o1"), 2)
    decision = processor.decide(paid)
    issued = storage.commit(processor.command_effect(paid, claim(processor, paid), decision))
    assert [(c.name, c.metadata.sequence_no) for c in issued] == [("ReserveInventory", 3)]
    assert [c.event_id for c in issued] == [c.event_id for c in decision.commands]
    assert storage.unsent_commands("o1") == list(issued)
    again = storage.claim(
        command_key(paid.event_id),
        now=1.0,
        lease_until=99.0,
        message_type=paid.name,
        digest=message_digest(paid),
    )
    assert isinstance(again, Duplicate)
    assert again.commands == issued  # the same id and number: nothing new to allocate
    assert storage.allocate_sequence("o1") == 4  # 3 was taken once, by the commit


def test_a_redelivered_cause_sends_the_recorded_command_not_a_new_one(storage: Storage) -> None:
    bus, remote = local_bus(storage)
    bus.publish(new_command(PlaceOrder("c", "SKU-1", 1, 100), "o1"))
    paid = bus.publish(new_command(AuthorizePayment("p", 100), "o1"))
    before = [c.event_id for c in remote.seen]
    bus.publish(paid)  # a resend of the cause (same id and number): a duplicate
    assert [c.event_id for c in remote.seen] == [*before, paid.event_id]  # the cause only: no follow-up again
    assert [c.name for c in storage.load_commands("o1")][-2:] == ["ReserveInventory", "ConfirmOrder"]


def test_an_unsent_follow_up_is_sent_by_the_redelivery_of_its_cause(storage: Storage) -> None:
    """The worker died between its commit and the send: the follow-up is in the producer outbox
    and the record; the redelivery (a duplicate) sends it, with the number the commit gave it."""
    sagas, aggregates = order_domain(saga_commands=True)
    processor = Processor(storage, sagas=sagas, aggregates=aggregates)
    silent = CommandBus(processor=processor)
    silent.dispatchers.append(LocalCommandDispatcher(processor, commands=None))  # sends nothing issued
    silent.publish(new_command(PlaceOrder("c", "SKU-1", 1, 100), "o1"))
    paid = silent.publish(new_command(AuthorizePayment("p", 100), "o1"))
    assert [c.name for c in storage.unsent_commands("o1")] == ["ReserveInventory"]
    remote = Recorder()
    bus = CommandBus([remote], processor=processor)
    LocalCommandDispatcher(processor, commands=bus).dispatch(paid)  # the redelivery
    assert [(c.name, c.metadata.sequence_no) for c in remote.seen] == [("ReserveInventory", 3)]
    assert storage.unsent_commands("o1") == []


def test_the_aggregate_reacts_once_per_event(storage: Storage) -> None:
    processor = Processor(storage, aggregates=[OrderFulfilment()])
    bus = CommandBus([Recorder()], processor=processor)
    dispatcher = LocalEventDispatcher(processor, commands=bus)
    reserve = with_sequence(new_command(ReserveInventory("SKU-1", 1), "o1"), 3)
    event = event_for(reserve, 0, InventoryReserved("SKU-1", 1))
    dispatcher.dispatch(event)
    dispatcher.dispatch(event)  # redelivered: a duplicate of the reaction
    other = event_for(
        with_sequence(new_command(ReserveInventory("SKU-1", 1), "o1"), 5), 0, InventoryReserved("SKU-1", 1)
    )
    dispatcher.dispatch(other)  # a second reservation of the order: the root issues nothing more
    recorder = bus.dispatchers[0]
    assert isinstance(recorder, Recorder)
    assert [c.name for c in recorder.seen] == ["ConfirmOrder"]
    key = event_key(event.event_id, aggregate_name(OrderFulfilment()))
    assert isinstance(storage.claim(key, now=0.0, lease_until=1.0, message_type=event.name), Duplicate)


def test_follow_up_ids_derive_from_the_cause() -> None:
    sagas, _ = order_domain(saga_commands=True)
    storage = InMemoryStorage(order_registry())
    processor = Processor(storage, sagas=sagas)
    CommandBus([LocalCommandDispatcher(processor)], processor=processor).publish(
        new_command(PlaceOrder("c", "S", 1, 9), "o1")
    )
    paid = with_sequence(new_command(AuthorizePayment("p", 9), "o1"), 2)
    first, second = processor.decide(paid), processor.decide(paid)
    assert [c.event_id for c in first.commands] == [c.event_id for c in second.commands]
    assert first.commands[0].event_id not in {e.event_id for e in first.events}
    assert first.commands[0].metadata.sequence_no == 0
    assert isinstance(first.commands[0].payload, ReserveInventory)
    assert not any(isinstance(e.payload, FollowUp) for e in first.events)
    assert not isinstance(ConfirmOrder(), FollowUp)


# -- helpers --------------------------------------------------------------------------------------
def claim(processor: Processor, command: Command) -> int:
    got = processor.claim(command_key(command.event_id), command.name, 30.0, message_digest(command))
    assert isinstance(got, Claimed)
    return got.token


class _Forwarder:
    """A test saga: each AuthorizePayment of an order issues a CancelOrder for entity ``other``."""

    kind = "forwarder"

    def handles(self, command_type: type) -> bool:
        return command_type is AuthorizePayment

    def decide(self, state: object, command: Command) -> tuple[dict[str, int], list[FollowUp]]:
        return {"n": 1}, [FollowUp(CancelOrder(f"after {command.entity_id}"), "other")]


def test_a_follow_up_for_another_entity_takes_that_entitys_next_number(storage: Storage) -> None:
    """Client publishes and follow-ups to one entity draw from one counter: the follow-up numbered
    in the commit sits between the client's commands, and the outbox sends in number order."""
    processor = Processor(storage, sagas=[_Forwarder()])
    remote = Recorder()
    bus = CommandBus([remote], processor=processor)
    local = LocalCommandDispatcher(processor, commands=bus)
    first = bus.publish(new_command(PlaceOrder("c", "S", 1, 1), "other"))
    paid = with_sequence(new_command(AuthorizePayment("p", 1), "o1"), 1)
    local.dispatch(paid)  # the forwarder issues CancelOrder for "other": number 2
    last = bus.publish(new_command(PlaceOrder("c", "S", 1, 1), "other"))
    sent = [(c.entity_id, c.name, c.metadata.sequence_no) for c in remote.seen]
    assert sent == [("other", "PlaceOrder", 1), ("other", "CancelOrder", 2), ("other", "PlaceOrder", 3)]
    assert (first.metadata.sequence_no, last.metadata.sequence_no) == (1, 3)
    local.dispatch(paid)  # redelivered: nothing new is numbered or sent
    assert len(remote.seen) == 3
    assert storage.allocate_sequence("other") == 4
