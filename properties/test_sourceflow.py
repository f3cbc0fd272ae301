"""Property: SourceFlow.Net interop mode on the deterministic simulator (docs/sourceflow.md).

Valid SourceFlow.Net v2 commands (built field by field from its dispatcher,
``flowgate.harness.sourceflow``) for a few integer entities, SourceFlow events, native commands, late
resends of SourceFlow commands (the same bytes after the 5-minute content-based dedup window)
and the hostile SourceFlow-shaped kinds of ``flowgate.harness.hostile.sourceflow`` are sent interleaved
(each entity's commands in order) to one worker in interop mode. Then:

(a) no exception leaves a poll;
(b) every valid command -- SourceFlow-shaped or native -- took effect exactly once and in
    sequence order (the order's command log is exactly its eventIds), resends included;
(c) every SourceFlow event is projected (its payload ``id`` is the view row);
(d) every hostile message is in the DLQ exactly once with its kind's ``DeadLetterReason`` code,
    and nothing else is.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from flowgate.harness import sourceflow as sf
from flowgate.harness.hostile import sourceflow as hostile_sf
from flowgate.reference.domain.orders import PlaceOrder
from flowgate.reference.messages import new_command

#: commands of one order, in sequence (valid transitions of the order saga)
FLOW: list[tuple[str, dict[str, Any]]] = [
    ("PlaceOrder", {"customerId": "C-1", "sku": "SKU-1", "quantity": 2, "amountCents": 500}),
    ("AuthorizePayment", {"paymentId": "P-1", "amountCents": 500}),
    ("ReserveInventory", {"sku": "SKU-1", "quantity": 2}),
    ("ConfirmOrder", {}),
]
#: a time whose .NET form has all 7 fraction digits (100 ns ticks)
STAMP = 1_796_000_000.1234567
ENTITY = {"customerId": "C-9", "sku": "SKU-2", "quantity": 1, "amountCents": 250}


def _guid(n: int) -> str:
    return str(uuid.UUID(int=(0x5F << 120) | n, version=4))


@st.composite
def runs(draw: st.DrawFn) -> dict[str, Any]:
    lengths = draw(st.lists(st.integers(1, len(FLOW)), min_size=1, max_size=3))
    natives = draw(st.integers(0, 2))
    events = draw(st.integers(0, 2))
    kinds = draw(st.lists(st.sampled_from(sorted(hostile_sf.CATALOG)), max_size=6, unique=True))
    resends = draw(st.lists(st.integers(0, len(lengths) - 1), max_size=2))
    # the send order: one token per message; each entity's tokens keep their relative order
    tokens = [("sf", e) for e, n in enumerate(lengths) for _ in range(n)]
    tokens += [("native", i) for i in range(natives)] + [("event", i) for i in range(events)]
    tokens += [("hostile", k) for k in kinds]
    order = draw(st.permutations(tokens))
    return {"lengths": lengths, "order": order, "resends": resends}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(runs())
def test_sourceflow_interop_holds_with_hostile_input(run: dict[str, Any]) -> None:
    note(f"sent: {run['order']}, resends {run['resends']}")
    check_run(run)


def test_every_hostile_kind_beside_every_kind_of_valid_message() -> None:
    """The same judgement on one fixed run: every hostile kind once, between two SourceFlow
    orders (all four commands, 7-digit timestamps), a native command, two SourceFlow events and a
    late resend of one order."""
    order = [("sf", 0), ("hostile", "sf_unknown_alias"), ("sf", 1), ("event", 0), ("native", 0)]
    order += [("hostile", k) for k in sorted(hostile_sf.CATALOG) if k != "sf_unknown_alias"]
    order += [("sf", 0), ("sf", 1), ("sf", 0), ("event", 1), ("sf", 0), ("sf", 1), ("sf", 1)]
    check_run({"lengths": [4, 4], "order": order, "resends": [1]})


def check_run(run: dict[str, Any]) -> None:
    rig = sf.InteropRig()
    counter = iter(range(1, 10_000))
    next_step = dict.fromkeys(range(len(run["lengths"])), 0)
    sent: dict[int, list[dict[str, Any]]] = {e: [] for e in range(len(run["lengths"]))}
    natives: list[tuple[str, str]] = []
    events: list[int] = []
    hostile: dict[str, str] = {}  # body -> reason code
    for what, ref in run["order"]:
        if what == "sf":
            step = next_step[ref]
            next_step[ref] += 1
            name, payload = FLOW[step]
            params = sf.command_send(
                name,
                100 + ref,
                payload,
                step + 1,
                is_new=step == 0,
                event_id=_guid(next(counter)),
                occurred_on=STAMP,  # 7 fraction digits, as DateTime.UtcNow has
            )
            sent[ref].append(params)
            rig.send_command(params)
        elif what == "native":
            cmd = new_command(
                PlaceOrder("C-N", "SKU-1", 1, 100), f"n-{ref}", is_new=True, sequence_no=1, clock=rig.aws.clock
            )
            natives.append((cmd.entity_id, cmd.event_id))
            rig.runtime.commands.dispatch(cmd)
        elif what == "event":
            entity_id = 300 + ref
            events.append(entity_id)
            rig.publish_event(
                sf.event_publish("OrderPlaced", {"id": entity_id, **ENTITY}, event_id=_guid(next(counter)))
            )
        else:
            kind = hostile_sf.CATALOG[ref]
            n = next(counter)
            if kind.target == "command":
                valid = sf.command_send("PlaceOrder", 1000 + n, FLOW[0][1], 1, is_new=True, event_id=_guid(n))
                params = kind.transform(valid)
                body = params["MessageBody"]
                rig.send_command(params)
            else:
                valid = sf.event_publish("OrderPlaced", {"id": 1000 + n, **ENTITY}, event_id=_guid(n))
                params = kind.transform(valid)
                body = params["Message"]
                rig.sqs.send_message(
                    QueueUrl=rig.url("sf-order-views"),
                    MessageBody=body,
                    MessageAttributes=params["MessageAttributes"],
                )
            hostile[body] = kind.reason
    rig.drain(rounds=6)
    for e in run["resends"]:  # late resends: the same bytes, after the dedup window
        rig.aws.clock.advance(301)
        for params in sent[e]:
            rig.send_command(params)
        rig.drain(rounds=6)

    for e, msgs in sent.items():
        state = rig.storage.get_entity("order", str(100 + e))
        ids = [json.loads(p["MessageBody"])["metadata"]["eventId"] for p in msgs]
        assert state is not None, f"entity {100 + e} never applied"
        assert state["applied"] == ids, f"entity {100 + e}: applied {state['applied']} != sent {ids}"
        assert state["lastSeq"] == len(msgs)
        row = rig.storage.get_view("orders", str(100 + e))  # the reference's own events for it
        assert row is not None
        assert row["lastSeq"] == len(msgs)
    for entity_id, event_id in natives:
        state = rig.storage.get_entity("order", entity_id)
        assert state is not None
        assert state["applied"] == [event_id]
    for entity_id in events:
        row = rig.storage.get_view("orders", str(entity_id))
        assert row is not None
        assert row["status"] == "PENDING"
    dead: dict[str, list[str]] = {}
    for queue in ("sf-orders.fifo", "sf-order-views"):
        for m in rig.dead_letters(queue):
            dead.setdefault(m["Body"], []).append(m["MessageAttributes"]["DeadLetterReason"]["StringValue"])
    assert set(dead) == set(hostile), f"dead-lettered {sorted(dead)} != hostile {sorted(hostile)}"
    for body, code in hostile.items():
        [reason] = dead[body]
        assert reason.startswith(code + ": "), f"{reason!r} is not {code}"


# -- deterministic killers ----------------------------------------------------------------------
def test_a_bus_left_at_its_defaults_refuses_sourceflow_messages() -> None:
    rig = sf.InteropRig(interop=None)
    assert rig.config.options.sourceflow_interop is False
    rig.send_command(sf.command_send("PlaceOrder", 42, FLOW[0][1], 1, is_new=True))
    rig.publish_event(sf.event_publish("OrderPlaced", {"id": 77, **ENTITY}))
    rig.drain()
    assert rig.storage.get_entity("order", "42") is None
    assert rig.storage.get_view("orders", "77") is None
    for queue in ("sf-orders.fifo", "sf-order-views"):
        [reason] = rig.reasons(queue)
        assert reason.startswith("UnknownMessageType: ")
        assert "SourceFlow interop is off" in reason


#: the .NET side's PlaceOrder / OrderPlaced (Type.GetType by assembly-qualified name)
LOADED = {
    sf.ORDER_ALIASES["PlaceOrder"]: sf.command_type(
        "PlaceOrder", {"customerId": "string", "sku": "string", "quantity": "int", "amountCents": "int"}
    ),
}


def test_what_the_reference_emits_sourceflows_listener_parses() -> None:
    rig = sf.InteropRig(emit=True)
    cmd = new_command(PlaceOrder("C-7", "SKU-1", 2, 500), "42", is_new=True, sequence_no=1)
    rig.runtime.commands.dispatch(cmd)
    [got] = rig.sqs.receive_message(
        QueueUrl=rig.url("sf-orders.fifo"), MessageAttributeNames=["All"], AttributeNames=["All"]
    )["Messages"]
    parsed = sf.parse_command(got, LOADED)  # raises where AwsSqsCommandListener gives up
    assert parsed["entity"] == {"id": 42, "isNew": True}
    assert parsed["metadata"]["eventId"] == cmd.event_id
    assert "MessageDeduplicationId" not in got["Attributes"] or got["Attributes"]["MessageDeduplicationId"] != cmd.event_id
