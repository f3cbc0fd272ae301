"""The simulation's producers and the workload they send: the orders' scripted commands, one
send or resend at a time, through producer runtimes that the ``producer_restart`` fault kills.

Several producers (``SimConfig.producers``) share the store; with ``SimConfig.bus_numbers`` the
producers' CommandBus numbers the commands and each send goes to a random live producer (D25),
otherwise the workload numbers them and order ``n`` has producer ``n % producers``.
"""

from __future__ import annotations

import random
from contextlib import suppress
from dataclasses import dataclass, field

from flowgate.harness.simulation.nemesis import Nemesis, ProducerFaults
from flowgate.harness.simulation.observer import Deliveries, ProducerObserver
from flowgate.harness.simulation.store import SimStorage
from flowgate.harness.simulation.workers import Wiring
from flowgate.harness.workload import OrderScript
from flowgate.reference.domain.orders import PlaceOrder, order_domain
from flowgate.reference.hooks import WorkerCrash
from flowgate.reference.messages import Command, new_command
from flowgate.reference.worker import Runtime, build_runtime


@dataclass
class Order:
    script: OrderScript
    commands: list[Command] = field(default_factory=list)
    sent: int = 0

    @property
    def remaining(self) -> int:
        return len(self.script.steps) - self.sent


class Producers:
    """The orders to send and the producers that send them.

    Draws (which order, which producer, how long a dead producer stays down, the new command
    ids) come from ``rng``, the run's main stream; the ``producer_restart`` decisions from the
    nemesis. Reads which commands are done from ``deliveries`` (a standard queue sends an
    order's next command only after the previous one took effect)."""

    def __init__(
        self,
        wiring: Wiring,
        scripts: list[OrderScript],
        *,
        shared: SimStorage,
        nemesis: Nemesis,
        deliveries: Deliveries,
        rng: random.Random,
    ) -> None:
        self.wiring = wiring
        self.config = wiring.config
        self.history = wiring.history
        self.shared = shared
        self.nemesis = nemesis
        self.deliveries = deliveries
        self.rng = rng
        self.orders = [Order(s) for s in scripts]
        self.active = [n for n, o in enumerate(self.orders) if o.remaining > 0]
        self.expected_failures: set[str] = set()
        #: per producer: its incarnation (a producer restart starts the next one)
        self.producer_generations = [0] * self.config.producers
        self.runtimes = [self._new_producer(p) for p in range(self.config.producers)]
        #: dead producers -> sends (by the others) until they start again
        self.producers_down: dict[int, int] = {}

    def sendable(self) -> list[int]:
        """Orders whose next command may be sent now (standard queues wait for the previous effect)."""
        out = []
        for n, order in enumerate(self.orders):
            if order.remaining <= 0:
                continue
            if (
                not self.config.fifo
                and order.sent
                and order.commands[-1].event_id not in self.deliveries.done_commands
            ):
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
            if (
                self.config.fifo
                or not order.sent
                or order.commands[-1].event_id in self.deliveries.done_commands
            ):
                return n
        return None

    def _producer_name(self, index: int) -> str:
        generation = self.producer_generations[index]
        return f"client-{index}" if generation == 0 else f"client-{index}#{generation + 1}"

    def _new_producer(self, index: int) -> Runtime:
        """A producer process: a runtime on the shared store (never polled), its CommandBus faulted
        at the producer points (:data:`~flowgate.reference.hooks.PRODUCER_FAULT_POINTS`)."""
        w = self.wiring
        runtime = build_runtime(
            w.bus_config,
            sqs=w.clients["sqs"],
            sns=w.clients["sns"],
            sts=w.clients["sts"],
            kms=w.clients["kms"],
            storage=self.shared,
            sagas=order_domain(saga_commands=self.config.saga_commands)[0],
            views=w.views(),
            clock=w.clock,
            observer=ProducerObserver(self.history, self._producer_name(index), self.expected_failures),
            resources=w.resources,
            randomness=w.randomness,
        )
        runtime.command_bus.faults = ProducerFaults(self.nemesis, index)
        return runtime

    def kill_producer(self, index: int, point: str, command: Command) -> None:
        """Producer ``index`` dies at ``point`` of publishing ``command``: its memory is gone. While
        another producer is alive it stays dead for 0-3 sends of the others (what it left unsent
        meanwhile is theirs to send first), then starts again (:meth:`start_producer`)."""
        down_for = self.rng.randrange(4) if len(self.producers_down) + 1 < len(self.runtimes) else 0
        self.nemesis.record(
            "producer_restart",
            {
                "producer": self._producer_name(index),
                "point": point,
                "command_id": command.event_id,
                "down_for_sends": down_for,
            },
        )
        self.producers_down[index] = down_for
        if down_for == 0:
            self.start_producer(index)

    def start_producer(self, index: int) -> None:
        """A new incarnation of producer ``index`` with nothing in memory; on start it sends what
        the store's outbox holds unsent (D25)."""
        self.producers_down.pop(index, None)
        self.producer_generations[index] += 1
        self.runtimes[index] = self._new_producer(index)
        with suppress(Exception):
            self.runtimes[index].command_bus.send_unsent()

    def start_producers(self) -> None:
        """Start every dead producer (the run is over: nothing else will send what they left)."""
        for index in sorted(self.producers_down):
            self.start_producer(index)

    def _pick_producer(self, order_index: int) -> int:
        if self.config.bus_numbers:
            alive = [i for i in range(len(self.runtimes)) if i not in self.producers_down]
            return alive[self.rng.randrange(len(alive))]
        return order_index % len(self.runtimes)

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
        event_id = self.wiring.randomness.uuid4()
        command = new_command(
            step.payload,
            order.script.order_id,
            is_new=isinstance(step.payload, PlaceOrder),
            sequence_no=0 if self.config.bus_numbers else order.sent + 1,
            event_id=event_id,
            clock=self.wiring.clock,
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
        self.nemesis.record(
            "resend",
            {
                "command_id": command.event_id,
                "entity_id": command.entity_id,
                "seq": command.metadata.sequence_no,
            },
        )
        self._publish(order_index, command)
        return command

    def _publish(self, order_index: int, command: Command, *, restartable: bool = False) -> Command:
        """Publish through a producer; returns the command as numbered (as given if it failed).

        ``restartable``: the ``producer_restart`` fault may kill the producer before the publish
        or at one of its producer fault points. A command the store's outbox recorded before the
        producer died is accepted (the bus sends it, D25): it is recorded as that producer's
        ``send`` ok with ``outbox: true``, so the checkers demand its effect."""
        index = self._pick_producer(order_index)
        if restartable and self.nemesis.producer_restart(index) == "before_publish":
            self.kill_producer(index, "before_publish", command)
            index = self._pick_producer(order_index)
        producer = self.runtimes[index]
        try:
            sent = producer.command_bus.publish(command)
            if restartable:
                self._producers_sent()
            return sent
        except WorkerCrash:
            armed = self.nemesis.disarm_producer()
            assert armed is not None
            name = self._producer_name(index)
            recorded = self._recorded(command)
            if recorded is not None:
                ProducerObserver(self.history, name, self.expected_failures).observe(
                    "send",
                    "ok",
                    {
                        "command_id": recorded.event_id,
                        "entity_id": recorded.entity_id,
                        "seq": recorded.metadata.sequence_no,
                        "command_type": recorded.name,
                        "destination": self.wiring.bus_config.queue_for(recorded.name),
                        "outbox": True,
                    },
                )
            self.kill_producer(index, armed[1], recorded or command)
            return recorded or command
        except Exception:
            return self._recorded(command) or command
        finally:
            self.nemesis.disarm_producer()

    def _recorded(self, command: Command) -> Command | None:
        """``command`` as the store's producer outbox holds it unsent (numbered), if it does."""
        if command.metadata.sequence_no > 0:
            return None
        with suppress(Exception):
            for unsent in self.shared.unsent_commands(command.entity_id):
                if unsent.event_id == command.event_id:
                    return unsent
        return None


__all__ = ["Order", "Producers"]
