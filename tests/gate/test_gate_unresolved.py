"""The gate's look at what is left in its command queues after the drain (contract v1.3 section 9),
on the simulated SQS: visible messages are named with their kind and receive count; messages still
in flight after the wait are counted, with the sent messages that could be them."""

from __future__ import annotations

from flowgate.harness import topology as topo
from flowgate.harness.checkers import resolution
from flowgate.harness.gate.drain import unresolved
from flowgate.harness.gate.state import CLIENT
from flowgate.harness.history import History
from flowgate.harness.sim import SimAws


def test_what_is_left_is_named_or_counted_with_candidates() -> None:
    aws = SimAws(seed=3)
    sqs = aws.client("sqs")
    url = sqs.create_queue(QueueName="c.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    queue = topo.CommandQueue("c.fifo", url, visibility_timeout=0)
    history = History()

    def send(group: str, dedup: str) -> str:
        return str(
            sqs.send_message(
                QueueUrl=url, MessageBody="{}", MessageGroupId=group, MessageDeduplicationId=dedup
            )["MessageId"]
        )

    first = send("o-1", "a")
    history.append(CLIENT, "ok", "send", {"command_id": "c-1", "entity_id": "o-1", "message_id": first})
    resend = send("o-1", "b")
    history.append("nemesis", "info", "duplicate_delivery", {"command_id": "c-1", "message_id": resend})
    parked = send("p-1", "c")
    history.append("nemesis", "info", "poison", {"message_id": parked, "kind": "bad_json"})
    # c-1 took effect and was deleted; its resend stays visible; the poison is parked for 12 h
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    handles = {m["MessageId"]: m["ReceiptHandle"] for m in got}
    sqs.delete_message(QueueUrl=url, ReceiptHandle=handles[first])
    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=handles[parked], VisibilityTimeout=43200)
    aws.clock.advance(31)  # past the queue's default visibility timeout: the resend is visible again

    left = unresolved(sqs, [queue], history, effects_seen={"c-1"})
    named, unnamed = left
    assert (named["message_id"], named["kind"], named["command_id"], named["state"]) == (
        resend,
        "duplicate",
        "c-1",
        "visible",
    )
    assert named["receive_count"] >= 1
    assert unnamed["count"] == 1
    assert "parked" in unnamed["state"]
    assert unnamed["candidates"][0] == f"hostile {parked} (message {parked})"  # the applied c-1 ranks last
    history.append("harness", "ok", "drain", {"unresolved": left})
    assert resolution(history).kinds() == {"unresolved": 2}
