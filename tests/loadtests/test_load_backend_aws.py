"""``--backend aws`` up to the network: the load test's run against the simulated AWS behind
the same client seam (``Run.aws``: anything with ``client(service)``, here ``flowgate.harness.sim.SimAws``).

What a real-AWS run must do and not do is checked here: no LocalStack endpoint resolved and no
warm-up, unique resource names, the orders reach the command queue, everything the run created
is deleted afterwards, no LocalStack CPU figure, and worker subprocesses get the environment's
credential chain (no endpoint, no static credentials).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gevent
import pytest

from flowgate.harness.clients import ClientSettings
from flowgate.harness.sim import SimAws
from loadtests import _runtime
from loadtests._sut import ReferenceSUT, aws_env


def _no(what: str) -> Any:
    def refuse(*_a: Any, **_k: Any) -> Any:
        raise AssertionError(f"--backend aws must not {what}")

    return refuse


def _names(aws: SimAws) -> tuple[list[str], list[str]]:
    queues = aws.client("sqs").list_queues().get("QueueUrls", [])
    topics = [t["TopicArn"] for t in aws.client("sns").list_topics().get("Topics", [])]
    return queues, topics


def test_aws_backend_run_on_the_simulator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_runtime, "resolve_endpoint", _no("resolve a LocalStack endpoint"))
    monkeypatch.setattr(_runtime, "warm_up", _no("warm LocalStack up"))
    monkeypatch.setattr(_runtime, "_localstack_cpu", _no("read LocalStack's CPU"))
    # the simulator does not model SNS filter policies (the probe's is an optimisation only)
    monkeypatch.setattr(ReferenceSUT, "probe_filter", lambda self: None)
    aws = SimAws(seed=7)
    cfg = _runtime.Config(
        backend="aws",
        sut="reference",
        workers=0,  # worker subprocesses cannot reach an in-process simulator
        effect_at="probe",
        probe_pollers=0,
        drain_timeout_s=0.2,
        report_dir=tmp_path,
        warmup_s=30.0,  # asked for, and still skipped: there is no LocalStack to warm
    )
    run = _runtime.Run(cfg=cfg, fire=lambda **_kw: None, log=lambda _m: None, aws=aws)
    run.start()
    try:
        assert run.endpoint is None
        suffix = run.sut.suffix
        queues, topics = _names(aws)
        assert queues
        assert topics
        assert all(suffix in q for q in queues), queues
        assert all(suffix in t for t in topics), topics
        run.submit(25, due=0.0)
        gevent.sleep(0.2)
        run.stop_load()
        assert run.acked == 25
        assert run.failed == 0
        command_queue = run.sut.resources.queue_urls[next(iter(run.sut.config.command_queues))]
        attrs = aws.client("sqs").get_queue_attributes(
            QueueUrl=command_queue, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]
        assert int(attrs["ApproximateNumberOfMessages"]) == 25
        assert run.drain() == 25  # nothing consumes them: all missing, and said so
    finally:
        run.shutdown()
    assert _names(aws) == ([], []), "the run's queues and topics must be deleted"
    assert "localstack" not in run.cpu


def test_aws_backend_workers_inherit_the_credential_chain(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_PROFILE", "loadtest")
    env = aws_env(ClientSettings.from_environment(region="eu-central-1"))
    assert "AWS_ENDPOINT_URL" not in env
    assert "AWS_ACCESS_KEY_ID" not in env
    assert env["AWS_PROFILE"] == "loadtest"
    assert env["AWS_REGION"] == "eu-central-1"
    local = aws_env(ClientSettings.local("http://127.0.0.1:4566"))
    assert local["AWS_ENDPOINT_URL"] == "http://127.0.0.1:4566"
