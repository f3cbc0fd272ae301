"""The hostile-input catalog: its shape, its transforms, the outcome model agreeing with it, the
mutation language, and the generated table in docs/hostile.md being current."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest

from flowgate.harness import hostile
from flowgate.harness.hostile import mutations
from flowgate.harness.hostile.core import (
    AnyDeadLetter,
    Applied,
    BasicContext,
    BusinessDeadLetter,
    DeadLetter,
    Refused,
)
from flowgate.harness.hostile.observe import BEGIN, END, markdown
from flowgate.harness.sim import SimAws
from flowgate.reference.dispatchers import message_attributes
from flowgate.reference.domain.orders import OrderPlaced, PlaceOrder
from flowgate.reference.messages import encode, event_for, new_command

DOC = Path(__file__).resolve().parents[2] / "docs" / "hostile.md"
CATEGORIES = {"json-syntax", "structure", "numbers-types", "identifiers", "sequence-numbers", "attributes",
              "envelope", "routing", "identity", "size", "postgres-values", "sqs-refuses"}


def context(*, encrypted: bool, seed: int = 0) -> BasicContext:
    aws = SimAws(seed=seed)
    kms = aws.client("kms")
    key = kms.create_key()["KeyMetadata"]["Arn"] if encrypted else None
    cmd = new_command(PlaceOrder("CUST-1", "SKU-1", 1, 100), "poison-0001", is_new=True, sequence_no=1,
                      event_id="11111111-1111-4111-8111-111111111111")
    text = encode(cmd)
    attrs = message_attributes(cmd, encrypted=encrypted, traceparent=None)
    ctx = BasicContext(
        valid=hostile.WireMessage(text, attrs, "poison-0001", cmd.event_id, plaintext=text), command=cmd,
        event=event_for(cmd, 0, OrderPlaced("CUST-1", "SKU-1", 1, 100)), plaintext=text, encrypted=encrypted,
        queue="orders.fifo", views_queue="order-views.fifo", rng=random.Random(seed), kms=kms, key_id=key,
        known=lambda: "22222222-2222-4222-8222-222222222222",
        pending_fn=lambda: ("33333333-3333-4333-8333-333333333333", "order-1"),
        other_key_fn=lambda: str(kms.create_key()["KeyMetadata"]["Arn"]))
    if encrypted:
        import dataclasses

        ctx.valid = dataclasses.replace(ctx.valid, body=ctx.seal(text))
    return ctx


def test_catalog_shape() -> None:
    kinds = list(hostile.CATALOG.values())
    assert len(kinds) >= 60
    assert {k.category for k in kinds} == CATEGORIES
    names = [k.name for k in kinds]
    assert names == list(hostile.CATALOG)  # names are the keys
    assert len(names) == len(set(names))
    for k in kinds:
        assert k.description
        assert "\n" not in k.description
        assert k.encryption in ("required", "forbidden", "any")
        assert isinstance(k.outcome, DeadLetter | Applied | BusinessDeadLetter | Refused)
    for classic in ("bad_json", "unknown_type", "missing_attribute", "oversized", "tampered", "wrong_key",
                    "swapped_aad"):
        assert classic in hostile.CATALOG
    codes = Counter(k.outcome.reason for k in kinds if isinstance(k.outcome, DeadLetter))
    assert set(codes) == set(hostile.REASON_CODES), codes


@pytest.mark.parametrize("encrypted", [False, True], ids=["plaintext", "encrypted"])
def test_every_transform_builds_a_message_the_model_agrees_with(encrypted: bool) -> None:
    """Two independent statements of the rules -- the catalog's documented outcomes and the
    generator's outcome model -- agree on every kind (Refused kinds never reach a consumer)."""
    ctx = context(encrypted=encrypted)
    disagree = []
    for k in hostile.kinds(encrypted=encrypted):
        wire = k.transform(ctx)
        assert isinstance(wire, hostile.WireMessage)
        if isinstance(k.outcome, Refused) or wire.target != "commands" or k.category == "envelope":
            continue
        verdict = hostile.judge(wire, ctx, known_ids={"22222222-2222-4222-8222-222222222222",
                                                      "33333333-3333-4333-8333-333333333333"})
        dead = isinstance(k.outcome, DeadLetter)
        if dead != isinstance(verdict, AnyDeadLetter) or (
            isinstance(k.outcome, BusinessDeadLetter) != isinstance(verdict, BusinessDeadLetter)
        ):
            disagree.append((k.name, str(k.outcome), str(verdict), getattr(verdict, "why", "")))
    assert not disagree, disagree


def test_refused_kinds_are_refused_by_the_simulated_sqs() -> None:
    aws = SimAws(seed=1)
    sqs = aws.client("sqs")
    url = sqs.create_queue(QueueName="q")["QueueUrl"]
    ctx = context(encrypted=False)
    for k in hostile.CATALOG.values():
        if not isinstance(k.outcome, Refused):
            continue
        wire = k.transform(ctx)
        with pytest.raises(Exception, match=r"InvalidMessageContents|InvalidParameterValue|attributes"):
            sqs.send_message(QueueUrl=url, MessageBody=wire.body, MessageAttributes=wire.attributes)


def test_every_kind_body_is_sendable_unless_refused() -> None:
    """Bodies of all other kinds are made of characters SQS carries."""
    aws = SimAws(seed=2)
    sqs = aws.client("sqs")
    url = sqs.create_queue(QueueName="q")["QueueUrl"]
    for encrypted in (False, True):
        ctx = context(encrypted=encrypted)
        for k in hostile.kinds(encrypted=encrypted):
            if not isinstance(k.outcome, Refused):
                wire = k.transform(ctx)
                sqs.send_message(QueueUrl=url, MessageBody=wire.body, MessageAttributes=wire.attributes)


def test_mutation_specs_round_trip_and_reject_garbage() -> None:
    spec = "~del:payload.sku/nest:extra:3/aset:EntityId:6/enc:bom/eflip:Tag:9/id:seq:3"
    assert mutations.spec_of(mutations.parse(spec)) == spec
    assert hostile.resolve(spec).encryption == "required"
    for bad in ("del:payload.sku", "~del:nowhere", "~val:payload.sku:999", "~nest:extra:0", "~frob"):
        with pytest.raises(ValueError, match=r"mutation|spec|unknown"):
            hostile.resolve(bad)
    with pytest.raises(ValueError, match="unknown hostile kind"):
        hostile.resolve("no_such_kind")


def test_generated_table_is_current() -> None:
    """docs/hostile.md's table is generated (`python -m flowgate.harness.hostile --markdown --write`)."""
    text = DOC.read_text(encoding="utf-8")
    committed = text.split(BEGIN, 1)[1].split(END, 1)[0].strip("\n")
    assert committed == markdown().strip("\n"), "stale: run `python -m flowgate.harness.hostile --markdown --write`"


def test_catalog_imports_nothing_of_the_simulator() -> None:
    """The gate builds the same messages against real SQS: the catalog, the mutations and the
    outcome model must not pull in the simulator (the context supplies sealing)."""
    import subprocess
    import sys

    code = ("import sys, flowgate.harness.hostile, flowgate.harness.hostile.mutations, flowgate.harness.hostile.model; "
            "print(sorted(m for m in sys.modules if m.startswith(('flowgate.harness.sim', 'flowgate.harness.simulation'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.strip() == "[]"
