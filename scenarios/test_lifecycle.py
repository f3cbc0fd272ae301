"""Order lifecycle end to end on LocalStack, with the example domain, in worker PROCESSES.

PlaceOrder -> AuthorizePayment -> ReserveInventory -> ConfirmOrder (some orders cancelled part
way) on a FIFO command queue; events fan out through one FIFO SNS topic to two view services
(``views-a``, ``views-b``, separate processes with separate stores) plus a wire tap the test
reads. KMS envelope encryption off and on. Verdicts from the checkers over the merged history
(zero lost, no duplicated effects/projections, per-entity order, replay equivalence, no
plaintext on the encrypted wire) plus scenario checks: every view service shows each order's
final status, inventory totals, and the correlation id at every hop (command attributes on the
wire, event attributes and event metadata after SNS, ``causationId`` = the command's eventId).
"""

from __future__ import annotations

import json
from collections import Counter

import pytest

from flowgate.fixtures.scenario import OrderTopology, Producer, WireTap, bootstrap, drain, judge, sqlite_url
from flowgate.harness.history import HARNESS
from flowgate.harness.workload import generate_orders
from flowgate.reference.bus import CommandBus, Processor, rebuild_views
from flowgate.reference.domain.orders import (
    InventoryView,
    OrderCancelled,
    OrderSaga,
    OrderView,
    PaymentAuthorized,
    PaymentsView,
)
from flowgate.reference.envelope import KmsEnvelopeCipher
from flowgate.reference.messages import decode
from flowgate.reference.sql import SqlStorage

pytestmark = pytest.mark.localstack

ORDERS = 12
VIEW_SERVICES = ("views-a", "views-b")


def expected_projections(commands: list) -> int:
    per_event = 0
    for cmd in commands:
        event_views = 1  # OrderView projects every order event
        if cmd.name in ("ReserveInventory", "CancelOrder"):
            event_views += 1  # InventoryView
        if cmd.name in ("AuthorizePayment", "CancelOrder"):
            event_views += 1  # PaymentsView
        per_event += event_views
    return per_event * len(VIEW_SERVICES)


@pytest.mark.parametrize("encrypted", [False, True], ids=["plaintext", "kms"])
def test_order_lifecycle(scenario, registry, kms_key, summary, encrypted):
    s = scenario
    topo = OrderTopology(s.uid, views=VIEW_SERVICES)
    key = kms_key if encrypted else None
    stores = {name: sqlite_url(s.tmp / f"{name}.db") for name in ("saga", *VIEW_SERVICES)}
    full = topo.config(kms_key=key)
    resources = bootstrap(full, registry, s.aws)
    tap = WireTap(s.aws, resources.topic_arns[topo.topic], f"{topo.prefix}-tap.fifo", s.history)
    s.workers.spawn("saga", topo.config(subscribe=[], kms_key=key, store=stores["saga"]))
    for name in VIEW_SERVICES:
        s.workers.spawn(name, topo.config(listen=False, subscribe=[name], kms_key=key, store=stores[name]),
                        service=name)
    producer = Producer(full, registry, s.aws, resources, s.history, wire=True)
    scripts = generate_orders(s.seed, ORDERS, cancel_ratio=0.25)
    commands = producer.send_scripts(scripts, correlation=lambda oid: f"corr-{oid}")
    producer.close()
    result = drain(s.history, s.workers, s.aws,
                   [resources.queue_urls[topo.commands], *(resources.queue_urls[topo.view_queue(v)]
                                                           for v in VIEW_SERVICES)],
                   effects=len(commands), projections=expected_projections(commands), timeout=90)
    s.workers.terminate_all()
    tap.collect(until=len(commands), timeout=10)

    problems: list[str] = list(result.notes)
    by_order = {sc.order_id: sc for sc in scripts}
    # views: every view service shows every order's final status and the right money/inventory
    for name in VIEW_SERVICES:
        store = SqlStorage(registry, stores[name])
        orders_view, payments = store.list_view("orders"), store.list_view("payments")
        for oid, sc in by_order.items():
            row = orders_view.get(oid) or {}
            if row.get("status") != sc.final_status:
                problems.append(f"{name}: order {oid} view status {row.get('status')} != {sc.final_status}")
            paid = any(type(st.payload).__name__ == "AuthorizePayment" for st in sc.steps)
            pay = payments.get(oid, {"authorizedCents": 0})
            if pay.get("authorizedCents", 0) != (sc.amount_cents if paid else 0):
                problems.append(f"{name}: order {oid} authorized {pay} (paid={paid})")
        reserved: Counter[str] = Counter()
        for sc in scripts:
            if sc.final_status in ("RESERVED", "CONFIRMED"):
                reserved[sc.sku] += sc.quantity
        inventory = {sku: row["reserved"] for sku, row in store.list_view("inventory").items()}
        if {k: v for k, v in inventory.items() if v} != {k: v for k, v in reserved.items() if v}:
            problems.append(f"{name}: inventory {inventory} != expected {dict(reserved)}")
        store.engine.dispose()

    # correlation id at every hop
    command_wire = [op for op in s.history.ops if op.f == "wire" and op.value.get("hop") == "command"]
    for op in command_wire:
        if op.value.get("correlation_id") != f"corr-{op.value.get('entity_id')}":
            problems.append(f"command on the wire without its correlation id: {op.describe()[:200]}")
    if len(command_wire) < len(commands):
        problems.append(f"only {len(command_wire)} of {len(commands)} commands seen on the wire")
    command_ids = {c.event_id: c for c in commands}
    cipher = KmsEnvelopeCipher(s.aws.kms, kms_key) if encrypted else None
    if len(tap.messages) < len(commands):
        problems.append(f"tap saw {len(tap.messages)} events, expected {len(commands)}")
    for m in tap.messages:
        attrs = {k: v.get("StringValue") for k, v in (m.get("MessageAttributes") or {}).items()}
        entity = attrs.get("EntityId")
        if attrs.get("CorrelationId") != f"corr-{entity}":
            problems.append(f"event {attrs.get('EventId')} attribute CorrelationId={attrs.get('CorrelationId')}")
        body = m["Body"]
        if cipher is not None:
            if attrs.get("Encryption") is None:
                problems.append(f"event {attrs.get('EventId')} not encrypted on a KMS bus")
                continue
            body = cipher.open(body, message_id=attrs["EventId"], entity_id=entity or "",
                               message_type=attrs.get("EventType") or "", destinations={topo.topic})
        event = decode(body, registry)
        meta = event.metadata
        if meta.correlation_id != f"corr-{entity}":
            problems.append(f"event {meta.event_id} metadata correlationId={meta.correlation_id}")
        cause = command_ids.get(meta.causation_id or "")
        if cause is None or cause.entity_id != event.entity_id or cause.metadata.sequence_no != meta.sequence_no:
            problems.append(f"event {meta.event_id} causationId {meta.causation_id} is not its command")

    # replay: rebuild every order from the saga's command store, compare with the live entity + views
    saga_store = SqlStorage(registry, stores["saga"])
    bus = CommandBus(processor=Processor(saga_store, sagas=[OrderSaga()]))
    view_store = SqlStorage(registry, stores[VIEW_SERVICES[0]])
    views = [OrderView(), PaymentsView(), InventoryView()]
    for oid in by_order:
        replayed = bus.replay(oid)
        rebuilt = rebuild_views(views, replayed.events)
        live_views = {v: view_store.get_view(v, oid) for v in ("orders", "payments")}
        s.history.append(HARNESS, "info", "state", {"entity_id": oid, "entity": saga_store.get_entity("order", oid),
                                                   "views": live_views})
        s.history.append(HARNESS, "info", "replay", {"entity_id": oid, "entity": replayed.states.get("order"),
                                                    "views": {v: rebuilt[v].get(oid) for v in ("orders", "payments")}})
        if any(isinstance(e.payload, PaymentAuthorized | OrderCancelled) for e in replayed.events) and not \
                rebuilt["payments"].get(oid):
            problems.append(f"replay of {oid} rebuilt no payments row")
    saga_store.engine.dispose()
    view_store.engine.dispose()

    history = s.workers.merged_history()
    verdicts = judge(history, summary=summary, scenario=f"order lifecycle ({'kms' if encrypted else 'plaintext'})",
                     orders=ORDERS, faults=0, extra_anomalies=problems, require_encryption=encrypted,
                     notes=f"{len(commands)} commands, drain {result.seconds:.1f}s")
    replay = next(v for v in verdicts if v.checker == "replay_equivalence")
    assert replay.stats.get("compared", 0) == ORDERS, replay.stats
    print(json.dumps({"commands": len(commands), "tap_events": len(tap.messages), "drain_s": round(result.seconds, 1)}))


def test_saga_commands_lifecycle(scenario, registry, summary):
    """The saga-command flow (docs/decisions.md D33) in worker processes: the client sends only
    PlaceOrder and AuthorizePayment (or a CancelOrder before paying); the saga worker's order saga
    issues ReserveInventory with the payment's effect and its fulfilment aggregate (on the
    ``fulfilment`` subscription queue, same worker, same store) ConfirmOrder with its reaction to
    InventoryReserved. The checkers count every ``issue`` as acknowledged work (lost / duplicated
    / order); the scenario checks that each paid order issued one of each, numbered 3 and 4 after
    the client's 1 and 2, and ends CONFIRMED in the views service."""
    s = scenario
    topo = OrderTopology(s.uid, views=("views-a", "fulfilment"))
    stores = {name: sqlite_url(s.tmp / f"{name}.db") for name in ("saga", "views-a")}
    full = {**topo.config(), "domain": "orders-saga-commands"}
    resources = bootstrap(full, registry, s.aws)
    s.workers.spawn("saga", {**topo.config(subscribe=["fulfilment"], store=stores["saga"]),
                             "domain": "orders-saga-commands"})
    s.workers.spawn("views-a", topo.config(listen=False, subscribe=["views-a"], store=stores["views-a"]),
                    service="views-a")
    producer = Producer(full, registry, s.aws, resources, s.history)
    scripts = generate_orders(s.seed, ORDERS, cancel_ratio=0.25, saga_commands=True)
    commands = producer.send_scripts(scripts, correlation=lambda oid: f"corr-{oid}")
    producer.close()
    paid = [sc for sc in scripts if sc.final_status == "CONFIRMED"]
    # events: the client's and the two follow-ups' of each paid order; projected by views-a and by
    # the saga worker's fulfilment queue (same views), which also has the aggregate react once
    names = [c.name for c in commands] + ["ReserveInventory", "ConfirmOrder"] * len(paid)
    per_event = {"PlaceOrder": 1, "AuthorizePayment": 2, "ReserveInventory": 2, "ConfirmOrder": 1, "CancelOrder": 3}
    projections = 2 * sum(per_event[n] for n in names) + len(paid)
    result = drain(s.history, s.workers, s.aws,
                   [resources.queue_urls[topo.commands], *(resources.queue_urls[topo.view_queue(v)]
                                                           for v in topo.views)],
                   effects=len(names), projections=projections, timeout=90)
    s.workers.terminate_all()

    problems: list[str] = list(result.notes)
    history = s.workers.merged_history()
    issued: dict[tuple[str, str], set[tuple[str, int]]] = {}
    for op in history.ops:
        if op.f == "issue" and op.type == "ok":
            key = (str(op.value["entity_id"]), str(op.value["command_type"]))
            issued.setdefault(key, set()).add((str(op.value["command_id"]), int(op.value["seq"])))
    for sc in scripts:
        for kind, seq in (("ReserveInventory", 3), ("ConfirmOrder", 4)):
            got = issued.get((sc.order_id, kind), set())
            want = 1 if sc in paid else 0
            if len(got) != want or any(n != seq for _, n in got):
                problems.append(f"order {sc.order_id}: issued {kind} {sorted(got)}, want {want} at seq {seq}")
    store = SqlStorage(registry, stores["views-a"])
    view = store.list_view("orders")
    for sc in scripts:
        if (view.get(sc.order_id) or {}).get("status") != sc.final_status:
            problems.append(f"views-a: order {sc.order_id} is {view.get(sc.order_id)}, want {sc.final_status}")
    store.engine.dispose()
    saga_store = SqlStorage(registry, stores["saga"])
    for sc in paid:
        stored = [(c.name, c.metadata.sequence_no) for c in saga_store.load_commands(sc.order_id)]
        if stored != [("PlaceOrder", 1), ("AuthorizePayment", 2), ("ReserveInventory", 3), ("ConfirmOrder", 4)]:
            problems.append(f"order {sc.order_id}: command store {stored}")
    if saga_store.unsent_commands():
        problems.append(f"unsent follow-ups left: {saga_store.unsent_commands()}")
    saga_store.engine.dispose()
    judge(history, summary=summary, scenario="order lifecycle (saga commands)", orders=ORDERS, faults=0,
          extra_anomalies=problems, checkers=["total_queue", "per_entity_order", "exactly_once_effect", "dead_letter"],
          notes=f"{len(commands)} client commands, {2 * len(paid)} issued, drain {result.seconds:.1f}s")
    print(json.dumps({"client_commands": len(commands), "issued": 2 * len(paid), "paid_orders": len(paid),
                      "drain_s": round(result.seconds, 1)}))
