"""Where a load run's send-to-effect time goes: per-stage latencies from its histories.

``python -m flowgate.harness.load_stages REPORT_DIR [RUN_DIR]`` reads a reference load run (``locust -f
loadtests``, one command per order): the merged history (``REPORT_DIR/history.jsonl``: the
producer's ``send`` invokes) and the workers' own histories (``RUN_DIR/worker-*.jsonl``, default
the newest run under ``REPORT_DIR/runs``), and prints p50/p95/p99 of each hop of an order, by its
entity id (the FIFO group):

* ``send -> sqs``: the producer's SendMessageBatch started -> the command's ``SentTimestamp``;
* ``sqs -> receive``: queued in the command queue, including a receive linger and the poll cycle;
* ``receive -> effect``: decoded, claimed, handled and committed;
* ``effect -> publish``: the publisher's linger and its PublishBatch call (one at a time per worker);
* ``publish -> view sqs``: SNS's fan-out to the view queue (its ``SentTimestamp``);
* ``view sqs -> view receive``: queued in the view queue (the view listener's linger and poll);
* ``view receive -> project``: the view updated (the effect the load test times).

Clocks: ``SentTimestamp`` is LocalStack's, in ms; every other time is the wall clock of the
process that recorded it, all on one machine.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

#: (from, to, label) of each hop, in path order, then the whole path
STAGES: tuple[tuple[str, str, str], ...] = (
    ("send", "sqs", "send -> sqs"),
    ("sqs", "receive", "sqs -> receive"),
    ("receive", "effect", "receive -> effect"),
    ("effect", "publish", "effect -> publish"),
    ("publish", "view_sqs", "publish -> view sqs"),
    ("view_sqs", "view_receive", "view sqs -> view receive"),
    ("view_receive", "project", "view receive -> project"),
    ("send", "project", "send -> project (whole path)"),
)


def _pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered), max(1, math.ceil(q / 100 * len(ordered)))) - 1]


def stamps(
    ops: Iterable[Mapping[str, Any]], *, command_queue_marker: str = "orders"
) -> dict[str, dict[str, float]]:
    """Entity id -> the first time of each point of its path, from history ops (dicts with
    ``f``, ``type``, ``value``, ``time``). A receive from a queue whose name contains
    ``command_queue_marker`` is the command's, any other the view's."""
    out: dict[str, dict[str, float]] = {}

    def put(entity: Any, point: str, t: Any) -> None:
        if entity and t is not None:
            out.setdefault(str(entity), {}).setdefault(point, float(t))

    for op in ops:
        f, kind, v, t = op.get("f"), op.get("type"), op.get("value") or {}, op.get("time")
        if f == "send" and kind == "invoke":
            put(v.get("entity_id"), "send", t)
        elif f == "receive":
            command = command_queue_marker in str(v.get("queue", ""))
            put(v.get("group_id"), "receive" if command else "view_receive", t)
            put(v.get("group_id"), "sqs" if command else "view_sqs", v.get("sent_at"))
        elif f == "effect" and kind == "ok":
            put(v.get("entity_id"), "effect", t)
        elif f == "publish":
            put(v.get("entity_id"), "publish", t)
        elif f == "project" and kind == "ok":
            put(v.get("entity_id"), "project", t)
    return out


def breakdown(points: Mapping[str, Mapping[str, float]]) -> list[dict[str, Any]]:
    """Per stage: label, orders with both points, p50/p95/p99/max in ms."""
    rows = []
    for a, b, label in STAGES:
        ms = [(p[b] - p[a]) * 1000.0 for p in points.values() if a in p and b in p]
        if ms:
            rows.append(
                {
                    "stage": label,
                    "n": len(ms),
                    "p50": _pct(ms, 50),
                    "p95": _pct(ms, 95),
                    "p99": _pct(ms, 99),
                    "max": max(ms),
                }
            )
    return rows


def _read(path: Path) -> Iterable[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m flowgate.harness.load_stages", description=__doc__.splitlines()[0]
    )
    parser.add_argument("report_dir", type=Path, help="the run's --report-dir (reports/load)")
    parser.add_argument("run_dir", type=Path, nargs="?", help="default: the newest REPORT_DIR/runs/*")
    args = parser.parse_args(argv)
    run_dir = args.run_dir or max((args.report_dir / "runs").iterdir(), default=None)
    if run_dir is None:
        print(f"no run under {args.report_dir / 'runs'}", file=sys.stderr)
        return 2
    sources = [args.report_dir / "history.jsonl", *sorted(Path(run_dir).glob("worker-*.jsonl"))]
    ops = [op for src in sources if src.exists() for op in _read(src)]
    points = stamps(ops)
    print(f"{len(points)} orders, run {run_dir}")
    for row in breakdown(points):
        print(
            f"{row['stage']:<30} n={row['n']:>7} p50 {row['p50']:8.1f}  p95 {row['p95']:8.1f}  "
            f"p99 {row['p99']:8.1f}  max {row['max']:8.1f} ms"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
