"""Hand-built histories for the checker tests, and a tiny correct model of the bus."""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

from flowgate.harness.history import Op


class HB:
    """A history builder: each method appends ops and returns the index of the last one."""

    def __init__(self) -> None:
        self.ops: list[Op] = []

    def op(self, process: str, type: str, f: str, **value: Any) -> int:
        index = len(self.ops)
        self.ops.append(Op(index, process, type, f, value, float(index)))
        return index

    # producer ---------------------------------------------------------------------------
    def invoke(self, cid: str, entity: str, seq: int, dest: str = "orders.fifo", **extra: Any) -> int:
        return self.op(
            "client-0", "invoke", "send", command_id=cid, entity_id=entity, seq=seq,
            command_type="PlaceOrder", destination=dest, **extra,
        )  # fmt: skip

    def complete(self, cid: str, entity: str, seq: int, outcome: str = "ok", **extra: Any) -> int:
        dest = extra.pop("dest", "orders.fifo")
        return self.op(
            "client-0", outcome, "send", command_id=cid, entity_id=entity, seq=seq,
            command_type="PlaceOrder", destination=dest, **extra,
        )  # fmt: skip

    def send(self, cid: str, entity: str, seq: int, outcome: str = "ok", **extra: Any) -> int:
        """invoke + completion; ``outcome=None``-like ``"none"`` leaves the invoke open."""
        self.invoke(cid, entity, seq, **extra)
        if outcome == "none":
            return len(self.ops) - 1
        return self.complete(cid, entity, seq, outcome, **extra)

    # worker -----------------------------------------------------------------------------
    def effect(self, cid: str, entity: str, seq: int, worker: str = "worker-1") -> int:
        return self.op(
            worker, "ok", "effect", command_id=cid, entity_id=entity, seq=seq, command_type="PlaceOrder"
        )

    def receive(self, message_id: str, count: int = 1, worker: str = "worker-1", **extra: Any) -> int:
        return self.op(
            worker, "ok", "receive", message_id=message_id, queue="orders.fifo", receive_count=count, **extra
        )

    def publish(self, eid: str, entity: str, seq: int, cause: str) -> int:
        return self.op(
            "worker-1", "ok", "publish", event_id=eid, entity_id=entity, seq=seq, event_type="OrderPlaced",
            destination="order-events.fifo", causation_id=cause,
        )  # fmt: skip

    def project(self, eid: str, entity: str, seq: int, view: str = "summary") -> int:
        return self.op(
            "worker-2",
            "ok",
            "project",
            event_id=eid,
            entity_id=entity,
            seq=seq,
            event_type="OrderPlaced",
            view=view,
        )

    def duplicate(self, key: str, entity: str, seq: int) -> int:
        return self.op("worker-1", "ok", "duplicate", key=key, entity_id=entity, seq=seq)

    def delete(self, message_id: str) -> int:
        return self.op("worker-1", "ok", "delete", message_id=message_id, queue="orders.fifo")

    def dead_letter(self, message_id: str, reason: str = "bad_json", **extra: Any) -> int:
        return self.op(
            "worker-1",
            "ok",
            "dead_letter",
            message_id=message_id,
            queue="orders.fifo",
            reason=reason,
            **extra,
        )

    def business_dead_letter(self, cid: str, entity: str, seq: int, reason: str = "declined") -> int:
        return self.op(
            "worker-1", "ok", "business_dead_letter", command_id=cid, entity_id=entity, seq=seq, reason=reason
        )

    # harness / nemesis ------------------------------------------------------------------
    def poison(self, message_id: str, kind: str = "bad_json", **extra: Any) -> int:
        return self.op("harness", "ok", "poison", message_id=message_id, kind=kind, **extra)

    def drain(self) -> int:
        return self.op("harness", "ok", "drain")

    def snapshot(self, f: str, entity: str, state: dict[str, Any], views: dict[str, Any]) -> int:
        return self.op("harness", "ok", f, entity_id=entity, entity=state, views=views)

    def wire(self, body: str, encrypted: bool = True, markers: Sequence[str] = ()) -> int:
        return self.op(
            "harness", "ok", "wire", body=body, encrypted=encrypted, plaintext_markers=list(markers)
        )

    def nemesis(self, f: str, **value: Any) -> int:
        return self.op("nemesis", "info", f, **value)

    def apply(self, cid: str, entity: str, seq: int, message_id: str | None = None) -> int:
        """A clean delivery: receive, effect, publish, project, delete. Returns the effect index."""
        message_id = message_id or f"m-{cid}"
        self.receive(message_id, command_id=cid)
        index = self.effect(cid, entity, seq)
        self.publish(f"e-{cid}", entity, seq, cid)
        self.project(f"e-{cid}", entity, seq)
        self.delete(message_id)
        return index


def reindex(ops: Iterable[Op]) -> list[Op]:
    """The ops renumbered 0.. in list order (time follows the new index)."""
    return [replace(op, index=number, time=float(number)) for number, op in enumerate(ops)]


Step = tuple[str, str, str, dict[str, Any]]


def _step(process: str, type: str, f: str, **value: Any) -> Step:
    return (process, type, f, value)


def model_history(seed: int, entities: int = 4, commands: int = 4, poison: int = 2) -> list[Op]:
    """A history from a tiny correct model of the bus: each entity's commands are handled in
    seq order exactly once (redeliveries recognised as duplicates), events projected once,
    poison dead-lettered, live state equal to replay, encrypted wire without plaintext, a drain.
    Entities' op streams are interleaved at random, nemesis faults sprinkled in."""
    rng = random.Random(seed)
    streams: list[list[Step]] = []
    states: dict[str, dict[str, Any]] = {}
    for e in range(entities):
        entity = f"o-{e}"
        stream: list[Step] = []

        total = 0
        for seq in range(1, commands + 1):
            cid = f"c-{e}-{seq}"
            ids = {"command_id": cid, "entity_id": entity, "seq": seq}
            base = {**ids, "command_type": "AddItem", "destination": "orders.fifo"}
            roll = rng.random()
            outcome = "ok" if roll < 0.7 else "info" if roll < 0.8 else "none" if roll < 0.85 else "fail"
            applies = outcome == "ok" or (outcome in ("info", "none") and rng.random() < 0.5)
            business = outcome == "ok" and rng.random() < 0.1
            if business:
                base["expect_business_failure"] = True
            stream.append(_step("client-0", "invoke", "send", **base))
            if outcome != "none":
                stream.append(_step("client-0", outcome, "send", **base))
            if not applies:
                continue
            message = f"m-{cid}"
            queue = {"message_id": message, "queue": "orders.fifo"}
            stream.append(_step("worker-1", "ok", "receive", **queue, receive_count=1, command_id=cid))
            if business:
                stream.append(_step("worker-1", "ok", "business_dead_letter", **ids, reason="declined"))
                stream.append(_step("worker-1", "ok", "delete", **queue))
                continue
            stream.append(_step("worker-1", "ok", "effect", **ids, command_type="AddItem"))
            total += seq
            eid = f"e-{cid}"
            event = {"event_id": eid, "entity_id": entity, "seq": seq, "event_type": "ItemAdded"}
            stream.append(
                _step("worker-1", "ok", "publish", **event, destination="events.fifo", causation_id=cid)
            )
            if rng.random() < 0.3:  # redelivered before the delete: recognised and skipped
                stream.append(_step("worker-2", "ok", "receive", **queue, receive_count=2, command_id=cid))
                stream.append(
                    _step("worker-2", "ok", "duplicate", key=f"AddItem:{cid}", entity_id=entity, seq=seq)
                )
            for view in ("summary", "audit")[: rng.randint(1, 2)]:
                stream.append(_step("worker-3", "ok", "project", **event, view=view))
            stream.append(_step("worker-1", "ok", "delete", **queue))
        states[entity] = {"entity": {"id": entity, "total": total}, "views": {"summary": {"total": total}}}
        streams.append(stream)
    for p in range(poison):
        pid = f"p-{p}"
        kind = rng.choice(["bad_json", "unknown_type", "tampered", "wrong_key", "oversized"])
        queue = {"message_id": pid, "queue": "orders.fifo"}
        streams.append(
            [
                ("harness", "ok", "poison", {"message_id": pid, "kind": kind}),
                ("worker-1", "ok", "receive", {**queue, "receive_count": 1}),
                ("worker-1", "ok", "dead_letter", {**queue, "reason": kind, "poison": True}),
            ]
        )
    body = f"{rng.getrandbits(64):016x}"
    streams.append(
        [("harness", "ok", "wire", {"body": body, "encrypted": True, "plaintext_markers": ["AddItem"]})]
    )
    merged: list[Step] = []
    cursors = [0] * len(streams)
    live = [n for n, s in enumerate(streams) if s]
    faults = ["crash", "stall", "duplicate_delivery"]
    while live:
        n = rng.choice(live)
        merged.append(streams[n][cursors[n]])
        cursors[n] += 1
        if cursors[n] == len(streams[n]):
            live.remove(n)
        if rng.random() < 0.05:
            merged.append(
                ("nemesis", "info", rng.choice(faults), {"worker": "worker-1", "point": "after_receive"})
            )
    merged.append(("harness", "ok", "drain", {}))
    for entity, snap in states.items():
        merged.append(("harness", "ok", "state", {"entity_id": entity, **snap}))
        merged.append(("harness", "ok", "replay", {"entity_id": entity, **snap}))
    return [Op(i, p, t, f, v, float(i)) for i, (p, t, f, v) in enumerate(merged)]
