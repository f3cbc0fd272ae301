"""The :class:`Simulation`: one simulated bus, its timeline and its single steps."""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from typing import Any

from flowgate.harness.history import History
from flowgate.harness.sim import SimAws, VirtualClock
from flowgate.harness.sim.processes import ProcessClock, ProcessScheduler
from flowgate.harness.simulation import drain as ending
from flowgate.harness.simulation.config import SimConfig, SimResult
from flowgate.harness.simulation.nemesis import Nemesis, NemesisTap
from flowgate.harness.simulation.observer import Deliveries, ReadProbe, WireSampler
from flowgate.harness.simulation.outage import OutageNemesis
from flowgate.harness.simulation.poison import PoisonSender
from flowgate.harness.simulation.producers import Order, Producers
from flowgate.harness.simulation.randomness import SeededRandomness
from flowgate.harness.simulation.store import SimStorage
from flowgate.harness.simulation.workers import Wiring, Worker, WorkerPool
from flowgate.harness.workload import generate_orders
from flowgate.reference.bootstrap import Bootstrapper, Resources
from flowgate.reference.config import BusConfiguration
from flowgate.reference.domain.orders import ORDER_COMMANDS, ORDER_EVENTS, order_registry
from flowgate.reference.messages import Command
from flowgate.reference.stores import Storage
from flowgate.reference.worker import Runtime


class Simulation:
    """One simulated bus, single-threaded, and its timeline: built (AWS, queues, workers,
    producers), driven step by step (send, resend, poll, arm a fault, advance time, poison),
    then drained, snapshotted and judged (:meth:`finish`).

    Randomness: every choice of the run comes from ``self.rng`` (``random.Random(seed)``) -- the
    scheduler's, the nemesis's (:attr:`nemesis` draws from this same stream), the producers'
    and the envelope nonces (:attr:`randomness`, the ``flowgate.reference.hooks`` seam) -- and,
    interleaved, the choice of the next task to run from a second stream,
    ``self.procs.rng`` (``random.Random(f"{seed}/processes")``). The simulated AWS has its own
    seeded generator (:class:`flowgate.harness.sim.SimAws`) and the workload its own
    (:func:`flowgate.harness.workload.generate_orders`). The same seed and config give the same history
    byte for byte (``tests/sim/test_sim_determinism.py``, ``tests/simulation``).

    The collaborators, one job each: :class:`~flowgate.harness.simulation.workers.WorkerPool` (the
    workers, their polls), :class:`~flowgate.harness.simulation.producers.Producers` (the orders and the
    producers), :class:`~flowgate.harness.simulation.nemesis.Nemesis` (faults and their budget),
    :class:`~flowgate.harness.simulation.outage.OutageNemesis`,
    :class:`~flowgate.harness.simulation.poison.PoisonSender` and
    :class:`~flowgate.harness.simulation.observer.Deliveries` (what the workers' observers report)."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        #: the reference's randomness seam, seeded: draws from ``self.rng``
        self.randomness = SeededRandomness(self.rng)
        #: interleaved worker processes (``config.interleave``): their scheduler, its own RNG
        self.procs: ProcessScheduler | None = None
        if config.interleave:
            pclock = ProcessClock()
            self.procs = ProcessScheduler(pclock, random.Random(f"{config.seed}/processes"))
            pclock.scheduler = self.procs
            self.clock: VirtualClock = pclock
        else:
            self.clock = VirtualClock()
        self.history = History(clock=self.clock.now)
        self.deliveries = Deliveries()
        self.nemesis = Nemesis(config, self.rng, self.history, self.clock, self.deliveries)
        self.wire = WireSampler(self.history, config.wire_samples)
        tap = NemesisTap(self.nemesis, self.wire)
        self.aws = SimAws(seed=config.seed, clock=self.clock, tap=tap, reorder=not config.fifo)
        # the harness's clients reach AWS during a simulated outage; the workers' and producers'
        # (``self.clients``) do not
        self.sqs = self.aws.client("sqs")
        self.sns = self.aws.client("sns")
        self.kms = self.aws.client("kms")
        self.sts = self.aws.client("sts")
        for client in (self.sqs, self.sns, self.kms, self.sts):
            client.outage_exempt = True
        self.clients: dict[str, Any] = {svc: self.aws.client(svc) for svc in ("sqs", "sns", "kms", "sts")}
        suffix = ".fifo" if config.fifo else ""
        self.views_queue = f"order-views{suffix}"
        self.outages = OutageNemesis(
            config, self.history, self.clock, self.aws, self.views_queue, self.nemesis.count
        )
        self.ticks = 0
        self.drained: bool | None = None
        self.registry = order_registry()
        self.bus_config = (
            BusConfiguration(self.registry)
            .send(*ORDER_COMMANDS)
            .to_queue(config.command_queue)
            .raise_events(*ORDER_EVENTS)
            .to_topic(f"order-events{suffix}")
            .listen_to(config.command_queue)
            .subscribe(self.views_queue)
            .to_topics(f"order-events{suffix}")
            .with_options(
                visibility_timeout=config.visibility_timeout,
                wait_time_seconds=0,
                max_receive_count=config.max_receive_count,
                business_max_attempts=min(3, config.max_receive_count),
                business_failures_to_dlq=config.business_failures_to_dlq,
                heartbeat=config.heartbeat,
            )
        )
        self.read_probe = ReadProbe(self.history) if config.reads else None
        self.key_arn: str | None = None
        if config.encryption:
            self.key_arn = str(self.kms.create_key(Description="flowgate sim")["KeyMetadata"]["Arn"])
            self.bus_config.with_encryption(self.key_arn)
        self.resources: Resources = Bootstrapper(
            self.bus_config, sqs=self.sqs, sns=self.sns, sts=self.sts
        ).run()
        self.wiring = Wiring(
            config,
            self.bus_config,
            self.resources,
            self.clients,
            self.aws,
            self.clock,
            self.history,
            self.randomness,
        )
        self.shared: SimStorage = self._storage()
        self.pool = WorkerPool(
            self.wiring,
            shared=self.shared,
            new_storage=self._storage,
            nemesis=self.nemesis,
            deliveries=self.deliveries,
            procs=self.procs,
            read_probe=self.read_probe,
        )
        scripts = generate_orders(
            config.seed,
            config.orders,
            cancel_ratio=config.cancel_ratio,
            invalid_ratio=config.invalid_ratio,
            reads=config.reads,
            saga_commands=config.saga_commands,
        )
        self.producers = Producers(
            self.wiring,
            scripts,
            shared=self.shared,
            nemesis=self.nemesis,
            deliveries=self.deliveries,
            rng=self.rng,
        )
        self.poison = PoisonSender(
            config,
            rng=self.rng,
            randomness=self.randomness,
            history=self.history,
            clock=self.clock,
            sqs=self.sqs,
            kms=self.kms,
            key_arn=self.key_arn,
            resources=self.resources,
            views_queue=self.views_queue,
            producers=self.producers,
            deliveries=self.deliveries,
            wire=self.wire,
        )
        self.nemesis.attach(self)
        self.outages.attach(self, sum(len(s.steps) for s in scripts))
        self.wall_start = time.perf_counter()
        self.virtual_start = self.clock.now()

    def _storage(self) -> SimStorage:
        """An in-memory store that is down while the ``store`` outage is on."""
        return SimStorage(self.registry, lambda: self.outages.store_down)

    # ---------------------------------------------------------------- what the collaborators read
    @property
    def workers(self) -> list[Worker]:
        return self.pool.workers

    @property
    def orders(self) -> list[Order]:
        return self.producers.orders

    def worker_name(self, index: int) -> str:
        return self.pool.workers[index].name

    def worker_storage(self, index: int) -> Storage:
        return self.pool.workers[index].storage

    def runtimes(self) -> Sequence[tuple[int, str, Runtime]]:
        return [(w.index, w.name, w.runtime) for w in self.pool.workers]

    # ---------------------------------------------------------------- steps
    def poll(self, index: int, queue: str | None = None) -> int:
        """One poll of worker ``index`` on ``queue`` (default: the command queue); see
        :meth:`flowgate.harness.simulation.workers.WorkerPool.poll`."""
        return self.pool.poll(index, queue)

    def restart(self, index: int) -> None:
        """The nemesis's ``restart``: worker ``index`` gets a fresh runtime (state lost unless the
        store is shared)."""
        self.nemesis.record(
            "restart", {"worker": self.worker_name(index), "state_lost": self.config.idempotency != "shared"}
        )
        self.pool.replace(index)

    def arm(self, kind: str, point: str, worker: int | None = None) -> None:
        """Fire ``kind`` (crash/stall/expire_lease/redeliver) at the next hit of ``point``."""
        self.nemesis.arm(kind, point, worker)

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    def sendable(self) -> list[int]:
        return self.producers.sendable()

    def pick_sendable(self) -> int | None:
        return self.producers.pick_sendable()

    def send_next(self, order_index: int) -> Command | None:
        return self.producers.send_next(order_index)

    def resend(self, order_index: int, which: int | None = None) -> Command | None:
        return self.producers.resend(order_index, which)

    def duplicate_in_flight(self) -> bool:
        return self.nemesis.duplicate_in_flight()

    def send_poison(self, kind: str, *, expected_reason: bool = False) -> str | None:
        """One hostile message of ``kind``; see :meth:`flowgate.harness.simulation.poison.PoisonSender.send_poison`."""
        return self.poison.send_poison(kind, expected_reason=expected_reason)

    # ---------------------------------------------------------------- the end
    def queue_depth(self) -> dict[str, int]:
        return ending.queue_depth(self)

    def drain(self, *, max_idle_rounds: int | None = None) -> bool:
        """Faults off, every queue emptied; see :func:`flowgate.harness.simulation.drain.drain`."""
        self.drained = ending.drain(self, max_idle_rounds=max_idle_rounds)
        return self.drained

    def snapshot(self) -> None:
        ending.snapshot(self)

    def finish(self, mutant: str | None = None) -> SimResult:
        """Start dead producers, drain (unless done), snapshot, judge; then close."""
        self.producers.start_producers()
        if self.drained is None:
            self.drain()
        if self.config.snapshots:
            self.snapshot()
        result = ending.judge(self, mutant)
        self.close()
        return result

    def close(self) -> None:
        """Nothing to release any more (no patch is installed); kept for the callers' ``finally``."""
        return None


__all__ = ["Simulation"]
