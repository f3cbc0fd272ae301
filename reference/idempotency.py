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
  fenced commit will then fail with :class:`~reference.errors.LeaseLost`). A lease longer than
  the visibility would make redeliveries "busy" and burn receive counts; a shorter one would let
  two workers run the handler while one still holds the message.
* A heartbeat (``ChangeMessageVisibility``) extends the lease by the same amount.
* Expiry is computed from timestamps, never left to a store TTL.
"""

from __future__ import annotations

from dataclasses import dataclass

from reference.messages import Event

IN_PROGRESS = "IN_PROGRESS"
COMPLETED = "COMPLETED"

#: How long a COMPLETED record keeps recognising duplicates (SourceFlow: 24 h).
DEFAULT_TTL_SECONDS = 24 * 3600.0


def command_key(event_id: str) -> str:
    return f"command:{event_id}"


def event_key(event_id: str, view: str) -> str:
    return f"event:{event_id}:{view}"


@dataclass(frozen=True)
class Claimed:
    """The caller owns the key until ``lease_until``; writes must present ``token``."""

    token: int
    lease_until: float


@dataclass(frozen=True)
class Duplicate:
    """The key completed already; ``outbox`` are the events to (re)publish, same ids."""

    outbox: tuple[Event, ...]


@dataclass(frozen=True)
class Busy:
    """Another worker holds an unexpired lease until ``until``."""

    until: float


ClaimResult = Claimed | Duplicate | Busy
