"""Mutants of the reference's listener and its entities (row writes, entity locks, heartbeat, SIGTERM, poll loop, wire fields, breaker, store errors, redrive headroom).

Each builder returns the ``unittest.mock`` patches that install its bug; its entry in
:data:`MUTANTS` below names it."""

from __future__ import annotations

import json
import logging
import os
import secrets
import signal
import types
import weakref
from collections.abc import Callable
from dataclasses import replace
from typing import Any
from unittest import mock

from flowgate.harness.mutants.model import (
    CH_SIGTERM,
    CH_VT_HB,
    CONCURRENCY,
    CRYPTO,
    LIFE_KMS,
    LIFE_PLAIN,
    ONCE_EFFECT,
    OUT_HEARTBEAT,
    OUT_KMS,
    OUT_SQS,
    OUT_STORE,
    OUTAGES,
    READS,
    REPLAY,
    RESTART,
    SERIAL,
    STATEFUL,
    TRACE,
    Mutant,
)
from flowgate.reference.bootstrap import Bootstrapper
from flowgate.reference.breaker import CircuitBreaker
from flowgate.reference.dispatchers import message_attributes
from flowgate.reference.errors import LeaseLost, TransportError
from flowgate.reference.idempotency import (
    COMPLETED,
    IN_PROGRESS,
    Busy,
    Claimed,
    ClaimResult,
    Conflict,
    Duplicate,
)
from flowgate.reference.listener import SqsListener, _Flight, _Heartbeat
from flowgate.reference.messages import (
    Command,
    Event,
    Metadata,
    Payload,
    derived_event_id,
    event_for,
    to_wire,
)
from flowgate.reference.sql import SqlStorage
from flowgate.reference.stores import (
    Effect,
    EntityWrite,
    InMemoryStorage,
    _Record,
    digests_match,
    outbox_from_json,
)

log = logging.getLogger(__name__)


def _duplicate_reapplies_row() -> list[Any]:
    """A recognised duplicate of a command re-applies its effect to the entity row (the command is
    appended to the order's ``applied`` log again) and then re-publishes the recorded outbox as the
    reference does: the same event ids, so nothing new reaches the topic. Only a read shows it."""

    def wrap(orig: Callable[..., ClaimResult]) -> Callable[..., ClaimResult]:
        def claim(self: Any, key: str, **kwargs: Any) -> ClaimResult:
            result = orig(self, key, **kwargs)
            if isinstance(result, Duplicate) and key.startswith("command:") and result.outbox:
                first = result.outbox[0]
                _reapply(self, first.entity_id, key.removeprefix("command:"), orig, kwargs)
            return result

        return claim

    def _reapply(
        storage: Any, entity_id: str, command_id: str, orig: Callable[..., ClaimResult], kwargs: Any
    ) -> None:
        state = storage.get_entity("order", entity_id)
        if state is None or command_id not in state.get("applied", []):
            return
        new = dict(state, applied=[*state["applied"], command_id])
        # written through the store's own claim + commit (a key of its own), like any effect
        key = f"reapply:{command_id}:{secrets.token_hex(8)}"
        fresh = orig(storage, key, **kwargs)
        if isinstance(fresh, Claimed):
            storage.commit(
                Effect(
                    key=key,
                    token=fresh.token,
                    message_type="reapply",
                    expires_at=kwargs["lease_until"],
                    entities=(EntityWrite("order", entity_id, new, expected=state),),
                )
            )

    return [
        mock.patch.object(InMemoryStorage, "claim", wrap(InMemoryStorage.claim)),
        mock.patch.object(SqlStorage, "claim", wrap(SqlStorage.claim)),
    ]


def _process_local_entity_lock() -> list[Any]:
    """The claim and its fence live in the store *client's* memory (a per-process lock table
    keyed like the idempotency records: held = Busy, taken over once its lease ran out, checked by
    commit, extend and release); the shared data only ever sees COMPLETED records. One store
    client (every serial simulation: all workers share one store object) behaves exactly as the
    reference; two processes each with its own client over the same data both claim, and both
    commit."""
    tables: weakref.WeakKeyDictionary[InMemoryStorage, dict[str, _Record]] = weakref.WeakKeyDictionary()
    orig_commit = InMemoryStorage.commit

    def local(store: InMemoryStorage) -> dict[str, _Record]:
        return tables.setdefault(store, {})

    def claim(
        self: InMemoryStorage,
        key: str,
        *,
        now: float,
        lease_until: float,
        message_type: str,
        digest: str | None = None,
    ) -> ClaimResult:
        held = local(self)
        with self._lock:
            rec = self._m.records.get(key)
            if rec is not None and rec.status == COMPLETED and rec.expires_at > now:
                if not digests_match(rec.digest, digest):
                    assert rec.digest is not None
                    return Conflict(rec.digest)
                return Duplicate(outbox_from_json(rec.outbox, self._registry))
            mine = held.get(key)
            if mine is not None and not digests_match(mine.digest, digest):
                assert mine.digest is not None
                return Conflict(mine.digest)
            if mine is not None and mine.lease_until > now:
                return Busy(mine.lease_until)
            self._tokens += 1
            held[key] = _Record(
                IN_PROGRESS, self._tokens, lease_until, lease_until, message_type, digest=digest
            )
            return Claimed(self._tokens, lease_until)

    def extend(self: InMemoryStorage, key: str, token: int, lease_until: float) -> bool:
        mine = local(self).get(key)
        if mine is None or mine.token != token:
            return False
        mine.lease_until = max(mine.lease_until, lease_until)
        mine.expires_at = max(mine.expires_at, lease_until)
        return True

    def release(self: InMemoryStorage, key: str, token: int) -> None:
        held = local(self)
        if key in held and held[key].token == token:
            del held[key]

    def commit(self: InMemoryStorage, effect: Effect) -> None:
        held = local(self)
        mine = held.get(effect.key)
        if mine is None or mine.token != effect.token:
            raise LeaseLost(f"claim on {effect.key!r} is no longer ours")
        with self._lock:  # our lock says it is ours: the shared record is (over)written as ours
            self._m.records[effect.key] = _Record(
                IN_PROGRESS,
                mine.token,
                mine.lease_until,
                mine.expires_at,
                mine.message_type,
                digest=mine.digest,
            )
        orig_commit(self, effect)
        held.pop(effect.key, None)

    return [
        mock.patch.object(InMemoryStorage, "claim", claim),
        mock.patch.object(InMemoryStorage, "extend", extend),
        mock.patch.object(InMemoryStorage, "release", release),
        mock.patch.object(InMemoryStorage, "commit", commit),
    ]


def _heartbeat_holds_given_up() -> list[Any]:
    """The heartbeat extends every message of the poll until the poll ends, also those it gave up
    (busy elsewhere, waiting for the predecessor): a slow handler of another group holds them."""
    return [mock.patch.object(_Heartbeat, "wanted", staticmethod(lambda flight: not flight.deleted))]


def _committed_claim_kept() -> list[Any]:
    """A command keeps its claim's key and token after the commit, so the heartbeat's lease
    ``extend`` of the COMPLETED record is False and the message leaves the heartbeat while it waits
    for its poll's publish and delete: its visibility lapses and another worker receives it."""
    claims: dict[int, tuple[str, int]] = {}
    orig_beat, orig_ready = SqsListener._beat, SqsListener._ready

    def _beat(self: SqsListener, f: _Flight) -> bool:
        if f.key is not None and f.token is not None:
            claims[id(f)] = (f.key, f.token)
        return orig_beat(self, f)

    def _ready(
        self: SqsListener, f: _Flight, ctx: Any, outbox: Any = (), *, publish_point: bool = False
    ) -> bool:
        if publish_point and id(f) in claims:
            f.key, f.token = claims.pop(id(f))
        return orig_ready(self, f, ctx, outbox, publish_point=publish_point)

    return [mock.patch.object(SqsListener, "_beat", _beat), mock.patch.object(SqsListener, "_ready", _ready)]


def _sigterm_abandons_batch() -> list[Any]:
    real_signal = signal.signal

    def install(signum: int, handler: Any) -> Any:
        def abandon(signo: int, frame: Any) -> None:
            log.info("signal %d: exiting at once", signo)  # no stop flag, no drain of the batch in hand
            os._exit(0)

        return real_signal(signum, abandon)

    shim = types.SimpleNamespace(signal=install, SIGTERM=signal.SIGTERM, SIGINT=signal.SIGINT)
    return [mock.patch("flowgate.reference.worker.signal", shim)]


def _poll_loop_dies_on_error() -> list[Any]:
    def run(self: SqsListener, stop: Any) -> None:
        while not stop.is_set():
            self.poll_once()
            if self.breaker.is_open:  # a transport error escapes: the listener thread (and the worker) ends
                raise TransportError(self.breaker.status().error)

    return [mock.patch.object(SqsListener, "run", run)]


def _plaintext_on_encrypted_bus() -> list[Any]:
    def no_cipher(kms: Any, key_id: str, **_: Any) -> None:
        return None  # the configured key is never wired: dispatchers seal nothing, listeners accept plaintext

    return [mock.patch("flowgate.reference.worker.KmsEnvelopeCipher", no_cipher)]


def _drops_correlation_id() -> list[Any]:
    def event_for(command: Command, index: int, payload: Payload) -> Event:
        meta = command.metadata
        eid = derived_event_id(meta.event_id, index, type(payload).message_name)
        return Event(
            payload=payload,
            entity_id=command.entity_id,
            metadata=Metadata(
                event_id=eid,
                occurred_on=meta.occurred_on,
                sequence_no=meta.sequence_no,
                correlation_id=eid,  # a new chain per event: the command's correlation id is dropped
                is_replay=meta.is_replay,
                causation_id=meta.event_id,
            ),
        )

    return [mock.patch("flowgate.reference.bus.event_for", event_for)]


def _wire_format_drift() -> list[Any]:
    orig = to_wire

    def drifted(message: Any) -> dict[str, Any]:
        obj = dict(orig(message))
        meta = dict(obj["metadata"])
        meta["sequence_no"] = meta.pop("sequenceNo")  # snake_case creeps into the camelCase contract
        obj["metadata"] = meta
        return obj

    return [mock.patch("flowgate.reference.messages.to_wire", drifted)]


def _drops_causation_id() -> list[Any]:
    orig = event_for

    def wrapped(command: Command, index: int, payload: Payload) -> Event:
        event = orig(command, index, payload)
        # the event no longer says which command caused it
        return replace(event, metadata=replace(event.metadata, causation_id=None))

    return [mock.patch("flowgate.reference.bus.event_for", wrapped)]


def _drops_correlation_attribute() -> list[Any]:
    orig = message_attributes

    def attributes(message: Any, *, encrypted: bool, traceparent: str | None) -> dict[str, Any]:
        attrs = orig(message, encrypted=encrypted, traceparent=traceparent)
        attrs.pop("CorrelationId", None)  # the body keeps it; the wire attribute is never written
        return attrs

    return [mock.patch("flowgate.reference.dispatchers.message_attributes", attributes)]


def _no_heartbeat() -> list[Any]:
    def _beat(self: SqsListener, f: _Flight) -> bool:
        return True  # never ChangeMessageVisibility, never extends the lease

    return [mock.patch.object(SqsListener, "_beat", _beat)]


def _no_breaker() -> list[Any]:
    def trip(self: CircuitBreaker, dependency: str, error: object) -> None:
        return None  # never opens: the listener keeps receiving while its dependency is down

    return [mock.patch.object(CircuitBreaker, "trip", trip)]


def _store_error_escapes_poll() -> list[Any]:
    orig_outage = SqsListener._outage

    def _beat(self: SqsListener, f: _Flight) -> bool:
        vt = self.options.visibility_timeout
        now = self.clock.now()
        if not self.options.heartbeat or now - f.extended_at <= vt / 2:
            return True
        try:
            self.sqs.change_message_visibility(
                QueueUrl=self.queue_url, ReceiptHandle=f.receipt, VisibilityTimeout=vt
            )
        except Exception:
            return False
        f.deadline, f.extended_at = now + vt, now
        if f.key is not None and f.token is not None:
            return self.processor.storage.extend(f.key, f.token, f.deadline)  # a store error escapes
        return True

    def _outage(self: SqsListener, exc: BaseException, where: str) -> None:
        if where == "sqs":
            raise exc  # the failed ReceiveMessage escapes poll_once, as before the breaker
        orig_outage(self, exc, where)

    return [
        mock.patch.object(SqsListener, "_beat", _beat),
        mock.patch.object(SqsListener, "_outage", _outage),
    ]


def _heartbeat_dies_on_error() -> list[Any]:
    def _beat_one(self: _Heartbeat, flight: _Flight) -> None:
        self.listener._beat(flight)  # an exception ends the heartbeat thread; nothing restarts it

    return [mock.patch.object(_Heartbeat, "_beat_one", _beat_one)]


def _redrive_without_headroom() -> list[Any]:
    orig_attrs = Bootstrapper._queue_attributes

    def _queue_attributes(self: Bootstrapper, name: str, redrive_to: str | None) -> dict[str, str]:
        attrs = orig_attrs(self, name, redrive_to)
        if "RedrivePolicy" in attrs:  # SQS's redrive fires on the listener's own poison threshold
            attrs["RedrivePolicy"] = json.dumps(
                {
                    "deadLetterTargetArn": redrive_to,
                    "maxReceiveCount": str(self.config.options.max_receive_count),
                }
            )
        return attrs

    return [mock.patch.object(Bootstrapper, "_queue_attributes", _queue_attributes)]


#: this module's mutants (aggregated, in this order, by :data:`flowgate.harness.mutants.catalog.MUTANTS`)
MUTANTS: tuple[Mutant, ...] = (
    Mutant(
        "process-local-entity-lock",
        "the idempotency claim and its fence are a lock in the store client's process memory: "
        "correct with one process, two processes both claim and both commit",
        (CONCURRENCY + "::test_processes_sharing_a_store_apply_each_effect_once",),
        ("duplicate-projection", "replay-divergence", "unexpected-business-dead-letter"),
        _process_local_entity_lock,
    ),
    Mutant(
        "heartbeat-holds-given-up",
        "the heartbeat keeps extending messages the poll gave up until the whole poll ends: a FIFO "
        "group's head waits behind a slow handler while its successor, in flight elsewhere, is "
        "redelivered and handled without it",
        (CONCURRENCY + "::test_processes_sharing_a_store_apply_each_effect_once",),
        ("unexpected-business-dead-letter", "skip", "nonmonotonic"),
        _heartbeat_holds_given_up,
    ),
    Mutant(
        "committed-claim-kept",
        "a command keeps its claim's token after the commit: the heartbeat's lease extend fails on "
        "the COMPLETED record and drops the message while it waits for its poll's delete",
        (OUTAGES + "::test_a_finished_command_stays_under_the_heartbeat_until_its_poll_deletes_it",),
        (),
        _committed_claim_kept,
        scenarios=(CH_VT_HB,),
    ),
    # contract v1.3: only the reads see it (the same event ids are re-published, nothing new)
    Mutant(
        "duplicate-reapplies-row",
        "a recognised duplicate re-applies the command to the entity row (its command log) before "
        "re-publishing the recorded events",
        # the simulator's properties with reads (SimConfig.reads: exactly-once, the stateful
        # machine) see it through read_state; the simulator's replay property compares the live
        # entity row with the rebuilt one (the gate's replay check compares event identities
        # only, so through the gate only reads see it)
        (READS, ONCE_EFFECT, STATEFUL, REPLAY),
        ("double-effect", "replay-divergence"),
        _duplicate_reapplies_row,
    ),
    # process lifecycle, transport outages, heartbeats against real visibility timers and tracing
    # are not modelled by the simulated properties: killers=() keeps those scenario-only mutants
    # out of the properties suite (``flowgate mutants --suite scenarios`` runs them)
    Mutant(
        "sigterm-abandons-batch",
        "SIGTERM exits the worker at once: the batch in hand is left unfinished",
        (),
        ("scenario:torn-batch",),
        _sigterm_abandons_batch,
        scenarios=(CH_SIGTERM,),
    ),
    Mutant(
        "poll-loop-dies-on-error",
        "the listener's run loop ends on the first transport error "
        "(a LocalStack/SQS outage stops the worker)",
        (),
        ("scenario:worker-died-in-outage",),
        _poll_loop_dies_on_error,
        scenarios=(RESTART,),
    ),
    Mutant(
        "plaintext-on-encrypted-bus",
        "a configured KMS key is never wired: dispatchers send plaintext (and listeners accept it)",
        (CRYPTO,),
        ("unencrypted-wire",),
        _plaintext_on_encrypted_bus,
        scenarios=(LIFE_KMS,),
    ),
    Mutant(
        "drops-correlation-id",
        "events get a correlation id of their own instead of the command's",
        (TRACE,),
        ("scenario:correlation-id",),
        _drops_correlation_id,
        scenarios=(LIFE_PLAIN,),
    ),
    Mutant(
        "wire-format-drift",
        "the wire body writes metadata.sequence_no instead of the contract's sequenceNo",
        (SERIAL,),
        ("schema", "round-trip"),
        _wire_format_drift,
    ),
    Mutant(
        "drops-causation-id",
        "events do not carry the eventId of the command that caused them",
        (),
        ("scenario:causation-id",),
        _drops_causation_id,
        scenarios=(LIFE_PLAIN,),
    ),
    Mutant(
        "drops-correlation-attribute",
        "commands and events are sent without the CorrelationId attribute",
        (TRACE,),
        ("scenario:correlation-id",),
        _drops_correlation_attribute,
        scenarios=(LIFE_PLAIN,),
    ),
    Mutant(
        "no-breaker",
        "no circuit breaker: the listener keeps receiving while a dependency is down",
        (OUTAGES,),
        ("outage-receive-storm", "outage-not-reported", "valid-dead-lettered"),
        _no_breaker,
        scenarios=(OUT_KMS, OUT_STORE),
    ),
    Mutant(
        "store-error-escapes-poll",
        "a store error in a lease extension, or a failed ReceiveMessage, escapes the poll",
        (OUTAGES,),
        ("poll-escaped",),
        _store_error_escapes_poll,
        scenarios=(OUT_SQS,),
    ),
    Mutant(
        "heartbeat-dies-on-error",
        "the heartbeat thread dies on the first failing beat and is never restarted",
        (OUT_HEARTBEAT,),
        ("heartbeat-dead",),
        _heartbeat_dies_on_error,
    ),
    Mutant(
        "redrive-without-headroom",
        "the SQS redrive maxReceiveCount equals the listener's poison threshold",
        (OUTAGES,),
        ("valid-dead-lettered", "dead-letter-without-reason"),
        _redrive_without_headroom,
    ),
    Mutant(
        "no-heartbeat",
        "never calls ChangeMessageVisibility nor extends the lease during slow handlers",
        (),
        ("scenario:taken-over-despite-heartbeat",),
        _no_heartbeat,
        scenarios=(CH_VT_HB,),
    ),
)
