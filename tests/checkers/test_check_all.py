import pytest

from flowgate.harness.checkers import CHECKERS, Anomaly, Verdict, check_all, render_table
from flowgate.harness.history import History

from .support import HB, model_history


def test_check_all_runs_every_checker_in_order() -> None:
    verdicts = check_all(model_history(3))
    assert [v.checker for v in verdicts] == list(CHECKERS)
    assert all(v.valid for v in verdicts), render_table(verdicts)


def test_check_all_routes_options_and_selects_checkers() -> None:
    h = HB()
    h.send("c-1", "o-1", 1, dest="orders")
    h.send("c-2", "o-1", 2, dest="orders")
    h.effect("c-2", "o-1", 2)
    h.effect("c-1", "o-1", 1)
    h.wire("{}", encrypted=False)
    h.drain()
    assert all(check_all(h.ops))
    verdicts = check_all(h.ops, fifo={"orders"}, require_encryption=True)
    assert {v.checker for v in verdicts if not v.valid} == {"per_entity_order", "confidentiality_integrity"}
    [only] = check_all(h.ops, checkers=["per_entity_order"], fifo={"orders"})
    assert only.checker == "per_entity_order"
    assert not only.valid


def test_check_all_rejects_unknown_options_and_checkers() -> None:
    with pytest.raises(TypeError, match="fifoo"):
        check_all([], fifoo=set())
    with pytest.raises(TypeError, match="fifo"):
        check_all([], checkers=["total_queue"], fifo=set())
    with pytest.raises(ValueError, match="nope"):
        check_all([], checkers=["nope"])


def test_check_all_accepts_a_loaded_history(tmp_path: object) -> None:
    history = History(ops=model_history(5))
    path = history.dump(f"{tmp_path}/history.jsonl")
    assert all(check_all(History.load(path)))


def test_render_table() -> None:
    verdicts = [
        Verdict("total_queue", True, [], {}),
        Verdict("dead_letter", False, [Anomaly("poison-not-dead-lettered", "poison " + "x" * 300, (4,))], {}),
    ]
    table = render_table(verdicts, width=60)
    lines = table.splitlines()
    assert lines[0].split() == ["checker", "valid", "anomalies", "first", "anomaly"]
    assert lines[2].split()[:4] == ["total_queue", "yes", "0", "-"]
    assert lines[3].split()[:4] == ["dead_letter", "NO", "1", "poison-not-dead-lettered:"]
    assert lines[3].endswith("...")
    assert len(lines[3]) < 120
    assert lines[-1] == "2 checkers: INVALID"


def test_a_large_history_is_judged_valid() -> None:
    """Every checker judges a 100,000-op history (their speed is a benchmark figure: the
    ``checkers`` seconds of ``flowgate bench``, never a timer here)."""
    ops = model_history(11, entities=5000, commands=3, poison=100)
    assert len(ops) > 100_000
    for name, checker in CHECKERS.items():
        result = checker(ops)
        assert result.valid, (name, result.anomalies[:3])
