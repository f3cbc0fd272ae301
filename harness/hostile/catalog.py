"""The hostile-input catalog: every kind, as data (see :mod:`flowgate.harness.hostile`).

Each transform starts from the context's valid ``PlaceOrder`` (its own fresh entity, sequence
number 1, a fresh eventId) so an ``Applied`` kind is a new command that must take effect exactly
once, and a dead-lettered one harms no valid order. Outcomes are what a *correct* consumer does
(docs/hostile.md lists them next to what the reference does today).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

# the kind modules register their kinds on import (kinds_wire imports kinds_payload first)
from . import kinds_payload, kinds_wire  # noqa: F401
from .core import HostileKind, Unavailable
from .kinds_base import DEEP, REGISTERED, set_path
from .kinds_wire import event_message


def _catalog() -> Mapping[str, HostileKind]:
    out: dict[str, HostileKind] = {}
    for k in REGISTERED:
        if k.name in out:
            raise ValueError(f"hostile kind {k.name!r} defined twice")
        out[k.name] = k
    return out


CATALOG: Mapping[str, HostileKind] = _catalog()


def iter_kinds() -> Iterator[HostileKind]:
    return iter(CATALOG.values())


__all__ = ["CATALOG", "DEEP", "Unavailable", "event_message", "iter_kinds", "set_path"]
