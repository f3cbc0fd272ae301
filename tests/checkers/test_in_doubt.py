"""Effects recorded only as an open ``invoke`` (a worker killed between its commit and its ``ok``
record) and settled by a later ``duplicate`` (decision D20): counted where they happened; every
weaker piece of evidence leaves the loss a loss."""

from flowgate.harness.checkers import per_entity_order, total_queue
from flowgate.harness.checkers.model import effects_taken, settled_in_doubt

from .support import HB


def _in_doubt(h: HB, cid: str, entity: str, seq: int, worker: str = "worker-1#1") -> int:
    return h.op(worker, "invoke", "effect", command_id=cid, entity_id=entity, seq=seq, command_type="PlaceOrder")


def _duplicate(h: HB, cid: str, entity: str, seq: int) -> int:
    return h.op("worker-2#1", "ok", "duplicate", key=f"command:{cid}", command_id=cid, entity_id=entity, seq=seq)


def test_an_invoke_settled_by_a_duplicate_is_the_effect_at_the_invoke() -> None:
    h = HB()
    h.send("c-1", "o-1", 1)
    h.send("c-2", "o-1", 2)
    invoke = _in_doubt(h, "c-1", "o-1", 1)
    _duplicate(h, "c-1", "o-1", 1)
    h.effect("c-2", "o-1", 2)
    h.drain()
    assert {k: op.index for k, op in settled_in_doubt(h.ops).items()} == {"c-1": invoke}
    assert effects_taken(h.ops) == {"c-1", "c-2"}
    queue = total_queue(h.ops)
    assert queue.valid, queue.anomalies
    assert queue.stats["in_doubt_settled"] == 1
    order = per_entity_order(h.ops)
    assert order.valid, order.anomalies


def test_an_invoke_without_a_duplicate_stays_lost() -> None:
    h = HB()
    h.send("c-1", "o-1", 1)
    _in_doubt(h, "c-1", "o-1", 1)
    h.drain()
    assert settled_in_doubt(h.ops) == {}
    assert total_queue(h.ops).kinds() == {"lost": 1}


def test_a_duplicate_without_an_invoke_stays_lost() -> None:
    """A key marked done with no commit ever attempted (mark-before-handle) is not an effect."""
    h = HB()
    h.send("c-1", "o-1", 1)
    h.send("c-2", "o-1", 2)
    _duplicate(h, "c-1", "o-1", 1)
    _in_doubt(h, "c-1", "o-1", 1)  # an invoke after the duplicate proves nothing either
    h.effect("c-2", "o-1", 2)
    h.drain()
    assert total_queue(h.ops).kinds() == {"lost": 1}
    assert per_entity_order(h.ops).kinds() == {"skip": 1}


def test_an_invoke_closed_by_fail_or_a_business_dead_letter_is_no_effect() -> None:
    h = HB()
    h.send("c-1", "o-1", 1)
    _in_doubt(h, "c-1", "o-1", 1)
    h.op("worker-1#1", "fail", "effect", command_id="c-1", entity_id="o-1", seq=1, error="write conflict")
    _duplicate(h, "c-1", "o-1", 1)
    h.send("c-2", "o-2", 1)
    _in_doubt(h, "c-2", "o-2", 1)
    h.business_dead_letter("c-2", "o-2", 1)
    _duplicate(h, "c-2", "o-2", 1)
    h.drain()
    assert settled_in_doubt(h.ops) == {}
    assert total_queue(h.ops).kinds() == {"lost": 1}  # c-1; c-2 was business dead-lettered


def test_a_recorded_ok_wins_over_an_open_invoke() -> None:
    h = HB()
    h.send("c-1", "o-1", 1)
    _in_doubt(h, "c-1", "o-1", 1)
    effect = h.effect("c-1", "o-1", 1, worker="worker-2#1")
    _duplicate(h, "c-1", "o-1", 1)
    h.drain()
    assert settled_in_doubt(h.ops) == {}
    assert effects_taken(h.ops) == {"c-1"}
    queue = total_queue(h.ops)
    assert queue.valid
    assert queue.stats["effects"] == 1
    assert per_entity_order(h.ops).valid
    assert h.ops[effect].type == "ok"


def test_projections_settle_per_event_and_view() -> None:
    h = HB()
    h.op("worker-2#1", "invoke", "project", event_id="e-1", entity_id="o-1", seq=1, event_type="OrderPlaced",
         view="summary")  # fmt: skip
    h.op("worker-2#2", "ok", "duplicate", key="event:e-1:inventory", event_id="e-1", view="inventory",
         entity_id="o-1", seq=1)  # fmt: skip
    assert effects_taken(h.ops, "project") == set()  # another view's duplicate settles nothing
    h.op("worker-2#2", "ok", "duplicate", key="event:e-1:summary", event_id="e-1", view="summary",
         entity_id="o-1", seq=1)  # fmt: skip
    assert effects_taken(h.ops, "project") == {"e-1\x00summary"}
