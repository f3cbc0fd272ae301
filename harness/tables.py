"""Plain-text tables for the command-line summaries (mutation runs, load verdicts)."""

from __future__ import annotations

from collections.abc import Sequence


def grid(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """``head`` and ``rows`` as left-aligned columns, two spaces apart, a dashed rule under the head;
    trailing spaces stripped. Every row has one cell per column of ``head``."""
    cells = [tuple(head), *(tuple(r) for r in rows)]
    widths = [max(len(r[i]) for r in cells) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
