"""flowgate.harness.kill_phases: each scheduled kill attributed to the listener phase the history shows."""

from __future__ import annotations

from flowgate.harness.history import HARNESS, History
from flowgate.harness.kill_phases import (
    COMMITTED,
    COMMITTING,
    IDLE,
    PHASES,
    READY,
    RECEIVED,
    START_UP,
    kill_phases,
)

CMD = {"command_id": "c1", "entity_id": "o1", "seq": 1, "command_type": "PlaceOrder"}


def _history(worker_ops: list[tuple[str, str, dict[str, object]]], *, killed: str = "w1") -> History:
    """client sends c1 as message m1; ``worker_ops`` by incarnation ``killed``; then the kill."""
    h = History()
    h.append("client", "ok", "send", {**CMD, "message_id": "m1"})
    for type_, f, value in worker_ops:
        h.append(killed, type_, f, value)
    h.nemesis("kill", {"worker": killed, "signal": "SIGKILL", "reason": "seeded"})
    return h


RECEIVE = ("ok", "receive", {"message_id": "m1", "queue": "q", "receive_count": 1})


def _phase(ops: list[tuple[str, str, dict[str, object]]]) -> str:
    (landing,) = kill_phases(_history(ops).ops).landings
    return landing.phase


def test_each_stage_of_a_command_message() -> None:
    assert _phase([]) == START_UP
    assert _phase([RECEIVE]) == RECEIVED
    assert _phase([RECEIVE, ("invoke", "effect", CMD)]) == COMMITTING
    assert _phase([RECEIVE, ("invoke", "effect", CMD), ("fail", "effect", CMD)]) == RECEIVED
    assert _phase([RECEIVE, ("invoke", "effect", CMD), ("ok", "effect", CMD)]) == COMMITTED
    assert _phase([RECEIVE, ("ok", "duplicate", {**CMD, "key": "command:c1"})]) == COMMITTED
    published = (
        "ok",
        "publish",
        {"event_id": "e1", "entity_id": "o1", "seq": 1, "event_type": "OrderPlaced"},
    )
    assert _phase([RECEIVE, ("invoke", "effect", CMD), ("ok", "effect", CMD), published]) == READY
    other_seq = (
        "ok",
        "publish",
        {"event_id": "e0", "entity_id": "o1", "seq": 0, "event_type": "OrderPlaced"},
    )
    assert _phase([RECEIVE, ("ok", "effect", CMD), other_seq]) == COMMITTED
    deleted = ("ok", "delete", {"message_id": "m1", "queue": "q"})
    assert _phase([RECEIVE, ("ok", "effect", CMD), published, deleted]) == IDLE


def test_event_message_stages_follow_its_wire_event_id() -> None:
    receive = ("ok", "receive", {"message_id": "m9", "queue": "v", "receive_count": 1, "wire_event_id": "e1"})
    projection = {
        "event_id": "e1",
        "entity_id": "o1",
        "seq": 1,
        "event_type": "OrderPlaced",
        "view": "orders",
    }
    assert _phase([receive]) == RECEIVED
    assert _phase([receive, ("invoke", "project", projection)]) == COMMITTING
    assert _phase([receive, ("invoke", "project", projection), ("ok", "project", projection)]) == READY
    assert _phase([receive, ("ok", "project", {**projection, "event_id": "e2"})]) == RECEIVED


def test_the_kill_phase_is_the_furthest_stage_held_and_every_stage_is_counted() -> None:
    h = History()
    h.append("client", "ok", "send", {**CMD, "message_id": "m1"})
    h.append("client", "ok", "send", {**CMD, "command_id": "c2", "seq": 2, "message_id": "m2"})
    h.append("w1#2", "ok", "receive", {"message_id": "m1", "queue": "q", "receive_count": 1})
    h.append("w1#2", "ok", "receive", {"message_id": "m2", "queue": "q", "receive_count": 1})
    h.append("w1#2", "invoke", "effect", CMD)
    h.nemesis("kill", {"worker": "w1#2", "signal": "SIGKILL", "reason": "seeded"})
    h.nemesis("kill", {"worker": "w2", "signal": "SIGKILL", "reason": "teardown"})  # not scheduled
    result = kill_phases(h.ops)
    (landing,) = result.landings
    assert landing.phase == COMMITTING
    assert dict(landing.held) == {"m1": COMMITTING, "m2": RECEIVED}
    assert result.kills_holding() == {COMMITTING: 1, RECEIVED: 1}
    assert result.messages_by_stage() == {COMMITTING: 1, RECEIVED: 1}
    table = result.render()
    assert all(phase in table for phase in PHASES)
    assert "total: 1 kills, 2 held messages, 1 of 6 phases hit" in table


def test_a_message_taken_over_by_another_process_is_not_held() -> None:
    h = History()
    h.append("client", "ok", "send", {**CMD, "message_id": "m1"})
    h.append("w1", "ok", "receive", {"message_id": "m1", "queue": "q", "receive_count": 1})
    h.append("w2", "ok", "receive", {"message_id": "m1", "queue": "q", "receive_count": 2})
    h.append(HARNESS, "info", "note", {})
    h.nemesis("kill", {"worker": "w1", "signal": "SIGKILL", "reason": "seeded"})
    (landing,) = kill_phases(h.ops).landings
    assert landing.phase == IDLE
    assert not landing.held


def test_ops_stamped_after_the_kill_record_still_belong_to_the_killed_incarnation() -> None:
    h = History()
    h.append("client", "ok", "send", {**CMD, "message_id": "m1"})
    h.nemesis("kill", {"worker": "w1", "signal": "SIGKILL", "reason": "seeded"})
    h.append("w1", "ok", "receive", {"message_id": "m1", "queue": "q", "receive_count": 1})
    (landing,) = kill_phases(h.ops).landings
    assert landing.phase == RECEIVED
