"""The production run loop's receive linger (``BusOptions.receive_linger``), without a clock:
the loop's waits go through the stop event, which records them here."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from flowgate.reference.config import BusOptions
from flowgate.reference.domain.orders import order_registry
from flowgate.reference.errors import ConfigurationError
from flowgate.reference.listener import SqsListener


class RecordingStop(threading.Event):
    """A stop event whose ``wait`` records the timeout and returns at once."""

    def __init__(self) -> None:
        super().__init__()
        self.waits: list[float | None] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(timeout)
        return self.is_set()


def waits_after(received: list[int], linger: float, *, adaptive: bool = False) -> list[float | None]:
    """Run the loop over polls that receive ``received`` messages each, then stop it."""
    listener = SqsListener(
        None,
        queue="q.fifo",
        queue_url="http://sqs/q.fifo",
        dlq_url="http://sqs/q-dlq.fifo",
        registry=order_registry(),
        processor=None,  # type: ignore[arg-type]  # never reached: the poll is scripted
        options=BusOptions(receive_linger=linger, adaptive_linger=adaptive),
    )
    stop = RecordingStop()
    script = iter(received)

    def poll(*, wait_for_finish: bool) -> int:
        assert wait_for_finish is False  # the run loop hands the finish over
        n = next(script, None)
        if n is None:
            stop.set()
            return 0
        return n

    listener._poll = poll  # type: ignore[method-assign]
    listener.run(stop)
    return stop.waits


def test_fixed_linger_waits_after_every_partial_receive() -> None:
    # 3 and 9 are partial: wait; 10 (full: a backlog) and 0 (an empty long poll) are not
    assert waits_after([3, 10, 0, 9, 10], linger=0.05) == [0.05, 0.05]


def test_adaptive_linger_waits_only_after_a_partial_receive_that_follows_a_full_one() -> None:
    # D35: receives that keep up (partial after partial, or after an empty one) go at once; a
    # partial receive right after a full one (a backlog ran out) waits, never longer than the linger
    assert waits_after([3, 3, 9, 0, 5], linger=0.05, adaptive=True) == []
    assert waits_after([3, 10, 9, 10, 3, 0, 10, 10, 0, 4], linger=0.05, adaptive=True) == [0.05, 0.05]
    assert waits_after([10, 3, 3], linger=0.2, adaptive=True) == [0.2]


@pytest.mark.parametrize("adaptive", [False, True])
def test_no_linger_never_waits(adaptive: bool) -> None:
    assert waits_after([3, 1, 10, 9], linger=0.0, adaptive=adaptive) == []


@pytest.mark.parametrize("linger", [-0.01, 1.5])
def test_linger_out_of_range_is_refused(linger: Any) -> None:
    with pytest.raises(ConfigurationError, match="receive_linger"):
        BusOptions(receive_linger=linger)
