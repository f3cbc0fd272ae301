"""The simulator's :class:`flowgate.reference.hooks.Randomness`: a seeded, NON-cryptographic source.

It draws from the run's main ``random.Random`` (the stream the scheduler and the nemesis draw
from, in the order the run makes its draws), so a seed reproduces the AES-GCM nonces, and with
them the sealed bodies, byte for byte. ``token_bytes(n)`` is ``rng.randbytes(n)``: exactly the
bytes the simulator drew before the seam existed, when it patched ``os`` inside
:mod:`flowgate.reference.envelope`. Its ``cryptographic`` is false, so the envelope cipher warns when it
is handed one; it lives in the harness, never in the reference (``flowgate.reference.hooks``)."""

from __future__ import annotations

import random
import uuid


class SeededRandomness:
    """:class:`flowgate.reference.hooks.Randomness` over a ``random.Random`` (simulation only)."""

    cryptographic = False

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    def token_bytes(self, n: int) -> bytes:
        return self._rng.randbytes(n)

    def randbits(self, k: int) -> int:
        return self._rng.getrandbits(k)

    def uuid4(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))


__all__ = ["SeededRandomness"]
