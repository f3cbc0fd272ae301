from __future__ import annotations

import pytest

from flowgate.harness.sim import SimAws, SnsClient, SqsClient


@pytest.fixture
def sim() -> SimAws:
    return SimAws(seed=1234)


@pytest.fixture
def sqs(sim: SimAws) -> SqsClient:
    return sim.client("sqs")


@pytest.fixture
def sns(sim: SimAws) -> SnsClient:
    return sim.client("sns")
