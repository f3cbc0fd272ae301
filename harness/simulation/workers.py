"""The simulation's worker processes: how each is built, replaced and polled.

A worker is a full :class:`flowgate.reference.worker.Runtime` (a command listener and a views listener,
their caches and breakers). Serial (the default) the workers share the clients and, with
``idempotency=shared``, ONE store object (threads of one process), and a poll runs to its end.
Interleaved (``SimConfig.interleave``, :mod:`flowgate.harness.sim.processes`) each is a process with its
own clients and store client, every AWS/store call and fault point a yield point, its polls and
its listeners' heartbeats tasks of a scheduler with its own seeded RNG.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from flowgate.harness.history import History
from flowgate.harness.sim import SimAws, VirtualClock
from flowgate.harness.sim.processes import ProcessScheduler, Task, Yielding
from flowgate.harness.simulation.config import POLL_SLICE, SimConfig
from flowgate.harness.simulation.nemesis import Nemesis, WorkerFaults
from flowgate.harness.simulation.observer import Deliveries, ReadProbe, WorkerObserver
from flowgate.harness.simulation.store import SimStorage
from flowgate.reference.bootstrap import Resources
from flowgate.reference.config import BusConfiguration
from flowgate.reference.domain.orders import InventoryView, OrderView, PaymentsView, order_domain
from flowgate.reference.hooks import Randomness, WorkerCrash
from flowgate.reference.listener import SqsListener, _Flight, _Heartbeat
from flowgate.reference.stores import Storage
from flowgate.reference.worker import Runtime, build_runtime


@dataclass(frozen=True)
class Wiring:
    """What every runtime of a run (workers and producers) is built from."""

    config: SimConfig
    bus_config: BusConfiguration
    resources: Resources
    #: the workers' and producers' clients (cut by an outage; the harness's own are exempt)
    clients: Mapping[str, Any]
    aws: SimAws
    clock: VirtualClock
    history: History
    #: the seeded source of the envelope nonces (``flowgate.reference.hooks.Randomness``)
    randomness: Randomness

    @staticmethod
    def views() -> list[Any]:
        return [OrderView(), InventoryView(), PaymentsView()]


class SimHeartbeat(_Heartbeat):
    """The production heartbeat (:class:`flowgate.reference.listener._Heartbeat`: every VT/4 it calls
    ``_beat`` for each tracked flight, which extends visibility and lease past VT/2) as a
    background task of the worker's process instead of a thread: it sleeps VT/4 of virtual time
    between rounds and ends when nothing is tracked (a new ``track`` starts it again)."""

    def __init__(self, listener: SqsListener, procs: ProcessScheduler, name: str) -> None:
        super().__init__(listener)
        self._procs = procs
        self._name = name
        self.task: Task | None = None

    def track(self, flights: list[_Flight]) -> None:
        if not flights:
            return
        with self._lock:
            for f in flights:
                self._tracked[id(f)] = f
        if self.task is None or self.task.done:
            self.task = self._procs.spawn(self._name, self._run, background=True)

    def _run(self) -> None:
        period = max(0.05, self.listener.options.visibility_timeout / 4)
        while True:
            self._procs.sleep(period)
            with self._lock:
                flights = list(self._tracked.values())
            if not flights:
                return
            for flight in flights:
                if self.wanted(flight):
                    self._beat_one(flight)


@dataclass
class Worker:
    index: int
    name: str
    runtime: Runtime
    storage: Storage
    generation: int = 0

    def listener(self, queue: str) -> SqsListener:
        for listener in self.runtime.listeners:
            if listener.queue == queue:
                return listener
        raise KeyError(queue)


class WorkerPool:
    """The run's workers (``SimConfig.workers``), their poll tasks when interleaved."""

    def __init__(
        self,
        wiring: Wiring,
        *,
        shared: SimStorage,
        new_storage: Callable[[], SimStorage],
        nemesis: Nemesis,
        deliveries: Deliveries,
        procs: ProcessScheduler | None,
        read_probe: ReadProbe | None,
    ) -> None:
        self.wiring = wiring
        self.config = wiring.config
        self.shared = shared
        self._new_storage = new_storage
        self.nemesis = nemesis
        self.deliveries = deliveries
        self.procs = procs
        self.read_probe = read_probe
        #: the poll task in progress of each worker process (interleaved)
        self.poll_tasks: dict[int, Task] = {}
        self.workers = [self._new_worker(i) for i in range(self.config.workers)]

    def _new_worker(self, index: int, generation: int = 0) -> Worker:
        """Worker ``index``: a runtime with its own listeners (caches, breakers). Serial: the
        workers share the clients and, with ``idempotency=shared``, ONE store object (threads of
        one process). Interleaved: a process with its own clients and its own store client
        (:meth:`InMemoryStorage.connect` to the shared data, or a store of its own), every call
        of either a yield point, and the listener's heartbeat as a task of the process."""
        w = self.wiring
        procs = self.procs
        if self.config.idempotency != "shared":
            storage = self._new_storage()
        else:
            storage = self.shared.connect() if procs is not None else self.shared
        name = f"worker-{index}"
        clients: Mapping[str, Any] = w.clients
        store: Any = storage
        if procs is not None:
            clients = {svc: Yielding(w.aws.client(svc), procs) for svc in ("sqs", "sns", "kms", "sts")}
            store = Yielding(storage, procs)
        sagas, aggregates = order_domain(saga_commands=self.config.saga_commands)
        runtime = build_runtime(
            w.bus_config,
            sqs=clients["sqs"],
            sns=clients["sns"],
            sts=clients["sts"],
            kms=clients["kms"],
            storage=store,
            sagas=sagas,
            aggregates=aggregates,
            views=[*w.views(), *((self.read_probe,) if self.read_probe is not None else ())],
            clock=w.clock,
            faults=WorkerFaults(self.nemesis, index, procs.pause if procs is not None else None),
            observer=WorkerObserver(w.history, name, self.deliveries),
            resources=w.resources,
            randomness=w.randomness,
        )
        if procs is not None and runtime.cleaner is not None:
            # the cleanup thread is not one of the interleaved tasks: its sweeps (run_due, before
            # each poll) call the store directly, adding no yield point to the schedule
            runtime.cleaner.storage = storage
        if procs is not None and self.config.heartbeat:
            for listener in runtime.listeners:
                listener._heartbeat = SimHeartbeat(listener, procs, f"{name}/heartbeat/{listener.queue}")
        return Worker(index, name, runtime, storage, generation)

    def replace(self, index: int) -> None:
        """A fresh runtime for worker ``index`` (new listeners; new storage unless shared)."""
        old = self.workers[index]
        if self.procs is not None:  # the process is gone: its tasks with it
            task = self.poll_tasks.pop(index, None)
            if task is not None and task is not self.procs.current:
                self.procs.kill(task)
            for listener in old.runtime.listeners:
                beat = listener._heartbeat
                if isinstance(beat, SimHeartbeat) and beat.task is not None:
                    self.procs.kill(beat.task)
        self.workers[index] = self._new_worker(index, old.generation + 1)

    def poll(self, index: int, queue: str | None = None) -> int:
        """One ``poll_once`` of worker ``index`` on ``queue`` (default: the command queue).

        Interleaved (``config.interleave``): worker ``index``'s poll task (started now on
        ``queue`` if it has none in progress; a process polls one listener at a time) runs
        with every other runnable task, interleaved at their yield points by the process
        scheduler, for 1..``POLL_SLICE`` steps: until it ends (its count), sleeps (0: a slow
        handler or a stall, time must pass) or the slice is used up (1: still busy; it and the
        other tasks stay suspended where they are while the driver goes on and time passes)."""
        procs = self.procs
        if procs is None:
            return self._poll_now(index, queue)
        task = self.poll_tasks.get(index)
        if task is None or task.done:
            name = queue or self.config.command_queue
            task = procs.spawn(self.workers[index].name, lambda: self._poll_now(index, name))
            self.poll_tasks[index] = task
        procs.run(until=task, steps=procs.rng.randint(1, POLL_SLICE))
        if not task.done:
            return 0 if task.wake_at > self.wiring.clock.now() else 1  # sleeping: time must pass
        if self.poll_tasks.get(index) is task:
            del self.poll_tasks[index]
        if task.error is not None:
            raise task.error
        return int(task.result or 0)

    def _poll_now(self, index: int, queue: str | None = None) -> int:
        """:meth:`poll`, serially: one ``poll_once`` to its end.

        A :class:`WorkerCrash` kills the worker: it is replaced by a fresh runtime. Any other
        exception escaping ``poll_once`` is what the production run loop would log before polling
        on: it is recorded as a ``poll`` fail op of the worker (the ``outage`` checker's
        ``poll-escaped``) and the run goes on."""
        worker = self.workers[index]
        self.deliveries.new_batch(worker.name)
        name = queue or self.config.command_queue
        if worker.runtime.cleaner is not None:
            # the worker's cleanup thread, in virtual time: a sweep whenever one is due (the first
            # at the worker's first poll, then every idempotency_cleanup_interval)
            worker.runtime.cleaner.run_due()
        try:
            return worker.listener(name).poll_once()
        except WorkerCrash:
            self.replace(index)
            return 0
        except Exception as exc:
            self.wiring.history.append(
                worker.name, "fail", "poll", {"queue": name, "error": f"{type(exc).__name__}: {exc}"[:300]}
            )
            return 0


__all__ = ["SimHeartbeat", "Wiring", "Worker", "WorkerPool"]
