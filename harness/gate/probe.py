"""The gate's probe: the run's own SQS queue subscribed to the event topic, polled from a thread
for the whole run; every event is opened (contract section 5) and recorded by the
:class:`~flowgate.harness.gate.observe.EventMapper`. The commands whose effect it has seen (``effects_seen``)
are what the settler, the phases and the hostile kinds that need an applied command wait for.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from flowgate.harness.gate import envelope
from flowgate.harness.gate.state import RunState


class Probe:
    """Polls the probe queue of the run in ``state``.

    ``kms_down`` is set while the run's KMS key is disabled (the probe cannot open events then: it
    pauses); :meth:`loop` holds ``lock`` for each poll, so no poll is mid-way when the key goes.
    ``stop`` ends :meth:`loop`."""

    def __init__(self, state: RunState) -> None:
        self.s = state
        self.stop = threading.Event()
        self.kms_down = threading.Event()
        self.lock = threading.Lock()
        self._keys: frozenset[str] | None = None

    def _open_event(self, msg: dict[str, Any], attrs: dict[str, str]) -> tuple[str | None, bool, str | None]:
        """(plaintext or None, encrypted?, error) of one event as it arrived on the probe queue."""
        body = msg.get("Body", "")
        if attrs.get("Encryption") is None:
            return body, False, None
        if attrs["Encryption"] != envelope.SCHEME:
            return None, True, f"unknown Encryption {attrs['Encryption']!r}"
        ctx = envelope.context(
            attrs.get("EventId", ""),
            self.s.prov.topic_name,
            attrs.get("EntityId", ""),
            attrs.get("EventType", ""),
        )
        try:
            return envelope.open_body(self.s.kms, self._accepted_keys(), ctx, body).decode(), True, None
        except (envelope.EnvelopeError, UnicodeDecodeError) as exc:
            return None, True, str(exc)

    def _accepted_keys(self) -> frozenset[str]:
        """The key ids an event may be sealed with (asked once; the run's key alone on an error)."""
        if self._keys is None:
            try:
                self._keys = envelope.accepted_key_ids(self.s.kms, self.s.prov.kms_key_id)
            except (ClientError, BotoCoreError):
                return frozenset({self.s.prov.kms_key_id})
        return self._keys

    def poll(self, wait: int = 1) -> int:
        """One ReceiveMessage on the probe queue (long poll ``wait`` seconds): each event is opened,
        handed to the event mapper (which records ``wire`` / ``effect`` ops and violations) and
        deleted; an effect's command id joins ``effects_seen``. An AWS error counts as nothing
        received (after 0.5 s). Returns how many messages were received."""
        try:
            resp = self.s.sqs.receive_message(
                QueueUrl=self.s.prov.probe_queue_url,
                MaxNumberOfMessages=10,
                WaitTimeSeconds=wait,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
        except (ClientError, BotoCoreError):
            time.sleep(0.5)
            return 0
        msgs = resp.get("Messages", [])
        for msg in msgs:
            attrs = {k: v.get("StringValue", "") for k, v in (msg.get("MessageAttributes") or {}).items()}
            plaintext, encrypted, error = self._open_event(msg, attrs)
            before = len(self.s.history)
            system = msg.get("Attributes") or {}
            sent_ms = system.get("SentTimestamp")
            self.s.mapper.observe(
                raw_body=msg.get("Body", ""),
                attributes=attrs,
                plaintext=plaintext,
                encrypted=encrypted,
                decrypt_error=error,
                message_id=msg["MessageId"],
                sent_at=int(sent_ms) / 1000.0 if sent_ms and str(sent_ms).isdigit() else None,
                dedup_id=system.get("MessageDeduplicationId"),
                group_id=system.get("MessageGroupId"),
            )
            for op in self.s.history.ops[before:]:
                if op.f == "effect":
                    self.s.effects_seen.add(str(op.value.get("command_id")))
            self.s.last_progress = time.monotonic()
            with contextlib.suppress(ClientError, BotoCoreError):
                self.s.sqs.delete_message(
                    QueueUrl=self.s.prov.probe_queue_url, ReceiptHandle=msg["ReceiptHandle"]
                )
        return len(msgs)

    def loop(self) -> None:
        """Poll the probe until stopped; paused while the run's KMS key is disabled (events cannot
        be opened then: they wait in the probe queue)."""
        while not self.stop.is_set():
            with self.lock:
                paused = self.kms_down.is_set()
                if not paused:
                    self.poll()
            if paused:
                time.sleep(0.25)

    def drain(self) -> None:
        """Poll until three polls in a row (1 s long polls) receive nothing: every event published
        so far has been recorded."""
        empty = 0
        while empty < 3:
            empty = 0 if self.poll(wait=1) else empty + 1
