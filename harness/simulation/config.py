"""What determines a simulation run (:class:`SimConfig`, with the seed) and what it gives back
(:class:`SimResult`)."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Any

from flowgate.harness.checkers import Verdict
from flowgate.harness.faults import FaultPlan
from flowgate.harness.history import History

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
    #: worker processes interleaved at their yield points (``flowgate.harness.sim.processes``; each its own
    #: clients, listeners, caches, breakers and store client) instead of one poll after another
    interleave: bool = False
    #: ``BusOptions.heartbeat``: with ``interleave`` also the heartbeat task of each listener
    heartbeat: bool = True
    #: contract v1.3 reads: each order's script gets ``GetOrder`` reads (one after a seeded write,
    #: one after its last step: :func:`flowgate.harness.workload.generate_orders`), every ``OrderState``
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
