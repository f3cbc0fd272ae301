"""A timeline picture of a history: one row per entity, time across, faults as vertical lines.

:func:`render_svg` writes plain SVG text (no dependencies) for an Allure attachment: sends,
receives, effects, publishes, projections, duplicates and dead letters are distinct markers;
nemesis faults are labelled vertical lines across all rows; ops named by anomalies are ringed
in red and their entities always get a row. Each marker has a ``<title>`` (the op's
``describe()``) that browsers show on hover.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final
from xml.sax.saxutils import escape

from flowgate.harness.checkers.model import Anomaly, HistoryLike, as_ops, settled_in_doubt, sid
from flowgate.harness.history import NEMESIS, Op


@dataclass(frozen=True, slots=True)
class Marker:
    label: str
    shape: str  # circle | square | diamond | triangle | cross | ring
    colour: str


#: How each op ``f`` is drawn (ops of other names are not drawn on entity rows).
MARKERS: Final[Mapping[str, Marker]] = {
    "send": Marker("send", "circle", "#1f77b4"),
    "receive": Marker("receive", "square", "#7f7f7f"),
    "effect": Marker("effect", "diamond", "#2ca02c"),
    "publish": Marker("publish", "triangle", "#9467bd"),
    "project": Marker("project", "ring", "#17becf"),
    "duplicate": Marker("duplicate", "square", "#bcbd22"),
    "delete": Marker("delete", "ring", "#c7c7c7"),
    "dead_letter": Marker("dead letter", "cross", "#d62728"),
    "business_dead_letter": Marker("business dead letter", "cross", "#ff7f0e"),
}
FAULT_COLOUR: Final = "#e377c2"
ANOMALY_COLOUR: Final = "#d62728"

_LEFT, _RIGHT, _TOP, _ROW, _LEGEND = 150, 30, 100, 22, 40
_PLOT_WIDTH = 900
_MIN_LABEL_GAP = 12.0


def _entity_links(ops: list[Op]) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    by_command: dict[str, str] = {}
    by_event: dict[str, str] = {}
    by_message: dict[str, str] = {}
    for op in ops:
        entity = sid(op.value.get("entity_id"))
        if entity is None:
            continue
        for key, table in (("command_id", by_command), ("event_id", by_event), ("causation_id", by_command)):
            found = sid(op.value.get(key))
            if found is not None:
                table.setdefault(found, entity)
        message = sid(op.value.get("message_id"))
        if message is not None:
            by_message.setdefault(message, entity)
    for op in ops:  # receives and deletes name messages; link them through decoded ids
        message = sid(op.value.get("message_id"))
        if message is None or message in by_message:
            continue
        for key, table in (("command_id", by_command), ("event_id", by_event)):
            found = sid(op.value.get(key))
            if found is not None and found in table:
                by_message[message] = table[found]
                break
    return by_command, by_event, by_message


def _entity_of(
    op: Op, by_command: dict[str, str], by_event: dict[str, str], by_message: dict[str, str]
) -> str | None:
    value = op.value
    entity = sid(value.get("entity_id"))
    if entity is not None:
        return entity
    for key, table in (("command_id", by_command), ("event_id", by_event), ("message_id", by_message)):
        found = sid(value.get(key))
        if found is not None and found in table:
            return table[found]
    return None


def _shape(marker: Marker, x: float, y: float, extra: str = "") -> str:
    c = marker.colour
    if marker.shape == "circle":
        return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{c}"{extra}/>'
    if marker.shape == "square":
        return f'<rect x="{x - 3.5:.1f}" y="{y - 3.5:.1f}" width="7" height="7" fill="{c}"{extra}/>'
    if marker.shape == "diamond":
        return (
            f'<polygon points="{x:.1f},{y - 5:.1f} {x + 5:.1f},{y:.1f} {x:.1f},{y + 5:.1f} '
            f'{x - 5:.1f},{y:.1f}" fill="{c}"{extra}/>'
        )
    if marker.shape == "triangle":
        return (
            f'<polygon points="{x:.1f},{y - 5:.1f} {x + 5:.1f},{y + 4:.1f} {x - 5:.1f},{y + 4:.1f}" '
            f'fill="{c}"{extra}/>'
        )
    if marker.shape == "cross":
        return (
            f'<path d="M{x - 4:.1f},{y - 4:.1f} L{x + 4:.1f},{y + 4:.1f} M{x - 4:.1f},{y + 4:.1f} '
            f'L{x + 4:.1f},{y - 4:.1f}" stroke="{c}" stroke-width="2.5"{extra}/>'
        )
    return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="none" stroke="{c}" stroke-width="1.5"{extra}/>'


def render_svg(
    history: HistoryLike,
    *,
    max_entities: int = 30,
    anomalies: Iterable[Anomaly] = (),
    title: str = "flowgate history",
) -> str:
    """An SVG timeline of ``history``: the first ``max_entities`` entities by first appearance,
    plus every entity an anomaly names; time (``op.time``, or op index when the history carries
    no times) on the x axis."""
    ops = as_ops(history)
    links = _entity_links(ops)
    flagged = {index for anomaly in anomalies for index in anomaly.ops}

    # an effect's or projection's invoke is drawn only when it stands for the effect (D20)
    in_doubt = {op.index for f in ("effect", "project") for op in settled_in_doubt(ops, f).values()}
    placed: list[tuple[Op, str]] = []
    order: dict[str, int] = {}
    for op in ops:
        if op.f not in MARKERS:
            continue
        if op.f in ("effect", "project") and op.type != "ok" and op.index not in in_doubt:
            continue
        entity = _entity_of(op, *links)
        if entity is None:
            continue
        order.setdefault(entity, len(order))
        placed.append((op, entity))
    flagged_entities = {entity for op, entity in placed if op.index in flagged}
    shown = [entity for entity in order if order[entity] < max_entities or entity in flagged_entities]
    rows = {entity: number for number, entity in enumerate(shown)}
    faults = [op for op in ops if op.process == NEMESIS]

    use_time = len({op.time for op in ops}) > 1
    position = [op.time if use_time else float(op.index) for op in ops]
    start = min(position, default=0.0)
    span = (max(position, default=0.0) - start) or 1.0

    def x_of(op: Op) -> float:
        at = op.time if use_time else float(op.index)
        return _LEFT + (at - start) / span * _PLOT_WIDTH

    height = _TOP + max(len(rows), 1) * _ROW + _LEGEND + 20
    width = _LEFT + _PLOT_WIDTH + _RIGHT
    bottom = _TOP + max(len(rows), 1) * _ROW
    out: list[str] = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
        f"<title>{escape(title)}</title>",
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="white"/>',
        f'<text x="10" y="18" font-size="14" font-weight="bold">{escape(title)}</text>',
        f'<text x="10" y="34" fill="#555">{len(ops)} ops, {len(order)} entities ({len(rows)} shown), '
        f"{len(faults)} faults, x = {'time' if use_time else 'op index'} "
        f"{start:g} .. {start + span:g}</text>",
    ]
    for entity, number in rows.items():
        y = _TOP + number * _ROW + _ROW / 2
        weight = ' font-weight="bold" fill="#d62728"' if entity in flagged_entities else ""
        out.append(
            f'<text x="{_LEFT - 8}" y="{y + 4:.1f}" text-anchor="end" class="entity"{weight}>'
            f"{escape(entity[:24])}</text>"
        )
        out.append(f'<line x1="{_LEFT}" y1="{y:.1f}" x2="{_LEFT + _PLOT_WIDTH}" y2="{y:.1f}" stroke="#eee"/>')
    last_label = float("-inf")
    for op in faults:
        x = x_of(op)
        label = ""
        if x - last_label >= _MIN_LABEL_GAP:  # label faults only where there is room
            last_label = x
            worker = op.value.get("worker")
            label = (
                f'<text x="{x + 2:.1f}" y="{_TOP - 10}" fill="{FAULT_COLOUR}" '
                f'transform="rotate(-30 {x + 2:.1f} {_TOP - 10})">{escape(op.f)}'
                f"{escape(' ' + str(worker)) if worker else ''}</text>"
            )
        out.append(
            f'<g class="fault" data-index="{op.index}"><title>{escape(op.describe())}</title>'
            f'<line x1="{x:.1f}" y1="{_TOP - 8}" x2="{x:.1f}" y2="{bottom}" stroke="{FAULT_COLOUR}" '
            f'stroke-dasharray="4,3"/>{label}</g>'
        )
    for op, entity in placed:
        if entity not in rows:
            continue
        marker = MARKERS[op.f]
        x, y = x_of(op), _TOP + rows[entity] * _ROW + _ROW / 2
        style = ' opacity="0.45"' if op.type in ("invoke", "info", "fail") else ""
        ring = (
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="8" fill="none" stroke="{ANOMALY_COLOUR}" '
            f'stroke-width="2" class="anomaly"/>'
            if op.index in flagged
            else ""
        )
        out.append(
            f'<g class="op {escape(op.f)}" data-index="{op.index}">'
            f"<title>{escape(op.describe())}</title>{_shape(marker, x, y, style)}{ring}</g>"
        )
    legend_y = bottom + 25
    x = 10.0
    entries: list[tuple[str, Any]] = [(m.label, m) for m in MARKERS.values()]
    out.append(f'<g class="legend" transform="translate(0 {legend_y})">')
    for label, marker in entries:
        out.append(_shape(marker, x + 5, 0))
        out.append(f'<text x="{x + 13:.1f}" y="4">{escape(label)}</text>')
        x += 22 + 6.5 * len(label)
    out.append(
        f'<line x1="{x:.1f}" y1="-7" x2="{x:.1f}" y2="7" stroke="{FAULT_COLOUR}" stroke-dasharray="4,3"/>'
        f'<text x="{x + 5:.1f}" y="4">fault (nemesis)</text>'
    )
    x += 110
    out.append(
        f'<circle cx="{x + 5:.1f}" cy="0" r="7" fill="none" stroke="{ANOMALY_COLOUR}" stroke-width="2"/>'
        f'<text x="{x + 16:.1f}" y="4">in an anomaly</text>'
    )
    out.append("</g></svg>")
    return "\n".join(out)


__all__ = ["MARKERS", "Marker", "render_svg"]
