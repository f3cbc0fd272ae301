"""The example order domain with an explicit state machine (V3, doc 002)::

    PENDING --AuthorizePayment--> PAID --ReserveInventory--> RESERVED --ConfirmOrder--> CONFIRMED
       \\______________________ CancelOrder (from any non-final state) ________________> CANCELLED

All six commands target the order entity (client-issued in that order on one FIFO queue,
MessageGroupId = order id). Any other transition raises :class:`InvalidTransition`, a business
failure (retried, then recorded in the business dead-letter store).

The saga-command flow (docs/decisions.md D33, off by default: :func:`order_domain`): the client
issues only ``PlaceOrder`` and ``AuthorizePayment`` (or a ``CancelOrder`` before paying). The
saga, deciding ``AuthorizePayment``, also issues ``ReserveInventory`` for the same order (seed
003's ``PublishCommand`` inside ``Handle``), and the :class:`OrderFulfilment` aggregate, an
entity root subscribed to ``InventoryReserved``, issues ``ConfirmOrder``. Both follow-ups are
committed with the decision that issued them and numbered by the store after it, so the order's
numbers stay 1, 2, 3, 4 in the order its commands must apply.

``GetOrder`` (contract v1.3) is the read: an ordinary command of the order's group (it takes a
sequence number and is recorded in the command store like any other) that changes nothing and is
answered by one ``OrderState`` event carrying the order's state as of that point of the group:
its status, its ``version`` (how many state-changing commands it applied) and ``applied``, the
eventIds of those commands in the order they took effect (the entity's command log, appended by
every state-changing command and never rewritten). A command whose effect is applied twice shows
there twice even when the last-writer-wins fields look the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from flowgate.reference.errors import InvalidTransition
from flowgate.reference.messages import Command, Event, FollowUp, Payload, TypeRegistry
from flowgate.reference.stores import State


class OrderStatus(StrEnum):
    PENDING = "PENDING"
    PAID = "PAID"
    RESERVED = "RESERVED"
    CONFIRMED = "CONFIRMED"
    CANCELLED = "CANCELLED"


FINAL = {OrderStatus.CONFIRMED, OrderStatus.CANCELLED}


@dataclass(frozen=True)
class PlaceOrder(Payload):
    customer_id: str
    sku: str
    quantity: int
    amount_cents: int


@dataclass(frozen=True)
class AuthorizePayment(Payload):
    payment_id: str
    amount_cents: int


@dataclass(frozen=True)
class ReserveInventory(Payload):
    sku: str
    quantity: int


@dataclass(frozen=True)
class ConfirmOrder(Payload):
    pass


@dataclass(frozen=True)
class CancelOrder(Payload):
    reason: str


@dataclass(frozen=True)
class GetOrder(Payload):
    """The read (contract v1.3): no fields; answered by :class:`OrderState`."""


@dataclass(frozen=True)
class OrderPlaced(Payload):
    customer_id: str
    sku: str
    quantity: int
    amount_cents: int


@dataclass(frozen=True)
class PaymentAuthorized(Payload):
    payment_id: str
    amount_cents: int


@dataclass(frozen=True)
class InventoryReserved(Payload):
    sku: str
    quantity: int


@dataclass(frozen=True)
class OrderConfirmed(Payload):
    pass


@dataclass(frozen=True)
class OrderCancelled(Payload):
    reason: str
    sku: str
    released_quantity: int
    refunded_cents: int


@dataclass(frozen=True)
class OrderState(Payload):
    """The answer to :class:`GetOrder`: the order's state as of the read's place in its group.

    ``applied`` lists the eventIds of the state-changing commands in the order they took effect
    (never the reads); ``version`` = its length; ``paid_cents`` / ``reserved_quantity`` are the
    order's payment and inventory figures (0 once cancelled)."""

    status: str
    version: int
    applied: tuple[str, ...]
    amount_cents: int
    paid_cents: int
    reserved_quantity: int


#: the commands that change an order (each appends its eventId to the order's ``applied`` log)
ORDER_WRITES: tuple[type[Payload], ...] = (
    PlaceOrder,
    AuthorizePayment,
    ReserveInventory,
    ConfirmOrder,
    CancelOrder,
)
ORDER_COMMANDS: tuple[type[Payload], ...] = (*ORDER_WRITES, GetOrder)
ORDER_EVENTS: tuple[type[Payload], ...] = (
    OrderPlaced,
    PaymentAuthorized,
    InventoryReserved,
    OrderConfirmed,
    OrderCancelled,
    OrderState,
)


def order_registry(registry: TypeRegistry | None = None) -> TypeRegistry:
    """Register the order domain's commands and events (explicitly, by class)."""
    return (registry or TypeRegistry()).commands(*ORDER_COMMANDS).events(*ORDER_EVENTS)


class OrderSaga:
    """The order state machine; pure.

    ``reserve_after_payment`` (the saga-command flow, D33): deciding ``AuthorizePayment`` also
    issues ``ReserveInventory(sku, quantity)`` for the same order (a :class:`FollowUp`)."""

    kind = "order"

    def __init__(self, *, reserve_after_payment: bool = False) -> None:
        self.reserve_after_payment = reserve_after_payment

    def handles(self, command_type: type[Payload]) -> bool:
        return command_type in ORDER_COMMANDS

    def decide(self, state: State | None, command: Command) -> tuple[State, Sequence[Payload | FollowUp]]:
        p = command.payload
        seq = command.metadata.sequence_no
        if isinstance(p, PlaceOrder):
            if state is not None:
                raise InvalidTransition(f"order {command.entity_id} already placed")
            if p.quantity <= 0 or p.amount_cents < 0:
                raise InvalidTransition("quantity must be positive and amount non-negative")
            return (
                {
                    "status": OrderStatus.PENDING.value,
                    "customerId": p.customer_id,
                    "sku": p.sku,
                    "quantity": p.quantity,
                    "amountCents": p.amount_cents,
                    "paidCents": 0,
                    "reserved": 0,
                    "lastSeq": seq,
                    "applied": [command.event_id],
                },
                [OrderPlaced(p.customer_id, p.sku, p.quantity, p.amount_cents)],
            )
        if state is None:
            raise InvalidTransition(f"{command.name} for unknown order {command.entity_id}")
        status = OrderStatus(state["status"])
        if isinstance(p, GetOrder):  # the read changes nothing (lastSeq included)
            return dict(state), [self.state_of(state)]
        new = dict(state, lastSeq=seq, applied=[*applied_log(state), command.event_id])
        if isinstance(p, AuthorizePayment):
            self._require(status, OrderStatus.PENDING, command)
            if p.amount_cents != state["amountCents"]:
                raise InvalidTransition(f"payment {p.amount_cents} != order amount {state['amountCents']}")
            new.update(status=OrderStatus.PAID.value, paidCents=p.amount_cents)
            paid: list[Payload | FollowUp] = [PaymentAuthorized(p.payment_id, p.amount_cents)]
            if self.reserve_after_payment:
                reserve = ReserveInventory(str(state["sku"]), int(state["quantity"]))
                paid.append(FollowUp(reserve, command.entity_id))
            return new, paid
        if isinstance(p, ReserveInventory):
            self._require(status, OrderStatus.PAID, command)
            new.update(status=OrderStatus.RESERVED.value, reserved=p.quantity, sku=p.sku)
            return new, [InventoryReserved(p.sku, p.quantity)]
        if isinstance(p, ConfirmOrder):
            self._require(status, OrderStatus.RESERVED, command)
            new.update(status=OrderStatus.CONFIRMED.value)
            return new, [OrderConfirmed()]
        if isinstance(p, CancelOrder):
            if status in FINAL:
                raise InvalidTransition(f"cannot cancel a {status.value} order")
            new.update(status=OrderStatus.CANCELLED.value, reserved=0, paidCents=0)
            return new, [
                OrderCancelled(p.reason, str(state["sku"]), int(state["reserved"]), int(state["paidCents"]))
            ]
        raise InvalidTransition(f"OrderSaga cannot handle {command.name}")

    @staticmethod
    def state_of(state: State) -> OrderState:
        """The :class:`OrderState` answer for a stored order row."""
        applied = applied_log(state)
        return OrderState(
            str(state["status"]),
            len(applied),
            tuple(applied),
            int(state["amountCents"]),
            int(state["paidCents"]),
            int(state["reserved"]),
        )

    @staticmethod
    def _require(status: OrderStatus, expected: OrderStatus, command: Command) -> None:
        if status != expected:
            raise InvalidTransition(
                f"{command.name} needs {expected.value}, order {command.entity_id} is {status.value}"
            )


class OrderFulfilment:
    """The order's fulfilment aggregate (seed 003's ``Aggregate``, D33): an entity root per order
    (kind ``fulfilment``, root id = the order id) subscribed to ``InventoryReserved``; the first
    reservation of an order issues ``ConfirmOrder`` for it and records that it did, so a second
    ``InventoryReserved`` of the order (another event id) issues nothing. Pure, like a saga."""

    kind = "fulfilment"

    def subscribes(self, event_type: type[Payload]) -> bool:
        return event_type is InventoryReserved

    def root_id(self, event: Event) -> str:
        return event.entity_id

    def react(self, state: State | None, event: Event) -> tuple[State, Sequence[FollowUp]]:
        if state is not None and state.get("confirmIssued"):
            return dict(state), []
        p = event.payload
        assert isinstance(p, InventoryReserved)
        root = {"confirmIssued": True, "sku": p.sku, "quantity": p.quantity, "reservedBy": event.event_id}
        return root, [FollowUp(ConfirmOrder(), event.entity_id)]


def order_domain(*, saga_commands: bool = False) -> tuple[list[OrderSaga], list[OrderFulfilment]]:
    """The order domain's sagas and aggregates: the client-driven lifecycle (default), or with
    ``saga_commands`` the saga-command flow (the saga issues ``ReserveInventory``, the
    :class:`OrderFulfilment` aggregate ``ConfirmOrder``; see the module docstring)."""
    if not saga_commands:
        return [OrderSaga()], []
    return [OrderSaga(reserve_after_payment=True)], [OrderFulfilment()]


def applied_log(state: State) -> list[str]:
    """The order's command log (eventIds of its applied state-changing commands, in order)."""
    return [str(x) for x in state.get("applied", [])]


class OrderView:
    """Order id -> status, amount, last applied sequence number."""

    name = "orders"

    def projects(self, event_type: type[Payload]) -> bool:
        return event_type in ORDER_EVENTS and event_type is not OrderState  # a read changes no view

    def row_id(self, event: Event) -> str:
        return event.entity_id

    def project(self, row: State | None, event: Event) -> State:
        p = event.payload
        row = dict(row or {"status": None, "amountCents": 0, "lastSeq": 0, "applied": 0})
        status = {
            OrderPlaced: "PENDING",
            PaymentAuthorized: "PAID",
            InventoryReserved: "RESERVED",
            OrderConfirmed: "CONFIRMED",
            OrderCancelled: "CANCELLED",
        }[type(p)]
        if isinstance(p, OrderPlaced):
            row["amountCents"] = p.amount_cents
        if event.metadata.sequence_no >= row["lastSeq"]:
            row["status"] = status
            row["lastSeq"] = event.metadata.sequence_no
        row["applied"] += 1
        return row


class InventoryView:
    """SKU -> reserved quantity."""

    name = "inventory"

    def projects(self, event_type: type[Payload]) -> bool:
        return event_type in (InventoryReserved, OrderCancelled)

    def row_id(self, event: Event) -> str:
        p = event.payload
        assert isinstance(p, InventoryReserved | OrderCancelled)
        return p.sku

    def project(self, row: State | None, event: Event) -> State:
        p = event.payload
        reserved = int((row or {}).get("reserved", 0))
        if isinstance(p, InventoryReserved):
            reserved += p.quantity
        elif isinstance(p, OrderCancelled):
            reserved -= p.released_quantity
        return {"reserved": reserved}


class PaymentsView:
    """Order id -> authorized and refunded cents."""

    name = "payments"

    def projects(self, event_type: type[Payload]) -> bool:
        return event_type in (PaymentAuthorized, OrderCancelled)

    def row_id(self, event: Event) -> str:
        return event.entity_id

    def project(self, row: State | None, event: Event) -> State:
        p = event.payload
        row = dict(row or {"authorizedCents": 0, "refundedCents": 0})
        if isinstance(p, PaymentAuthorized):
            row["authorizedCents"] += p.amount_cents
        elif isinstance(p, OrderCancelled):
            row["refundedCents"] += p.refunded_cents
        return row
