"""Shared state of one simulated AWS account: clock, the one RNG, tap, options."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

from .clock import VirtualClock
from .hooks import SimTap

# uuid.UUID(version=4): the variant bits (RFC 4122) and the version nibble
_UUID_CLEAR = ~((0xC000 << 48) | (0xF000 << 64))
_UUID_SET = (0x8000 << 48) | (4 << 76)


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
    #: services whose endpoint is unreachable now (:meth:`flowgate.harness.sim.SimAws.set_unreachable`)
    unreachable: set[str] = field(default_factory=set)
    _request_no: int = 0

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def new_uuid(self) -> str:
        """A version-4 UUID from the RNG: ``str(uuid.UUID(int=self.rng.getrandbits(128), version=4))``
        (the same 128 bits drawn, the same text), without building the object."""
        n = (self.rng.getrandbits(128) & _UUID_CLEAR) | _UUID_SET
        h = f"{n:032x}"
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    def request_id(self) -> str:
        # Not drawn from the RNG: request ids never influence behaviour.
        self._request_no += 1
        return f"00000000-0000-4000-8000-{self._request_no:012d}"
