"""The outage nemesis: plan syntax, history ops, determinism, replay command."""

from __future__ import annotations

import pytest

from flowgate.harness.faults import OUTAGE_KINDS, FaultPlan, parse_faults
from flowgate.harness.simulation import SimConfig, main, run_simulation


def test_outage_plan_syntax_round_trips() -> None:
    plan = parse_faults("crash=0.05,outage=store+kms,outage_length=12,outage_after=4")
    assert plan.outages == ("store", "kms_unreachable")
    assert plan.outage_length == 12
    assert plan.outage_after == 4
    assert plan.active
    assert parse_faults(plan.to_arg()) == plan
    assert parse_faults("outage=all").outages == OUTAGE_KINDS
    assert not FaultPlan().active  # the outage defaults alone do not make a plan active
    with pytest.raises(ValueError, match="unknown outage kind"):
        parse_faults("outage=dns")
    with pytest.raises(ValueError, match="outage_length"):
        FaultPlan(outages=("store",), outage_length=0)


@pytest.mark.parametrize("kind", OUTAGE_KINDS)
def test_outage_ops_and_determinism(kind: str) -> None:
    config = SimConfig(seed=9, orders=5, encryption=True, faults=FaultPlan(outages=(kind,), outage_after=3))
    first = run_simulation(config)
    again = run_simulation(config)
    assert [op.to_json() for op in first.history.ops] == [op.to_json() for op in again.history.ops]
    outage = [op for op in first.history.ops if op.f == "outage"]
    assert [(op.process, op.type) for op in outage] == [("nemesis", "invoke"), ("nemesis", "ok")]
    assert outage[1].time - outage[0].time >= 10 * config.visibility_timeout
    assert outage[0].value["dependency"] in ("store", "kms", "sqs", "sns")
    phases = [op.value["phase"] for op in first.history.ops if op.f == "health"]
    assert phases == ["during"] * config.workers + ["after"] * config.workers
    assert first.valid, first.summary()
    assert "--faults outage=" in first.replay_command()


def test_cli_reproduces_an_outage_run(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--seed", "4", "--orders", "3", "--faults", "outage=sns,outage_after=2"]) == 0
    assert "outage" in capsys.readouterr().out
