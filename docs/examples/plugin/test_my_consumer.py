"""Test your own consumer with flowgate's pytest plugin: copy this file and replace ``consume``.

Runs on the deterministic simulator by default:

    pytest test_my_consumer.py
    pytest test_my_consumer.py --flowgate-seed=7            # another simulator seed
    pytest test_my_consumer.py --flowgate-aws-backend=localstack   # LocalStack (marked localstack)

The producer records each send, the consumer each receive, effect and delete, and
``assert_valid`` runs the checkers (nothing lost, nothing applied twice, per-entity order on
the FIFO queue). ``test_broken_consumer_is_caught`` shows the check failing: a consumer that
deletes a message without applying it. It is an expected failure (strict xfail): if the checkers
stopped seeing the loss, it would pass and the run would fail. Drop it in your copy.
"""

from __future__ import annotations

import json

import pytest

from flowgate.fixtures.plugin import assert_valid
from flowgate.harness.history import History

COMMANDS = [("order-1", 1), ("order-1", 2), ("order-2", 1), ("order-1", 3), ("order-2", 2)]


def publish(queue, history: History) -> None:
    """Send the commands, one FIFO group per entity, each send recorded invoke then ok."""
    for entity_id, seq in COMMANDS:
        value = {
            "command_id": f"{entity_id}/{seq}",
            "entity_id": entity_id,
            "seq": seq,
            "destination": queue.name,
        }
        history.append("producer", "invoke", "send", value)
        sent = queue.client.send_message(
            QueueUrl=queue.url,
            MessageBody=json.dumps(value),
            MessageGroupId=entity_id,
            MessageDeduplicationId=value["command_id"].replace("/", "-"),
        )
        history.append("producer", "ok", "send", value | {"message_id": sent["MessageId"]})


def consume(queue, history: History, *, drop: str | None = None) -> None:
    """The consumer under test: receive, apply (record the effect), then delete.

    ``drop`` names a command it deletes without applying: the bug the broken variant plants."""
    idle = 0
    while idle < 2:
        messages = queue.client.receive_message(
            QueueUrl=queue.url, MaxNumberOfMessages=10, WaitTimeSeconds=1
        ).get("Messages", [])
        idle = 0 if messages else idle + 1
        for message in messages:
            command = json.loads(message["Body"])
            history.append("consumer", "ok", "receive", {"message_id": message["MessageId"], **command})
            if command["command_id"] != drop:
                history.append("consumer", "ok", "effect", command)
            queue.client.delete_message(QueueUrl=queue.url, ReceiptHandle=message["ReceiptHandle"])
            history.append("consumer", "ok", "delete", {"message_id": message["MessageId"]})
    history.append("harness", "ok", "drain", {"queues": [queue.name]})


def test_my_consumer(sqs_queue, history):
    queue = sqs_queue("orders", fifo=True, dlq=True, max_receive_count=3)
    publish(queue, history)
    consume(queue, history)
    assert_valid(history, checkers=["total_queue", "per_entity_order", "exactly_once_effect"])


@pytest.mark.xfail(
    raises=AssertionError, strict=True, reason="the consumer loses order-1/2: the checkers must say so"
)
def test_broken_consumer_is_caught(sqs_queue, history):
    queue = sqs_queue("orders", fifo=True)
    publish(queue, history)
    consume(queue, history, drop="order-1/2")
    assert_valid(history, checkers=["total_queue", "per_entity_order", "exactly_once_effect"])
