"""What one gate run's collaborators share: the run's identity, its AWS clients, its history and
plan, the queues it provisioned, the implementation's cluster, and the few facts several
collaborators update (the effects the probe has seen, the last time the run made progress, the
checks that were not run).

:class:`RunState` is built once per run by :class:`flowgate.harness.gate.driver.Gate`, after provisioning
and planning, and handed to every collaborator (sender, probe, dead-letter reader, nemesis,
phases, settler, replayer, judge); it holds no behaviour beyond lookups over that state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flowgate.harness import topology as topo
from flowgate.harness.checkers.model import Verdict
from flowgate.harness.gate.cluster import Cluster, GateError
from flowgate.harness.gate.observe import EventMapper, SentCommand
from flowgate.harness.gate.workload import Plan, PlannedCommand, Profile
from flowgate.harness.history import History

__all__ = [
    "CLIENT",
    "EXIT_ANOMALY",
    "EXIT_INFRA",
    "EXIT_PASS",
    "EXIT_USAGE",
    "GateError",
    "GateResult",
    "RunState",
]

EXIT_PASS, EXIT_ANOMALY, EXIT_USAGE, EXIT_INFRA = 0, 1, 2, 3
#: The history process of the gate's own sends (the workload's client).
CLIENT = "client-0"


@dataclass(slots=True)
class GateResult:
    passed: bool
    exit_code: int
    verdicts: list[Verdict]
    table: str
    out_dir: Path
    history_path: Path
    junit_path: Path
    allure_dir: Path
    duration: float
    run_id: str
    stats: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class RunState:
    """One run's shared state. ``effects_seen`` (command ids with an observed effect) is written by
    the probe only; ``last_progress`` (``time.monotonic()``) by the probe and the settler;
    ``skipped`` (check -> why it was not run; shown, never counted as passed) by the nemesis and
    the replayer."""

    impl_command: str
    profile: Profile
    seed: int
    backend: str
    instances: int
    run_id: str
    encrypted: bool
    endpoint: str | None
    out_dir: Path
    sqs: Any
    kms: Any
    history: History
    prov: topo.Provisioned
    plan: Plan
    main_queue: topo.CommandQueue
    phase_queues: dict[str, topo.CommandQueue]
    cluster: Cluster
    sent: dict[str, SentCommand]
    markers: dict[str, str]
    mapper: EventMapper
    skipped: dict[str, str]
    effects_seen: set[str] = field(default_factory=set)
    last_progress: float = 0.0

    @property
    def queues(self) -> tuple[topo.CommandQueue, ...]:
        """Every command queue of the run: the main one, then each phase's."""
        return (self.main_queue, *self.phase_queues.values())

    def queue_of(self, c: PlannedCommand) -> topo.CommandQueue:
        """The queue a planned command goes to: its phase's queue, or the main command queue."""
        return queue_of(self.plan, self.phase_queues, self.main_queue, c)

    def orders(self, phase: str) -> list[PlannedCommand]:
        """The planned commands of ``phase`` (a phase, an outage's or a carrier list), in plan order."""
        return [self.plan.commands[i] for i in self.plan.phase_orders.get(phase, [])]


def queue_of(
    plan: Plan, phase_queues: dict[str, topo.CommandQueue], main: topo.CommandQueue, c: PlannedCommand
) -> topo.CommandQueue:
    """The queue ``c`` goes to: its phase's queue when that phase has one, else ``main``."""
    for phase, indexes in plan.phase_orders.items():
        if phase in phase_queues and any(plan.commands[i] is c for i in indexes):
            return phase_queues[phase]
    return main
