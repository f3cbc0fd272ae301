"""Run a module as ``__main__`` while counting every AWS API call it makes.

``python -m loadtests._count_calls OUT.json flowgate.reference.worker --config bus.json`` runs the worker
unchanged; at exit (the worker stops gracefully on SIGTERM) the call counts per operation are
written to ``OUT.json`` and the calls' wall time per operation (count, mean and total seconds,
retries included) to ``OUT.latency.json``. This is how the load test reports API calls per order
and where the worker's time goes, without touching the reference. (``_``-prefixed so Locust does not load it as a locustfile.)
"""

from __future__ import annotations

import atexit
import json
import runpy
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any


def install(out: Path) -> Counter[str]:
    from botocore.client import BaseClient

    counts: Counter[str] = Counter()
    seconds: dict[str, float] = {}
    lock = threading.Lock()
    original = BaseClient._make_api_call  # type: ignore[attr-defined]  # botocore's private hook

    def counted(self: Any, operation_name: str, api_params: Any) -> Any:
        start = time.perf_counter()
        try:
            return original(self, operation_name, api_params)
        finally:
            elapsed = time.perf_counter() - start
            with lock:
                counts[operation_name] += 1
                seconds[operation_name] = seconds.get(operation_name, 0.0) + elapsed

    BaseClient._make_api_call = counted  # type: ignore[attr-defined]

    def dump() -> None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(dict(counts), indent=2, sort_keys=True))
        latency = {
            op: {"calls": n, "mean_ms": round(seconds[op] / n * 1000, 1), "total_s": round(seconds[op], 1)}
            for op, n in sorted(counts.items())
        }
        latency_path(out).write_text(json.dumps(latency, indent=2))

    atexit.register(dump)
    return counts


def latency_path(out: Path) -> Path:
    """Where the per-operation latencies of the counts file ``out`` go."""
    return out.with_name(out.stem + ".latency.json")


def main() -> None:
    if len(sys.argv) < 3:
        raise SystemExit("usage: python -m loadtests._count_calls OUT.json MODULE [ARGS...]")
    out, module = Path(sys.argv[1]), sys.argv[2]
    install(out)
    sys.argv = [module, *sys.argv[3:]]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
