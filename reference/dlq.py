"""DLQ replay tool: move messages from a DLQ back to its source queue.

Preserves body, MessageGroupId, MessageDeduplicationId and message attributes (minus
``DeadLetterReason``), one message at a time in the order the DLQ returns them, which for a FIFO
DLQ is group order. A message is deleted from the DLQ only after it was sent.

Caveat (SQS semantics, documented rather than hidden): a FIFO source queue drops a message whose
dedup id it saw in the last 5 minutes, so replaying a message moved to the DLQ less than 5
minutes ago is silently dropped by SQS; wait, or pass ``dedup_suffix`` (the consumer still
recognises the message by its eventId, so idempotency is unaffected).
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from reference.errors import TransportError
from reference.listener import DEAD_LETTER_REASON


def replay_dead_letters(
    sqs: Any,
    *,
    dlq_url: str,
    source_url: str,
    fifo: bool,
    limit: int | None = None,
    wait_time_seconds: int = 1,
    dedup_suffix: str = "",
) -> int:
    """Move up to ``limit`` messages (all when None) from ``dlq_url`` to ``source_url``; returns the count."""
    moved = 0
    try:
        while limit is None or moved < limit:
            resp = sqs.receive_message(
                QueueUrl=dlq_url,
                MaxNumberOfMessages=10,
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
                attrs = {
                    k: {kk: vv for kk, vv in v.items() if kk in ("DataType", "StringValue", "BinaryValue")}
                    for k, v in (m.get("MessageAttributes") or {}).items()
                    if k != DEAD_LETTER_REASON
                }
                params: dict[str, Any] = {"QueueUrl": source_url, "MessageBody": m["Body"]}
                if attrs:
                    params["MessageAttributes"] = attrs
                if fifo:
                    sys_attrs = m.get("Attributes", {})
                    params["MessageGroupId"] = sys_attrs["MessageGroupId"]
                    params["MessageDeduplicationId"] = (
                        sys_attrs.get("MessageDeduplicationId") or m["MessageId"]
                    ) + dedup_suffix
                sqs.send_message(**params)
                sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=m["ReceiptHandle"])
                moved += 1
    except (ClientError, BotoCoreError) as exc:
        raise TransportError(f"DLQ replay failed after {moved} messages: {exc}") from exc
    return moved
