from __future__ import annotations

import json
import random
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError

from flowgate.harness.sim import SimAws, SimTap


def transcript(seed: int, **options: Any) -> list[str]:
    """A fixed call sequence; returns everything observable (ids, handles, order, bytes)."""
    sim = SimAws(seed, **options)
    sqs, sns, kms = sim.client("sqs"), sim.client("sns"), sim.client("kms")
    out: list[str] = []
    std = sqs.create_queue(QueueName="std", Attributes={"VisibilityTimeout": "2"})["QueueUrl"]
    fifo = sqs.create_queue(
        QueueName="f.fifo", Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"}
    )["QueueUrl"]
    topic = sns.create_topic(Name="t")["TopicArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint="arn:aws:sqs:us-east-1:000000000000:std")
    for i in range(12):
        out.append(sqs.send_message(QueueUrl=std, MessageBody=f"s{i}")["MessageId"])
        out.append(
            sqs.send_message(QueueUrl=fifo, MessageBody=f"f{i}", MessageGroupId=f"g{i % 3}")["MessageId"]
        )
    out.append(sns.publish(TopicArn=topic, Message="evt")["MessageId"])
    for _ in range(6):
        for url in (std, fifo):
            for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=4, WaitTimeSeconds=5).get(
                "Messages", []
            ):
                out.append(f"{m['MessageId']} {m['ReceiptHandle']} {m['Body']}")
                try:
                    sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
                except ClientError as exc:
                    out.append(exc.response["Error"]["Code"])
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    out.append(kms.generate_data_key(KeyId=key, KeySpec="AES_256")["CiphertextBlob"].hex())
    out.append(json.dumps(sorted(f"{k}" for k in sim.calls.items())))
    out.append(str(sim.clock.now()))
    return out


def test_same_seed_same_transcript() -> None:
    assert transcript(42, reorder=True, redelivery_probability=0.3) == transcript(
        42, reorder=True, redelivery_probability=0.3
    )


def test_different_seed_differs() -> None:
    assert transcript(1) != transcript(2)
    assert transcript(1, reorder=True) != transcript(2, reorder=True)


class DuplicateFirst(SimTap):
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []
        self.duplicated = False

    def after_call(
        self,
        service: str,
        operation: str,
        params: Mapping[str, Any],
        response: Mapping[str, Any] | None,
        error: ClientError | None,
    ) -> None:
        self.seen.append((operation, "error" if error else "ok"))

    def duplicate_delivery(self, queue_url: str, message_id: str) -> bool:
        if self.duplicated:
            return False
        self.duplicated = True
        return True


def test_tap_duplicate_delivery_and_call_log() -> None:
    tap = DuplicateFirst()
    sim = SimAws(0, tap=tap)
    sqs = sim.client("sqs")
    url = sqs.create_queue(QueueName="q")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="x")
    first = sqs.receive_message(QueueUrl=url)["Messages"][0]
    second = sqs.receive_message(QueueUrl=url)["Messages"][0]  # the duplicate, while the first is in flight
    assert first["MessageId"] == second["MessageId"]
    assert first["ReceiptHandle"] != second["ReceiptHandle"]
    sqs.delete_message(QueueUrl=url, ReceiptHandle=first["ReceiptHandle"])
    sqs.delete_message(QueueUrl=url, ReceiptHandle=second["ReceiptHandle"])
    assert sqs.receive_message(QueueUrl=url, WaitTimeSeconds=20).get("Messages") is None
    assert tap.seen[:3] == [("CreateQueue", "ok"), ("SendMessage", "ok"), ("ReceiveMessage", "ok")]
    assert sim.calls[("sqs", "ReceiveMessage")] == 3


class SlowDelete(SimTap):
    def delete_delay(self, queue_url: str, message_id: str) -> float:
        return 10.0


def test_tap_delayed_delete_allows_redelivery_then_applies() -> None:
    sim = SimAws(0, tap=SlowDelete())
    sqs = sim.client("sqs")
    url = sqs.create_queue(QueueName="q", Attributes={"VisibilityTimeout": "3"})["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="x")
    msg = sqs.receive_message(QueueUrl=url)["Messages"][0]
    sqs.delete_message(QueueUrl=url, ReceiptHandle=msg["ReceiptHandle"])
    sim.clock.advance(3)
    again = sqs.receive_message(QueueUrl=url)["Messages"][0]  # the delete has not landed yet
    assert again["MessageId"] == msg["MessageId"]
    sim.clock.advance(7)  # t=10: the delayed delete takes effect (stale handle removes it, as LocalStack)
    assert sqs.receive_message(QueueUrl=url, WaitTimeSeconds=20).get("Messages") is None


def test_nemesis_surface_in_flight_and_expire() -> None:
    sim = SimAws(0)
    sqs = sim.client("sqs")
    url = sqs.create_queue(QueueName="q.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="a", MessageGroupId="g", MessageDeduplicationId="1")
    sqs.send_message(QueueUrl=url, MessageBody="b", MessageGroupId="g", MessageDeduplicationId="2")
    msg = sqs.receive_message(QueueUrl=url)["Messages"][0]
    [flight] = sim.in_flight()
    assert (flight.message_id, flight.receipt_handle, flight.receive_count, flight.message_group_id) == (
        msg["MessageId"],
        msg["ReceiptHandle"],
        1,
        "g",
    )
    assert sim.expire_visibility(url, msg["MessageId"])
    assert sim.in_flight() == []
    again = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert [m["Body"] for m in again] == ["a", "b"]


# ------------------------------------------------------------------ worker processes (interleaving)
def _interleaving(seed: int) -> list[str]:
    """Three tasks that pause and sleep; the trace of who ran when."""
    from flowgate.harness.sim.processes import ProcessClock, ProcessScheduler

    clock = ProcessClock()
    sched = ProcessScheduler(clock, random.Random(seed))
    clock.scheduler = sched
    trace: list[str] = []

    def worker(name: str, naps: int) -> str:
        for step in range(4):
            trace.append(f"{name}{step}@{clock.now() - clock_start:g}")
            if step == naps:
                clock.sleep(10)  # inside a task: this task sleeps, the others run
            else:
                sched.pause()
        return name

    clock_start = clock.now()
    tasks = [sched.spawn(n, lambda n=n, k=k: worker(n, k)) for k, n in enumerate("abc")]
    sched.run()
    trace.append(f"idle@{clock.now() - clock_start:g}")
    clock.advance(25)  # the driver's jump stops at every wake time and runs who is due
    assert all(t.done for t in tasks)
    assert [t.result for t in tasks] == ["a", "b", "c"]
    return trace


def test_same_seed_same_interleaving() -> None:
    first = _interleaving(7)
    assert first == _interleaving(7)
    assert any(_interleaving(s) != first for s in range(8, 14))
    # nobody runs past a sleep before the clock reached its wake time
    for name in "abc":
        steps = [entry for entry in first if entry.startswith(name)]
        times = [float(entry.split("@")[1]) for entry in steps]
        assert times == sorted(times)
        assert times[-1] == 10.0
    assert first.index("idle@0") < min(i for i, entry in enumerate(first) if entry.endswith("@10"))


def test_interleaved_simulation_same_seed_same_history() -> None:
    from flowgate.harness.faults import parse_faults
    from flowgate.harness.simulation import SimConfig, run_simulation

    config = SimConfig(
        seed=21,
        orders=8,
        workers=3,
        fifo=False,
        interleave=True,
        heartbeat=False,
        faults=parse_faults("slow_handler=0.3,dup=0.1,crash=0.02,restart=0.01"),
    )

    def history(c: SimConfig) -> str:
        return "\n".join(op.to_json() for op in run_simulation(c).history.ops)

    first = history(config)
    assert first == history(config)
    assert first != history(SimConfig(**{**config.__dict__, "seed": 22}))
