"""The end of a simulation run: the drain (faults off, every queue emptied), the messages SQS
redrove by itself, the ``state``/``replay`` snapshots per order, and the verdicts and stats."""

from __future__ import annotations

import time
from collections import Counter
from typing import TYPE_CHECKING, Any

from flowgate.harness.checkers import check_all
from flowgate.harness.history import HARNESS
from flowgate.harness.simulation.config import SimResult
from flowgate.reference.bus import CommandBus, rebuild_views
from flowgate.reference.messages import Event

if TYPE_CHECKING:
    from flowgate.harness.simulation.core import Simulation


def queue_depth(sim: Simulation) -> dict[str, int]:
    out = {}
    for queue in (sim.config.command_queue, sim.views_queue):
        a = sim.sqs.get_queue_attributes(QueueUrl=sim.resources.queue_urls[queue], AttributeNames=["All"])[
            "Attributes"
        ]
        out[queue] = sum(
            int(a.get(k, "0"))
            for k in (
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            )
        )
    return out


def drain(sim: Simulation, *, max_idle_rounds: int | None = None) -> bool:
    """Faults off; poll every worker until both queues (incl. in flight) are empty.

    Idle rounds advance virtual time past the visibility timeout (VT + 1 s each), so SQS's own
    redrive, at most ``redrive_max_receive_count`` receives away, happens inside the default
    bound of ``4 x maxReceiveCount + 20`` idle rounds and is seen (a reason-less dead letter).
    A drain that stays idle for ``max_idle_rounds`` rounds gives up. Either way it records an
    ``ok`` ``drain`` op whose ``unresolved`` lists every message still in a queue (id, state,
    receive count, command id): the ``resolution`` checker reports each as ``unresolved``.
    Returns whether both queues emptied."""
    sim.nemesis.stop()
    sim.outages.cancel()
    # interleaved: polls still in progress (a sleeping slow handler) go on while the others drain
    idle_limit = max_idle_rounds or (4 * sim.config.max_receive_count + 20)
    stuck = rounds = 0
    depth = queue_depth(sim)
    best = sum(depth.values())
    while any(depth.values()):
        rounds += 1
        received = 0
        for index in range(len(sim.workers)):
            for queue in (sim.config.command_queue, sim.views_queue):
                received += sim.poll(index, queue)
        depth = queue_depth(sim)
        if sum(depth.values()) < best:
            best, stuck = sum(depth.values()), 0
        else:  # no message left the queues this round
            stuck += 1
            if stuck > idle_limit:
                break
        if received == 0 and any(depth.values()):
            sim.clock.advance(sim.config.visibility_timeout + 1)
    drained = not any(depth.values())
    if sim.procs is not None:
        sim.procs.settle()  # heartbeats notice that nothing is tracked any more and end
    if sim.config.faults.outages:
        sim.outages.settle_breakers()
        sim.outages.sample_health("after")
    record_redriven(sim)
    unresolved = [
        {"queue": sim.config.command_queue, **left}
        for left in sim.aws.left_in(sim.resources.queue_urls[sim.config.command_queue])
    ] + [
        {"queue": sim.views_queue, **left, "command_id": None, "event_id": left["command_id"]}
        for left in sim.aws.left_in(sim.resources.queue_urls[sim.views_queue])
    ]
    sim.history.append(
        HARNESS, "ok", "drain", {"rounds": rounds, "remaining": depth, "unresolved": unresolved}
    )
    return drained


def record_redriven(sim: Simulation) -> None:
    """Messages SQS itself moved to a DLQ (redrive policy) carry no ``DeadLetterReason``: no
    listener decided to dead-letter them (e.g. a worker kept receiving while a dependency was
    down, or crashed on every receive). They are in the DLQ all the same, so they are recorded
    as ``dead_letter`` ops *without* a reason: the checker reports each as
    ``dead-letter-without-reason`` (and a valid one also as ``valid-dead-lettered``). With the
    redrive headroom (``BusOptions.redrive_max_receive_count``) the reference is never
    redriven by SQS under the simulator's fault plans."""
    for queue in (sim.config.command_queue, sim.views_queue):
        url = sim.resources.dlq_urls[queue]
        while True:
            got = sim.sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=10,
                VisibilityTimeout=3600,
                MessageAttributeNames=["All"],
                AttributeNames=["All"],
            ).get("Messages", [])
            if not got:
                break
            for m in got:
                attrs = m.get("MessageAttributes") or {}
                if "DeadLetterReason" in attrs:
                    continue  # forwarded by a listener, already observed with its reason
                sim.history.append(
                    HARNESS,
                    "ok",
                    "dead_letter",
                    {
                        "message_id": m["MessageId"],
                        "queue": queue,
                        "redriven_by": "sqs",
                        **(
                            {"command_id": attrs["EventId"]["StringValue"]}
                            if queue == sim.config.command_queue and "EventId" in attrs
                            else {}
                        ),
                        "receive_count": int((m.get("Attributes") or {}).get("ApproximateReceiveCount", 0)),
                    },
                )


def snapshot(sim: Simulation) -> None:
    """``state`` and ``replay`` ops per order (live store vs CommandBus.replay + rebuild_views)."""
    if sim.config.idempotency != "shared":
        return
    storage = sim.shared
    views = sim.wiring.views()
    bus = CommandBus(processor=sim.workers[0].runtime.processor)
    all_events: list[Event] = []
    for order in sim.producers.orders:
        if not order.commands:
            continue
        eid = order.script.order_id
        live = {
            "entity_id": eid,
            "entity": storage.get_entity("order", eid),
            "views": {v: storage.get_view(v, eid) for v in ("orders", "payments")},
        }
        sim.history.append(HARNESS, "ok", "state", live)
        try:
            bus.replay(eid)
            result = bus.replay(eid)  # twice: a replay must not change what the next one sees
            rebuilt = rebuild_views(views, result.events)
            all_events.extend(result.events)
            value: dict[str, Any] = {
                "entity_id": eid,
                "entity": result.states.get("order"),
                "views": {v: rebuilt[v].get(eid) for v in ("orders", "payments")},
            }
        except Exception as exc:
            value = {
                "entity_id": eid,
                "entity": {"replay_error": f"{type(exc).__name__}: {exc}"},
                "views": {},
            }
        sim.history.append(HARNESS, "ok", "replay", value)
    inventory = rebuild_views(views, all_events)["inventory"]
    sim.history.append(
        HARNESS,
        "ok",
        "state",
        {
            "entity_id": "view:inventory",
            "entity": None,
            "views": {"inventory": storage.list_view("inventory")},
        },
    )
    sim.history.append(
        HARNESS,
        "ok",
        "replay",
        {"entity_id": "view:inventory", "entity": None, "views": {"inventory": inventory}},
    )


def judge(sim: Simulation, mutant: str | None = None) -> SimResult:
    """The verdicts of every checker on the run's history, and the run's stats."""
    wall = time.perf_counter() - sim.wall_start
    t0 = time.perf_counter()
    verdicts = check_all(
        sim.history,
        fifo={sim.config.command_queue} if sim.config.fifo else set(),
        require_encryption=sim.config.encryption,
    )
    check_s = time.perf_counter() - t0
    ops = sim.history.ops
    counts = Counter(op.f for op in ops if op.type in ("ok", "info"))
    stats: dict[str, Any] = {
        "orders": sim.config.orders,
        "commands_sent": sum(o.sent for o in sim.producers.orders),
        "effects": counts["effect"],
        "projections": counts["project"],
        "duplicates": counts["duplicate"],
        "dead_letters": counts["dead_letter"],
        "business_dead_letters": counts["business_dead_letter"],
        "faults": dict(sorted(sim.nemesis.fault_counts.items())),
        "ticks": sim.ticks,
        "ops": len(ops),
        "virtual_seconds": round(sim.clock.now() - sim.virtual_start, 3),
        "wall_seconds": round(wall, 3),
        "checker_seconds": round(check_s, 3),
        "drained": sim.drained,
    }
    if sim.config.reads:
        stats["reads"] = counts["read"]
    if sim.procs is not None:
        stats["task_switches"] = sim.procs.switches
    return SimResult(sim.history, verdicts, stats, sim.config.seed, sim.config, mutant)


__all__ = ["drain", "judge", "queue_depth", "record_redriven", "snapshot"]
