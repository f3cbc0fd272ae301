"""The mutant catalog: one aggregation point, :data:`MUTANTS` (see :mod:`flowgate.harness.mutants`).

A mutant is defined next to its patches: each mutant module (:mod:`.claims`, :mod:`.producers`,
:mod:`.listener`, :mod:`.simulator`, :mod:`.resolution`, :mod:`.operations`, :mod:`.detection`,
:mod:`.interop`, :mod:`.sagas`, :mod:`.latency`, :mod:`.load`)
holds its patch builders and a ``MUTANTS`` tuple of its :class:`~flowgate.harness.mutants.model.Mutant`
entries; this module joins them, in that order. Adding a mutant is one edit: its builder and its
entry in the module of its area (a new module: one more line in :data:`MUTANTS` below). A name
defined twice fails at import.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from flowgate.harness.mutants import (
    claims,
    detection,
    interop,
    latency,
    listener,
    load,
    operations,
    producers,
    resolution,
    sagas,
    simulator,
)
from flowgate.harness.mutants.model import CH_LONG, ENV, Mutant

__all__ = ["ENV", "MUTANTS", "SCENARIO_TIMEOUTS_S", "Mutant", "apply_mutant", "mutant_from_env"]


def _join(*groups: tuple[Mutant, ...]) -> dict[str, Mutant]:
    """The groups' mutants by name, in order; a name defined twice is a ``ValueError``."""
    out: dict[str, Mutant] = {}
    for m in (m for group in groups for m in group):
        if m.name in out:
            raise ValueError(f"mutant {m.name!r} defined twice")
        out[m.name] = m
    return out


MUTANTS: dict[str, Mutant] = _join(
    claims.MUTANTS,
    producers.MUTANTS,
    listener.MUTANTS,
    simulator.MUTANTS,
    resolution.MUTANTS,
    operations.MUTANTS,
    detection.MUTANTS,
    interop.MUTANTS,
    sagas.MUTANTS,
    latency.MUTANTS,
    load.MUTANTS,
)


#: scenario nodes that need more than ``flowgate mutants --suite scenarios``' per-run timeout
#: (seconds): the long chaos run keeps its whole kill schedule under a mutant (~6 min), then
#: waits 60 s without progress before it gives up on the missing effects
SCENARIO_TIMEOUTS_S: dict[str, float] = {CH_LONG: 900.0}


@contextmanager
def apply_mutant(name: str) -> Iterator[Mutant]:
    """Install mutant ``name`` for the duration of the ``with`` block."""
    try:
        mutant = MUTANTS[name]
    except KeyError:
        raise ValueError(f"unknown mutant {name!r}; known: {', '.join(MUTANTS)}") from None
    with ExitStack() as stack:
        for patch in mutant.patches():
            stack.enter_context(patch)
        yield mutant


def mutant_from_env() -> str | None:
    return os.environ.get(ENV) or None
