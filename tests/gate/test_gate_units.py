"""Plan determinism, wire bodies against the schemas, reports and exit codes (no AWS)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest

from harness.checkers.model import Anomaly, Verdict
from harness.gate import cli
from harness.gate.driver import EXIT_USAGE, command_body
from harness.gate.reporting import write_allure, write_junit
from harness.gate.workload import EVENT_OF, PROFILES, make_plan

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "docs" / "schemas"


def test_same_seed_same_plan_other_seed_other_plan() -> None:
    a = make_plan(PROFILES["standard"], 7, "run", encrypted=True, instances=2)
    b = make_plan(PROFILES["standard"], 7, "run", encrypted=True, instances=2)
    c = make_plan(PROFILES["standard"], 8, "run", encrypted=True, instances=2)
    assert a.commands == b.commands
    assert a.schedule == b.schedule
    assert a.faults == b.faults
    assert a.commands != c.commands


def test_plan_keeps_each_entity_in_sequence_and_resends_after_seq_2() -> None:
    plan = make_plan(PROFILES["chaos"], 3, "run", encrypted=True, instances=3)
    last: dict[str, int] = {}
    bursts = set()
    for kind, index in plan.schedule:
        if kind == "burst":
            entity = plan.commands[index].entity_id
            assert entity not in last  # a burst carries all of its order's commands, nothing sent before
            last[entity] = max(c.seq for c in plan.commands if c.entity_id == entity)
            bursts.add(entity)
        if kind != "send":
            continue
        c = plan.commands[index]
        assert c.entity_id not in bursts
        assert c.seq == last.get(c.entity_id, 0) + 1
        last[c.entity_id] = c.seq
    assert len(bursts) == PROFILES["chaos"].bursts
    phase = {plan.commands[i].entity_id for indexes in plan.phase_orders.values() for i in indexes}
    assert set(last) == {c.entity_id for c in plan.commands} - phase  # every main command is sent
    dups = [i for kind, i in plan.schedule if kind == "dup"]
    assert len(dups) == PROFILES["chaos"].duplicates
    assert not {plan.commands[i].entity_id for i in dups} & bursts
    assert {f.kind for f in plan.faults} == {"kill", "slow", "slow-kill", "outage"}
    assert len(plan.poison) == 16


def test_unencrypted_plan_leaves_out_hostile_kinds() -> None:
    plan = make_plan(PROFILES["smoke"], 1, "run", encrypted=False, instances=1)
    assert {p.kind for p in plan.poison} == {"bad_json", "unknown_type", "missing_attribute"}
    hostile = make_plan(PROFILES["smoke"], 1, "run", encrypted=True, instances=1)
    assert {p.kind for p in hostile.poison} >= {
        "tampered",
        "swapped_aad",
        "wrong_key",
        "moved_ciphertext",
        "wrong_destination",
    }


def test_command_bodies_follow_the_schema() -> None:
    schema = json.loads((SCHEMAS / "command.schema.json").read_text())
    plan = make_plan(PROFILES["standard"], 5, "run", encrypted=True, instances=2)
    for c in plan.commands:
        jsonschema.validate(command_body(c), schema, format_checker=jsonschema.FormatChecker())
        assert c.command_type in EVENT_OF


def test_vector_plaintext_follows_the_command_schema() -> None:
    schema = json.loads((SCHEMAS / "command.schema.json").read_text())
    doc = json.loads((ROOT / "docs" / "vectors" / "envelope-v1.json").read_text())
    jsonschema.validate(json.loads(doc["vectors"][0]["plaintext"]), schema)


def test_junit_and_allure(tmp_path: Path) -> None:
    verdicts = [
        Verdict("total_queue", True),
        Verdict("lifecycle", False, [Anomaly("crashed", "instance 0 exited 1")]),
    ]
    junit = write_junit(
        tmp_path / "junit.xml", verdicts, suite="gate-smoke", duration=1.0, properties={"seed": "1"}
    )
    root = ET.parse(junit).getroot()
    assert root.get("failures") == "1"
    assert root.get("tests") == "2"
    failure = root.find(".//testcase[@name='lifecycle']/failure")
    assert failure is not None
    assert "crashed" in (failure.get("message") or "")
    history = tmp_path / "history.jsonl"
    history.write_text("{}\n")
    out = write_allure(
        tmp_path / "allure",
        verdicts,
        implementation="node w.js",
        backend="localstack",
        profile="smoke",
        seed=1,
        table="t",
        history_path=history,
        started=1.0,
        stopped=2.0,
    )
    results = [json.loads(p.read_text()) for p in out.glob("*-result.json")]
    assert sorted(r["status"] for r in results) == ["failed", "passed"]
    assert all({"name": "epic", "value": "Gate"} in r["labels"] for r in results)
    for r in results:
        for att in r["attachments"]:
            assert (out / att["source"]).exists()


@pytest.mark.parametrize("argv", [["--impl", "", "--profile", "smoke"], ["--impl", "x", "--env", "NOEQUALS"]])
def test_usage_errors_exit_2(argv: list[str]) -> None:
    assert cli.main(argv) == EXIT_USAGE


def test_unknown_profile_is_an_argparse_error() -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["--impl", "x", "--profile", "nope"])
    assert exc.value.code == 2


def test_self_test_needs_no_impl_and_refuses_one() -> None:
    assert cli.main(["--self-test", "--impl", "x"]) == EXIT_USAGE
    with pytest.raises(SystemExit) as exc:
        cli.main(["--profile", "smoke"])  # neither --impl nor --self-test
    assert exc.value.code == 2


def test_every_reference_mutant_has_a_gate_profile_or_is_equivalent() -> None:
    from harness.gate.mutants import EQUIVALENT, REFERENCE_GATE, reference_catalog
    from harness.mutants.catalog import MUTANTS

    assert set(MUTANTS) == set(REFERENCE_GATE) | set(EQUIVALENT)
    assert not set(REFERENCE_GATE) & set(EQUIVALENT)
    assert set(EQUIVALENT) == {"check-then-mark", "unfenced-commit", "unconditional-row-write",
                               # hostile-message mutants: the gate's workload never sends their input
                               "recursion-escapes-poll", "id-reuse-is-duplicate", "event-on-command-queue-projected",
                               "unvalidated-group-id", "kms-disabled-is-poison", "ttl-shorter-than-retention"}
    for m in reference_catalog():
        assert m.equivalent or (m.profile in PROFILES and m.expect), m.name
    contract = (ROOT / "docs" / "contract.md").read_text(encoding="utf-8")
    for name in [*EQUIVALENT, *REFERENCE_GATE]:
        assert f"`{name}`" in contract, f"{name} must be listed in docs/contract.md section 10"


def test_score_excludes_equivalent_and_never_counts_a_mutant_not_run() -> None:
    from harness.gate.mutants import Mutant, Outcome, score

    def mutant(name: str, equivalent: str = "") -> Mutant:
        return Mutant(name, "impl", {}, "bug", frozenset({"lost"}), equivalent=equivalent)

    outcomes = [
        Outcome(mutant("a"), True),
        Outcome(mutant("b"), False),
        Outcome(mutant("c"), True, ran=False),  # never counted as killed
        Outcome(mutant("d", "same behaviour"), False, ran=False),
        Outcome(mutant("e", "same behaviour"), True),  # run on request: reported, not scored
    ]
    assert score(outcomes) == (1, 3)
    assert outcomes[3].verdict == "equivalent (excluded from score)"
    assert outcomes[4].verdict == "killed (equivalent, excluded from score)"
    assert outcomes[1].verdict == "SURVIVED"


def test_equivalent_mutant_is_not_run_without_the_option(tmp_path: Path) -> None:
    from harness.gate.mutants import Mutant, run_mutant

    m = Mutant("eq", "impl", {}, "bug", frozenset(), equivalent="why")
    outcome = run_mutant(m, seed=1, out_dir=tmp_path)
    assert not outcome.ran
    assert not outcome.killed
    assert outcome.result is None


def test_require_rejects_an_unknown_capability() -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["--impl", "x", "--require", "teleport"])
    assert exc.value.code == 2


def test_junit_reports_skipped_checks_as_skipped(tmp_path: Path) -> None:
    junit = write_junit(
        tmp_path / "junit.xml",
        [Verdict("total_queue", True)],
        suite="s",
        duration=1.0,
        properties={},
        skipped={"replay": "not declared"},
    )
    root = ET.parse(junit).getroot()
    assert root.get("tests") == "2"
    skipped = root.find(".//testcase[@name='replay']/skipped")
    assert skipped is not None
    assert skipped.get("message") == "not declared"


def test_phases_are_planned_for_standard_and_chaos_only() -> None:
    smoke = make_plan(PROFILES["smoke"], 1, "run", encrypted=True, instances=1)
    assert not any(smoke.phase_orders.values())
    assert not any(f.kind == "outage" for f in smoke.faults)
    std = make_plan(PROFILES["standard"], 1, "run", encrypted=True, instances=2)
    assert len(std.phase_orders["heartbeat"]) == PROFILES["standard"].heartbeat_orders
    assert len(std.phase_orders["shutdown"]) == PROFILES["standard"].shutdown_orders
    phase = {i for indexes in std.phase_orders.values() for i in indexes}
    assert all(std.commands[i].command_type == "PlaceOrder" and std.commands[i].seq == 1 for i in phase)
    assert not phase & {i for kind, i in std.schedule if kind in ("send", "dup")}  # sent by the phases
    outages = [f for f in std.faults if f.kind == "outage"]
    assert len(outages) == 1
    assert outages[0].at > max(f.at for f in std.faults if f.kind != "outage")
    p = PROFILES["standard"]
    # the heartbeat phase only shows anything if the handler outlives every redelivery
    assert p.heartbeat_delay_ms / 1000 > (p.heartbeat_max_receive + 1) * p.heartbeat_visibility


def test_dead_letter_reason_codes_accept_business_error() -> None:
    from harness.gate.driver import DEAD_LETTER_REASONS, reason_code
    from harness.gate.workload import POISON_REASONS

    assert reason_code("BusinessError: PlaceOrder for an order that exists") == "BusinessError"
    assert reason_code("DecodeError") == "DecodeError"
    assert "BusinessError" in DEAD_LETTER_REASONS
    assert set(POISON_REASONS.values()) <= DEAD_LETTER_REASONS
    schema = json.loads((SCHEMAS / "dead-letter-attributes.schema.json").read_text())
    assert "BusinessError" in json.dumps(schema)
