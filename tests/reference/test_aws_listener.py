"""The listener's processing step on LocalStack: poison, business failures, crashes at fault
points, FIFO group stops, duplicates, heartbeats and stale receipt handles."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping
from types import SimpleNamespace
from typing import Any

import pytest
from flowgate_reference_kms import ManualClock

from flowgate.reference.config import BusConfiguration
from flowgate.reference.domain.orders import (
    ORDER_COMMANDS,
    ORDER_EVENTS,
    AuthorizePayment,
    ConfirmOrder,
    InventoryView,
    OrderSaga,
    OrderView,
    PaymentsView,
    PlaceOrder,
)
from flowgate.reference.hooks import WorkerCrash
from flowgate.reference.listener import SqsListener, _Flight
from flowgate.reference.messages import Command, TypeRegistry, new_command
from flowgate.reference.stores import InMemoryStorage
from flowgate.reference.worker import Runtime, build_runtime

pytestmark = pytest.mark.localstack


class Recorder:
    def __init__(self) -> None:
        self.ops: list[tuple[str, str, dict[str, Any]]] = []

    def observe(self, f: str, kind: str, value: Mapping[str, Any]) -> None:
        self.ops.append((f, kind, dict(value)))

    def names(self, f: str, kind: str = "ok") -> list[dict[str, Any]]:
        return [v for ff, k, v in self.ops if ff == f and k == kind]


class CrashOnce:
    def __init__(self, point: str) -> None:
        self.point = point
        self.fired = False

    def hit(self, point: str, context: Mapping[str, Any]) -> None:
        if point == self.point and not self.fired:
            self.fired = True
            raise WorkerCrash(point)


@pytest.fixture
def make_runtime(aws: SimpleNamespace, aws_cleanup: list[Any], registry: TypeRegistry, uid: str,
                 kms_key: str) -> Iterator[Callable[..., Runtime]]:
    made: list[Runtime] = []
    storage = InMemoryStorage(registry)

    def make(*, encrypted: bool = False, faults: Any = None, observer: Any = None, clock: Any = None,
             resources: Any = None, **options: Any) -> Runtime:
        opts = {"visibility_timeout": 2, "wait_time_seconds": 0, "max_receive_count": 2,
                "business_max_attempts": 2, **options}
        cfg = (BusConfiguration(registry)
               .send(*ORDER_COMMANDS).to_queue(f"fg-l-{uid}.fifo")
               .raise_events(*ORDER_EVENTS).to_topic(f"fg-l-ev-{uid}.fifo")
               .listen_to(f"fg-l-{uid}.fifo")
               .subscribe(f"fg-l-views-{uid}.fifo").to_topics(f"fg-l-ev-{uid}.fifo")
               .with_options(**opts))
        if encrypted:
            cfg.with_encryption(kms_key)
        rt = build_runtime(cfg, sqs=aws.sqs, sns=aws.sns, sts=aws.sts, kms=aws.kms, storage=storage,
                           sagas=[OrderSaga()], views=[OrderView(), InventoryView(), PaymentsView()],
                           faults=faults, observer=observer, clock=clock, resources=resources)
        if resources is None:
            aws_cleanup.append(rt.resources)
        made.append(rt)
        return rt

    yield make
    for rt in made:
        rt.close()


def poll_until(listener: SqsListener, done: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        if listener.poll_once() == 0:
            time.sleep(0.2)


def send_raw(aws: SimpleNamespace, url: str, body: str, attrs: dict[str, str], group: str, dedup: str) -> None:
    aws.sqs.send_message(QueueUrl=url, MessageBody=body, MessageGroupId=group, MessageDeduplicationId=dedup,
                         MessageAttributes={k: {"DataType": "String", "StringValue": v} for k, v in attrs.items()})


def dlq_messages(aws: SimpleNamespace, url: str) -> list[dict[str, Any]]:
    resp = aws.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                                   AttributeNames=["All"], MessageAttributeNames=["All"])
    return list(resp.get("Messages", []))


def command(payload: Any, entity: str, seq: int) -> Command:
    return new_command(payload, entity, sequence_no=seq, is_new=seq == 1)


@pytest.mark.parametrize(("body", "attrs", "reason"), [
    ("{not json", {"CommandType": "PlaceOrder", "EntityId": "o1", "SequenceNo": "1"}, "DecodeError"),
    ('{"name": "os.system"}', {"CommandType": "os.system", "EntityId": "o1", "SequenceNo": "1"}, "UnknownMessageType"),
    ("{}", {"EntityId": "o1", "SequenceNo": "1"}, "MissingAttribute"),
    ("{}", {"CommandType": "PlaceOrder", "EntityId": "o1"}, "MissingAttribute"),
], ids=["bad-json", "unknown-type", "missing-type-attribute", "missing-sequence-attribute"])
def test_poison_is_forwarded_to_dlq_on_the_last_receive(aws: SimpleNamespace, make_runtime: Any, body: str,
                                                        attrs: dict[str, str], reason: str) -> None:
    obs = Recorder()
    rt = make_runtime(observer=obs)
    listener = rt.listeners[0]
    queue = listener.queue
    send_raw(aws, rt.resources.queue_urls[queue], body, attrs, "o1", "poison-1")
    listener.poll_once()
    assert obs.names("dead_letter") == [], "poison must not be dead-lettered before maxReceiveCount"
    poll_until(listener, lambda: bool(obs.names("dead_letter")))
    (dl,) = obs.names("dead_letter")
    assert dl["reason"].startswith(reason)
    (moved,) = dlq_messages(aws, rt.resources.dlq_urls[queue])
    assert moved["Body"] == body
    assert moved["MessageAttributes"]["DeadLetterReason"]["StringValue"].startswith(reason)
    assert moved["Attributes"]["MessageGroupId"] == "o1"
    for k, v in attrs.items():
        assert moved["MessageAttributes"][k]["StringValue"] == v
    assert listener.poll_once() == 0
    assert obs.names("effect") == []


def test_tampered_and_plaintext_messages_on_encrypted_bus_are_poison(aws: SimpleNamespace, make_runtime: Any
                                                                     ) -> None:
    obs = Recorder()
    rt = make_runtime(encrypted=True, observer=obs, max_receive_count=1, business_max_attempts=1)
    listener = rt.listeners[0]
    cmd = command(PlaceOrder("c", "S", 1, 5), "o1", 1)
    entry = rt.commands._entry(cmd, listener.queue)
    attrs = {k: v["StringValue"] for k, v in entry["MessageAttributes"].items()}
    sealed = entry["MessageBody"]
    env = json.loads(__import__("base64").b64decode(sealed))
    env["Ciphertext"] = env["Ciphertext"][:-4] + ("AAAA" if env["Ciphertext"][-4:] != "AAAA" else "BBBB")
    tampered = __import__("base64").b64encode(json.dumps(env).encode()).decode()
    url = rt.resources.queue_urls[listener.queue]
    send_raw(aws, url, tampered, attrs, "o1", "t-1")
    plain_attrs = {k: v for k, v in attrs.items() if k != "Encryption"}
    from flowgate.reference.messages import encode

    send_raw(aws, url, encode(cmd), plain_attrs, "o2", "t-2")
    moved_to_other_entity = dict(attrs, EntityId="o3")
    send_raw(aws, url, sealed, moved_to_other_entity, "o3", "t-3")
    poll_until(listener, lambda: len(obs.names("dead_letter")) == 3)
    reasons = sorted(d["reason"].split(":")[0] for d in obs.names("dead_letter"))
    assert reasons == ["DecryptionError"] * 3
    assert obs.names("effect") == []
    assert "4111" not in sealed
    assert '"customerId"' not in sealed


def test_business_failure_retried_then_business_dead_lettered(aws: SimpleNamespace, make_runtime: Any) -> None:
    obs = Recorder()
    rt = make_runtime(observer=obs)
    listener = rt.listeners[0]
    rt.commands.dispatch(command(ConfirmOrder(), "o1", 1))
    listener.poll_once()
    assert obs.names("business_dead_letter") == []
    poll_until(listener, lambda: bool(obs.names("business_dead_letter")))
    (dl,) = rt.processor.storage.dead_letters()
    assert dl.message_type == "ConfirmOrder"
    assert dl.reason.startswith("InvalidTransition")
    assert dlq_messages(aws, rt.resources.dlq_urls[listener.queue]) == [], "nothing valid goes to the SQS DLQ"
    assert listener.poll_once() == 0
    assert obs.names("delete")


def test_fifo_group_stops_at_first_unfinished_message(aws: SimpleNamespace, make_runtime: Any) -> None:
    obs = Recorder()
    rt = make_runtime(observer=obs, business_max_attempts=2, max_receive_count=3)
    listener = rt.listeners[0]
    rt.commands.dispatch_many([command(AuthorizePayment("p", 5), "o1", 1),  # invalid head of o1
                               command(PlaceOrder("c", "S", 1, 5), "o1", 2),
                               command(PlaceOrder("c", "S", 1, 5), "o2", 1)])
    poll_until(listener, lambda: bool(obs.names("effect")))
    storage = rt.processor.storage
    assert storage.get_entity("order", "o2") is not None
    assert storage.get_entity("order", "o1") is None, "o1's second message must wait for its head"
    poll_until(listener, lambda: storage.get_entity("order", "o1") is not None, timeout=20)
    assert [d.message_type for d in storage.dead_letters()] == ["AuthorizePayment"]


@pytest.mark.parametrize("point", ["after_effect_before_delete", "after_publish", "before_delete"])
def test_crash_after_effect_is_recognised_as_duplicate(aws: SimpleNamespace, make_runtime: Any, point: str
                                                       ) -> None:
    obs = Recorder()
    crashing = make_runtime(observer=obs, faults=CrashOnce(point))
    survivor = make_runtime(observer=obs, resources=crashing.resources)
    crashing.commands.dispatch(command(PlaceOrder("c", "S", 1, 5), "o1", 1))
    with pytest.raises(WorkerCrash):
        poll_until(crashing.listeners[0], lambda: False)
    assert len(obs.names("effect")) == 1
    poll_until(survivor.listeners[0], lambda: bool(obs.names("duplicate")))
    views = survivor.listeners[1]
    storage = survivor.processor.storage
    poll_until(views, lambda: (storage.get_view("orders", "o1") or {}).get("applied") == 1)
    time.sleep(1.0)
    views.poll_once()
    assert (storage.get_view("orders", "o1") or {})["applied"] == 1
    assert len(obs.names("effect")) == 1
    assert len(storage.load_commands("o1")) == 1


def test_crash_mid_handler_leaves_no_effect_and_is_redone(aws: SimpleNamespace, make_runtime: Any) -> None:
    obs = Recorder()
    crashing = make_runtime(observer=obs, faults=CrashOnce("mid_handler"))
    survivor = make_runtime(observer=obs, resources=crashing.resources)
    crashing.commands.dispatch(command(PlaceOrder("c", "S", 1, 5), "o1", 1))
    with pytest.raises(WorkerCrash):
        poll_until(crashing.listeners[0], lambda: False)
    storage = survivor.processor.storage
    assert storage.get_entity("order", "o1") is None
    poll_until(survivor.listeners[0], lambda: bool(obs.names("effect")))
    assert (storage.get_entity("order", "o1") or {})["status"] == "PENDING"


def test_producer_resend_after_dedup_window_has_one_effect(aws: SimpleNamespace, make_runtime: Any) -> None:
    obs = Recorder()
    rt = make_runtime(observer=obs)
    listener = rt.listeners[0]
    cmd = command(PlaceOrder("c", "S", 1, 5), "o1", 1)
    entry = rt.commands._entry(cmd, listener.queue)
    url = rt.resources.queue_urls[listener.queue]
    aws.sqs.send_message(QueueUrl=url, **entry)
    aws.sqs.send_message(QueueUrl=url, **dict(entry, MessageDeduplicationId="resent-later"))
    poll_until(listener, lambda: bool(obs.names("duplicate")))
    assert len(obs.names("effect")) == 1
    assert len(obs.names("delete")) == 2
    assert obs.names("duplicate")[0]["key"] == f"command:{cmd.event_id}"


def test_heartbeat_extends_visibility_and_lease_under_virtual_clock(aws: SimpleNamespace, make_runtime: Any
                                                                    ) -> None:
    clock = ManualClock()

    class Stall:
        def hit(self, point: str, context: Mapping[str, Any]) -> None:
            if point in ("after_claim", "mid_handler"):
                clock.advance(12)  # > VT/2 each time

    calls: list[str] = []
    aws.sqs.meta.events.register("before-call.sqs.ChangeMessageVisibility", lambda **_: calls.append("cmv"))
    try:
        rt = make_runtime(faults=Stall(), clock=clock, visibility_timeout=20)
        rt.commands.dispatch(command(PlaceOrder("c", "S", 1, 5), "o1", 1))
        poll_until(rt.listeners[0], lambda: rt.processor.storage.get_entity("order", "o1") is not None)
    finally:
        aws.sqs.meta.events.unregister("before-call.sqs.ChangeMessageVisibility")
    assert len(calls) == 2


def test_delete_with_stale_receipt_is_observed_not_fatal(aws: SimpleNamespace, make_runtime: Any) -> None:
    obs = Recorder()
    rt = make_runtime(observer=obs)
    listener = rt.listeners[0]
    flight = _Flight({"MessageId": "m-1", "ReceiptHandle": "bogus-receipt"}, 1, 0.0, 0.0)
    assert listener._delete(flight, {}) is False
    assert obs.names("delete", "fail")[0]["message_id"] == "m-1"
