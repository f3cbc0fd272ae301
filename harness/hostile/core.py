"""The data types of the hostile-input catalog and the helpers its transforms are built from.

A *kind* derives one hostile SQS message from a *valid* one (:class:`WireMessage`) through a
:class:`HostileContext`, which supplies everything that is not a pure function of the valid
message: sealing (KMS envelope), an identity already used by a valid command, randomness. The
transforms import nothing from the simulator, so the gate (real SQS/LocalStack) can use them
with its own context.
"""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from flowgate.reference.dispatchers import message_attributes
from flowgate.reference.domain.orders import OrderPlaced, PlaceOrder
from flowgate.reference.envelope import ENCRYPTION_MARKER, VERSION, MessageBinding
from flowgate.reference.messages import Command, Event, encode, event_for

Encryption = Literal["required", "forbidden", "any"]
QueueKind = Literal["fifo", "standard", "any"]

#: The agreed ``DeadLetterReason`` codes (``reason`` of the ``flowgate.reference.errors.MessageError``
#: subclasses); a dead-lettered hostile message must carry one of them.
REASON_CODES: tuple[str, ...] = (
    "DecodeError",
    "UnknownMessageType",
    "MissingAttribute",
    "OversizedMessage",
    "DecryptionError",
    "IdempotencyConflict",
)


@dataclass(frozen=True)
class DeadLetter:
    """A correct consumer forwards the message to the queue's DLQ with ``DeadLetterReason`` =
    ``"<reason>: <detail>"`` (after ``max_receive_count`` receives) and deletes it."""

    reason: str

    def __post_init__(self) -> None:
        if self.reason not in REASON_CODES:
            raise ValueError(f"unknown dead-letter reason {self.reason!r}")

    def __str__(self) -> str:
        return f"DeadLetter({self.reason})"


@dataclass(frozen=True)
class Applied:
    """The message is valid after all: it takes effect exactly once (``why`` says why)."""

    why: str

    def __str__(self) -> str:
        return "Applied"


@dataclass(frozen=True)
class BusinessDeadLetter:
    """The message decodes, and the domain refuses it: recorded in the business dead-letter store."""

    why: str

    def __str__(self) -> str:
        return "BusinessDeadLetter"


@dataclass(frozen=True)
class Refused:
    """SQS itself refuses the send (e.g. ``InvalidMessageContents``): nothing reaches a consumer."""

    why: str

    def __str__(self) -> str:
        return "Refused"


@dataclass(frozen=True)
class AnyDeadLetter:
    """Dead-lettered with one of the agreed reason codes (the outcome model does not say which):
    the outcome of a generated mutation the decode rules reject."""

    why: str
    reason: str = "*"

    def __str__(self) -> str:
        return "DeadLetter(*)"


Outcome = DeadLetter | Applied | BusinessDeadLetter | Refused | AnyDeadLetter


@dataclass(frozen=True)
class WireMessage:
    """One SQS message as sent (``attributes`` in the SQS ``MessageAttributes`` shape)."""

    body: str
    attributes: dict[str, dict[str, Any]]
    group_id: str | None
    dedup_id: str | None
    target: str = "commands"  # "commands" (the command queue) or "views" (a view queue)
    #: the JSON text inside (before sealing), when the transform knows it (for the outcome model)
    plaintext: str | None = None
    #: a generated mutation changed the envelope after sealing (edits that cancel out do not count)
    envelope_edited: bool = False


class Unavailable(Exception):
    """The context cannot supply what the kind needs (e.g. no command has been applied yet)."""


class HostileContext(Protocol):
    """What a transform may use. ``valid`` is a valid command message (sealed when ``encrypted``)
    of ``command`` (JSON text ``plaintext``) for ``queue``; ``event`` is a valid event that
    ``command`` raises (for the routing kinds)."""

    valid: WireMessage
    command: Command
    event: Event
    plaintext: str
    encrypted: bool
    queue: str
    views_queue: str
    rng: random.Random

    def seal(
        self,
        plaintext: str | bytes,
        *,
        destination: str | None = None,
        key: str | None = None,
        attributes: dict[str, dict[str, Any]] | None = None,
    ) -> str:
        """The envelope of ``plaintext`` (bytes are sealed as they are, e.g. invalid UTF-8),
        bound to the identity the ``attributes`` name (default: the valid message's) and sealed
        for ``destination`` (default ``queue``) under ``key`` (default: the bus key)."""
        ...

    def known_event_id(self) -> str | None:
        """The eventId of a valid command that has already taken effect."""
        ...

    def pending(self) -> tuple[str, str] | None:
        """(eventId, MessageGroupId) of a valid command sent but not yet applied (FIFO)."""
        ...

    def other_key(self) -> str:
        """The ARN of an existing KMS key that is not the bus key."""
        ...


@dataclass(frozen=True)
class HostileKind:
    """One hostile input: how to derive it from a valid message and what a correct consumer does."""

    name: str
    category: str
    description: str
    transform: Callable[[HostileContext], WireMessage]
    encryption: Encryption
    outcome: Outcome
    queue: QueueKind = "any"

    def applies(self, *, encrypted: bool, fifo: bool | None = None) -> bool:
        """Whether this kind can be sent on a bus with this encryption (and queue type)."""
        if self.encryption == "required" and not encrypted:
            return False
        if self.encryption == "forbidden" and encrypted:
            return False
        return fifo is None or self.queue == "any" or (self.queue == "fifo") == fifo


# ----------------------------------------------------------------------------- a context
@dataclass
class BasicContext:
    """A :class:`HostileContext` over a boto3-shaped KMS client (the simulator's or a real one).

    Nonces come from ``rng`` so a seeded run is reproducible."""

    valid: WireMessage
    command: Command
    event: Event
    plaintext: str
    encrypted: bool
    queue: str
    views_queue: str
    rng: random.Random
    kms: Any = None
    key_id: str | None = None
    known: Callable[[], str | None] = field(default=lambda: None)
    pending_fn: Callable[[], tuple[str, str] | None] = field(default=lambda: None)
    other_key_fn: Callable[[], str] | None = None

    def seal(
        self,
        plaintext: str | bytes,
        *,
        destination: str | None = None,
        key: str | None = None,
        attributes: dict[str, dict[str, Any]] | None = None,
    ) -> str:
        if self.kms is None or self.key_id is None:
            raise Unavailable("no KMS key: this context cannot seal")
        binding = binding_of(attributes or self.valid.attributes, self.command, destination or self.queue)
        data = plaintext.encode("utf-8", "surrogatepass") if isinstance(plaintext, str) else plaintext
        return seal_bytes(self.kms, key or self.key_id, data, binding, self.rng.randbytes(12))

    def known_event_id(self) -> str | None:
        return self.known()

    def pending(self) -> tuple[str, str] | None:
        return self.pending_fn()

    def other_key(self) -> str:
        if self.other_key_fn is None:
            raise Unavailable("no second KMS key")
        return self.other_key_fn()


def context_for(
    command: Command,
    *,
    encrypted: bool,
    queue: str,
    views_queue: str,
    group_id: str | None,
    dedup_id: str | None,
    rng: random.Random,
    kms: Any = None,
    key_id: str | None = None,
    known: Callable[[], str | None] = lambda: None,
    pending: Callable[[], tuple[str, str] | None] = lambda: None,
    other_key: Callable[[], str] | None = None,
) -> BasicContext:
    """The context of one hostile message derived from ``command`` (a fresh ``PlaceOrder`` of its
    own entity): ``valid`` is the command exactly as the reference's dispatcher sends it (body and
    attributes; sealed for ``queue`` with ``key_id`` when ``encrypted``), ``event`` the
    ``OrderPlaced`` it raises. The one builder the simulator, the gate and the LocalStack
    scenarios share, so a kind means the same message everywhere."""
    p = command.payload
    if not isinstance(p, PlaceOrder):
        raise TypeError(f"hostile messages derive from a PlaceOrder, not {command.name}")
    event = event_for(command, 0, OrderPlaced(p.customer_id, p.sku, p.quantity, p.amount_cents))
    plaintext = encode(command)
    attrs = message_attributes(command, encrypted=encrypted, traceparent=None)
    valid = WireMessage(plaintext, attrs, group_id, dedup_id, plaintext=plaintext)
    ctx = BasicContext(
        valid=valid,
        command=command,
        event=event,
        plaintext=plaintext,
        encrypted=encrypted,
        queue=queue,
        views_queue=views_queue,
        rng=rng,
        kms=kms if encrypted else None,
        key_id=key_id if encrypted else None,
        known=known,
        pending_fn=pending,
        other_key_fn=other_key,
    )
    if encrypted:
        ctx.valid = replace(valid, body=ctx.seal(plaintext))
    return ctx


def binding_of(attributes: dict[str, dict[str, Any]], command: Command, destination: str) -> MessageBinding:
    """The envelope binding a consumer derives from ``attributes`` (falling back to ``command``)."""

    def get(name: str, default: str) -> str:
        value = attributes.get(name, {}).get("StringValue")
        return value if isinstance(value, str) else default

    kind = get("CommandType", get("EventType", command.name))
    return MessageBinding(
        get("EventId", command.event_id), destination, get("EntityId", command.entity_id), kind
    )


def seal_bytes(kms: Any, key_id: str, data: bytes, binding: MessageBinding, nonce: bytes) -> str:
    """Seal raw bytes exactly as :class:`flowgate.reference.envelope.KmsEnvelopeCipher` seals text."""
    resp = kms.generate_data_key(KeyId=key_id, KeySpec="AES_256", EncryptionContext=binding.context())
    used = str(resp["KeyId"])
    sealed = AESGCM(bytes(resp["Plaintext"])).encrypt(nonce, data, binding.aad(used))
    env = {
        "Version": VERSION,
        "KeyId": used,
        "Destination": binding.destination,
        "EncryptedDataKey": b64(resp["CiphertextBlob"]),
        "Nonce": b64(nonce),
        "Tag": b64(sealed[-16:]),
        "Ciphertext": b64(sealed[:-16]),
    }
    return b64(json.dumps(env, separators=(",", ":")).encode("ascii"))


# ----------------------------------------------------------------------------- transform helpers
def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def sattr(value: str) -> dict[str, Any]:
    return {"DataType": "String", "StringValue": value}


def dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def wire_obj(ctx: HostileContext) -> dict[str, Any]:
    """A fresh copy of the valid message's JSON object."""
    obj: dict[str, Any] = json.loads(ctx.plaintext)
    return obj


def attrs_of(ctx: HostileContext) -> dict[str, dict[str, Any]]:
    return {k: dict(v) for k, v in ctx.valid.attributes.items()}


def finish(
    ctx: HostileContext,
    text: str | bytes,
    attributes: dict[str, dict[str, Any]] | None = None,
    **changes: Any,
) -> WireMessage:
    """The valid message with plaintext ``text`` (sealed when the bus is encrypted, bound to
    ``attributes``) and ``attributes``; ``changes`` replace other :class:`WireMessage` fields."""
    attrs = attributes if attributes is not None else attrs_of(ctx)
    destination = changes.pop("destination", None)
    changes.setdefault("plaintext", text if isinstance(text, str) else None)
    if ctx.encrypted:
        body = ctx.seal(text, attributes=attrs, destination=destination)
    else:
        body = text if isinstance(text, str) else text.decode("utf-8", "replace")
    return replace(ctx.valid, body=body, attributes=attrs, **changes)


def envelope(ctx: HostileContext) -> dict[str, Any]:
    """The valid message's envelope as raw JSON fields (no validation)."""
    env: dict[str, Any] = json.loads(base64.b64decode(ctx.valid.body))
    return env


def with_envelope(ctx: HostileContext, env: Any, *, raw: str | None = None) -> WireMessage:
    text = raw if raw is not None else json.dumps(env, separators=(",", ":"))
    return replace(ctx.valid, body=b64(text.encode("utf-8")))


__all__ = [
    "ENCRYPTION_MARKER",
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
    "Unavailable",
    "WireMessage",
    "attrs_of",
    "binding_of",
    "dumps",
    "envelope",
    "finish",
    "sattr",
    "seal_bytes",
    "wire_obj",
    "with_envelope",
]
