"""read_state: each read's state against the model of the acknowledged commands (contract v1.3)."""

from __future__ import annotations

from typing import Any

from flowgate.harness.checkers import check_all, read_state
from flowgate.harness.checkers.reads import read_op_value
from flowgate.harness.history import Op

WRITES = ("PlaceOrder", "AuthorizePayment", "ReserveInventory")
STATUS = {"PlaceOrder": "PENDING", "AuthorizePayment": "PAID", "ReserveInventory": "RESERVED"}


class _H:
    def __init__(self) -> None:
        self.ops: list[Op] = []

    def op(self, process: str, type: str, f: str, value: dict[str, Any]) -> int:
        self.ops.append(Op(len(self.ops), process, type, f, value, float(len(self.ops))))
        return len(self.ops) - 1

    def send(self, cid: str, seq: int, kind: str, outcome: str = "ok", entity: str = "o1") -> None:
        value = {"command_id": cid, "entity_id": entity, "seq": seq, "command_type": kind}
        self.op("client", "invoke", "send", value)
        self.op("client", outcome, "send", value)

    def read(self, cid: str, seq: int, applied: list[str], status: str, version: int | None = None) -> int:
        self.send(cid, seq, "GetOrder")
        value = read_op_value(
            "OrderState",
            "o1",
            seq,
            cid,
            {"status": status, "version": len(applied) if version is None else version, "applied": applied},
        )
        assert value is not None
        return self.op("impl", "ok", "read", value)


def _three() -> _H:
    h = _H()
    for seq, kind in enumerate(WRITES, start=1):
        h.send(f"c{seq}", seq, kind)
    return h


def test_reads_of_the_model_are_valid() -> None:
    h = _three()
    h.read("r1", 4, ["c1", "c2", "c3"], "RESERVED")
    v = read_state(h.ops)
    assert v.valid, v.anomalies
    assert v.stats["reads"] == 1


def test_a_command_applied_twice_is_a_double_effect() -> None:
    h = _three()
    at = h.read("r1", 4, ["c1", "c2", "c2", "c3"], "RESERVED")
    v = read_state(h.ops)
    assert [a.kind for a in v.anomalies] == ["double-effect"]
    assert v.anomalies[0].ops == (at,)
    assert "c2 x2" in v.anomalies[0].message


def test_missing_extra_out_of_order_version_and_status_are_read_mismatches() -> None:
    cases: list[tuple[list[str], str, int | None, str]] = [
        (["c1", "c3"], "RESERVED", None, "missing acknowledged c2"),
        (["c1", "c2", "c3", "zz"], "RESERVED", None, "extra effect(s) zz (never sent)"),
        (["c1", "c3", "c2"], "PAID", None, "out of sequence order"),
        (["c1", "c2", "c3"], "RESERVED", 4, "version 4 but 3 applied"),
        (["c1", "c2", "c3"], "PAID", None, "status 'PAID', the model says 'RESERVED'"),
    ]
    for applied, status, version, needle in cases:
        h = _three()
        h.read("r1", 4, applied, status, version)
        v = read_state(h.ops)
        assert [a.kind for a in v.anomalies] == ["read-mismatch"], (applied, v.anomalies)
        assert needle in v.anomalies[0].message, v.anomalies[0].message


def test_a_read_sees_nothing_at_or_above_its_own_seq() -> None:
    h = _H()
    h.send("c1", 1, "PlaceOrder")
    h.read("r1", 2, ["c1", "c2"], "PAID")
    h.send("c2", 3, "AuthorizePayment")
    v = read_state(h.ops)
    assert [a.kind for a in v.anomalies] == ["read-mismatch"]
    assert "extra effect(s) c2 (entity o1 seq 3)" in v.anomalies[0].message


def test_unknown_sends_may_or_may_not_show_failed_sends_must_not() -> None:
    for applied, valid in ((["c1"], True), (["c1", "c2"], True)):
        h = _H()
        h.send("c1", 1, "PlaceOrder")
        h.send("c2", 2, "AuthorizePayment", outcome="info")
        h.read("r1", 3, applied, STATUS["PlaceOrder"] if len(applied) == 1 else "PAID")
        assert read_state(h.ops).valid is valid
    h = _H()
    h.send("c1", 1, "PlaceOrder")
    h.send("c2", 2, "AuthorizePayment", outcome="fail")
    h.read("r1", 3, ["c1", "c2"], "PAID")
    assert [a.kind for a in read_state(h.ops).anomalies] == ["read-mismatch"]


def test_other_events_are_no_reads_and_check_all_runs_the_checker() -> None:
    assert read_op_value("OrderPlaced", "o1", 1, "c1", {}) is None
    h = _three()
    h.read("r1", 4, ["c1", "c1", "c2", "c3"], "RESERVED")
    verdict = {v.checker: v for v in check_all(h.ops, checkers=["read_state"])}["read_state"]
    assert not verdict.valid
