"""Plan determinism, wire bodies against the schemas, reports and exit codes (no AWS)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest

from flowgate.harness.checkers.model import Anomaly, Verdict
from flowgate.harness.gate import catalog, cli
from flowgate.harness.gate.driver import EXIT_USAGE
from flowgate.harness.gate.reporting import write_allure, write_junit
from flowgate.harness.gate.sender import command_body
from flowgate.harness.gate.workload import (
    EVENT_OF,
    OUTAGE_VTS,
    PROFILES,
    REDRIVE_HEADROOM,
    SHUTDOWN_QUEUED,
    make_plan,
)
from flowgate.harness.history import History
from flowgate.harness.hostile import CATALOG


def _kinds(encrypted: bool) -> list[tuple[str, str]]:
    return [(k.name, catalog.outcome_code(k)) for k in catalog.applicable(encrypted)]


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
    plan = make_plan(PROFILES["chaos"], 3, "run", encrypted=True, instances=3, hostile_kinds=_kinds(True))
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
    assert {f.kind for f in plan.faults} == {"kill", "slow", "slow-kill", "outage", "kms-outage"}
    # chaos: every applicable catalog kind once, each in its own group (never an order's)
    assert [h.kind for h in plan.hostile] == [k.name for k in catalog.applicable(True)]
    groups = [h.group for h in plan.hostile]
    assert len(set(groups)) == len(groups)
    assert not set(groups) & {c.entity_id for c in plan.commands}
    assert sorted(i for kind, i in plan.schedule if kind == "hostile") == list(range(len(plan.hostile)))


def test_hostile_kinds_per_profile_and_encryption() -> None:
    plain = make_plan(
        PROFILES["standard"], 1, "run", encrypted=False, instances=2, hostile_kinds=_kinds(False)
    )
    sealed = make_plan(
        PROFILES["standard"], 1, "run", encrypted=True, instances=2, hostile_kinds=_kinds(True)
    )
    need = {k.name for k in CATALOG.values() if k.encryption == "required"}
    forbid = {k.name for k in CATALOG.values() if k.encryption == "forbidden"}
    assert need
    assert not need & {h.kind for h in plain.hostile}
    assert not forbid & {h.kind for h in sealed.hostile}
    assert {h.kind for h in sealed.hostile} == {k.name for k in catalog.applicable(True)}
    # smoke: a handful, one kind of each distinct outcome first
    smoke = make_plan(PROFILES["smoke"], 1, "run", encrypted=True, instances=1, hostile_kinds=_kinds(True))
    assert len(smoke.hostile) == min(PROFILES["smoke"].hostile or 0, len(_kinds(True)))
    assert {h.reason for h in smoke.hostile} == {code for _, code in _kinds(True)}
    # the expected outcome is the catalog's
    outcome = dict(_kinds(True))
    assert all(h.reason == outcome[h.kind] for h in sealed.hostile)


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
    from flowgate.harness.gate.mutants import EQUIVALENT, REFERENCE_GATE, reference_catalog
    from flowgate.harness.mutants.catalog import MUTANTS

    reference = {n for n, m in MUTANTS.items() if m.subject == "reference"}
    assert reference == set(REFERENCE_GATE) | set(EQUIVALENT)
    assert {m.name for m in reference_catalog()} == reference
    assert not set(REFERENCE_GATE) & set(EQUIVALENT)
    assert set(EQUIVALENT) == {
        "alarm-never-fires",
        "alarm-never-clears",
        "backlog-visible-only",
        "age-ignores-held-messages",
        "failed-not-counted",
        "error-queue-without-dlq",
        "groups-by-entity",
        "retention-ignored",
        # D33: the saga-command flow is not in the gate's order domain
        "follow-up-sent-outside-commit",
        "follow-up-reissued-on-redelivery",
        "issued-not-counted",
        "aggregate-not-run",
        "unfenced-commit",
        "unconditional-row-write",
        "ttl-shorter-than-retention",
        "store-error-escapes-poll",
        "committed-claim-kept",
        "heartbeat-dies-on-error",
        "sequencer-from-applied",
        "unsent-not-resent",
        "outbox-own-first",
        "refusal-blocks-outbox",
        "send-failure-drops-command",
        "allocate-read-then-write",
        "process-local-entity-lock",
        "heartbeat-holds-given-up",
        "dead-letter-completes-key",  # v1.3: the gate never replays a DLQ (contract section 7)
        "replay-reversed",
        # least privilege: the gate provisions and never evaluates a policy (contract section 10)
        "iam-extra-action",
        "iam-missing-action",
        "iam-no-context-condition",
        "iam-subscribe-any-endpoint",
        "iam-wildcard-account",
        "worker-bootstraps-anyway",
        # D35: timing faults of the lingers
        "adaptive-linger-ignored",
        "linger-never-flushes-partial",
        # v1.4 (telemetry): in-process observations and the hour-scale cleanup
        "producer-span-missing",
        "traceparent-lost",
        "outbox-span-orphaned",
        "event-metrics-missing",
        "health-ignores-missing-resources",
        "cleanup-deletes-unexpired",
        "cleanup-deletes-leased",
        "cleanup-never-scheduled",
        "data-key-cache-ignores-message-bound",  # v1.4: the gate runs the reference without the cache
        "data-key-cache-ignores-age-bound",
        "data-key-cache-ignores-byte-bound",
        "data-key-cache-without-context",
        "data-key-not-wiped",
        "data-key-past-2-32",
        # SourceFlow.Net interop is off in the gate (docs/sourceflow.md)
        "sourceflow-alias-by-class-name",
        "sourceflow-int-id-coerced",
        "sourceflow-interop-on-by-default",
        "sourceflow-emits-string-id",
        "sourceflow-entity-attribute-unchecked",
        "sourceflow-occurred-on-kept",
        "sourceflow-event-seq-zero-refused",
        "sourceflow-off-without-reason",
        # D34: the gate's workers use the production randomness source
        "nonce-bypasses-randomness-seam",
    }
    for m in reference_catalog():
        assert m.equivalent or (m.profile in PROFILES and m.expect), m.name
    contract = (ROOT / "docs" / "contract.md").read_text(encoding="utf-8")
    for name in [*EQUIVALENT, *REFERENCE_GATE]:
        assert f"`{name}`" in contract, f"{name} must be listed in docs/contract.md section 10"


def test_score_excludes_equivalent_and_never_counts_a_mutant_not_run() -> None:
    from flowgate.harness.gate.mutants import Mutant, Outcome, score

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
    from flowgate.harness.gate.mutants import Mutant, run_mutant

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
    assert not any(f.kind in ("outage", "kms-outage") for f in smoke.faults)
    std = make_plan(PROFILES["standard"], 1, "run", encrypted=True, instances=2)
    assert len(std.phase_orders["heartbeat"]) == PROFILES["standard"].heartbeat_orders
    # v1.4: the shutdown batch also holds a second command (CancelOrder, seq 2) of SHUTDOWN_QUEUED orders
    shutdown = [std.commands[i] for i in std.phase_orders["shutdown"]]
    n_heads = PROFILES["standard"].shutdown_orders
    heads, queued = shutdown[:n_heads], shutdown[n_heads:]
    assert len(heads) == n_heads
    assert len(queued) == SHUTDOWN_QUEUED
    assert [c.entity_id for c in queued] == [c.entity_id for c in heads[1 : 1 + SHUTDOWN_QUEUED]]
    assert all(c.command_type == "CancelOrder" and c.seq == 2 for c in queued)
    phase = {i for indexes in std.phase_orders.values() for i in indexes} - set(
        std.phase_orders["shutdown"][n_heads:]
    )
    assert all(std.commands[i].command_type == "PlaceOrder" and std.commands[i].seq == 1 for i in phase)
    assert not phase & {i for kind, i in std.schedule if kind in ("send", "dup")}  # sent by the phases
    outages = [f for f in std.faults if f.kind == "outage"]
    assert len(outages) == 1
    assert outages[0].at > max(f.at for f in std.faults if f.kind not in ("outage", "kms-outage"))
    # v1.2: a KMS outage after the transport outage; each 10 x VT, each with its own new orders
    kms = [f for f in std.faults if f.kind == "kms-outage"]
    assert len(kms) == 1
    assert kms[0].at >= outages[0].at + std.profile.outage_seconds
    assert std.profile.outage_seconds == OUTAGE_VTS * std.profile.visibility_timeout == 30
    assert len(std.phase_orders["outage-0"]) == len(std.phase_orders["kms-outage-0"]) == 3
    assert len(std.phase_orders["kms-transport-0"]) == 3  # v1.4: the KMS endpoint cut has orders of its own
    unencrypted = make_plan(PROFILES["standard"], 1, "run", encrypted=False, instances=2)
    assert not any(f.kind == "kms-outage" for f in unencrypted.faults)
    assert "kms-outage-0" not in unencrypted.phase_orders
    p = PROFILES["standard"]
    # the heartbeat phase only shows anything if the handler outlives every redelivery
    assert p.heartbeat_delay_ms / 1000 > (p.heartbeat_max_receive + 1) * p.heartbeat_visibility


def test_dead_letter_reason_codes_accept_business_error() -> None:
    from flowgate.harness.gate.dlq import DEAD_LETTER_REASONS, reason_code

    assert reason_code("BusinessError: PlaceOrder for an order that exists") == "BusinessError"
    assert reason_code("DecodeError") == "DecodeError"
    assert {"BusinessError", "IdempotencyConflict"} <= DEAD_LETTER_REASONS
    # every DeadLetter kind of the catalog expects a code of the contract's table
    assert {catalog.outcome_code(k) for k in CATALOG.values()} - {"", catalog.REFUSED} <= DEAD_LETTER_REASONS
    schema = json.loads((SCHEMAS / "dead-letter-attributes.schema.json").read_text())
    for code in sorted(DEAD_LETTER_REASONS):
        jsonschema.validate({"DeadLetterReason": f"{code}: detail"}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"DeadLetterReason": "Whatever: detail"}, schema)


def test_redrive_headroom() -> None:
    for p in PROFILES.values():
        assert p.redrive_max_receive_count == p.max_receive_count + REDRIVE_HEADROOM
        # a worker receiving every VT through a whole outage must pass the native redrive
        assert p.redrive_max_receive_count < OUTAGE_VTS


def _hostile_history(rows: list[tuple[str, str, dict[str, object]]]) -> History:
    history = History()
    for process, f, value in rows:
        history.append(process, "info" if process == "nemesis" else "ok", f, value)
    return history


def test_hostile_verdict_per_kind() -> None:
    """Each outcome class, right and wrong: the per-kind anomalies of contract v1.2 section 6."""
    plan = make_plan(PROFILES["standard"], 1, "run", encrypted=True, instances=2, hostile_kinds=_kinds(True))
    by_kind = {h.kind: h for h in plan.hostile}
    picks = [by_kind[k] for k in ("bad_json", "unknown_type", "tampered", "whitespace_padding", "oversized")]
    picks += [by_kind["reused_event_id_applied"], by_kind["eleven_attributes"], by_kind["escaped_unicode"]]
    ops: list[tuple[str, str, dict[str, object]]] = []
    for h in picks:
        ops.append(
            (
                "nemesis",
                "hostile",
                {"hostile_id": h.hostile_id, "sent": True, "command_id": h.command.command_id},
            )
        )
    bad, unknown, tampered, applied, oversized, _reused, refused, never = picks
    ops[-1] = ("nemesis", "hostile", {"hostile_id": never.hostile_id, "sent": False, "error": "boom"})
    ops[-2] = (
        "nemesis",
        "hostile",
        {"hostile_id": refused.hostile_id, "sent": False, "error": "InvalidMessageContents"},
    )
    ops += [
        ("dlq", "dead_letter", {"hostile_id": bad.hostile_id, "reason": "DecodeError: not JSON"}),  # right
        ("dlq", "dead_letter", {"hostile_id": unknown.hostile_id, "reason": "DecodeError: x"}),  # wrong code
        ("dlq", "dead_letter", {"hostile_id": oversized.hostile_id, "reason": ""}),  # native redrive
        ("impl", "effect", {"command_id": tampered.command.command_id}),  # a DeadLetter kind applied
        ("impl", "effect", {"command_id": applied.command.command_id}),  # an Applied kind applied: right
        # reused_event_id_applied: neither dead-lettered nor applied
    ]
    verdict, rows = catalog.judge(picks, _hostile_history(ops).ops)
    got = {r.kind: (r.ok, r.anomaly) for r in rows}
    assert got == {
        "bad_json": (True, ""),
        "unknown_type": (False, "hostile-wrong-reason"),
        "tampered": (False, "hostile-applied"),
        "whitespace_padding": (True, ""),
        "oversized": (False, "hostile-dead-letter-without-reason"),
        "reused_event_id_applied": (False, "hostile-not-dead-lettered"),
        "eleven_attributes": (True, ""),  # refused by SQS, as its outcome says
        "escaped_unicode": (False, "hostile-not-sent"),
    }
    assert not verdict.valid
    assert len(verdict.anomalies) == 5
    _, excused = catalog.judge([oversized], _hostile_history(ops).ops, excuse_reasonless=True)
    assert excused[0].ok
    md = catalog.render_markdown(rows)
    assert "| `unknown_type` |" in md
    assert "FAIL (hostile-wrong-reason)" in md
    assert json.loads(catalog.rows_json(rows))[0]["kind"] == "bad_json"


def test_applied_kind_dead_lettered_or_missing() -> None:
    plan = make_plan(PROFILES["standard"], 1, "run", encrypted=True, instances=2, hostile_kinds=_kinds(True))
    a, b = [h for h in plan.hostile if not h.reason][:2]
    ops: list[tuple[str, str, dict[str, object]]] = [
        ("nemesis", "hostile", {"hostile_id": h.hostile_id, "sent": True, "command_id": h.command.command_id})
        for h in (a, b)
    ]
    ops.append(("dlq", "dead_letter", {"hostile_id": a.hostile_id, "reason": "DecodeError: strict"}))
    _, rows = catalog.judge([a, b], _hostile_history(ops).ops)
    assert [(r.ok, r.anomaly) for r in rows] == [
        (False, "hostile-dead-lettered"),
        (False, "hostile-not-applied"),
    ]
