"""Reference mutants that are equivalent through the gate, and why (:data:`EQUIVALENT`): the
behaviour of the order entity the gate can observe is identical to the reference's, so the gate
cannot kill them; the property suites (``flowgate mutants``) do. Listed in docs/contract.md
section 10; :mod:`flowgate.harness.gate.mutants` runs them only with ``--include-equivalent`` and never
scores them.
"""

from __future__ import annotations

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
        "the DLQ replay tool (flowgate.reference.dlq) sends each batch back last first: the gate never runs it; "
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
    # least privilege (flowgate.reference.iam): the gate provisions the queues and runs every worker with its
    # own credentials; it judges messages and events, never the IAM policies nor who provisions
    **{
        name: (
            "changes only the IAM role policies the reference prints (flowgate.reference.iam) or whether a worker "
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
    # D34: the randomness seam; the production default is the OS CSPRNG either way
    "nonce-bypasses-randomness-seam": (
        "the envelope cipher draws its nonces from the OS instead of the source it was given: a gate "
        "run's worker is given the OS CSPRNG (the production default), so every nonce is drawn as "
        "before and nothing the gate observes changes; only the simulator's determinism breaks, "
        "which properties/test_determinism.py catches"
    ),
}
