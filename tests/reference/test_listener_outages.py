"""Outages: store error translation, the circuit breaker, health, redrive headroom, heartbeat."""

from __future__ import annotations

import itertools
import json
import os
import threading
import time
import uuid
from typing import Any

import pytest
from sqlalchemy.exc import DataError, IntegrityError, OperationalError

from flowgate.harness.outages import SwitchableStorage
from flowgate.harness.sim import SimAws
from flowgate.reference.bootstrap import Bootstrapper
from flowgate.reference.breaker import CircuitBreaker
from flowgate.reference.bus import Processor
from flowgate.reference.config import BusConfiguration, BusOptions
from flowgate.reference.domain.orders import (
    ORDER_COMMANDS,
    ORDER_EVENTS,
    InventoryView,
    OrderSaga,
    OrderView,
    PaymentsView,
    PlaceOrder,
    order_registry,
)
from flowgate.reference.envelope import KmsEnvelopeCipher, MessageBinding
from flowgate.reference.errors import (
    ConfigurationError,
    DecryptionError,
    StoreError,
    StoreRefused,
    StoreUnavailable,
    TransportError,
)
from flowgate.reference.listener import SqsListener, _Flight
from flowgate.reference.messages import new_command
from flowgate.reference.sql import SqlStorage, translate_error
from flowgate.reference.stores import InMemoryStorage
from flowgate.reference.worker import build_runtime


class _Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += max(0.0, seconds)


# -- store errors ---------------------------------------------------------------------------------
def test_unavailable_and_refused_store_errors_are_distinct() -> None:
    down = translate_error(OperationalError("SELECT 1", {}, ConnectionRefusedError("refused")))
    assert isinstance(down, StoreUnavailable)
    assert isinstance(down, TransportError)
    refused = translate_error(DataError("INSERT", {}, ValueError("integer out of range")))
    assert isinstance(refused, StoreRefused)
    assert not isinstance(refused, TransportError)
    other = translate_error(IntegrityError("INSERT", {}, ValueError("duplicate key")))
    assert type(other) is StoreError
    wrapped = StoreError("commit failed")
    wrapped.__cause__ = OperationalError("COMMIT", {}, OSError("server closed the connection"))
    assert isinstance(translate_error(wrapped), StoreUnavailable)


def test_sql_store_that_cannot_be_reached_raises_store_unavailable(tmp_path: Any) -> None:
    storage = SqlStorage(order_registry(), f"sqlite:///{tmp_path}/ok.db")
    storage.ping()
    gone = SqlStorage(order_registry(), f"sqlite:///{tmp_path}/missing-dir/x.db", create=False)
    with pytest.raises(StoreUnavailable):
        gone.ping()
    with pytest.raises(StoreUnavailable):
        gone.claim("k", now=0.0, lease_until=1.0, message_type="PlaceOrder")


@pytest.mark.postgres
def test_postgres_refusal_is_store_refused_and_a_closed_port_unavailable() -> None:
    pytest.importorskip("psycopg")
    prefix = f"t{uuid.uuid4().hex[:8]}_"
    try:
        storage = SqlStorage(order_registry(), os.environ.get("FLOWGATE_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"), prefix=prefix)
    except StoreUnavailable:
        pytest.skip("no PostgreSQL on 127.0.0.1:5432")
    try:
        with pytest.raises(StoreRefused):
            storage.claim("k" * 600, now=0.0, lease_until=1.0, message_type="PlaceOrder")  # key is String(500)
    finally:
        storage.drop()
    closed = SqlStorage(order_registry(), "postgresql+psycopg://postgres@127.0.0.1:1/test", create=False)
    with pytest.raises(StoreUnavailable):
        closed.ping()


# -- breaker ---------------------------------------------------------------------------------------
def test_breaker_backs_off_exponentially_bounded_and_closes_on_a_probe() -> None:
    clock = _Clock()
    transitions: list[tuple[str, str]] = []
    breaker = CircuitBreaker(
        "b", clock=clock, initial=1.0, maximum=8.0, on_transition=lambda n, s, d, e: transitions.append((s, d))
    )
    assert breaker.allow(lambda dep: None)  # closed: no probe needed
    breaker.trip("store", "down")
    breaker.trip("kms", "later")  # already open: the first failure is the one named
    assert breaker.status().dependency == "store"
    probes: list[float] = []

    def failing(dep: str) -> None:
        probes.append(clock.now())
        raise StoreUnavailable("still down")

    for _ in range(400):
        assert not breaker.allow(failing)
        clock.t += 0.25
    gaps = [b - a for a, b in itertools.pairwise(probes)]
    assert gaps
    assert max(gaps) <= 8.0 + 0.25
    assert gaps[-1] >= 4.0 - 0.25
    assert gaps[0] < gaps[-1]  # grew
    assert len(probes) < 30  # 100 s of outage, a handful of cheap probes
    clock.t += 8.0
    assert breaker.allow(lambda dep: None)
    assert not breaker.is_open
    assert transitions == [("open", "store"), ("closed", "store")]


class _Rig:
    """One worker on the simulator with a store that can be switched off."""

    def __init__(self) -> None:
        self.aws = SimAws(seed=3)
        self.down = False
        registry = order_registry()
        cfg = (
            BusConfiguration(registry)
            .send(*ORDER_COMMANDS)
            .to_queue("orders.fifo")
            .raise_events(*ORDER_EVENTS)
            .to_topic("order-events.fifo")
            .listen_to("orders.fifo")
            .subscribe("order-views.fifo")
            .to_topics("order-events.fifo")
            .with_options(visibility_timeout=10, wait_time_seconds=0, max_receive_count=3)
        )
        self.storage = SwitchableStorage(registry, lambda: self.down)
        self.runtime = build_runtime(
            cfg,
            sqs=self.aws.client("sqs"),
            sns=self.aws.client("sns"),
            sts=self.aws.client("sts"),
            storage=self.storage,
            sagas=[OrderSaga()],
            views=[OrderView(), InventoryView(), PaymentsView()],
            clock=self.aws.clock,
        )
        self.listener = self.runtime.listeners[0]

    def receives(self) -> int:
        return self.aws.calls[("sqs", "ReceiveMessage")]


def test_store_outage_opens_the_breaker_stops_receiving_reports_degraded_then_recovers() -> None:
    rig = _Rig()
    cmd = new_command(PlaceOrder("C1", "SKU-1", 1, 100), "o-1", is_new=True, sequence_no=1)
    rig.runtime.commands.dispatch_many([cmd])
    rig.down = True
    assert rig.listener.poll_once() == 0  # the start-up probe finds the store down: no receive
    assert rig.receives() == 0
    assert rig.runtime.health().status == "degraded"
    assert rig.runtime.health().degraded == ["store"]
    rig.down = False
    rig.aws.clock.advance(31)
    assert rig.listener.poll_once() == 1  # probe answered: closed, received, processed
    assert rig.runtime.health().status == "ok"
    assert rig.storage.get_entity("order", "o-1") is not None
    # an outage in the middle: the claim fails, the breaker opens, no receive until the store is back
    cmd2 = new_command(PlaceOrder("C2", "SKU-1", 1, 100), "o-2", is_new=True, sequence_no=1)
    rig.runtime.commands.dispatch_many([cmd2])
    rig.down = True
    before = rig.receives()
    assert rig.listener.poll_once() == 1
    assert rig.listener.breaker.is_open
    for _ in range(40):  # 10 VT of polling
        rig.aws.clock.advance(2.5)
        assert rig.listener.poll_once() == 0
    assert rig.receives() == before + 1, "no ReceiveMessage while the breaker is open"
    rig.down = False
    rig.aws.clock.advance(31)
    rig.listener.poll_once()
    assert rig.storage.get_entity("order", "o-2") is not None
    assert rig.runtime.health().status == "ok"


def test_sqs_unreachable_is_contained_in_the_poll() -> None:
    rig = _Rig()
    rig.listener.poll_once()
    rig.aws.set_unreachable("sqs")
    assert rig.listener.poll_once() == 0  # no exception escapes
    assert rig.runtime.health().degraded == ["sqs"]
    rig.aws.set_unreachable("sqs", False)
    rig.aws.clock.advance(31)
    assert rig.listener.poll_once() == 0
    assert rig.runtime.health().status == "ok"


def test_disabled_kms_key_is_an_outage_not_poison() -> None:
    aws = SimAws(seed=5)
    kms = aws.client("kms")
    arn = kms.create_key(Description="k")["KeyMetadata"]["Arn"]
    cipher = KmsEnvelopeCipher(kms, arn)
    binding = MessageBinding("e1", "q.fifo", "o-1", "PlaceOrder")
    sealed = cipher.seal("{}", binding)
    cipher.probe()
    kms.disable_key(KeyId=arn)
    with pytest.raises(TransportError) as info:
        cipher.open(sealed, message_id="e1", entity_id="o-1", message_type="PlaceOrder", destinations={"q.fifo"})
    assert not isinstance(info.value, DecryptionError)
    with pytest.raises(TransportError):
        cipher.probe()
    kms.enable_key(KeyId=arn)
    cipher.probe()


# -- redrive headroom ------------------------------------------------------------------------------
def test_redrive_count_has_headroom_above_the_poison_threshold() -> None:
    assert BusOptions().redrive_receive_count == 10
    assert BusOptions(max_receive_count=5, business_max_attempts=3).redrive_receive_count == 15
    assert BusOptions(redrive_max_receive_count=4).redrive_receive_count == 4
    with pytest.raises(ConfigurationError):
        BusOptions(max_receive_count=3, redrive_max_receive_count=3)
    aws = SimAws(seed=1)
    cfg = BusConfiguration(order_registry()).send(*ORDER_COMMANDS).to_queue("q.fifo").listen_to("q.fifo")
    cfg.with_options(max_receive_count=4, redrive_max_receive_count=9)
    sqs = aws.client("sqs")
    res = Bootstrapper(cfg, sqs=sqs, sns=aws.client("sns"), sts=aws.client("sts")).run()
    attrs = sqs.get_queue_attributes(QueueUrl=res.queue_urls["q.fifo"], AttributeNames=["All"])["Attributes"]
    assert json.loads(attrs["RedrivePolicy"])["maxReceiveCount"] in (9, "9")
    cfg.with_options(redrive_max_receive_count=12)  # reconciled on the next start
    Bootstrapper(cfg, sqs=sqs, sns=aws.client("sns"), sts=aws.client("sts")).run()
    attrs = sqs.get_queue_attributes(QueueUrl=res.queue_urls["q.fifo"], AttributeNames=["All"])["Attributes"]
    assert str(json.loads(attrs["RedrivePolicy"])["maxReceiveCount"]) == "12"


# -- heartbeat -------------------------------------------------------------------------------------
class _Sqs:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.lock = threading.Lock()

    def change_message_visibility(self, *, QueueUrl: str, ReceiptHandle: str, VisibilityTimeout: int) -> Any:
        with self.lock:
            self.calls.append(ReceiptHandle)
        return {}


class _StoreDownFor(InMemoryStorage):
    def __init__(self, bad_key: str) -> None:
        super().__init__(order_registry())
        self.bad_key = bad_key

    def extend(self, key: str, token: int, lease_until: float) -> bool:
        if key == self.bad_key:
            raise StoreUnavailable("connection refused")
        return True


def _production_listener(sqs: Any, store: Any) -> SqsListener:
    """A FIFO listener in production mode (an executor: its heartbeat is a thread), VT 1 s."""
    return SqsListener(
        sqs,
        queue="q.fifo",
        queue_url="url",
        dlq_url="dlq",
        registry=order_registry(),
        processor=Processor(store),
        options=BusOptions(visibility_timeout=1),
        executor=object(),  # type: ignore[arg-type]  # production mode: a heartbeat thread
    )


def test_heartbeat_lease_extension_failure_is_per_flight() -> None:
    """The old heartbeat thread died on the first store error (``extend`` raising) and was never
    restarted: every other message in hand then lost its visibility."""
    sqs = _Sqs()
    listener = _production_listener(sqs, _StoreDownFor("k-bad"))
    assert listener._heartbeat is not None
    now = time.time()
    bad = _Flight({"MessageId": "m-bad", "ReceiptHandle": "bad"}, 1, now + 1, now - 10, key="k-bad", token=1)
    good = _Flight({"MessageId": "m-good", "ReceiptHandle": "good"}, 1, now + 1, now - 10, key="k-good", token=2)
    listener._heartbeat.track([bad, good])
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and sqs.calls.count("good") < 3:
            time.sleep(0.05)
    finally:
        listener._heartbeat.untrack([bad, good])
    assert sqs.calls.count("bad") == 1
    assert sqs.calls.count("good") >= 3
    assert listener.breaker.status().dependency == "store"


def test_heartbeat_lets_go_of_the_messages_a_poll_gave_up() -> None:
    """A group stopped at its head (busy elsewhere, waiting for its predecessor) is left for
    redelivery: the heartbeat stops extending it and its followers, while it goes on extending a
    finished message of another group that waits for the poll's publish and delete. (It used to
    extend them until the poll ended: a FIFO head held behind another group's slow handler while
    its successor, in flight elsewhere, was redelivered and handled without it.)"""
    sqs = _Sqs()
    listener = _production_listener(sqs, _StoreDownFor("-"))
    assert listener._heartbeat is not None
    now = time.time()
    head, follower, other = (
        _Flight({"MessageId": f"m-{n}", "ReceiptHandle": n}, 1, now + 1, now - 10) for n in ("head", "follower", "other")
    )
    listener._process = lambda f: f is other  # type: ignore[method-assign]
    listener._run_group([head, follower])
    listener._run_group([other])
    assert (head.given_up, follower.given_up, other.given_up) == (True, True, False)
    listener._heartbeat.track([head, follower, other])
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and sqs.calls.count("other") < 2:
            time.sleep(0.05)
    finally:
        listener._heartbeat.untrack([head, follower, other])
    assert sqs.calls.count("other") >= 2
    assert sqs.calls.count("head") == sqs.calls.count("follower") == 0
