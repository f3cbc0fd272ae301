"""The mutant catalog: deliberately broken variants of the reference bus.

Each mutant is a named set of in-process patches (``unittest.mock.patch`` on reference functions
and methods; the reference's source stays untouched) that re-creates one classic bug of
SQS/SNS buses. ``apply_mutant(name)`` is a context manager; ``FLOWGATE_MUTANT=name python -m
flowgate.harness.mutants.worker ARGS`` runs the reference worker as that mutant (for LocalStack
scenarios and the CI gate); ``flowgate mutants`` proves that every mutant is killed by the
property suites that declare it (``properties/``, see ``docs/properties.md``).
"""

from flowgate.harness.mutants.catalog import MUTANTS, Mutant, apply_mutant, mutant_from_env

__all__ = ["MUTANTS", "Mutant", "apply_mutant", "mutant_from_env"]
