"""One error tree for the reference bus.

Every error derives from :class:`FlowgateError`; each category also derives from the standard
exception type it resembles (hypothesis' ``InvalidArgument(..., TypeError)`` style), so callers
can catch either. AWS client errors are translated with ``raise ... from exc`` so the cause is
kept. :class:`flowgate.reference.hooks.WorkerCrash` is deliberately *not* part of this tree: it derives
from ``BaseException`` and must never be caught.
"""

from __future__ import annotations


class FlowgateError(Exception):
    """Root of every error raised by the reference bus."""


class ConfigurationError(FlowgateError, ValueError):
    """The bus configuration is inconsistent (raised at start-up, or when a command is routed nowhere)."""


class MessageError(FlowgateError, ValueError):
    """A message that can never be processed ("poison"): it goes to the queue's DLQ with a reason."""

    reason = "InvalidMessage"


class DecodeError(MessageError):
    """The body is not valid JSON of the wire format, or contradicts its attributes."""

    reason = "DecodeError"


class UnknownMessageType(MessageError):
    """The message names a type that is not in the explicit registry."""

    reason = "UnknownMessageType"


class MissingAttribute(MessageError):
    """A required SQS/SNS message attribute is absent."""

    reason = "MissingAttribute"


class OversizedMessage(MessageError):
    """The body exceeds the 256 KiB SQS/SNS limit."""

    reason = "OversizedMessage"


class DecryptionError(MessageError):
    """The envelope cannot be opened: tampered, wrong key, wrong context or wrong destination."""

    reason = "DecryptionError"


class IdempotencyConflict(MessageError):
    """The message's idempotency key (its eventId) is already known with different content: a
    forged or corrupted message reusing an id. Never treated as a duplicate (powertools'
    ``IdempotencyValidationError``)."""

    reason = "IdempotencyConflict"


class HandlerError(MessageError):
    """A saga or view raised something unexpected (not a :class:`BusinessError`) on a decoded
    message. Retried by redelivery (claim released), then dead-lettered with this reason on the
    receive where ApproximateReceiveCount >= ``max_receive_count`` (docs/decisions.md D21)."""

    reason = "HandlerError"


class BusinessError(FlowgateError):
    """The domain rejected a command (e.g. an invalid state transition). Retried, then business-DLQ'd."""


class InvalidTransition(BusinessError, ValueError):
    """A command is not allowed in the entity's current state."""


class StoreError(FlowgateError, RuntimeError):
    """A persistence failure."""


class LeaseLost(StoreError):
    """A fenced write was refused: the idempotency claim was taken over by another worker."""


class SequenceConflict(StoreError):
    """The command store already holds a different command with this (entity, sequence number)."""


class WriteConflict(StoreError):
    """An entity or view row changed between the read a decision was based on and the commit.

    Transient: the listener re-reads and decides again (the claim is still held).
    """


class TransportError(FlowgateError, ConnectionError):
    """An AWS call failed (throttling, outage, missing resource). Never treated as poison."""


class StoreUnavailable(StoreError, TransportError):
    """The store cannot be reached or cannot serve now: connection refused/reset/lost, pool timeout,
    server shutting down, ``database is locked`` (SQLAlchemy ``OperationalError``,
    ``InterfaceError``, ``DisconnectionError``, ``TimeoutError``).

    An infrastructure failure like any :class:`TransportError`: never poison; the listener leaves
    the message for redelivery and opens its circuit breaker (:mod:`flowgate.reference.breaker`) until
    :meth:`~flowgate.reference.stores.Storage.ping` answers again.
    """


class StoreRefused(StoreError):
    """The database deterministically refused a statement for what it contains (SQLAlchemy
    ``DataError``: a value out of range, too long for its column, not encodable).

    Not an outage (the same message fails the same way on every attempt, whatever the store's
    health) and not a :class:`TransportError`: it never opens the circuit breaker. Whoever
    classifies message failures may treat it as poison.
    """


class DispatchError(TransportError):
    """Sending a command or publishing an event failed (including per-entry batch failures)."""
