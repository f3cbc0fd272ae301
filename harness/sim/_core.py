"""Shared state of one simulated AWS account: clock, the one RNG, tap, options."""

from __future__ import annotations

import random
import uuid
from collections import Counter
from dataclasses import dataclass, field

from .clock import VirtualClock
from .hooks import SimTap


@dataclass
class SimCore:
    seed: int
    clock: VirtualClock
    region: str
    account: str
    tap: SimTap
    redelivery_probability: float = 0.0
    reorder: bool = False
    rng: random.Random = field(init=False)
    calls: Counter[tuple[str, str]] = field(default_factory=Counter)
    #: services whose endpoint is unreachable now (:meth:`harness.sim.SimAws.set_unreachable`)
    unreachable: set[str] = field(default_factory=set)
    _request_no: int = 0

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def new_uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def request_id(self) -> str:
        # Not drawn from the RNG: request ids never influence behaviour.
        self._request_no += 1
        return f"00000000-0000-4000-8000-{self._request_no:012d}"
