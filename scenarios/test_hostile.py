"""Hostile inputs on LocalStack, worker PROCESSES: kinds of the one catalog (:mod:`flowgate.harness.hostile`)
sent between valid orders, plaintext and KMS-encrypted.

The messages are built and recorded exactly as on the simulator (:func:`flowgate.harness.hostile.context_for`,
:func:`flowgate.harness.hostile.send_hostile`): a dead-letter kind must end in the DLQ *forwarded by a
worker* with its documented ``DeadLetterReason`` code and no effect; an applied kind must take
effect exactly once; the valid orders around them must take effect exactly once with their
events projected. The short set (``nox -s integration``) sends the first applicable kind of every
catalog category; ``FLOWGATE_CHAOS=full`` (``nox -s chaos``) sends every applicable kind.
"""

from __future__ import annotations

import contextlib
import random
import time
import uuid
from typing import Any

import pytest

from flowgate.fixtures.scenario import (
    OrderTopology,
    Producer,
    bootstrap,
    drain,
    full_chaos,
    judge,
    sqlite_url,
)
from flowgate.harness import hostile
from flowgate.harness.history import HARNESS
from flowgate.harness.hostile.observe import hostile_problems
from flowgate.harness.workload import generate_orders
from flowgate.reference.domain.orders import PlaceOrder
from flowgate.reference.messages import new_command

pytestmark = [pytest.mark.localstack, pytest.mark.chaos]


def selection(*, encrypted: bool) -> list[hostile.HostileKind]:
    """Every applicable kind (full chaos), else the first applicable kind of each category."""
    applicable = [k for k in hostile.kinds(encrypted=encrypted, fifo=True) if not isinstance(k.outcome, hostile.Refused)]
    if full_chaos():
        return applicable
    firsts: dict[str, hostile.HostileKind] = {}
    for k in applicable:
        firsts.setdefault(k.category, k)
    return list(firsts.values())


def _wait_for_effect(s: Any, command_id: str, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for op in s.workers.worker_ops():
            if op.get("f") == "effect" and op.get("type") == "ok" and op.get("value", {}).get("command_id") == command_id:
                return True
        time.sleep(0.2)
    return False


@pytest.mark.parametrize("encrypted", [False, True], ids=["plaintext", "encrypted"])
def test_catalog_kinds_between_valid_orders(scenario, registry, kms_key, summary, encrypted):
    s = scenario
    topo = OrderTopology(s.uid + ("k" if encrypted else "p"))
    config = topo.config(store=sqlite_url(s.tmp / "store.db"), kms_key=kms_key if encrypted else None,
                         visibility_timeout=1, max_receive_count=3, business_max_attempts=2)
    res = bootstrap(config, registry, s.aws)
    s.workers.spawn("w1", config)
    s.workers.spawn("w2", config)
    producer = Producer(config, registry, s.aws, res, s.history)
    scripts = generate_orders(s.seed + 11, 6, cancel_ratio=0.2)
    first = producer.send_scripts(scripts[:3])
    problems: list[str] = []
    # the identity kinds reuse the eventId of a command that has taken effect
    if not _wait_for_effect(s, first[0].event_id):
        problems.append(f"the first valid command {first[0].event_id} took no effect within 30 s")
    other_key: list[str] = []

    def make_other_key() -> str:
        if not other_key:
            other_key.append(s.aws.kms.create_key(Description="flowgate hostile: another key")["KeyMetadata"]["Arn"])
        return other_key[0]

    rng = random.Random(s.seed)
    urls = {"commands": (topo.commands, res.queue_urls[topo.commands]),
            "views": (topo.view_queue("views"), res.queue_urls[topo.view_queue("views")])}
    known_ids = {c.event_id for c in first}
    kinds = selection(encrypted=encrypted)
    sent: dict[str, int] = {"poison": 0, "send": 0, "business": 0, "skipped": 0}
    try:
        for n, kind in enumerate(kinds):
            entity = f"hx-{s.uid}-{n:03d}"
            cid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            cmd = new_command(PlaceOrder("CUST-HOSTILE", "SKU-HOSTILE", 1, 100), entity, is_new=True,
                              sequence_no=1, event_id=cid)
            ctx = hostile.context_for(cmd, encrypted=encrypted, queue=topo.commands, views_queue=topo.view_queue("views"),
                                      group_id=entity, dedup_id=cid, rng=rng, kms=s.aws.kms, key_id=kms_key,
                                      known=lambda: first[0].event_id, other_key=make_other_key)
            try:
                wire = kind.transform(ctx)
            except hostile.Unavailable:
                sent["skipped"] += 1  # needs a command still pending: the simulator and the gate cover it
                continue
            out = hostile.send_hostile(s.aws.sqs, kind, ctx, wire=wire, queue_url=urls.__getitem__, fifo=True,
                                       entity=entity, command_id=cid, known_ids=known_ids)
            s.history.append(HARNESS, out.type, out.f, out.value)
            if out.type == "ok" and out.f == "poison":
                sent["poison"] += 1
            elif out.type == "ok":
                known_ids.add(str(out.value["command_id"]))
                sent["business" if out.value["expect_business_failure"] else "send"] += 1
        rest = producer.send_scripts(scripts[3:])
        producer.close()
        commands = first + rest  # generate_orders' default invalid_ratio=0: every step is valid
        result = drain(s.history, s.workers, s.aws, [urls["commands"][1], urls["views"][1]],
                       effects=len(commands) + sent["send"], timeout=90, settle=2,
                       until=lambda ops: sum(o["f"] == "dead_letter" and o["type"] == "ok" for o in ops) >= sent["poison"]
                       and sum(o["f"] == "business_dead_letter" for o in ops) >= sent["business"])
    finally:
        for key in other_key:
            with contextlib.suppress(Exception):
                s.aws.kms.schedule_key_deletion(KeyId=key, PendingWindowInDays=7)
    s.workers.terminate_all()
    merged = s.workers.merged_history()
    problems += list(result.notes) + hostile_problems(merged.ops)
    judge(merged, summary=summary, scenario=f"hostile catalog kinds ({'encrypted' if encrypted else 'plaintext'})",
          orders=len(scripts), faults=sent["poison"] + sent["send"] + sent["business"], extra_anomalies=problems,
          require_encryption=encrypted,
          notes=f"{len(kinds)} kinds: {sent['poison']} dead-letter, {sent['send']} applied, "
                f"{sent['business']} business, {sent['skipped']} skipped (need a pending command)")
