"""flowgate's own test run (this repository's ``tests``, ``properties`` and ``scenarios``).

Hypothesis profiles live here, not in the ``pytest11`` plugin (``flowgate.fixtures.plugin``): the plugin
loads in every pytest run of an environment where flowgate is installed, and a project that
uses flowgate's fixtures keeps its own Hypothesis profiles and settings. This file is only read
when pytest collects inside this checkout.

Profiles (``HYPOTHESIS_PROFILE``, which nox sets to ``ci``, or ``--hypothesis-profile``):

* ``dev`` (default) -- 25 examples, no deadline: a quick local run;
* ``ci`` -- 60 examples, the ``too_slow`` health check off, failing examples printed as blobs;
* ``nightly`` -- 1000 examples, otherwise as ``ci``.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--mutant NAME`` (or ``FLOWGATE_MUTANT``), declared once for the whole checkout so that
    ``tests``, ``properties`` and ``scenarios`` collect in one run: ``properties/conftest.py``
    installs the mutant in this process, ``scenarios/conftest.py`` runs the scenario's worker
    processes as it (``flowgate mutants --list``)."""
    parser.getgroup("flowgate").addoption(
        "--mutant",
        default=os.environ.get("FLOWGATE_MUTANT") or None,
        help="run against this mutant of the reference: the properties in-process, the scenarios' "
        "workers as that variant (the run must fail; see flowgate mutants --list)",
    )


settings.register_profile("dev", max_examples=25, deadline=None)
settings.register_profile(
    "ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.register_profile(
    "nightly", max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))
