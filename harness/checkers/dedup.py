"""FIFO deduplication as observed by the consumers: a deduplicated id is never delivered twice.

SQS FIFO queues and SNS FIFO topics accept a message whose deduplication id (explicit
``MessageDeduplicationId``, or the SHA-256 of the body with ``ContentBasedDeduplication``) was
already accepted in the last 300 s, and do not deliver it. A bus that publishes a re-derived
event with a *stable* deduplication id (contract section 3: the event id) therefore shows each
event id once to every FIFO subscriber within that window, however often a redelivered
command re-publishes it; a bus whose deduplication ids are not stable shows it again, and only
the consumers' idempotency keeps it from doing harm.
"""

from __future__ import annotations

from typing import Any, Final

from flowgate.harness.history import Op

from .model import Anomaly, HistoryLike, Verdict, as_ops, sid, verdict

NAME = "fifo_dedup"

#: the SQS / SNS FIFO deduplication interval (AWS: 5 minutes)
DEDUP_WINDOW: Final = 300.0
#: how much closer than the window two copies must be to count: the ``sent_at`` of a copy is
#: the time its *queue* accepted it (SQS ``SentTimestamp``), not the time it was published to
#: the topic, so a legitimate re-publish just after the window could look up to the difference
#: of the two copies' SNS delivery latencies earlier; 5 s is far above that on AWS and LocalStack
#: (milliseconds) and 0 in the simulator
DEDUP_TOLERANCE: Final = 5.0


def _keys(value: Any) -> list[tuple[str, str]]:
    """What a received copy is deduplicated on: its ``dedup_id`` (the SQS
    ``MessageDeduplicationId`` the consumer saw) and, for an event, its ``wire_event_id``
    (the ``EventId`` of an event message: its deduplication id by the contract)."""
    keys = []
    dedup_id, event_id = sid(value.get("dedup_id")), sid(value.get("wire_event_id"))
    if dedup_id is not None:
        keys.append(("deduplication id", dedup_id))
    if event_id is not None:
        keys.append(("event id", event_id))
    return keys


def fifo_dedup(
    history: HistoryLike,
    *,
    dedup_window: float = DEDUP_WINDOW,
    dedup_tolerance: float = DEDUP_TOLERANCE,
) -> Verdict:
    """No FIFO queue delivers two SQS messages with one deduplication key inside the window.

    Reads ``receive`` ``ok`` ops (a worker's listener or the gate's probe) of queues whose name
    ends in ``.fifo`` (SQS requires it of FIFO queues) that carry ``sent_at`` (the message's SQS
    ``SentTimestamp``, in seconds) and a key (:func:`_keys`). Only the first receive of each
    (queue, ``message_id``) counts: a later receive of the same SQS message is a redelivery after
    its visibility ended, which FIFO allows.

    * ``dedup-not-effective`` -- two distinct SQS messages of one queue and message group
      (``group_id``: a queue may deduplicate per group) with the same key whose
      ``sent_at`` differ by less than ``dedup_window - dedup_tolerance`` (295 s by default),
      measured from the copy that opened the key's window (its earliest copy; a copy at least
      ``dedup_window`` after it opens the next window, as on AWS). On a command queue the key is
      the ``MessageDeduplicationId`` only (a producer's late resend with another deduplication id
      is a new message: allowed), so a hit means the queue did not deduplicate -- on the simulator
      a simulator bug. On an event subscription it is also the event id: a hit there means the
      publisher's deduplication ids are not stable (or the topic did not deduplicate).

    Copies between ``dedup_window - dedup_tolerance`` and ``dedup_window`` apart are not judged
    (the timestamps cannot tell them apart from a re-publish after the window). Receives without
    ``sent_at`` are counted as ``unjudged``. Standard queues are not judged (no deduplication).
    """
    ops = as_ops(history)
    first: dict[tuple[str, str], Op] = {}  # (queue, message id) -> its first receive
    unjudged = 0
    for op in ops:
        if op.f != "receive" or op.type != "ok":
            continue
        queue, message_id = sid(op.value.get("queue")), sid(op.value.get("message_id"))
        if queue is None or message_id is None or not queue.endswith(".fifo"):
            continue
        if op.value.get("sent_at") is None or not _keys(op.value):
            unjudged += 1
            continue
        first.setdefault((queue, message_id), op)

    # per message group too: a queue with DeduplicationScope=messageGroup (AWS) delivers one id in
    # two groups; the ids judged here (a command's eventId, an event id) live in one group anyway
    copies: dict[tuple[str, str, str, str], list[Op]] = {}
    for (queue, _), op in first.items():
        group = sid(op.value.get("group_id")) or ""
        for what, key in _keys(op.value):
            copies.setdefault((queue, group, what, key), []).append(op)

    anomalies: list[Anomaly] = []
    reported: set[tuple[int, int]] = set()
    keys_judged = 0
    for (queue, _, what, key), found in copies.items():
        keys_judged += 1
        if len(found) < 2:
            continue
        found.sort(key=lambda op: (float(op.value["sent_at"]), op.index))
        opener = found[0]
        for op in found[1:]:
            gap = float(op.value["sent_at"]) - float(opener.value["sent_at"])
            if gap >= dedup_window:
                opener = op  # accepted after the window: it opens the next one
                continue
            if gap >= dedup_window - dedup_tolerance or (opener.index, op.index) in reported:
                continue
            reported.add((opener.index, op.index))
            anomalies.append(
                Anomaly(
                    "dedup-not-effective",
                    f"{queue} delivered two messages with {what} {key} {gap:.3f} s apart (sent_at), "
                    f"inside the {dedup_window:.0f} s FIFO deduplication window: "
                    f"{opener.describe()}; {op.describe()}",
                    (opener.index, op.index),
                )
            )
    stats: dict[str, Any] = {
        "messages": len(first),
        "keys": keys_judged,
        "unjudged_receives": unjudged,
    }
    return verdict(NAME, anomalies, stats)
