"""A listener's circuit breaker: stop receiving while a dependency is down.

Why: SQS counts every receive. A listener that keeps calling ReceiveMessage while its store (or
KMS, SNS, SQS itself) is down fails every message it receives and hands it back; after
``RedrivePolicy.maxReceiveCount`` receives SQS moves the (valid) message to the DLQ without a
reason. So the first infrastructure failure (:class:`~flowgate.reference.errors.TransportError`: the store's
:class:`~flowgate.reference.errors.StoreUnavailable`, KMS unreachable or its key disabled, a failed SNS
publish, a failed ReceiveMessage) *opens* the breaker, and while it is open the listener does not
receive at all. It probes the failing dependency with a call that receives nothing (store:
:meth:`~flowgate.reference.stores.Storage.ping`; KMS: DescribeKey, key must be enabled; SNS:
GetTopicAttributes; SQS: GetQueueAttributes) after a back-off of ``initial * 2**n`` seconds
(n = failed probes so far; jittered to 50-100 % by a RNG seeded with the listener's queue name,
capped at ``maximum``); the first successful probe *closes* it and polling resumes.

Timing (VT = visibility timeout, W = ``wait_time_seconds``, M = ``max_receive_count``,
R = the redrive ``maxReceiveCount``):

* the messages in hand when it opens are left alone: no further work, no ChangeMessageVisibility;
  each becomes visible again when its VT (from its receive, or its last heartbeat) runs out.
  Keeping them invisible would save one receive but needs the heartbeat for the whole outage,
  which fails anyway when SQS is the thing that is down; leaving them costs each message exactly
  one receive per worker per outage (measured by ``properties/test_outages.py``), whatever the
  outage's length: a worker whose breaker is open never receives it again until it closes.
* recovery is noticed at most ``maximum`` (+ W, the long poll in progress) after the dependency
  returns; the probes during an outage of length T are about ``log2(maximum / initial) +
  T / (0.75 * maximum)``, each one cheap call.
* an outage therefore costs a message at most ``workers`` receives (plus the receive that finally
  processes it), independent of T; R must leave that headroom above M
  (``BusOptions.redrive_max_receive_count``).

Thread-safe: a listener's poll threads share one breaker; one probe at a time (the thread that
claims a due probe pushes the next due time before probing).
"""

from __future__ import annotations

import logging
import random
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from flowgate.reference.hooks import Clock

log = logging.getLogger(__name__)

#: the dependencies a breaker can name (health checks say ``degraded: <dependency>``)
DEPENDENCIES = ("store", "kms", "sns", "sqs")


@dataclass(frozen=True)
class BreakerStatus:
    """What the health report shows: ``dependency`` is None while closed."""

    name: str
    dependency: str | None
    since: float | None
    error: str
    probes: int

    @property
    def open(self) -> bool:
        return self.dependency is not None


class CircuitBreaker:
    """See the module docstring. ``on_transition(name, state, dependency, error)`` is called on
    every open (``state="open"``) and close (``state="closed"``), outside the lock."""

    def __init__(
        self,
        name: str,
        *,
        clock: Clock,
        initial: float = 1.0,
        maximum: float = 30.0,
        on_transition: Callable[[str, str, str, str], None] | None = None,
    ) -> None:
        if not 0 < initial <= maximum:
            raise ValueError("breaker back-off must satisfy 0 < initial <= maximum")
        self.name = name
        self.clock = clock
        self.initial = initial
        self.maximum = maximum
        self.on_transition = on_transition
        self._rng = random.Random(zlib.crc32(name.encode("utf-8")))
        self._lock = threading.Lock()
        self._dependency: str | None = None
        self._error = ""
        self._since: float | None = None
        self._probes = 0
        self._next_probe = 0.0
        #: how often it opened (a receive that was in flight while it opened sees this change)
        self.trips = 0

    def __repr__(self) -> str:
        return f"CircuitBreaker({self.name!r}, open={self._dependency!r})"

    @property
    def is_open(self) -> bool:
        return self._dependency is not None

    def status(self) -> BreakerStatus:
        with self._lock:
            return BreakerStatus(self.name, self._dependency, self._since, self._error, self._probes)

    def _delay(self, n: int) -> float:
        base = min(self.maximum, self.initial * (2.0 ** min(n, 62)))
        return float(base * (0.5 + 0.5 * self._rng.random()))

    def trip(self, dependency: str, error: object) -> None:
        """Open on ``dependency`` (no-op while already open: the first failure is the one named)."""
        with self._lock:
            if self._dependency is not None:
                return
            now = self.clock.now()
            self._dependency, self._error, self._since = dependency, str(error)[:500], now
            self._probes = 0
            self._next_probe = now + self._delay(0)
            self.trips += 1
        log.warning("%s: %s unavailable, receiving paused: %s", self.name, dependency, error)
        if self.on_transition is not None:
            self.on_transition(self.name, "open", dependency, str(error)[:500])

    def seconds_to_probe(self) -> float:
        """0 when closed or a probe is due; else how long until the next one."""
        with self._lock:
            if self._dependency is None:
                return 0.0
            return max(0.0, self._next_probe - self.clock.now())

    def allow(self, probe: Callable[[str], None]) -> bool:
        """True when receiving is allowed: closed, or a due probe (``probe(dependency)``, which
        raises while the dependency is down) succeeded and closed it."""
        with self._lock:
            dependency = self._dependency
            if dependency is None:
                return True
            now = self.clock.now()
            if now < self._next_probe:
                return False
            self._probes += 1
            self._next_probe = now + self._delay(self._probes)
        try:
            probe(dependency)
        except Exception as exc:
            log.info("%s: probe of %s failed: %s", self.name, dependency, exc)
            with self._lock:
                self._error = f"{type(exc).__name__}: {exc}"[:500]
            return False
        with self._lock:
            if self._dependency != dependency:
                return self._dependency is None
            self._dependency, self._since = None, None
        log.warning("%s: %s is back, receiving resumed", self.name, dependency)
        if self.on_transition is not None:
            self.on_transition(self.name, "closed", dependency, "")
        return True


__all__ = ["DEPENDENCIES", "BreakerStatus", "CircuitBreaker"]
