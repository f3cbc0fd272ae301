"""Deterministic simulation of the reference bus on the simulated AWS (``flowgate sim`` / ``replay``).

One run = the order domain (``OrderSaga`` + order/inventory/payments views) on
``orders.fifo`` (or standard ``orders``), events on ``order-events[.fifo]`` fanned out to
``order-views[.fifo]``, N workers (each a full :class:`reference.worker.Runtime` with a command
listener and a views listener), producers sending scripted order lifecycles, and a nemesis that
injects faults at the listener's named fault points. Everything is driven by ONE
``random.Random(seed)`` and a :class:`~harness.sim.VirtualClock`: the same seed and config give
the same history byte for byte (``tests/simulation/test_determinism.py``).

The run records a :class:`~harness.history.History` (worker/producer observations, nemesis
faults recorded *before* they act, harness ``poison``/``wire``/``drain``/``state``/``replay``
ops) and judges it with :func:`harness.checkers.check_all`.

Outages (``--faults outage=...``, :mod:`harness.outages`): the nemesis takes a dependency of the
workers down for ``outage_length`` visibility timeouts (``outage`` invoke/ok ops). Meanwhile the
producers hold their sends (a client outside the outage would retry; the run is about the
workers), the workers keep being polled and time passes; the harness's own SQS/KMS clients are
exempt from cut endpoints.

Worker processes (``--interleave``, ``SimConfig.interleave``, :mod:`harness.sim.processes`):
each worker is a process with its own clients, runtime and store client, and its polls are tasks
interleaved at every AWS call, store call and handler step by a scheduler with its own seeded
RNG; a ``slow_handler`` sleeps past the visibility timeout while the others run, and the
listener's heartbeat runs as a task of its process (``docs/simulator.md``).

:class:`Simulation` exposes the single steps (send, resend, poll, arm a fault, advance time,
poison, drain, finish) so a hypothesis state machine can drive it rule by rule;
:func:`run_simulation` drives it with the seeded scheduler.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import shlex
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

from harness import hostile
from harness.checkers import Verdict, check_all, render_table
from harness.checkers.reads import read_op_value
from harness.faults import STALL_POINTS, FaultPlan, parse_faults
from harness.history import HARNESS, NEMESIS, History, HistoryObserver
from harness.outages import DEPENDENCY, SwitchableStorage
from harness.sim import SimAws, SimTap, VirtualClock
from harness.sim.processes import ProcessClock, ProcessScheduler, Task, Yielding
from harness.workload import OrderScript, generate_orders
from reference.bootstrap import Bootstrapper, Resources
from reference.bus import CommandBus, rebuild_views
from reference.config import BusConfiguration
from reference.domain.orders import (
    ORDER_COMMANDS,
    ORDER_EVENTS,
    InventoryView,
    OrderState,
    OrderView,
    PaymentsView,
    PlaceOrder,
    order_domain,
    order_registry,
)
from reference.hooks import PRODUCER_FAULT_POINTS, WorkerCrash
from reference.idempotency import command_key, event_key
from reference.listener import SqsListener, _Flight, _Heartbeat
from reference.messages import Command, Event, Payload, new_command, payload_to_dict
from reference.stores import InMemoryStorage, State, Storage
from reference.worker import Runtime, build_runtime

IDEMPOTENCY_MODES = ("shared", "per-worker")
#: interleaved: the most scheduler steps one ``Simulation.poll`` call runs (drawn 1..this); a
#: poll of a few messages is some 10-100 steps, so polls stay suspended mid-way and overlap
POLL_SLICE = 48


@dataclass(frozen=True)
class SimConfig:
    """Everything that determines a run (with the seed)."""

    seed: int = 0
    orders: int = 10
    workers: int = 2
    producers: int = 1
    #: the producers' CommandBus numbers the commands (the workload publishes them with sequence 0)
    #: and each send goes to a random one of the ``producers``: several producers per entity
    #: sharing the store (docs/decisions.md D25); otherwise the workload numbers them itself and
    #: each order has one producer
    bus_numbers: bool = False
    fifo: bool = True
    encryption: bool = False
    idempotency: str = "shared"
    visibility_timeout: int = 30
    max_receive_count: int = 3
    faults: FaultPlan = field(default_factory=FaultPlan)
    cancel_ratio: float = 0.1
    invalid_ratio: float = 0.0
    wire_samples: int = 40
    snapshots: bool = True
    #: business failures are also forwarded to the SQS DLQ (``BusOptions.business_failures_to_dlq``,
    #: as the gate's reference adapter runs): what a DLQ replay can move back
    business_failures_to_dlq: bool = False
    #: worker processes interleaved at their yield points (``harness.sim.processes``; each its own
    #: clients, listeners, caches, breakers and store client) instead of one poll after another
    interleave: bool = False
    #: ``BusOptions.heartbeat``: with ``interleave`` also the heartbeat task of each listener
    heartbeat: bool = True
    #: contract v1.3 reads: each order's script gets ``GetOrder`` reads (one after a seeded write,
    #: one after its last step: :func:`harness.workload.generate_orders`), every ``OrderState``
    #: answer the views listeners receive becomes a ``read`` op (:class:`_ReadProbe`) and
    #: ``read_state`` judges them. Off: the workload, and so every seed's history, is unchanged
    reads: bool = False
    #: the saga-command flow (docs/decisions.md D33): the order saga issues ReserveInventory, the
    #: fulfilment aggregate ConfirmOrder (``order_domain(saga_commands=True)``, the workload's
    #: ``saga_commands``); their ``issue`` ops are acknowledged work for the checkers
    saga_commands: bool = False

    def __post_init__(self) -> None:
        if self.idempotency not in IDEMPOTENCY_MODES:
            raise ValueError(f"idempotency must be one of {IDEMPOTENCY_MODES}")
        if self.saga_commands and (self.reads or self.idempotency != "shared"):
            raise ValueError("saga_commands needs idempotency=shared (one store numbers) and no reads")
        if self.workers < 1 or self.producers < 1 or self.orders < 0:
            raise ValueError("workers and producers must be >= 1, orders >= 0")

    @property
    def command_queue(self) -> str:
        return "orders.fifo" if self.fifo else "orders"

    def cli_args(self) -> str:
        """The options that rebuild this config on the command line."""
        d = SimConfig()
        parts = [f"--orders {self.orders}", f"--workers {self.workers}"]
        if self.producers != d.producers:
            parts.append(f"--producers {self.producers}")
        if self.bus_numbers:
            parts.append("--bus-numbers")
        if not self.fifo:
            parts.append("--standard")
        if self.encryption:
            parts.append("--encryption")
        if self.idempotency != d.idempotency:
            parts.append(f"--idempotency {self.idempotency}")
        if self.visibility_timeout != d.visibility_timeout:
            parts.append(f"--visibility-timeout {self.visibility_timeout}")
        if self.max_receive_count != d.max_receive_count:
            parts.append(f"--max-receive-count {self.max_receive_count}")
        if self.cancel_ratio != d.cancel_ratio:
            parts.append(f"--cancel-ratio {self.cancel_ratio:g}")
        if self.invalid_ratio != d.invalid_ratio:
            parts.append(f"--invalid-ratio {self.invalid_ratio:g}")
        if self.faults.active:
            parts.append(f"--faults {shlex.quote(self.faults.to_arg())}")
        if self.interleave:
            parts.append("--interleave")
        if not self.heartbeat:
            parts.append("--no-heartbeat")
        if self.reads:
            parts.append("--reads")
        if self.saga_commands:
            parts.append("--saga-commands")
        return " ".join(parts)

    def replay_command(self, mutant: str | None = None) -> str:
        tail = f" --mutant {mutant}" if mutant else ""
        return f"flowgate replay {self.seed} {self.cli_args()}{tail}"


@dataclass
class SimResult:
    history: History
    verdicts: list[Verdict]
    stats: dict[str, Any]
    seed: int
    config: SimConfig
    mutant: str | None = None

    @property
    def valid(self) -> bool:
        return all(v.valid for v in self.verdicts)

    def anomaly_kinds(self) -> list[str]:
        return sorted({a.kind for v in self.verdicts for a in v.anomalies})

    def replay_command(self) -> str:
        return self.config.replay_command(self.mutant)

    def summary(self) -> str:
        """Seed, replay command and the first anomalies: what a failing property prints."""
        lines = [
            f"seed {self.seed}: {'valid' if self.valid else 'INVALID'} "
            f"(anomalies: {', '.join(self.anomaly_kinds()) or 'none'})",
            f"replay: {self.replay_command()}",
        ]
        for v in self.verdicts:
            for a in v.anomalies[:2]:
                lines.append(f"  {v.checker}: {str(a)[:300]}")
        return "\n".join(lines)


# -------------------------------------------------------------------------------- plumbing
class _DetOs:
    """Stands in for ``os`` inside :mod:`reference.envelope` so GCM nonces come from the seeded RNG."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    def urandom(self, n: int) -> bytes:
        return self._rng.randbytes(n)


class _ProducerObserver(HistoryObserver):
    """Adds ``expect_business_failure`` to the sends of commands the workload means to fail."""

    def __init__(self, history: History, process: str, expected_failures: set[str]) -> None:
        super().__init__(history, process)
        self.expected = expected_failures

    def observe(self, f: str, kind: str, value: Mapping[str, Any]) -> None:
        if f == "send" and value.get("command_id") in self.expected:
            value = {**value, "expect_business_failure": True}
        super().observe(f, kind, value)


class _WorkerObserver(HistoryObserver):
    """Records worker ops and tells the simulation which commands are done (for standard queues)."""

    def __init__(self, sim: Simulation, process: str) -> None:
        super().__init__(sim.history, process)
        self.sim = sim

    def observe(self, f: str, kind: str, value: Mapping[str, Any]) -> None:
        super().observe(f, kind, value)
        if f == "receive":
            message_id = str(value.get("message_id"))
            self.sim.last_count[message_id] = int(value.get("receive_count", 1))
            self.sim.batches.setdefault(self.process, []).append(message_id)
        if kind == "ok" and (
            f in ("effect", "business_dead_letter") or (f == "duplicate" and "command_id" in value)
        ):
            # a command's duplicate: its first commit is in the store (its ok may be missing, D20)
            self.sim.done_commands.add(str(value.get("command_id")))


class _ProducerFaults:
    """The ``producer_restart`` fault at the producer's points: the producer dies there."""

    def __init__(self, sim: Simulation, index: int) -> None:
        self.sim = sim
        self.index = index

    def hit(self, point: str, context: Mapping[str, Any]) -> None:
        if self.sim.producer_fault == (self.index, point):
            raise WorkerCrash(f"producer {self.index} killed at {point}")


class _Tap(SimTap):
    def __init__(self, sim: Simulation) -> None:
        self.sim = sim

    def duplicate_delivery(self, queue_url: str, message_id: str) -> bool:
        sim = self.sim
        p = sim.config.faults.duplicate
        if (
            p <= 0
            or not sim.faults_on
            or sim.budget <= 0
            or not sim.may_harm([message_id])
            or sim.rng.random() >= p
        ):
            return False
        sim.budget -= 1
        sim.history.nemesis("duplicate_delivery", {"queue": _short(queue_url), "message_id": message_id})
        sim.fault_counts["duplicate_delivery"] += 1
        return True

    def delete_delay(self, queue_url: str, message_id: str) -> float:
        sim = self.sim
        p = sim.config.faults.delay_delete
        if (
            p <= 0
            or not sim.faults_on
            or sim.budget <= 0
            or not sim.may_harm([message_id])
            or sim.rng.random() >= p
        ):
            return 0.0
        sim.budget -= 1
        delay = float(sim.config.visibility_timeout + 1)
        sim.history.nemesis(
            "delay_delete", {"queue": _short(queue_url), "message_id": message_id, "seconds": delay}
        )
        sim.fault_counts["delay_delete"] += 1
        return delay

    def after_call(
        self,
        service: str,
        operation: str,
        params: Mapping[str, Any],
        response: Mapping[str, Any] | None,
        error: Any,
    ) -> None:
        sim = self.sim
        if error is not None or sim.sending_poison or sim.wire_left <= 0:
            return
        if operation == "SendMessage":
            entries: Sequence[Mapping[str, Any]] = [params]
            body_key = "MessageBody"
        elif operation == "SendMessageBatch":
            entries, body_key = params.get("Entries", []), "MessageBody"
        elif operation == "Publish":
            entries, body_key = [params], "Message"
        elif operation == "PublishBatch":
            entries, body_key = params.get("PublishBatchRequestEntries", []), "Message"
        else:
            return
        for entry in entries:
            if sim.wire_left <= 0:
                return
            attrs = {k: v.get("StringValue") for k, v in (entry.get("MessageAttributes") or {}).items()}
            if "DeadLetterReason" in attrs:
                continue  # a DLQ forward is a verbatim copy of a received (possibly hostile) message
            markers = [
                m for m in (attrs.get("EntityId"), attrs.get("CommandType") or attrs.get("EventType")) if m
            ]
            body = str(entry.get(body_key, ""))
            sim.wire_left -= 1
            sim.history.append(
                HARNESS,
                "info",
                "wire",
                {
                    "service": service,
                    "operation": operation,
                    "body": body[:2000],
                    "encrypted": "Encryption" in attrs,
                    "plaintext_markers": markers,
                },
            )


def _short(queue_url: str) -> str:
    return queue_url.rsplit("/", 1)[-1]


class _WorkerFaults:
    """The nemesis at one worker's fault points (a :class:`reference.hooks.Faults`)."""

    def __init__(self, sim: Simulation, index: int) -> None:
        self.sim = sim
        self.index = index

    def hit(self, point: str, context: Mapping[str, Any]) -> None:
        sim = self.sim
        if sim.procs is not None:
            sim.procs.pause()  # a handler step: another process may run now
        if not sim.faults_on:
            return
        on_commands = context.get("queue") == sim.config.command_queue
        decoded = "message_type" in context
        for n, (worker, kind, at) in enumerate(sim.armed):
            if (
                at == point
                and worker in (None, self.index)
                and (on_commands or worker is not None)
                and (kind == "crash" or (decoded and sim.depth == 0))
            ):
                del sim.armed[n]
                self._fire(kind, point, context)
                return
        plan = sim.config.faults
        if sim.budget <= 0 or not sim.may_harm(sim.batches.get(sim.workers[self.index].name, ())):
            return
        if plan.crash > 0 and point in plan.crash_points and sim.rng.random() < plan.crash:
            sim.budget -= 1
            self._fire("crash", point, context)
        if (
            plan.slow_handler > 0
            and point == "mid_handler"
            and sim.depth == 0
            and "message_type" in context
            and sim.rng.random() < plan.slow_handler
        ):
            sim.budget -= 1
            self._fire("slow_handler", point, context)
            return
        if point in STALL_POINTS and sim.depth == 0 and "message_type" in context:
            total = plan.stall + plan.expire_lease + plan.redeliver
            if total > 0:
                r = sim.rng.random()
                if r < plan.stall:
                    kind = "stall"
                elif r < plan.stall + plan.expire_lease:
                    kind = "expire_lease"
                elif r < total:
                    kind = "redeliver"
                else:
                    return
                sim.budget -= 1
                self._fire(kind, point, context)

    def _fire(self, kind: str, point: str, context: Mapping[str, Any]) -> None:
        sim = self.sim
        value = {
            "worker": sim.workers[self.index].name,
            "point": point,
            **{
                k: context[k]
                for k in ("queue", "message_id", "entity_id", "seq", "message_type", "view")
                if k in context
            },
        }
        if kind == "slow_handler":
            # the handler runs 1.2..3 VT: past the visibility timeout and the lease unless a
            # heartbeat extends them (interleaved: the process sleeps, the others run meanwhile)
            value["seconds"] = round(sim.config.visibility_timeout * sim.rng.uniform(1.2, 3.0), 3)
        sim.history.nemesis(kind, value)
        sim.fault_counts[kind] += 1
        queue = str(context.get("queue"))
        url = sim.resources.queue_urls[queue]
        if kind == "crash":
            raise WorkerCrash(point)
        # inside an interleaved process the clock's advance is that process's sleep
        if kind == "stall":
            sim.clock.advance(sim.config.visibility_timeout + 1)
        elif kind == "slow_handler":
            sim.clock.advance(float(value["seconds"]))
        elif kind == "expire_lease":
            storage = sim.workers[self.index].storage
            key = (
                event_key(str(context["event_id"]), str(context["view"]))
                if "view" in context
                else command_key(str(context["event_id"]))
            )
            if isinstance(storage, InMemoryStorage):
                record = storage._m.records.get(key)  # the nemesis reaches into the store on purpose
                if record is not None:
                    record.lease_until = min(record.lease_until, sim.clock.now())
            if sim.config.fifo or queue != sim.config.command_queue:
                sim.aws.expire_visibility(url, str(context["message_id"]))
            if not _is_fifo(queue):
                sim.aws.inject_duplicate(url, str(context["message_id"]))
        elif kind == "redeliver":
            sim.aws.expire_visibility(url, str(context["message_id"]))
        sim.nested_poll(self.index, queue)


def _is_fifo(name: str) -> bool:
    return name.endswith(".fifo")


class _ReadProbe:
    """Where the simulation observes the answers to reads (``SimConfig.reads``; the counterpart of
    the gate's probe queue): a view of every worker's views listener that projects ``OrderState``
    only. The first time it sees an answer's event id (an event re-projected after a crash, a
    re-published one, a second worker's copy: the same id, one op) it records a ``read`` op with
    the value the gate's probe records (:func:`harness.checkers.reads.read_op_value`), so
    ``read_state`` judges both alike. Its row (entity id -> the sequence number of the last answer
    it projected) is never read; it is left out of the snapshot's view rebuild."""

    name = "reads"

    def __init__(self, history: History) -> None:
        self.history = history
        self.seen: set[str] = set()

    def projects(self, event_type: type[Payload]) -> bool:
        return event_type is OrderState

    def row_id(self, event: Event) -> str:
        return event.entity_id

    def project(self, row: State | None, event: Event) -> State:
        if event.event_id not in self.seen:
            self.seen.add(event.event_id)
            body = {
                k: list(v) if isinstance(v, tuple) else v for k, v in payload_to_dict(event.payload).items()
            }
            value = read_op_value(
                event.name,
                event.entity_id,
                event.metadata.sequence_no,
                str(event.metadata.causation_id),
                body,
            )
            if value is not None:
                self.history.append(HARNESS, "ok", "read", value)
        return {"lastSeq": event.metadata.sequence_no}


class _SimHeartbeat(_Heartbeat):
    """The production heartbeat (:class:`reference.listener._Heartbeat`: every VT/4 it calls
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
class _Worker:
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


@dataclass
class _Order:
    script: OrderScript
    commands: list[Command] = field(default_factory=list)
    sent: int = 0

    @property
    def remaining(self) -> int:
        return len(self.script.steps) - self.sent


# -------------------------------------------------------------------------------- the simulation
class Simulation:
    """One simulated bus. Single-threaded; every choice comes from ``self.rng`` (interleaved:
    the choice of the next task to run from ``self.procs.rng``)."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        #: interleaved worker processes (``config.interleave``): their scheduler, its own RNG
        self.procs: ProcessScheduler | None = None
        #: the poll task in progress of each worker process (interleaved)
        self.poll_tasks: dict[int, Task] = {}
        if config.interleave:
            pclock = ProcessClock()
            self.procs = ProcessScheduler(pclock, random.Random(f"{config.seed}/processes"))
            pclock.scheduler = self.procs
            self.clock: VirtualClock = pclock
        else:
            self.clock = VirtualClock()
        self.history = History(clock=self.clock.now)
        self.aws = SimAws(seed=config.seed, clock=self.clock, tap=_Tap(self), reorder=not config.fifo)
        # the harness's clients reach AWS during a simulated outage; the workers' and producers'
        # (``self.clients``) do not
        self.sqs = self.aws.client("sqs")
        self.sns = self.aws.client("sns")
        self.kms = self.aws.client("kms")
        self.sts = self.aws.client("sts")
        for client in (self.sqs, self.sns, self.kms, self.sts):
            client.outage_exempt = True
        self.clients: dict[str, Any] = {
            "sqs": self.aws.client("sqs"),
            "sns": self.aws.client("sns"),
            "kms": self.aws.client("kms"),
            "sts": self.aws.client("sts"),
        }
        self.store_down = False
        #: outage kinds still to come, the one in progress (its start op) and when it ends
        self.outages_left = list(config.faults.outages)
        self.outage_op: Any = None
        self.outage_ends_at = 0.0
        self.next_outage_at: float | None = None
        self._outage_calls = 0
        self.faults_on = True
        self.sending_poison = False
        self.depth = 0
        self.budget = config.faults.max_faults
        self.wire_left = config.wire_samples
        self.armed: list[tuple[int | None, str, str]] = []
        for item in config.faults.scripted:
            kind, _, point = item.partition("@")
            self.armed.append((None, kind, point))
        self.fault_counts: Counter[str] = Counter()
        self.last_count: dict[str, int] = {}
        self.batches: dict[str, list[str]] = {}
        self.done_commands: set[str] = set()
        self.poison_sent = 0
        self.hostile_ids: set[str] = set()  # eventIds of hostile commands expected to take effect
        self.other_key_arn: str | None = None
        self.ticks = 0
        self.drained: bool | None = None
        self.registry = order_registry()
        suffix = ".fifo" if config.fifo else ""
        self.bus_config = (
            BusConfiguration(self.registry)
            .send(*ORDER_COMMANDS)
            .to_queue(config.command_queue)
            .raise_events(*ORDER_EVENTS)
            .to_topic(f"order-events{suffix}")
            .listen_to(config.command_queue)
            .subscribe(f"order-views{suffix}")
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
        self.views_queue = f"order-views{suffix}"
        self.read_probe = _ReadProbe(self.history) if config.reads else None
        self.key_arn: str | None = None
        self._stack = ExitStack()
        self._stack.enter_context(mock.patch("reference.envelope.os", _DetOs(self.rng)))
        if config.encryption:
            self.key_arn = str(self.kms.create_key(Description="flowgate sim")["KeyMetadata"]["Arn"])
            self.bus_config.with_encryption(self.key_arn)
        self.resources: Resources = Bootstrapper(
            self.bus_config, sqs=self.sqs, sns=self.sns, sts=self.sts
        ).run()
        self.shared: Storage = self._storage()
        self.workers = [self._new_worker(i) for i in range(config.workers)]
        scripts = generate_orders(
            config.seed,
            config.orders,
            cancel_ratio=config.cancel_ratio,
            invalid_ratio=config.invalid_ratio,
            reads=config.reads,
            saga_commands=config.saga_commands,
        )
        self.orders = [_Order(s) for s in scripts]
        self.active = [n for n, o in enumerate(self.orders) if o.remaining > 0]
        self.expected_failures: set[str] = set()
        #: per producer: its incarnation (a producer restart starts the next one)
        self.producer_generations = [0] * config.producers
        self.producers = [self._new_producer(p) for p in range(config.producers)]
        #: the producer restart armed for the publish in progress: (producer, point)
        self.producer_fault: tuple[int, str] | None = None
        #: dead producers -> sends (by the others) until they start again
        self.producers_down: dict[int, int] = {}
        self.wall_start = time.perf_counter()
        self.virtual_start = self.clock.now()

    @staticmethod
    def _views() -> list[Any]:
        return [OrderView(), InventoryView(), PaymentsView()]

    def _storage(self) -> InMemoryStorage:
        """An in-memory store that is down while the ``store`` outage is on."""
        return SwitchableStorage(self.registry, lambda: self.store_down)

    def _new_worker(self, index: int, generation: int = 0) -> _Worker:
        """Worker ``index``: a runtime with its own listeners (caches, breakers). Serial: the
        workers share the clients and, with ``idempotency=shared``, ONE store object (threads of
        one process). Interleaved: a process with its own clients and its own store client
        (:meth:`InMemoryStorage.connect` to the shared data, or a store of its own), every call
        of either a yield point, and the listener's heartbeat as a task of the process."""
        shared = self.config.idempotency == "shared"
        procs = self.procs
        if not shared:
            storage = self._storage()
        else:
            assert isinstance(self.shared, InMemoryStorage)
            storage = self.shared.connect() if procs is not None else self.shared
        name = f"worker-{index}"
        clients: Mapping[str, Any] = self.clients
        store: Any = storage
        if procs is not None:
            clients = {svc: Yielding(self.aws.client(svc), procs) for svc in ("sqs", "sns", "kms", "sts")}
            store = Yielding(storage, procs)
        runtime = build_runtime(
            self.bus_config,
            sqs=clients["sqs"],
            sns=clients["sns"],
            sts=clients["sts"],
            kms=clients["kms"],
            storage=store,
            sagas=order_domain(saga_commands=self.config.saga_commands)[0],
            aggregates=order_domain(saga_commands=self.config.saga_commands)[1],
            views=[*self._views(), *((self.read_probe,) if self.read_probe is not None else ())],
            clock=self.clock,
            faults=_WorkerFaults(self, index),
            observer=_WorkerObserver(self, name),
            resources=self.resources,
        )
        if procs is not None and runtime.cleaner is not None:
            # the cleanup thread is not one of the interleaved tasks: its sweeps (run_due, before
            # each poll) call the store directly, adding no yield point to the schedule
            runtime.cleaner.storage = storage
        if procs is not None and self.config.heartbeat:
            for listener in runtime.listeners:
                listener._heartbeat = _SimHeartbeat(listener, procs, f"{name}/heartbeat/{listener.queue}")
        return _Worker(index, name, runtime, storage, generation)

    def close(self) -> None:
        self._stack.close()

    # ---------------------------------------------------------------- steps
    def replace_worker(self, index: int, reason: str) -> None:
        """A fresh runtime for worker ``index`` (new listeners; new storage unless shared)."""
        old = self.workers[index]
        if self.procs is not None:  # the process is gone: its tasks with it
            task = self.poll_tasks.pop(index, None)
            if task is not None and task is not self.procs.current:
                self.procs.kill(task)
            for listener in old.runtime.listeners:
                beat = listener._heartbeat
                if isinstance(beat, _SimHeartbeat) and beat.task is not None:
                    self.procs.kill(beat.task)
        self.workers[index] = self._new_worker(index, old.generation + 1)

    def restart(self, index: int) -> None:
        self.history.nemesis(
            "restart", {"worker": self.workers[index].name, "state_lost": self.config.idempotency != "shared"}
        )
        self.fault_counts["restart"] += 1
        self.replace_worker(index, "restart")

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
            return 0 if task.wake_at > self.clock.now() else 1  # sleeping: time must pass
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
        self.batches[worker.name] = []
        name = queue or self.config.command_queue
        if worker.runtime.cleaner is not None:
            # the worker's cleanup thread, in virtual time: a sweep whenever one is due (the first
            # at the worker's first poll, then every idempotency_cleanup_interval)
            worker.runtime.cleaner.run_due()
        try:
            return worker.listener(name).poll_once()
        except WorkerCrash:
            self.replace_worker(index, "crash")
            return 0
        except Exception as exc:
            self.history.append(
                worker.name, "fail", "poll", {"queue": name, "error": f"{type(exc).__name__}: {exc}"[:300]}
            )
            return 0

    def nested_poll(self, index: int, queue: str) -> None:
        """Another worker polls ``queue`` while worker ``index`` is stopped inside a fault hook."""
        if self.config.workers < 2 or self.procs is not None:
            return  # interleaved: the other processes run at the yield points anyway
        other = (index + 1 + self.rng.randrange(self.config.workers - 1)) % self.config.workers
        self.depth += 1
        try:
            self.poll(other, queue)
        finally:
            self.depth -= 1

    def may_harm(self, message_ids: Sequence[str]) -> bool:
        """The redrive budget: a probabilistic fault may only hit while every message it can push
        back to the queue (the worker's whole batch) was received at most ``max_receive_count - 2``
        times. Otherwise SQS's redrive policy would (correctly) move a valid message to the DLQ and
        the run would report it lost: true AWS behaviour, but a property of the fault rate."""
        limit = max(1, self.config.max_receive_count - 2)
        return all(self.last_count.get(m, 0) <= limit for m in message_ids)

    def arm(self, kind: str, point: str, worker: int | None = None) -> None:
        """Fire ``kind`` (crash/stall/expire_lease/redeliver) at the next hit of ``point``."""
        self.armed.append((worker, kind, point))

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    def sendable(self) -> list[int]:
        """Orders whose next command may be sent now (standard queues wait for the previous effect)."""
        out = []
        for n, order in enumerate(self.orders):
            if order.remaining <= 0:
                continue
            if not self.config.fifo and order.sent and order.commands[-1].event_id not in self.done_commands:
                continue
            out.append(n)
        return out

    def pick_sendable(self) -> int | None:
        """A random order whose next command may be sent now (O(1) for FIFO; a few probes otherwise)."""
        active = self.active
        for _ in range(8 if not self.config.fifo else 2):
            if not active:
                return None
            k = self.rng.randrange(len(active))
            n = active[k]
            order = self.orders[n]
            if order.remaining <= 0:
                active[k] = active[-1]
                active.pop()
                continue
            if self.config.fifo or not order.sent or order.commands[-1].event_id in self.done_commands:
                return n
        return None

    def _producer_name(self, index: int) -> str:
        generation = self.producer_generations[index]
        return f"client-{index}" if generation == 0 else f"client-{index}#{generation + 1}"

    def _new_producer(self, index: int) -> Runtime:
        """A producer process: a runtime on the shared store (never polled), its CommandBus faulted
        at the producer points (:data:`~reference.hooks.PRODUCER_FAULT_POINTS`)."""
        runtime = build_runtime(
            self.bus_config,
            sqs=self.clients["sqs"],
            sns=self.clients["sns"],
            sts=self.clients["sts"],
            kms=self.clients["kms"],
            storage=self.shared,
            sagas=order_domain(saga_commands=self.config.saga_commands)[0],
            views=self._views(),
            clock=self.clock,
            observer=_ProducerObserver(self.history, self._producer_name(index), self.expected_failures),
            resources=self.resources,
        )
        runtime.command_bus.faults = _ProducerFaults(self, index)
        return runtime

    def kill_producer(self, index: int, point: str, command: Command) -> None:
        """Producer ``index`` dies at ``point`` of publishing ``command``: its memory is gone. While
        another producer is alive it stays dead for 0-3 sends of the others (what it left unsent
        meanwhile is theirs to send first), then starts again (:meth:`start_producer`)."""
        down_for = self.rng.randrange(4) if len(self.producers_down) + 1 < len(self.producers) else 0
        self.history.nemesis(
            "producer_restart",
            {
                "producer": self._producer_name(index),
                "point": point,
                "command_id": command.event_id,
                "down_for_sends": down_for,
            },
        )
        self.fault_counts["producer_restart"] += 1
        self.producers_down[index] = down_for
        if down_for == 0:
            self.start_producer(index)

    def start_producer(self, index: int) -> None:
        """A new incarnation of producer ``index`` with nothing in memory; on start it sends what
        the store's outbox holds unsent (D25)."""
        self.producers_down.pop(index, None)
        self.producer_generations[index] += 1
        self.producers[index] = self._new_producer(index)
        with suppress(Exception):
            self.producers[index].command_bus.send_unsent()

    def start_producers(self) -> None:
        """Start every dead producer (the run is over: nothing else will send what they left)."""
        for index in sorted(self.producers_down):
            self.start_producer(index)

    def _pick_producer(self, order_index: int) -> int:
        if self.config.bus_numbers:
            alive = [i for i in range(len(self.producers)) if i not in self.producers_down]
            return alive[self.rng.randrange(len(alive))]
        return order_index % len(self.producers)

    def _producers_sent(self) -> None:
        """One more send done: dead producers whose time is up start again."""
        for index, left in sorted(self.producers_down.items()):
            if left <= 1:
                self.start_producer(index)
            else:
                self.producers_down[index] = left - 1

    def send_next(self, order_index: int) -> Command | None:
        order = self.orders[order_index]
        if order.remaining <= 0:
            return None
        step = order.script.steps[order.sent]
        event_id = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        command = new_command(
            step.payload,
            order.script.order_id,
            is_new=isinstance(step.payload, PlaceOrder),
            sequence_no=0 if self.config.bus_numbers else order.sent + 1,
            event_id=event_id,
            clock=self.clock,
        )
        if step.expect_business_failure:
            self.expected_failures.add(event_id)
        order.commands.append(command)
        order.sent += 1
        sent = self._publish(order_index, command, restartable=True)
        order.commands[-1] = sent
        return sent

    def resend(self, order_index: int, which: int | None = None) -> Command | None:
        """Send an already-sent command of the order again (same identity): a producer retry."""
        order = self.orders[order_index]
        if not order.commands:
            return None
        command = order.commands[-1 if which is None else which % len(order.commands)]
        self.history.nemesis(
            "resend",
            {
                "command_id": command.event_id,
                "entity_id": command.entity_id,
                "seq": command.metadata.sequence_no,
            },
        )
        self.fault_counts["resend"] += 1
        self._publish(order_index, command)
        return command

    def _publish(self, order_index: int, command: Command, *, restartable: bool = False) -> Command:
        """Publish through a producer; returns the command as numbered (as given if it failed).

        ``restartable``: the ``producer_restart`` fault may kill the producer before the publish
        or at one of its producer fault points. A command the store's outbox recorded before the
        producer died is accepted (the bus sends it, D25): it is recorded as that producer's
        ``send`` ok with ``outbox: true``, so the checkers demand its effect."""
        index = self._pick_producer(order_index)
        plan = self.config.faults
        if (
            restartable
            and plan.producer_restart > 0
            and self.budget > 0
            and self.rng.random() < plan.producer_restart
        ):
            self.budget -= 1
            point = self.rng.choice(("before_publish", *PRODUCER_FAULT_POINTS))
            if point == "before_publish":
                self.kill_producer(index, point, command)
                index = self._pick_producer(order_index)
            else:
                self.producer_fault = (index, point)
        producer = self.producers[index]
        try:
            sent = producer.command_bus.publish(command)
            if restartable:
                self._producers_sent()
            return sent
        except WorkerCrash:
            assert self.producer_fault is not None
            name = self._producer_name(index)
            point = self.producer_fault[1]
            self.producer_fault = None
            recorded = self._recorded(command)
            if recorded is not None:
                _ProducerObserver(self.history, name, self.expected_failures).observe(
                    "send",
                    "ok",
                    {
                        "command_id": recorded.event_id,
                        "entity_id": recorded.entity_id,
                        "seq": recorded.metadata.sequence_no,
                        "command_type": recorded.name,
                        "destination": self.bus_config.queue_for(recorded.name),
                        "outbox": True,
                    },
                )
            self.kill_producer(index, point, recorded or command)
            return recorded or command
        except Exception:
            return self._recorded(command) or command
        finally:
            self.producer_fault = None

    def _recorded(self, command: Command) -> Command | None:
        """``command`` as the store's producer outbox holds it unsent (numbered), if it does."""
        if command.metadata.sequence_no > 0:
            return None
        with suppress(Exception):
            for unsent in self.shared.unsent_commands(command.entity_id):
                if unsent.event_id == command.event_id:
                    return unsent
        return None

    def duplicate_in_flight(self) -> bool:
        """Standard queues: leave a second copy of one message (a nemesis ``duplicate_delivery``)."""
        url = self.resources.queue_urls[self.config.command_queue]
        attrs = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        if self.config.fifo or attrs.get("ApproximateNumberOfMessages") in (None, "0"):
            return False
        flights = self.aws.in_flight(url)
        if not flights:
            return False
        victim = flights[self.rng.randrange(len(flights))]
        self.history.nemesis(
            "duplicate_delivery", {"queue": self.config.command_queue, "message_id": victim.message_id}
        )
        self.fault_counts["duplicate_delivery"] += 1
        return self.aws.inject_duplicate(url, victim.message_id)

    # ---------------------------------------------------------------- outages
    @property
    def outage_pending(self) -> bool:
        """An outage is in progress or still to come."""
        return self.outage_op is not None or bool(self.outages_left)

    def outage_step(self, sent: int) -> bool:
        """Start the next outage when it is due, end the current one when its time is up; True
        while one is in progress (the scheduler then holds the producers)."""
        now = self.clock.now()
        if self.outage_op is not None and now >= self.outage_ends_at:
            self.end_outage()
        if self.outage_op is None and self.outages_left:
            plan = self.config.faults
            total = sum(len(o.script.steps) for o in self.orders)
            after = plan.outage_after if plan.outage_after >= 0 else total // 3
            if (self.next_outage_at is None and sent >= min(after, total)) or (
                self.next_outage_at is not None and now >= self.next_outage_at
            ):
                self.start_outage(self.outages_left.pop(0))
        return self.outage_op is not None

    def _affected_queues(self, kind: str) -> list[str]:
        both = [self.config.command_queue, self.views_queue]
        if kind.startswith("kms"):
            return both if self.config.encryption else []
        if kind == "sns_unreachable":
            return [self.config.command_queue]  # the views listener publishes nothing
        return both

    def start_outage(self, kind: str, seconds: float | None = None) -> None:
        """Take ``kind``'s dependency down now (for ``seconds``, default ``outage_length`` x VT)."""
        if self.outage_op is not None:
            self.end_outage()
        seconds = float(seconds or self.config.faults.outage_length * self.config.visibility_timeout)
        self.outage_op = self.history.append(
            NEMESIS,
            "invoke",
            "outage",
            {
                "kind": kind,
                "dependency": DEPENDENCY[kind],
                "workers": self.config.workers,
                "queues": self._affected_queues(kind),
                "seconds": seconds,
            },
        )
        self.fault_counts["outage"] += 1
        self.outage_ends_at = self.clock.now() + seconds
        self._outage_calls = self.aws.calls[("sqs", "ReceiveMessage")]
        self._switch(kind, down=True)

    def end_outage(self) -> None:
        """Bring the current outage's dependency back (health sampled just before)."""
        op = self.outage_op
        if op is None:
            return
        self.sample_health("during")
        kind = str(op.value["kind"])
        self._switch(kind, down=False)
        self.outage_op = None
        self.next_outage_at = self.clock.now() + self.config.visibility_timeout
        self.history.append(
            NEMESIS,
            "ok",
            "outage",
            {
                "kind": kind,
                "dependency": DEPENDENCY[kind],
                "receive_calls": self.aws.calls[("sqs", "ReceiveMessage")] - self._outage_calls,
            },
        )

    def _switch(self, kind: str, *, down: bool) -> None:
        if kind == "store":
            self.store_down = down
        elif kind == "kms_disabled":
            if self.key_arn is not None:
                if down:
                    self.kms.disable_key(KeyId=self.key_arn)
                else:
                    self.kms.enable_key(KeyId=self.key_arn)
        else:
            self.aws.set_unreachable(kind.split("_", 1)[0], down)

    def sample_health(self, phase: str) -> None:
        """One harness ``health`` op per worker: its :meth:`Runtime.health` now (breakers; the
        consumer gauges' ``metrics`` are left out: their instance ids differ from run to run)."""
        for worker in self.workers:
            report = worker.runtime.health().as_dict()
            report.pop("metrics", None)
            self.history.append(HARNESS, "ok", "health", {"worker": worker.name, "phase": phase, **report})

    def settle_breakers(self, max_rounds: int = 20) -> None:
        """Poll every listener whose breaker is still open, advancing time to its next probe,
        until all are closed or ``max_rounds`` passed (after the drain, before the ``after``
        health sample: a closed breaker needs a poll that finds its probe due)."""
        for _ in range(max_rounds):
            waiting = [
                (worker.index, listener)
                for worker in self.workers
                for listener in worker.runtime.listeners
                if listener.breaker.is_open
            ]
            if not waiting:
                return
            self.clock.advance(max(lst.breaker.seconds_to_probe() for _, lst in waiting) + 0.001)
            for index, listener in waiting:
                self.poll(index, listener.queue)

    # ---------------------------------------------------------------- poison
    def send_poison(self, kind: str, *, expected_reason: bool = False) -> str | None:
        """Send one hostile message of ``kind`` (a :mod:`harness.hostile` catalog name or a
        ``~`` mutation spec) and record what a correct consumer must do with it:

        * a dead-letter kind -> a ``poison`` op (``reason_code`` = the documented code, ``*`` for
          any agreed code) that the ``dead_letter`` checker expects in a DLQ;
        * an applied / business-refused kind -> a harness ``send`` op for the command it carries
          (``expect_business_failure`` for the latter), judged like any producer's send;
        * a kind SQS refuses -> a failed ``poison`` op with the error.

        Kinds that do not fit the run (encryption, queue type) or need an identity the run does
        not have yet return None and record nothing. ``expected_reason`` also records the code as
        ``expected_reason`` (the ``dead_letter`` checker then counts even an SQS redrive, e.g.
        after a crash on the last receive, as the wrong reason)."""
        found = hostile.resolve(kind)
        if not found.applies(encrypted=self.config.encryption, fifo=self.config.fifo):
            return None
        self.poison_sent += 1
        entity = f"poison-{self.poison_sent:04d}"
        cid = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        cmd = new_command(
            PlaceOrder("CUST-POISON", "SKU-POISON", 1, 100),
            entity,
            is_new=True,
            sequence_no=1,
            event_id=cid,
            clock=self.clock,
        )
        ctx = self._hostile_context(cmd)
        try:
            wire = found.transform(ctx)
        except hostile.Unavailable:
            return None

        def queue_url(target: str) -> tuple[str, str]:
            queue = self.config.command_queue if target == "commands" else self.views_queue
            return queue, self.resources.queue_urls[queue]

        self.sending_poison = True
        try:
            sent = hostile.send_hostile(
                self.sqs,
                found,
                ctx,
                wire=wire,
                queue_url=queue_url,
                fifo=self.config.fifo,
                entity=entity,
                command_id=cid,
                known_ids=self._known_ids(),
                expected_reason=expected_reason,
            )
        finally:
            self.sending_poison = False
        self.history.append(HARNESS, sent.type, sent.f, sent.value)
        if sent.f == "send":
            if isinstance(sent.expected, hostile.BusinessDeadLetter):
                self.expected_failures.add(str(sent.value["command_id"]))
            self.hostile_ids.add(str(sent.value["command_id"]))
        return sent.message_id

    def _known_ids(self) -> set[str]:
        """Every eventId a valid or an earlier hostile command already uses on this bus."""
        ids = {c.event_id for order in self.orders for c in order.commands}
        return ids | self.hostile_ids

    def _hostile_context(self, cmd: Command) -> hostile.BasicContext:
        return hostile.context_for(
            cmd,
            encrypted=self.config.encryption,
            queue=self.config.command_queue,
            views_queue=self.views_queue,
            group_id=cmd.entity_id if self.config.fifo else None,
            dedup_id=cmd.event_id if self.config.fifo else None,
            rng=self.rng,
            kms=self.kms,
            key_id=self.key_arn,
            known=self._applied_command,
            pending=self._pending_command,
            other_key=self._other_key,
        )

    def _applied_command(self) -> str | None:
        """The eventId of the earliest-sent valid command that has taken effect (deterministic)."""
        for order in self.orders:
            for c in order.commands:
                if c.event_id in self.done_commands and c.event_id not in self.expected_failures:
                    return c.event_id
        return None

    def _pending_command(self) -> tuple[str, str] | None:
        """(eventId, group) of the first valid command (in order of the orders) not applied yet."""
        for order in self.orders:
            for c in order.commands:
                if c.event_id not in self.done_commands and c.event_id not in self.expected_failures:
                    return c.event_id, c.entity_id
        return None

    def _other_key(self) -> str:
        if self.other_key_arn is None:
            self.other_key_arn = str(self.kms.create_key(Description="attacker")["KeyMetadata"]["Arn"])
        return self.other_key_arn

    # ---------------------------------------------------------------- drain, snapshots, verdicts
    def _queue_depth(self) -> dict[str, int]:
        out = {}
        for queue in (self.config.command_queue, self.views_queue):
            a = self.sqs.get_queue_attributes(
                QueueUrl=self.resources.queue_urls[queue], AttributeNames=["All"]
            )["Attributes"]
            out[queue] = sum(
                int(a.get(k, "0"))
                for k in (
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                    "ApproximateNumberOfMessagesDelayed",
                )
            )
        return out

    def drain(self, *, max_idle_rounds: int | None = None) -> bool:
        """Faults off; poll every worker until both queues (incl. in flight) are empty.

        Idle rounds advance virtual time past the visibility timeout (VT + 1 s each), so SQS's own
        redrive, at most ``redrive_max_receive_count`` receives away, happens inside the default
        bound of ``4 x maxReceiveCount + 20`` idle rounds and is seen (a reason-less dead letter).
        A drain that stays idle for ``max_idle_rounds`` rounds gives up. Either way it records an
        ``ok`` ``drain`` op whose ``unresolved`` lists every message still in a queue (id, state,
        receive count, command id): the ``resolution`` checker reports each as ``unresolved``.
        Returns whether both queues emptied."""
        self.faults_on = False
        self.end_outage()
        self.outages_left.clear()
        # interleaved: polls still in progress (a sleeping slow handler) go on while the others drain
        idle_limit = max_idle_rounds or (4 * self.config.max_receive_count + 20)
        stuck = rounds = 0
        depth = self._queue_depth()
        best = sum(depth.values())
        while any(depth.values()):
            rounds += 1
            received = 0
            for index in range(len(self.workers)):
                for queue in (self.config.command_queue, self.views_queue):
                    received += self.poll(index, queue)
            depth = self._queue_depth()
            if sum(depth.values()) < best:
                best, stuck = sum(depth.values()), 0
            else:  # no message left the queues this round
                stuck += 1
                if stuck > idle_limit:
                    break
            if received == 0 and any(depth.values()):
                self.clock.advance(self.config.visibility_timeout + 1)
        self.drained = not any(depth.values())
        if self.procs is not None:
            self.procs.settle()  # heartbeats notice that nothing is tracked any more and end
        if self.config.faults.outages:
            self.settle_breakers()
            self.sample_health("after")
        self._record_redriven()
        unresolved = [
            {"queue": self.config.command_queue, **left}
            for left in self.aws.left_in(self.resources.queue_urls[self.config.command_queue])
        ] + [
            {"queue": self.views_queue, **left, "command_id": None, "event_id": left["command_id"]}
            for left in self.aws.left_in(self.resources.queue_urls[self.views_queue])
        ]
        self.history.append(
            HARNESS, "ok", "drain", {"rounds": rounds, "remaining": depth, "unresolved": unresolved}
        )
        return self.drained

    def _record_redriven(self) -> None:
        """Messages SQS itself moved to a DLQ (redrive policy) carry no ``DeadLetterReason``: no
        listener decided to dead-letter them (e.g. a worker kept receiving while a dependency was
        down, or crashed on every receive). They are in the DLQ all the same, so they are recorded
        as ``dead_letter`` ops *without* a reason: the checker reports each as
        ``dead-letter-without-reason`` (and a valid one also as ``valid-dead-lettered``). With the
        redrive headroom (``BusOptions.redrive_max_receive_count``) the reference is never
        redriven by SQS under the simulator's fault plans."""
        for queue in (self.config.command_queue, self.views_queue):
            url = self.resources.dlq_urls[queue]
            while True:
                got = self.sqs.receive_message(
                    QueueUrl=url,
                    MaxNumberOfMessages=10,
                    VisibilityTimeout=3600,
                    MessageAttributeNames=["All"],
                    AttributeNames=["All"],
                ).get("Messages", [])
                if not got:
                    break
                for m in got:
                    attrs = m.get("MessageAttributes") or {}
                    if "DeadLetterReason" in attrs:
                        continue  # forwarded by a listener, already observed with its reason
                    self.history.append(
                        HARNESS,
                        "ok",
                        "dead_letter",
                        {
                            "message_id": m["MessageId"],
                            "queue": queue,
                            "redriven_by": "sqs",
                            **(
                                {"command_id": attrs["EventId"]["StringValue"]}
                                if queue == self.config.command_queue and "EventId" in attrs
                                else {}
                            ),
                            "receive_count": int(
                                (m.get("Attributes") or {}).get("ApproximateReceiveCount", 0)
                            ),
                        },
                    )

    def snapshot(self) -> None:
        """``state`` and ``replay`` ops per order (live store vs CommandBus.replay + rebuild_views)."""
        if self.config.idempotency != "shared":
            return
        storage = self.shared
        views = self._views()
        bus = CommandBus(processor=self.workers[0].runtime.processor)
        all_events: list[Event] = []
        for order in self.orders:
            if not order.commands:
                continue
            eid = order.script.order_id
            live = {
                "entity_id": eid,
                "entity": storage.get_entity("order", eid),
                "views": {v: storage.get_view(v, eid) for v in ("orders", "payments")},
            }
            self.history.append(HARNESS, "ok", "state", live)
            try:
                bus.replay(eid)
                result = bus.replay(eid)  # twice: a replay must not change what the next one sees
                rebuilt = rebuild_views(views, result.events)
                all_events.extend(result.events)
                value: dict[str, Any] = {
                    "entity_id": eid,
                    "entity": result.states.get("order"),
                    "views": {v: rebuilt[v].get(eid) for v in ("orders", "payments")},
                }
            except Exception as exc:
                value = {
                    "entity_id": eid,
                    "entity": {"replay_error": f"{type(exc).__name__}: {exc}"},
                    "views": {},
                }
            self.history.append(HARNESS, "ok", "replay", value)
        inventory = rebuild_views(views, all_events)["inventory"]
        self.history.append(
            HARNESS,
            "ok",
            "state",
            {
                "entity_id": "view:inventory",
                "entity": None,
                "views": {"inventory": storage.list_view("inventory")},
            },
        )
        self.history.append(
            HARNESS,
            "ok",
            "replay",
            {"entity_id": "view:inventory", "entity": None, "views": {"inventory": inventory}},
        )

    def finish(self, mutant: str | None = None) -> SimResult:
        self.start_producers()
        if self.drained is None:
            self.drain()
        if self.config.snapshots:
            self.snapshot()
        wall = time.perf_counter() - self.wall_start
        t0 = time.perf_counter()
        verdicts = check_all(
            self.history,
            fifo={self.config.command_queue} if self.config.fifo else set(),
            require_encryption=self.config.encryption,
        )
        check_s = time.perf_counter() - t0
        ops = self.history.ops
        counts = Counter(op.f for op in ops if op.type in ("ok", "info"))
        stats: dict[str, Any] = {
            "orders": self.config.orders,
            "commands_sent": sum(o.sent for o in self.orders),
            "effects": counts["effect"],
            "projections": counts["project"],
            "duplicates": counts["duplicate"],
            "dead_letters": counts["dead_letter"],
            "business_dead_letters": counts["business_dead_letter"],
            "faults": dict(sorted(self.fault_counts.items())),
            "ticks": self.ticks,
            "ops": len(ops),
            "virtual_seconds": round(self.clock.now() - self.virtual_start, 3),
            "wall_seconds": round(wall, 3),
            "checker_seconds": round(check_s, 3),
            "drained": self.drained,
        }
        if self.config.reads:
            stats["reads"] = counts["read"]
        if self.procs is not None:
            stats["task_switches"] = self.procs.switches
        self.close()
        return SimResult(self.history, verdicts, stats, self.config.seed, self.config, mutant)


# -------------------------------------------------------------------------------- the scheduler
def _schedule(sim: Simulation) -> None:
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
        down = sim.outage_step(sent)  # while a dependency is down the producers hold their sends
        while not down and poison_at and poison_at[0][0] <= sent:
            sim.send_poison(poison_at.pop(0)[1])
        now = sim.clock.now()
        due = [] if down else [r for r in resends if r[0] <= now]
        for r in due:
            resends.remove(r)
            sim.resend(r[1], r[2])
        if plan.restart > 0 and sim.budget > 0 and rng.random() < plan.restart:
            sim.budget -= 1
            sim.restart(rng.randrange(cfg.workers))
        n = None if down else sim.pick_sendable()
        if n is None and not poison_at and not resends and not sim.active and not sim.outage_pending:
            break
        if n is not None and rng.random() < 0.45:
            sim.send_next(n)
            sent += 1
            idle = 0
            if plan.resend > 0 and rng.random() < plan.resend:
                delay = rng.choice((0.5, 5.0, float(cfg.visibility_timeout), 301.0))
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
    sim.end_outage()
    sim.outages_left.clear()
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
    from harness.mutants import apply_mutant

    with apply_mutant(name):
        yield


@contextmanager
def _quiet_reference() -> Iterator[None]:
    """The reference logs every expected redelivery at WARNING; a simulation injects thousands."""
    logger = logging.getLogger("reference")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def run_simulation(config: SimConfig, *, mutant: str | None = None) -> SimResult:
    """Run one seeded simulation and judge its history (see the module docstring)."""
    with _quiet_reference(), _maybe_mutant(mutant):
        sim = Simulation(config)
        try:
            _schedule(sim)
            return sim.finish(mutant)
        finally:
            sim.close()


# -------------------------------------------------------------------------------- CLI
def _parser(prog: str, *, seed_positional: bool) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="Deterministic simulation of the reference bus.")
    if seed_positional:
        p.add_argument("seed", type=int)
    else:
        p.add_argument("--seed", type=int, default=0)
    p.add_argument("--orders", type=int, default=20)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--producers", type=int, default=1)
    p.add_argument(
        "--bus-numbers",
        action="store_true",
        help="the producers' bus numbers the commands; each send goes to a random producer",
    )
    p.add_argument("--standard", action="store_true", help="standard command queue instead of FIFO")
    p.add_argument("--encryption", action="store_true")
    p.add_argument("--idempotency", choices=IDEMPOTENCY_MODES, default="shared")
    p.add_argument("--visibility-timeout", type=int, default=30)
    p.add_argument("--max-receive-count", type=int, default=3)
    p.add_argument(
        "--interleave",
        action="store_true",
        help="worker processes interleaved at every AWS/store call and handler step",
    )
    p.add_argument("--no-heartbeat", action="store_true", help="BusOptions.heartbeat=False")
    p.add_argument(
        "--reads",
        action="store_true",
        help="contract v1.3: GetOrder reads in every order's script, judged by read_state",
    )
    p.add_argument(
        "--saga-commands",
        action="store_true",
        help="D33: the order saga issues ReserveInventory, the fulfilment aggregate ConfirmOrder",
    )
    p.add_argument("--cancel-ratio", type=float, default=0.1)
    p.add_argument("--invalid-ratio", type=float, default=0.0)
    p.add_argument(
        "--faults",
        default="none",
        help="e.g. chaos, or crash=0.05,stall=0.02,poison=all,crash@mid_handler,outage=store+kms_disabled",
    )
    p.add_argument(
        "--mutant", default=None, help="run a mutant of the reference (see flowgate mutants --list)"
    )
    p.add_argument("--history", default=None, help="write the history (JSON lines) here")
    p.add_argument("--timeline", default=None, help="write the SVG timeline here")
    return p


def _config(args: argparse.Namespace) -> SimConfig:
    return SimConfig(
        seed=args.seed,
        orders=args.orders,
        workers=args.workers,
        producers=args.producers,
        bus_numbers=args.bus_numbers,
        fifo=not args.standard,
        encryption=args.encryption,
        idempotency=args.idempotency,
        visibility_timeout=args.visibility_timeout,
        max_receive_count=args.max_receive_count,
        cancel_ratio=args.cancel_ratio,
        invalid_ratio=args.invalid_ratio,
        faults=parse_faults(args.faults),
        interleave=args.interleave,
        heartbeat=not args.no_heartbeat,
        reads=args.reads,
        saga_commands=args.saga_commands,
    )


def _report(result: SimResult, args: argparse.Namespace, *, always_write: bool) -> int:
    print("stats: " + json.dumps(result.stats, sort_keys=True))
    print(render_table(result.verdicts))
    history_path = args.history or (f"reports/sim/history-{result.seed}.jsonl" if always_write else None)
    if history_path:
        print(f"history: {result.history.dump(history_path)}")
    timeline_path = args.timeline or (f"reports/sim/timeline-{result.seed}.svg" if always_write else None)
    if timeline_path:
        from harness.timeline import render_svg

        anomalies = [a for v in result.verdicts for a in v.anomalies]
        path = Path(timeline_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            render_svg(result.history, anomalies=anomalies, title=f"flowgate sim seed {result.seed}"),
            encoding="utf-8",
        )
        print(f"timeline: {path}")
    if not result.valid:
        print(f"INVALID: replay with: {result.replay_command()}")
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``flowgate sim --seed N --orders N --workers N [--faults ...] [--mutant NAME] [--history PATH]``."""
    args = _parser("flowgate sim", seed_positional=False).parse_args(argv)
    return _report(run_simulation(_config(args), mutant=args.mutant), args, always_write=False)


def replay_main(argv: Sequence[str] | None = None) -> int:
    """``flowgate replay SEED [same options]``: re-run exactly; writes the history and the SVG timeline."""
    args = _parser("flowgate replay", seed_positional=True).parse_args(argv)
    return _report(run_simulation(_config(args), mutant=args.mutant), args, always_write=True)


__all__ = [
    "IDEMPOTENCY_MODES",
    "SimConfig",
    "SimResult",
    "Simulation",
    "main",
    "replay_main",
    "run_simulation",
]

if __name__ == "__main__":
    sys.exit(main())
