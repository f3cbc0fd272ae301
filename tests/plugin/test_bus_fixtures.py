"""The plugin's bus fixtures (``aws_sim``, ``aws_backend``, ``sqs_queue``, ``sns_topic``,
``history``) and ``assert_valid``, used in-process and through the copyable example
``docs/examples/plugin/test_my_consumer.py`` run by pytest in a subprocess from a host project
outside this checkout (so only the installed ``pytest11`` plugin serves it)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from flowgate.fixtures.plugin import assert_valid, simulator_seed
from flowgate.fixtures.plugin_bus import BusClients, QueueFactory, TopicFactory
from flowgate.harness.history import History
from flowgate.harness.sim import SimAws

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "plugin" / "test_my_consumer.py"
BACKENDS = ["sim", pytest.param("localstack", marks=pytest.mark.localstack)]


def _run_example(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    host = tmp_path / "host"
    host.mkdir(exist_ok=True)
    (host / "pytest.ini").write_text("[pytest]\naddopts = --strict-markers\n", encoding="utf-8")
    shutil.copy(EXAMPLE, host / EXAMPLE.name)
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_DISABLE_PLUGIN_AUTOLOAD"}
    for name in ("FLOWGATE_SEED", "FLOWGATE_AWS_BACKEND"):
        env.pop(name, None)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:randomly", "-rA", *args, EXAMPLE.name],
        cwd=host, env=env, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip


def test_example_passes_on_the_simulator(tmp_path: Path) -> None:
    proc = _run_example(tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "flowgate:" not in out, "a run that asks nothing of flowgate gets no header line"
    assert "PASSED test_my_consumer.py::test_my_consumer" in out
    assert "XFAIL test_my_consumer.py::test_broken_consumer_is_caught" in out


def test_broken_consumer_fails_with_the_anomaly_printed(tmp_path: Path) -> None:
    proc = _run_example(tmp_path, "--runxfail", "-k", "broken", "--flowgate-seed=7")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "1 failed" in out
    assert "total_queue: lost: command order-1/2 (entity order-1 seq 2)" in out
    assert "per_entity_order: skip: entity order-1: seq 3" in out
    assert "aws_sim seed 7: rerun with --flowgate-seed=7" in out
    assert "flowgate: aws_backend sim, simulator seed 7" in out  # asked for a seed: the header says it


def test_localstack_runs_of_the_example_carry_the_marker(tmp_path: Path) -> None:
    """Deselected by ``-m 'not localstack'`` without contacting LocalStack: never a silent skip."""
    proc = _run_example(tmp_path, "--flowgate-aws-backend=localstack", "-m", "not localstack")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 5, out  # nothing left to run
    assert "2 deselected" in out


@pytest.mark.localstack
def test_example_passes_and_catches_the_broken_consumer_on_localstack(
    tmp_path: Path, localstack_endpoint: str | None
) -> None:
    proc = _run_example(tmp_path, "--flowgate-aws-backend=localstack")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "PASSED test_my_consumer.py::test_my_consumer" in out
    broken = _run_example(tmp_path, "--flowgate-aws-backend=localstack", "--runxfail", "-k", "broken")
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert "total_queue: lost: command order-1/2" in broken.stdout


def test_aws_sim_is_seeded_and_reports_its_seed(aws_sim: SimAws, request: pytest.FixtureRequest) -> None:
    assert aws_sim.seed == simulator_seed(request.config)
    assert ("flowgate_seed", aws_sim.seed) in request.node.user_properties
    start = aws_sim.clock.now()
    aws_sim.clock.advance(301)
    assert aws_sim.clock.now() == start + 301


@pytest.mark.flowgate_sim(reorder=True, redelivery_probability=0.25)
def test_flowgate_sim_marker_sets_the_fault_knobs(aws_sim: SimAws) -> None:
    assert "redelivery_probability=0.25" in repr(aws_sim)
    assert "reorder=True" in repr(aws_sim)


@pytest.mark.parametrize("aws_backend", BACKENDS, indirect=True)
def test_fifo_queue_with_dlq_redrives_after_max_receive_count(sqs_queue: QueueFactory) -> None:
    queue = sqs_queue("plugin-redrive", fifo=True, dlq=True, max_receive_count=2)
    assert queue.name.endswith(".fifo")
    assert queue.dlq is not None
    assert queue.dlq.name.endswith(".fifo")
    sqs = queue.client
    attributes = sqs.get_queue_attributes(QueueUrl=queue.url, AttributeNames=["All"])["Attributes"]
    assert attributes["FifoQueue"] == "true"
    redrive = json.loads(attributes["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"] == queue.dlq.arn
    assert int(redrive["maxReceiveCount"]) == 2
    sqs.send_message(QueueUrl=queue.url, MessageBody="x", MessageGroupId="g", MessageDeduplicationId="d1")
    for _ in range(2):
        got = sqs.receive_message(QueueUrl=queue.url, VisibilityTimeout=0, WaitTimeSeconds=1)
        assert len(got.get("Messages", [])) == 1
    assert sqs.receive_message(QueueUrl=queue.url, WaitTimeSeconds=1).get("Messages", []) == []
    dead = sqs.receive_message(QueueUrl=queue.dlq.url, WaitTimeSeconds=2).get("Messages", [])
    assert [m["Body"] for m in dead] == ["x"]


@pytest.mark.parametrize("aws_backend", BACKENDS, indirect=True)
def test_fifo_topic_fans_out_to_a_fifo_queue(sqs_queue: QueueFactory, sns_topic: TopicFactory) -> None:
    topic = sns_topic("plugin-events", fifo=True, content_based_deduplication=True)
    queue = sqs_queue("plugin-events", fifo=True)
    assert topic.name.endswith(".fifo")
    topic.subscribe(queue)
    topic.client.publish(TopicArn=topic.arn, Message="hello", MessageGroupId="g")
    got = queue.client.receive_message(QueueUrl=queue.url, WaitTimeSeconds=5).get("Messages", [])
    assert [m["Body"] for m in got] == ["hello"]


def test_factories_make_unique_names_and_delete_everything() -> None:
    sim = SimAws(seed=1)
    clients = BusClients("sim", sim.client("sqs"), sim.client("sns"), sim.client("kms"), sim.client("sts"))
    queues, topics = QueueFactory(clients), TopicFactory(clients)
    first, second = queues("q", dlq=True), queues("q")
    names = {first.name, second.name, first.dlq.name if first.dlq else ""}
    assert len(names) == 3
    topic = topics("t")
    topic.subscribe(second)
    assert topics("t").arn != topic.arn
    queues.delete_all()
    topics.delete_all()
    assert clients.sqs.list_queues().get("QueueUrls", []) == []
    assert clients.sns.list_topics()["Topics"] == []


def test_history_uses_the_simulators_clock(history: History, aws_sim: SimAws) -> None:
    start = aws_sim.clock.now()
    aws_sim.clock.advance(12.5)
    assert history.append("consumer", "ok", "receive").time == start + 12.5


def test_assert_valid_passes_a_valid_history_and_prints_each_anomaly() -> None:
    valid = History()
    command = {"command_id": "c1", "entity_id": "e", "seq": 1, "destination": "q.fifo"}
    valid.append("producer", "ok", "send", command)
    valid.append("consumer", "ok", "effect", command)
    valid.append("harness", "ok", "drain")
    assert_valid(valid)
    valid.append("consumer", "ok", "effect", command)
    with pytest.raises(AssertionError) as failure:
        assert_valid(valid, checkers=["total_queue"])
    message = str(failure.value)
    assert "total_queue: duplicated: command c1 took effect 2 times" in message
    assert "#3 consumer ok effect" in message
    with pytest.raises(AssertionError, match="no-drain"):
        assert_valid(History(), checkers=["total_queue"])
    with pytest.raises(ValueError, match="unknown checkers"):
        assert_valid(valid, checkers=["no_such_checker"])
