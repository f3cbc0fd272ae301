"""The worker entry point: config file -> bootstrap -> listeners (one pass with --once)."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from flowgate_reference_kms import ENDPOINT

from flowgate.reference.worker import main

pytestmark = pytest.mark.localstack


def test_worker_once_from_json_config(aws: SimpleNamespace, aws_cleanup: list[Any], uid: str, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in {"AWS_ENDPOINT_URL": ENDPOINT, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                 "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(k, v)
    q, t, v = f"fg-w-{uid}.fifo", f"fg-w-ev-{uid}.fifo", f"fg-w-v-{uid}.fifo"
    cfg = {"domain": "orders", "region": "us-east-1",
           "send": {q: ["PlaceOrder", "AuthorizePayment", "ReserveInventory", "ConfirmOrder", "CancelOrder"]},
           "raise": {t: ["OrderPlaced", "PaymentAuthorized", "InventoryReserved", "OrderConfirmed", "OrderCancelled"]},
           "listen": [q], "subscribe": {v: [t]},
           "idempotency": {"url": f"sqlite:///{tmp_path}/idem.db"},
           "options": {"wait_time_seconds": 0, "visibility_timeout": 5}}
    path = tmp_path / "worker.json"
    path.write_text(json.dumps(cfg))
    try:
        assert main(["--config", str(path), "--once"]) == 0
        assert main(["--config", str(path), "--once"]) == 0  # bootstrap is idempotent
        url = aws.sqs.get_queue_url(QueueName=q)["QueueUrl"]
        assert aws.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["RedrivePolicy"])["Attributes"]
    finally:
        for name in (q, v, q.replace(".fifo", "-dlq.fifo"), v.replace(".fifo", "-dlq.fifo")):
            with contextlib.suppress(Exception):
                aws_cleanup.append(aws.sqs.get_queue_url(QueueName=name)["QueueUrl"])
        account = aws.sts.get_caller_identity()["Account"]
        aws_cleanup.append(f"arn:aws:sns:us-east-1:{account}:{t}")
