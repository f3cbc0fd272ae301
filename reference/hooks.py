"""The seam between the reference bus and whoever drives it: time, randomness, faults, observations.

The reference never imports the harness. Instead every component that needs time or
randomness, can be crashed, or has something worth recording takes small collaborators, all
defaulting to harmless production behaviour:

* :class:`Clock` -- wall time and sleeping. The simulator supplies a virtual clock, so lease
  expiry, visibility deadlines and data-key cache ages all follow simulated time.
* :class:`Randomness` -- every random draw the reference makes: AES-GCM nonces
  (:class:`flowgate.reference.envelope.KmsEnvelopeCipher`), fresh command ids
  (:func:`flowgate.reference.messages.new_command`) and SQL fencing tokens
  (:class:`flowgate.reference.sql.SqlStorage`). The default, :class:`SystemRandomness`, is the OS CSPRNG
  (``os.urandom`` / :mod:`secrets`); the simulator supplies a seeded source so a run is
  reproducible. Nothing else in the reference draws OS entropy; the circuit breakers' back-off
  jitter is a ``random.Random`` seeded with the listener's queue name (:mod:`flowgate.reference.breaker`),
  deterministic by design and not secret. Security: no configuration value, environment
  variable or ``BusOptions`` field selects a randomness source -- only code that builds a
  runtime and passes one (``build_runtime(randomness=...)``) can, the reference ships no
  non-cryptographic source, and :class:`~flowgate.reference.envelope.KmsEnvelopeCipher` logs a WARNING
  when it is given a source whose ``cryptographic`` is false (nonces would be predictable).
* :class:`Faults` -- called at every named :data:`FAULT_POINTS` entry of the listener's
  processing step. A fault injector may raise :class:`WorkerCrash` (the worker "dies" right
  there: nothing after the point runs, no cleanup, no delete), or advance the clock (a stall
  past the visibility timeout), or do nothing.
* :class:`Observer` -- receives one call per observable step (see :data:`OBSERVATIONS`).
  The harness turns these into history operations; production code passes
  :class:`NullObserver`.

Keeping them as plain protocols means the same listener code runs in production, on
the deterministic simulator and under LocalStack chaos, and a fault injected by name hits
exactly the same line everywhere.
"""

from __future__ import annotations

import json
import os
import secrets
import time
import uuid
from collections.abc import Mapping
from typing import Any, Final, Protocol

#: Named points inside the listener's processing step, in the order they are reached for one
#: message. ``mid_handler`` sits between the saga's decision and the atomic commit of its
#: effect, so a crash there must leave no effect; ``after_commit_before_record`` sits right after
#: the commit, before the worker records the ``effect`` (or ``project``) ``ok`` -- a SIGKILL in
#: that window leaves an effect the history holds only as an open ``invoke``;
#: ``after_effect_before_delete`` sits after the record, so a crash there leaves the effect and the
#: message both in place (the redelivery must then be recognised as a duplicate).
FAULT_POINTS: Final[tuple[str, ...]] = (
    "after_receive",
    "after_decode",
    "after_claim",
    "mid_handler",
    "after_commit_before_record",
    "after_effect_before_delete",
    "after_publish",
    "before_delete",
    "after_delete",
)

#: The producer's fault points (:meth:`flowgate.reference.bus.CommandBus.publish`, docs/decisions.md D25):
#: ``after_allocate`` -- the command's sequence number is allocated and the command recorded as
#: unsent, nothing sent yet; ``after_send`` -- the command is sent, not yet marked sent.
PRODUCER_FAULT_POINTS: Final[tuple[str, ...]] = ("after_allocate", "after_send")

#: The observation names the reference emits through :meth:`Observer.observe`. Every value
#: mapping carries at least the keys listed here (ids are strings, seq an int).
OBSERVATIONS: Final[Mapping[str, tuple[str, ...]]] = {
    # a command handed to a dispatcher (producer side); type invoke, then ok or fail
    "send": ("command_id", "entity_id", "seq", "command_type", "destination"),
    # a message taken from a queue by a listener; also, when SQS gave them: ``dedup_id``
    # (MessageDeduplicationId), ``sent_at`` (SentTimestamp, s), ``group_id`` (MessageGroupId)
    # and, for an event message,
    # ``wire_event_id`` (its EventId attribute) -- read by the FIFO deduplication check
    "receive": ("message_id", "queue", "receive_count"),
    # a command's effect committed (entity state + command store + idempotency completion);
    # type invoke just before the commit, ok after it
    "effect": ("command_id", "entity_id", "seq", "command_type"),
    # an event handed to a dispatcher after its command's effect committed
    "publish": ("event_id", "entity_id", "seq", "event_type", "destination"),
    # an event projected into a view model; type invoke just before the commit, ok after it
    "project": ("event_id", "entity_id", "seq", "event_type", "view"),
    # a redelivered or resent command/event recognised by the idempotency store: its effect (or
    # projection) is committed; also carries command_id (a command) or event_id and view (an event)
    "duplicate": ("key", "entity_id", "seq"),
    # a follow-up command a saga or aggregate issued, committed with its cause's effect (D33) and
    # numbered by the store: acknowledged work from then on, like a client's ``send`` ok; type ok,
    # recorded after that commit (or, for a redelivery, with its ``duplicate``); ``cause`` is the
    # eventId of the command or event whose decision issued it
    "issue": ("command_id", "entity_id", "seq", "command_type", "cause"),
    # a message removed from its queue after processing
    "delete": ("message_id", "queue"),
    # a poison message forwarded to the queue's DLQ, with the reason attribute it carries
    "dead_letter": ("message_id", "queue", "reason"),
    # a business failure that exhausted its retries, recorded in the business dead-letter store
    "business_dead_letter": ("command_id", "entity_id", "seq", "reason"),
    # a listener's circuit breaker opened (a dependency failed: receiving paused) or closed (a
    # probe answered: receiving resumed); type info; ``state`` is "open" or "closed"
    "breaker": ("queue", "state", "dependency"),
}


class WorkerCrash(BaseException):
    """Raised by a fault injector to make a worker die at a fault point.

    It derives from :class:`BaseException` so that no ``except Exception`` in a handler,
    listener or store can swallow it: like a real SIGKILL, nothing after the point runs.
    """

    def __init__(self, point: str) -> None:
        super().__init__(f"worker crashed at fault point {point!r}")
        self.point = point


class Clock(Protocol):
    """A source of time in seconds (epoch-based floats) that can also wait."""

    def now(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """Wall-clock time; the default everywhere outside the simulator."""

    def now(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class Randomness(Protocol):
    """A source of random bits: nonces (key material's companions), ids and tokens.

    ``cryptographic`` says whether its output is unpredictable (an OS CSPRNG). A source that is
    not (a seeded generator: the simulator's) must say so; the envelope cipher warns when it
    seals with one."""

    @property
    def cryptographic(self) -> bool: ...

    def token_bytes(self, n: int) -> bytes:
        """``n`` random bytes (AES-GCM nonces)."""
        ...

    def randbits(self, k: int) -> int:
        """A random non-negative int of ``k`` bits (fencing tokens)."""
        ...

    def uuid4(self) -> str:
        """A random (version 4) UUID string (fresh command ids)."""
        ...


class SystemRandomness:
    """The OS CSPRNG (``os.urandom`` and :mod:`secrets`); the default everywhere outside the
    simulator, and the only source the reference ships."""

    cryptographic = True

    def token_bytes(self, n: int) -> bytes:
        return os.urandom(n)

    def randbits(self, k: int) -> int:
        return secrets.randbits(k)

    def uuid4(self) -> str:
        return str(uuid.uuid4())


#: the shared production source (stateless: one instance serves every component)
SYSTEM_RANDOMNESS: Final = SystemRandomness()


class Faults(Protocol):
    """Called at each fault point; may raise :class:`WorkerCrash` or advance a clock."""

    def hit(self, point: str, context: Mapping[str, Any]) -> None: ...


class NoFaults:
    """The production fault injector: every point is a no-op."""

    def hit(self, point: str, context: Mapping[str, Any]) -> None:
        return None


class Observer(Protocol):
    """Receives observable steps. ``kind`` is ``invoke``, ``ok``, ``fail`` or ``info``."""

    def observe(self, f: str, kind: str, value: Mapping[str, Any]) -> None: ...


class NullObserver:
    """The production observer: records nothing."""

    def observe(self, f: str, kind: str, value: Mapping[str, Any]) -> None:
        return None


#: the environment variable that turns on :class:`AwsCallRecorder` in a worker process
AWS_CALLS_ENV: Final = "FLOWGATE_AWS_CALLS"
#: the request parameters an AWS call record keeps: what names the resource (and, for KMS and
#: SNS Subscribe, the values IAM conditions test); never a body, attribute value or receipt
RECORDED_PARAMETERS: Final[tuple[str, ...]] = (
    "QueueUrl",
    "QueueName",
    "TopicArn",
    "Name",
    "KeyId",
    "EncryptionContext",
    "Protocol",
    "Endpoint",
)


class AwsCallRecorder:
    """Appends one JSON line per AWS API call of the clients it is attached to (a test seam).

    ``{"process", "service", "operation", "params": {...}, "time"}`` with the
    :data:`RECORDED_PARAMETERS` the call carried. Hooked on botocore's ``provide-client-params``
    event, so it sees every call once (retries are below it) with the caller's own parameters,
    and costs one small ``json.dumps`` + one ``write(2)`` (``O_APPEND``: concurrent lines stay
    whole, a SIGKILL loses at most the line being written). Off unless attached: production
    never attaches it; the worker does when :data:`AWS_CALLS_ENV` names a file. The harness
    turns the records into IAM requests (``harness/iam_audit.py``)."""

    def __init__(self, path: str, process: str) -> None:
        self.process = process
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def attach(self, client: Any) -> Any:
        """Record ``client``'s calls from now on; returns the client."""
        client.meta.events.register("provide-client-params.*.*", self._record)
        return client

    def _record(self, params: Mapping[str, Any], model: Any, **_: Any) -> None:
        kept = {k: params[k] for k in RECORDED_PARAMETERS if k in params}
        line = json.dumps(
            {
                "process": self.process,
                "service": model.service_model.endpoint_prefix,
                "operation": model.name,
                "params": kept,
                "time": time.time(),
            },
            default=str,
        )
        os.write(self._fd, (line + "\n").encode())
