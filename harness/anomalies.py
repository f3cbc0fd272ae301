"""The one registry of anomaly kinds, and the check that every name in use is in it.

An anomaly kind is a short name (``lost``, ``duplicate-effect``, ``scenario:torn-batch``) that
travels as a plain string between the code that reports a defect and everything that reacts to
it: the checkers and the gate construct :class:`flowgate.harness.checkers.model.Anomaly` values with it,
the property tests print it after ``flowgate-anomalies:``, ``reports/categories.json`` matches it
in failure messages, the mutant catalogs (:data:`flowgate.harness.mutants.catalog.MUTANTS` ``expected``,
:data:`flowgate.harness.gate.mutants.CATALOG` / ``REFERENCE_GATE`` ``expect``) list the kinds that count
as killing a mutant. A typo in any of these would silently never match, so:

* :data:`KINDS` maps every kind to its one-line meaning and the files that emit it;
* :class:`~flowgate.harness.checkers.model.Anomaly` refuses a kind that is not registered;
* :func:`flowgate.harness.anomaly_checks.repository_problems` (run by
  ``tests/checkers/test_anomaly_registry.py``) finds every
  kind the code emits (statically, with :mod:`ast`: the first argument of each ``Anomaly(...)``
  and ``EventMapper.violation(...)`` call, each literal ``flowgate-anomalies: <kinds>`` marker)
  and every kind named in the categories and the mutant expectations, and reports each one that
  is not registered (with the nearest registered names), each registered emitter that does not
  name its kind, and each emitting call whose kind it cannot resolve to literals and that
  :data:`RELAYS` does not explain.

The history's operation names (``Op.f``) have their own vocabulary: :data:`OPERATIONS`, the
reference's :data:`flowgate.reference.hooks.OBSERVATIONS` plus the ops the harness itself records.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from flowgate.reference.hooks import OBSERVATIONS

ROOT: Final = Path(__file__).resolve().parents[1]

#: The prefix of a scenario's kind: a label for a LocalStack scenario's assertion, named only in
#: the mutant catalog (the scenario's failure is what kills the mutant).
SCENARIO_PREFIX: Final = "scenario:"
#: The marker a property test prints before the comma-separated kinds it found
#: (``flowgate mutants`` reads it back).
MARKER: Final = "flowgate-anomalies: "


@dataclass(frozen=True, slots=True)
class AnomalyKind:
    """What one anomaly kind means and which files emit it (repo-relative paths)."""

    meaning: str
    emitters: tuple[str, ...]
    #: ``False``: a label only (a scenario's, or a mutant's whose killer test fails by assertion
    #: without printing it); no emitter file needs to contain the name
    reported: bool = True


def _k(meaning: str, *emitters: str, reported: bool = True) -> AnomalyKind:
    return AnomalyKind(meaning, emitters, reported)


_TQ = "harness/checkers/total_queue.py"
_ORDER = "harness/checkers/order.py"
_ONCE = "harness/checkers/exactly_once.py"
_DL = "harness/checkers/dead_letter.py"
_CONF = "harness/checkers/confidentiality.py"
_READS = "harness/checkers/reads.py"
_OUTAGE = "harness/checkers/outage.py"
_CLUSTER = "harness/gate/cluster.py"
_REPLAYER = "harness/gate/replayer.py"
_GDLQ = "harness/gate/dlq.py"
_OBSERVE = "harness/gate/observe.py"
_GCAT = "harness/gate/catalog.py"
_PRODUCERS = "properties/test_producers.py"
_DETECT = "properties/test_detection.py"
_CLEANUP = "properties/test_idempotency_cleanup.py"
_TELEMETRY = "properties/test_telemetry.py"
_DK = "properties/test_data_key_cache.py"
_SERIAL = "properties/test_serialization.py"

#: Every anomaly kind, by name. Add a kind here before any code emits or expects it.
KINDS: Final[Mapping[str, AnomalyKind]] = {
    # -- history checkers (harness/checkers), run by the simulation, the properties and the gate
    "lost": _k("an acknowledged command never took effect by the drain", _TQ, _PRODUCERS),
    "unexpected": _k("an effect for a command never sent, or whose send failed", _TQ),
    "duplicated": _k("more than one effect recorded for one command id", _TQ, _PRODUCERS),
    "no-drain": _k("the run never drained: loss / dead-lettering cannot be judged", _TQ, _DL),
    "nonmonotonic": _k("an entity's effect whose seq is not above one already applied", _ORDER, _PRODUCERS),
    "skip": _k("a seq applied while a lower seq that had to be applied was not yet", _ORDER),
    "duplicate-effect": _k("one command's effect committed more than once", _ONCE),
    "duplicate-projection": _k("one event projected more than once into one view", _ONCE),
    "dedup-not-effective": _k(
        "a FIFO queue delivered two copies inside the deduplication window", "harness/checkers/dedup.py"
    ),
    "replay-divergence": _k(
        "replaying the command store gives a state other than the live one",
        "harness/checkers/replay.py",
        _REPLAYER,
    ),
    "poison-not-dead-lettered": _k("a poison message has no dead letter by the drain", _DL),
    "dead-letter-without-reason": _k("a dead letter carries no DeadLetterReason", _DL),
    "wrong-dead-letter-reason": _k("a poison op's reason_code does not match its dead letter's reason", _DL),
    "dead-letter-wrong-reason": _k("a poison op's expected_reason code differs from its dead letter's", _DL),
    "valid-dead-lettered": _k("an acknowledged valid command was dead-lettered", _DL),
    "unexpected-business-dead-letter": _k(
        "a command not expected to fail was dead-lettered BusinessError", _DL
    ),
    "unresolved": _k(
        "a message still in a queue or DLQ after the drain, neither effected nor settled",
        "harness/checkers/resolution.py",
    ),
    "plaintext-on-wire": _k("an encrypted wire sample contains one of its plaintext markers", _CONF),
    "unencrypted-wire": _k("a wire sample is not encrypted although encryption is required", _CONF),
    "integrity-breach": _k("an effect or projection caused by tampered / hostile poison", _CONF),
    "double-effect": _k("a read shows one command applied more than once", _READS),
    "read-mismatch": _k("a read differs from the model's state at its seq", _READS),
    "poll-escaped": _k("an error escaped a listener's poll instead of being handled", _OUTAGE),
    "receive-while-open": _k("a listener received while its circuit breaker was open", _OUTAGE),
    "health-not-restored": _k("a worker is not healthy after the run drained", _OUTAGE),
    "outage-receive-storm": _k("a message was received again and again during an outage", _OUTAGE),
    "outage-not-reported": _k("no worker reported the failing dependency degraded during an outage", _OUTAGE),
    # -- the gate's own checks (harness/gate): lifecycle, replay, queues, capabilities
    "sigterm-timeout": _k("an instance did not exit within the grace period after SIGTERM", _CLUSTER),
    "sigterm-exit-code": _k("an instance exited non-zero after SIGTERM", _CLUSTER),
    "sigterm-abandoned-messages": _k(
        "an instance exited after SIGTERM with messages still in flight", "harness/gate/phases.py"
    ),
    "crashed": _k("an instance exited on its own during the run", _CLUSTER),
    "replay-failed": _k("the implementation's replay mode failed or reported errors", _REPLAYER),
    "replay-published": _k("events reached the topic while replay ran (replay must not publish)", _REPLAYER),
    "redrive-policy-changed": _k(
        "a queue's RedrivePolicy differs after the run from what the gate set", "harness/gate/drain.py"
    ),
    "dead-letter-group-changed": _k("a dead letter's MessageGroupId is not its command's", _GDLQ),
    "dead-letter-reason": _k("a dead letter's DeadLetterReason is not a code of contract section 6", _GDLQ),
    "capability-missing": _k(
        "a capability the profile requires is not declared on the ready line", "harness/gate/judge.py"
    ),
    # -- the gate's event-contract violations (harness/gate/observe.py EventMapper.violation)
    "undecryptable-event": _k("an event message could not be opened", _OBSERVE),
    "malformed-event": _k("an event body does not follow event.schema.json", _OBSERVE),
    "missing-attribute": _k("an event message lacks a required message attribute", _OBSERVE),
    "attribute-mismatch": _k("an event's message attribute differs from its body", _OBSERVE),
    "wrong-entity-or-seq": _k("an event names another entity or seq than its command", _OBSERVE),
    "correlation-not-propagated": _k("an event's correlationId is not its command's", _OBSERVE),
    "event-id-not-derived": _k("an event's id is not uuid5(commandId, 'index:<type>')", _OBSERVE),
    # -- the gate's hostile catalog (harness/gate/catalog.py)
    "hostile-not-sent": _k("a planned hostile kind could not be sent: it was not judged", _GCAT),
    "hostile-applied": _k("a hostile message that must be dead-lettered took effect", _GCAT),
    "hostile-not-dead-lettered": _k("a hostile message that must be dead-lettered was not", _GCAT),
    "hostile-dead-letter-without-reason": _k("a hostile message was dead-lettered without a reason", _GCAT),
    "hostile-wrong-reason": _k("a hostile message was dead-lettered with another reason code", _GCAT),
    "hostile-dead-lettered": _k("a hostile-looking message that must apply was dead-lettered", _GCAT),
    "hostile-not-applied": _k("a hostile-looking message that must apply had no effect", _GCAT),
    # -- property tests' own findings (``flowgate-anomalies:`` markers)
    "false-alarm": _k("an alarm fired on a healthy run", "harness/detection.py", _DETECT),
    "alarm-not-fired": _k("an injected problem did not fire its alarm", "harness/detection.py"),
    "alarm-not-cleared": _k("an alarm stayed on after its problem ended", "harness/detection.py"),
    "backlog-wrong": _k("the monitor's backlog figure differs from the queue's", _DETECT),
    "error-path": _k("the monitoring's error path raised instead of reporting", _DETECT),
    "lost-not-reported": _k(
        "a command taken out of a history was not judged lost by total_queue",
        "properties/test_saga_commands.py",
    ),
    "saga-flow": _k(
        "a paid order did not issue exactly one of each follow-up command, or one never applied",
        "properties/test_saga_commands.py",
    ),
    "poll-raised": _k("a hostile message made a listener's poll raise", "properties/test_hostile.py"),
    "hostile-outcome": _k("a hostile message's outcome is not the catalog's", "properties/test_hostile.py"),
    "deleted-unexpired": _k("the idempotency cleaner deleted an unexpired record", _CLEANUP),
    "not-deleted": _k("the idempotency cleaner left an expired record", _CLEANUP),
    "deleted-in-flight": _k("the idempotency cleaner deleted an in-flight claim", _CLEANUP),
    "never-swept": _k("the idempotency cleaner never ran on its interval", _CLEANUP),
    "missing-metric": _k("a seed metric was never emitted", _TELEMETRY),
    "missing-span": _k("a processing step emitted no span", _TELEMETRY),
    "health-ok-while-missing": _k("health said ok while a dependency was missing", _TELEMETRY),
    "broken-trace": _k(
        "one order is not one trace from the client command to the view update", _TELEMETRY, reported=False
    ),
    "heartbeat-dead": _k(
        "a failing heartbeat stopped extending the other flights", "properties/test_outages.py"
    ),
    "data-key-over-message-bound": _k("a cached data key sealed more messages than its bound", _DK),
    "data-key-over-byte-bound": _k("a cached data key sealed more bytes than its bound", _DK),
    "data-key-over-age": _k("a cached data key was used past its maximum age", _DK),
    "data-key-across-destinations": _k("one cached data key sealed messages for two destinations", _DK),
    "data-key-not-wiped": _k("a cached data key's plaintext was not wiped when evicted", _DK),
    "round-trip": _k(
        "a registered message type does not round-trip the wire format", _SERIAL, reported=False
    ),
    "schema": _k("an encoded message does not follow its JSON schema", _SERIAL, reported=False),
    # -- LocalStack scenarios' labels (the mutant catalog only)
    "scenario:torn-batch": _k(
        "SIGTERM left the batch in hand unfinished", "scenarios/test_chaos.py", reported=False
    ),
    "scenario:worker-died-in-outage": _k(
        "a worker stopped consuming after a LocalStack outage",
        "scenarios/test_localstack_restart.py",
        reported=False,
    ),
    "scenario:correlation-id": _k(
        "an event does not carry its command's correlation id", "scenarios/test_lifecycle.py", reported=False
    ),
    "scenario:causation-id": _k(
        "an event does not carry the eventId of its command", "scenarios/test_lifecycle.py", reported=False
    ),
    "scenario:taken-over-despite-heartbeat": _k(
        "a slow message was redelivered although its lease was extended",
        "scenarios/test_chaos.py",
        reported=False,
    ),
    "scenario:iam-denied": _k(
        "a call outside the role's grants, or a grant never used", "scenarios/test_iam.py", reported=False
    ),
    "scenario:simulator-divergence": _k(
        "the simulator disagrees with LocalStack", "scenarios/test_fidelity.py", reported=False
    ),
}

#: Emitting calls whose kind is not a literal, by ``path::qualified function``: where their kinds
#: come from (those sources are checked where they are literal).
RELAYS: Final[Mapping[str, str]] = {
    "harness/gate/observe.py::EventMapper.verdict": "the kinds EventMapper.violation recorded",
    "harness/detection.py::Detection.verdict": "the literal kinds detection_problems collected",
    "harness/mutants/cli.py::<module>": "reads the markers back (a regex); emits nothing",
    "properties/support.py::assert_valid": "the kinds of the checkers' verdicts",
    "properties/test_data_key_cache.py::anomalies": "its callers' literal data-key-* kinds",
    "properties/test_idempotency_cleanup.py::test_a_sweep_deletes_exactly_the_expired_and_abandoned_records": (
        "the literal deleted-unexpired / not-deleted"
    ),
    "properties/test_producers.py::test_refusals_and_send_failures_never_block_an_entity": (
        "the literal lost / duplicated / nonmonotonic"
    ),
}


#: The history's operation names (``Op.f``) beyond the reference's
#: :data:`flowgate.reference.hooks.OBSERVATIONS`: what the harness (simulation, gate, scenario fixtures)
#: records, and the few the reference records outside ``OBSERVATIONS``. Nemesis ops that no reader
#: looks for are free-form timeline labels and need not be here.
HARNESS_OPERATIONS: Final[Mapping[str, str]] = {
    "drain": "the run drained: every queue empty (ok), or the drain gave up (info)",
    "wire": "a sample of a message body as it crossed the bus (confidentiality checks)",
    "read": "a read of an entity's state at a seq (read_state)",
    "state": "an entity's live state at the end of a run (replay_equivalence)",
    "replay": "the state a replay of the command store rebuilt (replay_equivalence); nemesis: a replay run",
    "health": "a worker's health report (outage)",
    "poll": "a listener's poll; fail: an error escaped it (outage)",
    "poison": "a poison / hostile message the harness sent (dead_letter, confidentiality)",
    "hostile": "nemesis: the gate's hostile-catalog phase",
    "outage": "nemesis: a dependency outage began",
    "kill": "nemesis: a worker was SIGKILLed",
    "restart": "nemesis: a worker was restarted",
    "duplicate_delivery": "nemesis: a message was delivered again on purpose",
    "contract_violation": "the gate saw an event break the wire contract (kind: an anomaly kind)",
    "start": "the gate started an implementation instance",
    "exited": "an implementation instance exited",
    "plan": "the gate's plan of the run",
    "not_ready": "instances that never printed their ready line",
    "capabilities": "the capabilities an implementation declared on its ready line",
    "crash": "the reference worker died at a fault point (recorded outside OBSERVATIONS)",
    "stall": "the reference worker stalled at a fault point (recorded outside OBSERVATIONS)",
    "dlq_replay": "the DLQ replay tool moved a dead letter back to its source queue",
    "localstack_restart": "nemesis: the LocalStack instance was restarted",
    "note": "a scenario's free-form note for the report",
}

#: Every operation name a history may use: the reference's observations, then the harness's.
OPERATIONS: Final[Mapping[str, str]] = {
    **{f: "reference observation (" + ", ".join(fields) + ")" for f, fields in OBSERVATIONS.items()},
    **HARNESS_OPERATIONS,
}


class UnknownAnomalyKind(ValueError):
    """An anomaly kind that :data:`KINDS` does not register."""


def suggest(kind: str, registry: Mapping[str, AnomalyKind] = KINDS) -> list[str]:
    """The registered kinds nearest to ``kind`` (a typo's likely intent)."""
    return difflib.get_close_matches(kind, list(registry), n=3, cutoff=0.6)


def require(kind: str, registry: Mapping[str, AnomalyKind] = KINDS) -> str:
    """``kind`` itself when it is registered; :class:`UnknownAnomalyKind` otherwise."""
    if kind not in registry:
        near = suggest(kind, registry)
        hint = f" (did you mean {', '.join(near)}?)" if near else ""
        raise UnknownAnomalyKind(
            f"unregistered anomaly kind {kind!r}{hint}: add it to harness/anomalies.py KINDS"
        )
    return kind
