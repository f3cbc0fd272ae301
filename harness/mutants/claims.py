"""Mutants of the idempotency claim, the commit and the decode rules of the reference (fencing, SQL claims, idempotency keys, AAD, redrive and poison handling, strict decoding).

Each builder returns the ``unittest.mock`` patches that install its bug; its entry in
:data:`MUTANTS` below names it."""

from __future__ import annotations

import contextvars
import logging
import secrets
from collections.abc import Callable
from typing import Any
from unittest import mock

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from flowgate.harness.mutants.model import (
    BOOT,
    CH_DUP,
    CH_KILL,
    CH_LONG,
    CH_VT_NO_HB,
    CONC,
    CRYPTO,
    DEAD_POISON,
    DEAD_REPLAY,
    HOSTILE,
    HOSTILE_GEN,
    HOSTILE_LS,
    LIFE_PLAIN,
    LOSS,
    ONCE,
    ORDER,
    PARTNERS,
    REPLAY,
    STD_SQLITE,
    Mutant,
)
from flowgate.reference.bootstrap import Bootstrapper
from flowgate.reference.envelope import MessageBinding
from flowgate.reference.errors import DecodeError, LeaseLost, MessageError, MissingAttribute
from flowgate.reference.idempotency import COMPLETED, IN_PROGRESS, Claimed, ClaimResult, Duplicate
from flowgate.reference.listener import SqsListener, _Flight
from flowgate.reference.sql import SqlStorage
from flowgate.reference.stores import (
    UNCHECKED,
    Effect,
    InMemoryStorage,
    _Record,
    outbox_from_json,
)

log = logging.getLogger(__name__)


def _fifo_parallel_group() -> list[Any]:
    def _run_group(self: SqsListener, flights: list[_Flight]) -> None:
        # as if each message of the group ran on its own thread: no stop at the first unfinished
        # message, and the later messages finish first
        for flight in reversed(flights):
            self._process(flight)

    # ... and trusts that order blindly: no wait for a missing predecessor (sequence number)
    return [
        mock.patch.object(SqsListener, "_run_group", _run_group),
        mock.patch.object(SqsListener, "_predecessor_missing", lambda self, f, cmd: False),  # noqa: PT008
    ]


def _delete_before_handle() -> list[Any]:
    orig_process, orig_delete = SqsListener._process, SqsListener._delete

    def _process(self: SqsListener, f: _Flight) -> bool:
        orig_delete(self, f, {"message_id": f.message_id, "queue": self.queue})
        self.__dict__["_fg_deleted"] = f.message_id
        try:
            return orig_process(self, f)
        finally:
            self.__dict__.pop("_fg_deleted", None)

    def _delete(self: SqsListener, f: _Flight, ctx: Any) -> bool:
        if self.__dict__.get("_fg_deleted") == f.message_id:
            return True
        return orig_delete(self, f, ctx)

    return [
        mock.patch.object(SqsListener, "_process", _process),
        mock.patch.object(SqsListener, "_delete", _delete),
    ]


def _unfenced_commit_fn(orig_commit: Callable[[InMemoryStorage, Effect], Any]) -> Callable[..., Any]:
    def commit(self: InMemoryStorage, effect: Effect) -> None:
        with self._lock:  # "mark" the claim as ours whatever happened since: no fencing
            rec = self._m.records.get(effect.key)
            lease = rec.lease_until if rec is not None else effect.expires_at
            self._m.records[effect.key] = _Record(
                IN_PROGRESS, effect.token, lease, lease, effect.message_type
            )
        orig_commit(self, effect)

    return commit


def _sql_unfenced_commit_fn(orig_commit: Callable[[SqlStorage, Effect], Any]) -> Callable[..., Any]:
    """SQL flavour: the completion ignores the token/status condition (the record is overwritten
    as ours first, whatever another worker did since), then the original commit runs."""

    def commit(self: SqlStorage, effect: Effect) -> None:
        t = self.idempotency
        for attempt in range(3):
            with self._guard(), self.engine.begin() as c:
                n = c.execute(
                    update(t)
                    .where(t.c.key == effect.key)
                    .values(status=IN_PROGRESS, fencing_token=effect.token)
                ).rowcount
                if n == 0:
                    try:
                        with c.begin_nested():
                            c.execute(
                                insert(t).values(
                                    key=effect.key,
                                    status=IN_PROGRESS,
                                    lease_expires_at=effect.expires_at,
                                    fencing_token=effect.token,
                                    expires_at=effect.expires_at,
                                    message_type=effect.message_type,
                                    outbox="[]",
                                )
                            )
                    except IntegrityError:
                        pass
            try:
                orig_commit(self, effect)
                return
            except LeaseLost:  # someone overwrote the record in between: overwrite it again
                if attempt == 2:
                    raise

    return commit


def _sql_claim(*, check: bool) -> Callable[..., ClaimResult]:
    """SQL claim without the conditional write: ``check`` = SELECT first (duplicate only when a
    COMPLETED, unexpired record is seen), else no look at the store at all; never INSERT/UPDATE."""

    def claim(
        self: SqlStorage,
        key: str,
        *,
        now: float,
        lease_until: float,
        message_type: str,
        digest: str | None = None,
    ) -> ClaimResult:
        if check:
            t = self.idempotency
            with self.engine.connect() as c:
                row = c.execute(select(t.c.status, t.c.expires_at, t.c.outbox).where(t.c.key == key)).first()
            if row is not None and row.status == COMPLETED and float(row.expires_at) > now:
                return Duplicate(outbox_from_json(row.outbox, self._registry))
        return Claimed(secrets.randbits(62), lease_until)  # ... and the mark comes later, at commit

    return claim


def _check_then_mark() -> list[Any]:
    def claim(
        self: InMemoryStorage,
        key: str,
        *,
        now: float,
        lease_until: float,
        message_type: str,
        digest: str | None = None,
    ) -> ClaimResult:
        with self._lock:  # the check ...
            rec = self._m.records.get(key)
            if rec is not None and rec.status == COMPLETED and rec.expires_at > now:
                outbox = rec.outbox
            else:
                self._tokens += 1
                return Claimed(self._tokens, lease_until)  # ... and the mark comes later, at commit
        return Duplicate(outbox_from_json(outbox, self._registry))

    return [
        mock.patch.object(InMemoryStorage, "claim", claim),
        mock.patch.object(InMemoryStorage, "commit", _unfenced_commit_fn(InMemoryStorage.commit)),
        mock.patch.object(InMemoryStorage, "extend", lambda self, key, token, lease_until: True),  # noqa: PT008
        mock.patch.object(SqlStorage, "claim", _sql_claim(check=True)),
        mock.patch.object(SqlStorage, "commit", _sql_unfenced_commit_fn(SqlStorage.commit)),
        mock.patch.object(SqlStorage, "extend", lambda self, key, token, lease_until: True),  # noqa: PT008
    ]


def _no_idempotency() -> list[Any]:
    def claim(
        self: InMemoryStorage,
        key: str,
        *,
        now: float,
        lease_until: float,
        message_type: str,
        digest: str | None = None,
    ) -> ClaimResult:
        with self._lock:
            self._tokens += 1
            return Claimed(self._tokens, lease_until)

    return [
        mock.patch.object(InMemoryStorage, "claim", claim),
        mock.patch.object(InMemoryStorage, "commit", _unfenced_commit_fn(InMemoryStorage.commit)),
        mock.patch.object(InMemoryStorage, "extend", lambda self, key, token, lease_until: True),  # noqa: PT008
        mock.patch.object(SqlStorage, "claim", _sql_claim(check=False)),
        mock.patch.object(SqlStorage, "commit", _sql_unfenced_commit_fn(SqlStorage.commit)),
        mock.patch.object(SqlStorage, "extend", lambda self, key, token, lease_until: True),  # noqa: PT008
    ]


_CURRENT_MESSAGE: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "fg_mutant_message", default=None
)


def _idempotency_on_message_id() -> list[Any]:
    orig_process = SqsListener._process

    def _process(self: SqsListener, f: _Flight) -> bool:
        token = _CURRENT_MESSAGE.set(f.message_id)
        try:
            return orig_process(self, f)
        finally:
            _CURRENT_MESSAGE.reset(token)

    def command_key(event_id: str) -> str:
        return f"command:{_CURRENT_MESSAGE.get() or event_id}"

    def event_key(event_id: str, view: str) -> str:
        return f"event:{_CURRENT_MESSAGE.get() or event_id}:{view}"

    return [
        mock.patch.object(SqsListener, "_process", _process),
        mock.patch("flowgate.reference.listener.command_key", command_key),
        mock.patch("flowgate.reference.listener.event_key", event_key),
        mock.patch("flowgate.reference.bus.command_key", command_key),
        mock.patch("flowgate.reference.bus.event_key", event_key),
    ]


def _no_aad() -> list[Any]:
    return [
        mock.patch.object(MessageBinding, "context", lambda self: {"flowgate:version": "1"}),  # noqa: PT008
        mock.patch.object(MessageBinding, "aad", lambda self, key_id: b""),  # noqa: PT008
    ]


def _no_redrive() -> list[Any]:
    orig_attrs = Bootstrapper._queue_attributes

    def _queue_attributes(self: Bootstrapper, name: str, redrive_to: str | None) -> dict[str, str]:
        return orig_attrs(self, name, None)

    def _poison(self: SqsListener, f: _Flight, exc: MessageError) -> bool:
        return False  # never dead-lettered: left for redelivery forever

    return [
        mock.patch.object(Bootstrapper, "_queue_attributes", _queue_attributes),
        mock.patch.object(SqsListener, "_poison", _poison),
    ]


def _no_poison_dlq() -> list[Any]:
    def _poison(self: SqsListener, f: _Flight, exc: MessageError) -> bool:
        if f.receive_count < self.options.max_receive_count:
            return False
        return self._delete(f, {"message_id": f.message_id, "queue": self.queue})  # dropped silently

    return [mock.patch.object(SqsListener, "_poison", _poison)]


def _poison_wrong_reason() -> list[Any]:
    orig = SqsListener._poison

    class _Anything(MessageError):
        reason = "DecodeError"

    def _poison(self: SqsListener, f: _Flight, exc: MessageError) -> bool:
        return orig(self, f, _Anything(str(exc)))  # every poison reported as a DecodeError

    return [mock.patch.object(SqsListener, "_poison", _poison)]


def _strict_unknown_fields() -> list[Any]:
    import flowgate.reference.messages as messages

    orig = messages.from_wire

    def from_wire(obj: Any, registry: Any) -> Any:
        if isinstance(obj, dict) and set(obj) - {"name", "entity", "payload", "metadata"}:
            raise DecodeError("unknown top-level field")  # over-strict: forward compatibility lost
        return orig(obj, registry)

    return [mock.patch.object(messages, "from_wire", from_wire)]


def _no_json_depth_limit() -> list[Any]:
    import flowgate.reference.messages as messages

    return [mock.patch.object(messages, "check_json_depth", lambda text, limit=16: None)]  # noqa: PT008


def _duplicate_keys_accepted() -> list[Any]:
    import flowgate.reference.messages as messages

    return [mock.patch.object(messages, "_unique_object", dict)]  # the last duplicate key wins


def _loose_envelope_version() -> list[Any]:
    import flowgate.reference.envelope as envelope

    # the comparison Python does by default: True == 1 and 1.0 == 1 pass
    return [mock.patch.object(envelope, "is_supported_version", lambda value: value == envelope.VERSION)]


def _command_type_wins() -> list[Any]:
    import flowgate.reference.listener as listener

    def _message_kind(attrs: Any) -> tuple[str, str]:
        # CommandType silently preferred when both type attributes are present
        if "CommandType" in attrs:
            return "command", attrs["CommandType"]
        if "EventType" in attrs:
            return "event", attrs["EventType"]
        raise MissingAttribute("neither CommandType nor EventType attribute present")

    return [mock.patch.object(listener, "_message_kind", _message_kind)]


def _unconditional_row_write() -> list[Any]:
    def _write_row(
        c: Any, table: Any, where: Any, ident: dict[str, str], state: Any, expected: Any, what: str
    ) -> None:
        orig_write_row(c, table, where, ident, state, UNCHECKED, what)

    orig_write_row = SqlStorage._write_row
    return [
        mock.patch("flowgate.reference.stores._check_expected", return_value=None),
        mock.patch.object(SqlStorage, "_write_row", staticmethod(_write_row)),
    ]


def _unfenced_commit() -> list[Any]:
    return [
        mock.patch.object(InMemoryStorage, "commit", _unfenced_commit_fn(InMemoryStorage.commit)),
        mock.patch.object(SqlStorage, "commit", _sql_unfenced_commit_fn(SqlStorage.commit)),
    ]


#: this module's mutants (aggregated, in this order, by :data:`flowgate.harness.mutants.catalog.MUTANTS`)
MUTANTS: tuple[Mutant, ...] = (
    Mutant(
        "fifo-parallel-group",
        "processes a FIFO group's messages in parallel / out of order, without the sequence-number wait",
        (ORDER,),
        ("nonmonotonic", "skip", "unexpected-business-dead-letter"),
        _fifo_parallel_group,
        scenarios=(LIFE_PLAIN, DEAD_REPLAY, CONC),
    ),
    Mutant(
        "delete-before-handle",
        "deletes the message before handling it (a crash loses it)",
        (LOSS,),
        ("lost",),
        _delete_before_handle,
        scenarios=(CH_KILL, CH_VT_NO_HB, CH_LONG),
    ),
    Mutant(
        "check-then-mark",
        "idempotency check, then mark at commit: not one atomic conditional write",
        (ONCE,),
        ("duplicate-projection", "unexpected-business-dead-letter"),
        _check_then_mark,
        scenarios=(STD_SQLITE,),
    ),  # STD_PG: race-dependent (killed once, survived once)
    Mutant(
        "no-idempotency",
        "no idempotency store: every delivery is handled",
        (ONCE,),
        ("duplicate-projection", "unexpected-business-dead-letter"),
        _no_idempotency,
        scenarios=(CH_DUP,),
    ),
    Mutant(
        "idempotency-on-message-id",
        "idempotency key from the SQS MessageId instead of the command id",
        (ONCE,),
        ("duplicate-projection", "unexpected-business-dead-letter"),
        _idempotency_on_message_id,
        scenarios=(STD_SQLITE, PARTNERS),
    ),
    Mutant(
        "no-aad",
        "AAD/encryption context not bound: a ciphertext moved to another destination decrypts",
        (CRYPTO, HOSTILE_GEN, HOSTILE + "[swapped_aad-encrypted-fifo]"),
        ("integrity-breach",),
        _no_aad,
    ),
    Mutant(
        "no-redrive",
        "no redrive policy and the listener never dead-letters",
        (LOSS, HOSTILE_GEN, HOSTILE + "[unknown_type-plaintext-fifo]"),
        ("poison-not-dead-lettered", "no-drain"),
        _no_redrive,
        scenarios=(BOOT,),
    ),
    Mutant(
        "unconditional-row-write",
        "entity/view rows written blindly: concurrent projections lose updates",
        (REPLAY,),
        ("replay-divergence",),
        _unconditional_row_write,
        scenarios=(CONC,),
    ),
    # unfenced-commit: no scenario kills it on SqlStorage -- the pre-commit heartbeat
    # (ChangeMessageVisibility with a stale receipt, then a fenced extend()) stops a superseded
    # worker before it reaches the commit; observed surviving test_visibility_expiry[no-heartbeat]
    Mutant(
        "unfenced-commit",
        "the effect commit ignores the claim's fencing token",
        (ONCE,),
        ("duplicate-projection", "unexpected-business-dead-letter"),
        _unfenced_commit,
    ),
    Mutant(
        "no-json-depth-limit",
        "no nesting limit before parsing: a 17-deep body is accepted (and a deep one only survives "
        "because the parser's RecursionError is caught)",
        (HOSTILE_GEN, HOSTILE + "[depth_17-plaintext-fifo]", HOSTILE + "[depth_17-encrypted-standard]"),
        ("poison-not-dead-lettered", "unexpected"),
        _no_json_depth_limit,
    ),
    Mutant(
        "loose-envelope-version",
        "the envelope's Version is compared with ==, so true and 1.0 pass as version 1",
        (
            HOSTILE + "[env_version_true-encrypted-fifo]",
            HOSTILE + "[env_version_float-encrypted-standard]",
        ),
        ("poison-not-dead-lettered", "unexpected"),
        _loose_envelope_version,
    ),
    Mutant(
        "command-type-wins",
        "a message with both CommandType and EventType is taken as a command (EventType ignored)",
        (
            HOSTILE + "[both_type_attributes-plaintext-fifo]",
            HOSTILE + "[both_type_attributes-encrypted-standard]",
        ),
        ("poison-not-dead-lettered", "unexpected"),
        _command_type_wins,
    ),
    Mutant(
        "duplicate-keys-accepted",
        "duplicate JSON object keys are accepted (the last one wins)",
        (HOSTILE_GEN, HOSTILE + "[duplicate_payload_key-plaintext-fifo]"),
        ("poison-not-dead-lettered", "unexpected"),
        _duplicate_keys_accepted,
    ),
    Mutant(
        "poison-wrong-reason",
        "every poison message is dead-lettered with the reason code DecodeError",
        (
            HOSTILE_GEN,
            HOSTILE + "[missing_attribute-plaintext-fifo]",
            HOSTILE + "[tampered-encrypted-standard]",
            HOSTILE + "[oversized-plaintext-fifo]",
        ),
        ("wrong-dead-letter-reason",),
        _poison_wrong_reason,
        scenarios=(HOSTILE_LS,),
    ),
    Mutant(
        "strict-unknown-fields",
        "the decoder refuses unknown top-level fields (valid newer messages are dead-lettered)",
        (
            HOSTILE_GEN,
            HOSTILE + "[unknown_top_field-plaintext-fifo]",
            HOSTILE + "[depth_3_extra-encrypted-standard]",
        ),
        ("lost", "valid-dead-lettered"),
        _strict_unknown_fields,
    ),
    Mutant(
        "no-poison-dlq",
        "poison is deleted silently instead of forwarded to the DLQ with a reason",
        (
            LOSS,
            HOSTILE_GEN,
            HOSTILE + "[bad_json-plaintext-fifo]",
            HOSTILE + "[missing_attribute-encrypted-standard]",
        ),
        ("poison-not-dead-lettered",),
        _no_poison_dlq,
        scenarios=(DEAD_POISON, HOSTILE_LS),
    ),
)
