"""Many entities concurrently: hundreds of orders, three worker PROCESSES on one FIFO route.

All three workers consume the command queue and the view queue and share one SQL idempotency /
state store (SQLite file). FIFO order per entity is judged from the merged history
(``per_entity_order``), loss and duplicates by ``total_queue`` / ``exactly_once_effect``; the
order view must show every order's final status, and the work must actually be spread over
the processes (each one applied some effects).

Each order's commands are sent back to back, so one receive batch often holds several messages
of one FIFO group (what a worker must then process strictly in order), and the per-SKU
inventory view rows are shared by many orders projected by three processes at once (what the
conditional row writes must protect): the reserved quantity of every SKU must equal what the
orders' final states imply.
"""

from __future__ import annotations

import pytest

from flowgate.fixtures.scenario import OrderTopology, Producer, bootstrap, drain, judge, scaled, sqlite_url
from flowgate.harness.workload import generate_orders
from flowgate.reference.sql import SqlStorage

pytestmark = pytest.mark.localstack

WORKERS = 3


def test_many_entities_three_processes(scenario, registry, summary):
    s = scenario
    orders = scaled(200, 400)
    topo = OrderTopology(s.uid)
    store = sqlite_url(s.tmp / "shared.db")
    config = topo.config(store=store, max_concurrent_calls=10)
    resources = bootstrap(config, registry, s.aws)
    for n in range(1, WORKERS + 1):
        s.workers.spawn(f"w{n}", config)
    producer = Producer(config, registry, s.aws, resources, s.history)
    scripts = generate_orders(s.seed + 1, orders, cancel_ratio=0.15)
    commands = producer.send_scripts(scripts, interleave=False)
    producer.close()
    result = drain(s.history, s.workers, s.aws, [resources.queue_urls[q] for q in (topo.commands,
                                                                                   topo.view_queue("views"))],
                   effects=len(commands), projections=None, timeout=240)
    s.workers.terminate_all()
    problems = list(result.notes)
    view = SqlStorage(registry, store).list_view("orders")
    wrong = [sc.order_id for sc in scripts if (view.get(sc.order_id) or {}).get("status") != sc.final_status]
    if wrong:
        problems.append(f"{len(wrong)} orders with a wrong view status, e.g. {wrong[:3]}")
    expected_reserved: dict[str, int] = {}
    for sc in scripts:
        if sc.final_status in ("RESERVED", "CONFIRMED"):
            expected_reserved[sc.sku] = expected_reserved.get(sc.sku, 0) + sc.quantity
    inventory = SqlStorage(registry, store).list_view("inventory")
    off = {sku: (int(row.get("reserved", 0)), expected_reserved.get(sku, 0)) for sku, row in inventory.items()
           if int(row.get("reserved", 0)) != expected_reserved.get(sku, 0)}
    missing = sorted(set(expected_reserved) - set(inventory))
    if off or missing:
        problems.append(f"inventory view lost updates: (live, expected) per SKU {dict(list(off.items())[:3])}, "
                        f"{len(off)} SKUs off, {len(missing)} missing")
    history = s.workers.merged_history()
    per_process = {}
    for op in history.ops:
        if op.f == "effect" and op.type == "ok":
            per_process[op.process.split("#")[0]] = per_process.get(op.process.split("#")[0], 0) + 1
    if len(per_process) < WORKERS:
        problems.append(f"effects not spread over {WORKERS} processes: {per_process}")
    judge(history, summary=summary, scenario=f"{orders} entities, {WORKERS} worker processes (FIFO)",
          orders=orders, extra_anomalies=problems,
          notes=f"{len(commands)} commands in {result.seconds:.0f}s, per process {per_process}")
