"""Confidentiality on the wire and integrity of encrypted messages."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from flowgate.harness.history import Op
from flowgate.harness.hostile import INTEGRITY_KINDS as _CATALOG_INTEGRITY_KINDS

from .model import Anomaly, HistoryLike, Verdict, as_ops, index_sends, poison_ids, sid, verdict

NAME = "confidentiality_integrity"

#: Poison kinds that only a broken integrity check lets through (from the hostile-input catalog).
INTEGRITY_KINDS: frozenset[str] = _CATALOG_INTEGRITY_KINDS


def confidentiality_integrity(
    history: HistoryLike,
    *,
    require_encryption: bool = False,
    integrity_kinds: Collection[str] = INTEGRITY_KINDS,
) -> Verdict:
    """No plaintext on an encrypted wire; tampered ciphertext never produces an effect.

    * ``plaintext-on-wire`` -- a ``wire`` sample flagged ``encrypted`` whose body contains one of
      its ``plaintext_markers``;
    * ``unencrypted-wire`` -- (only with ``require_encryption``) a ``wire`` sample not encrypted;
    * ``integrity-breach`` -- an ``effect`` or ``project`` op for a poison message of an integrity
      kind (``flowgate.harness.hostile.INTEGRITY_KINDS``: tampered, wrong_key, swapped_aad, ...), linked through the poison's ``command_id`` /
      ``event_id``, through a ``receive`` of its ``message_id`` that decoded a command/event id,
      or through a ``publish`` whose ``causation_id`` is such a command.
      Ids that also belong to a validly sent command are not attributed to the poison.
    """
    ops = as_ops(history)
    kinds = frozenset(integrity_kinds)
    valid_commands = {c for c, command in index_sends(ops).items() if command.status != "fail"}
    anomalies: list[Anomaly] = []
    samples = encrypted = 0
    hostile_by_message: dict[str, Op] = {}
    hostile_command: dict[str, Op] = {}
    hostile_event: dict[str, Op] = {}
    hostile = 0
    for op in ops:
        if op.f == "wire":
            samples += 1
            body = str(op.value.get("body", ""))
            if op.value.get("encrypted") is True:
                encrypted += 1
                markers = [str(m) for m in op.value.get("plaintext_markers") or ()]
                leaked = [m for m in markers if m and m in body]
                if leaked:
                    anomalies.append(
                        Anomaly(
                            "plaintext-on-wire",
                            f"encrypted wire sample #{op.index} ({op.process}) contains plaintext "
                            f"{', '.join(repr(m) for m in leaked)}",
                            (op.index,),
                        )
                    )
            elif require_encryption:
                anomalies.append(
                    Anomaly("unencrypted-wire", f"wire sample is not encrypted: {op.describe()}", (op.index,))
                )
        elif op.f == "poison" and op.type != "fail" and str(op.value.get("kind", "")) in kinds:
            hostile += 1
            for i in poison_ids(op):
                hostile_by_message.setdefault(i, op)
            command_id, event_id = sid(op.value.get("command_id")), sid(op.value.get("event_id"))
            if command_id is not None and command_id not in valid_commands:
                hostile_command.setdefault(command_id, op)
            if event_id is not None:
                hostile_event.setdefault(event_id, op)
        elif op.f == "receive" and op.type == "ok":
            message_id = sid(op.value.get("message_id"))
            source = hostile_by_message.get(message_id) if message_id is not None else None
            if source is None:
                continue
            command_id, event_id = sid(op.value.get("command_id")), sid(op.value.get("event_id"))
            if command_id is not None and command_id not in valid_commands:
                hostile_command.setdefault(command_id, source)
            if event_id is not None:
                hostile_event.setdefault(event_id, source)
        elif op.f == "publish" and op.type == "ok":
            cause, event_id = sid(op.value.get("causation_id")), sid(op.value.get("event_id"))
            if cause is not None and event_id is not None and cause in hostile_command:
                hostile_event.setdefault(event_id, hostile_command[cause])

    # second pass: the links above are complete only once every receive and publish is read
    for op in ops:
        if op.type != "ok" or op.f not in ("effect", "project"):
            continue
        key, table = ("command_id", hostile_command) if op.f == "effect" else ("event_id", hostile_event)
        found = sid(op.value.get(key))
        source = table.get(found) if found is not None else None
        if source is not None:
            anomalies.append(
                Anomaly(
                    "integrity-breach",
                    f"{source.value.get('kind')} poison {source.describe()} produced {op.describe()}",
                    (source.index, op.index),
                )
            )
    stats: dict[str, Any] = {
        "wire_samples": samples,
        "encrypted_samples": encrypted,
        "hostile_poison": hostile,
    }
    return verdict(NAME, anomalies, stats)
