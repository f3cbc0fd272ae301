"""The one registry of anomaly kinds, and the check that every name in use is in it.

An anomaly kind is a short name (``lost``, ``duplicate-effect``, ``scenario:torn-batch``) that
travels as a plain string between the code that reports a defect and everything that reacts to
it: the checkers and the gate construct :class:`harness.checkers.model.Anomaly` values with it,
the property tests print it after ``flowgate-anomalies:``, ``reports/categories.json`` matches it
in failure messages, the mutant catalogs (:data:`harness.mutants.catalog.MUTANTS` ``expected``,
:data:`harness.gate.mutants.CATALOG` / ``REFERENCE_GATE`` ``expect``) list the kinds that count
as killing a mutant. A typo in any of these would silently never match, so:

* :data:`KINDS` maps every kind to its one-line meaning and the files that emit it;
* :class:`~harness.checkers.model.Anomaly` refuses a kind that is not registered;
* :func:`repository_problems` (run by ``tests/checkers/test_anomaly_registry.py``) finds every
  kind the code emits (statically, with :mod:`ast`: the first argument of each ``Anomaly(...)``
  and ``EventMapper.violation(...)`` call, each literal ``flowgate-anomalies: <kinds>`` marker)
  and every kind named in the categories and the mutant expectations, and reports each one that
  is not registered (with the nearest registered names), each registered emitter that does not
  name its kind, and each emitting call whose kind it cannot resolve to literals and that
  :data:`RELAYS` does not explain.

The history's operation names (``Op.f``) have their own vocabulary: :data:`OPERATIONS`, the
reference's :data:`reference.hooks.OBSERVATIONS` plus the ops the harness itself records.
"""

from __future__ import annotations

import ast
import difflib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from reference.hooks import OBSERVATIONS

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
#: :data:`reference.hooks.OBSERVATIONS`: what the harness (simulation, gate, scenario fixtures)
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


# ------------------------------------------------------------------ what the code emits (ast)
#: Calls whose first argument is an anomaly kind: ``Anomaly(kind, ...)`` and
#: ``EventMapper.violation(kind, ...)`` (the gate's contract violations).
_EMITTING_CALLS: Final = frozenset({"Anomaly", "violation"})
_MARKER_KINDS = re.compile(r"[\w,-]+")


@dataclass(slots=True)
class Emissions:
    """What the source says: each literal kind with its ``path:line`` sites, and the emitting
    calls whose kind is not a literal (``path::function`` -> ``path:line`` sites)."""

    kinds: dict[str, list[str]] = field(default_factory=dict)
    dynamic: dict[str, list[str]] = field(default_factory=dict)


class _Collector(ast.NodeVisitor):
    def __init__(self, path: str, out: Emissions) -> None:
        self.path = path
        self.out = out
        self.scope: list[ast.AST] = []  # the enclosing functions and classes, innermost last
        self.names: list[str] = []

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> None:
        self.names.append(node.name)
        self.scope.append(node)
        self.generic_visit(node)
        self.scope.pop()
        self.names.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _function

    def _site(self, node: ast.AST) -> str:
        return f"{self.path}:{getattr(node, 'lineno', 0)}"

    def _add(self, kind: str, node: ast.AST) -> None:
        self.out.kinds.setdefault(kind, []).append(self._site(node))

    def _dynamic(self, node: ast.AST) -> None:
        where = f"{self.path}::{'.'.join(self.names) or '<module>'}"
        self.out.dynamic.setdefault(where, []).append(self._site(node))

    def _literals(self, node: ast.expr) -> set[str] | None:
        """The string literals ``node`` can evaluate to, ``None`` when not statically known.

        A name is resolved through its assignments in the enclosing function (a tuple
        assignment position by position); ``""`` (no anomaly) is left out."""
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return {node.value} - {""}
        if isinstance(node, ast.IfExp):
            body, orelse = self._literals(node.body), self._literals(node.orelse)
            return None if body is None or orelse is None else body | orelse
        if isinstance(node, ast.Name) and self.scope:
            found: set[str] = set()
            handled: set[int] = set()  # the Name targets of the assignments understood here
            for sub in ast.walk(self.scope[-1]):
                if not isinstance(sub, ast.Assign):
                    continue
                for target in sub.targets:
                    values = _bound(target, sub.value, node.id)
                    if values is None:
                        return None
                    for value in values:
                        literal = self._literals(value)
                        if literal is None:
                            return None
                        found |= literal
                    handled |= {
                        id(n) for n in ast.walk(target) if isinstance(n, ast.Name) and n.id == node.id
                    }
            # bound any other way (a parameter, a loop, ``+=``, a walrus): not statically known
            for sub in ast.walk(self.scope[-1]):
                stored = isinstance(sub, ast.Name) and sub.id == node.id and isinstance(sub.ctx, ast.Store)
                if stored and id(sub) not in handled:
                    return None
            return found or None
        return None

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
        if name in _EMITTING_CALLS and node.args:
            kinds = self._literals(node.args[0])
            if kinds is None:
                self._dynamic(node)
            for kind in kinds or ():
                self._add(kind, node)
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str) and node.value.startswith(MARKER):
            match = _MARKER_KINDS.match(node.value, len(MARKER))
            if match is None:
                self._dynamic(node)
            else:
                for kind in match.group().split(","):
                    self._add(kind, node)


def _bound(target: ast.expr, value: ast.expr, name: str) -> list[ast.expr] | None:
    """The expressions ``target = value`` may bind to ``name``: ``[]`` when it does not bind
    ``name``, ``None`` when it does in a way not understood here (``a, b = f()``)."""
    if not any(isinstance(n, ast.Name) and n.id == name for n in ast.walk(target)):
        return []
    if isinstance(target, ast.Name):
        return [value]
    if isinstance(value, ast.IfExp):
        body, orelse = _bound(target, value.body, name), _bound(target, value.orelse, name)
        return None if body is None or orelse is None else body + orelse
    if isinstance(target, ast.Tuple) and isinstance(value, ast.Tuple) and len(target.elts) == len(value.elts):
        out: list[ast.expr] = []
        for t, v in zip(target.elts, value.elts, strict=True):
            found = _bound(t, v, name)
            if found is None:
                return None
            out += found
        return out
    return None


def collect_emissions(files: Iterable[Path], root: Path = ROOT) -> Emissions:
    """Every anomaly kind the Python ``files`` emit, found statically (see :class:`Emissions`)."""
    out = Emissions()
    for path in sorted(files):
        rel = path.resolve().relative_to(root.resolve()).as_posix() if path.is_absolute() else path.as_posix()
        # the registry names every kind and the marker itself; it emits none
        if rel == "harness/anomalies.py":
            continue
        _Collector(rel, out).visit(ast.parse(path.read_text(encoding="utf-8"), filename=rel))
    return out


def emitting_sources(root: Path = ROOT) -> list[Path]:
    """The files that may emit anomalies: the harness and the property tests."""
    return sorted([*(root / "harness").rglob("*.py"), *(root / "properties").glob("*.py")])


# ------------------------------------------------------------------ operation names (ast)
#: Calls recording an op with a literal name: ``History.append(process, type, f, ...)`` (the
#: name third), ``History.nemesis(f, ...)`` and an observer's ``observe(f, ...)`` (first).
_RECORDING_CALLS: Final[Mapping[str, int]] = {"append": 2, "nemesis": 0, "observe": 0}


@dataclass(slots=True)
class OperationUse:
    """Op names by ``path:line``: compared with ``op.f`` (read), recorded literally (by any of
    :data:`_RECORDING_CALLS`), and recorded by ``History.append`` (not a nemesis label)."""

    read: dict[str, list[str]] = field(default_factory=dict)
    recorded: dict[str, list[str]] = field(default_factory=dict)
    appended: dict[str, list[str]] = field(default_factory=dict)


def collect_operations(files: Iterable[Path], root: Path = ROOT) -> OperationUse:
    """The op names ``files`` compare ``<op>.f`` with, and the ones they record literally."""
    out = OperationUse()
    for path in sorted(files):
        rel = path.resolve().relative_to(root.resolve()).as_posix() if path.is_absolute() else path.as_posix()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=rel)):
            site = f"{rel}:{getattr(node, 'lineno', 0)}"
            if (
                isinstance(node, ast.Compare)
                and isinstance(node.left, ast.Attribute)
                and node.left.attr == "f"
            ):
                for compared in node.comparators:
                    for sub in ast.walk(compared):
                        if isinstance(sub, ast.Constant) and isinstance(sub.value, str):
                            out.read.setdefault(sub.value, []).append(site)
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                position = _RECORDING_CALLS.get(node.func.attr)
                if position is None or len(node.args) <= position:
                    continue
                arg = node.args[position]
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    out.recorded.setdefault(arg.value, []).append(site)
                    if node.func.attr == "append":
                        out.appended.setdefault(arg.value, []).append(site)
    return out


def operation_sources(root: Path = ROOT) -> list[Path]:
    """The files that record or read history ops."""
    dirs = ("harness", "reference", "fixtures", "scenarios", "loadtests")
    return sorted([*(p for d in dirs for p in (root / d).rglob("*.py")), *(root / "properties").glob("*.py")])


def operation_problems(use: OperationUse, operations: Mapping[str, str] | None = None) -> list[str]:
    """Op names read but not registered (a reader's typo never matches), recorded by
    ``History.append`` but not registered, and registered harness ops nothing records."""
    registry = OPERATIONS if operations is None else operations
    problems = []
    for verb, names in (("reads", use.read), ("records", use.appended)):
        for f, sites in sorted(names.items()):
            if f not in registry:
                near = difflib.get_close_matches(f, list(registry), n=3, cutoff=0.6)
                hint = f" (did you mean {', '.join(near)}?)" if near else ""
                problems.append(f"{', '.join(sites)}: {verb} unregistered op name {f!r}{hint}")
    for f in sorted(set(registry) - set(OBSERVATIONS) - set(use.recorded)):
        problems.append(f"OPERATIONS[{f!r}]: nothing records it")
    return problems


# ------------------------------------------------------------------ the checks
def _unknown(where: str, kinds: Iterable[str], registry: Mapping[str, AnomalyKind]) -> list[str]:
    problems = []
    for kind in sorted(set(kinds)):
        if kind not in registry:
            near = suggest(kind, registry)
            hint = f" (did you mean {', '.join(near)}?)" if near else ""
            problems.append(f"{where}: unregistered anomaly kind {kind!r}{hint}")
    return problems


def emission_problems(
    emissions: Emissions,
    registry: Mapping[str, AnomalyKind] = KINDS,
    relays: Mapping[str, str] = RELAYS,
) -> list[str]:
    """Emitted kinds not registered, emitted from a file the registry does not list for them, and
    non-literal emitting calls :data:`RELAYS` does not explain."""
    problems = []
    for kind, sites in sorted(emissions.kinds.items()):
        if kind not in registry:
            problems += _unknown(", ".join(sites), [kind], registry)
            continue
        for site in sites:
            path = site.rsplit(":", 1)[0]
            if path not in registry[kind].emitters:
                problems.append(f"{site}: emits {kind!r}, but KINDS does not list {path} as its emitter")
    for where, sites in sorted(emissions.dynamic.items()):
        if where not in relays:
            problems.append(
                f"{', '.join(sites)}: an anomaly kind that is not a literal, in {where}: use a literal "
                "kind, or explain the relay in harness/anomalies.py RELAYS"
            )
    return problems


def registry_problems(registry: Mapping[str, AnomalyKind] = KINDS, root: Path = ROOT) -> list[str]:
    """Registered kinds whose emitter files are missing or (for a reported kind) never name it."""
    problems = []
    for kind, entry in sorted(registry.items()):
        if not entry.emitters:
            problems.append(f"KINDS[{kind!r}]: no emitter")
        texts = []
        for emitter in entry.emitters:
            path = root / emitter
            if not path.is_file():
                problems.append(f"KINDS[{kind!r}]: emitter {emitter} does not exist")
            else:
                texts.append(path.read_text(encoding="utf-8"))
        if entry.reported and texts and not any(kind in text for text in texts):
            problems.append(f"KINDS[{kind!r}]: none of {', '.join(entry.emitters)} names it")
        if kind.startswith(SCENARIO_PREFIX) and entry.reported:
            problems.append(f"KINDS[{kind!r}]: a scenario label is never reported (reported=False)")
    return problems


def category_kinds(categories: Sequence[Mapping[str, Any]]) -> dict[str, list[str]]:
    """The anomaly kinds each Allure category names: the ``backticked`` names of its description."""
    return {str(c.get("name")): re.findall(r"`([^`]+)`", str(c.get("description", ""))) for c in categories}


def category_problems(
    categories: Sequence[Mapping[str, Any]], registry: Mapping[str, AnomalyKind] = KINDS
) -> list[str]:
    """Kinds a category names that are not registered, or that its ``messageRegex`` does not match
    (in a failure message such as ``flowgate-anomalies: <kind>``)."""
    problems = []
    for category in categories:
        name = str(category.get("name"))
        kinds = category_kinds([category])[name]
        problems += _unknown(f"reports/categories.json category {name!r}", kinds, registry)
        pattern = category.get("messageRegex")
        for kind in kinds:
            if pattern and not re.fullmatch(str(pattern), f"{MARKER}{kind}\ndetail"):
                problems.append(
                    f"reports/categories.json category {name!r}: messageRegex does not match {kind!r}"
                )
    return problems


def expectation_problems(
    expectations: Mapping[str, Iterable[str]], registry: Mapping[str, AnomalyKind] = KINDS
) -> list[str]:
    """Kinds an expectation set (``where`` -> kinds) names that are not registered."""
    problems = []
    for where, kinds in expectations.items():
        problems += _unknown(where, kinds, registry)
    return problems


def catalog_expectations() -> dict[str, frozenset[str]]:
    """Every mutant expectation set: ``Mutant.expected`` of the reference catalog, the gate's
    ``REFERENCE_GATE`` sets and the Node variants' ``expect`` sets."""
    from harness.gate import mutants as gate
    from harness.mutants.catalog import MUTANTS

    out = {
        f"harness/mutants/catalog.py mutant {name!r}": frozenset(m.expected) for name, m in MUTANTS.items()
    }
    out |= {
        f"harness/gate/mutants.py REFERENCE_GATE[{name!r}]": v[1] for name, v in gate.REFERENCE_GATE.items()
    }
    out |= {f"harness/gate/mutants.py CATALOG {m.name!r}": m.expect for m in gate.CATALOG}
    return out


def repository_problems(root: Path = ROOT) -> list[str]:
    """Everything :mod:`harness.anomalies` checks, over this repository (empty: all consistent)."""
    categories = json.loads((root / "reports" / "categories.json").read_text(encoding="utf-8"))
    return [
        *registry_problems(root=root),
        *emission_problems(collect_emissions(emitting_sources(root), root)),
        *category_problems(categories),
        *expectation_problems(catalog_expectations()),
        *operation_problems(collect_operations(operation_sources(root), root)),
    ]
