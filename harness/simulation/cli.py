"""``flowgate sim`` and ``flowgate replay``: the command line of the simulator."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

from flowgate.harness.checkers import render_table
from flowgate.harness.faults import parse_faults
from flowgate.harness.simulation.config import IDEMPOTENCY_MODES, SimConfig, SimResult
from flowgate.harness.simulation.schedule import run_simulation


def _parser(prog: str, *, seed_positional: bool) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="Deterministic simulation of the reference bus.")
    if seed_positional:
        p.add_argument("seed", type=int)
    else:
        p.add_argument("--seed", type=int, default=0)
    p.add_argument("--orders", type=int, default=20)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--producers", type=int, default=1)
    p.add_argument(
        "--bus-numbers",
        action="store_true",
        help="the producers' bus numbers the commands; each send goes to a random producer",
    )
    p.add_argument("--standard", action="store_true", help="standard command queue instead of FIFO")
    p.add_argument("--encryption", action="store_true")
    p.add_argument("--idempotency", choices=IDEMPOTENCY_MODES, default="shared")
    p.add_argument("--visibility-timeout", type=int, default=30)
    p.add_argument("--max-receive-count", type=int, default=3)
    p.add_argument(
        "--interleave",
        action="store_true",
        help="worker processes interleaved at every AWS/store call and handler step",
    )
    p.add_argument("--no-heartbeat", action="store_true", help="BusOptions.heartbeat=False")
    p.add_argument(
        "--reads",
        action="store_true",
        help="contract v1.3: GetOrder reads in every order's script, judged by read_state",
    )
    p.add_argument(
        "--saga-commands",
        action="store_true",
        help="D33: the order saga issues ReserveInventory, the fulfilment aggregate ConfirmOrder",
    )
    p.add_argument("--cancel-ratio", type=float, default=0.1)
    p.add_argument("--invalid-ratio", type=float, default=0.0)
    p.add_argument(
        "--faults",
        default="none",
        help="e.g. chaos, or crash=0.05,stall=0.02,poison=all,crash@mid_handler,outage=store+kms_disabled",
    )
    p.add_argument(
        "--mutant", default=None, help="run a mutant of the reference (see flowgate mutants --list)"
    )
    p.add_argument("--history", default=None, help="write the history (JSON lines) here")
    p.add_argument("--timeline", default=None, help="write the SVG timeline here")
    return p


def _config(args: argparse.Namespace) -> SimConfig:
    return SimConfig(
        seed=args.seed,
        orders=args.orders,
        workers=args.workers,
        producers=args.producers,
        bus_numbers=args.bus_numbers,
        fifo=not args.standard,
        encryption=args.encryption,
        idempotency=args.idempotency,
        visibility_timeout=args.visibility_timeout,
        max_receive_count=args.max_receive_count,
        cancel_ratio=args.cancel_ratio,
        invalid_ratio=args.invalid_ratio,
        faults=parse_faults(args.faults),
        interleave=args.interleave,
        heartbeat=not args.no_heartbeat,
        reads=args.reads,
        saga_commands=args.saga_commands,
    )


def _report(result: SimResult, args: argparse.Namespace, *, always_write: bool) -> int:
    print("stats: " + json.dumps(result.stats, sort_keys=True))
    print(render_table(result.verdicts))
    history_path = args.history or (f"reports/sim/history-{result.seed}.jsonl" if always_write else None)
    if history_path:
        print(f"history: {result.history.dump(history_path)}")
    timeline_path = args.timeline or (f"reports/sim/timeline-{result.seed}.svg" if always_write else None)
    if timeline_path:
        from flowgate.harness.timeline import render_svg

        anomalies = [a for v in result.verdicts for a in v.anomalies]
        path = Path(timeline_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            render_svg(result.history, anomalies=anomalies, title=f"flowgate sim seed {result.seed}"),
            encoding="utf-8",
        )
        print(f"timeline: {path}")
    if not result.valid:
        print(f"INVALID: replay with: {result.replay_command()}")
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``flowgate sim --seed N --orders N --workers N [--faults ...] [--mutant NAME] [--history PATH]``."""
    args = _parser("flowgate sim", seed_positional=False).parse_args(argv)
    return _report(run_simulation(_config(args), mutant=args.mutant), args, always_write=False)


def replay_main(argv: Sequence[str] | None = None) -> int:
    """``flowgate replay SEED [same options]``: re-run exactly; writes the history and the SVG timeline."""
    args = _parser("flowgate replay", seed_positional=True).parse_args(argv)
    return _report(run_simulation(_config(args), mutant=args.mutant), args, always_write=True)


__all__ = ["main", "replay_main"]
