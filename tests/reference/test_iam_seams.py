"""The pieces the IAM audit stands on: the call recorder, resolve-only start, ``flowgate policies``."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber

from flowgate.harness.cli import main as flowgate
from flowgate.harness.iam_audit import load_calls, to_request
from flowgate.harness.sim import SimAws
from flowgate.reference.bootstrap import Bootstrapper
from flowgate.reference.config import BusConfiguration
from flowgate.reference.domain import order_registry
from flowgate.reference.errors import ConfigurationError
from flowgate.reference.hooks import AwsCallRecorder

CONFIG = {
    "domain": "orders",
    "region": "us-east-1",
    "send": {"orders.fifo": ["PlaceOrder"]},
    "raise": {"order-events.fifo": ["OrderPlaced"]},
    "listen": ["orders.fifo"],
    "subscribe": {"order-views.fifo": ["order-events.fifo"]},
}


def test_recorder_keeps_only_what_names_the_resource(tmp_path: Path) -> None:
    client = boto3.client("kms", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    AwsCallRecorder(str(tmp_path / "calls.jsonl"), "w1").attach(client)
    with Stubber(client) as stub:
        stub.add_response("generate_data_key", {"KeyId": "k", "CiphertextBlob": b"c", "Plaintext": b"p" * 32})
        client.generate_data_key(KeyId="alias/k", KeySpec="AES_256", EncryptionContext={"destination": "q"})
    [line] = (tmp_path / "calls.jsonl").read_text().splitlines()
    record = json.loads(line)
    assert (record["process"], record["service"], record["operation"]) == ("w1", "kms", "GenerateDataKey")
    assert record["params"] == {"KeyId": "alias/k", "EncryptionContext": {"destination": "q"}}  # no KeySpec
    [call] = load_calls([tmp_path / "calls.jsonl"])
    request = to_request(call, region="us-east-1", account="123456789012", key_arns={"alias/k": "arn:k"})
    assert (request.action, request.resource) == ("kms:GenerateDataKey", "arn:k")
    assert request.context_dict() == {"kms:EncryptionContext:destination": "q"}


def test_resolve_creates_nothing_and_refuses_a_missing_queue() -> None:
    sim = SimAws(seed=1)
    sqs, sns, sts = sim.client("sqs"), sim.client("sns"), sim.client("sts")
    config = BusConfiguration.from_dict(CONFIG, order_registry())
    with pytest.raises(ConfigurationError, match="does not exist"):
        Bootstrapper(config, sqs=sqs, sns=sns, sts=sts).resolve()
    assert sqs.list_queues().get("QueueUrls", []) == []
    made = Bootstrapper(config, sqs=sqs, sns=sns, sts=sts).run()
    resolved = Bootstrapper(config, sqs=sqs, sns=sns, sts=sts).resolve()
    assert resolved.queue_urls == made.queue_urls
    assert resolved.dlq_urls == made.dlq_urls
    assert resolved.topic_arns == made.topic_arns
    assert resolved.queue_arns == made.queue_arns


def test_flowgate_policies_prints_each_role(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bus.json"
    key = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    path.write_text(json.dumps({**CONFIG, "encryption": {"kmsKeyId": key}}))
    assert flowgate(["policies", "--config", str(path), "--account", "123456789012"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["account"] == "123456789012"
    assert set(out["policies"]) == {
        "bootstrapper",
        "producer",
        "command-consumer",
        "event-consumer",
        "dlq-operator",
    }
    assert key in json.dumps(out["policies"]["producer"])
    assert flowgate(["policies", "--config", str(path), "--account", "*"]) == 2
    assert (
        flowgate(["policies", "--config", str(path), "--account", "123456789012", "--role", "dlq-operator"])
        == 0
    )
    assert "kms:" not in capsys.readouterr().out
