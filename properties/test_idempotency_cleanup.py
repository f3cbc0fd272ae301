"""Scheduled idempotency cleanup (flowgate.reference.cleanup), on the in-memory store, SQLite and PostgreSQL.

* **What a sweep deletes** (a property over generated records): exactly the COMPLETED /
  DEAD_LETTERED records whose TTL ran out and the IN_PROGRESS claims whose lease ended a whole TTL
  ago -- never a leased claim, never a record younger than the TTL -- whatever the batch size;
  a leased claim swept over still commits, an unexpired record is still a duplicate.
* **In flight**: a sweep that runs while a listener holds a message (between its claim and its
  commit) changes nothing about its processing: committed on the first receive, nothing redelivered.
* **Scheduled**: the worker's cleanup thread (:func:`flowgate.reference.worker.start_cleanup`) sweeps every
  ``idempotency_cleanup_interval`` (the first one interval after start-up), without any poll.
* **Never waits for a row in use** (PostgreSQL): a record another transaction holds locked is
  skipped, the sweep returns at once.

PostgreSQL is ``127.0.0.1:5432/test`` (``FLOWGATE_POSTGRES_URL``); when it does not answer these
tests FAIL (``postgres_url`` fixture), deselect with ``-m "not postgres"`` on purpose.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import count
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text

from flowgate.harness.sim import SimAws
from flowgate.reference.cleanup import IdempotencyCleaner
from flowgate.reference.config import BusConfiguration
from flowgate.reference.domain.orders import (
    ORDER_COMMANDS,
    ORDER_EVENTS,
    InventoryView,
    OrderSaga,
    OrderView,
    PaymentsView,
    PlaceOrder,
    order_registry,
)
from flowgate.reference.idempotency import Claimed, Duplicate
from flowgate.reference.messages import TypeRegistry, new_command
from flowgate.reference.sql import SqlStorage
from flowgate.reference.stores import DeadLetter, Effect, InMemoryStorage, Storage
from flowgate.reference.worker import build_runtime, start_cleanup

VT = 30.0
TTL = 1000.0
BACKENDS = ["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def _open(backend: str, request: pytest.FixtureRequest, tmp_path: Any, registry: TypeRegistry) -> Storage:
    if backend == "memory":
        return InMemoryStorage(registry)
    if backend == "sqlite":
        return SqlStorage(registry, f"sqlite:///{tmp_path}/cleanup.db")
    url = request.getfixturevalue("postgres_url")
    return SqlStorage(registry, url, prefix=f"h6c{uuid.uuid4().hex[:8]}_")


@pytest.fixture(params=BACKENDS)
def storage(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Storage]:
    store = _open(request.param, request, tmp_path, order_registry())
    yield store
    if isinstance(store, SqlStorage):
        store.drop()


def _keys(storage: Storage, prefix: str) -> set[str]:
    """The idempotency keys starting with ``prefix`` the store holds (read directly, no claim)."""
    if isinstance(storage, InMemoryStorage):
        with storage._lock:
            return {k for k in storage._m.records if k.startswith(prefix)}
    assert isinstance(storage, SqlStorage)
    t = storage.idempotency
    with storage.engine.connect() as c:
        return {r[0] for r in c.execute(select(t.c.key).where(t.c.key.startswith(prefix)))}


@dataclass(frozen=True)
class Rec:
    """One generated record: how it was left and at which times (seconds after the example's t0)."""

    state: str  # leased-or-lapsed claim / extended claim / completed / dead-lettered
    claimed_at: float
    extended_by: float = 0.0

    def lease_end(self, t0: float) -> float:
        return t0 + self.claimed_at + VT + (self.extended_by if self.state == "extended" else 0.0)

    def must_go(self, t0: float, now: float) -> bool:
        """The model, written independently of flowgate.reference.stores.cleanable."""
        if self.state in ("completed", "dead-lettered"):
            return now >= t0 + self.claimed_at + TTL  # committed at claim time, expires a TTL later
        return now >= self.lease_end(t0) + TTL  # a claim: only once abandoned a whole TTL


_RECORDS = st.lists(
    st.builds(
        Rec,
        st.sampled_from(["claim", "extended", "completed", "dead-lettered"]),
        st.sampled_from([0.0, 10.0, 500.0]),
        st.sampled_from([0.0, 45.0]),
    ),
    min_size=1,
    max_size=8,
)
#: sweep times around every boundary: within a lease, at TTL, at lease end + TTL, far beyond
_OFFSETS = st.sampled_from(
    [0.0, 29.0, VT, TTL - 1, TTL, TTL + 10, TTL + VT, TTL + VT + 10 + 45, TTL + 600, 3 * TTL]
)
_EXAMPLE = count()
_T = count(start=1)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(records=_RECORDS, offset=_OFFSETS, batch=st.sampled_from([1, 2, 1000]))
def test_a_sweep_deletes_exactly_the_expired_and_abandoned_records(
    storage: Storage, records: list[Rec], offset: float, batch: int
) -> None:
    prefix = f"command:x{next(_EXAMPLE)}:"
    t0 = 1_000_000.0 * next(_T)  # each example far after the last: earlier ones may be swept too
    tokens: dict[str, int] = {}
    for i, rec in enumerate(records):
        key = f"{prefix}{i}"
        claim = storage.claim(
            key,
            now=t0 + rec.claimed_at,
            lease_until=t0 + rec.claimed_at + VT,
            message_type="PlaceOrder",
            digest=f"{i:064x}",
        )
        assert isinstance(claim, Claimed)
        tokens[key] = claim.token
        if rec.state == "extended":
            assert storage.extend(key, claim.token, rec.lease_end(t0))
        elif rec.state in ("completed", "dead-lettered"):
            dead = (
                DeadLetter(key, "PlaceOrder", "o", 1, "r", "{}", t0) if rec.state == "dead-lettered" else None
            )
            storage.commit(
                Effect(
                    key=key,
                    token=claim.token,
                    message_type="PlaceOrder",
                    expires_at=t0 + rec.claimed_at + TTL,
                    dead_letter=dead,
                )
            )
    now = t0 + offset
    cleaner = IdempotencyCleaner(storage, interval=60, ttl=TTL, clock=_Fixed(now), batch=batch)
    before = _keys(storage, prefix)
    deleted = cleaner.sweep()
    expected_gone = {f"{prefix}{i}" for i, r in enumerate(records) if r.must_go(t0, now)}
    left = _keys(storage, prefix)
    kinds = ",".join(
        sorted(
            {
                "deleted-unexpired" if (before - left) - expected_gone else "",
                "not-deleted" if expected_gone - (before - left) else "",
            }
            - {""}
        )
    )
    assert before - left == expected_gone, (
        f"flowgate-anomalies: {kinds}\nnow=t0+{offset}: deleted {sorted(before - left)}, "
        f"expected {sorted(expected_gone)}"
    )
    assert deleted >= len(expected_gone)
    # what survived still works: a leased claim commits, an unexpired completion is a duplicate
    for i, rec in enumerate(records):
        key = f"{prefix}{i}"
        if key not in left:
            continue
        if rec.state in ("claim", "extended") and now < rec.lease_end(t0):
            storage.commit(
                Effect(key=key, token=tokens[key], message_type="PlaceOrder", expires_at=now + TTL)
            )
        elif rec.state == "completed":
            again = storage.claim(
                key, now=now, lease_until=now + VT, message_type="PlaceOrder", digest=f"{i:064x}"
            )
            assert isinstance(again, Duplicate), f"{key}: unexpired record no longer recognised"


class _Fixed:
    def __init__(self, t: float) -> None:
        self.t = t

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds


def _rig(storage: Storage, clock: Any, interval: float = 100.0) -> Any:
    aws = SimAws(seed=5, clock=clock)
    config = (
        BusConfiguration(order_registry())
        .send(*ORDER_COMMANDS)
        .to_queue("orders.fifo")
        .raise_events(*ORDER_EVENTS)
        .to_topic("order-events.fifo")
        .listen_to("orders.fifo")
        .subscribe("order-views.fifo")
        .to_topics("order-events.fifo")
        .with_options(
            visibility_timeout=int(VT),
            wait_time_seconds=0,
            message_retention_seconds=60,
            idempotency_ttl_seconds=TTL,
            idempotency_cleanup_interval=interval,
        )
    )
    return aws, build_runtime(
        config,
        sqs=aws.client("sqs"),
        sns=aws.client("sns"),
        sts=aws.client("sts"),
        storage=storage,
        sagas=[OrderSaga()],
        views=[OrderView(), InventoryView(), PaymentsView()],
        clock=clock,
    )


class _SweepAt:
    """Faults that run a sweep at ``point`` (as the cleanup thread could at any moment)."""

    def __init__(self, point: str) -> None:
        self.point = point
        self.cleaner: IdempotencyCleaner | None = None
        self.swept = 0

    def hit(self, point: str, context: Any) -> None:
        if point == self.point and self.cleaner is not None:
            self.cleaner.sweep()
            self.swept += 1


@pytest.mark.parametrize("point", ["after_claim", "mid_handler"])
def test_a_sweep_during_processing_never_touches_the_message_in_flight(storage: Storage, point: str) -> None:
    from flowgate.harness.sim import VirtualClock

    clock = VirtualClock()
    aws, runtime = _rig(storage, clock)
    sweep = _SweepAt(point)
    for listener in runtime.listeners:
        listener.faults = sweep
    sweep.cleaner = runtime.cleaner
    try:
        cmd = new_command(PlaceOrder("C1", "SKU-1", 1, 100), "o-1", is_new=True, sequence_no=1)
        runtime.commands.dispatch(cmd)
        commands = runtime.listeners[0]
        assert commands.poll_once() == 1
        assert sweep.swept == 1
        assert storage.get_entity("order", "o-1") is not None, (
            "flowgate-anomalies: deleted-in-flight\nthe in-flight commit lost its claim"
        )
        assert aws.calls[("sqs", "DeleteMessage")] + aws.calls[("sqs", "DeleteMessageBatch")] == 1
        clock.advance(VT + 1)
        assert commands.poll_once() == 0, "the message came back: its processing did not finish"
        # the completed record outlives every sweep before its TTL, and goes after it
        clock.advance(TTL - VT - 10)
        assert runtime.cleaner is not None
        assert runtime.cleaner.sweep() == 0, "flowgate-anomalies: deleted-unexpired"
        clock.advance(20)
        assert runtime.cleaner.sweep() == 1
    finally:
        runtime.close()


def test_the_worker_schedules_cleanup_on_its_own_thread(tmp_path: Any) -> None:
    """start_cleanup (what the worker's main runs) sweeps every interval (1 s here; the first one
    interval after the runtime was built), with no poll at all."""
    from flowgate.harness.sim import VirtualClock

    clock = VirtualClock()
    storage = SqlStorage(order_registry(), f"sqlite:///{tmp_path}/sched.db")
    _aws, runtime = _rig(storage, clock, interval=1.0)

    def completed(key: str) -> None:
        claim = storage.claim(key, now=clock.now(), lease_until=clock.now() + VT, message_type="X")
        assert isinstance(claim, Claimed)
        storage.commit(Effect(key=key, token=claim.token, message_type="X", expires_at=clock.now() + TTL))

    completed("command:old")
    clock.advance(TTL + 1)  # expired before the worker starts
    stop = threading.Event()
    thread = start_cleanup(runtime, stop)
    try:
        assert _wait(lambda: _keys(storage, "command:") == set(), 3.0), (
            "flowgate-anomalies: never-swept\nno sweep one interval after start"
        )
        completed("command:later")
        clock.advance(TTL + 1)
        assert _wait(lambda: _keys(storage, "command:") == set(), 3.0), (
            "flowgate-anomalies: never-swept\nno second sweep one interval later"
        )
        assert runtime.cleaner is not None
        assert runtime.cleaner.sweeps >= 2
    finally:
        stop.set()
        thread.join(5)
        runtime.close()
    assert not thread.is_alive(), "the cleanup thread does not stop with the worker"


def _wait(condition: Any, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return bool(condition())


@pytest.mark.postgres
def test_a_sweep_skips_a_row_in_use_instead_of_waiting(postgres_url: str) -> None:
    storage = SqlStorage(order_registry(), postgres_url, prefix=f"h6l{uuid.uuid4().hex[:8]}_")
    try:
        for key in ("command:busy", "command:free"):
            claim = storage.claim(key, now=0.0, lease_until=VT, message_type="X")
            assert isinstance(claim, Claimed)
            storage.commit(Effect(key=key, token=claim.token, message_type="X", expires_at=TTL))
        t = storage.idempotency
        with storage.engine.connect() as holder:
            tx = holder.begin()
            holder.execute(select(t.c.key).where(t.c.key == "command:busy").with_for_update())
            result: list[int] = []
            sweeper = threading.Thread(
                target=lambda: result.append(storage.cleanup(TTL + 1, abandoned_after=TTL, limit=100))
            )
            sweeper.start()
            # the row stays locked until the rollback below: a sweep that waited for it would
            # still be blocked after the join (no timing asserted: only whether it finished)
            sweeper.join(5)
            assert not sweeper.is_alive(), "the sweep waited for a row another transaction holds"
            tx.rollback()
        assert result == [1]
        assert _keys(storage, "command:") == {"command:busy"}
        assert storage.cleanup(TTL + 1, abandoned_after=TTL) == 1
        with storage.engine.connect() as c:
            assert c.execute(text(f"select count(*) from {t.name}")).scalar() == 0
    finally:
        storage.drop()
