"""A load run (``locust -f loadtests``, ``nox -s load``, ``nox -s bench``) in the Allure report.

With ``--alluredir DIR`` a load run writes into ``DIR``:

* one Allure result per run (epic ``Load``, feature = the shape, story = the system under load):
  ``passed`` when the run's verdict is PASS, ``failed`` with the verdict's reasons otherwise;
  its description shows the verdict table, the capacity steps and the plot inline;
  attached: the verdict table (:func:`verdict_table`: checkers, target and achieved rate,
  p50/p95/p99, losses and duplicates, capacity and the ratio to each baseline wire), the capacity steps
  (:func:`capacity_table`, capacity runs only), the latency-over-time plot
  (:func:`latency_plot_png`, drawn with matplotlib from the run's own per-order latencies) and
  the run's ``summary.json``;
* the run's headline on the report's first page (:func:`flowgate.harness.report.write_headline`) and the
  plot and verdict table as run-level attachments (the first page's *Global Attachments*).
"""

from __future__ import annotations

import base64
import html
import io
import json
import statistics
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from flowgate.harness.report import attach_to_run, write_headline
from flowgate.harness.tables import grid

EPIC = "Load"

#: per baseline wire a capacity run measured (``loadtests/_shapes.py`` BASELINE_WIRES): the
#: summary keys of its capacity, of the reference's ratio to it, and of its error
BASELINE_KEYS: tuple[tuple[str, str, str, str], ...] = (
    ("bare", "baseline_capacity_per_min", "capacity_ratio", "baseline_error"),
    ("contract", "baseline_contract_capacity_per_min", "capacity_ratio_contract", "baseline_contract_error"),
)


def _buckets(
    latencies: Sequence[tuple[float, float]], begin: float, bucket_s: float
) -> dict[int, list[float]]:
    out: dict[int, list[float]] = {}
    for t, ms in latencies:
        out.setdefault(int((t - begin) // bucket_s), []).append(ms)
    return out


def _quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def latency_plot_png(
    latencies: Sequence[tuple[float, float]],
    *,
    begin: float,
    commanded: Sequence[tuple[float, float]] = (),
    title: str = "",
    bucket_s: float = 5.0,
) -> bytes:
    """The latency-over-time plot of a run as PNG bytes.

    ``latencies`` are ``(wall time the effect was seen, send-to-effect ms)`` per order,
    ``begin`` the wall time the load started, ``commanded`` the ``(wall time, orders/min)``
    changes of the target rate. Top: every order's latency (dots) and the p50/p95/p99 of each
    ``bucket_s`` window; bottom: orders effected per minute in each window against the target.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    buckets = _buckets(latencies, begin, bucket_s)
    xs = [(k + 0.5) * bucket_s for k in sorted(buckets)]
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(10, 5.6), sharex=True, gridspec_kw={"height_ratios": [3, 2]}, layout="constrained"
    )
    if latencies:
        top.scatter(
            [t - begin for t, _ in latencies], [ms for _, ms in latencies], s=2, c="#9aa5b1", alpha=0.35,
            label="orders", rasterized=True,
        )  # fmt: skip
    for q, colour in ((0.5, "#2f855a"), (0.95, "#d69e2e"), (0.99, "#c53030")):
        top.plot(
            xs,
            [_quantile(buckets[k], q) for k in sorted(buckets)],
            color=colour,
            lw=1.8,
            label=f"p{round(q * 100)}",
        )
    top.set_ylabel("send-to-effect (ms)")
    if latencies and max(ms for _, ms in latencies) > 20 * max(
        1.0, statistics.median(ms for _, ms in latencies)
    ):
        top.set_yscale("log")
    top.grid(alpha=0.3)
    top.legend(loc="upper left", ncols=4, fontsize="small")
    top.set_title(title or "latency over time")
    bottom.bar(xs, [len(buckets[k]) * 60.0 / bucket_s for k in sorted(buckets)], width=bucket_s * 0.9,
               color="#4a90d9", label="effected / min")  # fmt: skip
    if commanded:
        steps = [(t - begin, rate) for t, rate in commanded]
        end = max([*xs, steps[-1][0]]) + bucket_s / 2
        bottom.step([x for x, _ in steps] + [end], [r for _, r in steps] + [steps[-1][1]], where="post",
                    color="#1a202c", lw=1.4, label="target / min")  # fmt: skip
    bottom.set_ylabel("orders / min")
    bottom.set_xlabel("seconds since the load started")
    bottom.grid(alpha=0.3)
    bottom.legend(loc="lower right", fontsize="small")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()


def verdict_table(summary: Mapping[str, Any], checker_table: str) -> str:
    """The run's verdict as text: its figures, the checkers' table and the verdict's reasons."""
    ms = summary.get("send_to_effect_ms") or {}
    rows = [
        ("shape / system", f"{summary.get('shape')} / {summary.get('sut')} ({summary.get('workers')} workers)"),
        ("target rate", f"{float(summary.get('target_per_min') or 0):,.0f} orders/min"),
        ("achieved rate", f"{float(summary.get('achieved_per_min') or 0):,.0f} orders/min "
                          f"({float(summary.get('achieved_ratio') or 0):.1%} of target)"),
        ("effected during the load", f"{float(summary.get('effected_in_window_per_min') or 0):,.0f} orders/min"),
        ("send-to-effect p50/p95/p99", f"{ms.get('p50', 0):.0f} / {ms.get('p95', 0):.0f} / {ms.get('p99', 0):.0f} ms"),
        ("released / acked / effected", f"{summary.get('released')} / {summary.get('acked')} / {summary.get('effected')}"),
        ("missing after drain", str(summary.get("missing_after_drain"))),
        ("duplicate final events", str(summary.get("duplicate_final_events"))),
        ("API calls per order", str(summary.get("api_calls_per_order"))),
    ]  # fmt: skip
    if "capacity_per_min" in summary:
        rows.append(("capacity", f"{float(summary['capacity_per_min'] or 0):,.0f} orders/min"))
        for wire, capacity_key, ratio_key, error_key in BASELINE_KEYS:
            if capacity_key in summary:
                rows.append(
                    (f"baseline capacity ({wire} wire)", f"{float(summary[capacity_key]):,.0f} orders/min")
                )
                rows.append((f"capacity / baseline ({wire} wire)", str(summary.get(ratio_key))))
            elif error_key in summary:
                rows.append((f"baseline ({wire} wire)", str(summary[error_key])))
    reasons = list(summary.get("reasons") or [])
    verdict = "PASS" if not reasons and summary.get("exit_code", 0) == 0 else "FAIL"
    rows.append(("VERDICT", verdict + (": " + "; ".join(reasons) if reasons else "")))
    return grid(("figure", "value"), rows) + "\n\ncheckers\n" + checker_table.rstrip() + "\n"


def capacity_table(steps: Sequence[Mapping[str, Any]]) -> str:
    """The capacity run's steps: target rate, verdict, orders due/acknowledged, p99, backlog."""
    rows = [
        (
            f"{float(s.get('rate', 0)):,.0f}",
            "ok" if s.get("ok") else "STOP",
            str(s.get("due", "")),
            str(s.get("acked", "")),
            f"{float(s.get('p99_ms') or 0):.0f}",
            f"{s.get('backlog_start', '')} -> {s.get('backlog_end', '')}",
            str(s.get("reason", "")),
        )
        for s in steps
    ]
    return grid(("target/min", "step", "due", "acked", "p99 ms", "backlog", "reason"), rows) + "\n"


def _attach(results_dir: Path, name: str, content: bytes | str, mime: str, ext: str) -> dict[str, str]:
    target = results_dir / f"{uuid.uuid4()}-attachment.{ext}"
    if isinstance(content, str):
        target.write_text(content, encoding="utf-8")
    else:
        target.write_bytes(content)
    return {"name": name, "source": target.name, "type": mime}


def headline(summary: Mapping[str, Any]) -> dict[str, str]:
    """The run's entries on the report's first page (short: the overview truncates)."""
    ok = not summary.get("reasons") and summary.get("exit_code", 0) == 0
    ms = summary.get("send_to_effect_ms") or {}
    shape = str(summary.get("shape"))
    entries = {
        f"Load {shape}": f"{'PASS' if ok else 'FAIL'} · {float(summary.get('achieved_per_min') or 0):,.0f}/min"
        f" · p99 {float(ms.get('p99', 0)):,.0f} ms",
    }
    if "capacity_per_min" in summary:
        ratios = [
            f"{summary[ratio_key]}x baseline ({wire})"
            for wire, _, ratio_key, _ in BASELINE_KEYS
            if summary.get(ratio_key) is not None
        ]
        entries["Capacity"] = " · ".join([f"{float(summary['capacity_per_min'] or 0):,.0f}/min", *ratios])
    return entries


def _description_html(summary: Mapping[str, Any], table: str, plot: bytes, steps: str) -> str:
    """The result's overview: the command, the verdict table, the capacity steps and the plot
    inline (a data URI), so the figures show without opening an attachment."""
    parts = [
        f"<p><code>{html.escape(str(summary.get('command')))}</code></p>",
        f"<pre>{html.escape(table)}</pre>",
    ]
    if steps:
        parts.append(f"<p>capacity steps</p><pre>{html.escape(steps)}</pre>")
    parts.append(
        '<img alt="latency over time" style="max-width:100%" '
        f'src="data:image/png;base64,{base64.b64encode(plot).decode("ascii")}">'
    )
    return "\n".join(parts)


def write_load_result(
    results_dir: Path,
    summary: Mapping[str, Any],
    *,
    checker_table: str,
    latencies: Sequence[tuple[float, float]],
    begin: float,
    end: float,
    commanded: Sequence[tuple[float, float]] = (),
) -> Path:
    """Write the run's Allure result, headline and run-level attachments; returns the result path."""
    results_dir.mkdir(parents=True, exist_ok=True)
    reasons = [str(r) for r in summary.get("reasons") or []]
    ok = not reasons and summary.get("exit_code", 0) == 0
    shape, sut = str(summary.get("shape")), str(summary.get("sut"))
    table = verdict_table(summary, checker_table)
    plot = latency_plot_png(
        latencies, begin=begin, commanded=commanded, title=f"{shape} ({sut}): {'PASS' if ok else 'FAIL'}"
    )
    attachments = [
        _attach(results_dir, "verdict", table, "text/plain", "txt"),
        _attach(results_dir, "latency over time", plot, "image/png", "png"),
        _attach(
            results_dir,
            "summary.json",
            json.dumps(summary, indent=2, default=str),
            "application/json",
            "json",
        ),
    ]
    steps = list(summary.get("capacity_steps") or [])
    if steps:
        attachments.insert(
            1, _attach(results_dir, "capacity steps", capacity_table(steps), "text/plain", "txt")
        )
    ms = summary.get("send_to_effect_ms") or {}
    result: dict[str, Any] = {
        "uuid": str(uuid.uuid4()),
        "historyId": f"load:{shape}:{sut}",
        "testCaseId": f"load:{shape}:{sut}",
        "name": f"load {shape} ({sut}, {summary.get('workers')} workers)",
        "fullName": f"flowgate.load.{shape}.{sut}",
        "description": f"`{summary.get('command')}`",
        "descriptionHtml": _description_html(summary, table, plot, capacity_table(steps) if steps else ""),
        "status": "passed" if ok else "failed",
        "statusDetails": {"message": "; ".join(reasons)} if reasons else {},
        "stage": "finished",
        "start": int(begin * 1000),
        "stop": int(max(end, begin) * 1000),
        "labels": [
            {"name": "epic", "value": EPIC},
            {"name": "feature", "value": shape},
            {"name": "story", "value": sut},
            {"name": "backend", "value": "localstack"},
            {"name": "implementation", "value": "reference" if sut == "reference" else sut},
        ],
        "parameters": [
            {"name": "target /min", "value": f"{float(summary.get('target_per_min') or 0):,.0f}"},
            {"name": "achieved /min", "value": f"{float(summary.get('achieved_per_min') or 0):,.0f}"},
            {"name": "p50/p95/p99 ms", "value": f"{ms.get('p50', 0):.0f}/{ms.get('p95', 0):.0f}/{ms.get('p99', 0):.0f}"},
        ],
        "attachments": attachments,
    }  # fmt: skip
    path = results_dir / f"{result['uuid']}-result.json"
    path.write_text(json.dumps(result), encoding="utf-8")
    write_headline(results_dir, "load", headline(summary))
    attach_to_run(results_dir, f"load {shape}: latency over time", plot, mime="image/png", ext="png")
    attach_to_run(results_dir, f"load {shape}: verdict", table, mime="text/plain", ext="txt")
    return path
