"""The gate's look at the queues after every instance stopped: what is still in a command queue
(contract v1.3 section 9: ``unresolved``) and whether an implementation changed a command queue's
RedrivePolicy (v1.2 section 6: ``redrive-policy-changed``). Plain functions over an SQS client.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any

from flowgate.harness import topology as topo
from flowgate.harness.checkers.model import Anomaly
from flowgate.harness.gate.state import CLIENT
from flowgate.harness.history import History


def sent_messages(history: History) -> dict[str, dict[str, Any]]:
    """Every message the gate put on a command queue, by SQS MessageId: its ``kind`` (``valid``,
    ``hostile``, ``duplicate`` -- a late resend) and the command it carries."""
    out: dict[str, dict[str, Any]] = {}
    for op in history.ops:
        message_id = op.value.get("message_id")
        if not message_id:
            continue
        if op.f == "send" and op.type in ("ok", "info") and op.process == CLIENT:
            kind = "hostile" if op.value.get("hostile") else "valid"
        elif op.f == "duplicate_delivery":
            kind = "duplicate"
        elif op.f == "poison":
            kind = "hostile"
        else:
            continue
        out.setdefault(
            str(message_id),
            {
                "kind": kind,
                "command_id": op.value.get("command_id"),
                "entity_id": op.value.get("entity_id"),
            },
        )
    return out


def _likely_unresolved(sent: dict[str, Any], effects_seen: set[str]) -> int:
    """Rank of a sent message as a candidate for an unnamed in-flight one (lower: likelier)."""
    if sent["kind"] == "valid":
        return 3 if sent.get("command_id") in effects_seen else 0
    return {"duplicate": 1, "hostile": 2}.get(str(sent["kind"]), 3)


def unresolved(
    sqs: Any, queues: Iterable[topo.CommandQueue], history: History, effects_seen: set[str]
) -> list[dict[str, Any]]:
    """What is still in a command queue once every instance has stopped (contract v1.3 section 9):
    after a SIGTERM an implementation finishes or releases what it holds, so the gate waits at most
    VT + 2 s for in-flight messages to turn visible, then receives the visible ones to name them
    (message id, kind, command, receive count; they are not deleted: the queue is deleted with the
    run). A message still in flight after that wait was parked (its visibility set beyond VT, e.g.
    12 h): SQS shows only how many, so it is reported with the sent messages that could be it."""
    sent = sent_messages(history)
    out: list[dict[str, Any]] = []
    for queue in queues:
        wait_until = time.monotonic() + queue.visibility_timeout + 2.0
        while True:
            attrs = sqs.get_queue_attributes(
                QueueUrl=queue.url,
                AttributeNames=[
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                    "ApproximateNumberOfMessagesDelayed",
                ],
            )["Attributes"]
            hidden = int(attrs.get("ApproximateNumberOfMessagesNotVisible", 0)) + int(
                attrs.get("ApproximateNumberOfMessagesDelayed", 0)
            )
            if not hidden or time.monotonic() >= wait_until:
                break
            time.sleep(0.5)
        named: set[str] = set()
        if int(attrs.get("ApproximateNumberOfMessages", 0)):
            for _ in range(20):
                got = sqs.receive_message(
                    QueueUrl=queue.url,
                    MaxNumberOfMessages=10,
                    WaitTimeSeconds=1,
                    VisibilityTimeout=600,
                    AttributeNames=["All"],
                    MessageAttributeNames=["All"],
                ).get("Messages", [])
                if not got:
                    break
                for m in got:
                    if m["MessageId"] in named:
                        continue
                    named.add(m["MessageId"])
                    known = sent.get(m["MessageId"], {})
                    event_id = ((m.get("MessageAttributes") or {}).get("EventId") or {}).get("StringValue")
                    out.append(
                        {
                            "queue": queue.name,
                            "message_id": m["MessageId"],
                            "command_id": known.get("command_id") or event_id,
                            "kind": known.get("kind"),
                            "state": "visible",
                            "receive_count": int(
                                (m.get("Attributes") or {}).get("ApproximateReceiveCount", 0)
                            ),
                        }
                    )
        if hidden:
            # most likely first: a valid command without an effect, then resends, then hostile
            # messages, then valid commands that took effect (handled, then not deleted)
            candidates = sorted(
                (
                    (
                        _likely_unresolved(v, effects_seen),
                        f"{v['kind']} {v.get('command_id') or mid} (message {mid})",
                    )
                    for mid, v in sent.items()
                    if mid not in named
                ),
            )
            out.append(
                {
                    "queue": queue.name,
                    "state": f"in flight {hidden} message(s) more than VT + 2 s after every instance stopped (parked)",
                    "count": hidden,
                    "candidates": [label for _, label in candidates],
                }
            )
    return out


def redrive_policy_anomalies(sqs: Any, queues: Iterable[topo.CommandQueue]) -> list[Anomaly]:
    """Contract v1.2 section 6: the gate provisions every command queue's ``RedrivePolicy``
    (``FLOWGATE_REDRIVE_MAX_RECEIVE_COUNT``); an implementation may adopt the queues but MUST
    NOT lower or move it (``lifecycle: redrive-policy-changed``) -- without the headroom, SQS
    dead-letters, without a reason, what the consumer would still retry or forward itself. Returns
    one anomaly per queue whose policy differs."""
    out: list[Anomaly] = []
    for queue in queues:
        if not queue.dlq_url:
            continue
        attrs = sqs.get_queue_attributes(QueueUrl=queue.url, AttributeNames=["RedrivePolicy"])
        policy = json.loads(attrs.get("Attributes", {}).get("RedrivePolicy") or "{}")
        found = int(policy.get("maxReceiveCount", 0))
        if found != queue.redrive_max_receive_count:
            out.append(
                Anomaly(
                    "redrive-policy-changed",
                    f"{queue.name}: RedrivePolicy maxReceiveCount is {found} after the run, the gate "
                    f"set {queue.redrive_max_receive_count} (FLOWGATE_REDRIVE_MAX_RECEIVE_COUNT)",
                )
            )
    return out
