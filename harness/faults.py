"""Fault plans for the deterministic simulation (``flowgate sim --faults ...``).

A :class:`FaultPlan` says how often the nemesis (:class:`flowgate.harness.simulation.nemesis.Nemesis`,
which owns the ``max_faults`` budget) injects each fault kind. Probabilities are
per opportunity (a fault-point hit, a delivery, a delete, a producer send, a scheduler step);
``scripted`` faults fire exactly once, at the first hit of their point by a command message
(``crash@mid_handler``), which is what the fault-injection tests use.

The CLI syntax is a comma-separated list::

    crash=0.05,stall=0.02,dup=0.05,delay_delete=0.05,expire_lease=0.02,redeliver=0.02,
    resend=0.1,restart=0.01,producer_restart=0.1,slow_handler=0.1,poison=all,crash@after_effect_before_delete

``poison=all`` sends one message of every kind of the hostile-input catalog
(:mod:`flowgate.harness.hostile`, ``flowgate hostile list``) that fits the run's encryption and queue type;
``poison=bad_json+tampered`` names kinds; a name starting with ``~`` is a generated structured
mutation (:mod:`flowgate.harness.hostile.mutations`). ``chaos`` is a preset (with the seven classic kinds).

Dependency outages (the outage nemesis, :mod:`flowgate.harness.outages`)::

    outage=store+kms_disabled,outage_length=10,outage_after=5

``outage=`` names :data:`OUTAGE_KINDS` (``all`` = every kind; ``kms``/``sqs``/``sns`` are short
for the ``*_unreachable`` kinds), run one after another: the first starts right after the
``outage_after``-th command is sent (default -1: a third of the run's commands), each lasts
``outage_length`` visibility timeouts (default 10) and the next starts one VT after the previous
ended. The KMS kinds act only on an encrypted bus.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Final

from flowgate.harness import hostile
from flowgate.reference.hooks import FAULT_POINTS

#: The seven classic kinds (``chaos`` and the older properties send these); every one is a
#: catalog kind. ``poison=all`` means :data:`ALL_KINDS`.
POISON_KINDS: Final = (
    "bad_json",
    "unknown_type",
    "missing_attribute",
    "oversized",
    "tampered",
    "wrong_key",
    "swapped_aad",
)
#: Every catalog kind, in catalog order.
ALL_KINDS: Final = tuple(hostile.CATALOG)
#: Catalog kinds that need an encrypted bus.
ENCRYPTED_ONLY_KINDS: Final = frozenset(
    k.name for k in hostile.CATALOG.values() if k.encryption == "required"
)
#: Points where a stall / lease expiry makes sense (the message is claimed or being handled).
STALL_POINTS: Final = ("after_claim", "mid_handler", "after_effect_before_delete", "before_delete")
SCRIPTABLE: Final = ("crash", "stall", "expire_lease", "redeliver")
#: what the outage nemesis can take down (``flowgate.harness.outages``)
OUTAGE_KINDS: Final = ("store", "kms_disabled", "kms_unreachable", "sqs_unreachable", "sns_unreachable")
_OUTAGE_ALIASES: Final = {"kms": "kms_unreachable", "sqs": "sqs_unreachable", "sns": "sns_unreachable"}
_ALIASES: Final = {
    "dup": "duplicate",
    "duplicate_delivery": "duplicate",
    "delay": "delay_delete",
    "lease": "expire_lease",
    "expire": "redeliver",
}


@dataclass(frozen=True)
class FaultPlan:
    """How often each fault kind is injected (all default to none)."""

    crash: float = 0.0  # per fault-point hit: the worker dies there (WorkerCrash), replaced
    stall: float = 0.0  # per hit at STALL_POINTS: clock jumps past VT, another worker polls nested
    duplicate: float = 0.0  # per standard-queue delivery (SimTap): a second visible copy
    delay_delete: float = 0.0  # per delete (SimTap): the delete takes effect only after VT+1 s
    expire_lease: float = 0.0  # per hit at STALL_POINTS: the idempotency lease ends now, another worker polls
    redeliver: float = 0.0  # per hit at STALL_POINTS: visibility ends now (no time passes), nested poll
    resend: float = 0.0  # per producer send: the same command (same identity) is sent again later
    restart: float = 0.0  # per scheduler step: a worker restarts with empty in-memory state
    # per producer send (``SimConfig.bus_numbers``): the producer dies before the publish, after
    # the number is allocated (nothing sent) or after the send (not marked sent), and restarts
    producer_restart: float = 0.0
    poison: tuple[str, ...] = ()
    scripted: tuple[str, ...] = ()  # "kind@point", each fires once
    crash_points: tuple[str, ...] = FAULT_POINTS
    max_faults: int = 10_000  # budget of probabilistic faults per run (resends are not charged)
    outages: tuple[str, ...] = ()  # OUTAGE_KINDS, one after another (module docstring)
    outage_length: int = 10  # in visibility timeouts
    outage_after: int = -1  # the first outage starts after this many sends (-1: a third)
    #: per mid_handler hit: the handler takes 1.2..3 VT (past visibility and lease unless the
    #: heartbeat extends them); interleaved, the process sleeps while the others run, serially
    #: the clock jumps and another worker polls nested (as ``stall``)
    slow_handler: float = 0.0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and not 0.0 <= value <= 1.0:
                raise ValueError(f"fault probability {f.name}={value} outside [0, 1]")
        for kind in self.poison:
            hostile.resolve(kind)  # ValueError for an unknown name or a malformed mutation
        for kind in self.outages:
            if kind not in OUTAGE_KINDS:
                raise ValueError(f"unknown outage kind {kind!r}; known: {', '.join(OUTAGE_KINDS)}")
        if self.outage_length < 1:
            raise ValueError("outage_length must be >= 1 visibility timeout")
        for item in self.scripted:
            kind, _, point = item.partition("@")
            if kind not in SCRIPTABLE or point not in FAULT_POINTS:
                raise ValueError(
                    f"scripted fault {item!r} must be KIND@POINT with KIND in {SCRIPTABLE} "
                    f"and POINT in {FAULT_POINTS}"
                )

    @property
    def active(self) -> bool:
        return any(
            getattr(self, f.name)
            for f in fields(self)
            if f.name not in ("crash_points", "max_faults", "outage_length", "outage_after")
        )

    def to_arg(self) -> str:
        """The ``--faults`` argument that rebuilds this plan (for replay commands)."""
        parts: list[str] = []
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and value:
                parts.append(f"{f.name}={value:g}")
        if self.poison:
            parts.append("poison=all" if self.poison == ALL_KINDS else "poison=" + "+".join(self.poison))
        parts.extend(self.scripted)
        if self.crash_points != FAULT_POINTS:
            parts.append("crash_points=" + "+".join(self.crash_points))
        if self.max_faults != 10_000:
            parts.append(f"max_faults={self.max_faults}")
        if self.outages:
            parts.append("outage=" + "+".join(self.outages))
            if self.outage_length != 10:
                parts.append(f"outage_length={self.outage_length}")
            if self.outage_after != -1:
                parts.append(f"outage_after={self.outage_after}")
        return ",".join(parts) or "none"


CHAOS: Final = FaultPlan(
    crash=0.01,
    stall=0.01,
    duplicate=0.05,
    delay_delete=0.02,
    expire_lease=0.01,
    redeliver=0.01,
    resend=0.05,
    restart=0.005,
    poison=POISON_KINDS,
)


def parse_faults(text: str | None) -> FaultPlan:
    """Parse the ``--faults`` syntax (see the module docstring)."""
    plan = FaultPlan()
    if not text or text == "none":
        return plan
    changes: dict[str, object] = {}
    scripted: list[str] = []
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            continue
        if item == "chaos":
            plan = CHAOS
            continue
        if "@" in item:
            scripted.append(item)
            continue
        name, sep, value = item.partition("=")
        name = _ALIASES.get(name, name)
        if name == "poison":
            kinds = ALL_KINDS if value in ("", "all") else tuple(value.split("+"))
            changes["poison"] = kinds
        elif name == "crash_points":
            changes["crash_points"] = tuple(value.split("+"))
        elif name == "max_faults":
            changes["max_faults"] = int(value)
        elif name in ("outage", "outages"):
            kinds = OUTAGE_KINDS if value in ("", "all") else tuple(value.split("+"))
            changes["outages"] = tuple(_OUTAGE_ALIASES.get(k, k) for k in kinds)
        elif name in ("outage_length", "outage_after"):
            changes[name] = int(value)
        elif sep and name in {f.name for f in fields(FaultPlan)}:
            changes[name] = float(value)
        else:
            raise ValueError(
                f"cannot parse fault {item!r} (expected NAME=PROBABILITY, KIND@POINT or poison=...)"
            )
    if scripted:
        changes["scripted"] = (*plan.scripted, *scripted)
    return replace(plan, **changes)  # type: ignore[arg-type]


__all__ = [
    "ALL_KINDS",
    "CHAOS",
    "ENCRYPTED_ONLY_KINDS",
    "OUTAGE_KINDS",
    "POISON_KINDS",
    "STALL_POINTS",
    "FaultPlan",
    "parse_faults",
]
