from flowgate.harness.checkers import total_queue
from flowgate.harness.history import History

from .support import HB


def test_clean_history_is_valid_and_counts() -> None:
    h = HB()
    h.send("c-1", "o-1", 1)
    h.apply("c-1", "o-1", 1)
    h.send("c-2", "o-1", 2, outcome="fail")
    h.drain()
    result = total_queue(h.ops)
    assert result.valid, result.anomalies
    assert result.stats["ok"] == 1
    assert result.stats["fail"] == 1
    assert result.stats["effects"] == 1


def test_accepts_a_history_object() -> None:
    history = History()
    history.append("client-0", "invoke", "send", {"command_id": "c-1", "entity_id": "o", "seq": 1})
    history.append("client-0", "ok", "send", {"command_id": "c-1", "entity_id": "o", "seq": 1})
    history.append("worker-1", "ok", "effect", {"command_id": "c-1", "entity_id": "o", "seq": 1})
    history.append("harness", "ok", "drain")
    assert total_queue(history).valid


def test_lost_names_the_acknowledging_send() -> None:
    h = HB()
    h.send("c-1", "o-1", 1)
    h.apply("c-1", "o-1", 1)
    ok = h.send("c-17", "o-3", 2)
    h.drain()
    result = total_queue(h.ops)
    assert not result.valid
    [lost] = result.anomalies
    assert lost.kind == "lost"
    assert lost.ops == (ok,)
    assert "command c-17 (entity o-3 seq 2)" in lost.message
    assert f"#{ok} client-0 ok send" in lost.message
    assert result.stats["lost"] == 1


def test_lost_mentions_a_dead_letter() -> None:
    h = HB()
    ok = h.send("c-1", "o-1", 1)
    dl = h.dead_letter("m-c-1", reason="decrypt", command_id="c-1")
    h.drain()
    [lost] = total_queue(h.ops).anomalies
    assert lost.kind == "lost"
    assert lost.ops == (ok, dl)


def test_without_drain_nothing_can_be_lost_but_the_verdict_is_invalid() -> None:
    h = HB()
    h.send("c-1", "o-1", 1)
    result = total_queue(h.ops)
    assert not result.valid
    assert [a.kind for a in result.anomalies] == ["no-drain"]


def test_drain_must_be_ok() -> None:
    h = HB()
    h.op("harness", "invoke", "drain")
    assert [a.kind for a in total_queue(h.ops).anomalies] == ["no-drain"]


def test_unexpected_effect_never_sent() -> None:
    h = HB()
    effect = h.effect("c-9", "o-1", 1)
    h.drain()
    [unexpected] = total_queue(h.ops).anomalies
    assert unexpected.kind == "unexpected"
    assert unexpected.ops == (effect,)
    assert "never sent" in unexpected.message


def test_unexpected_effect_of_a_failed_send() -> None:
    h = HB()
    invoke = h.invoke("c-1", "o-1", 1)
    h.complete("c-1", "o-1", 1, "fail")
    effect = h.effect("c-1", "o-1", 1)
    h.drain()
    [unexpected] = total_queue(h.ops).anomalies
    assert unexpected.kind == "unexpected"
    assert unexpected.ops == (effect, invoke)


def test_duplicated_effect() -> None:
    h = HB()
    h.send("c-1", "o-1", 1)
    first = h.effect("c-1", "o-1", 1)
    second = h.effect("c-1", "o-1", 1, worker="worker-2")
    h.drain()
    result = total_queue(h.ops)
    [duplicated] = result.anomalies
    assert duplicated.kind == "duplicated"
    assert duplicated.ops == (first, second)


def test_recovered_info_and_open_invoke_are_not_anomalies() -> None:
    h = HB()
    h.send("c-1", "o-1", 1, outcome="info")
    h.effect("c-1", "o-1", 1)
    h.send("c-2", "o-1", 2, outcome="none")  # invoke never completed: unknown outcome
    h.effect("c-2", "o-1", 2)
    h.send("c-3", "o-1", 3, outcome="info")  # unknown and never applied: fine
    h.drain()
    result = total_queue(h.ops)
    assert result.valid, result.anomalies
    assert result.stats["recovered"] == 2
    assert result.stats["info"] == 3


def test_business_dead_lettered_command_is_not_lost() -> None:
    h = HB()
    h.send("c-1", "o-1", 1, expect_business_failure=True)
    h.business_dead_letter("c-1", "o-1", 1)
    h.drain()
    result = total_queue(h.ops)
    assert result.valid
    assert result.stats["business_dead_lettered"] == 1
