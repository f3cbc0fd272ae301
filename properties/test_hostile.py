"""Property 9: hostile inputs -- the catalog's kinds and generated structured mutations --
interleaved with valid orders on the deterministic simulator (encryption on and off, FIFO and
standard queues):

(a) no exception ever leaves a poll (``Simulation.poll`` calls ``SqsListener.poll_once``
    directly, so anything it raises fails the example);
(b) every valid command takes effect exactly once with its events published and its views
    complete (``check_all``);
(c) every hostile message ends as documented: a ``dead_letter`` op from the listener with the
    catalog's ``DeadLetterReason`` code (generated mutations: any agreed code, the outcome model
    decides dead letter vs applied), or it takes effect once (``Applied``) / is business
    dead-lettered (``flowgate.harness.hostile.observe.hostile_problems``).

Failing examples shrink to one message and print the ``flowgate replay ...`` command that
rebuilds the run, hostile message included (its kind or ``~`` spec is in ``--faults``).
"""

from __future__ import annotations

import pytest
from hypothesis import given, note, settings

from flowgate.harness import hostile
from flowgate.harness.faults import FaultPlan
from flowgate.harness.hostile.observe import hostile_problems
from flowgate.harness.hostile_strategies import hostile_runs
from flowgate.harness.simulation import SimConfig, SimResult, run_simulation
from properties.support import active_mutant, assert_valid, sim_label

CHECKERS = (
    "total_queue",
    "per_entity_order",
    "exactly_once_effect",
    "replay_equivalence",
    "dead_letter",
    "confidentiality_integrity",
    "resolution",
)

#: Kinds the reference of this branch does not handle as documented (docs/hostile.md, bold cells)
#: -> what it does instead, on every bus it applies to. Each is a strict xfail below: a fix makes
#: its tests XPASS, which fails the run until the entry is removed. (Before the decode,
#: routing and idempotency fixes were merged, 35 kinds were listed here; the last three --
#: both_type_attributes, env_version_true, env_version_float -- were fixed with mutants that
#: reintroduce them; see docs/hostile.md.)
KNOWN_DEFECTS: dict[str, str] = {}
#: The generated mutations that reach the same defects (kept out of the generator property until
#: the kind above is fixed; the kind's own strict xfail says when).
KNOWN_DEFECT_MUTATIONS: dict[str, tuple[str, ...]] = {}


def _sent(result: SimResult, name: str) -> bool:
    return any(
        op.process == "harness"
        and op.f in ("poison", "send")
        and name in (op.value.get("kind"), op.value.get("hostile"))
        for op in result.history.ops
    )


def run(config: SimConfig) -> SimResult:
    """(a): the run, with the replay command attached to anything a poll raised."""
    try:
        return run_simulation(config)
    except Exception as exc:
        raise AssertionError(
            f"flowgate-anomalies: poll-raised\n{type(exc).__name__} left a poll; "
            f"replay: {config.replay_command(active_mutant())}"
        ) from exc


def judge(result: SimResult) -> None:
    """(b) and (c); raises AssertionError with the replay command."""
    assert_valid(result, CHECKERS)
    problems = hostile_problems(result.history.ops)
    if problems:
        raise AssertionError(
            "flowgate-anomalies: hostile-outcome\n"
            f"seed {result.seed}; replay: {result.replay_command()}\n  " + "\n  ".join(problems)
        )


def _cases() -> list[object]:
    out: list[object] = []
    for k in hostile.CATALOG.values():
        for encrypted in (False, True):
            for fifo in (True, False):
                if not k.applies(encrypted=encrypted, fifo=fifo):
                    continue
                marks = []
                defect = KNOWN_DEFECTS.get(k.name)
                if defect:
                    marks.append(pytest.mark.xfail(strict=True, reason=f"known defect: {defect}"))
                label = (
                    f"{k.name}-{'encrypted' if encrypted else 'plaintext'}-{'fifo' if fifo else 'standard'}"
                )
                out.append(pytest.param(k.name, encrypted, fifo, marks=marks, id=label))
    return out


@pytest.mark.parametrize(("name", "encrypted", "fifo"), _cases())
def test_catalog_kind(name: str, encrypted: bool, fifo: bool) -> None:
    """One message of one catalog kind between valid orders ends as documented."""
    sim_label("Dead letters", "hostile inputs: catalog", name)
    for seed in range(6):  # identity kinds need an applied/pending command when they are sent
        config = SimConfig(
            seed=seed, orders=3, workers=2, fifo=fifo, encryption=encrypted, faults=FaultPlan(poison=(name,))
        )
        result = run(config)
        if _sent(result, name):
            judge(result)
            return
    pytest.fail(f"{name} was never sent in 6 seeds")


def _avoids_known_defects(config: SimConfig) -> bool:
    for name in config.faults.poison:
        if name in KNOWN_DEFECTS:
            return False
        for kind, fragments in KNOWN_DEFECT_MUTATIONS.items():
            if kind in KNOWN_DEFECTS and any(f in name for f in fragments):
                return False
    return True


@settings(max_examples=max(200, settings.default.max_examples))  # ~20 ms an example: 200 in a few seconds
@given(hostile_runs().filter(_avoids_known_defects))
def test_hostile_messages_between_valid_orders(config: SimConfig) -> None:
    """Catalog kinds and generated mutations, interleaved with valid orders, end as documented."""
    sim_label("Dead letters", "hostile inputs: generator", "structured mutations between valid orders")
    note(f"replay: {config.replay_command(active_mutant())}")
    judge(run(config))
