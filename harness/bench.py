"""``flowgate bench``: how fast the deterministic simulator is (the Locust capacity part is separate).

For a 10,000-order run with chaos on and one without it (``--interleave``: worker processes
interleaved at every AWS/store call and handler step, ``docs/simulator.md``) prints simulated
orders per wall second, the virtual-seconds / wall-seconds ratio, ops in the history and checker time.
``--reads`` runs both again with contract v1.3 reads on (``SimConfig.reads``: two ``GetOrder`` per
order, judged by ``read_state``), so reads off and on are measured in the same invocation.
:func:`simulator_bench` returns the same figures as dicts; the capacity/load part (LocalStack +
Locust, another module) plugs in through ``load_hook`` or runs after ``main`` unless
``--skip-load`` is given.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from typing import Any

from flowgate.harness.faults import CHAOS, FaultPlan
from flowgate.harness.simulation import SimConfig, run_simulation

#: Set by the lead's CLI wiring to run the Locust capacity benchmark after the simulator figures.
load_hook: Callable[[Sequence[str]], int] | None = None


def simulator_bench(
    orders: int = 10_000,
    *,
    seed: int = 1,
    workers: int = 4,
    chaos: bool = True,
    encryption: bool = False,
    interleave: bool = False,
    reads: bool = False,
) -> dict[str, Any]:
    plan = CHAOS if chaos else FaultPlan()
    result = run_simulation(
        SimConfig(
            seed=seed,
            orders=orders,
            workers=workers,
            faults=plan,
            encryption=encryption,
            wire_samples=40,
            interleave=interleave,
            reads=reads,
        )
    )
    s = result.stats
    wall = max(s["wall_seconds"], 1e-9)
    return {
        "orders": orders,
        "chaos": chaos,
        "encryption": encryption,
        "valid": result.valid,
        "anomalies": result.anomaly_kinds(),
        "commands": s["commands_sent"],
        "ops": s["ops"],
        "wall_seconds": s["wall_seconds"],
        "virtual_seconds": s["virtual_seconds"],
        "orders_per_wall_second": round(orders / wall, 1),
        "virtual_per_wall": round(s["virtual_seconds"] / wall, 1),
        "checker_seconds": s["checker_seconds"],
        "faults": s["faults"],
        "interleave": interleave,
        "reads": reads,
        "reads_judged": s.get("reads", 0),
        "task_switches": s.get("task_switches", 0),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="flowgate bench", description=__doc__.split("\n")[0])
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--encryption", action="store_true")
    parser.add_argument("--interleave", action="store_true", help="interleaved worker processes")
    parser.add_argument(
        "--skip-load", action="store_true", help="simulator figures only (no Locust capacity run)"
    )
    parser.add_argument(
        "--reads", action="store_true", help="also measure both runs with GetOrder reads on (SimConfig.reads)"
    )
    parser.add_argument("--json", action="store_true", help="print JSON lines instead of text")
    args, rest = parser.parse_known_args(argv)
    rc = 0
    for reads, chaos in [(r, c) for r in ((False, True) if args.reads else (False,)) for c in (True, False)]:
        r = simulator_bench(
            args.orders,
            seed=args.seed,
            workers=args.workers,
            chaos=chaos,
            encryption=args.encryption,
            interleave=args.interleave,
            reads=reads,
        )
        if args.json:
            print(json.dumps(r, sort_keys=True))
        else:
            print(
                f"simulator {'chaos' if chaos else 'clean'}{' interleaved' if args.interleave else ''}"
                f"{' reads' if reads else ''}: "
                f"{r['orders']} orders, {r['commands']} commands, "
                f"{r['ops']} ops in {r['wall_seconds']:.2f}s wall = {r['orders_per_wall_second']:.0f} orders/s; "
                f"virtual {r['virtual_seconds']:.0f}s ({r['virtual_per_wall']:.0f}x wall); "
                f"checkers {r['checker_seconds']:.2f}s; "
                + (f"{r['reads_judged']} reads judged; " if reads else "")
                + f"valid={r['valid']} {r['anomalies'] or ''}"
            )
        rc |= 0 if r["valid"] else 1
    if not args.skip_load and load_hook is not None:
        rc |= load_hook(rest)
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
