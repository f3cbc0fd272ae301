"""History checkers: pure functions ``history -> Verdict`` (Jepsen's model).

Each checker reads one :class:`flowgate.harness.history.History` (or any iterable of
:class:`flowgate.harness.history.Op`) and returns a :class:`Verdict` whose anomalies name the op
indexes involved. :func:`check_all` runs them all; :func:`render_table` prints the result.
See ``docs/checkers.md`` for what each checker proves and what it cannot see.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final

from .confidentiality import INTEGRITY_KINDS, confidentiality_integrity
from .dead_letter import dead_letter
from .dedup import fifo_dedup
from .exactly_once import exactly_once_effect
from .model import Anomaly, Command, HistoryLike, Verdict, as_ops, index_sends
from .order import per_entity_order
from .outage import outage
from .reads import read_state
from .replay import diff_paths, replay_equivalence
from .resolution import resolution
from .total_queue import total_queue

Checker = Callable[..., Verdict]

#: Every checker by name, in the order :func:`check_all` runs them.
CHECKERS: Final[Mapping[str, Checker]] = {
    "total_queue": total_queue,
    "per_entity_order": per_entity_order,
    "exactly_once_effect": exactly_once_effect,
    "fifo_dedup": fifo_dedup,
    "replay_equivalence": replay_equivalence,
    "dead_letter": dead_letter,
    "confidentiality_integrity": confidentiality_integrity,
    "outage": outage,
    "read_state": read_state,
    "resolution": resolution,
}


def _options_of(checker: Checker) -> set[str]:
    return {
        name
        for name, parameter in inspect.signature(checker).parameters.items()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY
    }


def check_all(
    history: HistoryLike, *, checkers: Iterable[str] | None = None, **options: Any
) -> list[Verdict]:
    """Run the named ``checkers`` (default: all of :data:`CHECKERS`) over one history.

    Each option goes to every checker that takes a keyword of that name (``fifo=`` to
    :func:`per_entity_order`, ``require_encryption=`` to :func:`confidentiality_integrity`...);
    an option no selected checker takes is an error, so a typo cannot silently weaken a gate.
    """
    names = list(CHECKERS) if checkers is None else list(checkers)
    unknown_checkers = [name for name in names if name not in CHECKERS]
    if unknown_checkers:
        raise ValueError(f"unknown checkers {unknown_checkers}; known: {sorted(CHECKERS)}")
    accepted = {name: _options_of(CHECKERS[name]) for name in names}
    unused = set(options) - set().union(*accepted.values())
    if unused:
        raise TypeError(f"no selected checker takes the options {sorted(unused)}")
    ops = as_ops(history)
    return [
        CHECKERS[name](ops, **{key: value for key, value in options.items() if key in accepted[name]})
        for name in names
    ]


def _clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def render_table(verdicts: Sequence[Verdict], *, width: int = 100) -> str:
    """A plain-text table: checker, valid, anomaly count, first anomaly (clipped to ``width``)."""
    rows = [("checker", "valid", "anomalies", "first anomaly")]
    for found in verdicts:
        first = _clip(str(found.anomalies[0]), width) if found.anomalies else "-"
        rows.append((found.checker, "yes" if found.valid else "NO", str(len(found.anomalies)), first))
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    lines = []
    for number, row in enumerate(rows):
        lines.append(
            f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]:>{widths[2]}}  {row[3]}".rstrip()
        )
        if number == 0:
            lines.append("  ".join("-" * w for w in widths) + "  " + "-" * len(rows[0][3]))
    verdict_line = "all valid" if all(v.valid for v in verdicts) else "INVALID"
    lines.append(f"{len(verdicts)} checkers: {verdict_line}")
    return "\n".join(lines)


__all__ = [
    "CHECKERS",
    "INTEGRITY_KINDS",
    "Anomaly",
    "Command",
    "HistoryLike",
    "Verdict",
    "as_ops",
    "check_all",
    "confidentiality_integrity",
    "dead_letter",
    "diff_paths",
    "exactly_once_effect",
    "fifo_dedup",
    "index_sends",
    "per_entity_order",
    "read_state",
    "render_table",
    "replay_equivalence",
    "resolution",
    "total_queue",
]
