"""Property suites on the deterministic simulator.

``--mutant NAME`` (or ``FLOWGATE_MUTANT=NAME``) installs a mutant of the reference for the whole
session (``flowgate.harness.mutants``): ``flowgate mutants`` runs each mutant's killing properties this way
and expects them to fail. Under a mutant, hypothesis does not shrink (a kill is a kill) and uses
no example database (mutant failures must not be replayed against the clean reference).
"""

from __future__ import annotations

import os
from contextlib import ExitStack

import pytest
from hypothesis import Phase, settings

from flowgate.harness.mutants import apply_mutant

_STACK = ExitStack()


def pytest_configure(config: pytest.Config) -> None:
    name = config.getoption("--mutant", default=None)
    if name:
        _STACK.enter_context(apply_mutant(str(name)))
        settings.register_profile("flowgate-mutant", settings.default, database=None,
                                  phases=[Phase.explicit, Phase.generate])
        settings.load_profile("flowgate-mutant")
        os.environ["FLOWGATE_ACTIVE_MUTANT"] = str(name)


def pytest_unconfigure(config: pytest.Config) -> None:
    _STACK.close()
