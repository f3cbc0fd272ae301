"""Fluent bus configuration (the seeds' ``Send/Raise/Listen/Subscribe`` shape, doc 001).

::

    config = (BusConfiguration(registry)
              .send(PlaceOrder, AuthorizePayment).to_queue("orders.fifo")
              .raise_events(OrderPlaced, PaymentAuthorized).to_topic("order-events.fifo")
              .listen_to("orders.fifo")
              .subscribe("order-views.fifo").to_topics("order-events.fifo")
              .with_encryption("alias/flowgate"))
    config.validate(sagas=[OrderSaga()], views=[OrderView()])

Only short names appear here; the bootstrapper resolves URLs/ARNs. ``validate`` fails fast with
:class:`ConfigurationError`.

Timeouts and how they interact (all seconds):

* ``visibility_timeout`` (VT) -- set on every queue; a received message is invisible for VT. The
  idempotency lease equals the visibility deadline, and both are extended together by the
  listener's heartbeat whenever more than VT/2 has elapsed at a step boundary.
* ``wait_time_seconds`` -- long-poll duration of ReceiveMessage (0-20). It bounds how long a
  stopping worker waits before it notices the stop flag.
* ``max_receive_count`` -- poison threshold. The listener itself forwards poison to the DLQ on any
  receive where ApproximateReceiveCount >= max_receive_count (with a reason; a forward that fails
  is retried on the next receive).
* ``redrive_max_receive_count`` -- the SQS ``RedrivePolicy.maxReceiveCount`` of every queue: the
  backstop for messages no worker can even look at. SQS moves a message to the DLQ *without a
  reason* when a receive would exceed it, so it must leave headroom above ``max_receive_count``
  (validated ``>``; default ``max(10, 3 * max_receive_count)``, at most 1000): failed forwards,
  crashes on the threshold receive and dependency outages (at most one receive per worker and
  outage, see :mod:`flowgate.reference.breaker`) spend receives without a listener's decision.
* ``breaker_initial_backoff`` / ``breaker_max_backoff`` -- while a listener's circuit breaker is
  open (a dependency failed) it does not receive; it probes the dependency after
  ``initial * 2**n`` seconds (jittered to 50-100 %, capped at ``max``). Recovery is noticed at
  most ``breaker_max_backoff`` after the dependency returns.
* ``business_max_attempts`` -- business failures are retried by redelivery (after VT) and recorded
  in the business dead-letter store on the attempt with receive count >= this; keep it <=
  ``max_receive_count`` or SQS's redrive moves the message first. With
  ``business_failures_to_dlq`` the message is also forwarded to the queue's DLQ on that attempt
  (``DeadLetterReason`` = ``BusinessError: <detail>``), before the record and the delete.
* ``idempotency_ttl_seconds`` vs ``message_retention_seconds`` -- a completed idempotency record
  must outlive every copy of its message: the queue keeps a message up to its retention, the DLQ
  (same retention, set by the bootstrapper; a FIFO DLQ resets the enqueue timestamp on the move)
  as long again, and a DLQ replay can come at the end of that. So ``idempotency_ttl_seconds >= 2 *
  message_retention_seconds``, checked when :class:`BusOptions` is built (default 29 days against
  14-day retention); a shorter TTL would let a late redelivery or replay apply a second time.
* ``idempotency_cleanup_interval`` -- how often a worker deletes the idempotency records that can
  no longer matter (:mod:`flowgate.reference.cleanup`; SourceFlow's ``cleanupIntervalMinutes``, default
  60 minutes = 3600 s, within 1 s .. ``idempotency_ttl_seconds``). The store then holds at most the
  records of the last TTL + one interval. The sweep runs on its own thread, never in a poll loop:
  it does not delay receives, heartbeats or commits beyond one batch of
  ``idempotency_cleanup_batch`` deletes (SQLite: the writer lock for one batch; PostgreSQL: rows
  in use are skipped, not waited for). It never deletes a leased claim (lease = visibility
  deadline) nor a record younger than the TTL, whatever VT, ``wait_time_seconds`` or the interval.
* ``batch_linger`` -- how long the batching sender waits to fill a SendMessageBatch/PublishBatch.
* ``publish_linger`` -- the same for the worker's event publisher, which collects the outboxes of
  all its pollers: full PublishBatch calls matter most (a FIFO topic's fan-out is sequential).
* ``pollers`` -- concurrent poll loops per listener in a worker process (throughput; FIFO
  ordering does not depend on it).
* ``receive_linger`` -- after a receive that returned 1..9 messages, a poll loop waits this long
  before it receives again (production run loop only), so the next ReceiveMessage finds a fuller
  batch. Costs up to that much latency per hop when the queue is not backlogged; saves calls
  (and the CPU of both sides) then. A full or an empty receive is followed at once (a backlog is
  drained at full speed; an empty long poll already waited). 0 (the default) = never wait.
* ``adaptive_linger`` (default on, decision D35) -- the three lingers above apply only while
  batches fill: a partial batch (a receive of 1..9) waits only when the previous batch of its
  stream (destination, or poll loop) was full; otherwise it goes at once. At a rate that is kept
  up with, nothing lingers (latency); under a backlog the lingers save calls as before. Off = a
  partial batch always waits its linger. Never longer than the linger either way
  (:mod:`flowgate.reference.linger`).
* ``data_key_cache`` with ``data_key_max_age_seconds`` / ``data_key_max_messages`` /
  ``data_key_max_bytes`` / ``data_key_cache_entries`` -- reuse KMS data keys (decision D6,
  :mod:`flowgate.reference.keycache`): a producer seals many messages for one destination under one
  ``GenerateDataKey``, a consumer opens them with one ``Decrypt``, each key within all three
  bounds. ``max_age`` also bounds how long a key disabled in KMS stays usable in a process that
  cached it (the KMS outage a listener's breaker would otherwise notice at once), so keep it well
  below the outage you want noticed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from flowgate.reference.errors import ConfigurationError
from flowgate.reference.keycache import CacheLimits
from flowgate.reference.messages import Payload, TypeRegistry

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,75}(\.fifo)?$")


def is_fifo(name: str) -> bool:
    return name.endswith(".fifo")


def dlq_name(queue: str) -> str:
    """``orders.fifo`` -> ``orders-dlq.fifo``; ``notes`` -> ``notes-dlq``."""
    return f"{queue[:-5]}-dlq.fifo" if is_fifo(queue) else f"{queue}-dlq"


@dataclass(frozen=True)
class BusOptions:
    """Tunables (see the module docstring for how the timeouts interact).

    ``business_failures_to_dlq`` (default False) makes business failures visible in the SQS DLQ
    as well as in the business dead-letter store; see its field comment.
    """

    region: str = "us-east-1"
    visibility_timeout: int = 30
    wait_time_seconds: int = 20
    max_receive_count: int = 3
    #: SQS's own redrive threshold (RedrivePolicy maxReceiveCount); None = max(10, 3 * max_receive_count)
    redrive_max_receive_count: int | None = None
    business_max_attempts: int = 3
    max_concurrent_calls: int = 10
    #: concurrent ReceiveMessage loops per listener in a worker process (flowgate.reference.worker); each
    #: poll is receive -> process -> PublishBatch -> DeleteMessageBatch, so one poller waits on
    #: the API most of the time; with the worker's shared publisher 2 suffice (measured on 2 cores
    #: against LocalStack: 1-2 best, 3 and more add small receives and latency; docs/load.md)
    pollers: int = 2
    #: extend visibility + idempotency lease of messages still held (step boundaries, and a
    #: keep-alive thread per poll in production); off only to study what happens without it
    heartbeat: bool = True
    #: on the last business attempt (``business_max_attempts``), also forward the command to the
    #: queue's SQS DLQ exactly like poison (same body, group and attributes, plus
    #: ``DeadLetterReason`` = ``BusinessError: <ErrorType>: <detail>``), so a business failure is
    #: visible from outside (contract v1, section 2). The forward comes first: if it fails, the
    #: claim is released and the message retried; then the business dead-letter record is
    #: committed and the message deleted as before. Off by default: the record alone (V3's dual
    #: DLQ); the gate adapter turns it on
    business_failures_to_dlq: bool = False
    message_retention_seconds: int = 1_209_600
    batch_linger: float = 0.01
    #: linger of the worker's shared event publisher (listener outboxes of all pollers -> PublishBatch)
    publish_linger: float = 0.05
    #: see the module docstring; 0 = receive again at once
    receive_linger: float = 0.0
    #: the three lingers above adapt to load (decision D35, :mod:`flowgate.reference.linger`): a partial
    #: batch (a receive of 1..9) waits only when the previous batch of its stream was full, i.e.
    #: only while batches fill; False = the fixed lingers (a partial batch always waits)
    adaptive_linger: bool = True
    #: how long a COMPLETED idempotency record recognises duplicates. Rule (checked here, D22): at
    #: least twice ``message_retention_seconds`` (queue + DLQ: the bootstrapper gives every DLQ the
    #: same retention) -- a copy of a message can be received until the queue's retention ends,
    #: then sit in the DLQ for the DLQ's whole retention (a FIFO DLQ resets the enqueue timestamp on
    #: the move) and be replayed; a record gone by then lets that copy apply a second time.
    #: Default 29 days (> 14 + 14)
    idempotency_ttl_seconds: float = 29 * 24 * 3600.0
    #: seconds between two sweeps of expired idempotency records (flowgate.reference.cleanup; SourceFlow's
    #: ``cleanupIntervalMinutes: 60``); within 1 .. idempotency_ttl_seconds
    idempotency_cleanup_interval: float = 3600.0
    #: records deleted per cleanup statement (one short transaction each; a sweep loops)
    idempotency_cleanup_batch: int = 1000
    #: circuit breaker back-off (see the module docstring and flowgate.reference.breaker)
    breaker_initial_backoff: float = 1.0
    breaker_max_backoff: float = 30.0
    #: KMS data-key cache (decision D6, flowgate.reference.keycache; see the module docstring). Off by
    #: default: with it on, envelopes are sealed under the destination context (contract section
    #: 5), which a consumer built before contract v1.4 refuses
    data_key_cache: bool = False
    #: a cached key is used while younger than this (seal and open side): also how long a
    #: disabled key or a revoked grant can go unnoticed by a process that holds a cached key
    data_key_max_age_seconds: float = 60.0
    #: messages one cached key seals (or opens); at most 2^32 (AES-GCM, random 96-bit nonces)
    data_key_max_messages: int = 10_000
    #: plaintext bytes one cached key seals (ciphertext bytes it opens)
    data_key_max_bytes: int = 64 * 2**20
    #: cached keys per cache (one per KMS key and destination on the seal side; one per encrypted
    #: data key and destination on the open side); the least recently used is evicted and wiped
    data_key_cache_entries: int = 256
    #: SourceFlow.Net v2 interop (docs/sourceflow.md, decision D32). Off by default. On: a
    #: listener also accepts commands and events exactly as SourceFlow.Net v2.0.0's
    #: ``AwsSqsCommandDispatcher`` / ``AwsSnsEventDispatcher`` send them -- ``CommandType`` /
    #: ``EventType`` a .NET assembly-qualified name registered with ``TypeRegistry.alias`` (exact
    #: match, never loaded), ``entity.id`` / the event payload's ``id`` a JSON integer, no
    #: ``EventId`` attribute, FIFO deduplication by content -- decoded by :mod:`flowgate.reference.sourceflow`
    #: with the same strictness as the native format. Native messages are accepted as before.
    #: Off: such a message is poison ``UnknownMessageType`` (its name is not a registry name)
    sourceflow_interop: bool = False
    #: dispatchers emit SourceFlow.Net v2's shape (``flowgate.reference.sourceflow``): only the
    #: attributes SourceFlow writes, no ``MessageDeduplicationId`` (the destination's
    #: content-based deduplication), integer ids. Needs ``sourceflow_interop``, no encryption, an
    #: alias for every routed type (checked by :meth:`BusConfiguration.validate`). Off by default
    sourceflow_emit: bool = False

    def data_key_cache_limits(self) -> CacheLimits | None:
        """The cache bounds when ``data_key_cache`` is on, else ``None``."""
        return self._data_key_limits() if self.data_key_cache else None

    def _data_key_limits(self) -> CacheLimits:
        return CacheLimits(
            max_age_seconds=self.data_key_max_age_seconds,
            max_messages=self.data_key_max_messages,
            max_bytes=self.data_key_max_bytes,
            max_entries=self.data_key_cache_entries,
        )

    @property
    def redrive_receive_count(self) -> int:
        """The effective ``RedrivePolicy.maxReceiveCount`` (see ``redrive_max_receive_count``)."""
        if self.redrive_max_receive_count is not None:
            return self.redrive_max_receive_count
        return min(1000, max(10, 3 * self.max_receive_count))

    def __post_init__(self) -> None:
        if not 1 <= self.visibility_timeout <= 43_200:
            raise ConfigurationError("visibility_timeout must be within 1..43200 s")
        if not 0 <= self.wait_time_seconds <= 20:
            raise ConfigurationError("wait_time_seconds must be within 0..20 s")
        if not 1 <= self.max_receive_count <= 1000:
            raise ConfigurationError("max_receive_count must be within 1..1000")
        if not self.max_receive_count < self.redrive_receive_count <= 1000:
            raise ConfigurationError(
                "redrive_max_receive_count must be within max_receive_count+1..1000 (headroom: "
                "SQS's redrive moves a message without a reason)"
            )
        if not 0 < self.breaker_initial_backoff <= self.breaker_max_backoff:
            raise ConfigurationError("breaker backoffs must satisfy 0 < initial <= max")
        if not 1 <= self.business_max_attempts <= self.max_receive_count:
            raise ConfigurationError("business_max_attempts must be within 1..max_receive_count")
        if self.max_concurrent_calls < 1:
            raise ConfigurationError("max_concurrent_calls must be >= 1")
        if self.batch_linger < 0 or self.publish_linger < 0 or not 0 <= self.receive_linger <= 1:
            raise ConfigurationError(
                "batch_linger and publish_linger must be >= 0, receive_linger within 0..1 s"
            )
        if not 1 <= self.pollers <= 64:
            raise ConfigurationError("pollers must be within 1..64")
        if not 60 <= self.message_retention_seconds <= 1_209_600:
            raise ConfigurationError("message_retention_seconds must be within 60..1209600 s")
        check_ttl_outlives_retention(self)
        if not 1 <= self.idempotency_cleanup_interval <= self.idempotency_ttl_seconds:
            raise ConfigurationError(
                "idempotency_cleanup_interval must be within 1 s..idempotency_ttl_seconds "
                f"({self.idempotency_ttl_seconds:g} s)"
            )
        if not 1 <= self.idempotency_cleanup_batch <= 100_000:
            raise ConfigurationError("idempotency_cleanup_batch must be within 1..100000")
        self._data_key_limits()  # validated whether or not the cache is on
        if self.sourceflow_emit and not self.sourceflow_interop:
            raise ConfigurationError("sourceflow_emit needs sourceflow_interop")


def check_ttl_outlives_retention(options: BusOptions, longest_retention: float | None = None) -> None:
    """The TTL rule (D22): ``idempotency_ttl_seconds >= 2 * retention`` (a queue's retention plus
    its DLQ's, which the bootstrapper sets equal), else :class:`ConfigurationError`. ``retention``
    is ``options.message_retention_seconds``, or ``longest_retention`` when a configuration sets
    longer per-queue retentions (:meth:`BusConfiguration.validate`)."""
    lifetime = 2 * max(options.message_retention_seconds, longest_retention or 0)
    if options.idempotency_ttl_seconds < lifetime:
        raise ConfigurationError(
            f"idempotency_ttl_seconds ({options.idempotency_ttl_seconds:g} s) must be at least the longest "
            f"queue retention plus the DLQ retention ({lifetime:g} s): a redelivery or DLQ replay after "
            "the TTL would apply again"
        )


@dataclass
class BusConfiguration:
    """Type-safe routing by short names; build with the fluent methods, then :meth:`validate`."""

    registry: TypeRegistry
    command_routes: dict[str, str] = field(default_factory=dict)
    event_routes: dict[str, str] = field(default_factory=dict)
    command_queues: list[str] = field(default_factory=list)
    subscriptions: dict[str, list[str]] = field(default_factory=dict)
    kms_key_id: str | None = None
    options: BusOptions = field(default_factory=BusOptions)
    #: queue -> the name of its dead-letter queue when it is not :func:`dlq_name` (e.g. queues
    #: provisioned by someone else, such as the gate, with their own DLQ)
    dead_letter_queues: dict[str, str] = field(default_factory=dict)
    #: queue -> its MessageRetentionPeriod when not ``options.message_retention_seconds`` (its DLQ
    #: gets the same); e.g. seed 004: valid orders 4 days, the error queue 14 days
    retention: dict[str, int] = field(default_factory=dict)
    #: FIFO queue -> the payload field (wire name, e.g. ``partnerId``) whose value is the
    #: ``MessageGroupId`` of the commands sent there, instead of the entity id: ordering per
    #: partner (seed 004) rather than per entity; a coarser group keeps every entity's order
    message_groups: dict[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:
        return (
            f"BusConfiguration(commands={self.command_routes}, events={self.event_routes}, "
            f"listen={self.command_queues}, subscribe={self.subscriptions}, kms={self.kms_key_id!r})"
        )

    # -- fluent ------------------------------------------------------------------------------
    def send(self, *commands: type[Payload]) -> _CommandRoute:
        return _CommandRoute(self, commands)

    def raise_events(self, *events: type[Payload]) -> _EventRoute:
        return _EventRoute(self, events)

    def listen_to(self, *queues: str) -> BusConfiguration:
        for q in queues:
            _check_name(q)
            if q not in self.command_queues:
                self.command_queues.append(q)
        return self

    def subscribe(self, queue: str) -> _Subscription:
        _check_name(queue)
        return _Subscription(self, queue)

    def with_encryption(self, kms_key_id: str) -> BusConfiguration:
        self.kms_key_id = kms_key_id
        return self

    def with_dead_letter_queue(self, queue: str, dlq: str) -> BusConfiguration:
        """Use ``dlq`` (a short name) as ``queue``'s DLQ instead of the default :func:`dlq_name`;
        the bootstrapper then points ``queue``'s RedrivePolicy at it and listeners forward there."""
        _check_name(queue)
        _check_name(dlq)
        if is_fifo(queue) != is_fifo(dlq):
            raise ConfigurationError(f"DLQ {dlq!r} must be FIFO exactly when {queue!r} is")
        self.dead_letter_queues[queue] = dlq
        return self

    def with_retention(self, queue: str, seconds: int) -> BusConfiguration:
        """Keep ``queue``'s messages (and its DLQ's) ``seconds`` (60 s .. 14 days); the idempotency
        TTL must still outlive twice the longest retention (checked by :meth:`validate`)."""
        _check_name(queue)
        if not 60 <= seconds <= 1_209_600:
            raise ConfigurationError(f"retention of {queue!r} must be within 60..1209600 s")
        self.retention[queue] = int(seconds)
        return self

    def with_message_group(self, queue: str, payload_field: str) -> BusConfiguration:
        """Send the commands routed to FIFO ``queue`` with ``MessageGroupId`` = the value of the
        payload field ``payload_field`` (wire name), e.g. ``partnerId``: one ordered group per
        partner. A command without that field (or with an empty value) keeps its entity id."""
        _check_name(queue)
        if not is_fifo(queue):
            raise ConfigurationError(f"a message group needs a FIFO queue, not {queue!r}")
        self.message_groups[queue] = payload_field
        return self

    def retention_for(self, queue: str) -> int:
        """The retention of ``queue``, or of the queue whose DLQ ``queue`` is."""
        if queue in self.retention:
            return self.retention[queue]
        for source, seconds in self.retention.items():
            if self.dlq_for(source) == queue:
                return seconds
        return self.options.message_retention_seconds

    def with_options(self, **changes: Any) -> BusConfiguration:
        self.options = replace(self.options, **changes)
        return self

    # -- queries -----------------------------------------------------------------------------
    def queues(self) -> list[str]:
        names = [*self.command_routes.values(), *self.command_queues, *self.subscriptions]
        return list(dict.fromkeys(names))

    def dlq_for(self, queue: str) -> str:
        """The dead-letter queue of ``queue``: the configured one, else :func:`dlq_name`."""
        return self.dead_letter_queues.get(queue) or dlq_name(queue)

    def topics(self) -> list[str]:
        names = [*self.event_routes.values(), *(t for ts in self.subscriptions.values() for t in ts)]
        return list(dict.fromkeys(names))

    def queue_for(self, command_name: str) -> str:
        try:
            return self.command_routes[command_name]
        except KeyError:
            raise ConfigurationError(
                f"command {command_name!r} is not routed to any queue "
                f"(add .send({command_name}).to_queue(...))"
            ) from None

    def topic_for(self, event_name: str) -> str | None:
        return self.event_routes.get(event_name)

    # -- validation --------------------------------------------------------------------------
    def validate(self, *, sagas: Sequence[Any] | None = None, views: Sequence[Any] | None = None) -> None:
        """Fail fast on an inconsistent configuration.

        With ``sagas``: every command routed to a queue this process listens to must have a saga.
        With ``views``: every subscribed queue must receive at least one event some view projects.
        """
        for name in self.command_routes:
            self.registry.lookup(name, "command")
        for name in self.event_routes:
            self.registry.lookup(name, "event")
        check_ttl_outlives_retention(self.options, max(self.retention.values(), default=None))
        if self.options.sourceflow_interop and self.kms_key_id:
            raise ConfigurationError(
                "SourceFlow interop needs a plaintext bus: SourceFlow.Net v2's dispatchers do not "
                "encrypt, and its IMessageEncryption format is not this envelope (docs/sourceflow.md)"
            )
        if self.options.sourceflow_emit:
            routed = [*self.command_routes, *self.event_routes]
            missing = [n for n in routed if self.registry.alias_for(self.registry.lookup(n)) is None]
            if missing:
                raise ConfigurationError(
                    f"sourceflow_emit: no SourceFlow alias for {sorted(missing)} (TypeRegistry.alias)"
                )
        for queue, topics in self.subscriptions.items():
            if not topics:
                raise ConfigurationError(f"queue {queue!r} subscribes to no topic")
            for t in topics:
                if is_fifo(t) and not is_fifo(queue):
                    raise ConfigurationError(
                        f"FIFO topic {t!r} can only deliver to FIFO queues, not {queue!r}"
                    )
            if queue in self.command_routes.values():
                raise ConfigurationError(f"queue {queue!r} is used both for commands and for subscriptions")
        if sagas is not None:
            for name, queue in self.command_routes.items():
                if queue in self.command_queues:
                    cls = self.registry.lookup(name, "command")
                    if not any(s.handles(cls) for s in sagas):
                        raise ConfigurationError(f"{name} is routed to {queue!r} but no saga handles it")
        for q in self.command_queues:
            if q not in self.command_routes.values():
                raise ConfigurationError(f"listening to {q!r} but no command is routed there")
        if views is not None:
            for queue, topics in self.subscriptions.items():
                names = [n for n, t in self.event_routes.items() if t in topics]
                if names and not any(
                    v.projects(self.registry.lookup(n, "event")) for v in views for n in names
                ):
                    raise ConfigurationError(f"queue {queue!r} receives {names} but no view projects them")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], registry: TypeRegistry) -> BusConfiguration:
        """Build from the worker's config file shape (see ``docs/reference.md``)."""
        cfg = cls(registry)
        for queue, names in (data.get("send") or {}).items():
            cfg.send(*(registry.lookup(n, "command") for n in names)).to_queue(queue)
        for topic, names in (data.get("raise") or {}).items():
            cfg.raise_events(*(registry.lookup(n, "event") for n in names)).to_topic(topic)
        cfg.listen_to(*(data.get("listen") or []))
        for queue, topics in (data.get("subscribe") or {}).items():
            cfg.subscribe(queue).to_topics(*topics)
        for queue, dlq in (data.get("deadLetterQueues") or {}).items():
            cfg.with_dead_letter_queue(queue, dlq)
        for queue, seconds in (data.get("retention") or {}).items():
            cfg.with_retention(queue, int(seconds))
        for queue, payload_field in (data.get("messageGroups") or {}).items():
            cfg.with_message_group(queue, str(payload_field))
        enc = data.get("encryption") or {}
        if enc.get("kmsKeyId"):
            cfg.with_encryption(str(enc["kmsKeyId"]))
        opts = dict(data.get("options") or {})
        if "region" in data:
            opts["region"] = data["region"]
        return cfg.with_options(**opts)


@dataclass
class _CommandRoute:
    config: BusConfiguration
    commands: tuple[type[Payload], ...]

    def to_queue(self, queue: str) -> BusConfiguration:
        _check_name(queue)
        for cls in self.commands:
            if not self.config.registry.is_registered(cls, "command"):
                raise ConfigurationError(f"{cls.__name__} is not a registered command")
            prev = self.config.command_routes.get(cls.message_name)
            if prev is not None and prev != queue:
                raise ConfigurationError(f"{cls.message_name} already routed to {prev!r}")
            self.config.command_routes[cls.message_name] = queue
        return self.config


@dataclass
class _EventRoute:
    config: BusConfiguration
    events: tuple[type[Payload], ...]

    def to_topic(self, topic: str) -> BusConfiguration:
        _check_name(topic)
        for cls in self.events:
            if not self.config.registry.is_registered(cls, "event"):
                raise ConfigurationError(f"{cls.__name__} is not a registered event")
            prev = self.config.event_routes.get(cls.message_name)
            if prev is not None and prev != topic:
                raise ConfigurationError(f"{cls.message_name} already raised to {prev!r}")
            self.config.event_routes[cls.message_name] = topic
        return self.config


@dataclass
class _Subscription:
    config: BusConfiguration
    queue: str

    def to_topics(self, *topics: str) -> BusConfiguration:
        for t in topics:
            _check_name(t)
        current = self.config.subscriptions.setdefault(self.queue, [])
        current.extend(t for t in topics if t not in current)
        return self.config


def _check_name(name: str) -> None:
    if not _NAME.match(name):
        raise ConfigurationError(
            f"invalid queue/topic short name {name!r} (1-75 of [A-Za-z0-9_-], optional .fifo)"
        )
