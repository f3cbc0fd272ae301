"""Shared fixtures of the reference's own tests (LocalStack clients are created here for now)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from flowgate_reference_kms import ManualClock

from flowgate.reference.domain import order_registry, partner_registry
from flowgate.reference.messages import TypeRegistry


@pytest.fixture
def registry() -> TypeRegistry:
    return partner_registry(order_registry())


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def uid() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture(scope="session")
def aws(localstack_endpoint: str | None) -> SimpleNamespace:
    """boto3 clients on the session's LocalStack (started by the flowgate plugin when needed)."""
    from flowgate.fixtures.aws import clients

    made = clients(localstack_endpoint, max_pool_connections=20)
    return SimpleNamespace(**made.as_dict())


@pytest.fixture
def aws_cleanup(aws: SimpleNamespace) -> Iterator[list[Any]]:
    """Append Resources (or queue URLs / topic ARNs) to have them deleted after the test."""
    created: list[Any] = []
    yield created
    for item in created:
        urls = [item] if isinstance(item, str) else [*item.queue_urls.values(), *item.dlq_urls.values()]
        arns = [] if isinstance(item, str) else list(item.topic_arns.values())
        for url in urls:
            if url.startswith("arn:aws:sns"):
                arns.append(url)
                continue
            with contextlib.suppress(Exception):
                aws.sqs.delete_queue(QueueUrl=url)
        for arn in arns:
            with contextlib.suppress(Exception):
                aws.sns.delete_topic(TopicArn=arn)


@pytest.fixture(scope="session")
def kms_key(aws: SimpleNamespace) -> Iterator[str]:
    key = aws.kms.create_key(Description="flowgate reference tests")["KeyMetadata"]["Arn"]
    yield key
    with contextlib.suppress(Exception):
        aws.kms.schedule_key_deletion(KeyId=key, PendingWindowInDays=7)
