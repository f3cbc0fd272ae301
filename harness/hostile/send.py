"""Sending one hostile message to a real (or simulated) SQS endpoint and saying what a correct
consumer must do with it, as the harness operation the checkers read.

Shared by the simulator (:meth:`flowgate.harness.simulation.poison.PoisonSender.send_poison`) and the LocalStack
scenarios, so a catalog kind is sent, and judged, the same way on both:

* a dead-letter kind -> a harness ``poison`` op (``reason_code`` = the documented code, ``*`` for
  any agreed code) that the ``dead_letter`` checker and :func:`~flowgate.harness.hostile.observe.hostile_problems`
  expect in a DLQ with that reason;
* an applied / business-refused kind -> a harness ``send`` op for the command it carries
  (``expect_business_failure`` for the latter), judged like any producer's send;
* a kind SQS refuses -> a ``fail`` ``poison`` op with the error.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from .core import AnyDeadLetter, BasicContext, BusinessDeadLetter, DeadLetter, HostileKind, Outcome, Refused
from .model import carried_identity, expected_outcome


@dataclass(frozen=True)
class SentHostile:
    """What was sent and the harness op (``type``, ``f``, ``value``) that records it."""

    type: str  # "ok" | "fail"
    f: str  # "poison" | "send"
    value: dict[str, Any]
    message_id: str | None
    expected: Outcome


def send_hostile(
    sqs: Any,
    kind: HostileKind,
    ctx: BasicContext,
    *,
    wire: Any,
    queue_url: Callable[[str], tuple[str, str]],
    fifo: bool,
    entity: str,
    command_id: str,
    known_ids: Collection[str],
    expected_reason: bool = False,
) -> SentHostile:
    """Send ``wire`` (``kind``'s transform of ``ctx``) and describe it.

    ``queue_url(target)`` maps the wire message's target (``commands`` / ``views``) to the queue's
    short name and URL; ``entity`` and ``command_id`` are the message's own group and dedup id
    when the transform leaves them unset (FIFO queues). ``expected_reason`` also records the code as
    ``expected_reason`` (the ``dead_letter`` checker then counts even an SQS redrive as the wrong
    reason)."""
    expected = expected_outcome(kind, wire, ctx, known_ids=known_ids)
    queue, url = queue_url(wire.target)
    params: dict[str, Any] = {"QueueUrl": url, "MessageBody": wire.body, "MessageAttributes": wire.attributes}
    if fifo:
        params["MessageGroupId"] = wire.group_id or entity
        params["MessageDeduplicationId"] = wire.dedup_id or command_id
    # poison_id: the entity, not ``command_id`` (a simulator's message ids come from a generator
    # seeded like the one that made ``command_id``: it may equal another message's id)
    value: dict[str, Any] = {"kind": kind.name, "poison_id": entity, "entity_id": entity, "queue": queue}
    try:
        message_id = str(sqs.send_message(**params)["MessageId"])
    except ClientError as exc:
        return SentHostile("fail", "poison", {**value, "error": str(exc)[:300]}, None, expected)
    if isinstance(expected, DeadLetter | AnyDeadLetter | Refused):
        code = expected.reason if isinstance(expected, DeadLetter) else "*"
        value = {**value, "message_id": message_id, "command_id": command_id, "reason_code": code}
        if expected_reason and code != "*":
            value["expected_reason"] = code
        return SentHostile("ok", "poison", value, message_id, expected)
    carried, entity_id, seq = carried_identity(wire, ctx)
    value = {
        "command_id": carried,
        "entity_id": entity_id,
        "seq": seq,
        "message_id": message_id,
        "hostile": kind.name,
        "expect_business_failure": isinstance(expected, BusinessDeadLetter),
    }
    return SentHostile("ok", "send", value, message_id, expected)
