"""One catalog of hostile inputs, as data (``flowgate hostile list``, ``docs/hostile.md``).

:data:`CATALOG` maps a kind's name to a :class:`HostileKind`: its category, a one-line
description, a ``transform`` that derives the hostile SQS message from a valid one through a
:class:`HostileContext`, the encryption it needs (``required`` / ``forbidden`` / ``any``) and the
documented outcome of a *correct* consumer -- :class:`DeadLetter` with one of the agreed
``DeadLetterReason`` codes, :class:`Applied` (valid after all, with the reason),
:class:`BusinessDeadLetter` (decodes; the domain refuses it) or :class:`Refused` (SQS refuses the
send). The simulator (``Simulation.send_poison``, ``--faults poison=...``), the confidentiality
checker's integrity kinds and the gate all draw from it. :mod:`flowgate.harness.hostile_strategies`
composes structured mutations that reach messages no entry names.
"""

from __future__ import annotations

from collections.abc import Mapping

from . import mutations
from .catalog import CATALOG
from .core import (
    REASON_CODES,
    AnyDeadLetter,
    Applied,
    BasicContext,
    BusinessDeadLetter,
    DeadLetter,
    HostileContext,
    HostileKind,
    Outcome,
    Refused,
    Unavailable,
    WireMessage,
    binding_of,
    context_for,
    seal_bytes,
)
from .model import carried_identity, expected_outcome, judge
from .send import SentHostile, send_hostile

#: Kinds whose only defence is the envelope's integrity check (a broken check lets them take
#: effect): the envelope/key/destination kinds dead-lettered as ``DecryptionError`` that carry a
#: well-formed command inside.
INTEGRITY_KINDS: frozenset[str] = frozenset(
    {
        "tampered",
        "wrong_key",
        "swapped_aad",
        "env_keyid_relabelled",
        "sealed_for_view_queue",
        "env_ciphertext_of_other_message",
    }
)


def kinds(*, encrypted: bool, fifo: bool | None = None) -> list[HostileKind]:
    """Every catalog kind that can be sent on a bus with this encryption (and queue type)."""
    return [k for k in CATALOG.values() if k.applies(encrypted=encrypted, fifo=fifo)]


def get(name: str) -> HostileKind:
    """The kind named ``name``; ``ValueError`` listing the known names otherwise."""
    try:
        return CATALOG[name]
    except KeyError:
        raise ValueError(f"unknown hostile kind {name!r}; see `flowgate hostile list`") from None


def resolve(name: str) -> HostileKind:
    """A catalog kind, or the generated kind of a ``~`` mutation spec (:mod:`.mutations`)."""
    if not name.startswith("~"):
        return get(name)
    parsed = mutations.parse(name)
    return HostileKind(
        name,
        "generated",
        "structured mutation " + name,
        mutations.transform(name),
        "required" if mutations.needs_encryption(parsed) else "any",
        AnyDeadLetter("decided per message by the outcome model (flowgate.harness.hostile.model)"),
    )


def reason_code(reason: str) -> str | None:
    """The code of a ``DeadLetterReason`` value (``"<Code>: <detail>"``) if it is an agreed one."""
    code = reason.split(":", 1)[0].strip()
    return code if code in REASON_CODES else None


def render_list(catalog: Mapping[str, HostileKind] = CATALOG) -> str:
    """The plain-text listing of ``flowgate hostile list``."""
    rows = [("kind", "category", "encryption", "queue", "outcome", "description")]
    rows += [
        (k.name, k.category, k.encryption, k.queue, str(k.outcome), k.description) for k in catalog.values()
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = ["  ".join(r[i].ljust(widths[i]) for i in range(5)) + "  " + r[5] for r in rows]
    return "\n".join([*lines, f"{len(catalog)} kinds"])


__all__ = [
    "CATALOG",
    "INTEGRITY_KINDS",
    "REASON_CODES",
    "AnyDeadLetter",
    "Applied",
    "BasicContext",
    "BusinessDeadLetter",
    "DeadLetter",
    "HostileContext",
    "HostileKind",
    "Outcome",
    "Refused",
    "SentHostile",
    "Unavailable",
    "WireMessage",
    "binding_of",
    "carried_identity",
    "context_for",
    "expected_outcome",
    "get",
    "judge",
    "kinds",
    "mutations",
    "reason_code",
    "render_list",
    "resolve",
    "seal_bytes",
    "send_hostile",
]
