"""The ``flowgate`` command line.

Subcommands import their machinery lazily, so ``flowgate --help`` and ``flowgate localstack``
work in a minimal install and a missing optional piece gives a clear message instead of a
traceback.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any


def _call(module: str, function: str, *args: Any, **kwargs: Any) -> Any:
    try:
        target: Callable[..., Any] = getattr(importlib.import_module(module), function)
    except (ImportError, AttributeError) as exc:
        raise SystemExit(f"flowgate: {module}.{function} is not available in this install ({exc})") from exc
    return target(*args, **kwargs)


def _localstack(args: argparse.Namespace) -> int:
    from flowgate.harness import launcher

    if args.action == "start":
        endpoint = launcher.ensure_localstack(mode=args.mode)
        print(
            json.dumps(
                {
                    "endpoint": endpoint.url,
                    "source": endpoint.source,
                    "pid": endpoint.pid,
                    "version": endpoint.version,
                    "started_here": endpoint.started_here,
                }
            )
        )
        if not endpoint.started_here:
            print(f"LocalStack already answering at {endpoint.url}; nothing started.", file=sys.stderr)
        return 0
    if args.action == "stop":
        stopped = launcher.stop()
        print("stopped" if stopped else "nothing to stop: no LocalStack started by flowgate is recorded")
        return 0
    if args.action == "status":
        state = launcher.status()
        print(json.dumps(state, indent=2))
        return 0 if state["ready"] else 1
    if args.action == "logs":
        try:
            lines = launcher.LOG_FILE.read_text(errors="replace").splitlines()
        except OSError:
            print(f"no log at {launcher.LOG_FILE}", file=sys.stderr)
            return 1
        print("\n".join(lines[-args.lines :]))
        return 0
    raise AssertionError(args.action)


def _worker(args: argparse.Namespace) -> int:
    return int(_call("flowgate.reference.worker", "main", args.rest) or 0)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flowgate",
        description="Reference AWS command/event bus and the harness that judges it.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    ls = sub.add_parser(
        "localstack", help="start|stop|status|logs of host-mode LocalStack (no Docker needed)"
    )
    ls.add_argument("action", choices=["start", "stop", "status", "logs"])
    ls.add_argument(
        "--mode",
        choices=["host", "docker"],
        default=None,
        help="how to start LocalStack when none answers (default: host, or FLOWGATE_LOCALSTACK_MODE)",
    )
    ls.add_argument("--lines", type=int, default=50, help="lines of log to show (logs)")
    ls.set_defaults(run=_localstack)

    passthrough = {
        "worker": (
            "flowgate.reference.worker",
            "run reference bus listeners for a configuration until SIGTERM",
        ),
        "sim": (
            "flowgate.harness.simulation",
            "run one deterministic simulated workload with faults and judge it",
        ),
        "replay": (
            "flowgate.harness.simulation",
            "re-run a simulated run from its seed: flowgate replay SEED [options]",
        ),
        "gate": (
            "flowgate.harness.gate.cli",
            "judge an implementation of the bus (any language) under workload and faults",
        ),
        "mutants": (
            "flowgate.harness.mutants.cli",
            "run the property suites against every mutant and print the score",
        ),
        "report": ("flowgate.harness.report", "generate the Allure HTML report from reports/allure-results"),
        "bench": ("flowgate.harness.bench", "print simulator and pipeline speed figures"),
        "policies": (
            "flowgate.harness.policies",
            "print the least-privilege IAM policy of each role for a configuration",
        ),
        "hostile": (
            "flowgate.harness.hostile.cli",
            "the hostile-input catalog: flowgate hostile list | markdown [--write]",
        ),
    }
    for name, (module, help_text) in passthrough.items():
        p = sub.add_parser(name, help=help_text, add_help=False)
        target = "replay_main" if name == "replay" else "main"
        p.set_defaults(run=_worker if name == "worker" else _passthrough_target(module, target))
    return parser


def _passthrough_target(module: str, function: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        return int(_call(module, function, args.rest) or 0)

    return run


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    # passthrough subcommands own their options: everything argparse does not know goes to them
    args, rest = parser.parse_known_args(argv)
    if args.command == "localstack" and rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    args.rest = rest
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        from flowgate.harness.launcher import LauncherError

        if isinstance(exc, LauncherError):
            print(f"flowgate: {exc}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
