"""Scheduled cleanup of idempotency records (SourceFlow's ``cleanupIntervalMinutes``, doc 001).

Without it the idempotency table grows by one row per command and per (event, view) forever.
:class:`IdempotencyCleaner` calls :meth:`Storage.cleanup <flowgate.reference.stores.Storage.cleanup>` every
``BusOptions.idempotency_cleanup_interval`` seconds (default 3600) with the TTL as the
abandonment age, so the store holds about ``rate x (TTL + interval)`` records.

What a sweep deletes is decided by :func:`flowgate.reference.stores.cleanable` and nothing else:

* a COMPLETED / DEAD_LETTERED record whose TTL ran out (``expires_at <= now``). The TTL rule
  (``idempotency_ttl_seconds >= 2 x message_retention_seconds``, docs/decisions.md D22) makes
  sure no copy of its message is left in the queue or its DLQ, so it can never be claimed again;
* an IN_PROGRESS claim whose lease ended a whole TTL ago (its worker died and its message is gone
  for good, e.g. moved to a DLQ by SQS's redrive and never replayed).

Never a leased claim (its lease is the message's visibility deadline: a worker holds it, and its
fenced commit must still find its row), never anything younger than the TTL.

How it runs, and why it cannot block processing:

* In a worker process (:func:`flowgate.reference.worker.start_cleanup`) it has its own thread, started
  with the poll threads and stopped by the same stop event (SIGTERM). It never runs inside a poll
  loop, so receives, heartbeats (VT/2) and the long poll (``wait_time_seconds``) are never delayed
  by it; its first sweep runs one interval after start-up, then one per interval (SourceFlow's
  periodic timer; ``stop.wait``: a stop is noticed at once, even mid-interval, and between two
  batches of a sweep). Not at start-up: a crash-looping worker, or the simulator's restarted
  workers, would scan the store on every start. A worker that never lives a whole interval never
  sweeps: where workers are that short-lived, lower the interval.
* A sweep is a loop of short statements of at most ``idempotency_cleanup_batch`` rows each
  (:meth:`~flowgate.reference.stores.Storage.cleanup` with ``limit``). On SQLite each statement holds the
  process's writer lock for one batch only; on PostgreSQL rows another transaction is writing are
  skipped (``FOR UPDATE SKIP LOCKED``), never waited for. A claim racing a sweep is safe either
  way: the sweep's WHERE clause is re-checked on the row it deletes (a record taken over or
  extended meanwhile no longer matches).
* A failing sweep (store down) is logged and retried at the next interval; it never opens a
  listener's circuit breaker and never raises into the worker.
* Under a virtual clock (the simulator, tests) :meth:`IdempotencyCleaner.run_due` runs a sweep
  when one is due; nothing waits.
"""

from __future__ import annotations

import logging
import threading

from flowgate.reference.hooks import Clock
from flowgate.reference.stores import Storage

log = logging.getLogger(__name__)


class IdempotencyCleaner:
    """Sweeps ``storage`` every ``interval`` seconds of ``clock`` (see the module docstring).

    ``ttl`` is the idempotency TTL: the age after its lease ended at which an abandoned claim is
    deleted. ``batch`` bounds one statement. Thread-safe as far as the store is (one sweep at a
    time per cleaner).
    """

    def __init__(
        self, storage: Storage, *, interval: float, ttl: float, clock: Clock, batch: int = 1000
    ) -> None:
        if interval <= 0 or ttl <= 0 or batch < 1:
            raise ValueError("interval and ttl must be > 0, batch >= 1")
        self.storage = storage
        self.interval = interval
        self.ttl = ttl
        self.clock = clock
        self.batch = batch
        #: clock time of the next due sweep (the first one an interval after construction)
        self.next_due = clock.now() + interval
        #: sweeps completed and records deleted so far (for logs and tests)
        self.sweeps = 0
        self.deleted = 0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"IdempotencyCleaner(interval={self.interval:g}s, ttl={self.ttl:g}s, batch={self.batch})"

    def sweep(self, stop: threading.Event | None = None) -> int:
        """Delete every cleanable record now, one batch per statement; returns how many. Stops
        between batches when ``stop`` is set. Store errors propagate."""
        total = 0
        with self._lock:
            while stop is None or not stop.is_set():
                n = self.storage.cleanup(self.clock.now(), abandoned_after=self.ttl, limit=self.batch)
                total += n
                if n < self.batch:
                    break
            self.sweeps += 1
            self.deleted += total
        if total:
            log.info("idempotency cleanup deleted %d expired records", total)
        return total

    def run_due(self, stop: threading.Event | None = None) -> int:
        """Sweep if one is due (then the next is due one interval later); returns how many records
        were deleted. A store failure is logged and the sweep retried at the next interval."""
        now = self.clock.now()
        if now < self.next_due:
            return 0
        self.next_due = now + self.interval
        try:
            return self.sweep(stop)
        except Exception as exc:  # a failed sweep must never take the worker down
            log.warning("idempotency cleanup failed (retried in %g s): %s", self.interval, exc)
            return 0

    def run(self, stop: threading.Event) -> None:
        """The worker's cleanup thread: a sweep every interval (the first one interval after the
        cleaner was built), until ``stop``."""
        while not stop.is_set():
            self.run_due(stop)
            stop.wait(max(0.0, self.next_due - self.clock.now()))
