import xml.etree.ElementTree as ET

from flowgate.harness.checkers import per_entity_order
from flowgate.harness.timeline import render_svg

from .support import HB, model_history

SVG = "{http://www.w3.org/2000/svg}"


def _sample() -> HB:
    h = HB()
    for n in range(5):
        h.send(f"c-{n}", f"o-{n}", 1)
    h.nemesis("crash", worker="worker-1", point="after_effect_before_delete")
    for n in range(5):
        h.apply(f"c-{n}", f"o-{n}", 1)
    h.send("c-x", "o-<&>", 2)
    h.poison("p-1")
    h.dead_letter("p-1", reason="bad_json", entity_id="o-0")
    h.business_dead_letter("c-x", "o-<&>", 2)
    h.nemesis("localstack_restart")
    h.drain()
    return h


def _groups(root: ET.Element, cls: str) -> list[ET.Element]:
    return [g for g in root.iter(f"{SVG}g") if cls in (g.get("class") or "").split()]


def test_svg_parses_and_has_every_marker() -> None:
    svg = render_svg(_sample().ops)
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    for f in (
        "send",
        "receive",
        "effect",
        "publish",
        "project",
        "delete",
        "dead_letter",
        "business_dead_letter",
    ):
        assert _groups(root, f), f
    faults = _groups(root, "fault")
    assert len(faults) == 2
    texts = [t.text or "" for t in root.iter(f"{SVG}text")]
    assert any(t.startswith("crash") for t in texts)
    assert any(t.startswith("localstack_restart") for t in texts)
    assert "o-<&>" in texts  # escaped in the file, intact once parsed
    legend = _groups(root, "legend")[0]
    legend_texts = {t.text for t in legend.iter(f"{SVG}text")}
    assert {"send", "receive", "effect", "publish", "dead letter", "fault (nemesis)"} <= legend_texts


def test_rows_are_limited_but_anomalous_entities_are_shown() -> None:
    h = HB()
    for n in range(10):
        h.send(f"c-{n}", f"o-{n}", 1)
        h.send(f"c-{n}b", f"o-{n}", 2)
    for n in range(10):
        if n == 9:
            h.effect(f"c-{n}b", f"o-{n}", 2)
            h.effect(f"c-{n}", f"o-{n}", 1)
        else:
            h.effect(f"c-{n}", f"o-{n}", 1)
            h.effect(f"c-{n}b", f"o-{n}", 2)
    anomalies = per_entity_order(h.ops).anomalies
    assert anomalies
    root = ET.fromstring(render_svg(h.ops, max_entities=3, anomalies=anomalies))
    rows = [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "entity"]
    assert rows == ["o-0", "o-1", "o-2", "o-9"]
    ringed = [c for c in root.iter(f"{SVG}circle") if c.get("class") == "anomaly"]
    assert len(ringed) == len({i for a in anomalies for i in a.ops})


def test_large_history_renders() -> None:
    ops = model_history(2, entities=200, commands=3)
    root = ET.fromstring(render_svg(ops))
    rows = [t for t in root.iter(f"{SVG}text") if t.get("class") == "entity"]
    assert len(rows) == 30


def test_empty_history_renders() -> None:
    ET.fromstring(render_svg([]))
