"""The order state machine and the partner validator."""

from __future__ import annotations

import pytest

from flowgate.reference.domain import (
    AuthorizePayment,
    CancelOrder,
    ConfirmOrder,
    OrderSaga,
    PartnerOrderSaga,
    PlaceOrder,
    ReserveInventory,
    SubmitPartnerOrder,
    partner_command,
)
from flowgate.reference.domain.partners import PartnerOrderRejected, PartnerOrderValidated
from flowgate.reference.errors import InvalidTransition
from flowgate.reference.messages import Payload, new_command
from flowgate.reference.stores import State

PLACE = PlaceOrder("c", "SKU", 2, 100)
PAY = AuthorizePayment("p", 100)
RESERVE = ReserveInventory("SKU", 2)
CONFIRM = ConfirmOrder()
CANCEL = CancelOrder("changed mind")


def run(*payloads: Payload) -> State | None:
    saga, state = OrderSaga(), None
    for seq, p in enumerate(payloads, 1):
        state, _ = saga.decide(state, new_command(p, "o", sequence_no=seq))
    return state


def test_happy_path() -> None:
    state = run(PLACE, PAY, RESERVE, CONFIRM)
    assert state is not None
    assert state["status"] == "CONFIRMED"
    assert state["lastSeq"] == 4


@pytest.mark.parametrize("path", [
    (PAY,), (PLACE, PLACE), (PLACE, RESERVE), (PLACE, CONFIRM), (PLACE, PAY, CONFIRM),
    (PLACE, PAY, RESERVE, CONFIRM, CANCEL), (PLACE, CANCEL, PAY), (PLACE, CANCEL, CANCEL),
    (PLACE, AuthorizePayment("p", 99)),
])
def test_invalid_transitions_are_business_failures(path: tuple[Payload, ...]) -> None:
    with pytest.raises(InvalidTransition):
        run(*path)


@pytest.mark.parametrize("prefix", [(PLACE,), (PLACE, PAY), (PLACE, PAY, RESERVE)])
def test_cancel_from_any_non_final_state_releases(prefix: tuple[Payload, ...]) -> None:
    saga = OrderSaga()
    state = run(*prefix)
    new, events = saga.decide(state, new_command(CANCEL, "o", sequence_no=9))
    assert new["status"] == "CANCELLED"
    (evt,) = events
    assert evt.released_quantity == (2 if RESERVE in prefix else 0)  # type: ignore[attr-defined]
    assert evt.refunded_cents == (100 if PAY in prefix else 0)  # type: ignore[attr-defined]


def test_saga_is_pure() -> None:
    saga = OrderSaga()
    state = run(PLACE)
    snapshot = dict(state or {})
    saga.decide(state, new_command(PAY, "o", sequence_no=2))
    assert state == snapshot


def test_partner_orders_validated_and_identified_by_partner_key() -> None:
    saga = PartnerOrderSaga()
    good = SubmitPartnerOrder("PARTNER_A", "ORD-1", "SKU", 1, 10)
    bad = SubmitPartnerOrder("PARTNER_X", "ORD-2", "", 0, -1)
    c1, c2 = partner_command(good), partner_command(good)
    assert c1.event_id == c2.event_id
    assert c1.entity_id == "PARTNER_A:ORD-1"
    assert partner_command(bad).event_id != c1.event_id
    s, evs = saga.decide(None, c1)
    assert s["valid"]
    assert isinstance(evs[0], PartnerOrderValidated)
    s2, evs2 = saga.decide(None, partner_command(bad))
    assert not s2["valid"]
    assert isinstance(evs2[0], PartnerOrderRejected)
    assert "unknown partner" in evs2[0].errors
    assert saga.decide(s, c2) == (s, [])
