"""The role policies (``flowgate.reference.iam``) judged by an IAM policy evaluator, for any configuration.

For generated order-bus configurations (FIFO or standard, one to three view queues, any
account and region), the requests each kind of process makes -- written here from what the
processes do, independently of ``reference/iam.py`` -- are turned into IAM requests
(``flowgate.harness.iam_audit.to_request``) and decided by moto's evaluator:

* every request a role needs is allowed by its own policy;
* every request only *other* roles need is denied to it (a producer cannot receive, a view
  worker cannot open a command's data key, the DLQ operator cannot decrypt at all, ...), and so
  are requests no role needs (Subscribe of a queue the configuration does not subscribe, a queue
  of another account, a data key for an undeclared destination or envelope version);
* no policy names a wildcard account or resource (except STS, which has no resource), and a
  policy cannot be made without an account id, nor for an alias without the key's ARN.

The LocalStack scenario ``scenarios/test_iam.py`` proves the same policies against the calls the
real processes make. Mutants: ``iam-extra-action``, ``iam-missing-action``,
``iam-no-context-condition``, ``iam-subscribe-any-endpoint``, ``iam-wildcard-account``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowgate.fixtures.scenario import OrderTopology, bus_config
from flowgate.harness.iam_audit import AwsCall, IamRequest, allowing_statement, audit, to_request
from flowgate.reference import iam
from flowgate.reference.config import dlq_name
from flowgate.reference.domain import order_registry
from flowgate.reference.errors import ConfigurationError
from flowgate.reference.iam import Role

REGISTRY = order_registry()
OTHER_ACCOUNT = "999999999999"


@st.composite
def buses(draw: st.DrawFn) -> tuple[OrderTopology, str, str, str]:
    fifo = draw(st.booleans())
    views = tuple(
        draw(st.lists(st.sampled_from(["views", "stock", "pay"]), min_size=1, max_size=3, unique=True))
    )
    account = draw(st.from_regex(r"\A[0-9]{12}\Z"))
    region = draw(st.sampled_from(["us-east-1", "eu-west-1", "ap-southeast-2"]))
    key = f"arn:aws:kms:{region}:{account}:key/{draw(st.uuids())}"
    return (
        OrderTopology(draw(st.sampled_from(["a", "b7", "x-y"])), fifo=fifo, views=views),
        account,
        region,
        key,
    )


def _call(role: str, service: str, operation: str, **params: Any) -> AwsCall:
    return AwsCall(role, service, operation, params)


def needed_calls(topo: OrderTopology, account: str, region: str, key: str) -> dict[Role, list[AwsCall]]:
    """What each kind of process calls (flowgate.reference.bootstrap, dispatchers, listener, dlq)."""

    def url(name: str, acct: str = account) -> str:
        return f"https://sqs.{region}.amazonaws.com/{acct}/{name}"

    def arn(name: str) -> str:
        return f"arn:aws:sqs:{region}:{account}:{name}"

    def context(destination: str) -> dict[str, str]:
        return {
            "flowgate:version": "1",
            "destination": destination,
            "messageId": "m-1",
            "entityId": "e-1",
            "messageType": "PlaceOrder",
        }

    cmd, topic = topo.commands, topo.topic
    topic_arn = f"arn:aws:sns:{region}:{account}:{topic}"
    views = [topo.view_queue(v) for v in topo.views]
    identity = _call("", "sts", "GetCallerIdentity")

    def consume(queue: str) -> list[AwsCall]:
        return [
            _call("", "sqs", "GetQueueUrl", QueueName=queue),
            _call("", "sqs", "GetQueueUrl", QueueName=dlq_name(queue)),
            _call("", "sqs", "ReceiveMessage", QueueUrl=url(queue)),
            _call("", "sqs", "DeleteMessageBatch", QueueUrl=url(queue)),
            _call("", "sqs", "DeleteMessage", QueueUrl=url(queue)),
            _call("", "sqs", "ChangeMessageVisibility", QueueUrl=url(queue)),
            _call("", "sqs", "GetQueueAttributes", QueueUrl=url(queue)),
            _call("", "sqs", "SendMessage", QueueUrl=url(dlq_name(queue))),
        ]

    every = [cmd, dlq_name(cmd), *views, *(dlq_name(v) for v in views)]
    return {
        Role.BOOTSTRAPPER: [
            identity,
            *(_call("", "sqs", op, QueueName=n) for n in every for op in ("CreateQueue", "GetQueueUrl")),
            *(
                _call("", "sqs", op, QueueUrl=url(n))
                for n in every
                for op in ("GetQueueAttributes", "SetQueueAttributes")
            ),
            _call("", "sns", "CreateTopic", Name=topic),
            _call("", "sns", "GetTopicAttributes", TopicArn=topic_arn),
            *(
                _call("", "sns", "Subscribe", TopicArn=topic_arn, Protocol="sqs", Endpoint=arn(v))
                for v in views
            ),
        ],
        Role.PRODUCER: [
            identity,
            _call("", "sqs", "GetQueueUrl", QueueName=cmd),
            _call("", "sqs", "SendMessageBatch", QueueUrl=url(cmd)),
            _call("", "kms", "GenerateDataKey", KeyId=key, EncryptionContext=context(cmd)),
        ],
        Role.COMMAND_CONSUMER: [
            identity,
            *consume(cmd),
            _call("", "sns", "PublishBatch", TopicArn=topic_arn),
            _call("", "sns", "GetTopicAttributes", TopicArn=topic_arn),
            _call("", "kms", "Decrypt", KeyId=key, EncryptionContext=context(cmd)),
            _call("", "kms", "GenerateDataKey", KeyId=key, EncryptionContext=context(topic)),
            _call("", "kms", "DescribeKey", KeyId=key),
        ],
        Role.EVENT_CONSUMER: [
            identity,
            *(c for v in views for c in consume(v)),
            _call("", "kms", "Decrypt", KeyId=key, EncryptionContext=context(topic)),
            _call("", "kms", "DescribeKey", KeyId=key),
        ],
        Role.DLQ_OPERATOR: [
            identity,
            *(
                c
                for source in [cmd, *views]
                for c in (
                    _call("", "sqs", "GetQueueUrl", QueueName=source),
                    _call("", "sqs", "GetQueueUrl", QueueName=dlq_name(source)),
                    _call("", "sqs", "ReceiveMessage", QueueUrl=url(dlq_name(source))),
                    _call("", "sqs", "DeleteMessage", QueueUrl=url(dlq_name(source))),
                    _call("", "sqs", "SendMessage", QueueUrl=url(source)),
                )
            ),
        ],
    }


def forbidden_calls(topo: OrderTopology, account: str, region: str, key: str) -> list[AwsCall]:
    """Requests no process of the configuration makes: every role must be denied them."""
    topic_arn = f"arn:aws:sns:{region}:{account}:{topo.topic}"
    foreign = f"https://sqs.{region}.amazonaws.com/{OTHER_ACCOUNT}/{topo.commands}"
    return [
        _call(
            "",
            "sns",
            "Subscribe",
            TopicArn=topic_arn,
            Protocol="sqs",
            Endpoint=f"arn:aws:sqs:{region}:{account}:{topo.commands}",
        ),
        _call(
            "", "sns", "Subscribe", TopicArn=topic_arn, Protocol="https", Endpoint="https://example.invalid/"
        ),
        _call("", "sqs", "SendMessage", QueueUrl=foreign),
        _call("", "sqs", "ReceiveMessage", QueueUrl=foreign),
        _call("", "sqs", "SetQueueAttributes", QueueUrl=foreign),
        _call(
            "",
            "kms",
            "GenerateDataKey",
            KeyId=key,
            EncryptionContext={"flowgate:version": "1", "destination": "elsewhere"},
        ),
        _call(
            "",
            "kms",
            "Decrypt",
            KeyId=key,
            EncryptionContext={"flowgate:version": "2", "destination": topo.commands},
        ),
        _call("", "kms", "Decrypt", KeyId=key, EncryptionContext={"destination": topo.commands}),
        _call(
            "",
            "kms",
            "Decrypt",
            KeyId=f"arn:aws:kms:{region}:{account}:key/other",
            EncryptionContext={"flowgate:version": "1", "destination": topo.commands},
        ),
    ]


def _policies(topo: OrderTopology, account: str, region: str, key: str) -> dict[Role, dict[str, Any]]:
    config = bus_config({**topo.config(kms_key=key), "region": region}, REGISTRY)
    return iam.role_policies(config, account=account, region=region)


def _request(call: AwsCall, account: str, region: str) -> IamRequest:
    return to_request(call, region=region, account=account, key_arns={})


@given(buses())
def test_each_role_is_allowed_what_it_needs_and_denied_the_rest(
    bus: tuple[OrderTopology, str, str, str],
) -> None:
    topo, account, region, key = bus
    policies = _policies(topo, account, region, key)
    needs = needed_calls(topo, account, region, key)
    wrong: list[str] = []
    for role, calls in needs.items():
        # "needed by this role too" compares whole requests (context included), never a view of them
        # shaped by the policies under test
        own = {_request(c, account, region) for c in calls}
        for c in calls:
            if allowing_statement(policies[role], _request(c, account, region)) is None:
                wrong.append(f"{role} is DENIED what it needs: {c.operation} {c.params}")
        others = [c for r, cs in needs.items() if r != role for c in cs]
        for c in [*others, *forbidden_calls(topo, account, region, key)]:
            request = _request(c, account, region)
            if request in own:
                continue
            if (sid := allowing_statement(policies[role], request)) is not None:
                wrong.append(
                    f"{role} is ALLOWED (statement {sid}) what it does not need: {c.operation} {c.params}"
                )
    assert not wrong, "\n".join(wrong)


@given(buses())
def test_no_wildcard_account_or_resource(bus: tuple[OrderTopology, str, str, str]) -> None:
    topo, account, region, key = bus
    for role, policy in _policies(topo, account, region, key).items():
        for statement in policy["Statement"]:
            resources = statement["Resource"]
            if statement["Action"] == ["sts:GetCallerIdentity"]:
                assert resources == ["*"]
                continue
            assert all("*" not in r and f":{account}:" in r for r in resources), (role, statement)
            assert all("*" not in a for a in statement["Action"]), (role, statement)
        assert "*" not in json.dumps(policy).replace('"*"', "")


@pytest.mark.parametrize("account", ["*", "", "12345", "0000000000001", "arn:aws:iam::123456789012:root"])
def test_policies_need_a_real_account_id(account: str) -> None:
    config = bus_config(OrderTopology("a").config(), REGISTRY)
    with pytest.raises(ConfigurationError, match="12-digit"):
        iam.role_policies(config, account=account)


def test_an_alias_needs_the_key_arn() -> None:
    config = bus_config(OrderTopology("a").config(kms_key="alias/flowgate"), REGISTRY)
    with pytest.raises(ConfigurationError, match="key ARN"):
        iam.role_policies(config, account="123456789012")
    arn = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    policies = iam.role_policies(config, account="123456789012", kms_key_arn=arn)
    assert arn in json.dumps(policies[Role.PRODUCER])


def test_audit_reports_denied_unexercised_and_unattributed_calls() -> None:
    """The audit itself can fail: a denied call, an unused grant and a call of no role each show."""
    topo, account, region, key = (
        OrderTopology("a"),
        "123456789012",
        "us-east-1",
        "arn:aws:kms:us-east-1:123456789012:key/k",
    )
    policies = _policies(topo, account, region, key)
    needs = needed_calls(topo, account, region, key)
    calls = [AwsCall("p", c.service, c.operation, c.params) for c in needs[Role.PRODUCER]]
    assert audit(
        calls,
        roles={"p": Role.PRODUCER},
        policies={Role.PRODUCER: policies[Role.PRODUCER]},
        region=region,
        account=account,
    ).ok
    receive = AwsCall("p", "sqs", "ReceiveMessage", {"QueueUrl": f"https://sqs/{account}/{topo.commands}"})
    verdict = audit(
        [*calls[:-1], receive, AwsCall("q", "sts", "GetCallerIdentity", {})],
        roles={"p": Role.PRODUCER},
        policies={Role.PRODUCER: policies[Role.PRODUCER]},
        region=region,
        account=account,
    )
    problems = "\n".join(verdict.problems())
    assert "DENIED p (producer): sqs:ReceiveMessage" in problems
    assert "UNEXERCISED producer SealCommands: kms:GenerateDataKey" in problems
    assert "process q made calls but plays no role" in problems
    assert not verdict.ok
