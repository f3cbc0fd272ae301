"""Virtual time for the simulator.

:class:`VirtualClock` satisfies :class:`flowgate.reference.hooks.Clock` (``now()`` and ``sleep()``), but
time only moves when someone calls :meth:`sleep`, :meth:`advance` or :meth:`advance_to` -- or when
a simulated long poll (``ReceiveMessage`` with ``WaitTimeSeconds > 0``) finds nothing and jumps
to the next moment something becomes visible. No wall clock is read anywhere.
"""

from __future__ import annotations

from typing import Final

#: 2023-11-14T22:13:20Z: a fixed, recognisable epoch so timestamps in transcripts are stable.
DEFAULT_START: Final = 1_700_000_000.0


class VirtualClock:
    """A monotonic, manually advanced clock (seconds since the epoch, as floats)."""

    __slots__ = ("_now",)

    def __init__(self, start: float = DEFAULT_START) -> None:
        self._now = float(start)

    def now(self) -> float:
        return self._now

    def sleep(self, seconds: float) -> None:
        """Sleeping in a simulation is advancing time; negative or zero sleeps do nothing."""
        if seconds > 0:
            self._now += seconds

    def advance(self, seconds: float) -> float:
        """Move time forward by ``seconds`` (must be >= 0); returns the new time."""
        if seconds < 0:
            raise ValueError(f"virtual time cannot go backwards (advance({seconds!r}))")
        self._now += seconds
        return self._now

    def advance_to(self, when: float) -> float:
        """Move time forward to ``when`` if it lies in the future; returns the new time."""
        if when > self._now:
            self._now = when
        return self._now

    def __repr__(self) -> str:
        return f"VirtualClock(now={self._now!r})"
