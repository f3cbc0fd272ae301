"""Seeded order workloads for every driver (simulator, scenarios, Locust, the gate).

An :class:`OrderScript` is one order's life as the client issues it: ``PlaceOrder`` then,
depending on the script, ``AuthorizePayment``, ``ReserveInventory``, ``ConfirmOrder`` or a
``CancelOrder`` part-way. Every command of one order targets the order entity, so on a FIFO
route they share a message group and must take effect in sequence-number order.

Data is realistic (faker customers, partner ids, SKUs, prices) and fully determined by the
seed: ``generate_orders(seed, n)`` returns the same scripts on every machine, which is what
makes ``flowgate replay SEED`` reproduce a run.

``invalid_ratio`` makes some scripts deliberately break the state machine (confirm before
payment): those commands must end in the business dead-letter store, never as an effect, and
their sends are marked ``expect_business_failure`` for the dead-letter checker.

``saga_commands`` (docs/decisions.md D33) is the saga-command flow: the client issues only
``PlaceOrder`` and ``AuthorizePayment`` (a cancelled order: ``PlaceOrder``, ``CancelOrder``,
before any payment), and the order saga issues ``ReserveInventory`` after the payment, the
fulfilment aggregate ``ConfirmOrder`` after the reservation (``flowgate.reference.domain.orders``); a paid
order's final status is then CONFIRMED. Nothing the client sends can race the follow-ups for the
order's next numbers, and an ``invalid_ratio`` confirm goes only to an order that is already
cancelled (always refused). Not combinable with ``reads`` (a read's place in the group would race
the follow-ups).

``reads`` (contract v1.3) mixes ``GetOrder`` reads into each lifecycle the way the gate's plan
does (``harness/gate/workload.py``): one after a seeded write and one after the last step, their
places drawn from a generator of their own (``f"{seed}:reads"``), so the writes, data and ids of
a seed are the same with or without reads.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from faker import Faker

from flowgate.reference.domain.orders import (
    AuthorizePayment,
    CancelOrder,
    ConfirmOrder,
    GetOrder,
    PlaceOrder,
    ReserveInventory,
)
from flowgate.reference.messages import Payload

PARTNERS = ("PARTNER_A", "PARTNER_B", "PARTNER_C")


@dataclass(frozen=True)
class Step:
    """One command of a script and whether the state machine must reject it."""

    payload: Payload
    expect_business_failure: bool = False


@dataclass(frozen=True)
class OrderScript:
    order_id: str
    customer_id: str
    customer_name: str
    partner_id: str
    external_order_id: str
    sku: str
    quantity: int
    amount_cents: int
    steps: tuple[Step, ...] = field(default_factory=tuple)
    #: the saga-command flow (D33): the saga and the aggregate issue the rest of a paid order's life
    saga_commands: bool = False

    @property
    def final_status(self) -> str:
        """The status the order view must show once every step took effect (reads change nothing)."""
        valid = [
            s.payload
            for s in self.steps
            if not s.expect_business_failure and not isinstance(s.payload, GetOrder)
        ]
        last = valid[-1]
        if self.saga_commands and isinstance(last, AuthorizePayment):
            return "CONFIRMED"  # ReserveInventory (saga) and ConfirmOrder (aggregate) follow it
        return {
            PlaceOrder: "PENDING",
            AuthorizePayment: "PAID",
            ReserveInventory: "RESERVED",
            ConfirmOrder: "CONFIRMED",
            CancelOrder: "CANCELLED",
        }[type(last)]

    def summary(self) -> dict[str, Any]:
        return {
            "order_id": self.order_id,
            "customer": self.customer_name,
            "partner": self.partner_id,
            "sku": self.sku,
            "quantity": self.quantity,
            "amount_cents": self.amount_cents,
            "steps": [type(s.payload).__name__ for s in self.steps],
        }


def generate_orders(
    seed: int,
    count: int,
    *,
    cancel_ratio: float = 0.1,
    invalid_ratio: float = 0.0,
    lifecycle: bool = True,
    reads: bool = False,
    saga_commands: bool = False,
) -> list[OrderScript]:
    """``count`` order scripts determined by ``seed`` (see the module docstring).

    ``lifecycle=False`` gives one ``PlaceOrder`` per order (the cheapest load for throughput
    runs); otherwise each order runs to CONFIRMED, or to CANCELLED with ``cancel_ratio``.
    ``reads`` adds a ``GetOrder`` after a seeded write (when the order has more than one step)
    and one after the last step.
    """
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    if not (0.0 <= cancel_ratio <= 1.0 and 0.0 <= invalid_ratio <= 1.0):
        raise ValueError("cancel_ratio and invalid_ratio must lie in [0, 1]")
    if saga_commands and reads:
        raise ValueError("saga_commands and reads do not combine (see the module docstring)")
    rng = random.Random(seed)
    fake = Faker()
    fake.seed_instance(seed)
    skus = [f"SKU-{fake.bothify('???###').upper()}" for _ in range(25)]
    customers = [(f"CUST-{fake.numerify('######')}", fake.name()) for _ in range(max(10, count // 4 or 1))]
    read_rng = random.Random(f"{seed}:reads")
    scripts: list[OrderScript] = []
    for index in range(count):
        customer_id, customer_name = rng.choice(customers)
        partner = rng.choice(PARTNERS)
        sku = rng.choice(skus)
        quantity = rng.randint(1, 9)
        amount = quantity * rng.randint(199, 25_000)
        order_id = f"ord-{seed % 100_000:05d}-{index:06d}"
        steps: list[Step] = [Step(PlaceOrder(customer_id, sku, quantity, amount))]
        if lifecycle:
            payment = AuthorizePayment(f"pay-{rng.getrandbits(40):010x}", amount)
            full: list[Payload] = [payment, ReserveInventory(sku, quantity), ConfirmOrder()]
            if saga_commands:
                full = [payment]  # the saga and the aggregate issue the rest
            cancelled = rng.random() < cancel_ratio
            if cancelled:
                cut = rng.randint(0, 2)
                if saga_commands:
                    cut = 0  # a cancel after the payment would race the follow-ups' numbers
                steps += [Step(p) for p in full[:cut]]
                steps.append(
                    Step(CancelOrder(rng.choice(["customer request", "fraud check", "out of stock"])))
                )
            else:
                steps += [Step(p) for p in full]
            if rng.random() < invalid_ratio and (cancelled or not saga_commands):
                # a confirm the state machine must refuse: the order is final or not yet reserved
                steps.append(Step(ConfirmOrder(), expect_business_failure=True))
        if reads:
            steps = with_reads(steps, read_rng)
        scripts.append(
            OrderScript(
                order_id=order_id,
                customer_id=customer_id,
                customer_name=customer_name,
                partner_id=partner,
                external_order_id=f"{partner[-1]}-{fake.numerify('########')}",
                sku=sku,
                quantity=quantity,
                amount_cents=amount,
                steps=tuple(steps),
                saga_commands=saga_commands,
            )
        )
    return scripts


def with_reads(steps: list[Step], rng: random.Random) -> list[Step]:
    """``steps`` with a ``GetOrder`` after the ``rng``-chosen one of steps 1..n-1 (none if the
    order has one step) and one after the last (the gate's placement, ``make_plan``)."""
    after = rng.randrange(1, len(steps)) if len(steps) > 1 else len(steps)
    out: list[Step] = []
    for position, step in enumerate(steps, start=1):
        out.append(step)
        if position in (after, len(steps)):
            out.append(Step(GetOrder()))
    return out
