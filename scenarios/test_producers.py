"""Two producer PROCESSES on one SQL store publish interleaved commands to the same entities; one
is killed while its commands are in flight and started again (docs/decisions.md D25).

Producer ``p0`` publishes the even steps of every order, ``p1`` the odd ones (each step after its
predecessor: ``flowgate.fixtures.producer``), both leaving the numbering to the bus, which allocates every
entity's sequence numbers in the shared SQLite store. ``p1`` SIGKILLs itself after its 4th publish;
only then the worker starts, so the commands both producers sent are still in flight when ``p1``
is started again and goes on. Judged from the merged history: every command takes effect once
(``exactly_once_effect``, ``total_queue``: nothing lost), in sequence-number order per entity
(``per_entity_order``), none business-dead-lettered for a taken number (``dead_letter``); and
each entity's numbers are exactly 1..n.
"""

from __future__ import annotations

import time

import pytest

from flowgate.fixtures.scenario import OrderTopology, bootstrap, drain, judge, scaled, sqlite_url
from flowgate.fixtures.workers import Workers
from flowgate.harness.workload import generate_orders

pytestmark = pytest.mark.localstack

PRODUCER = "flowgate.fixtures.producer"
DIE_AFTER = 4


def _wait_exit(workers: Workers, name: str, timeout: float) -> int | None:
    worker = workers.workers[name]
    assert worker.process is not None
    deadline = time.monotonic() + timeout
    while worker.process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    return worker.process.poll()


def test_two_producer_processes_one_restarted(scenario, registry, summary):
    s = scenario
    orders = scaled(10, 30)
    seed = s.seed + 19
    topo = OrderTopology(s.uid)
    store = sqlite_url(s.tmp / "shared.db")
    config = topo.config(store=store)
    resources = bootstrap(config, registry, s.aws)
    markers = s.tmp / "markers"
    markers.mkdir()
    common = ["--seed", str(seed), "--orders", str(orders), "--producers", "2", "--markers", str(markers)]
    s.workers.spawn("p0", config, module=PRODUCER, args=[*common, "--index", "0"])
    s.workers.spawn("p1", config, module=PRODUCER, args=[*common, "--index", "1"],
                    env={"FLOWGATE_PRODUCER_DIE_AFTER": str(DIE_AFTER)})
    problems: list[str] = []
    code = _wait_exit(s.workers, "p1", 60)
    if code is None or code >= 0:
        problems.append(f"p1 did not kill itself after {DIE_AFTER} publishes (exit {code})")
    s.history.nemesis("kill", {"worker": "p1", "signal": "SIGKILL", "reason": f"after its {DIE_AFTER}th publish"})
    s.workers.spawn("w1", config)  # the consumer starts now: what the producers sent is in flight
    s.workers.workers["p1"].env.pop("FLOWGATE_PRODUCER_DIE_AFTER")
    s.workers.restart("p1")
    for name in ("p0", "p1"):
        code = _wait_exit(s.workers, name, 60)
        s.workers.workers[name].stopped = True  # done publishing: not a crash
        if code != 0:
            problems.append(f"producer {name} exited with {code}")
    scripts = generate_orders(seed, orders, cancel_ratio=0.15)
    total = sum(len(sc.steps) for sc in scripts)
    result = drain(s.history, s.workers, s.aws,
                   [resources.queue_urls[q] for q in (topo.commands, topo.view_queue("views"))],
                   effects=total, projections=None, timeout=60)
    s.workers.terminate_all()
    problems += list(result.notes)
    history = s.workers.merged_history()
    seqs: dict[str, set[int]] = {}
    for op in history.ops:
        if op.f == "send" and op.type == "ok" and op.process.startswith("p"):
            seqs.setdefault(str(op.value["entity_id"]), set()).add(int(op.value["seq"]))
    sizes = {sc.order_id: len(sc.steps) for sc in scripts}
    wrong = {e: sorted(n) for e, n in seqs.items() if n != set(range(1, sizes.get(e, 0) + 1))}
    if wrong or set(seqs) != set(sizes):
        problems.append(f"sequence numbers per entity are not 1..n: {dict(list(wrong.items())[:3])}, "
                        f"{len(set(sizes) - set(seqs))} entities without sends")
    judge(history, summary=summary, scenario="two producer processes, one restarted (FIFO, SQLite)",
          orders=orders, faults=1, extra_anomalies=problems,
          notes=f"{total} commands in {result.seconds:.0f}s drain")
