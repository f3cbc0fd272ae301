"""NexusStream partner-order validation (doc 004), small.

The error path (seed 004's ``error_orders`` queue and its "Error Logger"): rejected orders are
``PartnerOrderRejected`` events on their own topic, delivered to an error queue whose listener
projects them into the error log view (:class:`PartnerErrorLog`). Unlike the seed, the error
queue has a DLQ like every queue (``docs/decisions.md`` D31): the error logger can fail too.

A partner order is identified by ``partnerId:externalOrderId``: that is the entity id, and the
command's eventId is derived from it (uuid5), so a partner resubmitting the same order yields the
same FIFO dedup id and the same idempotency key (doc 004's "MessageDeduplicationId =
partnerId:externalOrderId" / "ON CONFLICT DO NOTHING").
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from flowgate.reference.errors import InvalidTransition
from flowgate.reference.hooks import Clock
from flowgate.reference.messages import Command, Event, Payload, TypeRegistry, new_command
from flowgate.reference.stores import State

PARTNER_NAMESPACE = uuid.UUID("6f1c3f0e-2b7a-4c53-9d55-1f4e7b0d9a11")


@dataclass(frozen=True)
class SubmitPartnerOrder(Payload):
    partner_id: str
    external_order_id: str
    sku: str
    quantity: int
    amount_cents: int


@dataclass(frozen=True)
class PartnerOrderValidated(Payload):
    partner_id: str
    external_order_id: str
    sku: str
    quantity: int
    amount_cents: int


@dataclass(frozen=True)
class PartnerOrderRejected(Payload):
    partner_id: str
    external_order_id: str
    errors: str


def partner_registry(registry: TypeRegistry | None = None) -> TypeRegistry:
    return (
        (registry or TypeRegistry())
        .commands(SubmitPartnerOrder)
        .events(PartnerOrderValidated, PartnerOrderRejected)
    )


def partner_command(order: SubmitPartnerOrder, *, clock: Clock | None = None) -> Command:
    """The command for a partner order, with identity derived from ``partnerId:externalOrderId``."""
    key = f"{order.partner_id}:{order.external_order_id}"
    return new_command(order, key, is_new=True, event_id=str(uuid.uuid5(PARTNER_NAMESPACE, key)), clock=clock)


class PartnerOrderSaga:
    """Validates partner orders; invalid ones become ``PartnerOrderRejected`` (the error queue)."""

    kind = "partner-order"

    def __init__(self, known_partners: Sequence[str] = ("PARTNER_A", "PARTNER_B")) -> None:
        self.known_partners = frozenset(known_partners)

    def handles(self, command_type: type[Payload]) -> bool:
        return command_type is SubmitPartnerOrder

    def decide(self, state: State | None, command: Command) -> tuple[State, Sequence[Payload]]:
        p = command.payload
        if not isinstance(p, SubmitPartnerOrder):
            raise InvalidTransition(f"cannot handle {command.name}")
        if state is not None:
            return state, []  # already decided: a resubmission changes nothing
        errors = []
        if p.partner_id not in self.known_partners:
            errors.append("unknown partner")
        if not p.sku:
            errors.append("missing sku")
        if p.quantity <= 0:
            errors.append("quantity must be positive")
        if p.amount_cents < 0:
            errors.append("amount must be non-negative")
        if errors:
            return {"valid": False, "errors": errors}, [
                PartnerOrderRejected(p.partner_id, p.external_order_id, "; ".join(errors))
            ]
        return {"valid": True, "errors": []}, [
            PartnerOrderValidated(p.partner_id, p.external_order_id, p.sku, p.quantity, p.amount_cents)
        ]


class PartnerErrorLog:
    """The error store (seed 004's "Error Logger"): one row per rejected order, keyed
    ``partnerId:externalOrderId``, with the partner and the validation errors."""

    name = "partner-errors"

    def projects(self, event_type: type[Payload]) -> bool:
        return event_type is PartnerOrderRejected

    def row_id(self, event: Event) -> str:
        return event.entity_id

    def project(self, row: State | None, event: Event) -> State:
        p = event.payload
        if not isinstance(p, PartnerOrderRejected):
            raise InvalidTransition(f"cannot project {event.name}")
        return {"partnerId": p.partner_id, "externalOrderId": p.external_order_id, "errors": p.errors}
