"""Mutants through the gate: implementations that must FAIL, each with the anomaly kinds that
count as killing it.

* the broken Node variants (``FLOWGATE_BROKEN``), and
* the shared catalog of reference mutants (``harness/mutants``, activated in the reference worker
  with ``FLOWGATE_MUTANT`` through the contract adapter), each with the profile that exposes it
  from outside, or -- for the few that are *equivalent* through the gate (the behaviour of the
  order entity the gate can observe is identical to the reference's) -- the reason
  (:data:`EQUIVALENT`; the property suites, ``flowgate mutants``, kill them)::

    python -m flowgate.harness.gate.mutants --profile smoke --seed 1       # the Node variants
    python -m flowgate.harness.gate.mutants --reference                     # the reference catalog, own profiles
    python -m flowgate.harness.gate.mutants --reference --include-equivalent unfenced-commit

Mutation score = killed / (all mutants - equivalent). An equivalent mutant is run only on request
(``--include-equivalent``) and then reported killed or survived as measured, never scored; a
mutant that was not run is never counted as killed.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from flowgate.harness.gate.driver import GateResult, run_gate
from flowgate.harness.gate.equivalent import EQUIVALENT

ROOT = Path(__file__).resolve().parents[2]
NODE_DIR = ROOT / "docs" / "examples" / "node-worker"
NODE_WORKER = NODE_DIR / "worker.js"
NODE_IMPL = f"node {NODE_WORKER}"
REFERENCE_ADAPTER = f"{sys.executable} -m flowgate.harness.gate.adapters.reference_worker"


@dataclass(frozen=True, slots=True)
class Mutant:
    name: str
    impl: str
    env: dict[str, str]
    bug: str
    expect: frozenset[str]  # anomaly kinds of which at least one must be reported
    profile: str = "smoke"
    equivalent: str = ""  # non-empty: equivalent through the gate (why); excluded from the score
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
    _node(
        "no-heartbeat",
        "visibility never extended while a handler runs",
        {"valid-dead-lettered", "dead-letter-without-reason"},
        "standard",
    ),
    # contract v1.2: the KMS outage phase (the run's key disabled for 10 x VT)
    _node(
        "kms-disabled-is-poison",
        "a disabled key (DisabledException etc.) read as a refusal: valid commands dead-lettered",
        {"valid-dead-lettered", "lost"},
        "standard",
    ),
    _node(
        "no-breaker",
        "keeps receiving through a dependency outage: receive counts pass the native redrive's headroom",
        {"valid-dead-lettered", "dead-letter-without-reason", "lost"},
        "standard",
    ),
    # contract v1.2: the catalog's id-reuse kind (an applied command's eventId with other content)
    _node(
        "id-reuse-is-duplicate",
        "an eventId known with other content acknowledged as a duplicate instead of IdempotencyConflict",
        {"hostile-not-dead-lettered", "poison-not-dead-lettered"},
    ),
    # contract v1.3: the late resends' re-published events reach the probe a second time
    _node(
        "unstable-dedup-id",
        "events published with a random MessageDeduplicationId instead of the event id",
        {"dedup-not-effective"},
    ),
    # contract v1.4: the KMS transport outage (the KMS endpoint cut, SQS working) and the precedence
    # of the decode checks on an encrypted bus
    _node(
        "kms-transport-is-poison",
        "KMS unreachable (connection refused/reset, timeout) read as a refusal: valid commands dead-lettered",
        {"valid-dead-lettered", "lost"},
        "standard",
    ),
    _node(
        "type-after-envelope",
        "the registered type judged only after the envelope: a re-labelled sealed message gets DecryptionError",
        {"hostile-wrong-reason"},
        "hostile",
    ),
    _node(
        "sealed-contradiction-is-decryption-error",
        "a sealed body that opened and contradicts its attributes dead-lettered as DecryptionError",
        {"hostile-wrong-reason"},
        "hostile",
    ),
    # contract v1.4: the system attributes a consumer must request, and the heartbeat's race with a release
    _node(
        "no-receive-count",
        "ApproximateReceiveCount not requested (every receive read as the first): poison is never forwarded",
        {"hostile-dead-letter-without-reason", "dead-letter-without-reason"},
    ),
    _node(
        "dead-letter-group-lost",
        "MessageGroupId not requested: dead letters forwarded in a fixed group instead of the source's",
        {"dead-letter-group-changed"},
    ),
    # the shutdown phase's queued commands (v1.4): messages waiting behind their group's head at SIGTERM
    _node(
        "no-release-on-sigterm",
        "on SIGTERM the messages received but not started (behind their group's head) are not released",
        {"sigterm-abandoned-messages"},
        "standard",
    ),
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
    # (the hostile mutants are judged by the catalog's per-kind hostile-not-dead-lettered -- neither
    # forwarded nor applied -- not by poison-not-dead-lettered, which a kind wrongly applied also shows)
    "no-redrive": ("smoke", frozenset({"hostile-not-dead-lettered", "dead-letter-without-reason"}), False),
    "no-poison-dlq": ("smoke", frozenset({"hostile-not-dead-lettered"}), False),
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
    # contract v1.1: a late PlaceOrder resend re-handled (no/ wrong idempotency key) is refused by the
    # domain and, after the retries, dead-lettered with DeadLetterReason=BusinessError
    "no-idempotency": ("smoke", frozenset({"valid-dead-lettered", "lost", "duplicate-effect"}), False),
    "idempotency-on-message-id": (
        "smoke",
        frozenset({"valid-dead-lettered", "lost", "duplicate-effect"}),
        False,
    ),
    # the replay mode appends the replayed commands to the store: the second replay run differs
    "replay-persists": ("smoke", frozenset({"replay-divergence", "replay-failed"}), False),
    # the shutdown phase SIGTERMs a busy instance; the mutant exits at once with messages in hand
    "sigterm-abandons-batch": ("standard", frozenset({"sigterm-abandoned-messages"}), False),
    # the transport outage ends the poll loops: the worker exits (crashed) or stops consuming (lost)
    "poll-loop-dies-on-error": ("standard", frozenset({"crashed", "lost"}), False),
    # the heartbeat phase: without ChangeMessageVisibility the slow message is redelivered every VT and
    # SQS's native redrive moves it, without a reason, to the phase queue's DLQ
    "no-heartbeat": ("standard", frozenset({"valid-dead-lettered", "dead-letter-without-reason"}), False),
    # contract v1.2: the KMS outage (key disabled for 10 x VT): a listener that keeps receiving passes the
    # queue's redrive headroom and SQS moves valid commands without a reason
    "no-breaker": (
        "standard",
        frozenset({"valid-dead-lettered", "dead-letter-without-reason", "lost"}),
        False,
    ),
    # the reference's bootstrapper adopts the gate's queues and rewrites their RedrivePolicy to the poison
    # threshold: the gate reads it back after the run
    "redrive-without-headroom": ("smoke", frozenset({"redrive-policy-changed"}), False),
    # contract v1.2 decode rules (the reference's decode-rule mutants): every applicable catalog kind
    "recursion-escapes-poll": (
        "hostile",
        frozenset(
            {
                "hostile-dead-letter-without-reason",
                "dead-letter-without-reason",
                "valid-dead-lettered",
                "lost",
            }
        ),
        False,
    ),
    "id-reuse-is-duplicate": ("hostile", frozenset({"hostile-not-dead-lettered"}), False),
    "event-on-command-queue-projected": (
        "hostile",
        frozenset({"hostile-not-dead-lettered", "hostile-wrong-reason"}),
        False,
    ),
    "unvalidated-group-id": (
        "hostile",
        frozenset({"hostile-not-dead-lettered", "hostile-wrong-reason"}),
        False,
    ),
    "poison-wrong-reason": ("hostile", frozenset({"hostile-wrong-reason"}), False),
    "strict-unknown-fields": (
        "hostile",
        frozenset({"hostile-dead-lettered", "valid-dead-lettered", "hostile-not-applied", "lost"}),
        False,
    ),
    # the catalog's strict-JSON kinds (duplicate_payload_key, depth_17...) take effect (the
    # reference applies no catalog kind it should refuse, so hostile-applied tells them apart)
    "duplicate-keys-accepted": ("hostile", frozenset({"hostile-applied"}), False),
    "no-json-depth-limit": ("hostile", frozenset({"hostile-applied", "hostile-wrong-reason"}), False),
    # envelope Version true / 1.0 (encrypted runs) and both type attributes: decrypted or decoded
    # and applied instead of dead-lettered
    "loose-envelope-version": ("hostile", frozenset({"hostile-applied", "hostile-not-dead-lettered"}), False),
    "command-type-wins": ("hostile", frozenset({"hostile-applied", "hostile-not-dead-lettered"}), False),
    # the KMS outage: a disabled key read as the message's fault
    "kms-disabled-is-poison": ("standard", frozenset({"valid-dead-lettered", "lost"}), False),
    # contract v1.3: events published with a random MessageDeduplicationId; the late PlaceOrder resends
    # (a duplicate re-publishes its events, seconds after the first publish) reach the probe twice
    "unstable-event-dedup-id": ("smoke", frozenset({"dedup-not-effective"}), False),
    # contract v1.3 reads: a late PlaceOrder resend (a recognised duplicate) appends the command to the
    # order's log again; the events are the recorded ones (same ids), so only a later read shows it
    "duplicate-reapplies-row": ("smoke", frozenset({"double-effect"}), False),
    # measured 2026-12-03 (v1.3, standard, seed 1): its claim is a plain look-up without the content
    # digest, so the catalog's reused-eventId kinds are applied instead of refused (IdempotencyConflict)
    "check-then-mark": (
        "standard",
        frozenset({"hostile-not-dead-lettered", "poison-not-dead-lettered"}),
        False,
    ),
    # contract v1.3: the hostile poison is forwarded with its reason, but the original stays in the
    # command queue (visibility 12 h): only the drain's look at what is left sees it
    "poison-parked": ("smoke", frozenset({"unresolved"}), False),
    # contract v1.4: the KMS transport outage cuts the KMS endpoint while SQS works; KMS unreachable read
    # as the message's fault dead-letters the outage's orders with DecryptionError
    "kms-transport-is-poison": ("standard", frozenset({"valid-dead-lettered", "lost"}), False),
    # contract v1.4 precedence on an encrypted bus: contradict_* (sealed bound to the attributes) and
    # contradict_name_sealed expect DecodeError, unknown_type_after_sealing expects UnknownMessageType
    "sealed-contradiction-is-decryption-error": ("hostile", frozenset({"hostile-wrong-reason"}), False),
    "type-checked-after-envelope": ("hostile", frozenset({"hostile-wrong-reason"}), False),
}


def reference_catalog() -> tuple[Mutant, ...]:
    """The shared catalog (``flowgate.harness.mutants.catalog.MUTANTS``) as gate mutants of the reference worker."""
    from flowgate.harness.mutants.catalog import MUTANTS

    out = []
    for m in MUTANTS.values():
        if m.subject != "reference":
            continue  # a mutant of the simulator: the gate runs real workers on LocalStack
        profile, expect, memory = REFERENCE_GATE.get(m.name, ("smoke", frozenset(m.expected), False))
        env = {"FLOWGATE_MUTANT": m.name}
        if memory:
            env["FLOWGATE_IDEMPOTENCY_URL"] = "memory:"
        equivalent = EQUIVALENT.get(m.name, "")
        if not equivalent and m.name not in REFERENCE_GATE:
            expect = frozenset()  # new in the catalog, not declared here yet: run on smoke, any anomaly kills
        out.append(Mutant(m.name, REFERENCE_ADAPTER, env, m.bug, expect, profile, equivalent, "reference"))
    return tuple(out)


@dataclass(slots=True)
class Outcome:
    """One mutant's result. ``ran`` is False for an equivalent mutant that was not run: it is then
    neither killed nor survived."""

    mutant: Mutant
    killed: bool
    kinds: list[str] = field(default_factory=list)
    seconds: float = 0.0
    result: GateResult | None = None
    ran: bool = True

    @property
    def scored(self) -> bool:
        """Part of the mutation score (every mutant that is not equivalent, run or not)."""
        return not self.mutant.equivalent

    @property
    def verdict(self) -> str:
        if not self.ran:
            return "equivalent (excluded from score)"
        verdict = "killed" if self.killed else ("survived" if self.mutant.equivalent else "SURVIVED")
        return f"{verdict} (equivalent, excluded from score)" if self.mutant.equivalent else verdict


def score(outcomes: Sequence[Outcome]) -> tuple[int, int]:
    """(killed, all mutants - equivalent): equivalent mutants never count, whether run or not."""
    scored = [o for o in outcomes if o.scored]
    return sum(1 for o in scored if o.killed and o.ran), len(scored)


def run_mutant(
    mutant: Mutant,
    *,
    seed: int,
    out_dir: Path,
    encrypted: bool = True,
    profile: str | None = None,
    include_equivalent: bool = False,
) -> Outcome:
    """Run ``mutant`` through the gate; killed = the gate failed with one of its expected kinds
    (any anomaly if it declares none). An equivalent mutant runs only with ``include_equivalent``."""
    if mutant.equivalent and not include_equivalent:
        return Outcome(mutant, False, ran=False)
    started = time.monotonic()
    result = run_gate(
        mutant.impl,
        profile=profile or mutant.profile,
        seed=seed,
        out_dir=out_dir,
        extra_env=mutant.env,
        encrypted=encrypted,
        # the runner's own subdirectory (named after the mutant): only the gate's files are removed
        force=True,
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
    include_equivalent: bool = False,
) -> list[Outcome]:
    rows = []
    for mutant in reference_catalog() if reference else CATALOG:
        if names and mutant.name not in names and mutant.name.removeprefix("node:") not in names:
            continue
        if progress and (include_equivalent or not mutant.equivalent):
            progress(f"gate: mutant {mutant.name} ({profile or mutant.profile}) ...")
        rows.append(
            run_mutant(
                mutant,
                seed=seed,
                out_dir=out_dir / mutant.name.replace(":", "-"),
                encrypted=encrypted,
                profile=profile,
                include_equivalent=include_equivalent,
            )
        )
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flowgate.harness.gate.mutants")
    parser.add_argument("--profile", default=None, help="override every mutant's own profile")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("reports/gate-mutants"))
    parser.add_argument(
        "--reference",
        action="store_true",
        help="the shared catalog (harness/mutants) on the reference worker instead of the Node variants",
    )
    parser.add_argument("--no-encryption", action="store_true")
    parser.add_argument(
        "--include-equivalent",
        action="store_true",
        help="also run the mutants declared equivalent (reported, never scored)",
    )
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
        include_equivalent=args.include_equivalent,
    )
    width = max(len(o.mutant.name) for o in rows) if rows else 10
    print(f"{'mutant':<{width}}  {'verdict':<14}  anomalies reported")
    for o in rows:
        print(f"{o.mutant.name:<{width}}  {o.verdict:<14}  {', '.join(o.kinds) or '-'}")
    killed, total = score(rows)
    equivalent = sum(1 for o in rows if not o.scored)
    print(
        f"mutation score {killed}/{total} (killed / (all {len(rows)} - {equivalent} equivalent); "
        f"{time.monotonic() - started:.0f}s)"
    )
    return 0 if total and killed == total else 1


if __name__ == "__main__":
    sys.exit(main())
