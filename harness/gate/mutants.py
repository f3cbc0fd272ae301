"""Mutants through the gate: implementations that must FAIL, each with the anomaly kinds that
count as killing it.

* the broken Node variants (``FLOWGATE_BROKEN``), and
* the shared catalog of reference mutants (``harness/mutants``, activated in the reference worker
  with ``FLOWGATE_MUTANT`` through the contract adapter), each with the profile that exposes it
  from outside, or -- for the few whose bug cannot be seen in what an implementation publishes,
  acknowledges and dead-letters -- the reason it is *not observable through the gate*
  (they are killed by the property suites, ``flowgate mutants``)::

    python -m harness.gate.mutants --profile smoke --seed 1       # the Node variants
    python -m harness.gate.mutants --reference                     # the reference catalog, own profiles
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness.gate.driver import GateResult, run_gate

ROOT = Path(__file__).resolve().parents[2]
NODE_DIR = ROOT / "docs" / "examples" / "node-worker"
NODE_WORKER = NODE_DIR / "worker.js"
NODE_IMPL = f"node {NODE_WORKER}"
REFERENCE_ADAPTER = f"{sys.executable} -m harness.gate.adapters.reference_worker"


@dataclass(frozen=True, slots=True)
class Mutant:
    name: str
    impl: str
    env: dict[str, str]
    bug: str
    expect: frozenset[str]  # anomaly kinds of which at least one must be reported
    profile: str = "smoke"
    unobservable: str = ""  # non-empty: not run through the gate, for this reason
    family: str = "node"


def _node(name: str, bug: str, expect: set[str], profile: str = "smoke") -> Mutant:
    return Mutant(f"node:{name}", NODE_IMPL, {"FLOWGATE_BROKEN": name}, bug, frozenset(expect), profile)


CATALOG: tuple[Mutant, ...] = (
    _node(
        "skip-dedup",
        "no idempotency check; isNew re-creates the order (SourceFlow v2 shape)",
        {"lost", "skip", "duplicated", "duplicate-effect"},
    ),
    _node("drop-poison", "poison deleted instead of dead-lettered", {"poison-not-dead-lettered"}),
    _node(
        "random-event-id",
        "event ids random instead of uuid5(command id)",
        {"event-id-not-derived", "duplicated"},
    ),
    _node(
        "plaintext-events",
        "events published unencrypted while a KMS key is configured",
        {"unencrypted-wire", "plaintext-on-wire"},
    ),
    _node("ignore-sigterm", "SIGTERM ignored (no graceful stop)", {"sigterm-timeout"}),
)

#: How the gate sees each reference mutant: (profile, anomaly kinds that kill it, memory store?).
#: The storage mutants patch only the in-memory store, so they run with ``FLOWGATE_IDEMPOTENCY_URL=memory:``.
REFERENCE_GATE: dict[str, tuple[str, frozenset[str], bool]] = {
    # a burst (all commands of an order in one SendMessageBatch) lands in one receive; handled backwards,
    # the later commands fail as business errors (lost) or publish out of order
    "fifo-parallel-group": ("smoke", frozenset({"nonmonotonic", "skip", "lost"}), False),
    # the slow-kill fault SIGKILLs an instance in the middle of a (slow) handler: the message it already
    # deleted is never redelivered
    "delete-before-handle": ("standard", frozenset({"lost"}), False),
    # no context/AAD binding: the gate's commands (bound to their message) do not open under the mutant's
    # empty context (valid commands dead-lettered), and its events do not open for a bound consumer
    "no-aad": (
        "smoke",
        frozenset({"integrity-breach", "valid-dead-lettered", "undecryptable-event", "lost"}),
        False,
    ),
    # the gate's queue has a RedrivePolicy (contract section 6: a backstop); a listener that never
    # dead-letters leaves poison to it, which moves it without a reason
    "no-redrive": ("smoke", frozenset({"poison-not-dead-lettered", "dead-letter-without-reason"}), False),
    "no-poison-dlq": ("smoke", frozenset({"poison-not-dead-lettered"}), False),
    "plaintext-on-encrypted-bus": (
        "smoke",
        frozenset({"unencrypted-wire", "plaintext-on-wire", "valid-dead-lettered", "lost"}),
        False,
    ),
    "drops-correlation-id": ("smoke", frozenset({"correlation-not-propagated"}), False),
    "drops-causation-id": ("smoke", frozenset({"lost", "duplicate-effect"}), False),
    "wire-format-drift": ("smoke", frozenset({"malformed-event", "lost"}), False),
    "drops-correlation-attribute": (
        "smoke",
        frozenset({"missing-attribute", "correlation-not-propagated"}),
        False,
    ),
}

#: Reference mutants whose bug does not change anything the gate can see, and why. Listed in
#: docs/contract.md section 10; the property suites (``flowgate mutants``) kill them.
NOT_OBSERVABLE: dict[str, str] = {
    "no-idempotency": (
        "every re-handled duplicate hits the order state machine (PlaceOrder on an existing order, any "
        "command after a later one) and is a business failure: no event, acknowledged, recorded only in "
        "the reference's internal business dead-letter store; the re-publish a correct consumer makes is "
        "dropped by the FIFO topic/probe deduplication. Nothing published, acknowledged or dead-lettered differs"
    ),
    "idempotency-on-message-id": (
        "a redelivery keeps its SQS MessageId (deduplicated as before); a producer resend gets a new one and "
        "is re-handled, which the order state machine turns into an invisible business failure (as no-idempotency)"
    ),
    "check-then-mark": (
        "needs two concurrent handlings of one message with a shared store; the mutant patches only the "
        "in-memory store (one per process) and a reference process never handles a message twice at once "
        "(it finishes a receive batch before the next receive)"
    ),
    "unfenced-commit": "as check-then-mark: the race it opens needs two processes sharing the patched in-memory store",
    "replay-persists": "replay is not exercised by contract v1 (section 7): the gate never triggers a replay",
    "sigterm-abandons-batch": (
        "measured on standard (seed 1): survives -- the abandoned messages are not deleted, so they come back "
        "after the visibility timeout and another instance handles them; nothing is lost and the exit code is 0"
    ),
    "poll-loop-dies-on-error": (
        "measured on standard (seed 1): survives -- the gate injects no SQS/KMS transport errors (LocalStack is "
        "shared and cannot be taken down per run), so the loop never meets an error"
    ),
    "no-heartbeat": (
        "measured on standard (seed 1): survives -- a slow handler's message is redelivered and handled again "
        "elsewhere, but the fenced claim keeps one effect and event ids are deterministic; the slow-handler fault "
        "is too short for the redeliveries to reach maxReceiveCount"
    ),
    "unconditional-row-write": (
        "the entity row's version check is the second line behind the fenced idempotency claim, which this "
        "mutant leaves intact, and the gate runs no projections (views); two commits of one entity never race "
        "in a gate run (reasoned, not measured)"
    ),
}


def reference_catalog() -> tuple[Mutant, ...]:
    """The shared catalog (``harness.mutants.catalog.MUTANTS``) as gate mutants of the reference worker."""
    from harness.mutants.catalog import MUTANTS

    out = []
    for m in MUTANTS.values():
        profile, expect, memory = REFERENCE_GATE.get(m.name, ("smoke", frozenset(m.expected), False))
        env = {"FLOWGATE_MUTANT": m.name}
        if memory:
            env["FLOWGATE_IDEMPOTENCY_URL"] = "memory:"
        unobservable = NOT_OBSERVABLE.get(m.name, "")
        if not unobservable and m.name not in REFERENCE_GATE:
            expect = frozenset()  # new in the catalog, not declared here yet: run on smoke, any anomaly kills
        out.append(Mutant(m.name, REFERENCE_ADAPTER, env, m.bug, expect, profile, unobservable, "reference"))
    return tuple(out)


@dataclass(slots=True)
class Outcome:
    mutant: Mutant
    killed: bool
    kinds: list[str] = field(default_factory=list)
    seconds: float = 0.0
    result: GateResult | None = None

    @property
    def verdict(self) -> str:
        if self.mutant.unobservable:
            return "not observable"
        return "killed" if self.killed else "SURVIVED"


def run_mutant(
    mutant: Mutant, *, seed: int, out_dir: Path, encrypted: bool = True, profile: str | None = None
) -> Outcome:
    if mutant.unobservable:
        return Outcome(mutant, False)
    started = time.monotonic()
    result = run_gate(
        mutant.impl,
        profile=profile or mutant.profile,
        seed=seed,
        out_dir=out_dir,
        extra_env=mutant.env,
        encrypted=encrypted,
    )
    kinds = sorted({kind for v in result.verdicts for kind in v.kinds()})
    killed = not result.passed and (not mutant.expect or bool(set(kinds) & mutant.expect))
    return Outcome(mutant, killed, kinds, time.monotonic() - started, result)


def run_mutants(
    *,
    seed: int,
    out_dir: Path,
    names: Sequence[str] | None = None,
    reference: bool = False,
    encrypted: bool = True,
    profile: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[Outcome]:
    rows = []
    for mutant in reference_catalog() if reference else CATALOG:
        if names and mutant.name not in names and mutant.name.removeprefix("node:") not in names:
            continue
        if progress and not mutant.unobservable:
            progress(f"gate: mutant {mutant.name} ({profile or mutant.profile}) ...")
        rows.append(
            run_mutant(
                mutant,
                seed=seed,
                out_dir=out_dir / mutant.name.replace(":", "-"),
                encrypted=encrypted,
                profile=profile,
            )
        )
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.gate.mutants")
    parser.add_argument("--profile", default=None, help="override every mutant's own profile")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("reports/gate-mutants"))
    parser.add_argument(
        "--reference",
        action="store_true",
        help="the shared catalog (harness/mutants) on the reference worker instead of the Node variants",
    )
    parser.add_argument("--no-encryption", action="store_true")
    parser.add_argument("names", nargs="*")
    args = parser.parse_args(argv)
    started = time.monotonic()
    rows = run_mutants(
        seed=args.seed,
        out_dir=args.out,
        names=args.names,
        reference=args.reference,
        encrypted=not args.no_encryption,
        profile=args.profile,
        progress=lambda line: print(line, flush=True),
    )
    width = max(len(o.mutant.name) for o in rows) if rows else 10
    print(f"{'mutant':<{width}}  {'verdict':<14}  anomalies reported")
    for o in rows:
        print(f"{o.mutant.name:<{width}}  {o.verdict:<14}  {', '.join(o.kinds) or '-'}")
    judged = [o for o in rows if not o.mutant.unobservable]
    score = sum(1 for o in judged if o.killed)
    print(f"mutation score {score}/{len(judged)} ({time.monotonic() - started:.0f}s)")
    return 0 if judged and score == len(judged) else 1


if __name__ == "__main__":
    sys.exit(main())
