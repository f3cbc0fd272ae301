"""flowgate's sessions. ``nox -l`` lists them; ``nox`` alone runs ``tests``.

Every pytest-based session writes Allure results to ``reports/allure-results/<session>``;
``nox -s report`` merges them into one HTML report. Extra arguments after ``--`` are passed
to pytest (or to the command the session runs).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import nox

nox.options.default_venv_backend = "venv"
nox.options.reuse_venv = "yes"
nox.options.sessions = ["tests"]

ROOT = Path(__file__).parent
PYPROJECT = nox.project.load_toml("pyproject.toml")
REPORTS = ROOT / "reports"


def _install(
    session: nox.Session, extras: str = "postgres,report,load", groups: tuple[str, ...] = ("test",)
) -> None:
    deps: list[str] = []
    for group in groups:
        deps.extend(nox.project.dependency_groups(PYPROJECT, group))
    session.install("-e", f".[{extras}]", *deps)


def _pytest(session: nox.Session, name: str, *args: str, env: dict[str, str] | None = None) -> None:
    results = REPORTS / "allure-results" / name
    shutil.rmtree(results, ignore_errors=True)
    results.mkdir(parents=True, exist_ok=True)
    session.run(
        "pytest",
        f"--alluredir={results}",
        *args,
        *session.posargs,
        env={"HYPOTHESIS_PROFILE": os.environ.get("HYPOTHESIS_PROFILE", "ci"), **(env or {})},
    )


def _load_allure(name: str) -> list[str]:
    """A fresh ``reports/allure-results/<name>`` for a Locust run's Allure result."""
    results = REPORTS / "allure-results" / name
    shutil.rmtree(results, ignore_errors=True)
    return [f"--alluredir={results}"]


@nox.session
def tests(session: nox.Session) -> None:
    """Unit, contract and property tests that need no LocalStack, then the property mutation score."""
    _install(session)
    _pytest(session, "tests", "-m", "not localstack and not chaos", "tests", "properties")
    # the property mutation score: every mutant must be killed by its properties (about a minute)
    results = REPORTS / "allure-results"
    for stale in results.glob("mutant*-*"):
        shutil.rmtree(stale, ignore_errors=True)
    session.run("flowgate", "mutants", env={"FLOWGATE_MUTANT_ALLURE": str(results)})


@nox.session
def properties(session: nox.Session) -> None:
    """Only the hypothesis property suites (pass --hypothesis-profile=nightly for long runs)."""
    _install(session)
    _pytest(session, "properties", "properties")


@nox.session
def integration(session: nox.Session) -> None:
    """LocalStack end-to-end scenarios plus the short chaos set (starts LocalStack when none is configured)."""
    _install(session)
    _pytest(
        session,
        "integration",
        "-m",
        "localstack and not realtime",
        "-p",
        "flowgate.fixtures.summary",
        "scenarios",
        "tests",
    )


@nox.session
def realtime(session: nox.Session) -> None:
    """LocalStack checks that wait out real AWS time windows (the 5-minute FIFO dedup window, about 6 min)."""
    _install(session)
    _pytest(session, "realtime", "-m", "realtime", "scenarios")


@nox.session
def chaos(session: nox.Session) -> None:
    """The full chaos schedule on LocalStack: SIGKILLed workers, visibility expiry, duplicates, restarts,
    and the long SIGKILL storm (``scenarios/test_chaos_long.py``: 1,000 orders, 120 kills, ~7 min)."""
    _install(session)
    _pytest(
        session,
        "chaos",
        "-m",
        "chaos",
        "-p",
        "flowgate.fixtures.summary",
        "scenarios",
        env={"FLOWGATE_CHAOS": "full"},
    )


@nox.session
def mutants(session: nox.Session) -> None:
    """Run every property and scenario check against its mutant; fails if any mutant survives."""
    _install(session)
    session.run("flowgate", "mutants", *session.posargs)


@nox.session
def load(session: nox.Session) -> None:
    """Locust steady-10k for 2 minutes headless against LocalStack; non-zero on loss, duplicates or rate < 98%.

    The run's verdict, figures and latency plot go to reports/allure-results/load (nox -s report).
    """
    _install(session, extras="postgres,report,load")
    args = session.posargs or ["--shape", "steady-10k", "-t", "2m"]
    session.run("locust", "-f", "loadtests", "--headless", "--only-summary", *_load_allure("load"), *args)


@nox.session
def bench(session: nox.Session) -> None:
    """Speed figures: simulator orders/s and virtual-to-wall ratio, then a Locust capacity run vs the baseline (bare and contract wire)."""
    _install(session, extras="postgres,report,load")
    session.run("flowgate", "bench", "--skip-load")
    session.run(
        "locust",
        "-f",
        "loadtests",
        "--headless",
        "--only-summary",
        *_load_allure("bench"),
        "--shape",
        "capacity",
        *session.posargs,
    )


@nox.session
def gate(session: nox.Session) -> None:
    """Run the reference (must PASS) and every mutant (each must FAIL) through the CI gate; print the score."""
    _install(session)
    results = REPORTS / "allure-results" / "gate"
    shutil.rmtree(results, ignore_errors=True)
    session.run(
        "flowgate", "gate", "--self-test", *session.posargs, env={"FLOWGATE_GATE_ALLURE": str(results)}
    )


@nox.session
def report(session: nox.Session) -> None:
    """Merge reports/allure-results/* into reports/allure-report (Allure 3 from npm, installed on first use)."""
    _install(session)
    args = session.posargs or ["--screenshot", str(REPORTS / "allure-overview.png")]
    session.run("python", "-m", "flowgate.harness.report", *args)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff and mypy (strict for reference/ and harness/)."""
    _install(session, groups=("test", "lint"))
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", "reference", "harness")
    session.run("mypy")
