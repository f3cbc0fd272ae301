"""``flowgate mutants``: the mutation score of the property suites (or of the LocalStack scenarios).

``--suite properties`` (default):

1. The clean reference must pass every killing property (one pytest run).
2. Each mutant runs its killing properties in a pytest subprocess with ``--mutant NAME``
   (hypothesis without shrinking); the mutant is *killed* when they fail. Two at a time.
   Scenario-only mutants (no property killers) are listed and skipped.

``--suite scenarios``: the scenario -> mutant kill matrix. Every ``Mutant.scenarios`` node runs
in its own pytest subprocess (``pytest NODE -p flowgate.fixtures.summary --mutant NAME``), one at a time,
against LocalStack (:func:`flowgate.harness.launcher.ensure_localstack`: the running one is reused and
never stopped; one started here is stopped at the end); a row is *killed* when the scenario
fails. ``--clean`` first runs every listed scenario on the clean reference (must pass).
``--node TEXT ...`` keeps only the scenario nodes containing one of the strings; a node listed in
``SCENARIO_TIMEOUTS_S`` (the long chaos run) gets its longer budget instead of ``--timeout``.

Prints the table and the score; exits 1 if the clean reference fails or anything survives.

With ``FLOWGATE_MUTANT_ALLURE=DIR`` (``nox -s tests`` sets it) each mutant also becomes one Allure
result in ``DIR/mutants-properties/`` (``DIR/mutants-scenarios/`` for the scenario suite):
passed when killed, failed when it survived, the failing checks' evidence attached
(:mod:`flowgate.harness.mutants.allure`). The clean reference run writes none (its tests are the clean
runs of the ``tests`` session).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from flowgate.harness.mutants.allure import write_mutant_result
from flowgate.harness.mutants.catalog import MUTANTS, SCENARIO_TIMEOUTS_S, Mutant
from flowgate.harness.tables import grid

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


def _pytest(
    nodes: Sequence[str],
    *,
    mutant: str | None,
    profile: str,
    timeout: float,
    extra: Sequence[str] = (),
    env_extra: dict[str, str] | None = None,
    alluredir: Path | None = None,
) -> tuple[int, str]:
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:randomly",
        "--no-header",
        "-rf",
        *extra,
        *nodes,
    ]
    if mutant:
        cmd += ["--mutant", mutant]
    if alluredir is not None:
        # the run's per-check results, folded into the mutant's one result afterwards
        shutil.rmtree(alluredir, ignore_errors=True)
        cmd += [f"--alluredir={alluredir}"]
    env = {**os.environ, "HYPOTHESIS_PROFILE": profile, **(env_extra or {})}
    env.pop("FLOWGATE_MUTANT", None)
    try:
        proc = subprocess.run(
            cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        return 124, f"timeout after {timeout}s: {exc}"
    return proc.returncode, proc.stdout + proc.stderr


def _allure_dir(suite: str) -> Path | None:
    """``$FLOWGATE_MUTANT_ALLURE/mutants-<suite>``, where each mutant's one result goes (or None)."""
    root = os.environ.get("FLOWGATE_MUTANT_ALLURE")
    return Path(root) / f"mutants-{suite}" if root else None


def run_mutant(mutant: Mutant, *, profile: str, timeout: float) -> Outcome:
    start = time.perf_counter()
    results = _allure_dir("properties")
    run_dir = results / f".run-{mutant.name}" if results is not None else None
    started_ms = int(time.time() * 1000)
    rc, out = _pytest(mutant.killers, mutant=mutant.name, profile=profile, timeout=timeout, alluredir=run_dir)
    seconds = time.perf_counter() - start
    failed = sorted({n.split("[")[0] for n in _FAILED.findall(out)})
    anomalies = sorted({k for m in _ANOMALY.findall(out) for k in m.split(",")})
    if rc == 1 and failed:
        status = "killed"
    elif rc == 0:
        status = "SURVIVED"
    else:
        status = "ERROR"
    if results is not None and run_dir is not None:
        write_mutant_result(
            results,
            mutant=mutant.name,
            suite="property suites",
            status=status,
            bug=mutant.bug,
            killed_by=failed,
            anomalies=anomalies,
            replay=f"flowgate mutants --only {mutant.name} --profile {profile}",
            output=out[-6000:],
            source_dir=run_dir,
            seconds=seconds,
            start_ms=started_ms,
        )
        shutil.rmtree(run_dir, ignore_errors=True)  # what the run left besides its results
    return Outcome(mutant.name, status, failed, anomalies, seconds, out[-1500:])


# a failing checker row of the printed table: "checker  NO  3  kind: ..."
_CHECKER_KIND = re.compile(r"^\S*\s*\w+\s+NO\s+\d+\s+([\w-]+):", re.M)
_SCENARIO_ANOMALY = re.compile(r"^\s*scenario anomaly: (.*)$", re.M)


@dataclass
class ScenarioOutcome:
    node: str
    mutant: str
    status: str  # killed / SURVIVED / ERROR
    anomalies: list[str]
    first: str
    seconds: float
    tail: str = ""


def run_scenario(
    node: str, mutant: str | None, *, endpoint: str, timeout: float, alluredir: Path | None = None
) -> ScenarioOutcome:
    start = time.perf_counter()
    rc, out = _pytest(
        [node],
        mutant=mutant,
        profile="ci",
        timeout=timeout,
        extra=("-p", "flowgate.fixtures.summary"),
        env_extra={"AWS_ENDPOINT_URL": endpoint},
        alluredir=alluredir,
    )
    seconds = time.perf_counter() - start
    scenario_lines = _SCENARIO_ANOMALY.findall(out)
    kinds = sorted(set(_CHECKER_KIND.findall(out)))
    if scenario_lines:
        kinds.append(f"scenario x{len(scenario_lines)}")
    first = (
        scenario_lines[0]
        if scenario_lines
        else next(
            (line.strip() for line in out.splitlines() if line.startswith("E ") and "Error" in line), ""
        )
    )
    if rc == 1 and _FAILED.search(out):
        status = "killed"
    elif rc == 0:
        status = "SURVIVED"
    else:
        status = "ERROR"
    return ScenarioOutcome(node, mutant or "(clean)", status, kinds, first[:90], seconds, out[-1500:])


def _write_scenario_results(results: Path, rows: Sequence[ScenarioOutcome]) -> None:
    """One result per mutant of the scenario suite: killed only when every one of its scenario
    nodes failed under it (the suite's score counts each node), survived when any passed."""
    for name in dict.fromkeys(r.mutant for r in rows):
        mine = [r for r in rows if r.mutant == name]
        statuses = {r.status for r in mine}
        status = "SURVIVED" if "SURVIVED" in statuses else "ERROR" if "ERROR" in statuses else "killed"
        run_root = results / f".run-{name}"
        for index in sorted(run_root.iterdir()) if run_root.is_dir() else []:
            for path in index.iterdir():  # every node's per-check results, side by side
                shutil.move(
                    path,
                    run_root / f"{index.name}-{path.name}"
                    if path.name.endswith(".json")
                    else run_root / path.name,
                )
            index.rmdir()
        write_mutant_result(
            results,
            mutant=name,
            suite="LocalStack scenarios",
            status=status,
            bug=MUTANTS[name].bug,
            killed_by=[r.node for r in mine if r.status == "killed"],
            anomalies=sorted({a for r in mine for a in r.anomalies}),
            replay=f"flowgate mutants --suite scenarios --only {name}",
            output="\n".join(f"--- {r.node}: {r.status} ({r.seconds:.0f}s)\n{r.tail}" for r in mine),
            source_dir=run_root,
            seconds=sum(r.seconds for r in mine),
        )
        shutil.rmtree(run_root, ignore_errors=True)  # the runs' own headlines and run-level files


def _budget(node: str, timeout: float) -> float:
    """The per-run timeout of scenario ``node``: ``--timeout``, or the catalog's longer budget."""
    return max(timeout, SCENARIO_TIMEOUTS_S.get(node, 0.0))


def scenarios_main(args: argparse.Namespace) -> int:
    from flowgate.harness.launcher import ensure_localstack, stop

    chosen = [MUTANTS[n] for n in (args.only or list(MUTANTS))]
    pairs = [
        (node, m.name)
        for m in chosen
        for node in m.scenarios
        if not args.node or any(part in node for part in args.node)
    ]
    if not pairs:
        print("no scenario killers for the chosen mutants")
        return 1
    start = time.perf_counter()
    endpoint = ensure_localstack()
    print(f"LocalStack: {endpoint.url} ({endpoint.source})", flush=True)
    rows: list[ScenarioOutcome] = []
    try:
        if args.clean:
            for node in sorted({n for n, _ in pairs}):
                clean = run_scenario(node, None, endpoint=endpoint.url, timeout=_budget(node, args.timeout))
                print(
                    f"clean {node}: {'pass' if clean.status == 'SURVIVED' else 'FAIL'} ({clean.seconds:.0f}s)",
                    flush=True,
                )
                if clean.status != "SURVIVED":
                    print(clean.tail)
                    return 1
        results = _allure_dir("scenarios")
        for index, (node, name) in enumerate(pairs):
            run_dir = results / f".run-{name}" / str(index) if results is not None else None
            row = run_scenario(
                node, name, endpoint=endpoint.url, timeout=_budget(node, args.timeout), alluredir=run_dir
            )
            print(f"{row.status:8} {name:27} {node} ({row.seconds:.0f}s)", flush=True)
            rows.append(row)
    finally:
        if endpoint.started_here:
            stop(endpoint)
    print(
        grid(
            ("scenario", "mutant", "status", "anomalies", "s", "first scenario finding"),
            [
                (
                    r.node.removeprefix("scenarios/"),
                    r.mutant,
                    r.status,
                    ", ".join(r.anomalies) or "-",
                    f"{r.seconds:.0f}",
                    r.first or "-",
                )
                for r in rows
            ],
        )
    )
    if (results := _allure_dir("scenarios")) is not None:
        _write_scenario_results(results, rows)
    killed = sum(r.status == "killed" for r in rows)
    print(
        f"scenario kill score: {killed}/{len(rows)} = {100.0 * killed / len(rows):.0f}% "
        f"({len({m for _, m in pairs})} mutants, {len({n for n, _ in pairs})} scenario nodes, "
        f"{time.perf_counter() - start:.0f}s)"
    )
    for r in rows:
        if r.status != "killed":
            print(f"--- {r.mutant} on {r.node}: {r.status}\n{r.tail}")
    return 0 if killed == len(rows) else 1


def _table(rows: list[Outcome]) -> str:
    head = ("mutant", "killed by", "anomaly", "status", "s")
    cells = [head] + [
        (
            o.mutant,
            ", ".join(k.rsplit("::", 1)[-1] for k in o.killed_by) or "-",
            ", ".join(o.anomalies) or "-",
            o.status,
            f"{o.seconds:.1f}",
        )
        for o in rows
    ]
    widths = [max(len(r[i]) for r in cells) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="flowgate mutants", description=__doc__.split("\n")[0])
    parser.add_argument("--list", action="store_true", help="list the catalog and exit")
    parser.add_argument("--only", nargs="*", default=None, help="run only these mutants")
    parser.add_argument(
        "--profile",
        default=os.environ.get("FLOWGATE_MUTANTS_PROFILE", "ci"),
        help="hypothesis profile of the property runs (default ci)",
    )
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=240.0, help="seconds per pytest run")
    parser.add_argument("--skip-clean", action="store_true", help="do not re-check the clean reference")
    parser.add_argument(
        "--suite",
        choices=("properties", "scenarios"),
        default="properties",
        help="properties (default, simulated) or scenarios (LocalStack kill matrix)",
    )
    parser.add_argument(
        "--clean",
        action="store_true",
        help="scenarios suite: first run each listed scenario on the clean reference",
    )
    parser.add_argument(
        "--node",
        nargs="*",
        default=None,
        help="scenarios suite: only the scenario nodes containing one of these strings",
    )
    args = parser.parse_args(argv)
    if args.list:
        for m in MUTANTS.values():
            print(
                f"{m.name:27} {m.bug}\n{'':27} killed by: {', '.join(m.killers) or '-'}"
                f"\n{'':27} scenarios: {', '.join(m.scenarios) or '-'}"
            )
        return 0
    if args.suite == "scenarios":
        if "--timeout" not in (argv if argv is not None else sys.argv):
            args.timeout = 300.0
        return scenarios_main(args)
    chosen = [MUTANTS[n] for n in (args.only or list(MUTANTS))]
    scenario_only = [m.name for m in chosen if not m.killers]
    if scenario_only:
        print(
            f"scenario-only mutants (no property killers; see --suite scenarios): {', '.join(scenario_only)}"
        )
    chosen = [m for m in chosen if m.killers]
    start = time.perf_counter()
    if not args.skip_clean:
        nodes = sorted({k for m in chosen for k in m.killers})
        rc, out = _pytest(nodes, mutant=None, profile=args.profile, timeout=args.timeout * 2)
        print(
            f"clean reference on {len(nodes)} property files: {'pass' if rc == 0 else 'FAIL'} "
            f"({time.perf_counter() - start:.1f}s)"
        )
        if rc != 0:
            print(out[-4000:])
            return 1
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        rows = list(pool.map(lambda m: run_mutant(m, profile=args.profile, timeout=args.timeout), chosen))
    print(_table(rows))
    killed = sum(o.status == "killed" for o in rows)
    print(
        f"mutation score: {killed}/{len(rows)} = {100.0 * killed / max(1, len(rows)):.0f}% "
        f"(profile {args.profile}, {time.perf_counter() - start:.0f}s)"
    )
    for o in rows:
        if o.status != "killed":
            print(f"--- {o.mutant} {o.status}:\n{o.tail}")
    return 0 if killed == len(rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
