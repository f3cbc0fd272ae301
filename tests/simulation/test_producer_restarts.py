"""The simulator's producer model (``bus_numbers``, ``producer_restart``): deterministic, every
producer fault point is reached, and the CLI rebuilds the config (decision D25)."""

from __future__ import annotations

import shlex
from collections import Counter

from flowgate.harness.faults import FaultPlan, parse_faults
from flowgate.harness.simulation import SimConfig, _config, _parser, run_simulation

CONFIG = SimConfig(seed=5, orders=10, workers=2, producers=3, bus_numbers=True,
                   faults=FaultPlan(producer_restart=0.4, crash=0.05))


def _restart_points(config: SimConfig) -> Counter[str]:
    result = run_simulation(config)
    return Counter(op.value["point"] for op in result.history.ops if op.f == "producer_restart")


def test_same_seed_same_history_with_producer_restarts() -> None:
    first, second = run_simulation(CONFIG), run_simulation(CONFIG)
    assert [op.to_json() for op in first.history.ops] == [op.to_json() for op in second.history.ops]


def test_every_producer_point_is_reached() -> None:
    points = _restart_points(CONFIG)
    assert set(points) == {"before_publish", "after_allocate", "after_send"}, points


def test_sends_go_to_several_producers_and_carry_the_bus_numbers() -> None:
    result = run_simulation(CONFIG)
    sends = [op for op in result.history.ops if op.f == "send" and op.type == "ok"]
    per_entity: dict[str, set[str]] = {}
    for op in sends:
        assert op.value["seq"] >= 1
        per_entity.setdefault(str(op.value["entity_id"]), set()).add(op.process.split("#")[0])
    assert any(len(producers) > 1 for producers in per_entity.values())


def test_cli_args_rebuild_the_producer_config() -> None:
    args = shlex.split(CONFIG.cli_args())
    assert "--bus-numbers" in args
    assert parse_faults("producer_restart=0.4,crash=0.05") == CONFIG.faults
    rebuilt = _config(_parser("flowgate sim", seed_positional=False).parse_args(["--seed", "5", *args]))
    assert rebuilt == CONFIG
