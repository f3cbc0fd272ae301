"""The anomaly-kind registry (harness/anomalies.py): every kind the code emits, the report
categories name and the mutant catalogs expect is registered -- and each check does fail on a typo."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowgate.harness.anomalies import KINDS, OPERATIONS, AnomalyKind, UnknownAnomalyKind
from flowgate.harness.anomaly_checks import (
    category_problems,
    collect_emissions,
    collect_operations,
    emission_problems,
    expectation_problems,
    operation_problems,
    registry_problems,
    repository_problems,
)
from flowgate.harness.checkers.model import Anomaly

LOST_REGEX = "[\\s\\S]*\\blost\\b[\\s\\S]*"


def test_the_repository_names_only_registered_kinds() -> None:
    assert repository_problems() == []


def test_a_misspelt_mutant_expectation_is_reported_with_the_intended_kind() -> None:
    catalog = {
        "harness/mutants/catalog.py mutant 'typo'": frozenset({"dulicate-effect", "lost"}),
        "harness/gate/mutants.py REFERENCE_GATE['fine']": frozenset({"duplicate-effect"}),
    }
    problems = expectation_problems(catalog)
    assert len(problems) == 1
    assert "'typo'" in problems[0]
    assert "'dulicate-effect'" in problems[0]
    assert "duplicate-effect" in problems[0].split("did you mean", 1)[1]


def test_a_misspelt_scenario_label_is_reported() -> None:
    problems = expectation_problems({"mutant 'm'": ["scenario:torn-bach"]})
    assert len(problems) == 1
    assert "scenario:torn-batch" in problems[0]


def _emissions(tmp_path: Path, source: str) -> list[str]:
    path = tmp_path / "harness" / "checkers" / "broken.py"
    path.parent.mkdir(parents=True)
    path.write_text(source, encoding="utf-8")
    return emission_problems(collect_emissions([path], tmp_path))


def test_a_checker_emitting_a_misspelt_kind_is_reported(tmp_path: Path) -> None:
    problems = _emissions(tmp_path, 'def check():\n    return [Anomaly("dulicate-effect", "twice")]\n')
    assert len(problems) == 1
    assert problems[0].startswith("harness/checkers/broken.py:2: unregistered anomaly kind 'dulicate-effect'")


def test_a_registered_kind_from_an_unlisted_emitter_is_reported(tmp_path: Path) -> None:
    problems = _emissions(tmp_path, 'def check():\n    return [Anomaly("lost", "never applied")]\n')
    assert problems == [
        "harness/checkers/broken.py:2: emits 'lost', but KINDS does not list harness/checkers/broken.py as its emitter"
    ]


def test_a_kind_bound_by_assignment_is_resolved_and_an_unknown_source_is_reported(tmp_path: Path) -> None:
    source = (
        "def check(ok, kind):\n"
        '    observed, anomaly = ("fine", "") if ok else ("bad", "lsot")\n'
        '    observed, anomaly = "bad", "dulicated"\n'
        "    out = [Anomaly(anomaly, observed)]\n"
        '    out.append(Anomaly(kind, "from elsewhere"))\n'
        '    mapper.violation("misssing-attribute", "no EventId")\n'
        "    return out\n"
    )
    problems = _emissions(tmp_path, source)
    assert [p.split(": ", 1)[0] for p in problems] == [
        "harness/checkers/broken.py:4",  # dulicated (the second assignment)
        "harness/checkers/broken.py:4",  # lsot (the conditional tuple of the first)
        "harness/checkers/broken.py:6",  # misssing-attribute
        "harness/checkers/broken.py:5",  # Anomaly(kind, ...): a parameter, not a registered relay
    ]
    assert "'dulicated'" in problems[0]
    assert "'lsot'" in problems[1]
    assert "'misssing-attribute'" in problems[2]
    assert "harness/checkers/broken.py::check" in problems[3]


def test_a_kind_bound_in_a_way_not_understood_is_not_resolved(tmp_path: Path) -> None:
    source = 'def check(rows):\n    for anomaly in rows:\n        anomaly = "lost"\n        yield Anomaly(anomaly, "x")\n'
    problems = _emissions(tmp_path, source)
    assert len(problems) == 1
    assert "not a literal" in problems[0]


def test_a_misspelt_failure_marker_is_reported(tmp_path: Path) -> None:
    problems = _emissions(
        tmp_path, 'def test_x():\n    assert False, "flowgate-anomalies: lost,mising-metric\\n"\n'
    )
    assert len(problems) == 2  # lost: not from this file; mising-metric: unregistered
    assert "'mising-metric'" in problems[1]
    assert "missing-metric" in problems[1]


def test_a_misspelt_or_unmatched_category_kind_is_reported() -> None:
    categories = [
        {"name": "Lost", "description": "anomaly kind `lots`", "messageRegex": LOST_REGEX},
        {"name": "Dup", "description": "anomaly kind `duplicated`", "messageRegex": LOST_REGEX},
        {"name": "Fine", "description": "anomaly kind `lost`", "messageRegex": LOST_REGEX},
    ]
    problems = category_problems(categories)
    assert any("'Lost'" in p and "unregistered anomaly kind 'lots'" in p for p in problems)
    assert any("'Dup'" in p and "messageRegex does not match 'duplicated'" in p for p in problems)
    assert not any("'Fine'" in p for p in problems)


def test_a_registry_entry_its_emitter_never_names_is_reported() -> None:
    registry = {
        "dulicate-effect": AnomalyKind("typo", ("harness/checkers/exactly_once.py",)),
        "duplicate-effect": KINDS["duplicate-effect"],
        "gone": AnomalyKind("emitter moved", ("harness/checkers/nowhere.py",)),
    }
    assert registry_problems(registry) == [
        "KINDS['dulicate-effect']: none of harness/checkers/exactly_once.py names it",
        "KINDS['gone']: emitter harness/checkers/nowhere.py does not exist",
    ]


def test_the_anomaly_constructor_refuses_an_unregistered_kind() -> None:
    assert Anomaly("duplicate-effect", "twice").kind == "duplicate-effect"
    with pytest.raises(UnknownAnomalyKind, match=r"'dulicate-effect' \(did you mean duplicate-effect"):
        Anomaly("dulicate-effect", "twice")


def test_a_misspelt_op_name_read_or_recorded_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "harness" / "checkers" / "broken.py"
    path.parent.mkdir(parents=True)
    path.write_text(
        "def check(ops, history):\n"
        '    history.append("harness", "ok", "drian", {})\n'
        '    history.nemesis("any-free-label", {})\n'
        '    return [op for op in ops if op.f == "recieve" or op.f in ("effect", "projetc")]\n',
        encoding="utf-8",
    )
    use = collect_operations([path], tmp_path)
    # only what this file uses, against the real registry: drop "nothing records it" for the others
    problems = [p for p in operation_problems(use) if "nothing records it" not in p]
    assert problems == [
        "harness/checkers/broken.py:4: reads unregistered op name 'projetc' (did you mean project?)",
        "harness/checkers/broken.py:4: reads unregistered op name 'recieve' (did you mean receive?)",
        "harness/checkers/broken.py:2: records unregistered op name 'drian' (did you mean drain?)",
    ]


def test_a_registered_harness_op_nothing_records_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "harness" / "sim.py"
    path.parent.mkdir(parents=True)
    path.write_text('def run(history):\n    history.append("harness", "ok", "drain", {})\n', encoding="utf-8")
    use = collect_operations([path], tmp_path)
    problems = operation_problems(use, {**OPERATIONS, "drian": "a typo in the registry"})
    assert "OPERATIONS['drian']: nothing records it" in problems
    assert "OPERATIONS['drain']: nothing records it" not in problems
