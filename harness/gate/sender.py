"""The gate's sends of valid commands: build each command's wire form (contract sections 2-3:
body, attributes, sealed for its destination queue on an encrypted bus) and send it alone, as a
late duplicate resend, or in a SendMessageBatch, recording every send in the history (client
``send`` invoke/ok/fail/info, nemesis ``duplicate_delivery`` for a resend).

A send that SQS refuses (``ClientError``) is a ``fail`` (never sent); a transport error
(``BotoCoreError``) an ``info`` (indeterminate: it may have been sent). Neither raises.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from flowgate.harness import topology as topo
from flowgate.harness.gate import envelope
from flowgate.harness.gate.state import CLIENT, RunState
from flowgate.harness.gate.workload import PlannedCommand


def _iso_now() -> str:
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def command_body(c: PlannedCommand) -> dict[str, Any]:
    """The JSON body of ``c`` (contract section 2): an order entity command, its own correlation."""
    return {
        "name": c.command_type,
        "entity": {"id": c.entity_id, "isNew": c.seq == 1},
        "payload": c.payload,
        "metadata": {
            "eventId": c.command_id,
            "isReplay": False,
            "occurredOn": _iso_now(),
            "sequenceNo": c.seq,
            "correlationId": c.command_id,
            "properties": {},
        },
    }


def string_attrs(**values: str) -> dict[str, dict[str, str]]:
    return {k: {"DataType": "String", "StringValue": v} for k, v in values.items()}


class Sender:
    """Sends the plan's valid commands on behalf of the run in ``state``."""

    def __init__(self, state: RunState) -> None:
        self.s = state

    def _seal(self, key_id: str, ctx: dict[str, str], plaintext: bytes) -> str:
        """``plaintext`` sealed with the run's KMS client (contract section 5)."""
        return envelope.seal(self.s.kms, key_id, ctx, plaintext)

    def encode(
        self,
        body: dict[str, Any] | bytes,
        *,
        event_id: str,
        entity: str,
        ctype: str,
        key_id: str | None = None,
        ctx: dict[str, str] | None = None,
        destination: str | None = None,
    ) -> str:
        """The wire body: plaintext JSON, or sealed for ``destination`` (default: the main command
        queue's short name; a phase queue's commands are sealed for that queue)."""
        raw = body if isinstance(body, bytes) else json.dumps(body, separators=(",", ":")).encode()
        if not self.s.encrypted:
            return raw.decode()
        ctx = ctx or envelope.context(event_id, destination or self.s.prov.command_queue_name, entity, ctype)
        return self._seal(key_id or self.s.prov.kms_key_id, ctx, raw)

    def wire_command(self, c: PlannedCommand, queue: topo.CommandQueue) -> tuple[str, dict[str, Any]]:
        """(body, message attributes) of a valid command sent to ``queue``."""
        body = self.encode(
            command_body(c),
            event_id=c.command_id,
            entity=c.entity_id,
            ctype=c.command_type,
            destination=queue.name,
        )
        attrs = string_attrs(
            CommandType=c.command_type,
            EntityId=c.entity_id,
            SequenceNo=str(c.seq),
            EventId=c.command_id,
            CorrelationId=c.command_id,
        )
        if self.s.encrypted:
            attrs.update(string_attrs(Encryption=envelope.SCHEME))
        return body, attrs

    def send_command(
        self,
        c: PlannedCommand,
        *,
        resend: bool = False,
        wire: tuple[str, dict[str, Any]] | None = None,
    ) -> None:
        """Send ``c`` (``wire``: its body and attributes, already built -- sealed before a KMS outage)."""
        queue = self.s.queue_of(c)
        body, attrs = wire or self.wire_command(c, queue)
        value = {
            "command_id": c.command_id,
            "entity_id": c.entity_id,
            "seq": c.seq,
            "command_type": c.command_type,
            "destination": queue.name,
        }
        dedup = c.command_id if not resend else f"{c.command_id}-late-resend"
        if not resend:
            self.s.history.append(CLIENT, "invoke", "send", value)
        try:
            resp = self.s.sqs.send_message(
                QueueUrl=queue.url,
                MessageBody=body,
                MessageAttributes=attrs,
                MessageGroupId=c.entity_id,
                MessageDeduplicationId=dedup,
            )
        except ClientError as exc:
            if not resend:
                self.s.history.append(CLIENT, "fail", "send", dict(value, error=str(exc)))
            return
        except BotoCoreError as exc:
            if not resend:
                self.s.history.append(CLIENT, "info", "send", dict(value, error=str(exc)))
            return
        if resend:
            self.s.history.nemesis(
                "duplicate_delivery",
                dict(value, message_id=resp["MessageId"], how="late resend: same body, new dedup id"),
            )
        else:
            self.s.history.append(CLIENT, "ok", "send", dict(value, message_id=resp["MessageId"]))

    def send_burst(self, first: int) -> None:
        """All commands of one order in a single SendMessageBatch: one receive then sees several
        messages of the same group, so processing them out of order or in parallel shows."""
        entity = self.s.plan.commands[first].entity_id
        self.send_batch([c for c in self.s.plan.commands if c.entity_id == entity], burst=True)

    def send_batch(self, batch: list[PlannedCommand], *, burst: bool = False) -> None:
        """Up to 10 commands (all for the queue of the first) in one SendMessageBatch; each entry
        is recorded as its own send (``burst`` marks an order's commands sent together)."""
        queue = self.s.queue_of(batch[0])
        entries, values = [], []
        for n, c in enumerate(batch):
            body, attrs = self.wire_command(c, queue)
            entries.append(
                {
                    "Id": f"m{n}",
                    "MessageBody": body,
                    "MessageAttributes": attrs,
                    "MessageGroupId": c.entity_id,
                    "MessageDeduplicationId": c.command_id,
                }
            )
            value: dict[str, Any] = {
                "command_id": c.command_id,
                "entity_id": c.entity_id,
                "seq": c.seq,
                "command_type": c.command_type,
                "destination": queue.name,
            }
            if burst:
                value["burst"] = True
            values.append(value)
            self.s.history.append(CLIENT, "invoke", "send", value)
        try:
            resp = self.s.sqs.send_message_batch(QueueUrl=queue.url, Entries=entries)
        except ClientError as exc:
            for value in values:
                self.s.history.append(CLIENT, "fail", "send", dict(value, error=str(exc)))
            return
        except BotoCoreError as exc:
            for value in values:
                self.s.history.append(CLIENT, "info", "send", dict(value, error=str(exc)))
            return
        ok = {e["Id"]: e["MessageId"] for e in resp.get("Successful", [])}
        failed = {e["Id"]: e.get("Message", e.get("Code", "")) for e in resp.get("Failed", [])}
        for n, value in enumerate(values):
            if f"m{n}" in ok:
                self.s.history.append(CLIENT, "ok", "send", dict(value, message_id=ok[f"m{n}"]))
            else:  # an entry SQS refused was not sent; the later ones of the group still were
                self.s.history.append(CLIENT, "fail", "send", dict(value, error=failed.get(f"m{n}", "?")))
