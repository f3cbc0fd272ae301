"""Mutants of what operators rely on: telemetry, health, idempotency cleanup, the data-key cache and the IAM role policies.

Each builder returns the ``unittest.mock`` patches that install its bug; its entry in
:data:`MUTANTS` below names it."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any
from unittest import mock

from opentelemetry import trace
from sqlalchemy import delete, or_

from flowgate.harness.mutants.model import (
    CLEANUP_IN_FLIGHT,
    CLEANUP_RULE,
    CLEANUP_SCHEDULED,
    DK_CACHE,
    H_TTL,
    HEALTH,
    IAM_ACCOUNT,
    IAM_LS,
    IAM_ROLES,
    METRICS,
    TRACE,
    Mutant,
    P,
)
from flowgate.reference import health, iam
from flowgate.reference.bootstrap import Bootstrapper
from flowgate.reference.cleanup import IdempotencyCleaner
from flowgate.reference.dispatchers import SnsEventDispatcher, _Dispatcher, message_attributes
from flowgate.reference.envelope import KmsEnvelopeCipher
from flowgate.reference.hooks import SYSTEM_RANDOMNESS
from flowgate.reference.idempotency import IN_PROGRESS
from flowgate.reference.keycache import CachedKey, CacheLimits, DataKeyCache
from flowgate.reference.listener import SqsListener
from flowgate.reference.messages import (
    Message,
)
from flowgate.reference.sql import SqlStorage
from flowgate.reference.stores import (
    InMemoryStorage,
)

log = logging.getLogger(__name__)


def _producer_span_missing() -> list[Any]:
    def _start_span(self: _Dispatcher, message: Message, destination: str, parent: Any = None) -> Any:
        # no span of its own: the wire's traceparent names whatever span the caller had current
        return trace.NonRecordingSpan(trace.get_current_span(parent).get_span_context())

    return [mock.patch.object(_Dispatcher, "_start_span", _start_span)]


def _traceparent_lost() -> list[Any]:
    orig = message_attributes

    def attributes(message: Any, *, encrypted: bool, traceparent: str | None) -> dict[str, Any]:
        return orig(message, encrypted=encrypted, traceparent=None)  # never written on the wire

    return [mock.patch("flowgate.reference.dispatchers.message_attributes", attributes)]


def _outbox_span_orphaned() -> list[Any]:
    orig = SqsListener._publish

    def _publish(self: SqsListener, outboxes: list[Sequence[Message]], parents: list[Any]) -> list[Any]:
        # the outbox goes out after the processing span ended, without its context: a new trace
        return orig(self, outboxes, [None] * len(outboxes))

    return [mock.patch.object(SqsListener, "_publish", _publish)]


def _event_metrics_missing() -> list[Any]:
    def _metric(self: SnsEventDispatcher, ok: bool, destination: str, name: str, ms: float) -> None:
        return None  # no event.published / publish_duration / publish_error

    return [mock.patch.object(SnsEventDispatcher, "_metric", _metric)]


def _health_ignores_missing_resources() -> list[Any]:
    orig = health.check_health

    def check_health(*args: Any, **kwargs: Any) -> health.HealthReport:
        # only "the endpoint answered" counts: a queue, DLQ or topic that does not exist is ok
        report = orig(*args, **kwargs)
        for name, value in list(report.checks.items()):
            if name.startswith(("sqs:", "sns:")) and ("NonExistent" in value or "NotFound" in value):
                report.checks[name] = "ok"
        return report

    return [mock.patch("flowgate.reference.health.check_health", check_health)]


def _cleanup_deletes_unexpired() -> list[Any]:
    # the sweep keys on the status only: every finished record goes, expired or not
    def memory(self: InMemoryStorage, now: float, *, abandoned_after: float, limit: int | None = None) -> int:
        with self._lock:
            dead = [k for k, r in self._m.records.items() if r.status != IN_PROGRESS][:limit]
            for k in dead:
                del self._m.records[k]
            return len(dead)

    def sql(self: SqlStorage, now: float, *, abandoned_after: float, limit: int | None = None) -> int:
        t = self.idempotency
        with self._guard(), self.engine.begin() as c:
            return int(c.execute(delete(t).where(t.c.status != IN_PROGRESS)).rowcount)

    return [
        mock.patch.object(InMemoryStorage, "cleanup", memory),
        mock.patch.object(SqlStorage, "cleanup", sql),
    ]


def _cleanup_deletes_leased() -> list[Any]:
    # expiry checked, but an IN_PROGRESS record's lease ignored: a claim held right now goes
    def memory(self: InMemoryStorage, now: float, *, abandoned_after: float, limit: int | None = None) -> int:
        with self._lock:
            dead = [k for k, r in self._m.records.items() if r.status == IN_PROGRESS or r.expires_at <= now][
                :limit
            ]
            for k in dead:
                del self._m.records[k]
            return len(dead)

    def sql(self: SqlStorage, now: float, *, abandoned_after: float, limit: int | None = None) -> int:
        t = self.idempotency
        with self._guard(), self.engine.begin() as c:
            rule = or_(t.c.status == IN_PROGRESS, t.c.expires_at <= now)
            return int(c.execute(delete(t).where(rule)).rowcount)

    return [
        mock.patch.object(InMemoryStorage, "cleanup", memory),
        mock.patch.object(SqlStorage, "cleanup", sql),
    ]


def _cleanup_never_scheduled() -> list[Any]:
    def run(self: IdempotencyCleaner, stop: threading.Event) -> None:
        while stop.wait(self.interval):  # inverted: wait() is False on timeout, so it never sweeps
            self.run_due(stop)

    return [mock.patch.object(IdempotencyCleaner, "run", run)]


def _data_key_limits_without(bound: str) -> list[Any]:
    """The data-key cache forgets one of its bounds (``messages``, ``age`` or ``bytes``)."""

    def within_limits(self: DataKeyCache, entry: CachedKey, nbytes: int) -> bool:
        lim = self.limits
        return (
            (bound == "age" or self.clock() - entry.created < lim.max_age_seconds)
            and (bound == "messages" or entry.messages + 1 <= lim.max_messages)
            and (bound == "bytes" or entry.bytes + nbytes <= lim.max_bytes)
        )

    return [mock.patch.object(DataKeyCache, "within_limits", within_limits)]


def _data_key_cache_without_context() -> list[Any]:
    # cache entries keyed by the KMS key (and EDK) only: a key issued for destination A seals B
    return [mock.patch("flowgate.reference.envelope._context_key", return_value=())]


def _data_key_not_wiped() -> list[Any]:
    return [mock.patch.object(CachedKey, "wipe", lambda self: None)]  # noqa: PT008


def _data_key_past_2_32() -> list[Any]:
    def post_init(self: CacheLimits) -> None:
        if not self.max_messages >= 1:
            raise ValueError("max_messages")

    return [mock.patch.object(CacheLimits, "__post_init__", post_init)]


def _edit_policies(edit: Callable[[iam.Role, dict[str, Any]], None]) -> list[Any]:
    """Wrap :func:`flowgate.reference.iam.role_policies` so ``edit(role, statement)`` rewrites each statement."""
    original = iam.role_policies

    def role_policies(config: Any, **kwargs: Any) -> dict[iam.Role, dict[str, Any]]:
        policies = original(config, **kwargs)
        for role, policy in policies.items():
            for statement in policy["Statement"]:
                edit(role, statement)
        return policies

    return [mock.patch.object(iam, "role_policies", role_policies)]


def _iam_extra_action() -> list[Any]:
    def edit(role: iam.Role, statement: dict[str, Any]) -> None:
        if role is iam.Role.PRODUCER and statement["Sid"] == "SendCommands":
            statement["Action"] = sorted({*statement["Action"], "sqs:ReceiveMessage"})

    return _edit_policies(edit)


def _iam_missing_action() -> list[Any]:
    def edit(role: iam.Role, statement: dict[str, Any]) -> None:
        if role is iam.Role.COMMAND_CONSUMER:
            statement["Action"] = [a for a in statement["Action"] if a != "sqs:ChangeMessageVisibility"]

    return _edit_policies(edit)


def _iam_no_context_condition() -> list[Any]:
    def edit(role: iam.Role, statement: dict[str, Any]) -> None:
        if any(a in ("kms:GenerateDataKey", "kms:Decrypt") for a in statement["Action"]):
            statement.pop("Condition", None)

    return _edit_policies(edit)


def _iam_subscribe_any_endpoint() -> list[Any]:
    def edit(role: iam.Role, statement: dict[str, Any]) -> None:
        if statement["Action"] == ["sns:Subscribe"]:
            statement.pop("Condition", None)

    return _edit_policies(edit)


def _iam_wildcard_account() -> list[Any]:
    return [mock.patch.object(iam, "check_account", lambda account: account or "*")]


def _worker_bootstraps_anyway() -> list[Any]:
    return [mock.patch.object(Bootstrapper, "resolve", Bootstrapper.run)]


def _nonce_bypasses_randomness_seam() -> list[Any]:
    """The envelope cipher draws its nonces from the OS whatever source it was given (D34): the
    production behaviour is unchanged (the default source is the OS CSPRNG), but an encrypted
    simulation is no longer a function of its seed."""
    orig = KmsEnvelopeCipher.__init__

    def __init__(self: KmsEnvelopeCipher, *args: Any, **kwargs: Any) -> None:
        kwargs["randomness"] = SYSTEM_RANDOMNESS
        orig(self, *args, **kwargs)

    return [mock.patch.object(KmsEnvelopeCipher, "__init__", __init__)]


#: this module's mutants (aggregated, in this order, by :data:`flowgate.harness.mutants.catalog.MUTANTS`)
MUTANTS: tuple[Mutant, ...] = (
    Mutant(
        "data-key-cache-ignores-message-bound",
        "the data-key cache reuses a key past max_messages (towards the 2^32 random-nonce limit)",
        (
            DK_CACHE + "test_no_key_seals_past_its_message_bound",
            DK_CACHE + "test_open_cache_is_bounded_and_keyed_by_context",
        ),
        ("data-key-over-message-bound",),
        lambda: _data_key_limits_without("messages"),
    ),
    Mutant(
        "data-key-cache-ignores-age-bound",
        "the data-key cache reuses a key past max_age (a disabled key or revoked grant unnoticed)",
        (
            DK_CACHE + "test_no_key_seals_past_its_age",
            DK_CACHE + "test_open_cache_is_bounded_and_keyed_by_context",
        ),
        ("data-key-over-age",),
        lambda: _data_key_limits_without("age"),
    ),
    Mutant(
        "data-key-cache-ignores-byte-bound",
        "the data-key cache reuses a key past max_bytes",
        (DK_CACHE + "test_no_key_seals_past_its_byte_bound",),
        ("data-key-over-byte-bound",),
        lambda: _data_key_limits_without("bytes"),
    ),
    Mutant(
        "data-key-cache-without-context",
        "data-key cache entries keyed without the encryption context: a key KMS issued for "
        "destination A seals messages for B (and the open cache answers for a context KMS never saw)",
        (
            DK_CACHE + "test_a_key_serves_one_destination_and_opens_without_a_cache",
            DK_CACHE + "test_open_cache_is_bounded_and_keyed_by_context",
        ),
        ("data-key-across-destinations",),
        _data_key_cache_without_context,
    ),
    Mutant(
        "data-key-not-wiped",
        "evicted (expired, exhausted, displaced, cleared) plaintext data keys are not zeroed",
        (DK_CACHE + "test_evicted_keys_are_wiped",),
        ("data-key-not-wiped",),
        _data_key_not_wiped,
    ),
    Mutant(
        "data-key-past-2-32",
        "the data-key cache accepts max_messages above 2^32 (AES-GCM random 96-bit nonces)",
        (DK_CACHE + "test_no_key_can_be_configured_past_2_32_messages",),
        (),
        _data_key_past_2_32,
    ),
    # telemetry (doc 000 names), the health check, scheduled idempotency cleanup
    Mutant(
        "producer-span-missing",
        "the dispatchers emit no AwsSqsCommandDispatcher.Dispatch / AwsSnsEventDispatcher.Dispatch "
        "span: the wire's traceparent names the caller's span",
        (TRACE, METRICS),
        ("missing-span",),
        _producer_span_missing,
    ),
    Mutant(
        "traceparent-lost",
        "the traceparent attribute is never written on the wire: every consumer starts a new trace",
        (TRACE,),
        ("broken-trace",),
        _traceparent_lost,
    ),
    Mutant(
        "outbox-span-orphaned",
        "a command's events are published without its processing span's context (after that span "
        "ended): the event starts a new trace",
        (TRACE,),
        ("broken-trace",),
        _outbox_span_orphaned,
    ),
    Mutant(
        "event-metrics-missing",
        "the SNS dispatcher records no sourceflow.aws.event.* metric",
        (METRICS,),
        ("missing-metric",),
        _event_metrics_missing,
    ),
    Mutant(
        "health-ignores-missing-resources",
        "the health check only asks whether SQS/SNS answer: a missing queue, DLQ or topic reports ok",
        (HEALTH,),
        ("health-ok-while-missing",),
        _health_ignores_missing_resources,
    ),
    Mutant(
        "cleanup-deletes-unexpired",
        "the idempotency cleanup deletes every completed record, expired or not",
        # the simulated workers sweep too: a producer's resend within queue + DLQ retention
        # then applies a second time (H_TTL)
        (CLEANUP_RULE, CLEANUP_IN_FLIGHT, H_TTL),
        ("deleted-unexpired", "unexpected-business-dead-letter"),
        _cleanup_deletes_unexpired,
    ),
    Mutant(
        "cleanup-deletes-leased",
        "the idempotency cleanup deletes IN_PROGRESS claims whatever their lease (a message in flight "
        "loses its claim and its commit fails)",
        (CLEANUP_RULE, CLEANUP_IN_FLIGHT),
        ("deleted-in-flight",),
        _cleanup_deletes_leased,
    ),
    Mutant(
        "cleanup-never-scheduled",
        "the worker's cleanup loop has its wait inverted and never sweeps: the store grows forever",
        (CLEANUP_SCHEDULED,),
        ("never-swept",),
        _cleanup_never_scheduled,
    ),
    Mutant(
        "iam-extra-action",
        "the producer's policy also grants sqs:ReceiveMessage on its command queues (more than it calls)",
        (IAM_ROLES,),
        (),
        _iam_extra_action,
        scenarios=(IAM_LS,),
    ),
    Mutant(
        "iam-missing-action",
        "the command consumer's policy lacks sqs:ChangeMessageVisibility (its heartbeat is refused)",
        (IAM_ROLES,),
        (),
        _iam_missing_action,
        scenarios=(IAM_LS,),
    ),
    Mutant(
        "iam-no-context-condition",
        "KMS data-key grants carry no kms:EncryptionContext condition: any role opens or seals any destination",
        (IAM_ROLES,),
        (),
        _iam_no_context_condition,
    ),
    Mutant(
        "iam-subscribe-any-endpoint",
        "the bootstrapper may sns:Subscribe any endpoint and protocol to the bus's topics",
        (IAM_ROLES,),
        (),
        _iam_subscribe_any_endpoint,
    ),
    Mutant(
        "iam-wildcard-account",
        "policies accept a wildcard (or any) account id instead of the caller's 12-digit account",
        (IAM_ACCOUNT,),
        (),
        _iam_wildcard_account,
    ),
    Mutant(
        "worker-bootstraps-anyway",
        "a worker started with --no-bootstrap provisions anyway (CreateQueue, SetQueueAttributes, "
        "Subscribe): a runtime role needs admin rights",
        (),
        ("scenario:iam-denied",),
        _worker_bootstraps_anyway,
        scenarios=(IAM_LS,),
    ),
    Mutant(
        "nonce-bypasses-randomness-seam",
        "the envelope cipher draws its nonces from the OS instead of the randomness seam (D34): the "
        "same seed no longer gives the same history on an encrypted bus",
        (P + "test_determinism.py::test_an_encrypted_run_is_a_function_of_its_seed",),
        (),
        _nonce_bypasses_randomness_seam,
    ),
)
