"""Mutants of the load-adaptive lingers (decision D35, :mod:`flowgate.reference.linger`): patch builders
used by :mod:`flowgate.harness.mutants.catalog`; ``properties/test_linger.py`` kills them."""

from __future__ import annotations

from typing import Any
from unittest import mock

from flowgate.harness.mutants.model import Mutant, P
from flowgate.reference.linger import MAX_BATCH, FillLinger

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


LINGER = P + "test_linger.py"
LINGER_BOUND = LINGER + "::test_every_entry_is_sent_once_in_order_and_no_batch_waits_past_the_linger"
LINGER_ANY_HISTORY = LINGER + "::test_a_partial_batch_never_waits_past_the_linger_whatever_came_before"
LINGER_ADAPTIVE = LINGER + "::test_adaptive_lingers_only_after_a_full_batch"
LINGER_KEEPS_UP = LINGER + "::test_adaptive_adds_nothing_at_a_rate_the_sender_keeps_up_with"
LINGER_BATCHER = LINGER + "::test_the_batcher_sends_a_first_partial_batch_without_its_linger"

MUTANTS: tuple[Mutant, ...] = (
    # load-adaptive lingers (docs/decisions.md D35)
    Mutant(
        "linger-never-flushes-partial",
        "after a full batch a partial batch waits until it fills instead of at most the linger "
        "(D35): when the load falls, the last entries wait for entries that never come",
        (LINGER_BOUND, LINGER_ANY_HISTORY),
        (),
        linger_never_flushes_partial,
    ),
    Mutant(
        "adaptive-linger-ignored",
        "BusOptions.adaptive_linger is ignored: every partial batch and receive waits its full "
        "linger at every rate (D35's latency lost)",
        (LINGER_ADAPTIVE, LINGER_KEEPS_UP, LINGER_BATCHER),
        (),
        adaptive_linger_ignored,
    ),
)
