"""Profiles and the seeded plan of one gate run: orders, their command sequences, the send order,
duplicate resends, hostile messages (drawn from the catalog ``harness/hostile.py``) and the fault
schedule. The same seed gives the same plan."""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

#: Contract v1.2 section 6: the native ``RedrivePolicy`` of every gate command queue (except the
#: heartbeat phase's, which tests exactly that redrive) has ``maxReceiveCount`` =
#: ``FLOWGATE_MAX_RECEIVE_COUNT`` + this (passed as ``FLOWGATE_REDRIVE_MAX_RECEIVE_COUNT``), so a
#: consumer forwards poison itself, with a reason, before SQS's reason-less backstop moves it --
#: and a consumer that keeps receiving through a 10 x VT dependency outage (no back-off) exceeds it.
REDRIVE_HEADROOM: Final = 3
#: Outage length in visibility timeouts (KMS disabled; SQS/SNS endpoint unreachable).
OUTAGE_VTS: Final = 10

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
    "GetOrder": "OrderState",
}
#: contract v1.3: the read command (an ordinary command of the order's group that changes nothing)
READ: Final = "GetOrder"


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    orders: int
    instances: int
    visibility_timeout: int
    max_receive_count: int
    duplicates: int
    #: hostile kinds sent: ``None`` = every catalog kind applicable to the run (encryption on or
    #: off), each once; ``n`` = a handful: one kind per expected outcome (each DeadLetter code, and
    #: Applied), then seeded picks up to ``n``
    hostile: int | None = None
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
    #: the phase queue's poison threshold; its native redrive is this + 1 (= 2: an implementation
    #: may require headroom, contract v1.2), so the second redelivery during the handler (any other
    #: receive of the message: the gate's own lapse probe receives with visibility 0) exceeds it
    #: and SQS's native redrive moves the message on that receive
    heartbeat_max_receive: int = 1
    heartbeat_delay_ms: int = 5000
    #: shutdown phase: new orders sent to ONE extra instance (handler delay) on its own long-VT queue,
    #: SIGTERMed while it holds them; anything still in flight after it exits was abandoned (0 = no phase)
    shutdown_orders: int = 0
    shutdown_visibility: int = 30
    shutdown_delay_ms: int = 3000
    #: transport outages of the main cluster's endpoint (the gate's TCP proxy), each
    #: ``OUTAGE_VTS`` x visibility timeout long
    outages: int = 0
    #: KMS outages (encrypted runs): the gate disables the run's key for ``OUTAGE_VTS`` x VT, then
    #: (v1.4) cuts the implementation's KMS endpoint (``FLOWGATE_KMS_ENDPOINT_URL``, a proxy of its
    #: own) for ``OUTAGE_VTS`` x VT while SQS and SNS keep working
    kms_outages: int = 0
    #: new orders (one PlaceOrder each) sent in the middle of every outage (sealed before it)
    outage_orders: int = 3

    @property
    def outage_seconds(self) -> float:
        """How long one outage (transport or KMS) lasts: ``OUTAGE_VTS`` x the visibility timeout."""
        return float(OUTAGE_VTS * self.visibility_timeout)

    @property
    def redrive_max_receive_count(self) -> int:
        """The native RedrivePolicy's ``maxReceiveCount`` of the main command queue."""
        return self.max_receive_count + REDRIVE_HEADROOM


#: shutdown phase (v1.4): how many of the batched orders also get a second command in the batch
SHUTDOWN_QUEUED: Final = 3

PROFILES: Final[dict[str, Profile]] = {
    "smoke": Profile(
        "smoke",
        orders=6,
        instances=1,
        visibility_timeout=5,
        max_receive_count=3,
        duplicates=2,
        hostile=10,
        bursts=2,
        send_seconds=2.0,
        settle_timeout=60.0,
    ),
    # smoke's workload with every applicable catalog kind: the decode rules alone, fast
    "hostile": Profile(
        "hostile",
        orders=6,
        instances=1,
        visibility_timeout=5,
        max_receive_count=3,
        duplicates=2,
        bursts=2,
        send_seconds=2.0,
        settle_timeout=120.0,
    ),
    "standard": Profile(
        "standard",
        orders=16,
        instances=2,
        visibility_timeout=3,
        max_receive_count=5,
        duplicates=4,
        kills=1,
        slow_windows=1,
        slow_kills=1,
        bursts=3,
        send_seconds=8.0,
        settle_timeout=120.0,
        heartbeat_orders=2,
        shutdown_orders=8,
        outages=1,
        kms_outages=1,
    ),
    "chaos": Profile(
        "chaos",
        orders=30,
        instances=3,
        visibility_timeout=3,
        max_receive_count=6,
        duplicates=8,
        kills=4,
        slow_windows=2,
        slow_kills=1,
        bursts=5,
        send_seconds=16.0,
        settle_timeout=180.0,
        heartbeat_orders=3,
        shutdown_orders=8,
        outages=2,
        kms_outages=1,
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
class PlannedHostile:
    """One hostile message: catalog kind ``kind`` applied to ``command`` (a fresh PlaceOrder of its
    own entity = its own message group, so it never blocks an order)."""

    hostile_id: str  # also the message's MessageDeduplicationId
    kind: str
    #: the expected outcome: a ``DeadLetterReason`` code, or ``""`` (Applied: takes effect once)
    reason: str
    command: PlannedCommand

    @property
    def group(self) -> str:
        return self.command.entity_id


def select_hostile(profile: Profile, kinds: Sequence[tuple[str, str]], seed: int) -> list[str]:
    """The kinds a run sends, in catalog order. ``kinds`` = (name, expected outcome) of every kind
    applicable to the run, in catalog order (outcome: a DeadLetter code, or ``""`` for Applied).
    ``profile.hostile`` None = all; else the first kind of each distinct outcome, then seeded picks
    of the rest up to ``profile.hostile``."""
    names = [name for name, _ in kinds]
    if profile.hostile is None or profile.hostile >= len(names):
        return names
    chosen: list[str] = []
    outcomes: set[str] = set()
    for name, outcome in kinds:
        if outcome not in outcomes and len(chosen) < profile.hostile:
            outcomes.add(outcome)
            chosen.append(name)
    rest = [n for n in names if n not in chosen]
    chosen += random.Random(f"{seed}:hostile").sample(rest, min(len(rest), profile.hostile - len(chosen)))
    return [n for n in names if n in chosen]


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
    #: ("send", command index) | ("dup", command index) | ("hostile", hostile index) |
    #: ("burst", command index of the order's first command: all its commands in one batch), in send order
    schedule: list[tuple[str, int]] = field(default_factory=list)
    hostile: list[PlannedHostile] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    #: phase name ("heartbeat" | "shutdown" | "outage-<n>" | "kms-outage-<n>") -> indexes into
    #: ``commands`` of its orders' PlaceOrder (one command per order; sent by the phase -- to its own
    #: queue, or for an outage to the main queue during the outage -- never by ``schedule``)
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


def make_plan(
    profile: Profile,
    seed: int,
    run_id: str,
    *,
    encrypted: bool,
    instances: int,
    hostile_kinds: Sequence[tuple[str, str]] = (),
) -> Plan:
    """The whole run, decided up front from ``seed`` (ids are seeded too, scoped by ``run_id``).
    ``hostile_kinds``: (name, expected outcome) of every catalog kind applicable to the run (see
    :func:`select_hostile`); ``encrypted`` decides whether KMS outages are planned."""
    rng = random.Random(seed)
    read_rng = random.Random(f"{seed}:reads")
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
        writes = rng.choice(SEQUENCES)
        # contract v1.3 reads (Jepsen's list-append reads): one after a seeded write, one after the
        # last; their own generator (ids and places), so the writes of a seed are what they were
        after = read_rng.randrange(1, len(writes))
        seq = 0
        for position, command_type in enumerate(writes, start=1):
            for kind in (command_type, *((READ,) if position in (after, len(writes)) else ())):
                seq += 1
                command_id = _uuid(rng) if kind != READ else _uuid(read_rng)
                payload = payload_for(kind, rng, order) if kind != READ else {}
                plan.commands.append(PlannedCommand(command_id, entity, seq, kind, payload, marker))
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
    outcome_of = dict(hostile_kinds)
    hostile_rng = random.Random(f"{seed}:hostile-ids")
    for number, kind in enumerate(select_hostile(profile, hostile_kinds, seed)):
        hostile_id = f"hostile-{run_id}-{number:02d}-{kind}"[:128]
        # the catalog's transforms edit the simulator's poison order in place ('"CUST', quantity 1):
        # the same shape here, with the customer id as the secret marker
        marker = f"CUST-POISON-{hostile_rng.getrandbits(48):012x}"
        order = {"customer_id": marker, "sku": "SKU-POISON", "quantity": 1, "amount_cents": 100}
        command = PlannedCommand(
            _uuid(hostile_rng),
            f"order-{run_id}-h{number:02d}",
            1,
            "PlaceOrder",
            payload_for("PlaceOrder", hostile_rng, order),
            marker,
        )
        plan.hostile.append(PlannedHostile(hostile_id, kind, outcome_of[kind], command))
        plan.schedule.insert(rng.randrange(0, len(plan.schedule) + 1), ("hostile", number))
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
    # instance is booting or in a slow window when the endpoint goes away; the KMS outages come after
    # the transport outages (and, in the driver, after the heartbeat and shutdown phases: their
    # instances share the key)
    gap = profile.outage_seconds + 5.0
    for number in range(profile.outages):
        plan.faults.append(Fault(round(horizon + 1.0 + number * gap, 2), "outage", number))
    for number in range(profile.kms_outages if encrypted else 0):
        kms_at = horizon + 1.0 + (profile.outages + number) * gap
        plan.faults.append(Fault(round(kms_at, 2), "kms-outage", number))
    plan.faults.sort(key=lambda f: f.at)
    # phase orders: their own generator, so the main workload of a seed is what it was before phases
    phase_rng = random.Random(f"{seed}:phases")
    outage_phases = [f"outage-{n}" for n in range(profile.outages)]
    outage_phases += [f"kms-outage-{n}" for n in range(profile.kms_outages if encrypted else 0)]
    # contract v1.4: each KMS outage is followed by a KMS transport outage (the implementation's KMS
    # endpoint cut while SQS and SNS work) with orders of its own
    outage_phases += [f"kms-transport-{n}" for n in range(profile.kms_outages if encrypted else 0)]
    phases = [("heartbeat", profile.heartbeat_orders), ("shutdown", profile.shutdown_orders)]
    # carriers: valid orders a hostile kind may queue itself behind (sent only if a kind asks)
    phases.append(("carrier", 2 if hostile_kinds else 0))
    phases += [(name, profile.outage_orders) for name in outage_phases]
    for phase, count in phases:
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
            tag = (
                phase[:2]
                if not phase[-1].isdigit()
                else "".join(w[0] for w in phase.split("-")[:-1]) + phase[-1]
            )
            entity = f"order-{run_id}-{tag}{n:02d}"
            plan.commands.append(PlannedCommand(_uuid(phase_rng), entity, 1, "PlaceOrder", payload, marker))
            plan.phase_orders[phase].append(len(plan.commands) - 1)
    # contract v1.4, shutdown phase: a second command (CancelOrder, seq 2) for a few of the batched
    # orders, in the same SendMessageBatch: at SIGTERM it waits behind its group's head (received,
    # not started) and must be finished or released -- the release path a heartbeat must not undo
    shutdown = plan.phase_orders.get("shutdown", [])
    queued_rng = random.Random(f"{seed}:shutdown-queued")
    for index in shutdown[1 : 1 + min(SHUTDOWN_QUEUED, len(shutdown) - 1)]:
        head = plan.commands[index]
        cancel = payload_for("CancelOrder", queued_rng, {})
        plan.commands.append(
            PlannedCommand(_uuid(queued_rng), head.entity_id, 2, "CancelOrder", cancel, head.marker)
        )
        shutdown.append(len(plan.commands) - 1)
    return plan
