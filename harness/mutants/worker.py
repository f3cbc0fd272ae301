"""``FLOWGATE_MUTANT=name python -m flowgate.harness.mutants.worker ARGS``: the reference worker as a mutant.

Applies the mutant named by ``FLOWGATE_MUTANT`` (or ``--mutant NAME`` before the worker's own
arguments), then calls :func:`flowgate.reference.worker.main` with the remaining arguments. Without a
mutant it is the plain reference worker. Storage mutants patch InMemoryStorage and SqlStorage.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from contextlib import nullcontext

from flowgate.harness.mutants.catalog import apply_mutant, mutant_from_env


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    name = mutant_from_env()
    if len(args) >= 2 and args[0] == "--mutant":
        name, args = args[1], args[2:]
    from flowgate.reference.worker import main as worker_main

    with apply_mutant(name) if name else nullcontext():
        if name:
            print(f"flowgate worker running as mutant {name!r}", file=sys.stderr, flush=True)
        return worker_main(args)


if __name__ == "__main__":
    raise SystemExit(main())
