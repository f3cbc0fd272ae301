"""Fixtures of the LocalStack end-to-end scenarios and chaos runs (see ``docs/scenarios.md``).

``--mutant NAME`` (or ``FLOWGATE_MUTANT=NAME``) runs every worker process of the scenarios
from the mutant catalog (``python -m flowgate.harness.mutants.worker`` with ``FLOWGATE_MUTANT=NAME``)
and applies the mutant in-process where the test process itself runs reference code: the
scenario must then FAIL (that is how each assertion is shown to bite). ``--chaos-seed N``
(or ``FLOWGATE_SEED``) fixes the nemesis schedules.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from flowgate.fixtures.aws import AwsClients
from flowgate.fixtures.scenario import delete_prefixed, in_process_mutant
from flowgate.fixtures.workers import Workers
from flowgate.harness.history import History
from flowgate.reference.domain import order_registry, partner_registry
from flowgate.reference.messages import TypeRegistry


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("flowgate scenarios")
    group.addoption("--chaos-seed", type=int, default=int(os.environ.get("FLOWGATE_SEED", "20261121")),
                    help="seed of workloads and nemesis schedules")


@pytest.fixture(scope="session")
def mutant(request: pytest.FixtureRequest) -> str | None:
    name = request.config.getoption("--mutant")
    if name:
        with contextlib.suppress(ImportError):
            import flowgate.harness.mutants as catalog  # type: ignore[import-not-found,unused-ignore]

            known = getattr(catalog, "MUTANTS", None) or getattr(catalog, "CATALOG", None)
            if known is not None and name not in known:
                pytest.exit(f"unknown mutant {name!r}; known: {sorted(known)}", returncode=4)
    return str(name) if name else None


@pytest.fixture(scope="session")
def seed(request: pytest.FixtureRequest) -> int:
    return int(request.config.getoption("--chaos-seed"))


@pytest.fixture(scope="session")
def registry() -> TypeRegistry:
    return partner_registry(order_registry())


@pytest.fixture(scope="session")
def kms_key(aws: AwsClients) -> Iterator[str]:
    key = aws.kms.create_key(Description="flowgate scenarios")["KeyMetadata"]["Arn"]
    yield key
    with contextlib.suppress(Exception):
        aws.kms.schedule_key_deletion(KeyId=key, PendingWindowInDays=7)


@dataclass
class Scenario:
    """What one scenario test needs: names, history, workers, clients, seed, mutant."""

    uid: str
    history: History
    workers: Workers
    aws: AwsClients
    tmp: Path
    seed: int
    mutant: str | None

    @property
    def prefix(self) -> str:
        return f"fg-{self.uid}"


@pytest.fixture
def scenario(aws: AwsClients, localstack_endpoint: str | None, tmp_path: Path, seed: int,
             mutant: str | None, request: pytest.FixtureRequest) -> Iterator[Scenario]:
    import time

    uid = uuid.uuid4().hex[:8]
    history = History(clock=time.time)
    workers = Workers(tmp_path / "workers", history, endpoint_url=localstack_endpoint, mutant=mutant, seed=seed)
    with in_process_mutant(mutant), workers:
        yield Scenario(uid, history, workers, aws, tmp_path, seed, mutant)
        if request.node.rep_call.failed if hasattr(request.node, "rep_call") else False:
            print(workers.logs())
    delete_prefixed(aws, f"fg-{uid}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)
