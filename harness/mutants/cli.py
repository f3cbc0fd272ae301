"""``flowgate mutants``: the mutation score of the property suites.

1. The clean reference must pass every killing property (one pytest run).
2. Each mutant runs its killing properties in a pytest subprocess with ``--mutant NAME``
   (hypothesis without shrinking); the mutant is *killed* when they fail. Two at a time.
Prints ``mutant | killed by | anomaly | status`` and the mutation score; exits 1 if the clean
reference fails or any mutant survives.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from harness.mutants.catalog import MUTANTS, Mutant

ROOT = Path(__file__).resolve().parents[2]
_ANOMALY = re.compile(r"flowgate-anomalies: ([\w,-]+)")
_FAILED = re.compile(r"^FAILED (\S+)", re.M)


@dataclass
class Outcome:
    mutant: str
    status: str  # killed / SURVIVED / ERROR
    killed_by: list[str]
    anomalies: list[str]
    seconds: float
    tail: str = ""


def _pytest(nodes: Sequence[str], *, mutant: str | None, profile: str, timeout: float) -> tuple[int, str]:
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
           "--no-header", "-rf", *nodes]
    if mutant:
        cmd += ["--mutant", mutant]
    env = {**os.environ, "HYPOTHESIS_PROFILE": profile}
    env.pop("FLOWGATE_MUTANT", None)
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        return 124, f"timeout after {timeout}s: {exc}"
    return proc.returncode, proc.stdout + proc.stderr


def run_mutant(mutant: Mutant, *, profile: str, timeout: float) -> Outcome:
    start = time.perf_counter()
    rc, out = _pytest(mutant.killers, mutant=mutant.name, profile=profile, timeout=timeout)
    seconds = time.perf_counter() - start
    failed = sorted({n.split("[")[0] for n in _FAILED.findall(out)})
    anomalies = sorted({k for m in _ANOMALY.findall(out) for k in m.split(",")})
    if rc == 1 and failed:
        status = "killed"
    elif rc == 0:
        status = "SURVIVED"
    else:
        status = "ERROR"
    return Outcome(mutant.name, status, failed, anomalies, seconds, out[-1500:])


def _table(rows: list[Outcome]) -> str:
    head = ("mutant", "killed by", "anomaly", "status", "s")
    cells = [head] + [(o.mutant, ", ".join(k.rsplit("::", 1)[-1] for k in o.killed_by) or "-",
                       ", ".join(o.anomalies) or "-", o.status, f"{o.seconds:.1f}") for o in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="flowgate mutants", description=__doc__.split("\n")[0])
    parser.add_argument("--list", action="store_true", help="list the catalog and exit")
    parser.add_argument("--only", nargs="*", default=None, help="run only these mutants")
    parser.add_argument("--profile", default=os.environ.get("FLOWGATE_MUTANTS_PROFILE", "ci"),
                        help="hypothesis profile of the property runs (default ci)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=240.0, help="seconds per pytest run")
    parser.add_argument("--skip-clean", action="store_true", help="do not re-check the clean reference")
    args = parser.parse_args(argv)
    if args.list:
        for m in MUTANTS.values():
            print(f"{m.name:27} {m.bug}\n{'':27} killed by: {', '.join(m.killers)}")
        return 0
    chosen = [MUTANTS[n] for n in (args.only or list(MUTANTS))]
    start = time.perf_counter()
    if not args.skip_clean:
        nodes = sorted({k for m in chosen for k in m.killers})
        rc, out = _pytest(nodes, mutant=None, profile=args.profile, timeout=args.timeout * 2)
        print(f"clean reference on {len(nodes)} property files: {'pass' if rc == 0 else 'FAIL'} "
              f"({time.perf_counter() - start:.1f}s)")
        if rc != 0:
            print(out[-4000:])
            return 1
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        rows = list(pool.map(lambda m: run_mutant(m, profile=args.profile, timeout=args.timeout), chosen))
    print(_table(rows))
    killed = sum(o.status == "killed" for o in rows)
    print(f"mutation score: {killed}/{len(rows)} = {100.0 * killed / max(1, len(rows)):.0f}% "
          f"(profile {args.profile}, {time.perf_counter() - start:.0f}s)")
    for o in rows:
        if o.status != "killed":
            print(f"--- {o.mutant} {o.status}:\n{o.tail}")
    return 0 if killed == len(rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
