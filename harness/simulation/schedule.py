"""The seeded scheduler that drives a :class:`~flowgate.harness.simulation.core.Simulation` through its
workload (:func:`schedule`), and :func:`run_simulation`: one seeded run, judged."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from flowgate.harness.simulation.config import SimConfig, SimResult
from flowgate.harness.simulation.core import Simulation


def schedule(sim: Simulation) -> None:
    """Drive ``sim`` to the end of its workload with the seeded scheduler: each tick the outage
    nemesis may start or end an outage (the producers hold their sends while one is on), due
    poison and resends go out, the nemesis may restart a worker, then either the next command of
    a random sendable order is sent (p 0.45) or a random worker polls a random queue; idle polls
    let virtual time pass to the next visibility deadline or resend. Every draw is from
    ``sim.rng``, the run's main stream."""
    cfg = sim.config
    rng = sim.rng
    plan = cfg.faults
    total = sum(len(o.script.steps) for o in sim.orders)
    poison_at = sorted((rng.randrange(total + 1), kind) for kind in plan.poison)
    resends: list[tuple[float, int, int]] = []  # (due virtual time, order, command index)
    sent = 0
    idle = 0
    queues = (cfg.command_queue, sim.views_queue)
    max_ticks = 60 * total + 500 + len(plan.outages) * (plan.outage_length * 8 * cfg.workers + 200)
    while sim.ticks < max_ticks:
        sim.ticks += 1
        down = sim.outages.step(sent)  # while a dependency is down the producers hold their sends
        while not down and poison_at and poison_at[0][0] <= sent:
            sim.send_poison(poison_at.pop(0)[1])
        now = sim.clock.now()
        due = [] if down else [r for r in resends if r[0] <= now]
        for r in due:
            resends.remove(r)
            sim.resend(r[1], r[2])
        victim = sim.nemesis.restart_victim()
        if victim is not None:
            sim.restart(victim)
        n = None if down else sim.pick_sendable()
        if (
            n is None
            and not poison_at
            and not resends
            and not sim.producers.active
            and not sim.outages.pending
        ):
            break
        if n is not None and rng.random() < 0.45:
            sim.send_next(n)
            sent += 1
            idle = 0
            delay = sim.nemesis.resend_delay()
            if delay is not None:
                resends.append((sim.clock.now() + delay, n, len(sim.orders[n].commands) - 1))
        else:
            got = sim.poll(rng.randrange(cfg.workers), queues[0] if rng.random() < 0.6 else queues[1])
            idle = 0 if got else idle + 1
            if idle >= 2 * cfg.workers:
                # nothing visible: let time pass to the next visibility deadline / resend
                sim.clock.advance(
                    cfg.visibility_timeout / 2
                    if not resends or down  # resends are held during an outage
                    else max(0.0, min(r[0] for r in resends) - sim.clock.now()) + 0.001
                )
                idle = 0
        sim.clock.advance(rng.random() * 0.2)
    # out of ticks with an outage still on (or to come): bring the dependency back first, the
    # harness's leftover sends need it (a KMS key disabled cannot seal)
    sim.outages.cancel()
    for kind in [k for _, k in poison_at]:
        sim.send_poison(kind)
    for due_at, n, which in sorted(resends):
        sim.clock.advance_to(due_at)
        sim.resend(n, which)


@contextmanager
def _maybe_mutant(name: str | None) -> Iterator[None]:
    if name is None:
        yield
        return
    from flowgate.harness.mutants import apply_mutant

    with apply_mutant(name):
        yield


@contextmanager
def quiet_reference() -> Iterator[None]:
    """The reference logs every expected redelivery at WARNING; a simulation injects thousands."""
    logger = logging.getLogger("flowgate.reference")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def run_simulation(config: SimConfig, *, mutant: str | None = None) -> SimResult:
    """Run one seeded simulation and judge its history (see the module docstring)."""
    with quiet_reference(), _maybe_mutant(mutant):
        sim = Simulation(config)
        try:
            schedule(sim)
            return sim.finish(mutant)
        finally:
            sim.close()


__all__ = ["quiet_reference", "run_simulation", "schedule"]
