"""Run a module as ``__main__`` while counting every AWS API call it makes.

``python -m loadtests._count_calls OUT.json reference.worker --config bus.json`` runs the worker
unchanged; at exit (the worker stops gracefully on SIGTERM) the call counts per operation are
written to ``OUT.json``. This is how the load test reports API calls per order for the worker
side without touching the reference. (``_``-prefixed so Locust does not load it as a locustfile.)
"""

from __future__ import annotations

import atexit
import json
import runpy
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any


def install(out: Path) -> Counter[str]:
    from botocore.client import BaseClient

    counts: Counter[str] = Counter()
    lock = threading.Lock()
    original = BaseClient._make_api_call

    def counted(self: Any, operation_name: str, api_params: Any) -> Any:
        with lock:
            counts[operation_name] += 1
        return original(self, operation_name, api_params)

    BaseClient._make_api_call = counted  # type: ignore[method-assign]

    def dump() -> None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(dict(counts), indent=2, sort_keys=True))

    atexit.register(dump)
    return counts


def main() -> None:
    if len(sys.argv) < 3:
        raise SystemExit("usage: python -m loadtests._count_calls OUT.json MODULE [ARGS...]")
    out, module = Path(sys.argv[1]), sys.argv[2]
    install(out)
    sys.argv = [module, *sys.argv[3:]]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
