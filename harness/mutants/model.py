"""What a mutant is (:class:`Mutant`) and the pytest node ids that kill mutants (the killer
constants the mutant modules share): no patches here, so every mutant module can import it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

ENV = "FLOWGATE_MUTANT"

P = "properties/"

S = "scenarios/"


@dataclass(frozen=True)
class Mutant:
    name: str
    bug: str
    killers: tuple[str, ...]  # pytest node ids (relative to the repo root) that must fail
    expected: tuple[str, ...]  # anomaly kinds the killers are expected to report
    patches: Callable[[], Sequence[Any]]  # context managers that install the bug
    #: LocalStack scenario node ids that must fail under this mutant (``flowgate mutants --suite
    #: scenarios``); the scenario's worker processes run it via ``flowgate.harness.mutants.worker``
    scenarios: tuple[str, ...] = ()
    #: what the patches break: ``reference`` (the bus; the gate runs it as a mutant worker) or
    #: ``simulator`` (``flowgate.harness.sim``; killed by the differential tests that compare the simulator
    #: with LocalStack, ``scenarios/test_fidelity.py``; nothing for the gate to run) or ``load``
    #: (the load test's producer side, installed in the Locust processes that send:
    #: ``harness/mutants/load.py``; killed by the load test's own verdict)
    subject: str = "reference"


ORDER = P + "test_ordering.py"

ONCE = P + "test_exactly_once.py"

DEDUP = ONCE + "::test_fifo_deduplication_is_effective"

LOSS = P + "test_no_loss.py"

CRYPTO = P + "test_encryption.py"

DK_CACHE = P + "test_data_key_cache.py::"

REPLAY = P + "test_replay.py"

READS = P + "test_reads.py"

ONCE_EFFECT = ONCE + "::test_exactly_once_effect"

STATEFUL = P + "test_stateful.py"

SERIAL = P + "test_serialization.py"

HOSTILE = P + "test_hostile.py::test_catalog_kind"

HOSTILE_LS = S + "test_hostile.py::test_catalog_kinds_between_valid_orders[plaintext]"

HOSTILE_GEN = P + "test_hostile.py::test_hostile_messages_between_valid_orders"

OUTAGES = P + "test_outages.py"

CONCURRENCY = P + "test_concurrency.py"

OUT_HEARTBEAT = OUTAGES + "::test_heartbeat_survives_a_failing_beat"

HOSTILE_DECODE = P + "test_hostile_decode.py"

H_DECODE = (
    HOSTILE_DECODE + "::test_hostile_message_is_dead_lettered_with_its_reason_and_valid_ones_apply_once"
)

H_KMS = HOSTILE_DECODE + "::test_a_kms_outage_is_never_blamed_on_the_messages"

H_TTL = HOSTILE_DECODE + "::test_a_copy_within_queue_plus_dlq_retention_is_still_a_duplicate"

TELEMETRY = P + "test_telemetry.py"

TRACE = TELEMETRY + "::test_one_order_is_one_trace_from_the_client_command_to_the_view_update"

METRICS = TELEMETRY + "::test_every_seed_metric_is_emitted"

HEALTH = TELEMETRY + "::test_health_check_on_the_simulator_names_what_is_missing"

CLEANUP = P + "test_idempotency_cleanup.py"

CLEANUP_RULE = CLEANUP + "::test_a_sweep_deletes_exactly_the_expired_and_abandoned_records"

CLEANUP_IN_FLIGHT = CLEANUP + "::test_a_sweep_during_processing_never_touches_the_message_in_flight"

CLEANUP_SCHEDULED = CLEANUP + "::test_the_worker_schedules_cleanup_on_its_own_thread"

LIFE_PLAIN = S + "test_lifecycle.py::test_order_lifecycle[plaintext]"

LIFE_KMS = S + "test_lifecycle.py::test_order_lifecycle[kms]"

CONC = S + "test_concurrency.py"

STD_SQLITE = S + "test_standard_queue.py::test_standard_queue_sqlite"

STD_PG = S + "test_standard_queue.py::test_standard_queue_postgres"

BOOT = S + "test_bootstrap.py"

DEAD_POISON = S + "test_dead_letters.py::test_poison_and_business_dead_letters"

DEAD_REPLAY = S + "test_dead_letters.py::test_dlq_replay_keeps_group_order"

DEAD_REPLAY_FIXED = S + "test_dead_letters.py::test_replay_of_fixed_dead_letters_of_one_entity"

DLQ_REPLAY = P + "test_dlq_replay.py"

PARTNERS = S + "test_partners.py"

CH_DUP = S + "test_chaos.py::test_duplicate_injection_fifo"

CH_KILL = S + "test_chaos.py::test_sigkill_and_crash_between_effect_and_delete"

CH_SIGTERM = S + "test_chaos.py::test_sigterm_drains_in_flight"

CH_VT_NO_HB = S + "test_chaos.py::test_visibility_expiry[no-heartbeat]"

CH_VT_HB = S + "test_chaos.py::test_visibility_expiry[heartbeat]"

#: the long chaos set (``nox -s chaos`` only): 1,000 orders, 120 seeded SIGKILLs
CH_LONG = S + "test_chaos_long.py::test_sigkill_storm_1000_orders"

RESTART = S + "test_localstack_restart.py::test_localstack_restart_is_detected_and_reported"

OUT_KMS = S + "test_outages.py::test_kms_key_disabled_for_10_vt"

OUT_STORE = S + "test_outages.py::test_store_down_for_10_vt"

OUT_SQS = S + "test_outages.py::test_sqs_unreachable_for_10_vt"

PRODUCERS = P + "test_producers.py"

PRODUCERS_LS = S + "test_producers.py::test_two_producer_processes_one_restarted"

PRODUCERS_OUTBOX = PRODUCERS + "::test_refusals_and_send_failures_never_block_an_entity"

FIDELITY_SNS_KMS = S + "test_fidelity.py::test_sns_and_kms_agree_with_localstack"

FIDELITY_WINDOW = S + "test_fidelity.py::test_dedup_window_end_agrees_with_localstack"

PRODUCERS_ALLOCATE = PRODUCERS + "::test_concurrent_producers_never_share_a_number"

IAM_ROLES = P + "test_iam.py::test_each_role_is_allowed_what_it_needs_and_denied_the_rest"

IAM_ACCOUNT = P + "test_iam.py::test_policies_need_a_real_account_id"

IAM_LS = S + "test_iam.py::test_every_call_allowed_and_every_grant_used"

DETECT = P + "test_detection.py::test_failure_is_detected"

DETECT_BACKLOG = P + "test_detection.py::test_backlog_counts_visible_and_in_flight"

DETECT_ERRORS = P + "test_detection.py::test_error_path_is_the_sound_version"

DETECT_LS = S + "test_detection.py::"
