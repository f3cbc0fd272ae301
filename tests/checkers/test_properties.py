"""Random histories from a tiny correct model are valid; one broken op is caught."""

from collections.abc import Callable
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from flowgate.harness.checkers import check_all, render_table
from flowgate.harness.history import Op

from .support import model_history, reindex

seeds = st.integers(min_value=0, max_value=2**32)
shapes = st.tuples(seeds, st.integers(1, 6), st.integers(1, 5), st.integers(0, 3))


def _history(shape: tuple[int, int, int, int]) -> list[Op]:
    seed, entities, commands, poison = shape
    return model_history(seed, entities, commands, poison)


def _kinds(ops: list[Op], checker: str, **options: object) -> dict[str, int]:
    [found] = check_all(ops, checkers=[checker], **options)
    return found.kinds()


@settings(max_examples=150, deadline=None)
@given(shapes)
def test_model_histories_are_valid(shape: tuple[int, int, int, int]) -> None:
    verdicts = check_all(_history(shape), require_encryption=True)
    assert all(v.valid for v in verdicts), render_table(verdicts)


def _pick(data: st.DataObject, ops: list[Op], want: Callable[[Op], bool]) -> Op | None:
    candidates = [op for op in ops if want(op)]
    return data.draw(st.sampled_from(candidates)) if candidates else None


@settings(max_examples=100, deadline=None)
@given(shapes, st.data())
def test_dropping_an_acknowledged_effect_is_lost(
    shape: tuple[int, int, int, int], data: st.DataObject
) -> None:
    ops = _history(shape)
    acked = {op.value["command_id"] for op in ops if op.f == "send" and op.type == "ok"}
    victim = _pick(data, ops, lambda op: op.f == "effect" and op.value["command_id"] in acked)
    if victim is None:
        return
    kept = reindex(op for op in ops if op is not victim)
    [verdict] = check_all(kept, checkers=["total_queue"])
    [lost] = verdict.anomalies
    assert lost.kind == "lost"
    [ok_send] = [
        op
        for op in kept
        if op.f == "send" and op.type == "ok" and op.value["command_id"] == victim.value["command_id"]
    ]
    assert lost.ops == (ok_send.index,)


@settings(max_examples=100, deadline=None)
@given(shapes, st.data())
def test_duplicating_an_effect_is_caught(shape: tuple[int, int, int, int], data: st.DataObject) -> None:
    ops = _history(shape)
    victim = _pick(data, ops, lambda op: op.f == "effect")
    if victim is None:
        return
    at = data.draw(st.integers(victim.index + 1, len(ops)))
    mutated = reindex([*ops[:at], replace(victim, process="worker-9"), *ops[at:]])
    assert _kinds(mutated, "total_queue") == {"duplicated": 1}
    assert _kinds(mutated, "exactly_once_effect") == {"duplicate-effect": 1}
    assert _kinds(mutated, "per_entity_order") == {}
    [anomaly] = check_all(mutated, checkers=["exactly_once_effect"])[0].anomalies
    assert anomaly.ops == (victim.index, at)


@settings(max_examples=100, deadline=None)
@given(shapes, st.data())
def test_swapping_two_effects_of_an_entity_is_out_of_order(
    shape: tuple[int, int, int, int], data: st.DataObject
) -> None:
    ops = _history(shape)
    first = _pick(data, ops, lambda op: op.f == "effect")
    if first is None:
        return
    later = [op for op in ops if op.f == "effect" and op.value["entity_id"] == first.value["entity_id"]]
    later = [op for op in later if op.index > first.index]
    if not later:
        return
    second = data.draw(st.sampled_from(later))
    mutated = list(ops)
    mutated[first.index], mutated[second.index] = (
        replace(second, index=first.index),
        replace(first, index=second.index),
    )
    [verdict] = check_all(mutated, checkers=["per_entity_order"])
    assert set(verdict.kinds()) <= {"nonmonotonic", "skip"}
    # the lower seq, now at the later position, is applied after the higher one
    assert any(a.kind == "nonmonotonic" and a.ops == (first.index, second.index) for a in verdict.anomalies)
    assert all(v.valid for v in check_all(mutated, checkers=["total_queue", "exactly_once_effect"]))


@settings(max_examples=50, deadline=None)
@given(shapes, st.data())
def test_other_single_op_mutations(shape: tuple[int, int, int, int], data: st.DataObject) -> None:
    ops = _history(shape)
    mutation = data.draw(st.sampled_from(["drop-drain", "drop-dead-letter", "double-project", "bend-replay"]))
    if mutation == "drop-drain":
        mutated = reindex(op for op in ops if op.f != "drain")
        assert _kinds(mutated, "total_queue") == {"no-drain": 1}
        return
    if mutation == "drop-dead-letter":
        victim = _pick(data, ops, lambda op: op.f == "dead_letter")
        if victim is None:
            return
        mutated = reindex(op for op in ops if op is not victim)
        [verdict] = check_all(mutated, checkers=["dead_letter"])
        [anomaly] = verdict.anomalies
        assert anomaly.kind == "poison-not-dead-lettered"
        [poison] = [
            op for op in mutated if op.f == "poison" and op.value["message_id"] == victim.value["message_id"]
        ]
        assert anomaly.ops == (poison.index,)
        return
    if mutation == "double-project":
        victim = _pick(data, ops, lambda op: op.f == "project")
        if victim is None:
            return
        mutated = reindex([*ops, victim])
        [verdict] = check_all(mutated, checkers=["exactly_once_effect"])
        [anomaly] = verdict.anomalies
        assert anomaly.kind == "duplicate-projection"
        assert anomaly.ops == (victim.index, len(ops))
        return
    victim = _pick(data, ops, lambda op: op.f == "replay")
    assert victim is not None
    bent = replace(victim, value={**victim.value, "entity": {**victim.value["entity"], "total": -1}})
    mutated = [bent if op is victim else op for op in ops]
    [verdict] = check_all(mutated, checkers=["replay_equivalence"])
    [anomaly] = verdict.anomalies
    assert anomaly.kind == "replay-divergence"
    assert "entity.total" in anomaly.message
    assert anomaly.ops[1] == victim.index
