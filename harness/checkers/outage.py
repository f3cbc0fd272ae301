"""Outage windows: workers back off while a dependency is down, and say so.

Reads the outage nemesis' ops (:mod:`flowgate.harness.outages`): ``nemesis`` ``outage`` invoke/ok pairs
and harness ``health`` samples.

Anomalies:

* ``receive-while-open`` -- a worker's listener received a message while its circuit breaker was
  open (its last ``breaker`` op on that queue says ``open``; a crash or restart of the worker
  resets it) and the receive does not say ``breaker_opened_in_flight`` (a long poll of another
  poll thread that was already waiting when the breaker opened): the breaker does not gate
  ReceiveMessage;
* ``outage-receive-storm`` -- a valid (not poison) message of a queue the outage affects received
  more than :data:`STORM_RECEIVES` times by the
  same worker (same process, no crash or restart of it in between; copies in one batch count once)
  inside one outage window: a
  worker kept receiving while its dependency was down (the breaker's goal is one receive per
  worker and outage; a second one is allowed for a receive that did not need the dependency);
* ``outage-not-reported`` -- the outage touched a worker (it received a valid message of an
  affected queue in the window and did not crash on it, or SQS itself was down and it tried to
  receive) yet no worker's health named the dependency ``degraded`` at the end of the window;
* ``health-not-restored`` -- a worker's health is not ``ok`` after the run drained;
* ``poll-escaped`` -- an error escaped a worker's poll (a ``poll`` fail op of a worker): the
  listener did not contain a failure (production logs it and polls on after a pause; the
  messages in hand are abandoned until their visibility timeout).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from flowgate.harness.history import HARNESS, NEMESIS, Op

from .model import Anomaly, HistoryLike, Verdict, as_ops, poison_ids, verdict

NAME = "outage"


#: receives of one message by one worker inside one outage window beyond which it is a storm: one
#: that finds the dependency down (and opens the breaker), plus at most one that did not need it
#: (e.g. ``Busy``: another worker held the claim); a listener that keeps receiving gets one per VT
STORM_RECEIVES = 2


def outage(history: HistoryLike) -> Verdict:
    """See the module docstring."""
    ops = as_ops(history)
    anomalies: list[Anomaly] = []
    windows = worst = 0
    poison = {i for op in ops if op.f == "poison" for i in poison_ids(op)}
    open_breakers: set[tuple[str, str]] = set()  # (worker, queue) whose last breaker op is "open"
    start: Op | None = None
    seen: Counter[tuple[str, str]] = Counter()
    first_at: dict[tuple[str, str], int] = {}
    touching: dict[tuple[str, str], int] = {}  # (worker, message) received, not crashed on yet
    batches: dict[tuple[str, str], float] = {}  # (worker, message) -> time of its last receive
    during: list[Op] = []
    for op in ops:
        if op.f == "poll" and op.type == "fail":
            anomalies.append(
                Anomaly(
                    "poll-escaped",
                    f"{op.value.get('error')} escaped a poll of {op.value.get('queue')} by {op.process}",
                    (op.index,),
                )
            )
            continue
        if op.f == "breaker" and op.process not in (NEMESIS, HARNESS):
            key = (op.process, str(op.value.get("queue")))
            if op.value.get("state") == "open":
                open_breakers.add(key)
            else:
                open_breakers.discard(key)
            continue
        if op.process == NEMESIS and op.f in ("crash", "restart"):
            worker = str(op.value.get("worker"))  # a fresh runtime: fresh breakers
            open_breakers = {k for k in open_breakers if k[0] != worker}
            for key in [k for k in seen if k[0] == worker]:
                del seen[key]
            touching.pop((worker, str(op.value.get("message_id"))), None)
            continue
        if op.f == "receive" and op.type == "ok":
            queue = str(op.value.get("queue"))
            if (op.process, queue) in open_breakers and not op.value.get("breaker_opened_in_flight"):
                anomalies.append(
                    Anomaly(
                        "receive-while-open",
                        f"{op.process} received {op.value.get('message_id')} from {queue} while its "
                        "circuit breaker was open",
                        (op.index,),
                    )
                )
        if op.process == NEMESIS and op.f == "outage" and op.type == "invoke":
            start, seen, first_at, touching, during = op, Counter(), {}, {}, []
            windows += 1
            continue
        if start is None:
            if (
                op.process == HARNESS
                and op.f == "health"
                and op.value.get("phase") == "after"
                and op.value.get("status") != "ok"
            ):
                anomalies.append(
                    Anomaly(
                        "health-not-restored",
                        f"{op.value.get('worker')} is {op.value.get('status')} after the run "
                        f"drained: {op.value.get('checks')}",
                        (op.index,),
                    )
                )
            continue
        value: dict[str, Any] = dict(start.value)
        if op.f == "receive" and op.type == "ok":
            message_id = str(op.value.get("message_id"))
            key = (op.process, message_id)
            if message_id in poison or str(op.value.get("queue")) not in value.get("queues", ()):
                continue  # poison: left for redelivery until the threshold whatever happens
            touching[key] = op.index
            if batches.get(key) == op.time:
                continue  # another copy in the same batch (a standard queue's duplicate delivery)
            batches[key] = op.time
            seen[key] += 1
            first_at.setdefault(key, op.index)
            worst = max(worst, seen[key])
            if seen[key] == STORM_RECEIVES + 1:
                anomalies.append(
                    Anomaly(
                        "outage-receive-storm",
                        f"{op.process} received {message_id} {seen[key]} times during the "
                        f"{value.get('kind')} outage (started at op {start.index}): it kept receiving "
                        f"while {value.get('dependency')} was down",
                        (start.index, first_at[key], op.index),
                    )
                )
        elif op.process == HARNESS and op.f == "health" and op.value.get("phase") == "during":
            during.append(op)
        elif op.process == NEMESIS and op.f == "outage" and op.type == "ok":
            dependency = str(value.get("dependency"))
            touched = bool(touching) or (dependency == "sqs" and int(op.value.get("receive_calls", 0)) > 0)
            reported = any(dependency in (h.value.get("degraded") or ()) for h in during)
            if touched and not reported:
                anomalies.append(
                    Anomaly(
                        "outage-not-reported",
                        f"workers received valid messages during the {value.get('kind')} outage, yet "
                        f"none reported {dependency} degraded (health: "
                        f"{[h.value.get('status') for h in during]})",
                        (start.index, op.index, *(h.index for h in during)),
                    )
                )
            start = None
    return verdict(NAME, anomalies, {"outages": windows, "max_receives_per_worker": worst})
