from flowgate.harness.checkers import exactly_once_effect

from .support import HB


def test_redelivery_recognised_as_duplicate_is_valid() -> None:
    h = HB()
    h.send("c-1", "o-1", 1)
    h.apply("c-1", "o-1", 1)
    h.receive("m-c-1", count=2, command_id="c-1")
    h.duplicate("PlaceOrder:c-1", "o-1", 1)
    h.publish("e-c-1", "o-1", 1, "c-1")  # republished event: allowed
    h.project("e-c-1", "o-1", 1, view="audit")  # another view: allowed
    result = exactly_once_effect(h.ops)
    assert result.valid, result.anomalies
    assert result.stats["duplicates_recognised"] == 1
    assert result.stats["events_republished"] == 1


def test_duplicate_effect() -> None:
    h = HB()
    h.send("c-1", "o-1", 1)
    first = h.apply("c-1", "o-1", 1)
    h.nemesis("crash", worker="worker-1", point="after_effect_before_delete")
    h.receive("m-c-1", count=2, command_id="c-1")
    second = h.effect("c-1", "o-1", 1, worker="worker-2")
    [anomaly] = exactly_once_effect(h.ops).anomalies
    assert anomaly.kind == "duplicate-effect"
    assert anomaly.ops == (first, second)
    assert "command c-1 took effect 2 times" in anomaly.message
    assert f"#{second} worker-2 ok effect" in anomaly.message


def test_duplicate_projection() -> None:
    h = HB()
    h.send("c-1", "o-1", 1)
    h.effect("c-1", "o-1", 1)
    h.publish("e-1", "o-1", 1, "c-1")
    first = h.project("e-1", "o-1", 1, view="summary")
    h.project("e-1", "o-1", 1, view="audit")
    second = h.project("e-1", "o-1", 1, view="summary")
    [anomaly] = exactly_once_effect(h.ops).anomalies
    assert anomaly.kind == "duplicate-projection"
    assert anomaly.ops == (first, second)
    assert "'summary'" in anomaly.message
