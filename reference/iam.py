"""Least-privilege IAM policies, one per role of a bus configuration.

A deployment of the bus has five kinds of process, and each gets its own identity-based policy:

========================  =====================================================================
role                      what it may do (resources named exactly: ARNs from the configuration)
========================  =====================================================================
``bootstrapper``          the only admin: ``sts:GetCallerIdentity``; ``sqs:CreateQueue``,
                          ``GetQueueUrl``, ``GetQueueAttributes``, ``SetQueueAttributes`` (redrive
                          and the SNS->SQS queue policy) on every queue and DLQ; ``sns:CreateTopic``
                          and ``GetTopicAttributes`` on every topic; ``sns:Subscribe`` on a topic
                          only with ``Protocol = sqs`` and an ``Endpoint`` among the queues the
                          configuration subscribes to *that* topic. No message and no KMS right.
``producer``              ``sqs:GetQueueUrl`` + ``SendMessage`` on the command queues it routes to;
                          ``kms:GenerateDataKey`` only for those destinations.
``command-consumer``      receive / delete / change visibility / read attributes of its listened
                          queues; ``SendMessage`` to their DLQs (poison and business dead letters;
                          a saga's decisions are events, it sends no command); ``sns:Publish`` +
                          ``GetTopicAttributes`` (the breaker's probe) on the topics its events go
                          to; ``kms:Decrypt`` only for its queues, ``kms:GenerateDataKey`` only for
                          its topics, ``kms:DescribeKey``.
``event-consumer``        the same on its subscription queues (and their DLQs); ``kms:Decrypt``
                          only for the topics those queues subscribe to. Publishes nothing.
``dlq-operator``          ``ReceiveMessage`` + ``DeleteMessage`` on the DLQs, ``SendMessage`` back
                          to their source queues (:func:`flowgate.reference.dlq.replay_dead_letters` moves
                          bodies verbatim: no KMS right, it never sees a plaintext).
========================  =====================================================================

Every role that resolves names (``GetQueueUrl``; :meth:`Bootstrapper.resolve`) also holds
``sts:GetCallerIdentity`` (resource ``*``: STS has no resource to name).

KMS: the envelope (:mod:`flowgate.reference.envelope`) binds each data key to an encryption context whose
``destination`` is the queue or topic short name the message is sealed for, and
``flowgate:version`` the envelope version. Every KMS data-key grant is conditioned on both
(``StringEquals`` on ``kms:EncryptionContext:destination`` and
``kms:EncryptionContext:flowgate:version``), so a producer cannot mint keys for a topic, and a
view worker cannot open a command. The other context fields (message id, entity id, type) vary
per message and cannot be named in a policy. KMS authorizes on the key's ARN, never on an alias,
so the key ARN is required (``DescribeKey`` gives it); ``kms:DescribeKey`` carries no context.

No wildcard anywhere: the account id is required (12 digits; the bootstrapper and ``flowgate
policies`` take it from ``sts:GetCallerIdentity``), and so is the key ARN when the configuration
encrypts. The grants a run may legitimately not exercise are listed, with the reason, in
:data:`RARELY_EXERCISED`; the LocalStack scenario ``scenarios/test_iam.py`` records every call
of every process and proves each is allowed and each grant used (``docs/iam.md``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Any

from flowgate.reference.config import BusConfiguration
from flowgate.reference.envelope import VERSION
from flowgate.reference.errors import ConfigurationError

POLICY_VERSION = "2012-10-17"
_ACCOUNT = re.compile(r"^\d{12}$")
_KEY_ARN = re.compile(r"^arn:aws[\w-]*:kms:[a-z0-9-]+:\d{12}:key/[A-Za-z0-9-]+$")
#: the KMS encryption-context keys every data-key grant is conditioned on (flowgate.reference.envelope)
CONTEXT_DESTINATION = "kms:EncryptionContext:destination"
CONTEXT_VERSION = "kms:EncryptionContext:flowgate:version"


class Role(StrEnum):
    """The five kinds of process of a deployment (module docstring)."""

    BOOTSTRAPPER = "bootstrapper"
    PRODUCER = "producer"
    COMMAND_CONSUMER = "command-consumer"
    EVENT_CONSUMER = "event-consumer"
    DLQ_OPERATOR = "dlq-operator"


#: (role, action) -> why a run may not exercise it (the audit lists these instead of failing)
RARELY_EXERCISED: Mapping[tuple[Role, str], str] = {
    (Role.BOOTSTRAPPER, "sns:GetTopicAttributes"): (
        "only when adopting a topic that exists with other attributes (CreateTopic refuses it); "
        "scenarios/test_bootstrap.py exercises that path"
    ),
}


def queue_arn(region: str, account: str, name: str) -> str:
    return f"arn:aws:sqs:{region}:{account}:{name}"


def topic_arn(region: str, account: str, name: str) -> str:
    return f"arn:aws:sns:{region}:{account}:{name}"


def check_account(account: str) -> str:
    """``account`` if it is a 12-digit AWS account id, else :class:`ConfigurationError`."""
    if not _ACCOUNT.match(account):
        raise ConfigurationError(
            f"account must be a 12-digit AWS account id, not {account!r} (a policy never names "
            "every account; take it from sts:GetCallerIdentity)"
        )
    return account


def key_arn_for(config: BusConfiguration, kms_key_arn: str | None) -> str | None:
    """The KMS key ARN the policies name: ``kms_key_arn``, or the configuration's key id when it
    already is a key ARN; None when the configuration does not encrypt."""
    if not config.kms_key_id:
        return None
    arn = kms_key_arn or config.kms_key_id
    if not _KEY_ARN.match(arn):
        raise ConfigurationError(
            f"KMS key {arn!r} is not a key ARN: KMS authorizes on the key's ARN, not an alias or id "
            "(pass the ARN that DescribeKey reports)"
        )
    return arn


def _statement(
    sid: str, actions: Iterable[str], resources: Iterable[str], condition: dict[str, Any] | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "Sid": sid,
        "Effect": "Allow",
        "Action": sorted(set(actions)),
        "Resource": sorted(set(resources)),
    }
    if condition:
        out["Condition"] = condition
    return out


def _data_key_condition(destinations: Iterable[str]) -> dict[str, Any]:
    return {"StringEquals": {CONTEXT_DESTINATION: sorted(set(destinations)), CONTEXT_VERSION: str(VERSION)}}


def _document(statements: Iterable[dict[str, Any] | None]) -> dict[str, Any]:
    return {"Version": POLICY_VERSION, "Statement": [s for s in statements if s is not None]}


def role_policies(
    config: BusConfiguration, *, account: str, region: str | None = None, kms_key_arn: str | None = None
) -> dict[Role, dict[str, Any]]:
    """One least-privilege IAM policy document per :class:`Role` for ``config`` (module docstring).

    ``account`` is required (12 digits); ``kms_key_arn`` is required when the configuration
    encrypts and its ``kms_key_id`` is not already a key ARN. A role the configuration gives no
    work (no listened queue: no command consumer) still gets a document, with only what it needs
    to resolve names."""
    account = check_account(account)
    region = region or config.options.region
    key = key_arn_for(config, kms_key_arn)

    def q(name: str) -> str:
        return queue_arn(region, account, name)

    def t(name: str) -> str:
        return topic_arn(region, account, name)

    identity = _statement("Identity", ["sts:GetCallerIdentity"], ["*"])
    routed = sorted(set(config.command_routes.values()))
    listened = list(config.command_queues)
    subscribed = list(config.subscriptions)
    raised = sorted(set(config.event_routes.values()))
    every_queue = [n for queue in config.queues() for n in (queue, config.dlq_for(queue))]

    def describe_key() -> dict[str, Any] | None:
        return _statement("DescribeEnvelopeKey", ["kms:DescribeKey"], [key]) if key else None

    def data_keys(sid: str, action: str, destinations: list[str]) -> dict[str, Any] | None:
        if key is None or not destinations:
            return None
        return _statement(sid, [action], [key], _data_key_condition(destinations))

    def consumer(queues: list[str], sid: str) -> list[dict[str, Any] | None]:
        if not queues:
            return []
        dlqs = [config.dlq_for(x) for x in queues]
        return [
            _statement(f"Resolve{sid}", ["sqs:GetQueueUrl"], map(q, [*queues, *dlqs])),
            _statement(
                f"Consume{sid}",
                [
                    "sqs:ReceiveMessage",
                    "sqs:DeleteMessage",
                    "sqs:ChangeMessageVisibility",
                    "sqs:GetQueueAttributes",
                ],
                map(q, queues),
            ),
            _statement(f"DeadLetter{sid}", ["sqs:SendMessage"], map(q, dlqs)),
        ]

    subscribe = [
        _statement(
            f"Subscribe{n}",
            ["sns:Subscribe"],
            [t(topic)],
            {
                "StringEquals": {
                    "sns:Protocol": "sqs",
                    "sns:Endpoint": sorted(q(v) for v, ts in config.subscriptions.items() if topic in ts),
                }
            },
        )
        for n, topic in enumerate(sorted({x for ts in config.subscriptions.values() for x in ts}))
    ]
    bootstrapper = _document(
        [
            identity,
            _statement(
                "ProvisionQueues",
                ["sqs:CreateQueue", "sqs:GetQueueUrl", "sqs:GetQueueAttributes", "sqs:SetQueueAttributes"],
                map(q, every_queue),
            ),
            _statement(
                "ProvisionTopics", ["sns:CreateTopic", "sns:GetTopicAttributes"], map(t, config.topics())
            )
            if config.topics()
            else None,
            *subscribe,
        ]
    )
    producer = _document(
        [
            identity,
            _statement("SendCommands", ["sqs:GetQueueUrl", "sqs:SendMessage"], map(q, routed))
            if routed
            else None,
            data_keys("SealCommands", "kms:GenerateDataKey", routed),
        ]
    )
    command_consumer = _document(
        [
            identity,
            *consumer(listened, "Commands"),
            _statement("PublishEvents", ["sns:Publish", "sns:GetTopicAttributes"], map(t, raised))
            if listened and raised
            else None,
            data_keys("OpenCommands", "kms:Decrypt", listened),
            data_keys("SealEvents", "kms:GenerateDataKey", raised if listened else []),
            describe_key() if listened else None,
        ]
    )
    event_consumer = _document(
        [
            identity,
            *consumer(subscribed, "Events"),
            data_keys(
                "OpenEvents", "kms:Decrypt", sorted({x for ts in config.subscriptions.values() for x in ts})
            ),
            describe_key() if subscribed else None,
        ]
    )
    sources = [*listened, *subscribed]
    source_dlqs = [config.dlq_for(x) for x in sources]
    dlq_operator = _document(
        [
            identity,
            _statement("ResolveDeadLetters", ["sqs:GetQueueUrl"], map(q, [*sources, *source_dlqs]))
            if sources
            else None,
            _statement("DrainDeadLetters", ["sqs:ReceiveMessage", "sqs:DeleteMessage"], map(q, source_dlqs))
            if sources
            else None,
            _statement("ReplayDeadLetters", ["sqs:SendMessage"], map(q, sources)) if sources else None,
        ]
    )
    return {
        Role.BOOTSTRAPPER: bootstrapper,
        Role.PRODUCER: producer,
        Role.COMMAND_CONSUMER: command_consumer,
        Role.EVENT_CONSUMER: event_consumer,
        Role.DLQ_OPERATOR: dlq_operator,
    }
