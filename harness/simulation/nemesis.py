"""The simulation's nemesis: every probabilistic and scripted fault of a run, and its budget.

:class:`Nemesis` owns the fault budget (``FaultPlan.max_faults``), the scripted faults still
armed, the on/off switch and the fault counts, and draws its decisions from the RNG it is given:
the run's main stream (``random.Random(seed)``, shared with the scheduler, the producers and the
envelope nonces, in the order the run makes its draws -- every seed's history depends on that
order). It acts only through the seams everything else uses:

* the reference's fault seam (:class:`flowgate.reference.hooks.Faults`): :class:`WorkerFaults` at a
  worker's fault points (crash, stall, slow handler, lease expiry, redelivery) and
  :class:`ProducerFaults` at a producer's points;
* the simulated AWS's tap (:class:`flowgate.harness.sim.SimTap`, :class:`NemesisTap`): duplicate
  deliveries and delayed deletes, and the simulated AWS's own fault calls
  (``expire_visibility``, ``inject_duplicate``);
* the store's fault hook (:meth:`flowgate.harness.simulation.store.SimStorage.expire_lease`).

What it needs from the run it reads through :class:`NemesisTargets`; it writes nothing of the
scheduler's. The outage nemesis (:mod:`flowgate.harness.simulation.outage`) is its own object.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from flowgate.harness.faults import STALL_POINTS
from flowgate.harness.history import History
from flowgate.harness.sim import SimAws, SimTap, VirtualClock
from flowgate.harness.simulation.config import SimConfig
from flowgate.harness.simulation.observer import Deliveries, WireSampler
from flowgate.harness.simulation.store import SimStorage
from flowgate.reference.bootstrap import Resources
from flowgate.reference.hooks import PRODUCER_FAULT_POINTS, WorkerCrash
from flowgate.reference.idempotency import command_key, event_key
from flowgate.reference.stores import Storage


class NemesisTargets(Protocol):
    """What the nemesis reads of the run (the :class:`~flowgate.harness.simulation.Simulation`)."""

    aws: SimAws
    sqs: Any
    resources: Resources

    def worker_name(self, index: int) -> str: ...

    def worker_storage(self, index: int) -> Storage: ...

    def poll(self, index: int, queue: str | None = None) -> int: ...


def _short(queue_url: str) -> str:
    return queue_url.rsplit("/", 1)[-1]


def _is_fifo(name: str) -> bool:
    return name.endswith(".fifo")


class Nemesis:
    """Decides and injects the faults of :attr:`SimConfig.faults` (see the module docstring)."""

    def __init__(
        self,
        config: SimConfig,
        rng: random.Random,
        history: History,
        clock: VirtualClock,
        deliveries: Deliveries,
    ) -> None:
        self.config = config
        self.plan = config.faults
        self.rng = rng
        self.history = history
        self.clock = clock
        self.deliveries = deliveries
        self.budget = config.faults.max_faults
        self.faults_on = True
        #: nesting of polls run from inside a fault hook (serial runs)
        self.depth = 0
        #: scripted faults not fired yet: (worker or None, kind, point)
        self.armed: list[tuple[int | None, str, str]] = [
            (None, kind, point) for kind, _, point in (s.partition("@") for s in config.faults.scripted)
        ]
        #: the producer restart armed for the publish in progress: (producer, point)
        self.producer_armed: tuple[int, str] | None = None
        self.fault_counts: Counter[str] = Counter()
        self._targets: NemesisTargets | None = None

    def attach(self, targets: NemesisTargets) -> None:
        """The run the nemesis acts on (once its queues and workers exist)."""
        self._targets = targets

    @property
    def targets(self) -> NemesisTargets:
        assert self._targets is not None, "Nemesis.attach() first"
        return self._targets

    # ---------------------------------------------------------------- bookkeeping
    def record(self, kind: str, value: Mapping[str, Any]) -> None:
        """A fault about to act: its nemesis op (recorded *before* it acts) and its count."""
        self.history.nemesis(kind, value)
        self.count(kind)

    def count(self, kind: str) -> None:
        """One more fault of ``kind`` in the run's stats (the outage nemesis records its own ops)."""
        self.fault_counts[kind] += 1

    def stop(self) -> None:
        """No more faults (the drain)."""
        self.faults_on = False

    def arm(self, kind: str, point: str, worker: int | None = None) -> None:
        """Fire ``kind`` (crash/stall/expire_lease/redeliver) at the next hit of ``point``."""
        self.armed.append((worker, kind, point))

    def _spend(self, p: float, message_ids: Sequence[str]) -> bool:
        """One probabilistic fault of probability ``p`` on these messages: drawn and paid for."""
        if p <= 0 or not self.faults_on or self.budget <= 0 or not self.may_harm(message_ids):
            return False
        if self.rng.random() >= p:
            return False
        self.budget -= 1
        return True

    def may_harm(self, message_ids: Sequence[str]) -> bool:
        """The redrive budget: a probabilistic fault may only hit while every message it can push
        back to the queue (the worker's whole batch) was received at most ``max_receive_count - 2``
        times. Otherwise SQS's redrive policy would (correctly) move a valid message to the DLQ and
        the run would report it lost: true AWS behaviour, but a property of the fault rate."""
        limit = max(1, self.config.max_receive_count - 2)
        return all(self.deliveries.receive_count(m) <= limit for m in message_ids)

    # ---------------------------------------------------------------- scheduler-step faults
    def restart_victim(self) -> int | None:
        """Per scheduler step (``FaultPlan.restart``): the worker to restart now, if any."""
        if self.plan.restart > 0 and self.budget > 0 and self.rng.random() < self.plan.restart:
            self.budget -= 1
            return self.rng.randrange(self.config.workers)
        return None

    def resend_delay(self) -> float | None:
        """Per producer send (``FaultPlan.resend``): after how many seconds the command just sent
        goes out again (same identity), if it does. Not charged to the budget."""
        if self.plan.resend > 0 and self.rng.random() < self.plan.resend:
            return float(self.rng.choice((0.5, 5.0, float(self.config.visibility_timeout), 301.0)))
        return None

    def producer_restart(self, producer: int) -> str | None:
        """Per producer send (``FaultPlan.producer_restart``): where ``producer`` dies, if it does:
        ``before_publish`` (the caller kills it now) or one of
        :data:`~flowgate.reference.hooks.PRODUCER_FAULT_POINTS`, armed for its :class:`ProducerFaults`."""
        p = self.plan.producer_restart
        if p > 0 and self.budget > 0 and self.rng.random() < p:
            self.budget -= 1
            point = str(self.rng.choice(("before_publish", *PRODUCER_FAULT_POINTS)))
            if point != "before_publish":
                self.producer_armed = (producer, point)
            return point
        return None

    def disarm_producer(self) -> tuple[int, str] | None:
        """The publish is over: the producer restart armed for it (if any), disarmed."""
        armed, self.producer_armed = self.producer_armed, None
        return armed

    def duplicate_in_flight(self) -> bool:
        """Standard queues: leave a second copy of one message (a nemesis ``duplicate_delivery``)."""
        t = self.targets
        url = t.resources.queue_urls[self.config.command_queue]
        attrs = t.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        if self.config.fifo or attrs.get("ApproximateNumberOfMessages") in (None, "0"):
            return False
        flights = t.aws.in_flight(url)
        if not flights:
            return False
        victim = flights[self.rng.randrange(len(flights))]
        self.record(
            "duplicate_delivery", {"queue": self.config.command_queue, "message_id": victim.message_id}
        )
        return t.aws.inject_duplicate(url, victim.message_id)

    # ---------------------------------------------------------------- the simulated AWS's tap
    def duplicate_delivery(self, queue_url: str, message_id: str) -> bool:
        if not self._spend(self.plan.duplicate, [message_id]):
            return False
        self.record("duplicate_delivery", {"queue": _short(queue_url), "message_id": message_id})
        return True

    def delete_delay(self, queue_url: str, message_id: str) -> float:
        if not self._spend(self.plan.delay_delete, [message_id]):
            return 0.0
        delay = float(self.config.visibility_timeout + 1)
        self.record("delay_delete", {"queue": _short(queue_url), "message_id": message_id, "seconds": delay})
        return delay

    # ---------------------------------------------------------------- the workers' fault points
    def hit(self, index: int, point: str, context: Mapping[str, Any]) -> None:
        """Worker ``index`` is at fault point ``point``: a scripted fault armed for it fires, else
        each probabilistic kind that applies here is drawn (see :class:`flowgate.harness.faults.FaultPlan`)."""
        if not self.faults_on:
            return
        on_commands = context.get("queue") == self.config.command_queue
        decoded = "message_type" in context
        for n, (worker, kind, at) in enumerate(self.armed):
            if (
                at == point
                and worker in (None, index)
                and (on_commands or worker is not None)
                and (kind == "crash" or (decoded and self.depth == 0))
            ):
                del self.armed[n]
                self._fire(index, kind, point, context)
                return
        plan = self.plan
        batch = self.deliveries.batch(self.targets.worker_name(index))
        if self.budget <= 0 or not self.may_harm(batch):
            return
        if plan.crash > 0 and point in plan.crash_points and self.rng.random() < plan.crash:
            self.budget -= 1
            self._fire(index, "crash", point, context)
        if (
            plan.slow_handler > 0
            and point == "mid_handler"
            and self.depth == 0
            and decoded
            and self.rng.random() < plan.slow_handler
        ):
            self.budget -= 1
            self._fire(index, "slow_handler", point, context)
            return
        if point in STALL_POINTS and self.depth == 0 and decoded:
            total = plan.stall + plan.expire_lease + plan.redeliver
            if total > 0:
                r = self.rng.random()
                if r < plan.stall:
                    kind = "stall"
                elif r < plan.stall + plan.expire_lease:
                    kind = "expire_lease"
                elif r < total:
                    kind = "redeliver"
                else:
                    return
                self.budget -= 1
                self._fire(index, kind, point, context)

    def _fire(self, index: int, kind: str, point: str, context: Mapping[str, Any]) -> None:
        t = self.targets
        value = {
            "worker": t.worker_name(index),
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
            value["seconds"] = round(self.config.visibility_timeout * self.rng.uniform(1.2, 3.0), 3)
        self.record(kind, value)
        queue = str(context.get("queue"))
        url = t.resources.queue_urls[queue]
        if kind == "crash":
            raise WorkerCrash(point)
        # inside an interleaved process the clock's advance is that process's sleep
        if kind == "stall":
            self.clock.advance(self.config.visibility_timeout + 1)
        elif kind == "slow_handler":
            self.clock.advance(float(value["seconds"]))
        elif kind == "expire_lease":
            storage = t.worker_storage(index)
            key = (
                event_key(str(context["event_id"]), str(context["view"]))
                if "view" in context
                else command_key(str(context["event_id"]))
            )
            if isinstance(storage, SimStorage):
                storage.expire_lease(key, self.clock.now())
            if self.config.fifo or queue != self.config.command_queue:
                t.aws.expire_visibility(url, str(context["message_id"]))
            if not _is_fifo(queue):
                t.aws.inject_duplicate(url, str(context["message_id"]))
        elif kind == "redeliver":
            t.aws.expire_visibility(url, str(context["message_id"]))
        self.nested_poll(index, queue)

    def nested_poll(self, index: int, queue: str) -> None:
        """Another worker polls ``queue`` while worker ``index`` is stopped inside a fault hook."""
        if self.config.workers < 2 or self.config.interleave:
            return  # interleaved: the other processes run at the yield points anyway
        other = (index + 1 + self.rng.randrange(self.config.workers - 1)) % self.config.workers
        self.depth += 1
        try:
            self.targets.poll(other, queue)
        finally:
            self.depth -= 1


class NemesisTap(SimTap):
    """The simulated AWS's tap: the nemesis's delivery faults, and the wire samples."""

    def __init__(self, nemesis: Nemesis, wire: WireSampler) -> None:
        self.nemesis = nemesis
        self.wire = wire

    def duplicate_delivery(self, queue_url: str, message_id: str) -> bool:
        return self.nemesis.duplicate_delivery(queue_url, message_id)

    def delete_delay(self, queue_url: str, message_id: str) -> float:
        return self.nemesis.delete_delay(queue_url, message_id)

    def after_call(
        self,
        service: str,
        operation: str,
        params: Mapping[str, Any],
        response: Mapping[str, Any] | None,
        error: Any,
    ) -> None:
        self.wire.after_call(service, operation, params, response, error)


class WorkerFaults:
    """The nemesis at one worker's fault points (a :class:`flowgate.reference.hooks.Faults`). Interleaved,
    every point is also a yield point of the worker's process (``pause``)."""

    def __init__(self, nemesis: Nemesis, index: int, pause: Callable[[], None] | None = None) -> None:
        self.nemesis = nemesis
        self.index = index
        self.pause = pause

    def hit(self, point: str, context: Mapping[str, Any]) -> None:
        if self.pause is not None:
            self.pause()  # a handler step: another process may run now
        self.nemesis.hit(self.index, point, context)


class ProducerFaults:
    """The ``producer_restart`` fault at the producer's points: the producer dies there."""

    def __init__(self, nemesis: Nemesis, index: int) -> None:
        self.nemesis = nemesis
        self.index = index

    def hit(self, point: str, context: Mapping[str, Any]) -> None:
        if self.nemesis.producer_armed == (self.index, point):
            raise WorkerCrash(f"producer {self.index} killed at {point}")


__all__ = ["Nemesis", "NemesisTap", "NemesisTargets", "ProducerFaults", "WorkerFaults"]
