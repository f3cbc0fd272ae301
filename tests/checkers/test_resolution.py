"""The ``resolution`` checker (every message has a decided fate) and the checkers' view of DLQ
replays (contract v1.3, decision D24): revived commands must take effect, in order, once;
replayed poison must go back to the DLQ with its reason."""

from flowgate.harness.checkers import dead_letter, per_entity_order, resolution, total_queue

from .support import HB


def _drain(h: HB, *unresolved: dict[str, object]) -> int:
    return h.op("harness", "ok", "drain", unresolved=list(unresolved))


def test_nothing_left_is_resolved() -> None:
    h = HB()
    h.send("c-1", "o-1", 1)
    h.apply("c-1", "o-1", 1)
    _drain(h)
    found = resolution(h.ops)
    assert found.valid, found.anomalies
    assert found.stats["unresolved"] == 0


def test_no_drain_is_not_judged_here() -> None:
    h = HB()
    h.send("c-1", "o-1", 1)
    found = resolution(h.ops)
    assert found.valid
    assert found.stats == {"judged": False, "anomalies": 0}


def test_a_message_left_in_a_queue_is_unresolved_with_its_kind_and_state() -> None:
    h = HB()
    h.send("c-1", "o-1", 1)
    h.apply("c-1", "o-1", 1)
    h.poison("m-bad")
    h.dead_letter("m-bad", reason="DecodeError: not JSON")
    drain = _drain(
        h,
        {"queue": "orders.fifo", "message_id": "m-bad", "state": "in flight", "receive_count": 3},
        {
            "queue": "orders.fifo",
            "message_id": "m-dup",
            "command_id": "c-1",
            "state": "visible",
            "receive_count": 1,
        },
        {
            "queue": "orders.fifo",
            "message_id": "m-2",
            "command_id": "c-2",
            "state": "visible",
            "receive_count": 0,
        },
    )
    found = resolution(h.ops)
    assert found.kinds() == {"unresolved": 3}
    first, second, third = (str(a) for a in found.anomalies)
    assert "hostile message m-bad" in first
    assert "in flight, receive count 3" in first
    assert "duplicate message m-dup (command c-1)" in second  # c-1 took effect: a leftover copy
    assert "valid message m-2 (command c-2)" in third
    assert all(a.ops == (drain,) for a in found.anomalies)
    assert (found.stats["hostile"], found.stats["duplicate"], found.stats["valid"]) == (1, 1, 1)


def test_unnamed_in_flight_messages_list_the_candidates() -> None:
    h = HB()
    _drain(
        h,
        {
            "queue": "q.fifo",
            "state": "in flight (parked)",
            "count": 2,
            "candidates": ["hostile h-1", "valid c-9"],
        },
    )
    (anomaly,) = resolution(h.ops).anomalies
    assert "2 unnamed message(s) still in q.fifo" in str(anomaly)
    assert "hostile h-1; valid c-9" in str(anomaly)


def test_the_last_drain_is_judged() -> None:
    h = HB()
    _drain(h, {"queue": "q", "message_id": "m-1"})
    _drain(h)
    assert resolution(h.ops).valid


def _refused_then_replayed(h: HB) -> dict[str, int]:
    """o-1: seq 2 and 3 refused (business dead letters, forwarded to the DLQ), seq 1 sent later."""
    marks: dict[str, int] = {}
    h.send("c-2", "o-1", 2, expect_business_failure=True)
    h.send("c-3", "o-1", 3, expect_business_failure=True)
    h.business_dead_letter("c-2", "o-1", 2)
    h.business_dead_letter("c-3", "o-1", 3)
    h.send("c-1", "o-1", 1)
    marks["place"] = h.effect("c-1", "o-1", 1)
    for cid in ("c-2", "c-3"):
        marks[cid] = h.op(
            "dlq-replay", "ok", "dlq_replay", command_id=cid, message_id=f"r-{cid}", reason="BusinessError: x"
        )
    return marks


def test_revived_commands_must_take_effect_after_their_replay() -> None:
    h = HB()
    _refused_then_replayed(h)
    h.drain()
    lost = total_queue(h.ops)
    assert lost.kinds() == {"lost": 2}
    assert "replayed from the DLQ" in str(lost.anomalies[0])
    assert lost.stats["revived"] == 2


def test_revived_commands_applied_in_order_once_are_valid() -> None:
    h = HB()
    _refused_then_replayed(h)
    h.effect("c-2", "o-1", 2)
    h.effect("c-3", "o-1", 3)
    h.drain()
    for verdict in (total_queue(h.ops), per_entity_order(h.ops), dead_letter(h.ops)):
        assert verdict.valid, verdict.anomalies


def test_revived_commands_out_of_order_are_a_skip() -> None:
    h = HB()
    _refused_then_replayed(h)
    h.effect("c-3", "o-1", 3)
    h.effect("c-2", "o-1", 2)
    h.drain()
    assert per_entity_order(h.ops).kinds() == {"skip": 1, "nonmonotonic": 1}


def test_a_revived_command_refused_again_is_unexpected() -> None:
    h = HB()
    _refused_then_replayed(h)
    h.business_dead_letter("c-2", "o-1", 2)
    h.effect("c-3", "o-1", 3)
    h.drain()
    assert dead_letter(h.ops).kinds() == {"unexpected-business-dead-letter": 1}
    assert total_queue(h.ops).kinds() == {"lost": 1}


def test_a_replay_the_harness_expects_to_fail_again_revives_nothing() -> None:
    h = HB()
    h.send("c-2", "o-1", 2, expect_business_failure=True)
    h.business_dead_letter("c-2", "o-1", 2)
    h.op("dlq-replay", "ok", "dlq_replay", command_id="c-2", message_id="r-1", reason="BusinessError: x",
         expect_business_failure=True)  # fmt: skip
    h.business_dead_letter("c-2", "o-1", 2)
    h.drain()
    assert total_queue(h.ops).valid
    assert dead_letter(h.ops).valid


def test_replayed_poison_must_be_dead_lettered_again_with_its_code() -> None:
    h = HB()
    h.poison("m-bad", expected_reason="DecodeError")
    h.dead_letter("m-bad", reason="DecodeError: not JSON")
    h.op(
        "dlq-replay",
        "ok",
        "dlq_replay",
        message_id="r-bad",
        source_message_id="m-bad",
        reason="DecodeError: x",
    )
    h.drain()
    assert dead_letter(h.ops).kinds() == {"poison-not-dead-lettered": 1}
    h.ops.pop()
    h.dead_letter("r-bad", reason="MissingAttribute: y")
    h.drain()
    assert dead_letter(h.ops).kinds() == {"dead-letter-wrong-reason": 1}


def test_an_expected_business_error_forwarded_to_the_dlq_is_not_valid_dead_lettered() -> None:
    h = HB()
    h.send("c-2", "o-1", 2, expect_business_failure=True, message_id="m-2")
    h.dead_letter("m-2", reason="BusinessError: InvalidTransition: no order")
    h.business_dead_letter("c-2", "o-1", 2)
    h.drain()
    assert dead_letter(h.ops).valid
    h2 = HB()
    h2.send("c-2", "o-1", 2, message_id="m-2")
    h2.dead_letter("m-2", reason="BusinessError: InvalidTransition: no order")
    h2.drain()
    assert dead_letter(h2.ops).kinds() == {"valid-dead-lettered": 1}
