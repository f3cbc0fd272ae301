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
    dead-lettered (``harness.hostile.observe.hostile_problems``).

Failing examples shrink to one message and print the ``flowgate replay ...`` command that
rebuilds the run, hostile message included (its kind or ``~`` spec is in ``--faults``).
"""

from __future__ import annotations

import pytest
from hypothesis import given, note

from harness import hostile
from harness.faults import FaultPlan
from harness.hostile.observe import hostile_problems
from harness.hostile_strategies import hostile_runs
from harness.simulation import SimConfig, SimResult, run_simulation
from properties.support import active_mutant, assert_valid, sim_label

CHECKERS = (
    "total_queue",
    "per_entity_order",
    "exactly_once_effect",
    "replay_equivalence",
    "dead_letter",
    "confidentiality_integrity",
)

_APPLIED = "applied: the decoder accepts it"
#: Kinds the reference of this branch does not handle as documented (docs/hostile.md, bold cells)
#: -> what it does instead, on every bus it applies to. Each is a strict xfail below: a fix makes
#: its tests XPASS, which fails the run until the entry is removed.
KNOWN_DEFECTS: dict[str, str] = {
    "deep_body": "RecursionError out of poll_once (json.loads; the whole batch is lost for the poll)",
    "deep_payload": "RecursionError out of poll_once",
    "deep_sealed_plaintext": "RecursionError out of poll_once",
    "deep_envelope": "RecursionError out of poll_once (parse_envelope catches ValueError/KeyError/TypeError only)",
    "depth_17": _APPLIED + " (no depth limit)",
    "duplicate_payload_key": _APPLIED + " (the last quantity wins)",
    "duplicate_metadata_key": _APPLIED + " (the last eventId wins)",
    "nan_in_unknown_field": _APPLIED + " (NaN is not JSON)",
    "infinity_in_unknown_field": _APPLIED + " (-Infinity is not JSON)",
    "overflow_float": _APPLIED + " (1e999 parses to inf)",
    "amount_huge": _APPLIED + " (10^30 stored; PostgreSQL BIGINT refuses it)",
    "is_replay_string": _APPLIED + ' (bool("yes"))',
    "correlation_number": _APPLIED + " (str(5))",
    "occurred_on_garbage": _APPLIED,
    "nul_in_string": _APPLIED + " (PostgreSQL text refuses NUL)",
    "lone_surrogate_escape": "applied, then every publish of its event fails (SNS refuses the text): "
    "redelivered until SQS's redrive moves it to the DLQ without a reason",
    "quantity_int64_overflow": _APPLIED + " (2^63 stored; PostgreSQL BIGINT refuses it)",
    "nul_in_key": _APPLIED,
    "entity_id_too_long": _APPLIED + " (129-char entity id; MessageGroupId of its events is invalid)",
    "entity_id_spaces": _APPLIED,
    "entity_id_non_ascii": _APPLIED,
    "entity_id_newline": _APPLIED,
    "event_id_too_long": _APPLIED,
    "event_id_spaces": _APPLIED,
    "event_id_empty": _APPLIED + ' (idempotency key "command:")',
    "seq_zero": _APPLIED,
    "seq_negative": _APPLIED,
    "seq_int64_overflow": _APPLIED,
    "both_type_attributes": _APPLIED + " (CommandType wins over EventType)",
    "event_on_command_queue": "projected into the views by the command queue's listener",
    "command_on_view_queue": "applied by the view queue's listener (it has the sagas)",
    "env_version_true": "decrypted and applied: Version true == 1 passes the version check",
    "env_version_float": "decrypted and applied: Version 1.0 == 1 passes the version check",
    "reused_event_id_applied": "deleted silently as a duplicate (its outbox re-published), never dead-lettered",
    "reused_event_id_pending": "deleted silently as a duplicate once the genuine command applied",
}


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


GENERATED_DEFECTS = (
    "today's reference: RecursionError out of poll_once on deep nesting; NaN/Infinity/1e999, duplicate "
    "keys, depth > 16, NUL/lone surrogates, out-of-int64 integers, bad ids/sequence numbers/occurredOn/"
    "isReplay/correlationId and CommandType+EventType accepted and applied; a reused eventId with other "
    "content silently dropped as a duplicate"
)


@pytest.mark.xfail(strict=True, reason=GENERATED_DEFECTS)
@given(hostile_runs())
def test_hostile_messages_between_valid_orders(config: SimConfig) -> None:
    """Catalog kinds and generated mutations, interleaved with valid orders, end as documented."""
    sim_label("Dead letters", "hostile inputs: generator", "structured mutations between valid orders")
    note(f"replay: {config.replay_command(active_mutant())}")
    judge(run(config))
