"""The gate's reading of the dead-letter queues after the run (contract section 6): every message
of every DLQ becomes a ``dead_letter`` op, matched to the hostile message or command it was
forwarded from; a reason code outside the contract's list (``dead-letter-reason``) and a dead
letter in another message group than its source's (``dead-letter-group-changed``, v1.4) are
recorded as violations by the event mapper.
"""

from __future__ import annotations

from typing import Any

from flowgate.harness.gate.poison import PoisonSender
from flowgate.harness.gate.state import RunState
from flowgate.harness.gate.workload import PlannedHostile

#: ``BusinessError`` is a valid code, but a command the gate sent is always valid, so such a dead
#: letter of one is judged ``valid-dead-lettered`` by the dead_letter checker.
DEAD_LETTER_REASONS: frozenset[str] = frozenset(
    {
        "DecodeError",
        "UnknownMessageType",
        "MissingAttribute",
        "OversizedMessage",
        "DecryptionError",
        "BusinessError",
        "IdempotencyConflict",
        "HandlerError",
    }
)


def reason_code(reason: str) -> str:
    """The code of a ``DeadLetterReason``: the text before the first ``":"`` (section 6)."""
    return reason.split(":", 1)[0].strip()


class DeadLetterReader:
    """Reads the DLQs of the run in ``state``; ``poison`` says which hostile messages were sent."""

    def __init__(self, state: RunState, poison: PoisonSender) -> None:
        self.s, self.poison = state, poison

    def read_all(self) -> None:
        """Record every message of every DLQ (the main queue's and each phase queue's) as a
        ``dead_letter`` op (a hostile message's carries its ``hostile_id``; a DeadLetter kind's is
        marked ``poison``). A reason whose code is not one of :data:`DEAD_LETTER_REASONS` is a
        ``dead-letter-reason`` violation; a hostile kind's wrong code is judged per kind
        (:func:`catalog.judge`), the dead_letter checker judges the rest (valid commands, missing
        reasons)."""
        for queue in self.s.queues:
            if queue.dlq_url:
                self._read_one_dlq(queue.dlq_url, queue.dlq_name)

    def _read_one_dlq(self, url: str, name: str) -> None:
        """Receive every message of one DLQ (hidden 600 s, so each is read once) until two empty
        1 s polls in a row; nothing is deleted (the queue is deleted with the run)."""
        hostile = dict(self.poison.by_group)
        empty = 0
        seen: set[str] = set()
        while empty < 2:
            resp = self.s.sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=10,
                WaitTimeSeconds=1,
                VisibilityTimeout=600,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
            msgs = resp.get("Messages", [])
            empty = 0 if msgs else empty + 1
            for msg in msgs:
                if msg["MessageId"] in seen:
                    continue
                seen.add(msg["MessageId"])
                attrs = {k: v.get("StringValue", "") for k, v in (msg.get("MessageAttributes") or {}).items()}
                group = msg.get("Attributes", {}).get("MessageGroupId", "")
                found = self.poison.by_body.get(msg.get("Body", "")) or hostile.get(group)
                value: dict[str, Any] = {
                    "message_id": msg["MessageId"],
                    "queue": name,
                    "reason": attrs.get("DeadLetterReason", ""),
                    "group": group,
                }
                code = reason_code(value["reason"])
                if value["reason"] and code not in DEAD_LETTER_REASONS:
                    self.s.mapper.violation(
                        "dead-letter-reason",
                        f"dead letter {msg['MessageId']} on {name} has reason {value['reason']!r}: "
                        f"{code!r} is not a code of contract section 6 ({', '.join(sorted(DEAD_LETTER_REASONS))})",
                        message_id=msg["MessageId"],
                    )
                if code == "BusinessError":
                    value["business_error"] = True  # the domain refused it after the retries
                if found is not None and found.reason:  # a DeadLetter kind: poison
                    value.update(hostile_id=found.hostile_id, poison_id=found.hostile_id, poison=True)
                elif found is not None:  # an Applied kind: a valid command dead-lettered
                    value.update(hostile_id=found.hostile_id, command_id=self._hostile_command(found))
                elif attrs.get("EventId"):
                    value["command_id"] = attrs["EventId"]
                self._check_dead_letter_group(msg["MessageId"], name, group, found, attrs.get("EventId", ""))
                self.s.history.append("dlq", "ok", "dead_letter", value)

    def _check_dead_letter_group(
        self, message_id: str, dlq: str, group: str, found: PlannedHostile | None, event_id: str
    ) -> None:
        """v1.4 (sections 1 and 6): a dead letter keeps the ``MessageGroupId`` of the message it was
        forwarded from -- which the implementation only has if it asked ReceiveMessage for it. A dead
        letter of a message the gate sent (a hostile one, or a command by its ``EventId``) in another
        group is ``dead-letter-group-changed``."""
        if found is not None:
            expected = self.poison.group_of.get(found.hostile_id, "")
        else:
            sent = self.s.sent.get(event_id)
            expected = sent.entity_id if sent is not None else ""
        if expected and group != expected:
            self.s.mapper.violation(
                "dead-letter-group-changed",
                f"dead letter {message_id} on {dlq} is in MessageGroupId {group!r}; the message it was "
                f"forwarded from was sent in {expected!r} (forward with the source's MessageGroupId, "
                "requested from ReceiveMessage)",
                message_id=message_id,
            )

    def _hostile_command(self, p: PlannedHostile) -> str:
        """The command id the ``hostile`` op of ``p`` recorded (its planned id if it was not sent)."""
        for op in self.s.history.ops:
            if op.f == "hostile" and op.value.get("hostile_id") == p.hostile_id:
                return str(op.value.get("command_id", p.command.command_id))
        return p.command.command_id
