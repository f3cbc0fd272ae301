"""``flowgate gate`` / ``python -m flowgate.harness.gate``: judge an implementation of contract v1.

Exit codes: 0 every check passed; 1 at least one anomaly; 2 usage error; 3 the gate could not
run (backend unreachable, provisioning failed).

``flowgate gate --self-test`` proves the gate itself: the reference and the Node example worker
must PASS, every reference mutant (except those declared equivalent) and every broken Node
variant must FAIL with the anomaly named; prints the verdict table and the mutation score
(killed / (all mutants - equivalent)); exit 0 only if all of that holds. Equivalent mutants run
only with ``--include-equivalent`` and are reported as measured, never scored.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from flowgate.harness.gate.driver import (
    EXIT_ANOMALY,
    EXIT_INFRA,
    EXIT_PASS,
    EXIT_USAGE,
    GateError,
    GateResult,
    run_gate,
)
from flowgate.harness.gate.mutants import (
    CATALOG,
    NODE_DIR,
    NODE_IMPL,
    REFERENCE_ADAPTER,
    Outcome,
    reference_catalog,
    run_mutant,
    score,
)
from flowgate.harness.gate.replay import KNOWN_CAPABILITIES
from flowgate.harness.gate.workload import PROFILES


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="flowgate gate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--impl", default=None, help='the command that starts one instance, e.g. "node worker.js"')
    p.add_argument(
        "--self-test",
        action="store_true",
        help="run the reference and the Node worker (must pass) and every mutant (must fail)",
    )
    p.add_argument(
        "--profile",
        choices=sorted(PROFILES),
        default=None,
        help="workload/fault profile (default smoke; with --self-test: the passing runs' profile, "
        "default standard -- each mutant runs its declared profile)",
    )
    p.add_argument("--backend", choices=["localstack", "aws"], default="localstack")
    p.add_argument(
        "--seed",
        type=int,
        default=None,
        help="reproduces the workload and fault schedule (default 0; with --self-test 1)",
    )
    p.add_argument("--instances", type=int, default=None, help="instances to run (default: the profile's)")
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="history, junit.xml, allure-results and the implementation's store/ (default reports/gate, "
        "--self-test reports/gate-self-test); on a local disk. Reused: the gate removes what an earlier "
        "gate run wrote there and refuses a non-empty directory it did not write (see --force)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="use a non-empty --out that no gate run wrote: remove only the files the gate writes "
        "(store/, history.jsonl, verdicts.*, hostile.*, junit.xml, allure-results/, impl-*.log); "
        "without it such a directory is refused (exit 2). An earlier gate run's --out is always reused: "
        "the gate removes what that run wrote (its manifest) and starts with an empty store/",
    )
    p.add_argument(
        "--alluredir",
        type=Path,
        default=Path(os.environ["FLOWGATE_GATE_ALLURE"]) if os.environ.get("FLOWGATE_GATE_ALLURE") else None,
        help="also put the run into this Allure results dir of the merged report (nox -s gate: "
        "reports/allure-results/gate): the checkers' results, the verdict table on the first page; "
        "with --self-test each mutant as one result under 'Mutation testing'",
    )
    p.add_argument("--topology", type=Path, default=None, help="topology YAML (default: the built-in one)")
    p.add_argument("--no-encryption", action="store_true", help="run the bus unencrypted (no KMS key)")
    p.add_argument("--endpoint-url", default=None, help="LocalStack URL (default AWS_ENDPOINT_URL or :4566)")
    p.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for the implementation (repeatable)",
    )
    p.add_argument(
        "--require",
        action="append",
        default=[],
        choices=sorted(KNOWN_CAPABILITIES),
        metavar="CAPABILITY",
        help="fail (anomaly capability-missing) unless the implementation declares this capability "
        f"on its ready line (repeatable; known: {', '.join(sorted(KNOWN_CAPABILITIES))})",
    )
    p.add_argument(
        "--include-equivalent",
        action="store_true",
        help="with --self-test: also run the mutants declared equivalent (reported, never scored)",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # usage errors first: they must not wait for (or start) LocalStack
    if args.self_test and args.impl is not None:
        print("flowgate gate: --self-test runs its own implementations; drop --impl", file=sys.stderr)
        return EXIT_USAGE
    if not args.self_test and args.impl is None:
        parser.error("--impl is required (or --self-test)")
    if args.impl is not None and not args.impl.strip():
        print("flowgate gate: --impl must name a command", file=sys.stderr)
        return EXIT_USAGE
    if any(not item.partition("=")[1] for item in args.env):
        bad = next(item for item in args.env if not item.partition("=")[1])
        print(f"flowgate gate: --env needs KEY=VALUE, got {bad!r}", file=sys.stderr)
        return EXIT_USAGE
    if args.backend != "localstack" or args.endpoint_url:
        return _main(parser, args)
    # like nox -s integration: reuse AWS_ENDPOINT_URL / a running LocalStack, else start one
    # (host mode) for this run and stop it afterwards
    from flowgate.harness.launcher import LauncherError, localstack

    try:
        with localstack() as endpoint:
            args.endpoint_url = endpoint.url
            os.environ.setdefault("AWS_ENDPOINT_URL", endpoint.url)  # the self-test's runs and their workers
            return _main(parser, args)
    except LauncherError as exc:
        print(f"flowgate gate: {exc}", file=sys.stderr)
        return EXIT_INFRA


def _main(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    if args.self_test:
        if args.impl is not None:
            print("flowgate gate: --self-test runs its own implementations; drop --impl", file=sys.stderr)
            return EXIT_USAGE
        try:
            return self_test(
                profile=args.profile or "standard",
                seed=1 if args.seed is None else args.seed,
                out_dir=args.out or Path("reports/gate-self-test"),
                include_equivalent=args.include_equivalent,
                alluredir=args.alluredir,
            )
        except GateError as exc:
            print(f"flowgate gate: {exc}", file=sys.stderr)
            return EXIT_INFRA
    if args.impl is None:
        parser.error("--impl is required (or --self-test)")
    extra = {}
    for item in args.env:
        key, sep, value = item.partition("=")
        if not sep:
            print(f"flowgate gate: --env needs KEY=VALUE, got {item!r}", file=sys.stderr)
            return EXIT_USAGE
        extra[key] = value
    try:
        result = run_gate(
            args.impl,
            profile=args.profile or "smoke",
            backend=args.backend,
            seed=args.seed or 0,
            instances=args.instances,
            out_dir=args.out or Path("reports/gate"),
            topology=args.topology,
            encrypted=not args.no_encryption,
            endpoint_url=args.endpoint_url,
            extra_env=extra,
            require=frozenset(args.require),
            force=args.force,
        )
    except ValueError as exc:
        print(f"flowgate gate: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except GateError as exc:
        print(f"flowgate gate: {exc}", file=sys.stderr)
        return EXIT_INFRA
    print(result.table)
    if args.alluredir is not None:
        report_gate_run(args.alluredir, result, name=args.impl, profile=args.profile or "smoke")
    print(f"history: {result.history_path}\njunit: {result.junit_path}\nallure: {result.allure_dir}")
    print("GATE PASSED" if result.passed else "GATE FAILED")
    return result.exit_code


# ---- self-test --------------------------------------------------------------------------------
def ensure_node_worker() -> None:
    """``npm ci`` in the example worker when its dependencies are not installed."""
    if shutil.which("node") is None:
        raise GateError("node (>= 20) is required for the self-test (the Node example worker)")
    if not (NODE_DIR / "node_modules" / "@aws-sdk" / "client-sqs").exists():
        print("gate self-test: npm ci in docs/examples/node-worker ...", flush=True)
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, check=True, timeout=600)


def _row(name: str, expected: str, verdict: str, kinds: Sequence[str], seconds: float) -> tuple[str, ...]:
    return (name, expected, verdict, ", ".join(kinds) or "-", f"{seconds:.0f}")


def render(rows: Sequence[tuple[str, ...]]) -> str:
    head = ("implementation", "expected", "verdict", "anomalies", "s")
    cells = [head, *rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def report_gate_run(alluredir: Path, result: GateResult, *, name: str, profile: str) -> None:
    """A gate run in the merged report: its checker results copied into ``alluredir``, its verdict
    on the first page (headline) and its verdict table as a run-level attachment."""
    from flowgate.harness.report import attach_to_run, write_headline

    shutil.copytree(result.allure_dir, alluredir, dirs_exist_ok=True)
    ok = sum(v.valid for v in result.verdicts)
    write_headline(
        alluredir,
        "gate",
        {f"Gate {profile}": f"{'PASS' if result.passed else 'FAIL'} · {ok}/{len(result.verdicts)} checkers"},
    )
    attach_to_run(alluredir, f"gate {profile}: {name}", result.table + "\n", mime="text/plain", ext="txt")


def _report_gate_mutant(alluredir: Path, outcome: Outcome, label: str, seed: int) -> None:
    """One gate mutant as one result under 'Mutation testing' (flowgate.harness.mutants.allure)."""
    from flowgate.harness.mutants.allure import write_mutant_result

    run_dir = alluredir / f".run-{label.replace(':', '-')}"
    if outcome.result is not None:
        shutil.copytree(outcome.result.allure_dir, run_dir, dirs_exist_ok=True)
    failing = [v.checker for v in outcome.result.verdicts if not v.valid] if outcome.result else []
    write_mutant_result(
        alluredir,
        mutant=label,
        suite="CI gate",
        status="killed" if outcome.killed else "SURVIVED",
        bug=outcome.mutant.bug,
        killed_by=failing if outcome.killed else [],
        anomalies=outcome.kinds,
        replay=(
            f"python -m flowgate.harness.gate.mutants --seed {seed}"
            f"{'' if outcome.mutant.family == 'node' else ' --reference'} {outcome.mutant.name}"
        ),
        output=outcome.result.table if outcome.result else "",
        source_dir=run_dir,
        seconds=outcome.seconds,
    )


def self_test(
    *, profile: str, seed: int, out_dir: Path, include_equivalent: bool = False, alluredir: Path | None = None
) -> int:
    started = time.monotonic()
    ensure_node_worker()
    rows: list[tuple[str, ...]] = []
    ok = True

    def progress(line: str) -> None:
        print(f"[{time.monotonic() - started:5.0f}s] {line}", flush=True)

    for name, impl in (("reference", REFERENCE_ADAPTER), ("node-worker", NODE_IMPL)):
        progress(f"gate: {name} ({profile}), must PASS ...")
        # its own subdirectory of the self-test's --out: only the gate's files there are removed
        result = run_gate(impl, profile=profile, seed=seed, out_dir=out_dir / name, force=True)
        kinds = sorted({k for v in result.verdicts for k in v.kinds()})
        verdict = "PASS" if result.passed else "FAIL"
        ok = ok and result.passed
        if alluredir is not None:
            report_gate_run(alluredir, result, name=name, profile=profile)
        progress(f"  {name}: {verdict} ({result.duration:.0f}s)")
        rows.append(
            _row(
                f"{name} [{profile}]",
                "PASS",
                verdict if result.passed else "FAIL (!)",
                kinds,
                result.duration,
            )
        )
    outcomes: list[Outcome] = []
    for mutant in (*reference_catalog(), *CATALOG):
        label = mutant.name if mutant.family == "node" else f"mutant:{mutant.name}"
        if mutant.equivalent and not include_equivalent:
            rows.append((label, "-", "equivalent (excluded from score)", mutant.equivalent[:60] + "...", "-"))
            outcomes.append(Outcome(mutant, False, ran=False))
            continue
        progress(f"gate: {label} ({mutant.profile}), must FAIL with {'|'.join(sorted(mutant.expect))} ...")
        outcome = run_mutant(
            mutant,
            seed=seed,
            out_dir=out_dir / label.replace(":", "-"),
            include_equivalent=include_equivalent,
        )
        outcomes.append(outcome)
        if alluredir is not None and not mutant.equivalent:
            _report_gate_mutant(alluredir, outcome, label, seed)
        progress(f"  {label}: {outcome.verdict} ({outcome.seconds:.0f}s) {', '.join(outcome.kinds) or '-'}")
        if mutant.equivalent:
            verdict = outcome.verdict
        else:
            verdict = "FAIL (killed)" if outcome.killed else "SURVIVED (!)"
        rows.append(
            _row(
                f"{label} [{mutant.profile}]",
                "-" if mutant.equivalent else "FAIL",
                verdict,
                outcome.kinds,
                outcome.seconds,
            )
        )
    killed, total = score(outcomes)
    equivalent = len(outcomes) - total
    table = render(rows)
    elapsed = time.monotonic() - started
    summary = (
        f"mutation score: {killed}/{total} = killed / (all {len(outcomes)} mutants - {equivalent} equivalent); "
        f"wall time {elapsed:.0f}s"
    )
    print(table)
    print(summary)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "self-test.txt").write_text(table + "\n" + summary + "\n", encoding="utf-8")
    passed = ok and killed == total
    if alluredir is not None:
        from flowgate.harness.report import attach_to_run, write_headline

        write_headline(
            alluredir, "gate", {"Gate self-test": f"{'PASS' if passed else 'FAIL'} · {killed}/{total} killed"}
        )
        attach_to_run(
            alluredir, "gate self-test verdicts", table + "\n" + summary + "\n", mime="text/plain", ext="txt"
        )
    print("GATE SELF-TEST PASSED" if passed else "GATE SELF-TEST FAILED")
    return EXIT_PASS if passed else EXIT_ANOMALY


if __name__ == "__main__":
    sys.exit(main())
