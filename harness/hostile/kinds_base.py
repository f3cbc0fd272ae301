"""The hostile catalog's building blocks: the registry every kind is appended to when its module
is imported (:data:`REGISTERED`, in definition order -- the catalog's order, which the gate's
seeded selection depends on), the :func:`kind` decorators, the expected outcomes and the JSON
helpers the kinds share. The kinds themselves are in :mod:`.kinds_payload` (what the body says)
and :mod:`.kinds_wire` (how the message is carried); :mod:`.catalog` imports both, in that order.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from .core import (
    DeadLetter,
    Encryption,
    HostileContext,
    HostileKind,
    Outcome,
    QueueKind,
    WireMessage,
    attrs_of,
    dumps,
    finish,
    sattr,
    wire_obj,
)

DEEP = 5000  # nesting levels that exhaust Python's recursive JSON parser (and any recursive walk)
MAX_BODY = 256 * 1024
INT64_MAX = 2**63 - 1

Transform = Callable[[HostileContext], WireMessage]
#: every kind, in definition order (the decorators append here)
REGISTERED: list[HostileKind] = []

DECODE, UNKNOWN, MISSING = (
    DeadLetter("DecodeError"),
    DeadLetter("UnknownMessageType"),
    DeadLetter("MissingAttribute"),
)
OVERSIZED, DECRYPT, CONFLICT = (
    DeadLetter("OversizedMessage"),
    DeadLetter("DecryptionError"),
    DeadLetter("IdempotencyConflict"),
)


def kind(
    name: str,
    category: str,
    description: str,
    outcome: Outcome,
    encryption: Encryption = "any",
    queue: QueueKind = "any",
) -> Callable[[Transform], Transform]:
    def register(transform: Transform) -> Transform:
        REGISTERED.append(HostileKind(name, category, description, transform, encryption, outcome, queue))
        return transform

    return register


def text_kind(
    name: str,
    category: str,
    description: str,
    outcome: Outcome,
    edit: Callable[[str], str],
    encryption: Encryption = "any",
) -> None:
    """A kind that rewrites the JSON text (the plaintext, sealed afterwards on an encrypted bus)."""
    kind(name, category, description, outcome, encryption)(lambda ctx: finish(ctx, edit(ctx.plaintext)))


def obj_kind(
    name: str,
    category: str,
    description: str,
    outcome: Outcome,
    edit: Callable[[dict[str, Any]], Any],
    encryption: Encryption = "any",
) -> None:
    """A kind that edits the parsed JSON object in place (``edit`` returns nothing)."""

    def transform(ctx: HostileContext) -> WireMessage:
        obj = wire_obj(ctx)
        edit(obj)
        return finish(ctx, dumps(obj))

    kind(name, category, description, outcome, encryption)(transform)


def set_path(obj: dict[str, Any], path: str, value: Any) -> None:
    *head, last = path.split(".")
    for part in head:
        obj = obj[part]
    obj[last] = value


def del_path(obj: dict[str, Any], path: str) -> None:
    *head, last = path.split(".")
    for part in head:
        obj = obj[part]
    del obj[last]


def nested(levels: int, inner: str = "1") -> str:
    return "[" * levels + inner + "]" * levels


def identity(
    ctx: HostileContext,
    obj: dict[str, Any],
    *,
    entity: str | None = None,
    event_id: Any = None,
    seq: Any = None,
    text: str | None = None,
    omit: tuple[str, ...] = (),
) -> WireMessage:
    """Body and attributes agree on a changed identity (entity id, event id, sequence number)."""
    attrs = attrs_of(ctx)
    if entity is not None:
        obj["entity"]["id"] = entity
        attrs["EntityId"] = sattr(entity)
    if event_id is not None:
        obj["metadata"]["eventId"] = event_id
        attrs["EventId"] = sattr(str(event_id))
    if seq is not None:
        obj["metadata"]["sequenceNo"] = seq
        attrs["SequenceNo"] = sattr(json.dumps(seq) if not isinstance(seq, str) else seq)
    for name in omit:
        attrs.pop(name, None)
    return finish(ctx, text if text is not None else dumps(obj), attrs)
