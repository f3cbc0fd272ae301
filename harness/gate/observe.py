"""Turn what the probe queue sees into history ops (pure: no AWS here, so it is unit-tested).

The implementation is a black box; the only effects the gate can judge are the events it
publishes. For each event the probe receives (already decrypted by the caller):

* a ``wire`` op (the body as seen on the wire, whether it was encrypted, the secret markers of
  its order) for the confidentiality checker;
* a ``publish`` op (event id, entity, seq, type, topic, causation id);
* a ``receive`` op (the probe queue, the SQS message id, its ``SentTimestamp`` as ``sent_at``,
  its ``MessageDeduplicationId`` as ``dedup_id``, its group and the event id as
  ``wire_event_id``) for the
  FIFO deduplication checker (:mod:`flowgate.harness.checkers.dedup`): the same event id delivered twice
  within the 300 s window is ``dedup-not-effective`` (contract v1.3, section 3);
* an ``effect`` op for the causing command (``causationId``) the first time an event *id* is
  seen for (command, event type); the same event id again is a re-publish and becomes a
  ``duplicate`` op (allowed after the FIFO window; within it the ``receive`` ops above make it
  ``dedup-not-effective``); a *different* event id for the same (command, event type) is a
  second effect of one command -- the exactly-once and total-queue checkers flag it;
* a ``contract_violation`` op (gate process) for anything that breaks the wire contract:
  missing attributes, attributes contradicting the body, an undecryptable body, an event id not
  derived from the command id, a seq or entity differing from the command's;
* a ``read`` op (contract v1.3) the first time an event id answering a read (``OrderState``) is
  seen: the state it reports, judged by :func:`flowgate.harness.checkers.reads.read_state`.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from flowgate.harness.checkers.model import Anomaly, Verdict
from flowgate.harness.checkers.reads import read_op_value
from flowgate.harness.history import History

GATE = "gate"
IMPL = "impl"
PROBE = "probe"


def derived_event_id(command_id: str, index: int, name: str) -> str:
    """uuid5(UUID(command eventId), f"{index}:{name}") -- contract section 3."""
    try:
        namespace = uuid.UUID(command_id)
    except ValueError:
        namespace = uuid.uuid5(uuid.NAMESPACE_URL, command_id)
    return str(uuid.uuid5(namespace, f"{index}:{name}"))


@dataclass(frozen=True, slots=True)
class SentCommand:
    command_id: str
    entity_id: str
    seq: int
    command_type: str
    destination: str
    marker: str = ""


@dataclass(slots=True)
class EventMapper:
    history: History
    commands: Mapping[str, SentCommand]
    topic_name: str
    markers: Mapping[str, str] = field(default_factory=dict)  # entity id -> secret marker
    probe_queue: str = "probe.fifo"
    seen: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    events_seen: set[str] = field(default_factory=set)
    violations: int = 0

    def violation(self, kind: str, message: str, **value: Any) -> None:
        self.violations += 1
        self.history.append(GATE, "info", "contract_violation", {"kind": kind, "message": message, **value})

    def observe(
        self,
        *,
        raw_body: str,
        attributes: Mapping[str, str],
        plaintext: str | None,
        encrypted: bool,
        decrypt_error: str | None = None,
        message_id: str = "",
        sent_at: float | None = None,
        dedup_id: str | None = None,
        group_id: str | None = None,
    ) -> None:
        """One probe receipt. ``plaintext`` is the decrypted (or plain) body; ``None`` if it could
        not be had. ``sent_at`` (the probe message's SQS ``SentTimestamp``, in seconds: when SNS
        delivered it to the probe queue), ``dedup_id`` (its ``MessageDeduplicationId``) and
        ``group_id`` (its ``MessageGroupId``) go into the ``receive`` op, with the body's event
        id (the ``EventId`` attribute when the body cannot be read)."""
        wire_event_id = attributes.get("EventId", "")
        with contextlib.suppress(ValueError, KeyError, TypeError):
            parsed: Any = json.loads(plaintext or "")
            wire_event_id = str(parsed["metadata"]["eventId"])
        received: dict[str, Any] = {"message_id": message_id, "queue": self.probe_queue}
        if sent_at is not None:
            received["sent_at"] = sent_at
        if dedup_id:
            received["dedup_id"] = dedup_id
        if group_id:
            received["group_id"] = group_id
        if wire_event_id:
            received["wire_event_id"] = wire_event_id
        self.history.append(PROBE, "ok", "receive", received)
        entity_attr = attributes.get("EntityId", "")
        self.history.append(
            PROBE,
            "ok",
            "wire",
            {
                "body": raw_body[:4096],
                "encrypted": encrypted,
                "message_id": message_id,
                "plaintext_markers": [self.markers[entity_attr]] if entity_attr in self.markers else [],
            },
        )
        if decrypt_error is not None or plaintext is None:
            self.violation(
                "undecryptable-event",
                f"event {message_id} could not be opened: {decrypt_error}",
                message_id=message_id,
            )
            return
        try:
            event = json.loads(plaintext)
            name, entity = str(event["name"]), str(event["entity"]["id"])
            meta = event["metadata"]
            event_id, seq, cause = str(meta["eventId"]), int(meta["sequenceNo"]), str(meta["causationId"])
        except (ValueError, KeyError, TypeError) as exc:
            self.violation(
                "malformed-event",
                f"event {message_id} does not follow event.schema.json: {exc!r}",
                message_id=message_id,
            )
            return
        for attr in ("EventType", "EntityId", "SequenceNo", "EventId", "CorrelationId"):
            if attr not in attributes:
                self.violation(
                    "missing-attribute", f"event {event_id} lacks attribute {attr}", event_id=event_id
                )
        expected = {"EventType": name, "EntityId": entity, "SequenceNo": str(seq), "EventId": event_id}
        for attr, want in expected.items():
            if attr in attributes and attributes[attr] != want:
                self.violation(
                    "attribute-mismatch",
                    f"event {event_id}: {attr}={attributes[attr]!r} but body says {want!r}",
                    event_id=event_id,
                )
        command = self.commands.get(cause)
        self.history.append(
            IMPL,
            "ok",
            "publish",
            {
                "event_id": event_id,
                "entity_id": entity,
                "seq": seq,
                "event_type": name,
                "destination": self.topic_name,
                "causation_id": cause,
            },
        )
        if command is not None:
            if entity != command.entity_id or seq != command.seq:
                self.violation(
                    "wrong-entity-or-seq",
                    f"event {event_id} names entity {entity} seq {seq}, its "
                    f"command {cause} is entity {command.entity_id} seq {command.seq}",
                    event_id=event_id,
                )
            # the gate sends correlationId = the command id; an event carries its command's correlation id
            correlation = meta.get("correlationId") if isinstance(meta, dict) else None
            if correlation != cause or attributes.get("CorrelationId", cause) != cause:
                self.violation(
                    "correlation-not-propagated",
                    f"event {event_id} has correlationId {correlation!r} "
                    f"(attribute {attributes.get('CorrelationId')!r}), its command's is {cause!r}",
                    event_id=event_id,
                )
            candidates = {derived_event_id(cause, i, name) for i in range(4)}
            if event_id not in candidates:
                self.violation(
                    "event-id-not-derived",
                    f"event {event_id} of command {cause} is not uuid5(commandId, 'index:{name}')",
                    event_id=event_id,
                )
        key = (cause, name)
        ids = self.seen.setdefault(key, set())
        if event_id in ids:
            self.history.append(IMPL, "ok", "duplicate", {"key": event_id, "entity_id": entity, "seq": seq})
            return
        ids.add(event_id)
        self.history.append(
            IMPL,
            "ok",
            "effect",
            {
                "command_id": cause,
                "entity_id": entity,
                "seq": seq,
                "command_type": command.command_type if command else "",
                "event_id": event_id,
                "destination": command.destination if command else "",
            },
        )
        read = read_op_value(name, entity, seq, cause, event.get("payload"))
        if read is not None:
            self.history.append(IMPL, "ok", "read", read)

    def verdict(self) -> Verdict:
        """The gate's own ``event_contract`` verdict over the violations recorded so far."""
        anomalies = [
            Anomaly(str(op.value.get("kind")), str(op.value.get("message")), (op.index,))
            for op in self.history.ops
            if op.f == "contract_violation"
        ]
        return Verdict("event_contract", not anomalies, anomalies, {"violations": len(anomalies)})
