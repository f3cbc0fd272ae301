"""Gate-local mutants: deliberately broken variants of the Node example worker, selected with
``FLOWGATE_BROKEN``, each with the anomaly kinds the gate must report for it.

This is the stand-in until the shared mutant catalog (``harness/mutants/``, mutants of the
reference) lands; it proves the *gate* (not the property suites) kills classic bus bugs in an
implementation it only sees from outside::

    python -m harness.gate.mutants --profile smoke --seed 1     # prints the kill table, exit 0 iff all killed
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.gate.driver import run_gate

NODE_WORKER = Path(__file__).resolve().parents[2] / "docs" / "examples" / "node-worker" / "worker.js"


@dataclass(frozen=True, slots=True)
class Mutant:
    name: str
    broken: str
    bug: str
    expect: frozenset[str]   # anomaly kinds of which at least one must be reported


CATALOG: tuple[Mutant, ...] = (
    Mutant("skip-dedup", "skip-dedup", "no idempotency check; isNew re-creates the order (SourceFlow v2 shape)",
           frozenset({"lost", "skip", "duplicated", "duplicate-effect"})),
    Mutant("drop-poison", "drop-poison", "poison deleted instead of dead-lettered", frozenset({"poison-not-dead-lettered"})),
    Mutant("random-event-id", "random-event-id", "event ids random instead of uuid5(command id)",
           frozenset({"event-id-not-derived", "duplicated"})),
    Mutant("plaintext-events", "plaintext-events", "events published unencrypted while a KMS key is configured",
           frozenset({"unencrypted-wire", "plaintext-on-wire"})),
    Mutant("ignore-sigterm", "ignore-sigterm", "SIGTERM ignored (no graceful stop)", frozenset({"sigterm-timeout"})),
)


REFERENCE_ADAPTER = f"{sys.executable} -m harness.gate.adapters.reference_worker"


def reference_catalog() -> tuple[Mutant, ...]:
    """The shared catalog (``harness/mutants``) as gate mutants of the reference worker."""
    from harness.mutants.catalog import MUTANTS

    return tuple(Mutant(m.name, m.name, m.bug, frozenset(m.expected)) for m in MUTANTS.values())


def run_mutants(*, profile: str, seed: int, out_dir: Path, names: Sequence[str] | None = None,
                reference: bool = False, encrypted: bool = True) -> list[tuple[Mutant, bool, str]]:
    """Run each mutant through the gate. ``reference``: the shared catalog on the reference worker
    (through the contract adapter, ``FLOWGATE_MUTANT``, in-memory storage as its storage mutants need)."""
    rows = []
    for mutant in reference_catalog() if reference else CATALOG:
        if names and mutant.name not in names:
            continue
        if reference:
            impl, env = REFERENCE_ADAPTER, {"FLOWGATE_MUTANT": mutant.broken, "FLOWGATE_IDEMPOTENCY_URL": "memory:"}
        else:
            impl, env = f"node {NODE_WORKER}", {"FLOWGATE_BROKEN": mutant.broken}
        result = run_gate(impl, profile=profile, seed=seed, out_dir=out_dir / mutant.name, extra_env=env,
                          encrypted=encrypted)
        kinds = {kind for v in result.verdicts for kind in v.kinds()}
        killed = not result.passed and bool(kinds & mutant.expect)
        rows.append((mutant, killed, ", ".join(sorted(kinds)) or "-"))
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.gate.mutants")
    parser.add_argument("--profile", default="smoke")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("reports/gate-mutants"))
    parser.add_argument("--reference", action="store_true",
                        help="the shared catalog (harness/mutants) on the reference worker instead of the Node variants")
    parser.add_argument("--no-encryption", action="store_true")
    parser.add_argument("names", nargs="*")
    args = parser.parse_args(argv)
    started = time.monotonic()
    rows = run_mutants(profile=args.profile, seed=args.seed, out_dir=args.out, names=args.names,
                       reference=args.reference, encrypted=not args.no_encryption)
    width = max(len(m.name) for m, _, _ in rows) if rows else 10
    print(f"{'mutant':<{width}}  killed  anomalies reported")
    for mutant, killed, kinds in rows:
        print(f"{mutant.name:<{width}}  {'yes' if killed else 'NO':<6}  {kinds}")
    score = sum(1 for _, killed, _ in rows if killed)
    print(f"mutation score {score}/{len(rows)} ({time.monotonic() - started:.0f}s)")
    return 0 if rows and score == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
