"""Chaos on LocalStack: SIGKILLed and self-crashing workers, graceful SIGTERM, visibility expiry,
duplicate injection. Every run: a seed, a nemesis schedule recorded in the history, a verdict
from the checkers (zero lost, zero duplicated effects, order kept), and a summary row with the
number of faults injected.

The short set (markers ``localstack`` + ``chaos``) runs inside ``nox -s integration``; with
``FLOWGATE_CHAOS=full`` (``nox -s chaos``) the same tests use bigger counts and the long set
(marker ``chaos`` only, ``test_chaos_long.py``) runs as well.
"""

from __future__ import annotations

import random
import time

import pytest

from flowgate.fixtures.scenario import (
    OrderTopology,
    Producer,
    bootstrap,
    drain,
    judge,
    queue_depth,
    scaled,
    sqlite_url,
)
from flowgate.harness.history import HARNESS
from flowgate.harness.workload import generate_orders

pytestmark = [pytest.mark.localstack, pytest.mark.chaos]


def _setup(s, registry, *, store_name="shared.db", **options):
    topo = OrderTopology(s.uid)
    config = topo.config(store=sqlite_url(s.tmp / store_name), **options)
    resources = bootstrap(config, registry, s.aws)
    return topo, config, resources


def _urls(resources, topo):
    return [resources.queue_urls[topo.commands], resources.queue_urls[topo.view_queue("views")]]


def test_sigkill_and_crash_between_effect_and_delete(scenario, registry, summary):
    """Two workers; a seeded nemesis SIGKILLs one every 2-5 s and restarts it; each worker also
    dies by itself (os._exit) at ``after_effect_before_delete`` with probability 5 %, at
    ``after_commit_before_record`` with 2 % (the effect committed, its record not written: the
    redelivery's duplicate settles it, D20), and at ``mid_handler`` with 1 %; dead workers are
    restarted by the supervisor."""
    s = scenario
    orders = scaled(30, 120)
    # a message whose receives are eaten by crashes reaches SQS's own redrive (maxReceiveCount):
    # keep that backstop out of reach so a loss means the bus lost it, not the redrive policy.
    # Every crash costs each message the dying worker holds one receive -- up to 20 (2 pollers x
    # 10), and deletes are batched per poll (D14), so a crash anywhere in a poll returns all of
    # it; with 5 % crashes per effect one message was seen received 10 times (measured), hence 25
    topo, config, resources = _setup(s, registry, visibility_timeout=4, max_receive_count=25)
    env = {"FLOWGATE_CRASH_AT": "after_effect_before_delete:0.05,after_commit_before_record:0.02,"
                                "mid_handler:0.01"}
    for name in ("w1", "w2"):
        s.workers.spawn(name, config, env=env)
    rng = random.Random(s.seed)
    s.history.nemesis("schedule", {"seed": s.seed, "kill_every_s": [2, 5],
                                   "crash_at": env["FLOWGATE_CRASH_AT"]})
    producer = Producer(config, registry, s.aws, resources, s.history)
    scripts = generate_orders(s.seed + 2, orders, cancel_ratio=0.1)
    commands = producer.send_scripts(scripts)
    producer.close()
    kills_wanted = scaled(4, 12)
    next_kill = [time.monotonic() + rng.uniform(2, 5)]

    def nemesis() -> None:
        if s.workers.faults.get("kill", 0) < kills_wanted and time.monotonic() >= next_kill[0]:
            victim = rng.choice(sorted(s.workers.workers))
            s.workers.kill(victim)
            s.workers.restart(victim)
            next_kill[0] = time.monotonic() + rng.uniform(2, 5)

    result = drain(s.history, s.workers, s.aws, _urls(resources, topo), effects=len(commands),
                   timeout=scaled(150, 400), supervise=True, tick=nemesis, settle=3)
    s.workers.terminate_all()
    history = s.workers.merged_history()
    crashes = s.workers.self_faults().get("crash", 0)
    kills = s.workers.faults.get("kill", 0)
    problems = list(result.notes)
    redriven = queue_depth(s.aws, resources.dlq_urls[topo.commands])
    if redriven:
        problems.append(f"{redriven} command(s) moved to the DLQ by SQS redrive (receive count exhausted)")
    if kills == 0:
        problems.append("nemesis never killed a worker (the run proves nothing)")
    judge(history, summary=summary, scenario="chaos: SIGKILL + crash after effect", orders=orders,
          faults=kills + crashes, extra_anomalies=problems,
          notes=f"seed {s.seed}: {kills} SIGKILL, {crashes} self-crashes, {result.restarts} supervisor restarts")


def test_sigterm_drains_in_flight(scenario, registry, summary):
    """SIGTERM while a worker holds slow messages: it finishes the batch in hand (every message
    it received is deleted by it, no torn work), exits 0, and a successor finishes the rest."""
    s = scenario
    orders = scaled(8, 20)
    topo, config, resources = _setup(s, registry, visibility_timeout=20)
    s.workers.spawn("w1", config, env={"FLOWGATE_HANDLER_DELAY_MS": "mid_handler:800"})
    producer = Producer(config, registry, s.aws, resources, s.history)
    commands = producer.send_scripts(generate_orders(s.seed + 3, orders, lifecycle=False))
    deadline = time.monotonic() + 60
    while s.workers.count("receive") == 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(0.3)
    code = s.workers.terminate("w1", timeout=30)
    ops = list(s.workers.worker_ops())
    received = {o["value"]["message_id"] for o in ops if o["f"] == "receive"}
    deleted = {o["value"]["message_id"] for o in ops if o["f"] == "delete" and o["type"] == "ok"}
    problems: list[str] = []
    if code != 0:
        problems.append(f"worker exit code after SIGTERM: {code} (graceful stop must exit 0)")
    torn = received - deleted
    if torn:
        problems.append(f"{len(torn)} received messages not finished before exit: {sorted(torn)[:3]}")
    # a successor finishes whatever was never received
    s.workers.spawn("w2", config)
    producer.close()
    result = drain(s.history, s.workers, s.aws, _urls(resources, topo), effects=len(commands), timeout=60)
    s.workers.terminate_all()
    judge(s.workers.merged_history(), summary=summary, scenario="chaos: SIGTERM drains in-flight",
          orders=orders, faults=1, extra_anomalies=problems + result.notes,
          notes=f"{len(received)} in flight at SIGTERM, exit {code}")


@pytest.mark.parametrize("heartbeat", [False, True], ids=["no-heartbeat", "heartbeat"])
def test_visibility_expiry(scenario, registry, summary, heartbeat):
    """Handlers slower than a 2 s visibility timeout. With the heartbeat switched off
    (``heartbeat: false``, one 3 s stall) the message reappears and the other worker receives it mid-processing: fencing must
    keep effects exactly-once. With step-wise stalls (1.2 s at two step boundaries, each past
    VT/2) the heartbeat extends visibility and lease: no stalled message is received twice."""
    s = scenario
    orders = scaled(10, 30)
    topo, config, resources = _setup(s, registry, visibility_timeout=2, heartbeat=heartbeat)
    delay = "after_claim:1200:0.3,mid_handler:1200:0.3" if heartbeat else "mid_handler:3000:0.3"
    for name in ("w1", "w2"):
        s.workers.spawn(name, config, env={"FLOWGATE_HANDLER_DELAY_MS": delay})
    s.history.nemesis("schedule", {"seed": s.seed, "handler_delay": delay, "visibility_timeout": 2})
    producer = Producer(config, registry, s.aws, resources, s.history)
    commands = producer.send_scripts(generate_orders(s.seed + 4, orders, cancel_ratio=0.0))
    producer.close()
    result = drain(s.history, s.workers, s.aws, _urls(resources, topo), effects=len(commands),
                   timeout=scaled(120, 300), settle=3)
    s.workers.terminate_all()
    history = s.workers.merged_history()
    stalled = {op.value.get("message_id") for op in history.ops if op.f == "stall"}
    receivers: dict[str, set[str]] = {}
    for op in history.ops:
        if op.f == "receive":
            receivers.setdefault(str(op.value["message_id"]), set()).add(op.process)
    stolen = sorted(m for m in stalled if len(receivers.get(str(m), ())) > 1)
    # the heartbeat can only protect a message whose first stall starts within VT/2 of its
    # receipt; one that first waited in the batch behind its FIFO group's head (its visibility
    # clock running, no heartbeat for queued followers) can expire anyway -- reported, not judged
    first_receive: dict[str, float] = {}
    first_stall: dict[str, float] = {}
    for op in history.ops:
        if op.f == "receive":
            first_receive.setdefault(str(op.value["message_id"]), op.time)
        elif op.f == "stall":
            first_stall.setdefault(str(op.value.get("message_id")), op.time)
    queued = {m for m in stolen if first_stall.get(str(m), 0) - first_receive.get(str(m), 0) > 0.9}
    protected = [m for m in stolen if m not in queued]
    problems = list(result.notes)
    if not stalled:
        problems.append("no handler was slowed down (the run proves nothing)")
    if heartbeat and protected:
        problems.append(f"{len(protected)} slow messages were received by another worker despite the heartbeat")
    if not heartbeat and not stolen:
        problems.append("no slow message was redelivered to the other worker (visibility never expired?)")
    judge(history, summary=summary, scenario=f"chaos: visibility expiry ({'heartbeat' if heartbeat else 'no heartbeat'})",
          orders=orders, faults=len(stalled), extra_anomalies=problems,
          notes=f"{len(stalled)} slow handlers, {len(stolen)} taken over mid-processing"
                f" ({len(queued)} had waited > VT/2 behind their group head before the first beat)")


def test_duplicate_injection_fifo(scenario, registry, summary):
    """The same command sent twice within the FIFO dedup window (same dedup id: SQS drops it), and
    again "after the window" -- emulated by a new MessageDeduplicationId with the same command
    identity (eventId), which SQS delivers: the idempotency store must drop it."""
    s = scenario
    orders = scaled(10, 40)
    topo, config, resources = _setup(s, registry, visibility_timeout=5)
    s.workers.spawn("w1", config)
    s.workers.spawn("w2", config)
    producer = Producer(config, registry, s.aws, resources, s.history)
    commands = producer.send_scripts(generate_orders(s.seed + 5, orders, cancel_ratio=0.0))
    rng = random.Random(s.seed)
    within = rng.sample(commands, k=max(2, len(commands) // 5))
    late = rng.sample(commands, k=max(2, len(commands) // 5))
    for cmd in within:
        s.history.nemesis("duplicate_delivery", {"command_id": cmd.event_id, "window": "within"})
        producer.resend(cmd)
    # "after the window": copy the original message with a fresh dedup id (same eventId/body)
    from flowgate.reference.dispatchers import build_body, message_attributes

    for cmd in late:
        s.history.nemesis("duplicate_delivery", {"command_id": cmd.event_id, "window": "after (new dedup id)"})
        s.aws.sqs.send_message(QueueUrl=resources.queue_urls[topo.commands], MessageBody=build_body(cmd, topo.commands, None),
                               MessageAttributes=message_attributes(cmd, encrypted=False, traceparent=None),
                               MessageGroupId=cmd.entity_id, MessageDeduplicationId=f"{cmd.event_id}-late")
    producer.close()
    result = drain(s.history, s.workers, s.aws, _urls(resources, topo), effects=len(commands), timeout=90, settle=3)
    s.workers.terminate_all()
    history = s.workers.merged_history()
    recognised = sum(1 for op in history.ops if op.f == "duplicate" and str(op.value.get("key", "")).startswith("command:"))
    problems = list(result.notes)
    if recognised < len(set(c.event_id for c in late)):
        problems.append(f"only {recognised} command duplicates recognised, {len(late)} late copies were injected")
    judge(history, summary=summary, scenario="chaos: duplicate injection (FIFO)", orders=orders,
          faults=len(within) + len(late), extra_anomalies=problems,
          notes=f"{len(within)} within window, {len(late)} after (new dedup id), {recognised} recognised")
    s.history.append(HARNESS, "info", "note", {"recognised": recognised})
