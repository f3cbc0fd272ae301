"""The long chaos set (marker ``chaos`` only: ``nox -s chaos`` runs it, ``nox -s integration``
does not): a SIGKILL storm on real worker processes, long enough to reach the rare windows.

1,000 orders flow through two worker processes while a seeded nemesis thread SIGKILLs one of them
120 times at random moments (gaps drawn uniformly from 1.5-4.5 s) and restarts it at once. The
schedule -- every kill's offset from the start and its victim -- follows from the seed alone and
is printed and recorded in the history; what each kill interrupts is whatever the worker was doing
at that moment. The checkers judge the merged history as in every scenario (0 anomalies), and
:mod:`flowgate.harness.kill_phases` tells from it where each kill landed (start-up, idle long poll, before
the commit, mid-commit, before the publish, before the delete): the table is printed and attached.

Bounded: the drain gives up after 9 minutes, or, once the schedule and the workload are over,
after 60 s without a new effect or projection while some are missing (a mutant that loses
messages: the schedule still runs whole under it). The producer is paced by time alone.
Progress (orders sent and effected, kills) is printed every 15 s. Measured wall time and figures:
``docs/scenarios.md``.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from flowgate.fixtures.allure_support import attach_table, attach_text
from flowgate.fixtures.scenario import (
    OrderTopology,
    Producer,
    bootstrap,
    drain,
    judge,
    queue_depth,
    sqlite_url,
)
from flowgate.fixtures.workers import Workers
from flowgate.harness.history import History
from flowgate.harness.kill_phases import kill_phases
from flowgate.harness.workload import OrderScript, generate_orders

pytestmark = [pytest.mark.chaos]

#: ``FLOWGATE_LONG_ORDERS`` / ``FLOWGATE_LONG_KILLS`` shorten a trial run (the summary row shows
#: the counts used); ``nox -s chaos`` runs the defaults
ORDERS = int(os.environ.get("FLOWGATE_LONG_ORDERS", "1000"))
KILLS = int(os.environ.get("FLOWGATE_LONG_KILLS", "120"))
KILL_GAP_S = (1.5, 4.5)
WORKERS = ("w1", "w2")
#: orders handed to the producer at a time (chunks spread evenly over the kill schedule)
CHUNK_ORDERS = 20
DRAIN_TIMEOUT_S = 540.0
STALL_S = 60.0
PROGRESS_EVERY_S = 15.0


@dataclass(frozen=True)
class KillSchedule:
    """When (seconds after the start) and whom the nemesis SIGKILLs: a function of the seed."""

    seed: int
    at: tuple[float, ...]
    victims: tuple[str, ...]

    @classmethod
    def seeded(
        cls, seed: int, kills: int, gap: tuple[float, float], workers: tuple[str, ...]
    ) -> KillSchedule:
        rng = random.Random(seed)
        at, now = [], 0.0
        for _ in range(kills):
            now += rng.uniform(*gap)
            at.append(round(now, 3))
        return cls(seed, tuple(at), tuple(rng.choice(workers) for _ in range(kills)))


class Nemesis(threading.Thread):
    """Runs a :class:`KillSchedule`: SIGKILL the victim at each offset, restart it at once."""

    def __init__(self, schedule: KillSchedule, workers: Workers) -> None:
        super().__init__(name="nemesis", daemon=True)
        self.schedule, self.workers = schedule, workers
        self.stop = threading.Event()
        self.done = 0

    def run(self) -> None:
        start = time.monotonic()
        for at, victim in zip(self.schedule.at, self.schedule.victims, strict=True):
            if self.stop.wait(max(0.0, start + at - time.monotonic())):
                return
            with self.workers.lock:  # kill + restart: one step for the drain's supervisor check
                self.workers.kill(victim)
                self.workers.restart(victim)
            self.done += 1


class PacedProducer(threading.Thread):
    """Sends the order scripts ``CHUNK_ORDERS`` at a time, spread evenly over ``span_s`` seconds
    (the workers run about twice as fast unhindered: unpaced, the workload would be over long
    before the kill schedule). Time alone paces it, never the workers' progress: under a mutant
    that loses messages a backlog never drains, and the whole workload and schedule must still
    run."""

    def __init__(self, producer: Producer, scripts: list[OrderScript], span_s: float) -> None:
        super().__init__(name="producer", daemon=True)
        self.producer, self.scripts = producer, scripts
        self.every_s = span_s / max(1, -(-len(scripts) // CHUNK_ORDERS))
        self.sent_commands: dict[str, str] = {}  # command id -> order id
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        start = time.monotonic()
        try:
            for chunk, i in enumerate(range(0, len(self.scripts), CHUNK_ORDERS)):
                if self.stop.wait(max(0.0, start + chunk * self.every_s - time.monotonic())):
                    return
                for command in self.producer.send_scripts(self.scripts[i : i + CHUNK_ORDERS]):
                    self.sent_commands[command.event_id] = command.entity_id
        except BaseException as exc:  # reported by the test as a scenario anomaly
            self.error = exc


def _progress_printer(
    say: Callable[[str], None], producer: PacedProducer, nemesis: Nemesis, scripts: list[OrderScript]
) -> Callable[[set[str], set[str]], None]:
    """The drain's progress callback: prints a line every 15 s."""
    started = time.monotonic()
    last = [started]
    steps = {s.order_id: len(s.steps) for s in scripts}

    def progress(effected: set[str], projected: set[str]) -> None:
        now = time.monotonic()
        if now - last[0] < PROGRESS_EVERY_S:
            return
        last[0] = now
        per_order: dict[str, int] = {}
        for command_id, order_id in list(producer.sent_commands.items()):
            if command_id in effected:
                per_order[order_id] = per_order.get(order_id, 0) + 1
        complete = sum(1 for order_id, n in per_order.items() if n == steps[order_id])
        sent_orders = len(set(producer.sent_commands.values()))
        say(
            f"[chaos-long] {now - started:5.0f} s: orders sent {sent_orders}/{len(scripts)}, "
            f"orders effected {complete}, command effects {len(effected)}/{sum(steps.values())}, "
            f"projections {len(projected)}, kills {nemesis.done}/{len(nemesis.schedule.at)}"
        )

    return progress


def test_sigkill_storm_1000_orders(scenario, registry, summary, capsys):
    """1,000 orders, 120 seeded SIGKILLs + restarts of 2 worker processes (shared SQLite store,
    VT 4 s, heartbeat on): 0 anomalies, nothing redriven by SQS, the whole schedule run, and the
    kill-phase table from the history."""
    s = scenario
    wall_start = time.monotonic()

    def say(line: str) -> None:
        with capsys.disabled():
            print(line, flush=True)

    topo = OrderTopology(s.uid)
    # every kill costs each message the victim holds one receive (and a killed long poll may take
    # a batch with it): keep SQS's own redrive out of reach, so a redriven message is reported
    config = topo.config(store=sqlite_url(s.tmp / "shared.db"), visibility_timeout=4, max_receive_count=40)
    resources = bootstrap(config, registry, s.aws)
    schedule = KillSchedule.seeded(s.seed, KILLS, KILL_GAP_S, WORKERS)
    say(
        f"\n[chaos-long] seed {s.seed}: {ORDERS} orders, {KILLS} SIGKILLs over {schedule.at[-1]:.0f} s "
        f"(gaps {KILL_GAP_S[0]}-{KILL_GAP_S[1]} s, victims {'/'.join(WORKERS)}), "
        f"replay: pytest scenarios/test_chaos_long.py -p flowgate.fixtures.summary --chaos-seed {s.seed}"
    )
    s.history.nemesis(
        "schedule",
        {
            "seed": s.seed,
            "kills": KILLS,
            "gap_s": list(KILL_GAP_S),
            "at_s": list(schedule.at),
            "victims": list(schedule.victims),
        },
    )
    for name in WORKERS:
        s.workers.spawn(name, config)
    scripts = generate_orders(s.seed + 7, ORDERS, cancel_ratio=0.1)
    total_commands = sum(len(script.steps) for script in scripts)
    # the last orders go out at 85 % of the schedule: most kills find the workers busy
    producer = PacedProducer(
        Producer(config, registry, s.aws, resources, s.history), scripts, span_s=0.85 * schedule.at[-1]
    )
    nemesis = Nemesis(schedule, s.workers)
    urls = [resources.queue_urls[topo.commands], resources.queue_urls[topo.view_queue("views")]]
    producer.start()
    nemesis.start()
    try:
        result = drain(
            s.history,
            s.workers,
            s.aws,
            urls,
            effects=total_commands,
            timeout=DRAIN_TIMEOUT_S,
            settle=3,
            stall=STALL_S,
            interval=1.0,
            progress=_progress_printer(say, producer, nemesis, scripts),
            until=lambda ops: not nemesis.is_alive() and not producer.is_alive(),
        )
    finally:
        nemesis.stop.set()
        producer.stop.set()
        nemesis.join(timeout=30)
        producer.join(timeout=30)
        producer.producer.close()
    s.workers.terminate_all()
    history: History = s.workers.merged_history()
    landings = kill_phases(history.ops)
    table = landings.render()
    wall = time.monotonic() - wall_start
    say(f"[chaos-long] kill phases (seed {s.seed}):\n{table}")
    attach_table(table, "kill phases")
    attach_text(
        "\n".join(f"{k.time:.3f} {k.worker} {k.phase} held={dict(k.held)}" for k in landings.landings),
        "kills (time, incarnation, phase, held messages)",
    )
    problems = list(result.notes)
    if producer.error is not None:
        problems.append(f"producer failed: {producer.error!r}")
    if len(producer.sent_commands) < total_commands:
        problems.append(f"only {len(producer.sent_commands)} of {total_commands} commands were sent")
    if nemesis.done < KILLS:
        problems.append(f"only {nemesis.done} of {KILLS} scheduled SIGKILLs ran (the run proves less)")
    if landings.kills != nemesis.done:
        problems.append(f"{landings.kills} kills in the history, {nemesis.done} run by the nemesis")
    redriven = queue_depth(s.aws, resources.dlq_urls[topo.commands])
    if redriven:
        problems.append(f"{redriven} command(s) moved to the DLQ by SQS redrive (receive count exhausted)")
    phases = ", ".join(f"{phase.split(' (')[0]}: {n}" for phase, n in landings.by_phase().items())
    judge(
        history,
        summary=summary,
        scenario=f"chaos long: SIGKILL storm, {ORDERS} orders",
        orders=ORDERS,
        faults=nemesis.done,
        extra_anomalies=problems,
        notes=f"seed {s.seed}: {nemesis.done} SIGKILL + restart, {result.seconds:.0f} s drain, "
        f"{wall:.0f} s wall; phases {phases}",
    )
