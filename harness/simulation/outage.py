"""The outage nemesis (``--faults outage=...``, :mod:`flowgate.harness.outages`): takes a dependency of
the workers down for ``outage_length`` visibility timeouts (``outage`` invoke/ok ops), one kind
after another, and samples the workers' health during and after.

It acts through the simulated AWS (``set_unreachable``), the simulated KMS (disable/enable the
bus's key, with the harness's own exempt client) and the store's outage switch
(:attr:`store_down`, read by every :class:`~flowgate.harness.simulation.store.SimStorage` of the run).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from flowgate.harness.history import HARNESS, NEMESIS, History
from flowgate.harness.outages import DEPENDENCY
from flowgate.harness.sim import SimAws, VirtualClock
from flowgate.harness.simulation.config import SimConfig
from flowgate.reference.worker import Runtime


class OutageTargets(Protocol):
    """What the outage nemesis reads of the run."""

    key_arn: str | None
    kms: Any

    def runtimes(self) -> Sequence[tuple[int, str, Runtime]]: ...

    def poll(self, index: int, queue: str | None = None) -> int: ...


class OutageNemesis:
    """The outages of :attr:`FaultPlan.outages`, in order (see the module docstring)."""

    def __init__(
        self,
        config: SimConfig,
        history: History,
        clock: VirtualClock,
        aws: SimAws,
        views_queue: str,
        count: Callable[[str], None],
    ) -> None:
        self.config = config
        self.history = history
        self.clock = clock
        self.aws = aws
        self.views_queue = views_queue
        self._count = count
        #: the ``store`` outage is on: every store of the run refuses
        self.store_down = False
        #: outage kinds still to come, the one in progress (its start op) and when it ends
        self.outages_left = list(config.faults.outages)
        self.outage_op: Any = None
        self.outage_ends_at = 0.0
        self.next_outage_at: float | None = None
        self._outage_calls = 0
        self._targets: OutageTargets | None = None
        #: commands the workload will send (the default ``outage_after`` is a third of them)
        self.total_commands = 0

    def attach(self, targets: OutageTargets, total_commands: int) -> None:
        self._targets = targets
        self.total_commands = total_commands

    @property
    def targets(self) -> OutageTargets:
        assert self._targets is not None, "OutageNemesis.attach() first"
        return self._targets

    def cancel(self) -> None:
        """End the outage in progress and drop those still to come (the drain, the run's end)."""
        self.end_outage()
        self.outages_left.clear()

    @property
    def pending(self) -> bool:
        """An outage is in progress or still to come."""
        return self.outage_op is not None or bool(self.outages_left)

    def step(self, sent: int) -> bool:
        """Start the next outage when it is due, end the current one when its time is up; True
        while one is in progress (the scheduler then holds the producers)."""
        now = self.clock.now()
        if self.outage_op is not None and now >= self.outage_ends_at:
            self.end_outage()
        if self.outage_op is None and self.outages_left:
            plan = self.config.faults
            total = self.total_commands
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
        self._count("outage")
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
            if self.targets.key_arn is not None:
                if down:
                    self.targets.kms.disable_key(KeyId=self.targets.key_arn)
                else:
                    self.targets.kms.enable_key(KeyId=self.targets.key_arn)
        else:
            self.aws.set_unreachable(kind.split("_", 1)[0], down)

    def sample_health(self, phase: str) -> None:
        """One harness ``health`` op per worker: its :meth:`Runtime.health` now (breakers; the
        consumer gauges' ``metrics`` are left out: their instance ids differ from run to run)."""
        for _, name, runtime in self.targets.runtimes():
            report = runtime.health().as_dict()
            report.pop("metrics", None)
            self.history.append(HARNESS, "ok", "health", {"worker": name, "phase": phase, **report})

    def settle_breakers(self, max_rounds: int = 20) -> None:
        """Poll every listener whose breaker is still open, advancing time to its next probe,
        until all are closed or ``max_rounds`` passed (after the drain, before the ``after``
        health sample: a closed breaker needs a poll that finds its probe due)."""
        for _ in range(max_rounds):
            waiting = [
                (index, listener)
                for index, _, runtime in self.targets.runtimes()
                for listener in runtime.listeners
                if listener.breaker.is_open
            ]
            if not waiting:
                return
            self.clock.advance(max(lst.breaker.seconds_to_probe() for _, lst in waiting) + 0.001)
            for index, listener in waiting:
                self.targets.poll(index, listener.queue)


__all__ = ["OutageNemesis", "OutageTargets"]
