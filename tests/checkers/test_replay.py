from flowgate.harness.checkers import diff_paths, replay_equivalence

from .support import HB

STATE = {"id": "o-1", "status": "paid", "lines": [{"sku": "a", "qty": 1}], "flag": True}
VIEWS = {"summary": {"total": 10}}


def test_equal_snapshots_are_valid() -> None:
    h = HB()
    h.snapshot("state", "o-1", STATE, VIEWS)
    h.snapshot("replay", "o-1", dict(STATE), {"summary": {"total": 10.0}})
    h.snapshot("state", "o-2", STATE, VIEWS)  # unpaired: counted, not judged
    result = replay_equivalence(h.ops)
    assert result.valid, result.anomalies
    assert result.stats == {"compared": 1, "unpaired": 1, "anomalies": 0}


def test_divergence_names_the_paths() -> None:
    h = HB()
    live = h.snapshot("state", "o-1", STATE, VIEWS)
    replayed_state = {**STATE, "status": "new", "lines": [{"sku": "a", "qty": 2}, {"sku": "b", "qty": 1}]}
    replayed = h.snapshot("replay", "o-1", replayed_state, {"summary": {}})
    [anomaly] = replay_equivalence(h.ops).anomalies
    assert anomaly.kind == "replay-divergence"
    assert anomaly.ops == (live, replayed)
    for fragment in (
        "entity.status: live 'paid' != replay 'new'",
        "entity.lines[0].qty: live 1 != replay 2",
        "entity.lines[1]: live <missing>",
        "views.summary.total: live 10 != replay <missing>",
    ):
        assert fragment in anomaly.message


def test_the_last_snapshot_of_each_kind_counts() -> None:
    h = HB()
    h.snapshot("state", "o-1", {"v": 1}, {})
    h.snapshot("replay", "o-1", {"v": 2}, {})
    h.snapshot("state", "o-1", {"v": 2}, {})
    assert replay_equivalence(h.ops).valid


def test_diff_paths_tells_bool_from_int() -> None:
    assert diff_paths({"a": True}, {"a": 1}) == [("a", True, 1)]
    assert diff_paths([1, 2], [1, 2]) == []
    assert len(diff_paths({str(n): n for n in range(100)}, {}, limit=5)) == 5
