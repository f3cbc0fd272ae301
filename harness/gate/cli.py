"""``flowgate gate`` / ``python -m harness.gate``: judge an implementation of contract v1.

Exit codes: 0 every check passed; 1 at least one anomaly; 2 usage error; 3 the gate could not
run (backend unreachable, provisioning failed).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from harness.gate.driver import EXIT_INFRA, EXIT_USAGE, GateError, run_gate
from harness.gate.workload import PROFILES


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="flowgate gate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--impl", required=True, help='the command that starts one instance, e.g. "node worker.js"')
    p.add_argument("--profile", choices=sorted(PROFILES), default="smoke")
    p.add_argument("--backend", choices=["localstack", "aws"], default="localstack")
    p.add_argument("--seed", type=int, default=0, help="reproduces the workload and fault schedule")
    p.add_argument("--instances", type=int, default=None, help="instances to run (default: the profile's)")
    p.add_argument("--out", type=Path, default=Path("reports/gate"), help="history, junit.xml, allure-results")
    p.add_argument("--topology", type=Path, default=None, help="topology YAML (default: the built-in one)")
    p.add_argument("--no-encryption", action="store_true", help="run the bus unencrypted (no KMS key)")
    p.add_argument("--endpoint-url", default=None, help="LocalStack URL (default AWS_ENDPOINT_URL or :4566)")
    p.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                   help="extra environment for the implementation (repeatable)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    extra = {}
    for item in args.env:
        key, sep, value = item.partition("=")
        if not sep:
            print(f"flowgate gate: --env needs KEY=VALUE, got {item!r}", file=sys.stderr)
            return EXIT_USAGE
        extra[key] = value
    try:
        result = run_gate(args.impl, profile=args.profile, backend=args.backend, seed=args.seed,
                          instances=args.instances, out_dir=args.out, topology=args.topology,
                          encrypted=not args.no_encryption, endpoint_url=args.endpoint_url, extra_env=extra)
    except ValueError as exc:
        print(f"flowgate gate: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except GateError as exc:
        print(f"flowgate gate: {exc}", file=sys.stderr)
        return EXIT_INFRA
    print(result.table)
    print(f"history: {result.history_path}\njunit: {result.junit_path}\nallure: {result.allure_dir}")
    print("GATE PASSED" if result.passed else "GATE FAILED")
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main())
