"""The gate's hostile messages (contract v1.2 section 6, the shared catalog in
:mod:`flowgate.harness.hostile`): build each planned kind's message from the valid message of its own fresh
command and send it to the main command queue -- alone, or right behind a still-pending *carrier*
order in one SendMessageBatch when the kind needs a pending command.

It remembers what it sent (by body, by group, and each one's group) so the dead-letter reader can
tell a forwarded hostile message from a valid command's dead letter, and the settler how many
poison messages must reach a DLQ.
"""

from __future__ import annotations

import random
import time
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from flowgate.harness import hostile as hostile_catalog
from flowgate.harness.gate import catalog
from flowgate.harness.gate.observe import SentCommand
from flowgate.harness.gate.sender import Sender
from flowgate.harness.gate.state import CLIENT, RunState
from flowgate.harness.gate.workload import PlannedCommand, PlannedHostile


class PoisonSender:
    """Sends the plan's hostile messages; ``kinds`` are the catalog kinds applicable to the run."""

    def __init__(
        self, state: RunState, sender: Sender, kinds: dict[str, hostile_catalog.HostileKind]
    ) -> None:
        self.s, self.sender, self.kinds = state, sender, kinds
        #: ids of the plan's valid commands (a kind that reuses one names the valid command's effect)
        self.valid_ids = {c.command_id for c in state.plan.commands}
        #: message group / body -> the hostile message sent in it (filled as they are sent); a DLQ
        #: message is matched by its body (forwarded and redriven copies keep it), else its group
        self.by_group: dict[str, PlannedHostile] = {}
        self.by_body: dict[str, PlannedHostile] = {}
        #: hostile id -> the MessageGroupId it was sent with (a dead letter must keep it, v1.4)
        self.group_of: dict[str, str] = {}
        #: the carrier order :meth:`_pending_command` handed to the kind being built
        self._carrier: PlannedCommand | None = None

    def poison_count(self) -> int:
        """Hostile messages sent so far that must end in a DLQ (a DeadLetter kind, not one SQS refuses)."""
        return sum(1 for p in self.by_body.values() if p.reason and p.reason != catalog.REFUSED)

    def send(self, p: PlannedHostile) -> None:
        """Build ``p``'s message with its catalog kind's transform (contract v1.2 section 6) from
        the valid message of its own fresh command (:func:`catalog.context`) and send it to the
        main command queue. A DeadLetter (or business-refused) kind is recorded as a ``poison``
        nemesis op (the dead_letter and integrity checkers judge it), an Applied kind as a client
        ``send`` (judged like any command); every kind also as a ``hostile`` op for the per-kind
        verdict (:func:`catalog.judge`): ``sent``, or ``not_run`` (the context cannot supply what
        the kind needs, or it targets a view queue), or the send's ``error``."""
        kind = self.kinds[p.kind]
        queue = self.s.main_queue
        value: dict[str, Any] = {
            "hostile_id": p.hostile_id,
            "poison_id": p.hostile_id,
            "kind": p.kind,
            "category": kind.category,
            "reason": p.reason,
            "expected": str(kind.outcome),
            "entity_id": p.command.entity_id,
            "destination": queue.name,
        }
        try:
            ctx = catalog.context(
                p,
                encrypted=self.s.encrypted,
                queue=queue.name,
                rng=random.Random(f"{self.s.seed}:{p.hostile_id}"),
                kms=self.s.kms,
                key_id=self.s.prov.kms_key_id,
                other_key=self.s.prov.foreign_key_id,
                known=self._known_applied,
                pending=self._pending_command,
            )
            wire = kind.transform(ctx)
        except hostile_catalog.Unavailable as exc:
            self.s.history.nemesis("hostile", dict(value, sent=False, not_run=str(exc)))
            return
        if wire.target != catalog.COMMANDS_TARGET:
            self.s.history.nemesis(
                "hostile",
                dict(value, sent=False, not_run=f"aimed at a {wire.target} queue (none in the gate)"),
            )
            return
        attributes = catalog.string_attributes(wire.attributes)
        event_id, entity, seq, ctype = catalog.carried(wire, ctx)
        group = wire.group_id or p.command.entity_id
        # the id an effect of this message would name: its eventId, unless that is a valid command of
        # the run (a reused id: an effect of that id is the valid command's), then its own fresh id
        command_id = p.command.command_id if event_id in self.valid_ids else event_id
        value.update(group=group, command_id=command_id, event_id=event_id, target=wire.target)
        self.by_body[wire.body] = p
        self.group_of[p.hostile_id] = group
        if group == p.command.entity_id:  # its own group (a kind may queue it in an order's group)
            self.by_group[group] = p
        send_value = {
            "command_id": command_id,
            "entity_id": entity,
            "seq": seq,
            "command_type": ctype,
            "destination": queue.name,
            "hostile": p.kind,
        }
        applied_like = not p.reason or p.reason == catalog.REFUSED
        if applied_like:
            # an Applied kind (or one SQS should refuse but might accept): its events are known
            self.s.sent[command_id] = SentCommand(
                command_id, entity, seq, ctype, queue.name, p.command.marker
            )
            self.s.markers[entity] = p.command.marker
            self.s.history.append(CLIENT, "invoke", "send", send_value)
        carrier, self._carrier = self._carrier, None
        entry = {
            "MessageBody": wire.body,
            "MessageAttributes": wire.attributes,
            "MessageGroupId": group,
            "MessageDeduplicationId": wire.dedup_id or p.hostile_id,
        }
        try:
            if carrier is None:
                resp = self.s.sqs.send_message(QueueUrl=queue.url, **entry)
            else:  # the carrier first, the hostile message right behind it in the same group
                resp = self._send_with_carrier(carrier, entry)
        except (ClientError, BotoCoreError) as exc:
            if applied_like:
                self.s.history.append(CLIENT, "fail", "send", dict(send_value, error=str(exc)))
            self.s.history.nemesis("hostile", dict(value, sent=False, error=str(exc)[:500]))
            return
        value["message_id"] = resp["MessageId"]
        if p.reason == catalog.REFUSED:
            # the backend accepted what SQS refuses: reported, not judged (an indeterminate send:
            # its effect, if any, is not unexpected, and it need not have one)
            self.s.history.append(CLIENT, "info", "send", dict(send_value, message_id=resp["MessageId"]))
        elif p.reason:
            self.s.history.nemesis("poison", value)
        else:
            self.s.history.append(CLIENT, "ok", "send", dict(send_value, message_id=resp["MessageId"]))
        self.s.history.nemesis("hostile", dict(value, sent=True, attributes=sorted(attributes)))

    def _send_with_carrier(self, carrier: PlannedCommand, entry: dict[str, Any]) -> dict[str, Any]:
        """One SendMessageBatch: the carrier (a valid PlaceOrder of the plan's ``carrier`` phase,
        recorded as a client send) and then ``entry`` in the same group, so the carrier is still
        pending when the hostile message arrives. Returns the hostile entry's result; raises
        ``ClientError`` if SQS refused that entry."""
        body, attrs = self.sender.wire_command(carrier, self.s.main_queue)
        value = {
            "command_id": carrier.command_id,
            "entity_id": carrier.entity_id,
            "seq": carrier.seq,
            "command_type": carrier.command_type,
            "destination": self.s.main_queue.name,
        }
        self.s.history.append(CLIENT, "invoke", "send", value)
        first = {
            "Id": "carrier",
            "MessageBody": body,
            "MessageAttributes": attrs,
            "MessageGroupId": carrier.entity_id,
            "MessageDeduplicationId": carrier.command_id,
        }
        try:
            resp = self.s.sqs.send_message_batch(
                QueueUrl=self.s.main_queue.url, Entries=[first, {"Id": "hostile", **entry}]
            )
        except (ClientError, BotoCoreError) as exc:
            self.s.history.append(CLIENT, "info", "send", dict(value, error=str(exc)))
            raise
        ok = {e["Id"]: e["MessageId"] for e in resp.get("Successful", [])}
        if "carrier" in ok:
            self.s.history.append(CLIENT, "ok", "send", dict(value, message_id=ok["carrier"]))
        else:
            self.s.history.append(CLIENT, "fail", "send", dict(value, error="refused in the batch"))
        if "hostile" not in ok:
            failed = {e["Id"]: e for e in resp.get("Failed", [])}.get("hostile", {})
            raise ClientError(
                {"Error": {"Code": str(failed.get("Code", "?")), "Message": str(failed.get("Message", ""))}},
                "SendMessageBatch",
            )
        return {"MessageId": ok["hostile"]}

    def _known_applied(self) -> str | None:
        """The eventId of a main-workload command the probe has seen take effect (the earliest in
        plan order; waits up to 30 s for a first one, else None: the kind is not run)."""
        deadline = time.monotonic() + 30.0
        while True:
            for c in self.s.plan.commands:
                if c.command_id in self.s.effects_seen:
                    return c.command_id
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.25)

    def _pending_command(self) -> tuple[str, str] | None:
        """(eventId, group) of a valid command sent and not yet applied: the next unused order of
        the plan's ``carrier`` phase, which :meth:`send` then sends in one batch right
        before the hostile message (a real order would usually be applied before the gate could
        queue anything behind it); None when the carriers are used up."""
        carriers = self.s.plan.phase_orders.get("carrier", [])
        if not carriers:
            return None
        self._carrier = self.s.plan.commands[carriers.pop(0)]
        return self._carrier.command_id, self._carrier.entity_id
