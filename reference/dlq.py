"""DLQ replay tool: move messages from a DLQ back to its source queue.

Preserves body, MessageGroupId, MessageDeduplicationId and message attributes (minus
``DeadLetterReason`` and ``DeadLetterSourceMessageId``), one message at a time in the order the
DLQ returns them, which for a FIFO DLQ is group order: the dead letters of one entity go back in
the order they were dead-lettered, i.e. sequence order. A message is deleted from the DLQ only
after it was sent.

What a replay does to each dead letter (contract section 7, docs/decisions.md D24):

* a command dead-lettered as a business failure was *not* an effect (its idempotency record is
  ``DEAD_LETTERED``): once the cause is fixed, the replayed copy is claimed again and takes effect
  exactly once, in sequence order with the rest of its group; if the cause is still there it is
  refused and dead-lettered again;
* poison stays poison: the replayed copy is dead-lettered again, with its reason.

Caveat (SQS semantics, documented rather than hidden): a FIFO source queue drops a message whose
dedup id it saw in the last 5 minutes, so replaying a message moved to the DLQ less than 5
minutes ago is silently dropped by SQS; wait, or pass ``dedup_suffix`` (the consumer still
recognises the message by its eventId, so idempotency is unaffected).

``limit`` bounds one replay; a replay while consumers run can see poison it just moved come back
to the DLQ, so give it the DLQ's depth when it starts (``limit=None`` stops at the first empty
receive, ``wait_time_seconds`` long).
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from flowgate.reference.errors import TransportError
from flowgate.reference.hooks import NullObserver, Observer
from flowgate.reference.listener import DEAD_LETTER_REASON, DEAD_LETTER_SOURCE

#: Attributes the listener adds when it dead-letters a message; dropped on the way back.
DEAD_LETTER_ATTRIBUTES = frozenset({DEAD_LETTER_REASON, DEAD_LETTER_SOURCE})


def replay_dead_letters(
    sqs: Any,
    *,
    dlq_url: str,
    source_url: str,
    fifo: bool,
    limit: int | None = None,
    wait_time_seconds: int = 1,
    dedup_suffix: str = "",
    observer: Observer | None = None,
) -> int:
    """Move up to ``limit`` messages (all when None) from ``dlq_url`` to ``source_url``; returns the count.

    ``observer`` sees one ``dlq_replay`` ``ok`` per message moved, after its send and before its
    delete: ``dead_letter_id`` (the DLQ's MessageId), ``message_id`` (the new one on the source
    queue), ``source_message_id`` (``DeadLetterSourceMessageId``, when the dead letter has it),
    ``command_id`` (the ``EventId`` attribute, when present), ``group`` and ``reason`` (the
    ``DeadLetterReason`` it carried)."""
    observer = observer or NullObserver()
    moved = 0
    try:
        while limit is None or moved < limit:
            resp = sqs.receive_message(
                QueueUrl=dlq_url,
                MaxNumberOfMessages=10 if limit is None else max(1, min(10, limit - moved)),
                WaitTimeSeconds=wait_time_seconds,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
            messages = resp.get("Messages", [])
            if not messages:
                return moved
            for m in messages:
                if limit is not None and moved >= limit:
                    return moved
                received = m.get("MessageAttributes") or {}
                attrs = {
                    k: {kk: vv for kk, vv in v.items() if kk in ("DataType", "StringValue", "BinaryValue")}
                    for k, v in received.items()
                    if k not in DEAD_LETTER_ATTRIBUTES
                }
                params: dict[str, Any] = {"QueueUrl": source_url, "MessageBody": m["Body"]}
                if attrs:
                    params["MessageAttributes"] = attrs
                sys_attrs = m.get("Attributes", {})
                if fifo:
                    params["MessageGroupId"] = sys_attrs["MessageGroupId"]
                    params["MessageDeduplicationId"] = (
                        sys_attrs.get("MessageDeduplicationId") or m["MessageId"]
                    ) + dedup_suffix
                sent = sqs.send_message(**params)
                observer.observe(
                    "dlq_replay",
                    "ok",
                    {
                        "dead_letter_id": m["MessageId"],
                        "message_id": sent.get("MessageId"),
                        "source_message_id": _string(received, DEAD_LETTER_SOURCE),
                        "command_id": _string(received, "EventId"),
                        "group": sys_attrs.get("MessageGroupId"),
                        "reason": _string(received, DEAD_LETTER_REASON),
                    },
                )
                sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=m["ReceiptHandle"])
                moved += 1
    except (ClientError, BotoCoreError) as exc:
        raise TransportError(f"DLQ replay failed after {moved} messages: {exc}") from exc
    return moved


def _string(attrs: dict[str, Any], name: str) -> str | None:
    value = attrs.get(name)
    return str(value.get("StringValue")) if isinstance(value, dict) and value.get("StringValue") else None
