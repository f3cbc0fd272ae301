"""Standard (non-FIFO) route: at-least-once delivery made exactly-once in effect by the SQL
idempotency store, two worker PROCESSES sharing it (SQLite file; PostgreSQL variant marked
``postgres``). Every command is also injected a second time (standard queues do not dedup),
so each of those arrives twice and must be recognised as a duplicate."""

from __future__ import annotations

import random

import pytest

from flowgate.fixtures.scenario import OrderTopology, Producer, bootstrap, drain, judge, sqlite_url
from flowgate.harness.workload import generate_orders

pytestmark = pytest.mark.localstack


def _run(s, registry, summary, store, label):
    topo = OrderTopology(s.uid, fifo=False)
    config = topo.config(store=store, visibility_timeout=5)
    resources = bootstrap(config, registry, s.aws)
    s.workers.spawn("w1", config)
    s.workers.spawn("w2", config)
    producer = Producer(config, registry, s.aws, resources, s.history)
    # one command per order (PlaceOrder): a standard queue does not keep per-entity order
    orders = 40
    scripts = generate_orders(int(s.uid, 16) % 10**6, orders, lifecycle=False)
    commands = producer.send_scripts(scripts)
    rng = random.Random(s.seed)
    dupes = rng.sample(commands, k=orders // 2)
    for cmd in dupes:
        s.history.nemesis("duplicate_delivery", {"command_id": cmd.event_id, "queue": "standard"})
        producer.resend(cmd)
    producer.close()
    result = drain(s.history, s.workers, s.aws, [resources.queue_urls[topo.commands],
                                                 resources.queue_urls[topo.view_queue("views")]],
                   effects=len(commands), timeout=90, settle=3)
    s.workers.terminate_all()
    history = s.workers.merged_history()
    recognised = sum(1 for op in history.ops if op.f == "duplicate" and str(op.value.get("key", "")).startswith("command:"))
    problems = list(result.notes)
    if recognised < len(dupes):
        problems.append(f"{len(dupes)} commands sent twice, only {recognised} recognised as duplicates")
    judge(history, summary=summary, scenario=f"standard queue, 2 processes, {label} idempotency",
          orders=orders, faults=len(dupes), extra_anomalies=problems,
          notes=f"{len(dupes)} duplicates injected, {recognised} recognised")


def test_standard_queue_sqlite(scenario, registry, summary):
    _run(scenario, registry, summary, sqlite_url(scenario.tmp / "shared.db"), "SQLite")


@pytest.mark.postgres
def test_standard_queue_postgres(scenario, registry, summary, postgres_url):
    _run(scenario, registry, summary, postgres_url, "PostgreSQL")
