"""The scenario -> mutant matrix of ``flowgate mutants --suite scenarios``: node ids and budgets."""

from __future__ import annotations

import ast
from pathlib import Path

from flowgate.harness.mutants.catalog import CH_LONG, MUTANTS, SCENARIO_TIMEOUTS_S
from flowgate.harness.mutants.cli import _budget

ROOT = Path(__file__).resolve().parents[2]


def _test_functions(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {n.name for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")}


def test_every_scenario_node_names_a_test_function_of_its_file() -> None:
    for mutant in MUTANTS.values():
        for node in (*mutant.scenarios, *SCENARIO_TIMEOUTS_S):
            file, _, rest = node.partition("::")
            assert (ROOT / file).is_file(), f"{mutant.name}: {node}"
            if rest:
                assert rest.split("[")[0] in _test_functions(ROOT / file), f"{mutant.name}: {node}"


def test_the_long_chaos_run_kills_delete_before_handle_within_its_own_budget() -> None:
    assert CH_LONG in MUTANTS["delete-before-handle"].scenarios
    assert _budget(CH_LONG, 300.0) == 900.0
    assert _budget(CH_LONG, 1200.0) == 1200.0  # an explicit longer --timeout wins
    assert _budget("scenarios/test_chaos.py::test_duplicate_injection_fifo", 300.0) == 300.0
