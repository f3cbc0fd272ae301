"""SQS FIFO and SNS FIFO deduplication in the simulator, as AWS documents it.

SQS developer guide: "If a message with a particular message deduplication ID is sent
successfully, any messages sent with the same message deduplication ID are accepted
successfully but aren't delivered during the 5-minute deduplication interval." The interval
starts at the first *accepted* send (a dropped duplicate does not extend it); the key is the
explicit ``MessageDeduplicationId`` or, with ``ContentBasedDeduplication``, the SHA-256 of the
body (not the attributes); its scope is the queue, or the message group with
``DeduplicationScope=messageGroup``. SNS FIFO topics deduplicate the same way at the topic
(``FifoThroughputScope=MessageGroup``: per message group).
"""

from __future__ import annotations

import hashlib
from typing import Any

from flowgate.harness.sim import SimAws, SnsClient, SqsClient


def fifo(sqs: SqsClient, name: str = "q.fifo", **attrs: str) -> str:
    return sqs.create_queue(QueueName=name, Attributes={"FifoQueue": "true", **attrs})["QueueUrl"]


def drain(sqs: SqsClient, url: str) -> list[dict[str, Any]]:
    """Every message the queue hands out (deleted as received)."""
    out: list[dict[str, Any]] = []
    while True:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"]).get(
            "Messages", []
        )
        if not got:
            return out
        for m in got:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        out += got


def send(sqs: SqsClient, url: str, body: str, group: str = "g", dedup: str | None = "d") -> str:
    params: dict[str, Any] = {"QueueUrl": url, "MessageBody": body, "MessageGroupId": group}
    if dedup is not None:
        params["MessageDeduplicationId"] = dedup
    return str(sqs.send_message(**params)["MessageId"])


def test_the_window_starts_at_the_first_accepted_send(sim: SimAws, sqs: SqsClient) -> None:
    url = fifo(sqs)
    first = send(sqs, url, "a")
    sim.clock.advance(200)
    assert send(sqs, url, "dropped") == first  # accepted, answers with the original's id
    sim.clock.advance(100)  # 300 s after the first send (the duplicate did not extend the window)
    second = send(sqs, url, "b")
    sim.clock.advance(150)
    assert send(sqs, url, "dropped too") == second  # the next window starts at "b"
    sim.clock.advance(150)
    send(sqs, url, "c")
    assert [m["Body"] for m in drain(sqs, url)] == ["a", "b", "c"]


def test_a_duplicate_changes_nothing_about_the_original(sim: SimAws, sqs: SqsClient) -> None:
    url = fifo(sqs, VisibilityTimeout="30")
    send(sqs, url, "a")
    [held] = sqs.receive_message(QueueUrl=url)["Messages"]
    send(sqs, url, "a")  # while the original is in flight
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert (attrs["ApproximateNumberOfMessages"], attrs["ApproximateNumberOfMessagesNotVisible"]) == ("0", "1")
    sqs.delete_message(QueueUrl=url, ReceiptHandle=held["ReceiptHandle"])
    send(sqs, url, "a")  # after its delete: still inside the window
    assert drain(sqs, url) == []


def test_content_based_dedup_hashes_the_body_only_and_an_explicit_id_wins(sqs: SqsClient) -> None:
    url = fifo(sqs, ContentBasedDeduplication="true")
    a = sqs.send_message(
        QueueUrl=url,
        MessageBody="same",
        MessageGroupId="g",
        MessageAttributes={"k": {"DataType": "String", "StringValue": "1"}},
    )["MessageId"]
    b = sqs.send_message(
        QueueUrl=url,
        MessageBody="same",
        MessageGroupId="g",
        MessageAttributes={"k": {"DataType": "String", "StringValue": "2"}},
    )["MessageId"]
    c = send(sqs, url, "same", dedup="explicit")
    assert a == b != c
    got = drain(sqs, url)
    assert [m["Attributes"]["MessageDeduplicationId"] for m in got] == [
        hashlib.sha256(b"same").hexdigest(),
        "explicit",
    ]


def test_scope_queue_and_scope_message_group(sqs: SqsClient) -> None:
    per_queue = fifo(sqs, "queue.fifo")
    send(sqs, per_queue, "a", group="g1")
    send(sqs, per_queue, "b", group="g2")  # same id, other group: a duplicate for the queue
    assert [m["Body"] for m in drain(sqs, per_queue)] == ["a"]
    per_group = fifo(sqs, "group.fifo", DeduplicationScope="messageGroup", FifoThroughputLimit="perMessageGroupId")
    send(sqs, per_group, "a", group="g1")
    send(sqs, per_group, "b", group="g2")  # another group: its own key
    send(sqs, per_group, "c", group="g1")  # same group, same id: dropped
    assert sorted(m["Body"] for m in drain(sqs, per_group)) == ["a", "b"]


def test_one_id_on_two_queues_is_two_messages(sqs: SqsClient) -> None:
    one, two = fifo(sqs, "one.fifo"), fifo(sqs, "two.fifo")
    send(sqs, one, "a")
    send(sqs, two, "a")
    assert len(drain(sqs, one)) == len(drain(sqs, two)) == 1


def test_a_duplicate_inside_one_batch(sqs: SqsClient) -> None:
    url = fifo(sqs)
    earlier = send(sqs, url, "single", dedup="s")
    result = sqs.send_message_batch(
        QueueUrl=url,
        Entries=[
            {"Id": "1", "MessageBody": "x", "MessageGroupId": "g", "MessageDeduplicationId": "b"},
            {"Id": "2", "MessageBody": "y", "MessageGroupId": "g", "MessageDeduplicationId": "b"},
            {"Id": "3", "MessageBody": "z", "MessageGroupId": "g", "MessageDeduplicationId": "s"},
        ],
    )
    ids = {e["Id"]: e["MessageId"] for e in result["Successful"]}
    assert not result.get("Failed")
    assert ids["1"] == ids["2"]
    assert ids["3"] == earlier
    assert [m["Body"] for m in drain(sqs, url)] == ["single", "x"]


def _topic(
    sqs: SqsClient, sns: SnsClient, queue_attrs: dict[str, str] | None = None, **attrs: str
) -> tuple[str, list[str]]:
    """A FIFO topic with two raw FIFO queue subscriptions."""
    topic = sns.create_topic(Name="t.fifo", Attributes={"FifoTopic": "true", **attrs})["TopicArn"]
    urls = []
    for n in range(2):
        url = fifo(sqs, f"sub-{n}.fifo", **(queue_attrs or {}))
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"})
        urls.append(url)
    return topic, urls


def test_fifo_topic_window_and_content_based_dedup(sim: SimAws, sqs: SqsClient, sns: SnsClient) -> None:
    topic, urls = _topic(sqs, sns, ContentBasedDeduplication="true")
    first = sns.publish(TopicArn=topic, Message="e", MessageGroupId="g")["MessageId"]
    sim.clock.advance(200)
    assert sns.publish(TopicArn=topic, Message="e", MessageGroupId="g2")["MessageId"] == first
    sim.clock.advance(100)  # 300 s after the first accepted publish
    sns.publish(TopicArn=topic, Message="e", MessageGroupId="g")
    for url in urls:
        got = drain(sqs, url)
        assert [m["Body"] for m in got] == ["e", "e"]
        assert {m["Attributes"]["MessageDeduplicationId"] for m in got} == {hashlib.sha256(b"e").hexdigest()}


def test_fifo_topic_dedups_at_the_topic_for_every_subscription(sqs: SqsClient, sns: SnsClient) -> None:
    topic = sns.create_topic(Name="t.fifo", Attributes={"FifoTopic": "true"})["TopicArn"]
    sns.publish(TopicArn=topic, Message="e", MessageGroupId="g", MessageDeduplicationId="d")
    late = fifo(sqs, "late.fifo")  # subscribed after the first publish
    arn = sqs.get_queue_attributes(QueueUrl=late, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"})
    sns.publish(TopicArn=topic, Message="e", MessageGroupId="g", MessageDeduplicationId="d")
    assert drain(sqs, late) == []  # AWS: deduplicated by the topic (LocalStack: by each queue)


def test_fifo_topic_batch_and_throughput_scope(sqs: SqsClient, sns: SnsClient) -> None:
    # the queues deduplicate too (SNS forwards the id): per group, so the topic's scope shows
    topic, urls = _topic(sqs, sns, {"DeduplicationScope": "messageGroup"})
    entries = [
        {"Id": "1", "Message": "x", "MessageGroupId": "g1", "MessageDeduplicationId": "d"},
        {"Id": "2", "Message": "y", "MessageGroupId": "g2", "MessageDeduplicationId": "d"},
    ]
    result = sns.publish_batch(TopicArn=topic, PublishBatchRequestEntries=entries)
    assert len(result["Successful"]) == 2
    assert not result["Failed"]
    assert [m["Body"] for m in drain(sqs, urls[0])] == ["x"]  # FifoThroughputScope Topic (default)
    sns.set_topic_attributes(TopicArn=topic, AttributeName="FifoThroughputScope", AttributeValue="MessageGroup")
    entries = [{**e, "MessageDeduplicationId": "d2"} for e in entries]
    sns.publish_batch(TopicArn=topic, PublishBatchRequestEntries=entries)
    sns.publish(TopicArn=topic, Message="z", MessageGroupId="g1", MessageDeduplicationId="d2")
    # per group: "y" (g2) is its own key, "z" (g1, d2) a duplicate of the second "x"
    assert sorted(m["Body"] for m in drain(sqs, urls[0])) == ["x", "y"]
    assert sorted(m["Body"] for m in drain(sqs, urls[1])) == ["x", "x", "y"]


def test_fifo_throughput_scope_values(sns: SnsClient) -> None:
    from simhelpers import error_code

    fifo_topic = sns.create_topic(Name="f.fifo", Attributes={"FifoTopic": "true"})["TopicArn"]
    standard = sns.create_topic(Name="s")["TopicArn"]
    for arn, value in ((fifo_topic, "Queue"), (standard, "Topic")):
        assert (
            error_code(
                lambda arn=arn, value=value: sns.set_topic_attributes(
                    TopicArn=arn, AttributeName="FifoThroughputScope", AttributeValue=value
                )
            )
            == "InvalidParameter"
        )
