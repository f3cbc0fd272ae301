"""Idempotency keys, claim results and the timing rules of a claim.

A key names the *message identity*, never the SQS MessageId, so producer resends, SNS
re-publishes and DLQ replays are all recognised:

* ``command:{eventId}`` -- one command's effect;
* ``event:{eventId}:{view}`` -- one event projected into one view.

Timeline of one claim (powertools' conditional put, plus fencing)::

    receive            visibility deadline = received + VT
      |---- lease (IN_PROGRESS, lease_expires_at = deadline) ----|
      |  claim  handle  heartbeat(extends both by VT)  commit(fenced by token)  delete
                                                      |-- COMPLETED until expires_at (TTL) --|

* ``claim`` is ONE conditional write: insert; or take over an IN_PROGRESS row whose lease expired;
  or take over a COMPLETED row whose ``expires_at`` passed. A takeover gets a new fencing token.
* The lease equals the message's visibility deadline: when SQS hands the message to another
  worker, the lease has expired too, so the successor can take over (and the predecessor's
  fenced commit will then fail with :class:`~flowgate.reference.errors.LeaseLost`). A lease longer than
  the visibility would make redeliveries "busy" and burn receive counts; a shorter one would let
  two workers run the handler while one still holds the message.
* A heartbeat (``ChangeMessageVisibility``) extends the lease by the same amount.
* Expiry is computed from timestamps, never left to a store TTL.
* A dead-letter commit (a business failure given up on) ends the claim as ``DEAD_LETTERED``, not
  ``COMPLETED``: the key is known (content binding holds) but counts as no effect, so the next
  claim of the same content -- a DLQ replay once the cause is fixed, or a resend -- is
  :class:`Claimed` and decides again (D24).

Content binding (powertools' ``payload_validation_jmespath`` / ``IdempotencyValidationError``):
a record also stores the :func:`message_digest` of what its key identifies. A claim with a known
key (IN_PROGRESS, or COMPLETED and unexpired) but another digest is a :class:`Conflict`, never a
duplicate: the listener dead-letters it as ``IdempotencyConflict``. The digest covers what makes
the message *the same* -- kind, name, entity id, sequence number, the canonical payload, and for
events the causation id and the view -- and not what legitimately differs between copies of one
message: ``isReplay`` (a DLQ or command-store replay), ``occurredOn``, correlation id and
properties (tracing), the SQS MessageId. So a producer resend, an SNS re-publish and a DLQ replay
digest equal. A record without a digest (written before the column existed, or by local
dispatch) matches any.

TTL rule (docs/decisions.md D22): a COMPLETED record must outlive every copy of its message, i.e.
the TTL must be at least the queue's retention plus the DLQ's retention (a FIFO DLQ resets the
enqueue timestamp on the move); :class:`~flowgate.reference.config.BusOptions` refuses a shorter one.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from flowgate.reference.messages import Command, Event, payload_to_dict

IN_PROGRESS = "IN_PROGRESS"
COMPLETED = "COMPLETED"
#: The command was dead-lettered (a business failure, recorded with its reason): the record keeps
#: the content digest (an id reused with other content is still a :class:`Conflict`) but is not an
#: effect -- a claim takes it over like an expired lease, so a DLQ replay after the cause is fixed
#: takes effect (docs/decisions.md D24). Never a :class:`Duplicate`.
DEAD_LETTERED = "DEAD_LETTERED"

#: How long a COMPLETED record keeps recognising duplicates: 29 days, longer than the default
#: queue retention (14 days) plus the DLQ's (14 days), see the TTL rule above. (SourceFlow's 24 h
#: let a redelivery or a DLQ replay after a day apply a second time.)
DEFAULT_TTL_SECONDS = 29 * 24 * 3600.0


def command_key(event_id: str) -> str:
    return f"command:{event_id}"


def event_key(event_id: str, view: str) -> str:
    return f"event:{event_id}:{view}"


def message_digest(message: Command | Event, view: str | None = None) -> str:
    """SHA-256 (hex) of the canonical JSON of what a key identifies (see the module docstring)."""
    canonical: dict[str, object] = {
        "kind": "command" if isinstance(message, Command) else "event",
        "name": message.name,
        "entityId": message.entity_id,
        "sequenceNo": message.metadata.sequence_no,
        "payload": payload_to_dict(message.payload),
    }
    if isinstance(message, Event):
        canonical["causationId"] = message.metadata.causation_id
        canonical["view"] = view
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


@dataclass(frozen=True)
class Claimed:
    """The caller owns the key until ``lease_until``; writes must present ``token``."""

    token: int
    lease_until: float


@dataclass(frozen=True)
class Duplicate:
    """The key completed already; ``outbox`` are the events to (re)publish, same ids;
    ``commands`` the follow-up commands its commit numbered and recorded (D33): the caller sends
    those still unsent (:meth:`~flowgate.reference.bus.CommandBus.send_unsent`), never new ones."""

    outbox: tuple[Event, ...]
    commands: tuple[Command, ...] = ()


@dataclass(frozen=True)
class Busy:
    """Another worker holds an unexpired lease until ``until``."""

    until: float


@dataclass(frozen=True)
class Conflict:
    """The key is known (IN_PROGRESS, COMPLETED or DEAD_LETTERED) with another content digest: not a
    duplicate."""

    stored_digest: str


ClaimResult = Claimed | Duplicate | Busy | Conflict
