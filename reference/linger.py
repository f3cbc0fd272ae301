"""When a batch waits for more entries: fixed or load-adaptive lingers (decision D35).

Two places wait to fill a batch of up to :data:`MAX_BATCH` (10) entries: the batching sender
(:class:`flowgate.reference.dispatchers.Batcher`: ``batch_linger``, and ``publish_linger`` for the worker's
shared event publisher) before a SendMessageBatch/PublishBatch call, and the production run loop
of a listener (``receive_linger``) before its next ReceiveMessage after a partial receive.

:class:`FillLinger` is that decision for one stream of batches, without a clock: the caller
asks :meth:`FillLinger.wait` how long the ``pending`` entries (or, for a receive, the next
batch) may wait, and reports every batch it sent or received with :meth:`FillLinger.sent`.

* ``adaptive=False`` (the fixed linger, before D35): a partial batch always waits ``linger``.
* ``adaptive=True`` (the default, ``BusOptions.adaptive_linger``), Nagle-like: a partial batch
  waits only while batches fill, i.e. when the previous batch of the stream was full; after a
  partial (or no) previous batch it goes at once. At a rate the stream keeps up with, batches are
  partial, so nothing lingers and the latency is the calls' own; under a backlog batches are
  full and each partial batch that follows one waits as before, so the calls per message (and
  the CPU of both sides) stay those of the fixed linger where it matters.

Either way a full batch never waits, and a partial batch never waits longer than ``linger``:
every entry is sent (or the next receive made) at most ``linger`` after the decision, whatever
came before. ``linger`` <= 0 never waits.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_BATCH = 10


@dataclass
class FillLinger:
    """The linger decision for one stream of batches (see the module docstring)."""

    linger: float
    adaptive: bool = True
    #: whether the last batch this stream sent (or received) was full; a new stream starts as
    #: after a partial one, so its first partial batch goes at once
    last_full: bool = False

    def wait(self, pending: int) -> float:
        """Seconds that ``pending`` entries (1..10; for a receive: the next batch) may wait for
        more before they go: 0 for a full batch, ``linger`` or 0 for a partial one."""
        if pending >= MAX_BATCH or self.linger <= 0:
            return 0.0
        if self.adaptive and not self.last_full:
            return 0.0
        return self.linger

    def sent(self, size: int) -> None:
        """A batch of ``size`` entries was sent (or received)."""
        self.last_full = size >= MAX_BATCH
