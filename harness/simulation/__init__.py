"""Deterministic simulation of the reference bus on the simulated AWS (``flowgate sim`` / ``replay``).

One run = the order domain (``OrderSaga`` + order/inventory/payments views) on
``orders.fifo`` (or standard ``orders``), events on ``order-events[.fifo]`` fanned out to
``order-views[.fifo]``, N workers (each a full :class:`flowgate.reference.worker.Runtime` with a command
listener and a views listener), producers sending scripted order lifecycles, and a nemesis that
injects faults at the listener's named fault points. The run's choices come from
``random.Random(seed)`` (scheduler, nemesis, producers and, through the ``flowgate.reference.hooks``
randomness seam, the envelope nonces), interleaved runs' task choices from a second stream
``random.Random(f"{seed}/processes")``, all against a :class:`~flowgate.harness.sim.VirtualClock`: the
same seed and config give the same history byte for byte (``tests/sim/test_sim_determinism.py``,
``tests/simulation/test_simulation.py``). No patch is installed for this: the reference draws
its randomness through the seam.

The run records a :class:`~flowgate.harness.history.History` (worker/producer observations, nemesis
faults recorded *before* they act, harness ``poison``/``wire``/``drain``/``state``/``replay``
ops) and judges it with :func:`flowgate.harness.checkers.check_all`.

Outages (``--faults outage=...``, :mod:`flowgate.harness.outages`): the nemesis takes a dependency of the
workers down for ``outage_length`` visibility timeouts (``outage`` invoke/ok ops). Meanwhile the
producers hold their sends (a client outside the outage would retry; the run is about the
workers), the workers keep being polled and time passes; the harness's own SQS/KMS clients are
exempt from cut endpoints.

Worker processes (``--interleave``, ``SimConfig.interleave``, :mod:`flowgate.harness.sim.processes`):
each worker is a process with its own clients, runtime and store client, and its polls are tasks
interleaved at every AWS call, store call and handler step by a scheduler with its own seeded
RNG; a ``slow_handler`` sleeps past the visibility timeout while the others run, and the
listener's heartbeat runs as a task of its process (``docs/simulator.md``).

The modules, one job each:

* :mod:`~flowgate.harness.simulation.config` -- :class:`SimConfig` (what determines a run) and :class:`SimResult`;
* :mod:`~flowgate.harness.simulation.core` -- :class:`Simulation`: the timeline and its single steps (send,
  resend, poll, arm a fault, advance time, poison, drain, finish), so a hypothesis state machine
  can drive it rule by rule;
* :mod:`~flowgate.harness.simulation.schedule` -- the seeded scheduler and :func:`run_simulation`;
* :mod:`~flowgate.harness.simulation.workers` -- the worker processes (built, replaced, polled);
* :mod:`~flowgate.harness.simulation.producers` -- the orders and the producers that send them;
* :mod:`~flowgate.harness.simulation.nemesis` -- the faults, their budget and RNG, through the fault seam;
* :mod:`~flowgate.harness.simulation.outage` -- the outage nemesis;
* :mod:`~flowgate.harness.simulation.poison` -- hostile messages of the :mod:`flowgate.harness.hostile` catalog;
* :mod:`~flowgate.harness.simulation.observer` -- the history observers, what the workers report, wire
  samples and reads;
* :mod:`~flowgate.harness.simulation.store` -- the simulator's store (outage switch, the nemesis's hook);
* :mod:`~flowgate.harness.simulation.randomness` -- the seeded source for the randomness seam;
* :mod:`~flowgate.harness.simulation.drain` -- drain, snapshots, verdicts and stats;
* :mod:`~flowgate.harness.simulation.cli` -- ``flowgate sim`` / ``flowgate replay``.
"""

from __future__ import annotations

from flowgate.harness.simulation.cli import _config, _parser, main, replay_main
from flowgate.harness.simulation.config import IDEMPOTENCY_MODES, POLL_SLICE, SimConfig, SimResult
from flowgate.harness.simulation.core import Simulation
from flowgate.harness.simulation.schedule import quiet_reference, run_simulation

#: the name the properties and tests import (kept)
_quiet_reference = quiet_reference

__all__ = [
    "IDEMPOTENCY_MODES",
    "POLL_SLICE",
    "SimConfig",
    "SimResult",
    "Simulation",
    "_config",
    "_parser",
    "main",
    "replay_main",
    "run_simulation",
]
