"""``BusOptions.business_failures_to_dlq`` on the deterministic simulator (no LocalStack).

With the flag on, a command the domain refuses ends, after ``business_max_attempts``, in the
queue's SQS DLQ exactly like poison (same body and group, its attributes plus
``DeadLetterReason`` = ``BusinessError: ...``), is still recorded in the business dead-letter
store, is deleted, and the listener goes on. With the flag off (the default) nothing valid reaches
the SQS DLQ. A failed forward leaves the message for redelivery without recording anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from botocore.exceptions import EndpointConnectionError

from flowgate.harness.sim import SimAws
from flowgate.reference.config import BusConfiguration
from flowgate.reference.domain.orders import (
    ORDER_COMMANDS,
    ORDER_EVENTS,
    AuthorizePayment,
    OrderSaga,
    PlaceOrder,
    order_registry,
)
from flowgate.reference.messages import Command, new_command
from flowgate.reference.stores import InMemoryStorage
from flowgate.reference.worker import Runtime, build_runtime

QUEUE = "orders.fifo"
VT = 30


class Recorder:
    def __init__(self) -> None:
        self.ops: list[tuple[str, str, dict[str, Any]]] = []

    def observe(self, f: str, kind: str, value: Mapping[str, Any]) -> None:
        self.ops.append((f, kind, dict(value)))

    def of(self, f: str, kind: str = "ok") -> list[dict[str, Any]]:
        return [v for ff, k, v in self.ops if ff == f and k == kind]


class FlakySqs:
    """A simulated SQS client whose SendMessage to ``url`` fails (connection refused) ``failures`` times."""

    def __init__(self, client: Any, url: str, failures: int) -> None:
        self._client = client
        self.url = url
        self.failures = failures

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def send_message(self, **kwargs: Any) -> Any:
        if kwargs.get("QueueUrl") == self.url and self.failures > 0:
            self.failures -= 1
            raise EndpointConnectionError(endpoint_url=self.url)
        return self._client.send_message(**kwargs)


def make(flag: bool, *, seed: int = 5) -> tuple[SimAws, Runtime, Recorder]:
    aws = SimAws(seed=seed)
    registry = order_registry()
    cfg = (
        BusConfiguration(registry)
        .send(*ORDER_COMMANDS)
        .to_queue(QUEUE)
        .raise_events(*ORDER_EVENTS)
        .to_topic("order-events.fifo")
        .listen_to(QUEUE)
        .with_options(
            visibility_timeout=VT,
            wait_time_seconds=0,
            max_receive_count=3,
            business_max_attempts=2,
            business_failures_to_dlq=flag,
        )
    )
    obs = Recorder()
    rt = build_runtime(
        cfg,
        sqs=aws.client("sqs"),
        sns=aws.client("sns"),
        sts=aws.client("sts"),
        storage=InMemoryStorage(registry),
        sagas=[OrderSaga()],
        clock=aws.clock,
        observer=obs,
    )
    return aws, rt, obs


def cmd(payload: Any, entity: str, seq: int) -> Command:
    return new_command(payload, entity, sequence_no=seq, is_new=seq == 1)


def drive(aws: SimAws, rt: Runtime, rounds: int = 6) -> None:
    """Poll, letting the visibility timeout lapse between polls (redelivery of what was left)."""
    for _ in range(rounds):
        rt.poll_all_once()
        aws.clock.advance(VT + 1)


def dlq(aws: SimAws, rt: Runtime) -> list[dict[str, Any]]:
    resp = aws.client("sqs").receive_message(
        QueueUrl=rt.resources.dlq_urls[QUEUE],
        MaxNumberOfMessages=10,
        AttributeNames=["All"],
        MessageAttributeNames=["All"],
    )
    return list(resp.get("Messages", []))


def test_business_failure_is_forwarded_to_the_dlq_with_the_flag() -> None:
    aws, rt, obs = make(True)
    rt.commands.dispatch(cmd(PlaceOrder("c", "S", 1, 5), "o1", 1))
    rt.poll_all_once()
    duplicate_place = cmd(PlaceOrder("c", "S", 1, 5), "o1", 2)  # PlaceOrder for an existing order
    rt.commands.dispatch(duplicate_place)
    rt.poll_all_once()
    assert dlq(aws, rt) == [], "not forwarded before business_max_attempts"
    drive(aws, rt)
    (moved,) = dlq(aws, rt)
    entry = rt.commands._entry(duplicate_place, QUEUE)
    assert moved["Body"] == entry["MessageBody"]
    assert moved["Attributes"]["MessageGroupId"] == "o1"
    attrs = {k: v["StringValue"] for k, v in moved["MessageAttributes"].items()}
    reason = attrs.pop("DeadLetterReason")
    assert reason.startswith("BusinessError: InvalidTransition")
    assert attrs.pop("DeadLetterSourceMessageId")  # contract section 6: when the attribute limit allows
    assert attrs == {k: v["StringValue"] for k, v in entry["MessageAttributes"].items()}
    assert [d["reason"] for d in obs.of("dead_letter")] == [reason]
    (record,) = rt.processor.storage.dead_letters()
    assert record.message_type == "PlaceOrder"
    assert record.sequence_no == 2
    assert obs.of("business_dead_letter")
    # the original is gone and the listener goes on with the entity's next command
    rt.commands.dispatch(cmd(AuthorizePayment("p", 5), "o1", 3))
    drive(aws, rt, rounds=2)
    assert rt.processor.storage.get_entity("order", "o1")["status"] == "PAID"  # type: ignore[index]
    assert rt.poll_all_once() == 0
    assert len(obs.of("effect")) == 2


def test_business_failure_stays_out_of_the_dlq_by_default() -> None:
    aws, rt, obs = make(False)
    rt.commands.dispatch_many(
        [cmd(PlaceOrder("c", "S", 1, 5), "o1", 1), cmd(PlaceOrder("c", "S", 1, 5), "o1", 2)]
    )
    drive(aws, rt)
    assert dlq(aws, rt) == []
    assert obs.of("dead_letter") == []
    (record,) = rt.processor.storage.dead_letters()
    assert record.reason.startswith("InvalidTransition")
    assert rt.poll_all_once() == 0


def test_failed_forward_leaves_the_message_for_redelivery() -> None:
    aws, rt, obs = make(True)
    listener = rt.listeners[0]
    listener.sqs = FlakySqs(listener.sqs, listener.dlq_url, failures=1)
    rt.commands.dispatch_many(
        [cmd(PlaceOrder("c", "S", 1, 5), "o1", 1), cmd(PlaceOrder("c", "S", 1, 5), "o1", 2)]
    )
    rt.poll_all_once()
    aws.clock.advance(VT + 1)
    rt.poll_all_once()  # second attempt: the forward fails
    assert rt.processor.storage.dead_letters() == []
    assert obs.of("dead_letter") == []
    assert obs.of("business_dead_letter") == []
    drive(aws, rt)  # third attempt: forwarded, recorded, deleted
    (moved,) = dlq(aws, rt)
    assert moved["MessageAttributes"]["DeadLetterReason"]["StringValue"].startswith("BusinessError: ")
    assert len(rt.processor.storage.dead_letters()) == 1
    assert rt.poll_all_once() == 0
