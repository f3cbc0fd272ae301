"""Mutants through the gate: implementations that must FAIL, each with the anomaly kinds that
count as killing it.

* the broken Node variants (``FLOWGATE_BROKEN``), and
* the shared catalog of reference mutants (``harness/mutants``, activated in the reference worker
  with ``FLOWGATE_MUTANT`` through the contract adapter), each with the profile that exposes it
  from outside, or -- for the few that are *equivalent* through the gate (the behaviour of the
  order entity the gate can observe is identical to the reference's) -- the reason
  (:data:`EQUIVALENT`; the property suites, ``flowgate mutants``, kill them)::

    python -m harness.gate.mutants --profile smoke --seed 1       # the Node variants
    python -m harness.gate.mutants --reference                     # the reference catalog, own profiles
    python -m harness.gate.mutants --reference --include-equivalent unfenced-commit

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

_LAYERED = (
    "the reference guards each order entity with several independent defences -- the fenced "
    "idempotency claim (compare-and-set on the claim token), the pre-commit visibility heartbeat that "
    "stops a superseded handler before it commits, and one atomic commit refused when the command store "
    "already holds that (entity, seq) or the entity row changed since the decision -- and this mutant "
    "removes only {}; the remaining defences still refuse a second commit of one command, so every "
    "externally observable behaviour of the order entity (events published, v1.3 reads of its state and "
    "command log, acknowledgements, dead letters, replay) is the reference's: measured with the reads on "
    "2026-12-03 (standard, seed 1: no double-effect, no read-mismatch). Its double effects need views "
    "(shared rows projected from events delivered twice), which the gate contract has no read of; the "
    "property suites and scenarios (flowgate mutants) kill it"
)

#: Reference mutants that are equivalent through the gate, and why. Listed in docs/contract.md
#: section 10; run only with ``--include-equivalent``, and never part of the mutation score.
_IN_PROCESS = (
    "{}: telemetry and the health check are in-process observations no gate run collects, and every "
    "message, attribute the contract requires and event is the reference's; properties/test_telemetry.py "
    "(the OpenTelemetry SDK's in-memory exporters on the simulator) kills it"
)
_CLEANUP = (
    "the idempotency cleanup {}: a worker sweeps once an hour, the first sweep an hour after it "
    "starts, so no sweep happens within a gate run of minutes (and nothing it completes would expire: "
    "TTL >= 2 x retention); properties/test_idempotency_cleanup.py kills it"
)
EQUIVALENT: dict[str, str] = {
    "unfenced-commit": _LAYERED.format("the claim's fencing token at commit"),
    "unconditional-row-write": _LAYERED.format("the entity/view row version check"),
    "ttl-shorter-than-retention": (
        "idempotency records expire after 24 h instead of outliving the queue's and the DLQ's retention "
        "(14 + 14 days): only a copy of a command arriving more than 24 h after the first is handled "
        "differently, and a gate run lasts minutes (SQS's 5-minute deduplication window and the probe's "
        "view end long before); properties/test_hostile_decode.py kills it on the simulator's clock"
    ),
    # measured surviving the standard profile on 2026-12-03 (contract section 10), then declared:
    "store-error-escapes-poll": (
        "a failed ReceiveMessage escapes poll_once instead of opening the breaker: the worker's run loop "
        "catches it and polls again after 1 s, and a receive that fails consumes no receive count, so "
        "during the gate's transport outage the messages, their receive counts and the events are the "
        "reference's; the simulator's outage checker (poll-escaped) kills it"
    ),
    # contract v1.3 section 7: the gate never replays a DLQ (an operator's tool, run after a fix)
    "dead-letter-completes-key": (
        "a business dead letter completes the command's idempotency key, so a DLQ replay after the fix is "
        "acknowledged as a duplicate: the gate sends only valid commands and never replays a DLQ, so no "
        "gate run dead-letters a command the domain refuses and then replays it; "
        "properties/test_dlq_replay.py and scenarios/test_dead_letters.py kill it"
    ),
    "replay-reversed": (
        "the DLQ replay tool (reference.dlq) sends each batch back last first: the gate never runs it; "
        "properties/test_dlq_replay.py and scenarios/test_dead_letters.py kill it"
    ),
    "heartbeat-dies-on-error": (
        "the heartbeat thread ends on the first failing beat: only a message held by a slow handler "
        "while its endpoint is cut has a failing beat, and the gate's heartbeat phase instance is not "
        "behind the outage proxy, so no beat fails in any gate run; "
        "properties/test_outages.py::test_heartbeat_survives_a_failing_beat kills it"
    ),
    # contract v1.3, found by the simulator's interleaved processes; measured surviving standard (seed 1,
    # 2026-12-03, 238 s for both), then declared:
    "process-local-entity-lock": (
        "the idempotency claim and its fence live in the in-memory store client of one process: the gate's "
        "instances are separate OS processes, which cannot share an in-memory store, so an instance either "
        "has its own in-memory store as its only client (smoke: one instance, the reference's behaviour) or "
        "the shared SQLite store the patch does not reach (standard, chaos); "
        "properties/test_concurrency.py (processes interleaved over one store's data) kills it"
    ),
    "heartbeat-holds-given-up": (
        "the heartbeat keeps extending messages the poll gave up until the whole poll ends: observable only "
        "when a FIFO head is given up (claim busy elsewhere, predecessor missing) in a poll that also holds "
        "another group's handler past the visibility timeout while the head's successor is in flight "
        "elsewhere; the gate's slow-handler windows hold one message per poll, so no gate run reaches that "
        "interleaving; properties/test_concurrency.py and "
        "tests/reference/test_listener_outages.py (the production heartbeat thread) kill it"
    ),
    # decision D35 (load-adaptive lingers): timing faults of the batching sender and the run loop
    "adaptive-linger-ignored": (
        "every partial batch and receive waits its full linger (the fixed lingers before D35): only "
        "latency changes, by at most the lingers per hop, and the gate judges messages, events and "
        "reads, never latency; properties/test_linger.py kills it"
    ),
    "linger-never-flushes-partial": (
        "after a full batch a partial batch of the event publisher waits until it fills or the worker "
        "stops: a gate run sees those events late (at the worker's stop at the latest), and whether a "
        "profile's wait for events outlasts that was not measured, so it is not scored through the gate; "
        "properties/test_linger.py kills it on a virtual clock"
    ),
    # measured surviving standard (seed 1, 2026-12-04, 116 s), then declared:
    "committed-claim-kept": (
        "a committed command keeps its claim's token, so the heartbeat's lease extend fails on the "
        "COMPLETED record and drops the message while it waits for its poll's publish and delete: "
        "observable only when a finished message waits in hand for longer than the visibility timeout "
        "behind another group's slow handler of the same poll; the gate's slow-handler windows hold one "
        "message per poll, so no gate run reaches it; properties/test_outages.py (the finished command "
        "beaten past three half visibility timeouts) and the LocalStack visibility-expiry scenario with "
        "the heartbeat kill it"
    ),
    # least privilege (reference.iam): the gate provisions the queues and runs every worker with its
    # own credentials; it judges messages and events, never the IAM policies nor who provisions
    **{
        name: (
            "changes only the IAM role policies the reference prints (reference.iam) or whether a worker "
            "started with --no-bootstrap provisions: the gate's adapter is given resources the gate "
            "provisioned and no gate run evaluates a policy, so every message, event and read is the "
            "reference's; properties/test_iam.py and scenarios/test_iam.py kill it"
        )
        for name in (
            "iam-extra-action",
            "iam-missing-action",
            "iam-no-context-condition",
            "iam-subscribe-any-endpoint",
            "iam-wildcard-account",
            "worker-bootstraps-anyway",
        )
    },
    # producer-side (decision D25): in a gate run the gate is the only producer
    "sequencer-from-applied": (
        "the producer's CommandBus numbers commands from a counter in its memory that starts after the "
        "last applied number: in a gate run the gate is the only producer and numbers every command "
        "itself, the reference worker publishes no command, so nothing a gate run sees changes; "
        "properties/test_producers.py and scenarios/test_producers.py kill it"
    ),
    "unsent-not-resent": (
        "a command a producer recorded in the store's outbox and died before sending is never sent: the "
        "gate is the only producer of a gate run and the reference worker publishes no command; "
        "properties/test_producers.py (producer_restart after the allocation) kills it"
    ),
    "outbox-own-first": (
        "a publish sends its own command before the older unsent commands of its entity: only a command "
        "a dead producer left unsent is affected, and the gate is the only producer of a gate run; "
        "properties/test_producers.py (a producer dead for a few sends of the others) kills it"
    ),
    "refusal-blocks-outbox": (
        "a command its dispatcher refused stays in the producer outbox and blocks its entity: only the "
        "producer's CommandBus is changed and the gate is the only producer of a gate run; "
        "properties/test_producers.py::test_refusals_and_send_failures_never_block_an_entity kills it"
    ),
    "allocate-read-then-write": (
        "the store's sequence allocation is not atomic: only producers allocating for one entity at the "
        "same moment collide, and the gate is the only producer of a gate run (the reference worker "
        "allocates nothing); properties/test_producers.py::test_concurrent_producers_never_share_a_number "
        "kills it"
    ),
    "send-failure-drops-command": (
        "a command whose send failed is dropped from the producer outbox: producer-side only, the gate "
        "is the only producer of a gate run; "
        "properties/test_producers.py::test_refusals_and_send_failures_never_block_an_entity kills it"
    ),
    # contract v1.4 (telemetry): spans, metrics and the health check live inside the process, and
    # ``traceparent`` is an OPTIONAL attribute the gate does not judge
    "producer-span-missing": _IN_PROCESS.format(
        "no producer span (the wire's traceparent names the caller's)"
    ),
    "traceparent-lost": _IN_PROCESS.format("no traceparent attribute on the wire (OPTIONAL in the contract)"),
    "outbox-span-orphaned": _IN_PROCESS.format("events published in a new trace"),
    "event-metrics-missing": _IN_PROCESS.format("no sourceflow.aws.event.* metric"),
    "health-ignores-missing-resources": _IN_PROCESS.format(
        "check_health reporting a missing queue/topic ok (the worker's health file holds only the breakers)"
    ),
    # scheduled idempotency cleanup: a gate run lasts minutes, the TTL days, the interval an hour
    "cleanup-deletes-unexpired": _CLEANUP.format("deletes every completed record, expired or not"),
    "cleanup-deletes-leased": _CLEANUP.format(
        "deletes leased claims (a commit then fails on its fence and the message is redelivered: "
        "still one effect)"
    ),
    "cleanup-never-scheduled": _CLEANUP.format("never sweeps"),
    # failure detection (reference/alarms.py, reference/monitoring.py) and the partner feed's error
    # path are the operator's side and the NexusStream domain: the contract asks for neither
    **dict.fromkeys(
        (
            "alarm-never-fires",
            "alarm-never-clears",
            "backlog-visible-only",
            "age-ignores-held-messages",
            "failed-not-counted",
            "error-queue-without-dlq",
            "groups-by-entity",
            "retention-ignored",
        ),
        "failure detection and the partner feed's error path are not part of the contract: the gate "
        "runs the order domain on queues it provisions itself and reads no alarm, metric or health "
        "file, so nothing it observes changes; properties/test_detection.py (and, for three of them, "
        "scenarios/test_detection.py) kill them",
    ),
    # D33: the saga-command flow runs only with the orders-saga-commands domain; the gate's reference
    # adapter runs the client-driven orders domain (no follow-up command, no aggregate), and the
    # checker mutant patches the harness's checkers, not the worker
    **dict.fromkeys(
        (
            "follow-up-sent-outside-commit",
            "follow-up-reissued-on-redelivery",
            "issued-not-counted",
            "aggregate-not-run",
        ),
        "the saga-command flow (D33) is not part of the contract: the gate's workload is client-driven "
        "and the reference adapter runs the orders domain, where no saga or aggregate issues a command, "
        "so nothing the gate observes changes (issued-not-counted patches the checkers, which the gate "
        "runs in its own process); properties/test_saga_commands.py kills all four",
    ),
    # decision D6: the data-key cache is off unless BusOptions.data_key_cache turns it on
    **{
        name: (
            f"{bug}: the gate runs the reference with the data-key cache off (the default; its adapter "
            "never turns it on), so no cache code runs in a gate run; "
            "properties/test_data_key_cache.py kills it"
        )
        for name, bug in (
            ("data-key-cache-ignores-message-bound", "the data-key cache reuses a key past max_messages"),
            ("data-key-cache-ignores-age-bound", "the data-key cache reuses a key past max_age"),
            ("data-key-cache-ignores-byte-bound", "the data-key cache reuses a key past max_bytes"),
            ("data-key-cache-without-context", "data-key cache entries keyed without the encryption context"),
            ("data-key-not-wiped", "evicted cached data keys are not zeroed"),
            ("data-key-past-2-32", "the cache accepts max_messages above 2^32"),
        )
    },
    # SourceFlow.Net interop (docs/sourceflow.md, D32): off in the gate, which sends only the
    # contract's wire format
    **{
        name: (
            f"{bug}: the gate's adapter leaves SourceFlow interop off and the gate sends no "
            "SourceFlow-shaped message, so no interop code runs in a gate run; "
            "properties/test_sourceflow.py kills it"
        )
        for name, bug in (
            ("sourceflow-alias-by-class-name", "an unregistered .NET name resolves by its class name"),
            ("sourceflow-int-id-coerced", "SourceFlow entity ids coerced with int()"),
            ("sourceflow-emits-string-id", "the SourceFlow emitter writes entity.id as a string"),
            ("sourceflow-entity-attribute-unchecked", "a SourceFlow message's EntityId attribute unchecked"),
            ("sourceflow-occurred-on-kept", "SourceFlow's 7-digit occurredOn kept"),
            ("sourceflow-event-seq-zero-refused", "SourceFlow events with sequenceNo 0 refused"),
            ("sourceflow-off-without-reason", "interop off: an alias refused without saying why"),
        )
    },
    "sourceflow-interop-on-by-default": (
        "BusOptions.sourceflow_interop defaults to True. Declared, not measured: on a plaintext "
        "profile a consumer in interop mode decodes every contract message exactly as before (only "
        "names that are not registry names take the SourceFlow path, and those are "
        "UnknownMessageType either way); on an encrypted profile the worker refuses to start "
        "(interop needs a plaintext bus), which the gate would report as a failed start. "
        "properties/test_sourceflow.py kills it"
    ),
}


def reference_catalog() -> tuple[Mutant, ...]:
    """The shared catalog (``harness.mutants.catalog.MUTANTS``) as gate mutants of the reference worker."""
    from harness.mutants.catalog import MUTANTS

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
