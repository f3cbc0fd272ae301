import pytest

from flowgate.harness.checkers import per_entity_order

from .support import HB


def test_in_order_is_valid() -> None:
    h = HB()
    for seq in (1, 2, 3):
        h.send(f"c-{seq}", "o-1", seq)
        h.send(f"d-{seq}", "o-2", seq)
    for seq in (1, 2, 3):
        h.effect(f"d-{seq}", "o-2", seq)
        h.effect(f"c-{seq}", "o-1", seq)
    result = per_entity_order(h.ops)
    assert result.valid, result.anomalies
    assert result.stats["entities"] == 2
    assert result.stats["effects"] == 6


def test_nonmonotonic_and_skip_on_a_swap() -> None:
    h = HB()
    for seq in (1, 2, 3):
        h.send(f"c-{seq}", "o-1", seq)
    one = h.effect("c-1", "o-1", 1)
    three = h.effect("c-3", "o-1", 3)
    two = h.effect("c-2", "o-1", 2)
    result = per_entity_order(h.ops)
    assert result.kinds() == {"skip": 1, "nonmonotonic": 1}
    skip = next(a for a in result.anomalies if a.kind == "skip")
    assert skip.ops == (one, three, two)
    assert "seq 2 (c-2) applied later" in skip.message
    nonmonotonic = next(a for a in result.anomalies if a.kind == "nonmonotonic")
    assert nonmonotonic.ops == (three, two)
    assert "seq 2" in nonmonotonic.message
    assert "after seq 3" in nonmonotonic.message


def test_skip_over_an_acknowledged_command_never_applied() -> None:
    h = HB()
    h.send("c-1", "o-1", 1)
    missing = h.send("c-2", "o-1", 2)
    h.send("c-3", "o-1", 3)
    one = h.effect("c-1", "o-1", 1)
    three = h.effect("c-3", "o-1", 3)
    [skip] = per_entity_order(h.ops).anomalies
    assert skip.kind == "skip"
    assert skip.ops == (missing, one, three)
    assert "never applied" in skip.message


def test_skip_at_the_start() -> None:
    h = HB()
    send_one = h.send("c-1", "o-1", 1)
    h.send("c-2", "o-1", 2)
    two = h.effect("c-2", "o-1", 2)
    [skip] = per_entity_order(h.ops).anomalies
    assert skip.kind == "skip"
    assert skip.ops == (send_one, two)
    assert "as the first" in skip.message


def test_gaps_of_failed_unknown_and_dead_lettered_commands_are_allowed() -> None:
    h = HB()
    h.send("c-1", "o-1", 1)
    h.send("c-2", "o-1", 2, outcome="fail")
    h.send("c-3", "o-1", 3, outcome="info")
    h.send("c-4", "o-1", 4, expect_business_failure=True)
    h.send("c-5", "o-1", 5)
    h.effect("c-1", "o-1", 1)
    h.business_dead_letter("c-4", "o-1", 4)
    h.effect("c-5", "o-1", 5)
    result = per_entity_order(h.ops)
    assert result.valid, result.anomalies


def test_same_seq_under_another_command_is_nonmonotonic() -> None:
    h = HB()
    h.send("c-1", "o-1", 1)
    h.send("x-1", "o-1", 1)
    first = h.effect("c-1", "o-1", 1)
    again = h.effect("x-1", "o-1", 1)
    [anomaly] = per_entity_order(h.ops).anomalies
    assert anomaly.kind == "nonmonotonic"
    assert anomaly.ops == (first, again)


def test_duplicate_effect_is_left_to_exactly_once() -> None:
    h = HB()
    h.send("c-1", "o-1", 1)
    h.send("c-2", "o-1", 2)
    h.effect("c-1", "o-1", 1)
    h.effect("c-2", "o-1", 2)
    h.effect("c-1", "o-1", 1)
    assert per_entity_order(h.ops).valid


def _swapped_on(dest: str) -> HB:
    h = HB()
    h.send("c-1", "o-1", 1, dest=dest)
    h.send("c-2", "o-1", 2, dest=dest)
    h.effect("c-2", "o-1", 2)
    h.effect("c-1", "o-1", 1)
    return h


def test_only_fifo_routes_are_judged_by_default() -> None:
    assert per_entity_order(_swapped_on("orders").ops).valid
    assert not per_entity_order(_swapped_on("orders.fifo").ops).valid


@pytest.mark.parametrize(
    ("fifo", "valid"),
    [({"orders"}, False), ({"other"}, True), (lambda d: d.startswith("ord"), False), (lambda d: False, True)],
)
def test_fifo_routes_are_configurable(fifo: object, valid: bool) -> None:
    assert per_entity_order(_swapped_on("orders").ops, fifo=fifo).valid is valid  # type: ignore[arg-type]


def test_effect_without_a_route_is_counted_not_judged() -> None:
    h = HB()
    h.effect("c-2", "o-1", 2)
    h.effect("c-1", "o-1", 1)
    result = per_entity_order(h.ops)
    assert result.valid
    assert result.stats["unrouted"] == 2
