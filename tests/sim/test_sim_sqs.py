from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError
from simhelpers import bodies, error_code

from flowgate.harness.sim import SimAws, SqsClient


def fifo(sqs: SqsClient, name: str = "q.fifo", **attrs: str) -> str:
    attributes = {"FifoQueue": "true", **attrs}
    return str(sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"])


# ----------------------------------------------------------------------------- queues
def test_create_queue_is_idempotent_and_rejects_changed_attributes(sqs: SqsClient) -> None:
    url = sqs.create_queue(QueueName="q", Attributes={"VisibilityTimeout": "5"})["QueueUrl"]
    assert sqs.create_queue(QueueName="q", Attributes={"VisibilityTimeout": "5"})["QueueUrl"] == url
    assert error_code(lambda: sqs.create_queue(QueueName="q", Attributes={"VisibilityTimeout": "6"})) == (
        "QueueAlreadyExists"
    )
    assert sqs.get_queue_url(QueueName="q")["QueueUrl"] == url
    assert sqs.list_queues(QueueNamePrefix="q")["QueueUrls"] == [url]


def test_fifo_name_rule(sqs: SqsClient) -> None:
    assert error_code(lambda: sqs.create_queue(QueueName="x", Attributes={"FifoQueue": "true"})) == (
        "InvalidParameterValue"
    )
    assert error_code(lambda: sqs.create_queue(QueueName="x.fifo")) == "InvalidParameterValue"


def test_missing_queue_is_the_real_modeled_error(sqs: SqsClient) -> None:
    with pytest.raises(sqs.exceptions.QueueDoesNotExist) as info:
        sqs.get_queue_url(QueueName="nope")
    assert info.value.response["Error"]["Code"] == "AWS.SimpleQueueService.NonExistentQueue"
    assert info.value.operation_name == "GetQueueUrl"
    assert isinstance(info.value, ClientError)


def test_queue_attributes_and_counts(sqs: SqsClient) -> None:
    url = sqs.create_queue(QueueName="q")["QueueUrl"]
    for i in range(3):
        sqs.send_message(QueueUrl=url, MessageBody=f"m{i}")
    sqs.receive_message(QueueUrl=url)
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attrs["QueueArn"] == "arn:aws:sqs:us-east-1:000000000000:q"
    assert (attrs["ApproximateNumberOfMessages"], attrs["ApproximateNumberOfMessagesNotVisible"]) == (
        "2",
        "1",
    )
    assert attrs["VisibilityTimeout"] == "30"
    assert error_code(lambda: sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Foo"])) == (
        "InvalidAttributeName"
    )
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "7"})
    got = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["VisibilityTimeout"])["Attributes"]
    assert got == {"VisibilityTimeout": "7"}
    sqs.purge_queue(QueueUrl=url)
    assert sqs.receive_message(QueueUrl=url).get("Messages") is None
    sqs.delete_queue(QueueUrl=url)
    assert error_code(lambda: sqs.send_message(QueueUrl=url, MessageBody="x")) == (
        "AWS.SimpleQueueService.NonExistentQueue"
    )


# ----------------------------------------------------------------------------- FIFO
def test_fifo_order_per_group_and_group_lock(sqs: SqsClient) -> None:
    url = fifo(sqs, ContentBasedDeduplication="true")
    for i in range(3):
        sqs.send_message(QueueUrl=url, MessageBody=f"a{i}", MessageGroupId="A")
        sqs.send_message(QueueUrl=url, MessageBody=f"b{i}", MessageGroupId="B")
    first = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=2)
    assert bodies(first) == ["a0", "a1"]  # as many as possible from one group, in send order
    second = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)
    assert bodies(second) == ["b0", "b1", "b2"]  # group A is locked: a2 must not come out
    assert sqs.receive_message(QueueUrl=url).get("Messages") is None
    sqs.delete_message(QueueUrl=url, ReceiptHandle=first["Messages"][0]["ReceiptHandle"])
    assert sqs.receive_message(QueueUrl=url).get("Messages") is None  # a1 still in flight
    sqs.delete_message(QueueUrl=url, ReceiptHandle=first["Messages"][1]["ReceiptHandle"])
    assert bodies(sqs.receive_message(QueueUrl=url)) == ["a2"]


def test_fifo_requires_group_and_dedup(sqs: SqsClient) -> None:
    url = fifo(sqs)
    assert error_code(lambda: sqs.send_message(QueueUrl=url, MessageBody="x")) == "MissingParameter"
    assert error_code(lambda: sqs.send_message(QueueUrl=url, MessageBody="x", MessageGroupId="g")) == (
        "InvalidParameterValue"
    )
    std = sqs.create_queue(QueueName="s")["QueueUrl"]
    assert error_code(
        lambda: sqs.send_message(QueueUrl=std, MessageBody="x", MessageDeduplicationId="d")
    ) == ("InvalidParameterValue")


def test_dedup_window_five_minutes(sim: SimAws, sqs: SqsClient) -> None:
    url = fifo(sqs)
    first = sqs.send_message(QueueUrl=url, MessageBody="x", MessageGroupId="g", MessageDeduplicationId="d")
    sim.clock.advance(299)
    again = sqs.send_message(
        QueueUrl=url, MessageBody="other", MessageGroupId="g", MessageDeduplicationId="d"
    )
    assert again["MessageId"] == first["MessageId"]
    sim.clock.advance(1)  # 300 s after the first send: the window is over
    later = sqs.send_message(QueueUrl=url, MessageBody="y", MessageGroupId="g", MessageDeduplicationId="d")
    assert later["MessageId"] != first["MessageId"]
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)
    assert bodies(got) == ["x", "y"]


def test_dedup_survives_delete(sqs: SqsClient) -> None:
    url = fifo(sqs, ContentBasedDeduplication="true")
    sqs.send_message(QueueUrl=url, MessageBody="x", MessageGroupId="g")
    msg = sqs.receive_message(QueueUrl=url)["Messages"][0]
    sqs.delete_message(QueueUrl=url, ReceiptHandle=msg["ReceiptHandle"])
    sqs.send_message(QueueUrl=url, MessageBody="x", MessageGroupId="g")
    assert sqs.receive_message(QueueUrl=url).get("Messages") is None


def test_content_based_dedup_uses_sha256_of_body(sqs: SqsClient) -> None:
    url = fifo(sqs, ContentBasedDeduplication="true")
    a = sqs.send_message(QueueUrl=url, MessageBody="same", MessageGroupId="g1")
    b = sqs.send_message(QueueUrl=url, MessageBody="same", MessageGroupId="g2")
    c = sqs.send_message(QueueUrl=url, MessageBody="different", MessageGroupId="g1")
    assert a["MessageId"] == b["MessageId"] != c["MessageId"]
    msgs = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"])["Messages"]
    assert [m["Body"] for m in msgs] == ["same", "different"]
    assert msgs[0]["Attributes"]["MessageDeduplicationId"] == (
        "0967115f2813a3541eaef77de9d9d5773f1c0c04314b0bbfe4ff3b3b1c55b5d5"
    )
    assert int(msgs[0]["Attributes"]["SequenceNumber"]) < int(msgs[1]["Attributes"]["SequenceNumber"])


def test_fifo_stale_receipt_handle_errors(sim: SimAws, sqs: SqsClient) -> None:
    url = fifo(sqs, ContentBasedDeduplication="true", VisibilityTimeout="10")
    sqs.send_message(QueueUrl=url, MessageBody="x", MessageGroupId="g")
    handle = sqs.receive_message(QueueUrl=url)["Messages"][0]["ReceiptHandle"]
    sim.clock.advance(10)
    assert (
        error_code(lambda: sqs.delete_message(QueueUrl=url, ReceiptHandle=handle)) == "InvalidParameterValue"
    )
    assert (
        error_code(lambda: sqs.delete_message(QueueUrl=url, ReceiptHandle="garbage"))
        == "ReceiptHandleIsInvalid"
    )


# ----------------------------------------------------------------------------- visibility
def test_visibility_expiry_redelivers_with_receive_count(sim: SimAws, sqs: SqsClient) -> None:
    url = sqs.create_queue(QueueName="q", Attributes={"VisibilityTimeout": "30"})["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="x")
    first = sqs.receive_message(QueueUrl=url, AttributeNames=["ApproximateReceiveCount"])["Messages"][0]
    assert first["Attributes"] == {"ApproximateReceiveCount": "1"}
    sim.clock.advance(29.9)
    assert sqs.receive_message(QueueUrl=url).get("Messages") is None
    sim.clock.advance(0.1)
    second = sqs.receive_message(QueueUrl=url, AttributeNames=["All"])["Messages"][0]
    assert second["MessageId"] == first["MessageId"]
    assert second["ReceiptHandle"] != first["ReceiptHandle"]
    assert second["Attributes"]["ApproximateReceiveCount"] == "2"
    # a per-receive override
    sim.clock.advance(30)
    sqs.receive_message(QueueUrl=url, VisibilityTimeout=2)
    sim.clock.advance(2)
    assert bodies(sqs.receive_message(QueueUrl=url)) == ["x"]


def test_change_message_visibility(sim: SimAws, sqs: SqsClient) -> None:
    url = sqs.create_queue(QueueName="q")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="x")
    handle = sqs.receive_message(QueueUrl=url)["Messages"][0]["ReceiptHandle"]
    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=handle, VisibilityTimeout=100)
    sim.clock.advance(99)
    assert sqs.receive_message(QueueUrl=url).get("Messages") is None
    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=handle, VisibilityTimeout=0)
    got = sqs.receive_message(QueueUrl=url)["Messages"][0]
    sqs.delete_message(QueueUrl=url, ReceiptHandle=got["ReceiptHandle"])
    assert (
        error_code(
            lambda: sqs.change_message_visibility(
                QueueUrl=url, ReceiptHandle=got["ReceiptHandle"], VisibilityTimeout=5
            )
        )
        == "InvalidParameterValue"
    )


def test_fifo_visibility_zero_releases_group(sqs: SqsClient) -> None:
    url = fifo(sqs, ContentBasedDeduplication="true")
    sqs.send_message(QueueUrl=url, MessageBody="a", MessageGroupId="g")
    sqs.send_message(QueueUrl=url, MessageBody="b", MessageGroupId="g")
    msg = sqs.receive_message(QueueUrl=url)["Messages"][0]
    assert sqs.receive_message(QueueUrl=url).get("Messages") is None
    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=msg["ReceiptHandle"], VisibilityTimeout=0)
    assert bodies(sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)) == ["a", "b"]


def test_redrive_to_dlq_after_max_receive_count(sim: SimAws, sqs: SqsClient) -> None:
    dlq = sqs.create_queue(QueueName="dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    policy = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 2})
    url = sqs.create_queue(QueueName="q", Attributes={"RedrivePolicy": policy, "VisibilityTimeout": "1"})[
        "QueueUrl"
    ]
    sent = sqs.send_message(QueueUrl=url, MessageBody="poison")
    for count in (1, 2):
        msg = sqs.receive_message(QueueUrl=url, AttributeNames=["ApproximateReceiveCount"])["Messages"][0]
        assert msg["Attributes"]["ApproximateReceiveCount"] == str(count)
        sim.clock.advance(1)
    assert sqs.receive_message(QueueUrl=url).get("Messages") is None  # third receive: moved, not returned
    dead = sqs.receive_message(QueueUrl=dlq, AttributeNames=["All"])["Messages"][0]
    assert dead["MessageId"] == sent["MessageId"]
    assert dead["Body"] == "poison"
    assert dead["Attributes"]["DeadLetterQueueSourceArn"] == "arn:aws:sqs:us-east-1:000000000000:q"
    assert (
        dead["Attributes"]["ApproximateReceiveCount"] == "3"
    )  # LocalStack: carried over, +1 on this receive


def test_redrive_fifo_keeps_group(sim: SimAws, sqs: SqsClient) -> None:
    dlq = fifo(sqs, "dlq.fifo")
    policy = json.dumps(
        {"deadLetterTargetArn": "arn:aws:sqs:us-east-1:000000000000:dlq.fifo", "maxReceiveCount": 1}
    )
    url = fifo(sqs, RedrivePolicy=policy, VisibilityTimeout="1")
    sqs.send_message(QueueUrl=url, MessageBody="p", MessageGroupId="g", MessageDeduplicationId="d1")
    sqs.send_message(QueueUrl=url, MessageBody="ok", MessageGroupId="g", MessageDeduplicationId="d2")
    assert bodies(sqs.receive_message(QueueUrl=url)) == ["p"]
    sim.clock.advance(1)
    assert bodies(sqs.receive_message(QueueUrl=url)) == ["ok"]  # p moved on this receive, next one returned
    dead = sqs.receive_message(QueueUrl=dlq, AttributeNames=["All"])["Messages"][0]
    assert (dead["Body"], dead["Attributes"]["MessageGroupId"]) == ("p", "g")


def test_invalid_redrive_policy(sqs: SqsClient) -> None:
    bad = json.dumps({"deadLetterTargetArn": "arn:aws:sqs:us-east-1:000000000000:d", "maxReceiveCount": 0})
    assert error_code(lambda: sqs.create_queue(QueueName="q", Attributes={"RedrivePolicy": bad})) == (
        "InvalidParameterValue"
    )


# ----------------------------------------------------------------------------- long polling
def test_long_poll_advances_virtual_time_to_next_visibility(sim: SimAws, sqs: SqsClient) -> None:
    url = sqs.create_queue(QueueName="q", Attributes={"VisibilityTimeout": "5"})["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="x")
    sqs.receive_message(QueueUrl=url)
    start = sim.clock.now()
    got = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=20)
    assert bodies(got) == ["x"]
    assert sim.clock.now() == start + 5


def test_long_poll_on_empty_queue_waits_full_time(sim: SimAws, sqs: SqsClient) -> None:
    url = sqs.create_queue(QueueName="q", Attributes={"ReceiveMessageWaitTimeSeconds": "7"})["QueueUrl"]
    start = sim.clock.now()
    assert sqs.receive_message(QueueUrl=url).get("Messages") is None
    assert sim.clock.now() == start + 7
    assert sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0).get("Messages") is None
    assert sim.clock.now() == start + 7


def test_delay_seconds(sim: SimAws, sqs: SqsClient) -> None:
    url = sqs.create_queue(QueueName="q")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=10)
    assert sqs.receive_message(QueueUrl=url).get("Messages") is None
    sim.clock.advance(10)
    assert bodies(sqs.receive_message(QueueUrl=url)) == ["later"]


# ----------------------------------------------------------------------------- standard semantics
def test_standard_stale_delete_succeeds_and_removes(sim: SimAws, sqs: SqsClient) -> None:
    url = sqs.create_queue(QueueName="q", Attributes={"VisibilityTimeout": "1"})["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="x")
    old = sqs.receive_message(QueueUrl=url)["Messages"][0]["ReceiptHandle"]
    sim.clock.advance(1)
    sqs.receive_message(QueueUrl=url)  # another consumer holds it now
    sqs.delete_message(QueueUrl=url, ReceiptHandle=old)  # LocalStack: succeeds and removes
    sim.clock.advance(100)
    assert sqs.receive_message(QueueUrl=url).get("Messages") is None
    sqs.delete_message(QueueUrl=url, ReceiptHandle=old)  # deleting twice is fine


def test_standard_order_without_reorder_is_send_order(sqs: SqsClient) -> None:
    url = sqs.create_queue(QueueName="q")["QueueUrl"]
    for i in range(10):
        sqs.send_message(QueueUrl=url, MessageBody=str(i))
    assert bodies(sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)) == [str(i) for i in range(10)]


def test_reorder_shuffles_but_loses_nothing() -> None:
    sim = SimAws(seed=3, reorder=True)
    sqs = sim.client("sqs")
    url = sqs.create_queue(QueueName="q")["QueueUrl"]
    for i in range(30):
        sqs.send_message(QueueUrl=url, MessageBody=str(i))
    got: list[str] = []
    while msgs := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages"):
        got += [m["Body"] for m in msgs]
    assert sorted(got, key=int) == [str(i) for i in range(30)]
    assert got != [str(i) for i in range(30)]


def test_redelivery_probability_brings_deleted_messages_back() -> None:
    sim = SimAws(seed=5, redelivery_probability=1.0)
    sqs = sim.client("sqs")
    url = sqs.create_queue(QueueName="q", Attributes={"VisibilityTimeout": "3"})["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="x")
    msg = sqs.receive_message(QueueUrl=url)["Messages"][0]
    sqs.delete_message(QueueUrl=url, ReceiptHandle=msg["ReceiptHandle"])
    again = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=10, AttributeNames=["All"])["Messages"][0]
    assert again["MessageId"] == msg["MessageId"]
    assert again["Attributes"]["ApproximateReceiveCount"] == "2"


# ----------------------------------------------------------------------------- batches and limits
def test_batch_limits(sqs: SqsClient) -> None:
    url = sqs.create_queue(QueueName="q")["QueueUrl"]
    eleven = [{"Id": str(i), "MessageBody": "x"} for i in range(11)]
    assert error_code(lambda: sqs.send_message_batch(QueueUrl=url, Entries=eleven)) == (
        "AWS.SimpleQueueService.TooManyEntriesInBatchRequest"
    )
    dup = [{"Id": "a", "MessageBody": "x"}, {"Id": "a", "MessageBody": "y"}]
    assert error_code(lambda: sqs.send_message_batch(QueueUrl=url, Entries=dup)) == (
        "AWS.SimpleQueueService.BatchEntryIdsNotDistinct"
    )
    assert error_code(lambda: sqs.send_message_batch(QueueUrl=url, Entries=[])) == (
        "AWS.SimpleQueueService.EmptyBatchRequest"
    )
    bad_id = [{"Id": "a b", "MessageBody": "x"}]
    assert error_code(lambda: sqs.send_message_batch(QueueUrl=url, Entries=bad_id)) == (
        "AWS.SimpleQueueService.InvalidBatchEntryId"
    )
    assert (
        error_code(lambda: sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=11))
        == "InvalidParameterValue"
    )
    assert (
        error_code(lambda: sqs.receive_message(QueueUrl=url, WaitTimeSeconds=21)) == "InvalidParameterValue"
    )


def test_batch_per_entry_failures(sqs: SqsClient) -> None:
    url = sqs.create_queue(QueueName="q")["QueueUrl"]
    result = sqs.send_message_batch(
        QueueUrl=url,
        Entries=[
            {"Id": "a", "MessageBody": "x"},
            {"Id": "b", "MessageBody": ""},
            {
                "Id": "c",
                "MessageBody": "x",
                "MessageAttributes": {"k": {"DataType": "Foo", "StringValue": "v"}},
            },
        ],
    )
    assert [e["Id"] for e in result["Successful"]] == ["a"]
    assert [(e["Id"], e["Code"], e["SenderFault"]) for e in result["Failed"]] == [
        ("b", "MissingRequiredParameterException", True),
        ("c", "InvalidParameterValueException", True),
    ]
    handle = sqs.receive_message(QueueUrl=url)["Messages"][0]["ReceiptHandle"]
    deleted = sqs.delete_message_batch(
        QueueUrl=url,
        Entries=[{"Id": "ok", "ReceiptHandle": handle}, {"Id": "bad", "ReceiptHandle": "garbage"}],
    )
    assert deleted["Successful"] == [{"Id": "ok"}]
    assert [(f["Id"], f["Code"]) for f in deleted["Failed"]] == [("bad", "ReceiptHandleIsInvalid")]
    changed = sqs.change_message_visibility_batch(
        QueueUrl=url, Entries=[{"Id": "x", "ReceiptHandle": handle, "VisibilityTimeout": 0}]
    )
    assert [f["Code"] for f in changed["Failed"]] == ["InvalidParameterValueException"]


def test_body_and_attribute_limits(sqs: SqsClient) -> None:
    url = sqs.create_queue(QueueName="q", Attributes={"MaximumMessageSize": "262144"})["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="x" * 262_144)
    assert (
        error_code(lambda: sqs.send_message(QueueUrl=url, MessageBody="x" * 262_145))
        == "InvalidParameterValue"
    )
    assert error_code(lambda: sqs.send_message(QueueUrl=url, MessageBody="")) == "MissingParameter"
    assert (
        error_code(lambda: sqs.send_message(QueueUrl=url, MessageBody="a\x00b")) == "InvalidMessageContents"
    )
    eleven = {f"a{i}": {"DataType": "String", "StringValue": "v"} for i in range(11)}
    assert error_code(lambda: sqs.send_message(QueueUrl=url, MessageBody="x", MessageAttributes=eleven)) == (
        "InvalidParameterValue"
    )
    bad_type = {"a": {"DataType": "Text", "StringValue": "v"}}
    assert error_code(
        lambda: sqs.send_message(QueueUrl=url, MessageBody="x", MessageAttributes=bad_type)
    ) == ("InvalidParameterValue")


def test_message_attributes_round_trip_with_md5(sqs: SqsClient) -> None:
    url = sqs.create_queue(QueueName="q")["QueueUrl"]
    attrs = {"a": {"DataType": "String", "StringValue": "v"}, "n": {"DataType": "Number", "StringValue": "1"}}
    sent = sqs.send_message(QueueUrl=url, MessageBody="x", MessageAttributes={"a": attrs["a"]})
    assert sent["MD5OfMessageAttributes"] == "a18cbb58171ebf4ce88d9fb787f9210b"  # LocalStack's value
    sqs.send_message(QueueUrl=url, MessageBody="y", MessageAttributes=attrs)
    msgs = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=2, MessageAttributeNames=["All"])["Messages"]
    assert msgs[1]["MessageAttributes"] == attrs
    assert (
        "MessageAttributes"
        not in sqs.receive_message(QueueUrl=url, VisibilityTimeout=0).get("Messages", [{}])[0]
    )


def test_positional_arguments_are_rejected_like_boto3(sqs: SqsClient) -> None:
    with pytest.raises(TypeError):
        sqs.create_queue("q")  # type: ignore[misc]


def test_fifo_returned_message_reopens_its_group(sqs: SqsClient) -> None:
    """LocalStack's rule (found by the fidelity test): a released message re-opens its group."""
    url = fifo(sqs, ContentBasedDeduplication="true")
    for body in ("a", "b", "c"):
        sqs.send_message(QueueUrl=url, MessageBody=body, MessageGroupId="g")
    first, _ = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=2)["Messages"]
    assert sqs.receive_message(QueueUrl=url).get("Messages") is None
    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=first["ReceiptHandle"], VisibilityTimeout=0)
    assert bodies(sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)) == ["a", "c"]
