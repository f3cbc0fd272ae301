from __future__ import annotations

import json

from simhelpers import error_code

from flowgate.harness.sim import SimAws, SnsClient, SqsClient


def queue_arn(sqs: SqsClient, url: str) -> str:
    return str(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"])


# ----------------------------------------------------------------------------- SNS
def test_fan_out_raw_and_enveloped(sim: SimAws, sqs: SqsClient, sns: SnsClient) -> None:
    topic = sns.create_topic(Name="events")["TopicArn"]
    assert sns.create_topic(Name="events")["TopicArn"] == topic
    raw_q = sqs.create_queue(QueueName="raw")["QueueUrl"]
    env_q = sqs.create_queue(QueueName="env")["QueueUrl"]
    sub = sns.subscribe(
        TopicArn=topic,
        Protocol="sqs",
        Endpoint=queue_arn(sqs, raw_q),
        Attributes={"RawMessageDelivery": "true"},
    )["SubscriptionArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn(sqs, env_q))
    assert (
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn(sqs, raw_q))["SubscriptionArn"]
        == sub
    )
    assert len(sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]) == 2
    attrs = {"EventType": {"DataType": "String", "StringValue": "OrderPlaced"}}
    published = sns.publish(TopicArn=topic, Message="hello", Subject="OrderPlaced", MessageAttributes=attrs)
    raw = sqs.receive_message(QueueUrl=raw_q, MessageAttributeNames=["All"])["Messages"][0]
    assert raw["Body"] == "hello"
    assert raw["MessageAttributes"] == attrs
    env = sqs.receive_message(QueueUrl=env_q, MessageAttributeNames=["All"])["Messages"][0]
    assert "MessageAttributes" not in env
    envelope = json.loads(env["Body"])
    assert envelope["Type"] == "Notification"
    assert envelope["MessageId"] == published["MessageId"]
    assert (envelope["TopicArn"], envelope["Subject"], envelope["Message"]) == (topic, "OrderPlaced", "hello")
    assert envelope["MessageAttributes"] == {"EventType": {"Type": "String", "Value": "OrderPlaced"}}
    assert envelope["Timestamp"] == "2023-11-14T22:13:20.000Z"
    sns.unsubscribe(SubscriptionArn=sub)
    sns.publish(TopicArn=topic, Message="again")
    assert sqs.receive_message(QueueUrl=raw_q).get("Messages") is None


def test_fifo_topic_to_fifo_queue_forwards_ids(sim: SimAws, sqs: SqsClient, sns: SnsClient) -> None:
    topic = sns.create_topic(Name="events.fifo", Attributes={"FifoTopic": "true"})["TopicArn"]
    url = sqs.create_queue(QueueName="in.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    sns.subscribe(
        TopicArn=topic,
        Protocol="sqs",
        Endpoint=queue_arn(sqs, url),
        Attributes={"RawMessageDelivery": "true"},
    )
    first = sns.publish(TopicArn=topic, Message="e1", MessageGroupId="order-1", MessageDeduplicationId="d1")
    assert "SequenceNumber" in first
    dup = sns.publish(
        TopicArn=topic, Message="e1-again", MessageGroupId="order-1", MessageDeduplicationId="d1"
    )
    assert dup["MessageId"] == first["MessageId"]
    sns.publish(TopicArn=topic, Message="e2", MessageGroupId="order-1", MessageDeduplicationId="d2")
    msgs = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"])["Messages"]
    assert [m["Body"] for m in msgs] == ["e1", "e2"]
    assert [m["Attributes"]["MessageGroupId"] for m in msgs] == ["order-1", "order-1"]
    assert [m["Attributes"]["MessageDeduplicationId"] for m in msgs] == ["d1", "d2"]
    for m in msgs:
        sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    sim.clock.advance(300)
    sns.publish(TopicArn=topic, Message="e1-late", MessageGroupId="order-1", MessageDeduplicationId="d1")
    assert [m["Body"] for m in sqs.receive_message(QueueUrl=url)["Messages"]] == ["e1-late"]


def test_sns_errors(sqs: SqsClient, sns: SnsClient) -> None:
    missing = "arn:aws:sns:us-east-1:000000000000:nope"
    assert error_code(lambda: sns.publish(TopicArn=missing, Message="x")) == "NotFound"
    assert (
        error_code(lambda: sns.create_topic(Name="t", Attributes={"FifoTopic": "true"})) == "InvalidParameter"
    )
    topic = sns.create_topic(Name="t")["TopicArn"]
    fifo_topic = sns.create_topic(Name="t.fifo", Attributes={"FifoTopic": "true"})["TopicArn"]
    assert error_code(lambda: sns.publish(TopicArn=topic, Message="")) == "InvalidParameter"
    assert error_code(lambda: sns.publish(TopicArn=topic, Message="x" * 262_145)) == "InvalidParameter"
    assert error_code(lambda: sns.publish(TopicArn=fifo_topic, Message="x")) == "InvalidParameter"
    assert error_code(lambda: sns.publish(TopicArn=fifo_topic, Message="x", MessageGroupId="g")) == (
        "InvalidParameter"
    )
    fq = sqs.create_queue(QueueName="f.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    assert error_code(lambda: sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn(sqs, fq))) == (
        "InvalidParameter"
    )


def test_publish_batch(sqs: SqsClient, sns: SnsClient) -> None:
    topic = sns.create_topic(Name="t")["TopicArn"]
    url = sqs.create_queue(QueueName="q")["QueueUrl"]
    sns.subscribe(
        TopicArn=topic,
        Protocol="sqs",
        Endpoint=queue_arn(sqs, url),
        Attributes={"RawMessageDelivery": "true"},
    )
    # one invalid entry refuses the whole request: nothing of it is published
    invalid = [{"Id": "a", "Message": "x"}, {"Id": "b", "Message": ""}, {"Id": "c", "Message": "y"}]
    assert error_code(lambda: sns.publish_batch(TopicArn=topic, PublishBatchRequestEntries=invalid)) == (
        "InvalidParameter"
    )
    bad_type = [
        {"Id": "a", "Message": "x", "MessageAttributes": {"k": {"DataType": "Text", "StringValue": "v"}}}
    ]
    assert error_code(lambda: sns.publish_batch(TopicArn=topic, PublishBatchRequestEntries=bad_type)) == (
        "ParameterValueInvalid"
    )
    result = sns.publish_batch(
        TopicArn=topic,
        PublishBatchRequestEntries=[{"Id": "a", "Message": "x"}, {"Id": "c", "Message": "y"}],
    )
    assert [e["Id"] for e in result["Successful"]] == ["a", "c"]
    assert result["Failed"] == []
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert [m["Body"] for m in got] == ["x", "y"]
    eleven = [{"Id": str(i), "Message": "x"} for i in range(11)]
    assert error_code(lambda: sns.publish_batch(TopicArn=topic, PublishBatchRequestEntries=eleven)) == (
        "TooManyEntriesInBatchRequest"
    )
    dup = [{"Id": "a", "Message": "x"}, {"Id": "a", "Message": "y"}]
    assert error_code(lambda: sns.publish_batch(TopicArn=topic, PublishBatchRequestEntries=dup)) == (
        "BatchEntryIdsNotDistinct"
    )


# ----------------------------------------------------------------------------- KMS
def test_kms_envelope_round_trip_and_context_enforcement(sim: SimAws) -> None:
    kms = sim.client("kms")
    key = kms.create_key(Description="bus")["KeyMetadata"]
    kms.create_alias(AliasName="alias/bus", TargetKeyId=key["KeyId"])
    assert kms.describe_key(KeyId="alias/bus")["KeyMetadata"]["Arn"] == key["Arn"]
    assert kms.describe_key(KeyId=key["Arn"])["KeyMetadata"]["KeyId"] == key["KeyId"]
    ctx = {"message_id": "m-1", "queue": "orders"}
    data_key = kms.generate_data_key(KeyId="alias/bus", KeySpec="AES_256", EncryptionContext=ctx)
    assert len(data_key["Plaintext"]) == 32
    assert data_key["KeyId"] == key["Arn"]
    plain = kms.decrypt(CiphertextBlob=data_key["CiphertextBlob"], EncryptionContext=ctx)
    assert plain["Plaintext"] == data_key["Plaintext"]
    assert plain["KeyId"] == key["Arn"]
    blob = data_key["CiphertextBlob"]
    assert error_code(lambda: kms.decrypt(CiphertextBlob=blob, EncryptionContext={**ctx, "queue": "x"})) == (
        "InvalidCiphertextException"
    )
    assert error_code(lambda: kms.decrypt(CiphertextBlob=blob)) == "InvalidCiphertextException"
    tampered = bytearray(blob)
    tampered[-1] ^= 1
    assert error_code(lambda: kms.decrypt(CiphertextBlob=bytes(tampered), EncryptionContext=ctx)) == (
        "InvalidCiphertextException"
    )
    assert error_code(lambda: kms.decrypt(CiphertextBlob=b"short", EncryptionContext=ctx)) == (
        "InvalidCiphertextException"
    )
    other = kms.create_key()["KeyMetadata"]
    assert error_code(
        lambda: kms.decrypt(CiphertextBlob=blob, EncryptionContext=ctx, KeyId=other["KeyId"])
    ) == ("IncorrectKeyException")
    # a blob re-labelled with another key's id fails authentication
    relabelled = other["KeyId"].encode() + blob[36:]
    assert error_code(lambda: kms.decrypt(CiphertextBlob=relabelled, EncryptionContext=ctx)) == (
        "InvalidCiphertextException"
    )


def test_kms_errors(sim: SimAws) -> None:
    kms = sim.client("kms")
    key = kms.create_key()["KeyMetadata"]
    assert error_code(lambda: kms.describe_key(KeyId="alias/none")) == "NotFoundException"
    assert (
        error_code(lambda: kms.describe_key(KeyId="12345678-1234-4234-8234-123456789012"))
        == "NotFoundException"
    )
    kms.create_alias(AliasName="alias/a", TargetKeyId=key["KeyId"])
    assert error_code(lambda: kms.create_alias(AliasName="alias/a", TargetKeyId=key["KeyId"])) == (
        "AlreadyExistsException"
    )
    assert (
        error_code(lambda: kms.create_alias(AliasName="a", TargetKeyId=key["KeyId"])) == "ValidationException"
    )
    assert error_code(lambda: kms.generate_data_key(KeyId=key["KeyId"])) == "ValidationException"
    enc = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"hello")
    assert kms.decrypt(CiphertextBlob=enc["CiphertextBlob"])["Plaintext"] == b"hello"
    kms.disable_key(KeyId=key["KeyId"])
    assert error_code(lambda: kms.decrypt(CiphertextBlob=enc["CiphertextBlob"])) == "DisabledException"
    # a key pending deletion can be neither enabled nor disabled (AWS's key-state table, LocalStack)
    kms.schedule_key_deletion(KeyId=key["KeyId"], PendingWindowInDays=7)
    for switch in (kms.enable_key, kms.disable_key):
        assert error_code(lambda switch=switch: switch(KeyId=key["KeyId"])) == "KMSInvalidStateException"
    assert kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["KeyState"] == "PendingDeletion"
    assert error_code(lambda: kms.decrypt(CiphertextBlob=enc["CiphertextBlob"])) == "KMSInvalidStateException"


def test_sts_identity(sim: SimAws) -> None:
    ident = sim.client("sts").get_caller_identity()
    assert (ident["Account"], ident["Arn"]) == ("000000000000", "arn:aws:iam::000000000000:root")
