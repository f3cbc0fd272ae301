"""The checks over :mod:`flowgate.harness.anomalies`' registry: find (statically, with :mod:`ast`) every
anomaly kind the code emits, every operation name it records, and every kind the report categories
and the mutant expectations name, and report each one the registry does not know (with the
nearest registered names). :func:`repository_problems` runs them all over this repository
(``tests/checkers/test_anomaly_registry.py``).
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

from flowgate.harness.anomalies import (
    KINDS,
    MARKER,
    OPERATIONS,
    RELAYS,
    ROOT,
    SCENARIO_PREFIX,
    AnomalyKind,
    suggest,
)
from flowgate.reference.hooks import OBSERVATIONS

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
    from flowgate.harness.gate import mutants as gate
    from flowgate.harness.mutants.catalog import MUTANTS

    out = {
        # named by the module that defines the mutant's patches (where its entry is)
        f"{m.patches.__module__.replace('.', '/')}.py mutant {name!r}": frozenset(m.expected)
        for name, m in MUTANTS.items()
    }
    out |= {
        f"harness/gate/mutants.py REFERENCE_GATE[{name!r}]": v[1] for name, v in gate.REFERENCE_GATE.items()
    }
    out |= {f"harness/gate/mutants.py CATALOG {m.name!r}": m.expect for m in gate.CATALOG}
    return out


def repository_problems(root: Path = ROOT) -> list[str]:
    """Everything :mod:`flowgate.harness.anomalies` checks, over this repository (empty: all consistent)."""
    categories = json.loads((root / "reports" / "categories.json").read_text(encoding="utf-8"))
    return [
        *registry_problems(root=root),
        *emission_problems(collect_emissions(emitting_sources(root), root)),
        *category_problems(categories),
        *expectation_problems(catalog_expectations()),
        *operation_problems(collect_operations(operation_sources(root), root)),
    ]
