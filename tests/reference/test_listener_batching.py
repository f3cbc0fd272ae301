"""The listener's poll-wide batching (PublishBatch / DeleteMessageBatch) and the dispatcher's
``dispatch_each``, on the deterministic in-process simulator (no LocalStack).

Checked: <= 10 entries per batch call, one message of a FIFO group per publish call and each
group's events in order, per-entry delete failures observed and never fatal, a failed publish
keeps the message and the rest of its group (redelivered as duplicates, re-published in order),
and the fault points of every message still come in the documented order.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from flowgate.harness.sim import SimAws
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
    ReserveInventory,
    order_registry,
)
from flowgate.reference.errors import DispatchError
from flowgate.reference.hooks import FAULT_POINTS
from flowgate.reference.messages import Command, Payload, new_command
from flowgate.reference.stores import InMemoryStorage
from flowgate.reference.worker import Runtime, build_runtime

LIFECYCLE: list[Payload] = [
    PlaceOrder(customer_id="c", sku="s", quantity=1, amount_cents=10),
    AuthorizePayment(payment_id="p", amount_cents=10),
    ReserveInventory(sku="s", quantity=1),
    ConfirmOrder(),
]


class Calls:
    """Wraps a simulated client: records every call and can fail chosen batch entries."""

    def __init__(self, client: Any, log: list[tuple[str, dict[str, Any]]]) -> None:
        self._client = client
        self._log = log
        #: operation -> predicate(entry) -> True: that entry fails (is not executed)
        self.fail_entry: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._client, name)
        if not callable(target):
            return target

        def call(**kwargs: Any) -> Any:
            self._log.append((name, kwargs))
            key = {"delete_message_batch": "Entries", "publish_batch": "PublishBatchRequestEntries"}.get(name)
            pred = self.fail_entry.get(name)
            if key is None or pred is None:
                return target(**kwargs)
            failing = [e for e in kwargs[key] if pred(e)]
            resp = target(**{**kwargs, key: [e for e in kwargs[key] if not pred(e)]}) \
                if len(failing) < len(kwargs[key]) else {"Successful": [], "Failed": []}
            resp["Failed"] = [*resp.get("Failed", []), *({"Id": e["Id"], "Code": "InjectedFailure",
                                                          "SenderFault": False} for e in failing)]
            return resp

        return call


class Recorder:
    def __init__(self, timeline: list[tuple[str, ...]]) -> None:
        self.timeline = timeline
        self.ops: list[tuple[str, str, dict[str, Any]]] = []

    def observe(self, f: str, kind: str, value: Mapping[str, Any]) -> None:
        self.ops.append((f, kind, dict(value)))
        if f in ("publish", "delete"):
            self.timeline.append((f, kind, str(value.get("event_id") or value.get("message_id"))))

    def of(self, f: str, kind: str = "ok") -> list[dict[str, Any]]:
        return [v for ff, k, v in self.ops if ff == f and k == kind]


class PointLog:
    def __init__(self, timeline: list[tuple[str, ...]]) -> None:
        self.timeline = timeline

    def hit(self, point: str, context: Mapping[str, Any]) -> None:
        self.timeline.append(("point", point, str(context.get("message_id"))))


class Rig:
    def __init__(self, seed: int = 1, *, publish_batching: bool = False) -> None:
        self.aws = SimAws(seed=seed)
        self.log: list[tuple[str, dict[str, Any]]] = []
        self.sqs = Calls(self.aws.client("sqs"), self.log)
        self.sns = Calls(self.aws.client("sns"), self.log)
        self.timeline: list[tuple[str, ...]] = []
        self.observer = Recorder(self.timeline)
        registry = order_registry()
        cfg = (BusConfiguration(registry)
               .send(*ORDER_COMMANDS).to_queue("orders.fifo")
               .raise_events(*ORDER_EVENTS).to_topic("order-events.fifo")
               .listen_to("orders.fifo")
               .subscribe("order-views.fifo").to_topics("order-events.fifo")
               .with_options(visibility_timeout=30, wait_time_seconds=0))
        self.runtime: Runtime = build_runtime(
            cfg, sqs=self.sqs, sns=self.sns, sts=self.aws.client("sts"), storage=InMemoryStorage(registry),
            sagas=[OrderSaga()], views=[OrderView(), InventoryView(), PaymentsView()], clock=self.aws.clock,
            faults=PointLog(self.timeline), observer=self.observer, publish_batching=publish_batching)
        self.commands_listener, self.views_listener = self.runtime.listeners
        for listener in self.runtime.listeners:
            listener.poll_once()  # the first poll also probes the dependencies (breaker): not counted

    def send(self, commands: list[Command]) -> None:
        self.runtime.commands.dispatch_many(commands)
        self.log.clear()

    def calls(self, name: str) -> list[dict[str, Any]]:
        return [kw for n, kw in self.log if n == name]


def lifecycle(entity: str, n: int = 4) -> list[Command]:
    return [new_command(p, entity, sequence_no=i + 1, is_new=i == 0) for i, p in enumerate(LIFECYCLE[:n])]


def test_one_poll_is_one_receive_one_publish_batch_one_delete_batch() -> None:
    rig = Rig()
    rig.send([c for i in range(25) for c in lifecycle(f"o{i}", 1)])
    assert rig.commands_listener.poll_once() == 10
    assert [n for n, _ in rig.log] == ["receive_message", "publish_batch", "delete_message_batch"]
    assert len(rig.calls("publish_batch")[0]["PublishBatchRequestEntries"]) == 10
    assert len(rig.calls("delete_message_batch")[0]["Entries"]) == 10
    assert len(rig.observer.of("delete")) == 10
    assert not rig.observer.of("delete", "fail")
    rig.log.clear()
    assert rig.views_listener.poll_once() == 10  # projections: no publish, one delete batch
    assert [n for n, _ in rig.log] == ["receive_message", "delete_message_batch"]


def test_batches_hold_at_most_ten_and_one_message_per_fifo_group() -> None:
    rig = Rig()
    # 4-command lifecycles: a receive of 10 holds several messages of the same group
    rig.send([c for i in range(6) for c in lifecycle(f"o{i}")])
    while rig.commands_listener.poll_once():
        pass
    batches = rig.calls("publish_batch")
    assert batches
    assert all(len(b["PublishBatchRequestEntries"]) <= 10 for b in batches)
    assert all(len(b["Entries"]) <= 10 for b in rig.calls("delete_message_batch"))
    for b in batches:
        groups = [e["MessageGroupId"] for e in b["PublishBatchRequestEntries"]]
        assert len(groups) == len(set(groups)), "two messages of one group in one publish call"
    published = rig.observer.of("publish")
    for i in range(6):
        assert [p["seq"] for p in published if p["entity_id"] == f"o{i}"] == [1, 2, 3, 4]
    assert len(rig.observer.of("effect")) == 24
    assert len(rig.observer.of("delete")) == 24
    assert not rig.calls("publish")
    assert not rig.calls("delete_message")


def test_failed_delete_entry_is_observed_not_fatal_and_redelivery_is_a_duplicate() -> None:
    rig = Rig()
    rig.send([c for i in range(3) for c in lifecycle(f"o{i}", 1)])
    victim: list[str] = []

    def fail_first(entry: Mapping[str, Any]) -> bool:
        if not victim:
            victim.append(entry["ReceiptHandle"])
        return entry["ReceiptHandle"] == victim[0]

    rig.sqs.fail_entry["delete_message_batch"] = fail_first
    assert rig.commands_listener.poll_once() == 3  # no exception
    failed = rig.observer.of("delete", "fail")
    assert len(failed) == 1
    assert "InjectedFailure" in failed[0]["error"]
    assert len(rig.observer.of("delete")) == 2
    del rig.sqs.fail_entry["delete_message_batch"]
    rig.aws.clock.advance(31)  # the undeleted message becomes visible again
    assert rig.commands_listener.poll_once() == 1
    assert len(rig.observer.of("duplicate")) == 1
    assert len(rig.observer.of("effect")) == 3
    assert len(rig.observer.of("delete")) == 3


def test_failed_publish_keeps_the_message_and_the_rest_of_its_group() -> None:
    rig = Rig()
    rig.send([*lifecycle("a", 2), *lifecycle("b", 2)])
    rig.sns.fail_entry["publish_batch"] = lambda e: e["MessageGroupId"] == "a"
    assert rig.commands_listener.poll_once() == 4
    published = [(p["entity_id"], p["seq"]) for p in rig.observer.of("publish")]
    assert published == [("b", 1), ("b", 2)]  # a#1 failed: a#2 (committed) is not published either
    assert len(rig.observer.of("effect")) == 4  # both of a's commands took effect
    assert len(rig.observer.of("delete")) == 2  # only b's messages were deleted
    del rig.sns.fail_entry["publish_batch"]
    rig.aws.clock.advance(31)
    while rig.commands_listener.poll_once():
        pass
    published = [(p["entity_id"], p["seq"]) for p in rig.observer.of("publish")]
    assert [x for x in published if x[0] == "a"] == [("a", 1), ("a", 2)]  # re-published in order
    assert len(rig.observer.of("duplicate")) == 2
    assert len(rig.observer.of("effect")) == 4
    assert len(rig.observer.of("delete")) == 4


def test_fault_points_per_message_keep_the_documented_order() -> None:
    rig = Rig()
    rig.send([*lifecycle("a", 3), *(c for i in range(4) for c in lifecycle(f"x{i}", 1))])
    rig.commands_listener.poll_once()
    by_message: dict[str, list[str]] = {}
    for _, point, mid in (t for t in rig.timeline if t[0] == "point"):
        by_message.setdefault(mid, []).append(point)
    assert len(by_message) == 7
    for points in by_message.values():
        assert points == list(FAULT_POINTS)
    # each message: its commit point before its event's publish, its delete after the publish
    events = {e["event_id"]: e for e in rig.observer.of("publish")}
    index = {t: n for n, t in enumerate(rig.timeline)}
    for mid in by_message:
        commit = index[("point", "after_effect_before_delete", mid)]
        deleted = index[("delete", "ok", mid)]
        after_delete = index[("point", "after_delete", mid)]
        assert commit < index[("point", "after_publish", mid)] < index[("point", "before_delete", mid)] \
            < deleted < after_delete
    first_delete = min(n for n, t in enumerate(rig.timeline) if t[:2] == ("delete", "ok"))
    last_publish = max(index[("publish", "ok", eid)] for eid in events)
    assert last_publish < first_delete  # every publish of the poll precedes every delete


@pytest.mark.parametrize(("n_items", "calls"), [(1, 0), (7, 1), (10, 1), (25, 3)])
def test_dispatch_each_batches_across_items(n_items: int, calls: int) -> None:
    rig = Rig()
    events = [[new_command(LIFECYCLE[0], f"e{i}", sequence_no=1)] for i in range(n_items)]
    out = rig.runtime.commands.dispatch_each(events)
    assert out == [None] * n_items
    sizes = [len(c["Entries"]) for c in rig.calls("send_message_batch")]
    assert len(sizes) == calls
    assert all(s <= 10 for s in sizes)
    assert len(rig.calls("send_message")) == (1 if n_items == 1 else 0)


def test_dispatch_each_reports_per_item_failures() -> None:
    rig = Rig()
    items = [[new_command(LIFECYCLE[0], f"e{i}", sequence_no=1)] for i in range(4)]
    original = rig.sqs.send_message_batch

    def send_message_batch(**kw: Any) -> Any:
        resp = original(**{**kw, "Entries": [e for e in kw["Entries"] if e["Id"] != "2"]})
        resp["Failed"] = [{"Id": "2", "Code": "Boom", "SenderFault": False}]
        return resp

    rig.sqs.send_message_batch = send_message_batch  # type: ignore[method-assign]
    out = rig.runtime.commands.dispatch_each(items)
    assert [o is None for o in out] == [True, True, False, True]
    assert isinstance(out[2], DispatchError)


def test_worker_publisher_coalesces_outboxes_through_its_batcher_in_order() -> None:
    rig = Rig(publish_batching=True)  # the worker's wiring: one batcher for all pollers' outboxes
    try:
        from flowgate.reference.domain.orders import OrderPlaced
        from flowgate.reference.messages import Event

        items = [[Event(payload=OrderPlaced(customer_id="c", sku="s", quantity=1, amount_cents=1),
                        entity_id=f"e{i % 3}", metadata=new_command(LIFECYCLE[0], f"e{i % 3}",
                                                                    sequence_no=i + 1).metadata)]
                 for i in range(25)]
        assert rig.runtime.events.dispatch_each(items) == [None] * 25
        calls = rig.calls("publish_batch") + rig.calls("publish")
        assert all(len(c.get("PublishBatchRequestEntries", [c])) <= 10 for c in calls)
        wire = [int(e["MessageAttributes"]["SequenceNo"]["StringValue"])
                for c in rig.calls("publish_batch") for e in c["PublishBatchRequestEntries"]]
        wire += [int(c["MessageAttributes"]["SequenceNo"]["StringValue"]) for c in rig.calls("publish")]
        assert wire == list(range(1, 26))  # on the wire in submission order (each group's order with it)
        assert len(rig.observer.of("publish")) == 25
    finally:
        rig.runtime.close()
