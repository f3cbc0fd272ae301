"""Profiles and the seeded plan of one gate run: orders, their command sequences, the send order,
duplicate resends, poison messages and the fault schedule. The same seed gives the same plan."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from typing import Any, Final

#: Poison kinds the gate sends, with the ``DeadLetterReason`` a correct consumer gives each.
POISON_REASONS: Final[dict[str, str]] = {
    "bad_json": "DecodeError",
    "unknown_type": "UnknownMessageType",
    "missing_attribute": "MissingAttribute",
    "tampered": "DecryptionError",
    "swapped_aad": "DecryptionError",
    "wrong_key": "DecryptionError",
    "moved_ciphertext": "DecryptionError",
    "wrong_destination": "DecryptionError",
}
#: Kinds that need encryption on (all hostile: an effect caused by one is an ``integrity-breach``).
ENCRYPTED_ONLY: Final = frozenset(
    {"tampered", "swapped_aad", "wrong_key", "moved_ciphertext", "wrong_destination"}
)

SEQUENCES: Final[tuple[tuple[str, ...], ...]] = (
    ("PlaceOrder", "AuthorizePayment", "ReserveInventory", "ConfirmOrder"),
    ("PlaceOrder", "AuthorizePayment", "ReserveInventory", "ConfirmOrder"),
    ("PlaceOrder", "CancelOrder"),
    ("PlaceOrder", "AuthorizePayment", "CancelOrder"),
    ("PlaceOrder", "AuthorizePayment", "ReserveInventory", "CancelOrder"),
)
EVENT_OF: Final[dict[str, str]] = {
    "PlaceOrder": "OrderPlaced",
    "AuthorizePayment": "PaymentAuthorized",
    "ReserveInventory": "InventoryReserved",
    "ConfirmOrder": "OrderConfirmed",
    "CancelOrder": "OrderCancelled",
}


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    orders: int
    instances: int
    visibility_timeout: int
    max_receive_count: int
    duplicates: int
    poison: tuple[str, ...]
    kills: int = 0  # SIGKILL + restart of a running instance
    slow_windows: int = 0  # an extra instance with FLOWGATE_HANDLER_DELAY_MS for a while
    slow_kills: int = 0  # as slow_windows, but the slow instance is SIGKILLed mid-handler at the end
    bursts: int = 0  # orders whose commands are all sent in one SendMessageBatch (same group,
    #                                  one receive sees several of them: exposes parallel/out-of-order groups)
    slow_window_seconds: float = 8.0
    send_seconds: float = 4.0  # sends are spread over this long
    settle_timeout: float = 90.0  # how long to wait for every effect and dead letter
    # -- phases on dedicated queues, concurrent with the main workload (contract section 9) --------
    #: heartbeat phase: new orders (one PlaceOrder each) for ONE extra instance on its own queue whose
    #: handler delay exceeds (heartbeat_max_receive + 1) x heartbeat_visibility: only a visibility
    #: heartbeat keeps them out of that queue's DLQ (0 = no phase)
    heartbeat_orders: int = 0
    heartbeat_visibility: int = 2
    #: 1: the first redelivery during the handler (any other receive of the message) already
    #: exceeds it, so SQS's native redrive moves the message on that receive
    heartbeat_max_receive: int = 1
    heartbeat_delay_ms: int = 5000
    #: shutdown phase: new orders sent to ONE extra instance (handler delay) on its own long-VT queue,
    #: SIGTERMed while it holds them; anything still in flight after it exits was abandoned (0 = no phase)
    shutdown_orders: int = 0
    shutdown_visibility: int = 30
    shutdown_delay_ms: int = 3000
    #: transport outages of the main cluster's endpoint (the gate's TCP proxy), each this long
    outages: int = 0
    outage_seconds: float = 12.0


PROFILES: Final[dict[str, Profile]] = {
    "smoke": Profile(
        "smoke",
        orders=6,
        instances=1,
        visibility_timeout=5,
        max_receive_count=3,
        duplicates=2,
        poison=tuple(POISON_REASONS),
        bursts=2,
        send_seconds=2.0,
        settle_timeout=60.0,
    ),
    "standard": Profile(
        "standard",
        orders=16,
        instances=2,
        visibility_timeout=3,
        max_receive_count=5,
        duplicates=4,
        poison=tuple(POISON_REASONS),
        kills=1,
        slow_windows=1,
        slow_kills=1,
        bursts=3,
        send_seconds=8.0,
        settle_timeout=120.0,
        heartbeat_orders=2,
        shutdown_orders=8,
        outages=1,
    ),
    "chaos": Profile(
        "chaos",
        orders=30,
        instances=3,
        visibility_timeout=3,
        max_receive_count=6,
        duplicates=8,
        poison=tuple(POISON_REASONS) * 2,
        kills=4,
        slow_windows=2,
        slow_kills=1,
        bursts=5,
        send_seconds=16.0,
        settle_timeout=180.0,
        heartbeat_orders=3,
        shutdown_orders=8,
        outages=2,
    ),
}


@dataclass(frozen=True, slots=True)
class PlannedCommand:
    command_id: str
    entity_id: str
    seq: int
    command_type: str
    payload: dict[str, Any]
    marker: str  # a secret string in the payload: it must never be seen in clear


@dataclass(frozen=True, slots=True)
class PlannedPoison:
    poison_id: str
    kind: str
    reason: str
    group: str
    command_id: str  # the id inside the hostile body (never validly sent)


@dataclass(frozen=True, slots=True)
class Fault:
    at: float  # seconds after the first send
    kind: str  # kill | slow | slow-kill | outage (instance unused: the whole main cluster)
    instance: int


@dataclass(slots=True)
class Plan:
    seed: int
    profile: Profile
    commands: list[PlannedCommand] = field(default_factory=list)
    #: ("send", command index) | ("dup", command index) | ("poison", poison index) |
    #: ("burst", command index of the order's first command: all its commands in one batch), in send order
    schedule: list[tuple[str, int]] = field(default_factory=list)
    poison: list[PlannedPoison] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    #: phase name ("heartbeat" | "shutdown") -> indexes into ``commands`` of its orders' PlaceOrder
    #: (one command per order; sent by the phase to its own queue, never by ``schedule``)
    phase_orders: dict[str, list[int]] = field(default_factory=dict)


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def payload_for(command_type: str, rng: random.Random, order: dict[str, Any]) -> dict[str, Any]:
    """Payload fields of ``reference/domain/orders.py``, camelCase on the wire (``customer_id`` -> ``customerId``)."""
    if command_type == "PlaceOrder":
        return {
            "customerId": order["customer_id"],
            "sku": order["sku"],
            "quantity": order["quantity"],
            "amountCents": order["amount_cents"],
        }
    if command_type == "AuthorizePayment":
        return {"paymentId": f"pay-{rng.getrandbits(32):08x}", "amountCents": order["amount_cents"]}
    if command_type == "ReserveInventory":
        return {"sku": order["sku"], "quantity": order["quantity"]}
    if command_type == "CancelOrder":
        return {"reason": rng.choice(["customer-request", "fraud-suspected", "out-of-stock"])}
    return {}


def make_plan(profile: Profile, seed: int, run_id: str, *, encrypted: bool, instances: int) -> Plan:
    """The whole run, decided up front from ``seed`` (ids are seeded too, scoped by ``run_id``)."""
    rng = random.Random(seed)
    plan = Plan(seed, profile)
    pending: list[list[int]] = []
    for n in range(profile.orders):
        entity = f"order-{run_id}-{n:03d}"
        marker = f"cust-secret-{rng.getrandbits(48):012x}"
        order = {
            "customer_id": marker,
            "sku": f"sku-{rng.randrange(1, 6)}",
            "quantity": rng.randrange(1, 5),
            "amount_cents": rng.randrange(500, 50_000),
        }
        indexes = []
        for seq, command_type in enumerate(rng.choice(SEQUENCES), start=1):
            plan.commands.append(
                PlannedCommand(
                    _uuid(rng), entity, seq, command_type, payload_for(command_type, rng, order), marker
                )
            )
            indexes.append(len(plan.commands) - 1)
        pending.append(indexes)
    # interleave entities at random, keeping each entity's commands in sequence order
    sent_of: dict[int, int] = {}
    while any(pending):
        queue = rng.choice([q for q in pending if q])
        index = queue.pop(0)
        plan.schedule.append(("send", index))
        sent_of[index] = len(plan.schedule) - 1
    # duplicate resends: a PlaceOrder again, after the order's second command (a late resend)
    places = [i for i, c in enumerate(plan.commands) if c.seq == 1]
    for index in rng.sample(places, min(profile.duplicates, len(places))):
        entity = plan.commands[index].entity_id
        later = [j for j, c in enumerate(plan.commands) if c.entity_id == entity and c.seq == 2]
        after = sent_of[later[0]] if later else sent_of[index]
        plan.schedule.insert(after + 1, ("dup", index))
        sent_of = {i: pos + (1 if pos > after else 0) for i, pos in sent_of.items()}
    # bursts: a few orders without a resend send all their commands at once (one SendMessageBatch);
    # a separate generator so the rest of a seed's plan is what it was before bursts existed
    burst_rng = random.Random(f"{seed}:bursts")
    resent = {plan.commands[i].entity_id for kind, i in plan.schedule if kind == "dup"}
    firsts = [i for i, c in enumerate(plan.commands) if c.seq == 1 and c.entity_id not in resent]
    for first in sorted(burst_rng.sample(firsts, min(profile.bursts, len(firsts)))):
        entity = plan.commands[first].entity_id
        members = {j for j, c in enumerate(plan.commands) if c.entity_id == entity}
        at = plan.schedule.index(("send", first))
        plan.schedule = [e for e in plan.schedule if not (e[0] == "send" and e[1] in members)]
        plan.schedule.insert(at, ("burst", first))
    kinds = [k for k in profile.poison if encrypted or k not in ENCRYPTED_ONLY]
    for number, kind in enumerate(kinds):
        poison_id = f"poison-{run_id}-{number:02d}-{kind}"
        plan.poison.append(PlannedPoison(poison_id, kind, POISON_REASONS[kind], poison_id, _uuid(rng)))
        plan.schedule.insert(rng.randrange(0, len(plan.schedule) + 1), ("poison", number))
    horizon = profile.send_seconds + 4.0
    for _ in range(profile.kills):
        plan.faults.append(Fault(round(rng.uniform(1.0, horizon), 2), "kill", rng.randrange(instances)))
    for _ in range(profile.slow_windows):
        plan.faults.append(
            Fault(round(rng.uniform(0.5, max(1.0, profile.send_seconds / 2)), 2), "slow", instances)
        )
    fault_rng = random.Random(f"{seed}:slow-kills")
    for _ in range(profile.slow_kills):
        plan.faults.append(
            Fault(
                round(fault_rng.uniform(0.5, max(1.0, profile.send_seconds / 2)), 2),
                "slow-kill",
                instances + 1,
            )
        )
    # outages come after every other fault (the nemesis runs faults one after another), so no
    # instance is booting or in a slow window when the endpoint goes away
    for number in range(profile.outages):
        outage_at = horizon + 1.0 + number * (profile.outage_seconds + 5.0)
        plan.faults.append(Fault(round(outage_at, 2), "outage", -1))
    plan.faults.sort(key=lambda f: f.at)
    # phase orders: their own generator, so the main workload of a seed is what it was before phases
    phase_rng = random.Random(f"{seed}:phases")
    for phase, count in (("heartbeat", profile.heartbeat_orders), ("shutdown", profile.shutdown_orders)):
        plan.phase_orders[phase] = []
        for n in range(count):
            marker = f"cust-secret-{phase_rng.getrandbits(48):012x}"
            order = {
                "customer_id": marker,
                "sku": f"sku-{phase_rng.randrange(1, 6)}",
                "quantity": phase_rng.randrange(1, 5),
                "amount_cents": phase_rng.randrange(500, 50_000),
            }
            payload = payload_for("PlaceOrder", phase_rng, order)
            entity = f"order-{run_id}-{phase[:2]}{n:02d}"
            plan.commands.append(PlannedCommand(_uuid(phase_rng), entity, 1, "PlaceOrder", payload, marker))
            plan.phase_orders[phase].append(len(plan.commands) - 1)
    return plan
