"""The simulation's hostile input: poison messages of the :mod:`flowgate.harness.hostile` catalog sent
straight to the bus's queues, each recorded with what a correct consumer must do with it."""

from __future__ import annotations

import random
from typing import Any

from flowgate.harness import hostile
from flowgate.harness.history import HARNESS, History
from flowgate.harness.sim import VirtualClock
from flowgate.harness.simulation.config import SimConfig
from flowgate.harness.simulation.observer import Deliveries, WireSampler
from flowgate.harness.simulation.producers import Producers
from flowgate.reference.bootstrap import Resources
from flowgate.reference.domain.orders import PlaceOrder
from flowgate.reference.hooks import Randomness
from flowgate.reference.messages import Command, new_command


class PoisonSender:
    """Sends hostile messages with the harness's own (outage-exempt) SQS/KMS clients. Its draws
    (the command ids, the catalog transforms' choices) come from ``rng``, the run's main stream."""

    def __init__(
        self,
        config: SimConfig,
        *,
        rng: random.Random,
        randomness: Randomness,
        history: History,
        clock: VirtualClock,
        sqs: Any,
        kms: Any,
        key_arn: str | None,
        resources: Resources,
        views_queue: str,
        producers: Producers,
        deliveries: Deliveries,
        wire: WireSampler,
    ) -> None:
        self.config = config
        self.rng = rng
        self.randomness = randomness
        self.history = history
        self.clock = clock
        self.sqs = sqs
        self.kms = kms
        self.key_arn = key_arn
        self.resources = resources
        self.views_queue = views_queue
        self.producers = producers
        self.deliveries = deliveries
        self.wire = wire
        self.sent = 0
        self.hostile_ids: set[str] = set()  # eventIds of hostile commands expected to take effect
        self.other_key_arn: str | None = None

    def send_poison(self, kind: str, *, expected_reason: bool = False) -> str | None:
        """Send one hostile message of ``kind`` (a :mod:`flowgate.harness.hostile` catalog name or a
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
        self.sent += 1
        entity = f"poison-{self.sent:04d}"
        cid = self.randomness.uuid4()
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

        with self.wire.paused():
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
        self.history.append(HARNESS, sent.type, sent.f, sent.value)
        if sent.f == "send":
            if isinstance(sent.expected, hostile.BusinessDeadLetter):
                self.producers.expected_failures.add(str(sent.value["command_id"]))
            self.hostile_ids.add(str(sent.value["command_id"]))
        return sent.message_id

    def _known_ids(self) -> set[str]:
        """Every eventId a valid or an earlier hostile command already uses on this bus."""
        ids = {c.event_id for order in self.producers.orders for c in order.commands}
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
        for order in self.producers.orders:
            for c in order.commands:
                if (
                    c.event_id in self.deliveries.done_commands
                    and c.event_id not in self.producers.expected_failures
                ):
                    return c.event_id
        return None

    def _pending_command(self) -> tuple[str, str] | None:
        """(eventId, group) of the first valid command (in order of the orders) not applied yet."""
        for order in self.producers.orders:
            for c in order.commands:
                if (
                    c.event_id not in self.deliveries.done_commands
                    and c.event_id not in self.producers.expected_failures
                ):
                    return c.event_id, c.entity_id
        return None

    def _other_key(self) -> str:
        if self.other_key_arn is None:
            self.other_key_arn = str(self.kms.create_key(Description="attacker")["KeyMetadata"]["Arn"])
        return self.other_key_arn


__all__ = ["PoisonSender"]
