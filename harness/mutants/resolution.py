"""Mutants of message resolution, DLQ replay and the hostile-message decode rules (parking, dead-letter completion, replay order, recursion, id reuse, KMS outages, envelope precedence, TTL, group ids, event dedup ids).

Each builder returns the ``unittest.mock`` patches that install its bug; its entry in
:data:`MUTANTS` below names it."""

from __future__ import annotations

import json
import logging
import secrets
from typing import Any
from unittest import mock

from botocore.exceptions import BotoCoreError, ClientError
from sqlalchemy import update

from flowgate.harness.mutants.model import (
    CH_DUP,
    DEAD_REPLAY,
    DEAD_REPLAY_FIXED,
    DEDUP,
    DLQ_REPLAY,
    H_DECODE,
    H_KMS,
    H_TTL,
    HOSTILE,
    HOSTILE_DECODE,
    HOSTILE_GEN,
    HOSTILE_LS,
    LOSS,
    Mutant,
)
from flowgate.reference.config import BusOptions
from flowgate.reference.dispatchers import SnsEventDispatcher
from flowgate.reference.envelope import POISON_CODES
from flowgate.reference.errors import DecodeError, MessageError, TransportError
from flowgate.reference.idempotency import COMPLETED
from flowgate.reference.listener import SqsListener, _Flight
from flowgate.reference.messages import (
    Message,
)
from flowgate.reference.sql import SqlStorage
from flowgate.reference.stores import (
    Effect,
    InMemoryStorage,
)

log = logging.getLogger(__name__)


#: SQS's longest visibility timeout (12 h): what a listener that parks a message sets.
MAX_VISIBILITY = 43200


def _poison_parked() -> list[Any]:
    orig_poison, orig_delete = SqsListener._poison, SqsListener._delete

    def _poison(self: SqsListener, f: _Flight, exc: MessageError) -> bool:
        self.__dict__["_fg_park"] = f.message_id
        try:
            return orig_poison(self, f, exc)
        finally:
            self.__dict__.pop("_fg_park", None)

    def _delete(self: SqsListener, f: _Flight, ctx: Any) -> bool:
        if self.__dict__.get("_fg_park") != f.message_id:
            return orig_delete(self, f, ctx)
        # forwarded to the DLQ with its reason, then "put away" instead of deleted: the original
        # stays in the queue, invisible for 12 h, and comes back long after the run
        f.deleted = True  # the heartbeat leaves it alone from now on
        try:
            self.sqs.change_message_visibility(
                QueueUrl=self.queue_url, ReceiptHandle=f.receipt, VisibilityTimeout=MAX_VISIBILITY
            )
        except (ClientError, BotoCoreError) as exc:
            log.warning("could not park %s: %s", f.message_id, exc)
        return True

    return [
        mock.patch.object(SqsListener, "_poison", _poison),
        mock.patch.object(SqsListener, "_delete", _delete),
    ]


def _dead_letter_completes_key() -> list[Any]:
    orig_memory, orig_sql = InMemoryStorage.commit, SqlStorage.commit

    def memory(self: InMemoryStorage, effect: Effect) -> None:
        orig_memory(self, effect)
        if effect.dead_letter is not None:  # the pre-D24 commit: the refused command's key completed
            with self._lock:
                self._m.records[effect.key].status = COMPLETED

    def sql(self: SqlStorage, effect: Effect) -> None:
        orig_sql(self, effect)
        if effect.dead_letter is not None:
            t = self.idempotency
            with self.engine.begin() as c:
                c.execute(update(t).where(t.c.key == effect.key).values(status=COMPLETED))

    return [
        mock.patch.object(InMemoryStorage, "commit", memory),
        mock.patch.object(SqlStorage, "commit", sql),
    ]


def _replay_reversed() -> list[Any]:
    import flowgate.reference.dlq as dlq

    orig = dlq.replay_dead_letters

    class Reversing:
        """An SQS client whose DLQ receives come back in reverse: each batch is replayed last first."""

        def __init__(self, sqs: Any) -> None:
            self._sqs = sqs

        def receive_message(self, **kwargs: Any) -> dict[str, Any]:
            resp = dict(self._sqs.receive_message(**kwargs))
            resp["Messages"] = list(reversed(resp.get("Messages", [])))
            return resp

        def __getattr__(self, name: str) -> Any:
            return getattr(self._sqs, name)

    def replay(sqs: Any, **kwargs: Any) -> int:
        return orig(Reversing(sqs), **kwargs)

    return [mock.patch.object(dlq, "replay_dead_letters", replay)]


def _recursion_escapes_poll() -> list[Any]:
    def loads(body: str | bytes) -> Any:
        # the pre-fix decode: plain json.loads, only ValueError is the message's fault
        try:
            return json.loads(body)
        except ValueError as exc:
            raise DecodeError(f"body is not JSON: {exc}") from exc

    # ... and the listener lets anything else out of _process (the whole poll dies)
    return [
        mock.patch("flowgate.reference.messages.loads_strict", loads),
        mock.patch("flowgate.reference.listener._MESSAGE_FAULTS", ()),
    ]


def _id_reuse_is_duplicate() -> list[Any]:
    # idempotency records bound to the key only: a known id with other content is a "duplicate"
    return [mock.patch("flowgate.reference.listener.message_digest", lambda message, view=None: None)]  # noqa: PT008


def _event_on_command_queue_projected() -> list[Any]:
    # no queue roles: any registered message is handled wherever it arrives
    return [mock.patch.object(SqsListener, "_check_route", lambda self, kind, type_name: None)]  # noqa: PT008


def _kms_disabled_is_poison() -> list[Any]:
    # the pre-fix classification: the key's state (disabled, pending deletion, not found,
    # access denied) counted as a property of the message
    old = frozenset(
        {
            *POISON_CODES,
            "AccessDeniedException",
            "NotFoundException",
            "KMSInvalidStateException",
            "DisabledException",
            "InvalidKeyUsageException",
        }
    )
    return [mock.patch("flowgate.reference.envelope.POISON_CODES", old)]


def _kms_transport_is_poison() -> list[Any]:
    # contract v1.3 section 5 step 5 read literally ("any failure is poison"): KMS unreachable
    # (connection refused/reset, a timeout: botocore's transport errors) counted as the message's fault
    from flowgate.reference.envelope import KmsEnvelopeCipher
    from flowgate.reference.errors import DecryptionError

    orig = KmsEnvelopeCipher.open

    def open_(self: KmsEnvelopeCipher, sealed: str, **kw: Any) -> str:
        try:
            return orig(self, sealed, **kw)
        except TransportError as exc:
            if isinstance(exc.__cause__, BotoCoreError):
                raise DecryptionError(f"envelope cannot be opened: {exc}") from exc
            raise

    return [mock.patch.object(KmsEnvelopeCipher, "open", open_)]


def _sealed_contradiction_is_decryption_error() -> list[Any]:
    # the v1.3 section 5 step 5 reading: on an encrypted bus, a body that opened but contradicts its
    # attributes is reported as DecryptionError (v1.4 decode rule 7: DecodeError)
    from flowgate.reference.errors import DecryptionError

    orig = SqsListener._decode

    def _decode(self: SqsListener, m: Any, attrs: Any) -> Any:
        try:
            return orig(self, m, attrs)
        except DecodeError as exc:
            if attrs.get("Encryption") is not None and "contradicts" in str(exc):
                raise DecryptionError(str(exc)) from exc
            raise

    return [mock.patch.object(SqsListener, "_decode", _decode)]


def _type_checked_after_envelope() -> list[Any]:
    # the registered type judged only after the envelope is opened (v1.3's rule order read
    # literally): a sealed message whose CommandType attribute names an unregistered type is a
    # DecryptionError when its seal no longer opens (v1.4 decode rule 2: UnknownMessageType first)
    from flowgate.reference.errors import DecryptionError, UnknownMessageType

    orig = SqsListener._decode

    def _decode(self: SqsListener, m: Any, attrs: Any) -> Any:
        try:
            return orig(self, m, attrs)
        except UnknownMessageType:
            event_id, entity_id = attrs.get("EventId"), attrs.get("EntityId")
            if self.cipher is None or attrs.get("Encryption") is None or not event_id or not entity_id:
                raise
            try:
                self.cipher.open(
                    str(m.get("Body", "")),
                    message_id=event_id,
                    entity_id=entity_id,
                    message_type=str(attrs.get("CommandType") or attrs.get("EventType") or ""),
                    destinations=self.destinations,
                )
            except DecryptionError:
                raise
            except Exception as exc:
                raise DecryptionError(f"envelope cannot be opened: {exc}") from exc
            raise

    return [mock.patch.object(SqsListener, "_decode", _decode)]


def _ttl_shorter_than_retention() -> list[Any]:
    orig = BusOptions.__post_init__

    def __post_init__(self: BusOptions) -> None:
        object.__setattr__(self, "idempotency_ttl_seconds", 24 * 3600.0)  # SourceFlow's 24 h
        orig(self)

    def unchecked(options: BusOptions, longest_retention: float | None = None) -> None:
        return None

    return [
        mock.patch.object(BusOptions, "__post_init__", __post_init__),
        mock.patch("flowgate.reference.config.check_ttl_outlives_retention", unchecked),
    ]


def _unvalidated_group_id() -> list[Any]:
    # ids are only checked to be strings: an entity id no MessageGroupId can carry gets through
    return [mock.patch("flowgate.reference.messages._check_id", lambda value, where: value)]


def _unstable_event_dedup_id() -> list[Any]:
    orig_entry = SnsEventDispatcher._entry

    def _entry(self: SnsEventDispatcher, message: Message, destination: str) -> dict[str, Any]:
        # the event id in the body and attributes stays derived; only the SNS deduplication id is
        # fresh per publish, so a redelivered command's re-publish is never deduplicated
        entry = orig_entry(self, message, destination)
        if "MessageDeduplicationId" in entry:
            entry["MessageDeduplicationId"] = secrets.token_hex(16)
        return entry

    return [mock.patch.object(SnsEventDispatcher, "_entry", _entry)]


#: this module's mutants (aggregated, in this order, by :data:`flowgate.harness.mutants.catalog.MUTANTS`)
MUTANTS: tuple[Mutant, ...] = (
    Mutant(
        "recursion-escapes-poll",
        "a deeply nested body raises RecursionError out of the poll: its whole batch is redelivered "
        "until the SQS redrive moves it, valid messages included",
        (
            H_DECODE,
            HOSTILE_GEN,
            HOSTILE + "[deep_body-plaintext-fifo]",
            HOSTILE + "[deep_envelope-encrypted-standard]",
        ),
        ("dead-letter-wrong-reason", "lost"),
        _recursion_escapes_poll,
        scenarios=(HOSTILE_LS,),
    ),
    Mutant(
        "id-reuse-is-duplicate",
        "idempotency keyed on the id alone: a completed command's id with other content is a duplicate",
        (
            H_DECODE,
            HOSTILE_GEN,
            HOSTILE + "[reused_event_id_applied-plaintext-fifo]",
            HOSTILE + "[reused_event_id_pending-encrypted-fifo]",
        ),
        ("poison-not-dead-lettered",),
        _id_reuse_is_duplicate,
        scenarios=(HOSTILE_LS,),
    ),
    Mutant(
        "event-on-command-queue-projected",
        "listeners ignore their queue's role: an event sent to a command queue is projected",
        (
            H_DECODE,
            HOSTILE_GEN,
            HOSTILE + "[event_on_command_queue-plaintext-fifo]",
            HOSTILE + "[command_on_view_queue-encrypted-standard]",
        ),
        ("poison-not-dead-lettered",),
        _event_on_command_queue_projected,
        scenarios=(HOSTILE_LS,),
    ),
    Mutant(
        "unvalidated-group-id",
        "entity/event ids are not checked against the SQS id rules: an entity id no MessageGroupId "
        "can carry commits its effect, then every publish of its events fails",
        (
            H_DECODE,
            HOSTILE_GEN,
            HOSTILE + "[entity_id_spaces-plaintext-fifo]",
            HOSTILE + "[event_id_too_long-encrypted-standard]",
        ),
        ("poison-not-dead-lettered", "unexpected", "dead-letter-wrong-reason"),
        _unvalidated_group_id,
        scenarios=(HOSTILE_LS,),
    ),
    Mutant(
        "kms-disabled-is-poison",
        "a disabled / pending-deletion / inaccessible KMS key is treated as the message's fault (poison)",
        (H_KMS,),
        ("lost",),
        _kms_disabled_is_poison,
    ),
    # contract v1.4: KMS transport errors are transient; the precedence of the decode checks
    Mutant(
        "kms-transport-is-poison",
        "KMS unreachable (connection refused or reset, a timeout) is treated as the message's fault: "
        "DecryptionError instead of a transient failure",
        (HOSTILE_DECODE + "::test_kms_transport_errors_are_transient_never_poison",),
        ("lost",),
        _kms_transport_is_poison,
    ),
    Mutant(
        "sealed-contradiction-is-decryption-error",
        "on an encrypted bus, a body that opened and contradicts its attributes is dead-lettered as "
        "DecryptionError instead of DecodeError",
        (
            HOSTILE + "[contradict_name_sealed-encrypted-fifo]",
            HOSTILE + "[contradict_SequenceNo-encrypted-fifo]",
        ),
        ("wrong-dead-letter-reason",),
        _sealed_contradiction_is_decryption_error,
    ),
    Mutant(
        "type-checked-after-envelope",
        "the registered type is judged only after the envelope opens: a sealed message whose "
        "CommandType attribute names an unregistered type is dead-lettered as DecryptionError",
        (HOSTILE + "[unknown_type_after_sealing-encrypted-fifo]",),
        ("wrong-dead-letter-reason",),
        _type_checked_after_envelope,
    ),
    Mutant(
        "ttl-shorter-than-retention",
        "idempotency records expire after 24 h while a copy of the message lives 14 + 14 days",
        (H_TTL,),
        ("unexpected-business-dead-letter",),
        _ttl_shorter_than_retention,
    ),
    # issue 19: every message resolved; DLQ replay of an entity's dead letters
    Mutant(
        "poison-parked",
        "poison is forwarded to the DLQ with its reason, but the original is parked (visibility 12 h) "
        "instead of deleted: it comes back long after the run",
        (LOSS, HOSTILE_GEN),
        ("unresolved",),
        _poison_parked,
    ),
    Mutant(
        "dead-letter-completes-key",
        "a business dead letter completes the command's idempotency key: the command replayed after "
        "its cause was fixed is acknowledged as a duplicate and never takes effect",
        (DLQ_REPLAY,),
        ("lost",),
        _dead_letter_completes_key,
        scenarios=(DEAD_REPLAY_FIXED,),
    ),
    Mutant(
        "replay-reversed",
        "the DLQ replay tool sends each batch of dead letters back last first (not in sequence order)",
        (DLQ_REPLAY,),
        ("lost", "unexpected-business-dead-letter", "nonmonotonic", "skip"),
        _replay_reversed,
        scenarios=(DEAD_REPLAY_FIXED, DEAD_REPLAY),
    ),
    Mutant(
        "unstable-event-dedup-id",
        "events published with a random MessageDeduplicationId (the event id stays derived): "
        "a re-publish is never deduplicated by the FIFO topic",
        (DEDUP,),
        ("dedup-not-effective",),
        _unstable_event_dedup_id,
        scenarios=(CH_DUP,),
    ),
)
