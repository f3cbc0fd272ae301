"""The language-neutral gate: run any implementation of contract v1 (``docs/contract.md``) under
a seeded workload and faults on LocalStack or AWS, and judge it with :mod:`flowgate.harness.checkers`."""

from flowgate.harness.gate.driver import (
    EXIT_ANOMALY,
    EXIT_INFRA,
    EXIT_PASS,
    EXIT_USAGE,
    GateError,
    GateResult,
    run_gate,
)

__all__ = ["EXIT_ANOMALY", "EXIT_INFRA", "EXIT_PASS", "EXIT_USAGE", "GateError", "GateResult", "run_gate"]
