"""Property: an encrypted simulated run is a function of its seed (docs/decisions.md D34).

Every random draw of the reference (the envelope's nonces, command ids, fencing tokens) goes
through the randomness seam (``flowgate.reference.hooks.Randomness``), which the simulator fills
from the run's seeded stream. Two runs of one seed must write the same history, byte for byte;
a draw that bypasses the seam (the ``nonce-bypasses-randomness-seam`` mutant: nonces from the OS)
makes every encrypted message, and so the history, differ between the runs.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from flowgate.harness.faults import parse_faults
from flowgate.harness.simulation import SimConfig, run_simulation


@settings(max_examples=5, deadline=None)
@given(seed=st.integers(min_value=0, max_value=2**32 - 1), fifo=st.booleans())
def test_an_encrypted_run_is_a_function_of_its_seed(seed: int, fifo: bool) -> None:
    config = SimConfig(
        seed=seed, orders=6, workers=2, fifo=fifo, encryption=True, faults=parse_faults("chaos")
    )
    first, second = run_simulation(config), run_simulation(config)
    assert [op.to_json() for op in first.history.ops] == [op.to_json() for op in second.history.ops], (
        f"seed {seed}: two runs of one seed wrote different histories ({config.cli_args()})"
    )
