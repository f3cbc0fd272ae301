"""Load-adaptive lingers (decision D35, :mod:`flowgate.reference.linger`) on a virtual clock.

The batching sender's loop (:class:`flowgate.reference.dispatchers.Batcher`) is modelled here event by
event with virtual time: entries arrive at generated times, one call is in flight at a time and
takes ``call_s``, and before each call the loop asks :class:`~flowgate.reference.linger.FillLinger` how
long the pending entries may wait for more (a full batch goes at once). The properties:

* every entry is sent exactly once, in arrival order, in batches of at most 10;
* no batch waits longer than the linger, whatever came before (a partial batch is always
  flushed: the failure mode of an adaptive linger);
* adaptive: a partial batch after a partial one goes at once, so at a rate the sender keeps up
  with (no batch fills) nothing lingers; after a full batch it waits the linger like the fixed
  policy; fixed: a partial batch always waits the linger.

No timers: the real Batcher is checked only for what needs no clock (its first partial batch
goes without waiting for an hour-long linger; closing flushes what is pending).
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowgate.reference.dispatchers import Batcher
from flowgate.reference.linger import MAX_BATCH, FillLinger


@dataclass(frozen=True)
class Sent:
    decided: float  # virtual time the loop decided how long to wait
    start: float  # virtual time the call started
    entries: tuple[int, ...]  # indices of the entries, in arrival order

    @property
    def waited(self) -> float:
        return self.start - self.decided


def simulate(arrivals: list[float], *, call_s: float, lingers: FillLinger) -> list[Sent]:
    """The Batcher's loop on virtual time (one destination; ``arrivals`` sorted)."""
    out: list[Sent] = []
    pending: list[int] = []
    i, now = 0, 0.0
    while i < len(arrivals) or pending:
        if not pending:  # idle: the next arrival wakes the loop
            now = max(now, arrivals[i])
        while i < len(arrivals) and arrivals[i] <= now:
            pending.append(i)
            i += 1
        decided = now
        deadline = now + lingers.wait(len(pending))
        start = deadline
        while len(pending) < MAX_BATCH and i < len(arrivals) and arrivals[i] <= deadline:
            pending.append(i)
            i += 1
            if len(pending) >= MAX_BATCH:  # the batch filled while it waited: it goes now
                start = max(now, arrivals[i - 1])
        batch, pending = pending[:MAX_BATCH], pending[MAX_BATCH:]
        lingers.sent(len(batch))
        out.append(Sent(decided, start, tuple(batch)))
        now = start + call_s
    return out


gaps = st.lists(st.floats(min_value=0.0, max_value=0.2, allow_nan=False), min_size=1, max_size=120)
lingers_s = st.sampled_from([0.01, 0.05, 0.2])
calls_s = st.floats(min_value=0.001, max_value=0.15, allow_nan=False)


def _arrivals(gap_list: list[float]) -> list[float]:
    t, out = 0.0, []
    for g in gap_list:
        t += g
        out.append(t)
    return out


@given(gaps, lingers_s, calls_s, st.booleans())
def test_every_entry_is_sent_once_in_order_and_no_batch_waits_past_the_linger(
    gap_list: list[float], linger: float, call_s: float, adaptive: bool
) -> None:
    arrivals = _arrivals(gap_list)
    sent = simulate(arrivals, call_s=call_s, lingers=FillLinger(linger, adaptive=adaptive))
    assert [e for s in sent for e in s.entries] == list(range(len(arrivals)))
    assert all(1 <= len(s.entries) <= MAX_BATCH for s in sent)
    for s in sent:
        # never longer than the linger; the last, partial batch too (a partial batch is flushed)
        assert s.waited <= linger + 1e-9, s
        # no entry goes before it arrived
        assert s.start >= arrivals[s.entries[-1]] - 1e-9 or len(s.entries) == MAX_BATCH


@given(gaps, lingers_s, calls_s)
def test_adaptive_lingers_only_after_a_full_batch(
    gap_list: list[float], linger: float, call_s: float
) -> None:
    sent = simulate(_arrivals(gap_list), call_s=call_s, lingers=FillLinger(linger, adaptive=True))
    previous_full = False
    for s in sent:
        if previous_full and len(s.entries) < MAX_BATCH and s.waited == 0:
            # it waited less only because the batch filled at once (impossible: it is partial)
            raise AssertionError(f"a partial batch after a full one went without its linger: {s}")
        if not previous_full:
            assert s.waited == 0, f"a batch after a partial one waited {s.waited} s: {s}"
        previous_full = len(s.entries) >= MAX_BATCH


@given(st.integers(min_value=1, max_value=60), lingers_s)
def test_adaptive_adds_nothing_at_a_rate_the_sender_keeps_up_with(orders: int, linger: float) -> None:
    # one entry every 20 ms, calls of 10 ms: no batch ever fills, so no entry lingers at all,
    # where the fixed linger makes every batch wait its full linger
    arrivals = [0.02 * n for n in range(orders)]
    adaptive = simulate(arrivals, call_s=0.01, lingers=FillLinger(linger, adaptive=True))
    fixed = simulate(arrivals, call_s=0.01, lingers=FillLinger(linger, adaptive=False))
    assert all(s.waited == 0 for s in adaptive)
    assert all(len(s.entries) < MAX_BATCH for s in adaptive)
    assert all(s.waited == pytest.approx(linger) for s in fixed if len(s.entries) < MAX_BATCH)


@given(st.lists(st.integers(min_value=0, max_value=MAX_BATCH), max_size=30), lingers_s, st.booleans())
def test_a_partial_batch_never_waits_past_the_linger_whatever_came_before(
    history: list[int], linger: float, adaptive: bool
) -> None:
    lingers = FillLinger(linger, adaptive=adaptive)
    for size in history:
        lingers.sent(size)
    assert lingers.wait(MAX_BATCH) == 0.0
    for pending in range(1, MAX_BATCH):
        wait = lingers.wait(pending)
        assert 0.0 <= wait <= linger
        if not adaptive:
            assert wait == linger
        else:
            assert wait == (linger if history and history[-1] >= MAX_BATCH else 0.0)


class _Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def __call__(self, destination: str, entries: list[dict[str, Any]]) -> list[Exception | None]:
        self.calls.append((destination, len(entries)))
        return [None] * len(entries)


def test_the_batcher_sends_a_first_partial_batch_without_its_linger() -> None:
    # an hour-long linger: the adaptive batcher still sends the first partial batch at once (a
    # fixed one would hold it for the hour); the bound on result() is there only so that a
    # broken batcher fails instead of hanging, it times nothing
    send = _Recorder()
    batcher = Batcher(send, 3600.0, adaptive=True)
    try:
        futures: list[Future[None]] = [batcher.submit("t", {"n": n}) for n in range(3)]
        for fut in futures:
            fut.result(timeout=30)
    finally:
        batcher.close()
    assert sum(n for _, n in send.calls) == 3


def test_closing_the_batcher_flushes_a_lingering_partial_batch() -> None:
    send = _Recorder()
    batcher = Batcher(send, 3600.0, adaptive=False)
    futures = [batcher.submit("t", {"n": n}) for n in range(4)]
    batcher.close()
    for fut in futures:
        fut.result(timeout=120)
    assert send.calls == [("t", 4)]
