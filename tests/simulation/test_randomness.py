"""The simulator's seeded source for the reference's randomness seam (``flowgate.reference.hooks``)."""

from __future__ import annotations

import random
import uuid

from flowgate.harness.simulation.randomness import SeededRandomness


def test_the_seeded_source_draws_the_bytes_of_the_old_patch() -> None:
    """``SeededRandomness(rng).token_bytes(n)`` is ``rng.randbytes(n)`` (what the simulator's
    patched ``os.urandom`` returned), and its ids are the simulator's
    ``uuid.UUID(int=rng.getrandbits(128), version=4)``: every seed's history is unchanged."""
    a, b = random.Random(5), random.Random(5)
    seeded = SeededRandomness(a)
    assert seeded.cryptographic is False
    assert seeded.token_bytes(12) == b.randbytes(12)
    assert seeded.uuid4() == str(uuid.UUID(int=b.getrandbits(128), version=4))
    assert seeded.randbits(62) == b.getrandbits(62)
    assert a.random() == b.random()  # the streams stay in step
