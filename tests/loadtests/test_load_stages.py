"""The per-stage breakdown of a load run's histories (flowgate.harness.load_stages)."""

from __future__ import annotations

from flowgate.harness.load_stages import breakdown, stamps


def _op(f: str, kind: str, t: float, **value: object) -> dict[str, object]:
    return {"f": f, "type": kind, "time": t, "value": value}


def test_each_hop_of_an_order_is_timed_from_its_own_points() -> None:
    ops = [
        _op("send", "invoke", 100.000, entity_id="o1"),
        _op("receive", "ok", 100.050, queue="p-orders.fifo", group_id="o1", sent_at=100.010),
        _op("receive", "ok", 100.500, queue="p-orders.fifo", group_id="o1", sent_at=100.010),  # redelivery
        _op("effect", "invoke", 100.055, entity_id="o1"),
        _op("effect", "ok", 100.060, entity_id="o1"),
        _op("publish", "ok", 100.110, entity_id="o1"),
        _op("receive", "ok", 100.200, queue="p-order-views.fifo", group_id="o1", sent_at=100.120),
        _op("project", "ok", 100.210, entity_id="o1"),
    ]
    rows = {r["stage"]: r for r in breakdown(stamps(ops))}
    expected = {
        "send -> sqs": 10,
        "sqs -> receive": 40,  # the first receive, not the redelivery
        "receive -> effect": 10,
        "effect -> publish": 50,
        "publish -> view sqs": 10,
        "view sqs -> view receive": 80,
        "view receive -> project": 10,
        "send -> project (whole path)": 210,
    }
    assert {k: round(r["p99"]) for k, r in rows.items()} == expected
    assert all(r["n"] == 1 for r in rows.values())
