"""Failure detection: backlog, age of the oldest message, DLQ depth, worker liveness and order
outcomes as metrics, sampled once per period and judged by the alarms of :mod:`flowgate.reference.alarms`.

Where each number comes from (``docs/operating.md`` has the alarm table):

* **Backlog** -- ``GetQueueAttributes``: ``ApproximateNumberOfMessages`` (visible) +
  ``ApproximateNumberOfMessagesNotVisible`` (in flight: received, not yet deleted); delayed
  messages are reported apart (``Delayed``). **DLQ depth** -- the same two numbers of the queue's
  DLQ; **DlqGrowth** is the depth now minus the depth one period earlier.
* **Age of the oldest message** -- SQS has no ``ApproximateAgeOfOldestMessage`` attribute (only
  CloudWatch computes it), and a peek is not harmless: a ``ReceiveMessage`` by the monitor counts
  as a receive (``ApproximateReceiveCount``, so it pushes messages towards the DLQ), and on a FIFO
  queue it holds the group. So the age is the consumers' own observation: every
  :class:`ConsumerGauge` remembers the ``SentTimestamp`` of each message it holds (received, not
  yet released) and the oldest age it saw in its latest receive. The datapoint is the largest of
  ``now - SentTimestamp`` over held messages and that receive's age (when it fell in the period);
  0 when the queue is empty; *missing* when the queue holds messages and no consumer saw any (no
  one polls: the ``no-worker-polling`` alarm covers that).
* **PollingWorkers** -- consumers whose latest ``ReceiveMessage`` returned within
  ``poll_staleness`` seconds (an empty long poll counts; a handler stuck with its batch does not
  poll). Across processes the worker writes its gauges into its health file
  (``flowgate.reference.worker --health-file``); a file older than ``poll_staleness`` counts as no worker.
* **Orders** (NexusStream, seed 004) -- per period, from the consumers' counters: commands of the
  ``received`` type that took effect (``OrdersReceived``), events of the ``validated`` and
  ``rejected`` types they raised (``OrdersValidated``, ``OrdersRejected``), ``RejectedShare`` =
  rejected / (validated + rejected) (missing in a period without orders), ``ProcessingLatencyMs``
  (mean of effect time - ``SentTimestamp``) and ``WorkerFailedCount`` (business dead letters,
  seed 002's ``WorkerFailedCount``).

:class:`Monitor` is the operator's side (CloudWatch's role): it lives outside the workers, so a
dead worker cannot silence it. ``tick()`` samples one datapoint and feeds the evaluator.
"""

from __future__ import annotations

import itertools
import json
import os
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flowgate.reference.alarms import AlarmEvaluator, AlarmSpec, Transition

_INSTANCES = itertools.count(1)


class ConsumerGauge:
    """What one listener saw (thread-safe: poll threads, the finisher pool and the heartbeat
    share it). Counters are cumulative since the gauge was made; :meth:`snapshot` is JSON."""

    def __init__(self, queue: str) -> None:
        self.queue = queue
        self.instance = f"{os.getpid()}-{next(_INSTANCES)}"
        self._lock = threading.Lock()
        self._held: dict[str, float] = {}
        self.last_receive_at: float | None = None
        self.last_receive_max_age: float | None = None
        self.received = 0
        self.effects: dict[str, int] = {}
        self.events: dict[str, int] = {}
        self.failed = 0
        self.latency_sum = 0.0
        self.latency_count = 0

    def on_receive(self, now: float, messages: Sequence[tuple[str, float | None]]) -> None:
        """A ``ReceiveMessage`` returned at ``now`` with (message id, SentTimestamp) pairs."""
        with self._lock:
            self.last_receive_at = now
            ages = [now - sent for _, sent in messages if sent is not None]
            self.last_receive_max_age = max(ages) if ages else None
            self.received += len(messages)
            for message_id, sent in messages:
                if sent is not None:
                    self._held[message_id] = sent

    def on_release(self, message_ids: Iterable[str]) -> None:
        """The poll is over for these messages (deleted, or left for redelivery)."""
        with self._lock:
            for message_id in message_ids:
                self._held.pop(message_id, None)

    def on_effect(self, command_type: str, event_names: Iterable[str], latency: float | None) -> None:
        """A command took effect (``latency`` = commit time - SentTimestamp, seconds)."""
        with self._lock:
            self.effects[command_type] = self.effects.get(command_type, 0) + 1
            for name in event_names:
                self.events[name] = self.events.get(name, 0) + 1
            if latency is not None:
                self.latency_sum += latency
                self.latency_count += 1

    def on_failed(self) -> None:
        """A command went to the business dead-letter store (retries exhausted)."""
        with self._lock:
            self.failed += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "queue": self.queue,
                "instance": self.instance,
                "last_receive_at": self.last_receive_at,
                "last_receive_max_age": self.last_receive_max_age,
                "oldest_held_sent_at": min(self._held.values()) if self._held else None,
                "held": len(self._held),
                "received": self.received,
                "effects": dict(self.effects),
                "events": dict(self.events),
                "failed": self.failed,
                "latency_sum": self.latency_sum,
                "latency_count": self.latency_count,
            }


@dataclass(frozen=True)
class QueueDepth:
    visible: int
    in_flight: int
    delayed: int

    @property
    def total(self) -> int:
        """Visible + in flight (the backlog; delayed messages are not yet deliverable)."""
        return self.visible + self.in_flight


DEPTH_ATTRIBUTES = (
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
)


def queue_depth(sqs: Any, queue_url: str) -> QueueDepth:
    """The queue's approximate counts (one ``GetQueueAttributes``)."""
    attrs = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=list(DEPTH_ATTRIBUTES))["Attributes"]
    return depth_from_attributes(attrs)


def depth_from_attributes(attrs: Mapping[str, str]) -> QueueDepth:
    return QueueDepth(
        visible=int(attrs.get("ApproximateNumberOfMessages", 0)),
        in_flight=int(attrs.get("ApproximateNumberOfMessagesNotVisible", 0)),
        delayed=int(attrs.get("ApproximateNumberOfMessagesDelayed", 0)),
    )


@dataclass(frozen=True)
class OrderTypes:
    """Which command counts as an order received and which events as validated / rejected."""

    received: str = "SubmitPartnerOrder"
    validated: str = "PartnerOrderValidated"
    rejected: str = "PartnerOrderRejected"


@dataclass(frozen=True)
class Thresholds:
    """The seeds' thresholds, configurable. Times in seconds; ``period`` is one datapoint."""

    period: float = 60.0
    #: seed 004 "Queue Backlog > 1000 messages"
    backlog: float = 1000
    #: seed 002 "Worker stuck -> sustained backlog": the oldest message older than this ...
    oldest_age: float = 300.0
    #: ... in this many consecutive periods
    sustained_periods: int = 3
    #: seed 004 "High Error Rate > 5 % orders rejected" (in ``rejected_datapoints`` of
    #: ``rejected_periods`` periods: with short periods and few orders each, 2 of 3)
    rejected_share: float = 0.05
    rejected_datapoints: int = 1
    rejected_periods: int = 1
    #: seed 002 "Worker crash": no consumer received for this many consecutive periods
    no_poll_periods: int = 2
    #: seed 002 "DLQ growth": the DLQ grew in this many of ``dlq_periods`` periods
    dlq_datapoints: int = 1
    dlq_periods: int = 1
    #: seed 002 "Business retry exhaustion": WorkerFailedCount above this in a period
    worker_failed: float = 0


def default_alarms(t: Thresholds | None = None) -> list[AlarmSpec]:
    """The alarm set of ``docs/operating.md`` (seed 002's matrix + seed 004's alarms)."""
    t = t or Thresholds()
    return [
        AlarmSpec(
            "backlog-over-1000" if t.backlog == 1000 else f"backlog-over-{t.backlog:g}",
            "Backlog",
            ">",
            t.backlog,
            1,
            1,
            "missing",
            "more messages waiting (visible + in flight) than the consumers keep up with",
        ),
        AlarmSpec(
            "sustained-backlog",
            "OldestMessageAgeSeconds",
            ">",
            t.oldest_age,
            t.sustained_periods,
            t.sustained_periods,
            "missing",
            "messages wait too long: a stuck or too slow consumer",
        ),
        AlarmSpec(
            "dlq-growth",
            "DlqGrowth",
            ">",
            0,
            t.dlq_periods,
            t.dlq_datapoints,
            "notBreaching",
            "messages are being dead-lettered (poison or redrive)",
        ),
        AlarmSpec(
            "rejected-share-over-5pct" if t.rejected_share == 0.05 else "rejected-share-high",
            "RejectedShare",
            ">",
            t.rejected_share,
            t.rejected_periods,
            t.rejected_datapoints,
            "missing",
            "a partner sends mostly invalid orders",
        ),
        AlarmSpec(
            "no-worker-polling",
            "PollingWorkers",
            "<",
            1,
            t.no_poll_periods,
            t.no_poll_periods,
            "breaching",
            "no consumer polls the queue (workers stopped, crashed or stuck)",
        ),
        AlarmSpec(
            "worker-failed",
            "WorkerFailedCount",
            ">",
            t.worker_failed,
            1,
            1,
            "notBreaching",
            "commands exhausted their business retries (business dead letters)",
        ),
    ]


@dataclass
class Monitor:
    """Samples one queue (and its DLQ) and the consumers' gauges once per ``tick``.

    ``gauges`` returns the consumers' snapshots (:meth:`ConsumerGauge.snapshot`), each with an
    optional ``time`` (when it was written; a snapshot older than ``poll_staleness`` is ignored)
    and ``worker`` (which worker it belongs to; default its instance). ``clock`` gives the time.
    """

    sqs: Any
    queue: str
    queue_url: str
    dlq_url: str
    gauges: Callable[[], Iterable[Mapping[str, Any]]]
    clock: Callable[[], float]
    thresholds: Thresholds = field(default_factory=Thresholds)
    alarms: Sequence[AlarmSpec] | None = None
    orders: OrderTypes = field(default_factory=OrderTypes)
    #: a consumer polls when its latest receive returned at most this long ago (>= the long poll)
    poll_staleness: float = 30.0

    def __post_init__(self) -> None:
        self.evaluator = AlarmEvaluator(
            self.alarms if self.alarms is not None else default_alarms(self.thresholds)
        )
        self._counts: dict[str, dict[str, Any]] = {}
        self._dlq_depth: int | None = None
        self._last_tick: float | None = None
        self.latest: dict[str, float | None] = {}
        self.datapoints: list[tuple[float, dict[str, float | None]]] = []

    def sample(self) -> dict[str, float | None]:
        """One datapoint of every metric (module docstring); ``None`` = missing."""
        now = self.clock()
        since = self._last_tick if self._last_tick is not None else now - self.thresholds.period
        depth = queue_depth(self.sqs, self.queue_url)
        dlq = queue_depth(self.sqs, self.dlq_url)
        growth = None if self._dlq_depth is None else float(dlq.total - self._dlq_depth)
        self._dlq_depth = dlq.total
        snapshots = [
            s
            for s in self.gauges()
            if s.get("queue") == self.queue and now - float(s.get("time", now)) <= self.poll_staleness
        ]
        polling = {
            str(s.get("worker", s["instance"]))
            for s in snapshots
            if s.get("last_receive_at") is not None
            and now - float(s["last_receive_at"]) <= self.poll_staleness
        }
        ages: list[float] = []
        received = validated = rejected = failed = 0
        latency_sum, latency_count = 0.0, 0
        for s in snapshots:
            if s.get("oldest_held_sent_at") is not None:
                ages.append(now - float(s["oldest_held_sent_at"]))
            last = s.get("last_receive_at")
            if s.get("last_receive_max_age") is not None and last is not None and float(last) > since:
                ages.append(float(s["last_receive_max_age"]))
            before = self._counts.get(str(s["instance"]), {})
            self._counts[str(s["instance"])] = dict(s)
            received += _delta(s, before, "effects", self.orders.received)
            validated += _delta(s, before, "events", self.orders.validated)
            rejected += _delta(s, before, "events", self.orders.rejected)
            failed += int(s.get("failed", 0)) - int(before.get("failed", 0))
            latency_sum += float(s.get("latency_sum", 0.0)) - float(before.get("latency_sum", 0.0))
            latency_count += int(s.get("latency_count", 0)) - int(before.get("latency_count", 0))
        oldest: float | None = max(ages) if ages else (0.0 if depth.total == 0 else None)
        decided = validated + rejected
        self._last_tick = now
        return {
            "Visible": float(depth.visible),
            "InFlight": float(depth.in_flight),
            "Delayed": float(depth.delayed),
            "Backlog": float(depth.total),
            "QueueDepth": float(depth.total),
            "DlqDepth": float(dlq.total),
            "DlqGrowth": growth,
            "OldestMessageAgeSeconds": oldest,
            "PollingWorkers": float(len(polling)),
            "OrdersReceived": float(received),
            "OrdersValidated": float(validated),
            "OrdersRejected": float(rejected),
            "RejectedShare": rejected / decided if decided else None,
            "ProcessingLatencyMs": 1000.0 * latency_sum / latency_count if latency_count else None,
            "WorkerFailedCount": float(failed),
        }

    def tick(self) -> list[Transition]:
        """Sample one datapoint and evaluate every alarm on it; returns the state changes."""
        now = self.clock()
        self.latest = self.sample()
        self.datapoints.append((now, self.latest))
        return self.evaluator.observe(now, self.latest)

    def report(self) -> dict[str, Any]:
        """The latest datapoint and every alarm's state, with the times it fired and cleared."""
        return {
            "queue": self.queue,
            "metrics": dict(self.latest),
            "alarms": {
                name: {
                    "state": a.state,
                    "rule": a.spec.describe(),
                    "fired_at": a.fired_at(),
                    "cleared_at": a.cleared_at(),
                }
                for name, a in self.evaluator.alarms.items()
            },
        }


def _delta(now: Mapping[str, Any], before: Mapping[str, Any], kind: str, name: str) -> int:
    return int((now.get(kind) or {}).get(name, 0)) - int((before.get(kind) or {}).get(name, 0))


def gauges_from_health_files(paths: Iterable[str | Path]) -> list[dict[str, Any]]:
    """The consumer gauges in the workers' health files (``flowgate.reference.worker --health-file``),
    each with ``time`` = when its file was written and ``worker`` = the file's path. A file that
    does not exist or cannot be read (being replaced) contributes nothing."""
    out: list[dict[str, Any]] = []
    for path in paths:
        try:
            report = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        for consumer in (report.get("metrics") or {}).get("consumers", []):
            out.append({**consumer, "time": report.get("time"), "worker": str(path)})
    return out
