"""Commands a saga or aggregate issued (``issue`` ops, docs/decisions.md D33) are acknowledged
work for the checkers, like a client's ``send`` ok: lost when never applied, judged for order
among their entity's commands, and a second effect of one is a duplicate."""

from __future__ import annotations

from flowgate.harness.checkers import exactly_once_effect, index_sends, per_entity_order, total_queue

from .support import HB


def issue(h: HB, cid: str, entity: str, seq: int, cause: str = "c-2", kind: str = "ReserveInventory") -> int:
    return h.op(
        "worker-1", "ok", "issue", command_id=cid, entity_id=entity, seq=seq, command_type=kind, cause=cause
    )


def test_an_issued_command_counts_as_acknowledged() -> None:
    h = HB()
    h.send("c-1", "o-1", 1)
    ok = issue(h, "s-1", "o-1", 2, cause="c-1")
    [command] = [c for c in index_sends(h.ops).values() if c.command_id == "s-1"]
    assert command.status == "ok"
    assert command.outcome is not None
    assert command.outcome.index == ok
    assert (command.entity_id, command.seq) == ("o-1", 2)


def test_an_issued_command_never_applied_is_lost() -> None:
    h = HB()
    h.send("c-1", "o-1", 1)
    h.apply("c-1", "o-1", 1)
    ok = issue(h, "s-1", "o-1", 2, cause="c-1")
    h.drain()
    result = total_queue(h.ops)
    assert [a.kind for a in result.anomalies] == ["lost"]
    assert ok in result.anomalies[0].ops


def test_an_issued_command_applied_is_not_lost_and_its_send_adds_the_route() -> None:
    h = HB()
    h.send("c-1", "o-1", 1)
    h.apply("c-1", "o-1", 1)
    issue(h, "s-1", "o-1", 2, cause="c-1")
    h.send("s-1", "o-1", 2)  # the worker's send of it
    h.apply("s-1", "o-1", 2)
    h.drain()
    assert total_queue(h.ops).valid
    assert index_sends(h.ops)["s-1"].destination == "orders.fifo"


def test_a_client_command_applied_before_a_lower_issued_one_is_a_skip() -> None:
    h = HB()
    h.send("c-1", "o-1", 1)
    h.apply("c-1", "o-1", 1)
    issue(h, "s-1", "o-1", 2, cause="c-1")
    h.send("s-1", "o-1", 2)
    h.send("c-3", "o-1", 3)
    h.apply("c-3", "o-1", 3)
    h.apply("s-1", "o-1", 2)
    h.drain()
    kinds = [a.kind for a in per_entity_order(h.ops).anomalies]
    assert "skip" in kinds


def test_an_issued_command_applied_twice_is_a_duplicate_effect() -> None:
    h = HB()
    issue(h, "s-1", "o-1", 2)
    h.effect("s-1", "o-1", 2)
    h.effect("s-1", "o-1", 2, worker="worker-2")
    assert [a.kind for a in exactly_once_effect(h.ops).anomalies] == ["duplicate-effect"]
