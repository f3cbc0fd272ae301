"""The FIFO deduplication checker: one deduplication key, one delivery per 300 s window."""

from __future__ import annotations

from typing import Any

from flowgate.harness.checkers import check_all, fifo_dedup

from .support import HB

VIEWS = "order-views.fifo"


def command(h: HB, message_id: str, dedup_id: str, sent_at: float, **extra: Any) -> int:
    return h.receive(message_id, dedup_id=dedup_id, sent_at=sent_at, **extra)


def event(h: HB, message_id: str, event_id: str, sent_at: float, dedup_id: str | None = None) -> int:
    return h.op(
        "worker-1", "ok", "receive", message_id=message_id, queue=VIEWS, receive_count=1,
        wire_event_id=event_id, dedup_id=dedup_id or event_id, sent_at=sent_at,
    )  # fmt: skip


def test_one_command_deduplication_id_delivered_twice_in_the_window() -> None:
    h = HB()
    first = command(h, "m-1", "c-1", 100.0)
    second = command(h, "m-2", "c-1", 394.9)
    [anomaly] = fifo_dedup(h.ops).anomalies
    assert anomaly.kind == "dedup-not-effective"
    assert anomaly.ops == (first, second)
    assert "orders.fifo delivered two messages with deduplication id c-1 294.900 s apart" in anomaly.message


def test_a_late_resend_with_another_deduplication_id_is_allowed() -> None:
    # the gate's and the producers' late resend: same command eventId, new MessageDeduplicationId
    h = HB()
    command(h, "m-1", "c-1", 100.0)
    command(h, "m-2", "c-1-resend", 110.0)
    assert fifo_dedup(h.ops).valid


def test_a_redelivery_of_one_message_is_not_a_second_copy() -> None:
    h = HB()
    command(h, "m-1", "c-1", 100.0)
    command(h, "m-1", "c-1", 100.0, count=2)  # visibility expired: same SQS message again
    result = fifo_dedup(h.ops)
    assert result.valid
    assert result.stats["messages"] == 1


def test_event_id_delivered_twice_with_unstable_deduplication_ids() -> None:
    h = HB()
    event(h, "m-1", "e-1", 10.0, dedup_id="random-1")
    event(h, "m-2", "e-1", 20.0, dedup_id="random-2")
    [anomaly] = fifo_dedup(h.ops).anomalies
    assert "order-views.fifo delivered two messages with event id e-1 10.000 s apart" in anomaly.message


def test_the_window_edges_and_the_next_window() -> None:
    h = HB()
    event(h, "m-1", "e-1", 0.0)
    event(h, "m-2", "e-1", 297.0)  # inside the tolerance band: not judged
    event(h, "m-3", "e-1", 300.0)  # after the window: accepted, opens the next one
    late = event(h, "m-4", "e-1", 500.0)  # 200 s into the second window
    event(h, "m-5", "e-2", 0.0)
    event(h, "m-6", "e-2", 300.0)
    event(h, "m-7", "e-2", 600.0)
    anomalies = fifo_dedup(h.ops).anomalies
    # e-1: m-4 is 200 s after m-3 (the opener of its window), under both keys (dedup and event id)
    assert {a.ops for a in anomalies} == {(2, late)}
    assert len(anomalies) == 1


def test_out_of_order_receives_are_judged_by_sent_at() -> None:
    # a paused probe (KMS outage) receives late; the window is the SQS SentTimestamp's
    h = HB()
    event(h, "m-2", "e-1", 350.0)
    event(h, "m-1", "e-1", 0.0)
    assert fifo_dedup(h.ops).valid
    event(h, "m-3", "e-1", 100.0)
    assert fifo_dedup(h.ops).kinds() == {"dedup-not-effective": 1}


def test_standard_queues_and_receives_without_timestamps_are_not_judged() -> None:
    h = HB()
    for n in range(2):
        h.op("worker-1", "ok", "receive", message_id=f"s-{n}", queue="orders", dedup_id="x", sent_at=1.0)
        h.op("worker-1", "ok", "receive", message_id=f"t-{n}", queue="orders.fifo", dedup_id="y")
    result = fifo_dedup(h.ops)
    assert result.valid
    assert result.stats["unjudged_receives"] == 2


def test_window_and_tolerance_are_options_of_check_all() -> None:
    h = HB()
    event(h, "m-1", "e-1", 0.0)
    event(h, "m-2", "e-1", 60.0)
    h.drain()
    [found] = check_all(h.ops, checkers=["fifo_dedup"], dedup_window=60.0, dedup_tolerance=0.0)
    assert found.valid
    [found] = check_all(h.ops, checkers=["fifo_dedup"])
    assert found.kinds() == {"dedup-not-effective": 1}


def test_one_id_in_two_message_groups_is_not_judged() -> None:
    # DeduplicationScope=messageGroup: the same id in another group is another key on AWS
    h = HB()
    command(h, "m-1", "x", 1.0, group_id="g1")
    command(h, "m-2", "x", 2.0, group_id="g2")
    assert fifo_dedup(h.ops).valid
    command(h, "m-3", "x", 3.0, group_id="g1")
    assert fifo_dedup(h.ops).kinds() == {"dedup-not-effective": 1}
