"""Smoke: the three AWS APIs the bus needs answer on the configured endpoint.

One round trip each, on real LocalStack (or real AWS with ``--backend aws``): a FIFO queue
(send, receive, delete, queue empty afterwards), an SNS topic with a raw-delivery SQS
subscription (publish arrives with its attributes intact), and a KMS key (GenerateDataKey,
then Decrypt of the wrapped key returns the same plaintext; a wrong encryption context is
refused).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from botocore.exceptions import ClientError

from flowgate.fixtures.aws import AwsClients

pytestmark = pytest.mark.localstack


def _receive_one(aws: AwsClients, queue_url: str) -> dict[str, Any]:
    for _ in range(5):
        got = aws.sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=1,
            WaitTimeSeconds=2,
            MessageAttributeNames=["All"],
            AttributeNames=["All"],
        ).get("Messages", [])
        if got:
            return got[0]
    raise AssertionError(f"no message arrived on {queue_url} within 10 s")


@pytest.fixture
def names() -> str:
    return f"smoke-{uuid.uuid4().hex[:10]}"


def test_fifo_queue_round_trip(aws: AwsClients, names: str) -> None:
    url = aws.sqs.create_queue(
        QueueName=f"{names}.fifo", Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"}
    )["QueueUrl"]
    try:
        sent = aws.sqs.send_message(QueueUrl=url, MessageBody='{"n": 1}', MessageGroupId="order-1")
        again = aws.sqs.send_message(QueueUrl=url, MessageBody='{"n": 1}', MessageGroupId="order-1")
        assert again["MessageId"] == sent["MessageId"], "content-based dedup must drop the resend"
        message = _receive_one(aws, url)
        assert message["Body"] == '{"n": 1}'
        assert message["Attributes"]["MessageGroupId"] == "order-1"
        aws.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        attrs = aws.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        assert attrs["ApproximateNumberOfMessages"] == "0"
        assert attrs["ApproximateNumberOfMessagesNotVisible"] == "0"
    finally:
        aws.sqs.delete_queue(QueueUrl=url)


def test_topic_raw_delivery_round_trip(aws: AwsClients, names: str) -> None:
    topic = aws.sns.create_topic(Name=f"{names}-events")["TopicArn"]
    url = aws.sqs.create_queue(QueueName=f"{names}-sub")["QueueUrl"]
    try:
        arn = aws.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        aws.sns.subscribe(
            TopicArn=topic, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"}
        )
        body = json.dumps({"name": "OrderPlaced", "entity": {"id": "o-1"}})
        aws.sns.publish(
            TopicArn=topic,
            Message=body,
            Subject="OrderPlaced",
            MessageAttributes={"EventType": {"DataType": "String", "StringValue": "OrderPlaced"}},
        )
        message = _receive_one(aws, url)
        assert message["Body"] == body, "raw delivery must pass the body through unwrapped"
        assert message["MessageAttributes"]["EventType"]["StringValue"] == "OrderPlaced"
        aws.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    finally:
        aws.sqs.delete_queue(QueueUrl=url)
        aws.sns.delete_topic(TopicArn=topic)


def test_kms_data_key_round_trip(aws: AwsClients) -> None:
    key_id = aws.kms.create_key(Description="flowgate smoke")["KeyMetadata"]["KeyId"]
    try:
        context = {"messageId": str(uuid.uuid4()), "destination": "orders.fifo"}
        data_key = aws.kms.generate_data_key(KeyId=key_id, KeySpec="AES_256", EncryptionContext=context)
        assert len(data_key["Plaintext"]) == 32
        plain = aws.kms.decrypt(CiphertextBlob=data_key["CiphertextBlob"], EncryptionContext=context)[
            "Plaintext"
        ]
        assert plain == data_key["Plaintext"]
        with pytest.raises(ClientError) as refused:
            aws.kms.decrypt(
                CiphertextBlob=data_key["CiphertextBlob"],
                EncryptionContext={**context, "destination": "other"},
            )
        assert refused.value.response["Error"]["Code"] == "InvalidCiphertextException"
    finally:
        aws.kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
