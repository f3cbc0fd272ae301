"""Mutants of the load-adaptive lingers (decision D35, :mod:`reference.linger`): patch builders
used by :mod:`harness.mutants.catalog`; ``properties/test_linger.py`` kills them."""

from __future__ import annotations

from typing import Any
from unittest import mock

from reference.linger import MAX_BATCH, FillLinger

#: a day: what "waits until the batch fills" amounts to when the load falls
_FOREVER_S = 86_400.0


def linger_never_flushes_partial() -> list[Any]:
    """After a full batch, a partial batch waits until it fills instead of at most the linger:
    when the load falls, the last entries of a burst wait for entries that never come."""

    def wait(self: FillLinger, pending: int) -> float:
        if pending >= MAX_BATCH or self.linger <= 0:
            return 0.0
        if self.adaptive and not self.last_full:
            return 0.0
        return _FOREVER_S if self.last_full else self.linger

    return [mock.patch.object(FillLinger, "wait", wait)]


def adaptive_linger_ignored() -> list[Any]:
    """``adaptive_linger`` is ignored: every partial batch waits its linger (the fixed lingers'
    latency at every rate)."""

    def wait(self: FillLinger, pending: int) -> float:
        return 0.0 if pending >= MAX_BATCH or self.linger <= 0 else self.linger

    return [mock.patch.object(FillLinger, "wait", wait)]
