"""End to end on LocalStack: command -> SQS FIFO -> saga -> event -> SNS FIFO -> SQS FIFO -> views."""

from __future__ import annotations

import time
from collections import Counter
from types import SimpleNamespace
from typing import Any

import pytest

from flowgate.reference.bus import View, rebuild_views
from flowgate.reference.config import BusConfiguration
from flowgate.reference.domain.orders import (
    ORDER_COMMANDS,
    ORDER_EVENTS,
    AuthorizePayment,
    ConfirmOrder,
    InventoryView,
    OrderSaga,
    OrderView,
    PaymentsView,
    PlaceOrder,
    ReserveInventory,
)
from flowgate.reference.messages import TypeRegistry, new_command
from flowgate.reference.worker import build_runtime

pytestmark = pytest.mark.localstack


class CallCounter:
    def __init__(self, clients: list[Any]) -> None:
        self.calls: Counter[str] = Counter()
        self.active = False
        for c in clients:
            c.meta.events.register("before-call.*.*", self._on)

    def _on(self, model: Any, **_: Any) -> None:
        if self.active:
            self.calls[f"{model.service_model.service_name}.{model.name}"] += 1

    def close(self, clients: list[Any]) -> None:
        for c in clients:
            c.meta.events.unregister("before-call.*.*", self._on)


def order_config(registry: TypeRegistry, uid: str, kms_key: str | None) -> BusConfiguration:
    cfg = (BusConfiguration(registry)
           .send(*ORDER_COMMANDS).to_queue(f"fg-orders-{uid}.fifo")
           .raise_events(*ORDER_EVENTS).to_topic(f"fg-order-events-{uid}.fifo")
           .listen_to(f"fg-orders-{uid}.fifo")
           .subscribe(f"fg-order-views-{uid}.fifo").to_topics(f"fg-order-events-{uid}.fifo")
           .with_options(visibility_timeout=20, wait_time_seconds=1))
    if kms_key:
        cfg.with_encryption(kms_key)
    return cfg


@pytest.mark.parametrize("encrypted", [False, True], ids=["plaintext", "kms"])
def test_order_flow_end_to_end(aws: SimpleNamespace, aws_cleanup: list[Any], registry: TypeRegistry, uid: str,
                               kms_key: str, encrypted: bool) -> None:
    config = order_config(registry, uid, kms_key if encrypted else None)
    views: list[View] = [OrderView(), InventoryView(), PaymentsView()]
    runtime = build_runtime(config, sqs=aws.sqs, sns=aws.sns, sts=aws.sts, kms=aws.kms,
                            sagas=[OrderSaga()], views=views)
    aws_cleanup.append(runtime.resources)
    clients = [aws.sqs, aws.sns, aws.kms, aws.sts]
    counter = CallCounter(clients)
    orders = [f"order-{uid}-{i}" for i in range(3)]
    try:
        counter.active = True
        for oid in orders:
            for payload in (PlaceOrder("cust-1", "SKU-1", 2, 500), AuthorizePayment("pay-" + oid, 500),
                            ReserveInventory("SKU-1", 2), ConfirmOrder()):
                runtime.command_bus.publish(new_command(payload, oid, correlation_id=f"corr-{oid}"))
        deadline = time.monotonic() + 60
        storage = runtime.processor.storage
        while time.monotonic() < deadline:
            runtime.poll_all_once()
            rows = storage.list_view("orders")
            if all(rows.get(o, {}).get("status") == "CONFIRMED" and rows[o]["applied"] == 4 for o in orders):
                break
        counter.active = False
        # a last drain: nothing left, no duplicates applied
        runtime.poll_all_once()
    finally:
        counter.close(clients)
        runtime.close()
    rows = storage.list_view("orders")
    assert {o: rows[o]["status"] for o in orders} == dict.fromkeys(orders, "CONFIRMED")
    assert all(rows[o]["applied"] == 4 and rows[o]["lastSeq"] == 4 for o in orders)
    assert storage.list_view("inventory") == {"SKU-1": {"reserved": 6}}
    assert storage.list_view("payments") == {o: {"authorizedCents": 500, "refundedCents": 0} for o in orders}
    for o in orders:
        replay = runtime.command_bus.replay(o)
        assert replay.states["order"] == storage.get_entity("order", o)
        rebuilt = rebuild_views(views, replay.events)
        assert rebuilt["orders"][o] == rows[o]
    per_order = sum(counter.calls.values()) / len(orders)
    print(f"\nAPI calls per order ({'kms' if encrypted else 'plaintext'}): {per_order:.1f} "
          f"{dict(sorted(counter.calls.items()))}")
    assert storage.dead_letters() == []
