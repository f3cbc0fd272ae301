"""Outage windows: workers back off while a dependency is down, and say so.

Reads the outage nemesis' ops (:mod:`harness.outages`): ``nemesis`` ``outage`` invoke/ok pairs
and harness ``health`` samples.

Anomalies:

* ``outage-receive-storm`` -- a message received more than once by the same worker (same
  process, no crash or restart of it in between) inside one outage window: a worker kept
  receiving while its dependency was down (the breaker's goal is one receive per worker);
* ``outage-not-reported`` -- the outage touched a worker (it received a message of an affected
  queue in the window, or SQS itself was down) yet no worker's health named the dependency as
  ``degraded`` at the end of the window;
* ``health-not-restored`` -- a worker's health is not ``ok`` after the run drained;
* ``poll-escaped`` -- an error escaped a worker's poll (a ``poll`` fail op of a worker): the
  listener did not contain a failure (production logs it and polls on after a pause; the
  messages in hand are abandoned until their visibility timeout).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from harness.history import HARNESS, NEMESIS, Op

from .model import Anomaly, HistoryLike, Verdict, as_ops, verdict

NAME = "outage"


def outage(history: HistoryLike) -> Verdict:
    """See the module docstring."""
    ops = as_ops(history)
    anomalies: list[Anomaly] = []
    windows = 0
    worst = 0
    start: Op | None = None
    seen: Counter[tuple[str, str]] = Counter()
    first_at: dict[tuple[str, str], int] = {}
    touched = False
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
        if op.process == NEMESIS and op.f == "outage" and op.type == "invoke":
            start, seen, first_at, touched, during = op, Counter(), {}, False, []
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
        if op.process == NEMESIS and op.f in ("crash", "restart"):
            worker = str(op.value.get("worker"))
            for key in [k for k in seen if k[0] == worker]:
                del seen[key]
        elif op.f == "receive" and op.type == "ok":
            queue = str(op.value.get("queue"))
            if queue in value.get("queues", ()):
                touched = True
            key = (op.process, str(op.value.get("message_id")))
            seen[key] += 1
            first_at.setdefault(key, op.index)
            worst = max(worst, seen[key])
            if seen[key] == 2:
                anomalies.append(
                    Anomaly(
                        "outage-receive-storm",
                        f"{op.process} received {key[1]} again during the {value.get('kind')} outage "
                        f"(started at op {start.index}): it kept receiving while {value.get('dependency')} "
                        "was down",
                        (start.index, first_at[key], op.index),
                    )
                )
        elif op.process == HARNESS and op.f == "health" and op.value.get("phase") == "during":
            during.append(op)
        elif op.process == NEMESIS and op.f == "outage" and op.type == "ok":
            dependency = str(value.get("dependency"))
            if dependency == "sqs" and int(op.value.get("receive_calls", 0)) > 0:
                touched = True
            reported = any(dependency in (h.value.get("degraded") or ()) for h in during)
            if touched and not reported:
                anomalies.append(
                    Anomaly(
                        "outage-not-reported",
                        f"no worker reported {dependency} degraded during the {value.get('kind')} outage "
                        f"(health: {[h.value.get('status') for h in during]})",
                        (start.index, op.index, *(h.index for h in during)),
                    )
                )
            start = None
    return verdict(NAME, anomalies, {"outages": windows, "max_receives_per_worker": worst})
