"""One contract for the Storage port (command/entity/view/idempotency/dead-letter stores and the
atomic fenced commit), run against every backend: in-memory, SQLite (file), PostgreSQL."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from flowgate.reference.domain import OrderPlaced, PlaceOrder
from flowgate.reference.errors import LeaseLost, SequenceConflict, WriteConflict
from flowgate.reference.idempotency import Busy, Claimed, Conflict, Duplicate
from flowgate.reference.messages import TypeRegistry, event_for, new_command
from flowgate.reference.stores import DeadLetter, Effect, EntityWrite, InMemoryStorage, Storage, ViewWrite

T0 = 1000.0


class StorageContract:
    __test__ = False

    @pytest.fixture
    def storage(self, registry: TypeRegistry, tmp_path: Any) -> Iterator[Storage]:
        raise NotImplementedError

    def claimed(self, storage: Storage, key: str = "command:a", now: float = T0, lease: float = 30) -> Claimed:
        res = storage.claim(key, now=now, lease_until=now + lease, message_type="PlaceOrder")
        assert isinstance(res, Claimed)
        return res

    def effect(self, key: str, token: int, seq: int = 1, entity: str = "o1", **kw: Any) -> Effect:
        cmd = new_command(PlaceOrder("c", "S", 1, 5), entity, sequence_no=seq)
        evt = event_for(cmd, 0, OrderPlaced("c", "S", 1, 5))
        return Effect(key=key, token=token, message_type="PlaceOrder", expires_at=T0 + 3600,
                      entities=(EntityWrite("order", entity, {"status": "PENDING", "seq": seq}),),
                      command=cmd, views=(ViewWrite("orders", entity, {"n": seq}),), outbox=(evt,), **kw)

    def test_claim_then_busy_then_takeover_after_lease(self, storage: Storage) -> None:
        first = self.claimed(storage)
        busy = storage.claim("command:a", now=T0 + 10, lease_until=T0 + 40, message_type="X")
        assert busy == Busy(T0 + 30)
        second = self.claimed(storage, now=T0 + 31)
        assert second.token != first.token

    def test_commit_completes_and_duplicates_return_outbox(self, storage: Storage) -> None:
        c = self.claimed(storage)
        eff = self.effect("command:a", c.token)
        storage.commit(eff)
        dup = storage.claim("command:a", now=T0 + 100, lease_until=T0 + 130, message_type="X")
        assert isinstance(dup, Duplicate)
        assert dup.outbox == eff.outbox
        assert storage.get_entity("order", "o1") == {"status": "PENDING", "seq": 1}
        assert storage.get_view("orders", "o1") == {"n": 1}
        assert storage.list_view("orders") == {"o1": {"n": 1}}
        assert [c.event_id for c in storage.load_commands("o1")] == [eff.command.event_id]  # type: ignore[union-attr]
        assert storage.last_sequence("o1") == 1

    def test_stale_token_cannot_commit_anything(self, storage: Storage) -> None:
        old = self.claimed(storage)
        new = self.claimed(storage, now=T0 + 31)
        with pytest.raises(LeaseLost):
            storage.commit(self.effect("command:a", old.token))
        assert storage.get_entity("order", "o1") is None
        assert storage.load_commands("o1") == []
        assert storage.get_view("orders", "o1") is None
        storage.commit(self.effect("command:a", new.token))
        assert storage.get_entity("order", "o1") is not None

    def test_commit_after_release_or_completion_is_refused(self, storage: Storage) -> None:
        c = self.claimed(storage)
        storage.release("command:a", c.token)
        with pytest.raises(LeaseLost):
            storage.commit(self.effect("command:a", c.token))
        again = self.claimed(storage, now=T0 + 1)
        storage.commit(self.effect("command:a", again.token))
        with pytest.raises(LeaseLost):
            storage.commit(self.effect("command:a", again.token))

    def test_release_only_by_owner(self, storage: Storage) -> None:
        c = self.claimed(storage)
        storage.release("command:a", c.token + 1)
        assert isinstance(storage.claim("command:a", now=T0 + 1, lease_until=T0 + 2, message_type="X"), Busy)
        storage.release("command:a", c.token)
        self.claimed(storage, now=T0 + 1)

    def test_extend_moves_lease_and_is_fenced(self, storage: Storage) -> None:
        c = self.claimed(storage)
        assert storage.extend("command:a", c.token, T0 + 90)
        assert isinstance(storage.claim("command:a", now=T0 + 60, lease_until=T0 + 99, message_type="X"), Busy)
        assert not storage.extend("command:a", c.token + 1, T0 + 200)
        assert isinstance(storage.claim("command:a", now=T0 + 91, lease_until=T0 + 99, message_type="X"), Claimed)
        assert not storage.extend("command:a", c.token, T0 + 300)

    def test_expired_completed_record_is_taken_over_and_cleaned(self, storage: Storage) -> None:
        c = self.claimed(storage)
        storage.commit(self.effect("command:a", c.token))
        assert isinstance(storage.claim("command:a", now=T0 + 3599, lease_until=T0 + 3600, message_type="X"),
                          Duplicate)
        self.claimed(storage, key="command:b")
        # a's TTL passed; b's lease ended 3571 s ago: an abandoned claim only after a whole TTL
        assert storage.cleanup(T0 + 3601, abandoned_after=3600) == 1
        assert isinstance(storage.claim("command:b", now=T0 + 3601, lease_until=T0 + 3700, message_type="X"),
                          Claimed)
        assert isinstance(storage.claim("command:a", now=T0 + 3601, lease_until=T0 + 3700, message_type="X"),
                          Claimed)
        assert storage.cleanup(T0 + 3601, abandoned_after=3600) == 0
        assert storage.cleanup(T0 + 3700 + 3600, abandoned_after=3600) == 2  # both abandoned a TTL ago

    def test_sequence_conflict_rolls_back_the_whole_commit(self, storage: Storage) -> None:
        c = self.claimed(storage)
        storage.commit(self.effect("command:a", c.token, seq=1))
        c2 = self.claimed(storage, key="command:b")
        with pytest.raises(SequenceConflict):
            storage.commit(self.effect("command:b", c2.token, seq=1))
        assert isinstance(storage.claim("command:b", now=T0 + 1, lease_until=T0 + 2, message_type="X"), Busy)
        assert len(storage.load_commands("o1")) == 1
        assert storage.get_view("orders", "o1") == {"n": 1}
        storage.commit(self.effect("command:b", c2.token, seq=2))
        assert [c.metadata.sequence_no for c in storage.load_commands("o1")] == [1, 2]

    def test_writes_are_conditional_on_the_state_they_were_decided_from(self, storage: Storage) -> None:
        # two workers project different events into one shared row, both having read it empty
        a, b = self.claimed(storage, key="event:a"), self.claimed(storage, key="event:b")

        def view_effect(key: str, token: int, row: dict[str, Any], expected: dict[str, Any] | None) -> Effect:
            return Effect(key=key, token=token, message_type="InventoryReserved", expires_at=T0 + 10,
                          views=(ViewWrite("inventory", "SKU-1", row, expected=expected),))

        storage.commit(view_effect("event:a", a.token, {"reserved": 2}, None))
        with pytest.raises(WriteConflict):
            storage.commit(view_effect("event:b", b.token, {"reserved": 3}, None))
        # nothing of the refused commit landed, and its claim is still held for a second try
        assert storage.get_view("inventory", "SKU-1") == {"reserved": 2}
        assert isinstance(storage.claim("event:b", now=T0 + 1, lease_until=T0 + 2, message_type="X"), Busy)
        with pytest.raises(WriteConflict):
            storage.commit(view_effect("event:b", b.token, {"reserved": 3}, {"reserved": 0}))
        storage.commit(view_effect("event:b", b.token, {"reserved": 5}, {"reserved": 2}))
        assert storage.get_view("inventory", "SKU-1") == {"reserved": 5}

    def test_entity_write_conflict_rolls_back_the_command(self, storage: Storage) -> None:
        c = self.claimed(storage)
        storage.commit(self.effect("command:a", c.token, seq=1))
        c2 = self.claimed(storage, key="command:b")
        stale = Effect(key="command:b", token=c2.token, message_type="CancelOrder", expires_at=T0 + 10,
                       entities=(EntityWrite("order", "o1", {"status": "CANCELLED"}, expected=None),),
                       command=new_command(PlaceOrder("c", "S", 1, 5), "o1", sequence_no=2))
        with pytest.raises(WriteConflict):
            storage.commit(stale)
        assert storage.get_entity("order", "o1") == {"status": "PENDING", "seq": 1}
        assert storage.last_sequence("o1") == 1

    def test_dead_letter_recorded_without_an_effect(self, storage: Storage) -> None:
        # D24: the dead-letter commit ends the claim DEAD_LETTERED -- no effect, so the same content
        # (a DLQ replay after the cause is fixed) is claimed again and decides anew; never a duplicate
        c = self.claimed(storage)
        dl = DeadLetter("command:a", "ConfirmOrder", "o1", 3, "InvalidTransition: no", "{}", T0)
        storage.commit(Effect(key="command:a", token=c.token, message_type="ConfirmOrder", expires_at=T0 + 10,
                              dead_letter=dl))
        assert storage.dead_letters() == [dl]
        again = storage.claim("command:a", now=T0 + 1, lease_until=T0 + 2, message_type="X")
        assert isinstance(again, Claimed)
        assert again.token != c.token
        with pytest.raises(LeaseLost):  # the old token is fenced off
            storage.commit(Effect(key="command:a", token=c.token, message_type="ConfirmOrder", expires_at=T0 + 10))

    def test_dead_lettered_key_keeps_its_content_binding(self, storage: Storage) -> None:
        c = self.digest_claim(storage, "a" * 64)
        dl = DeadLetter("command:d", "PlaceOrder", "o1", 1, "InvalidTransition: no", "{}", T0)
        storage.commit(Effect(key="command:d", token=c.token, message_type="PlaceOrder", expires_at=T0 + 100,
                              dead_letter=dl))
        assert isinstance(self.digest_claim(storage, "b" * 64, now=T0 + 1), Conflict)
        assert isinstance(self.digest_claim(storage, "a" * 64, now=T0 + 1), Claimed)

    def test_concurrent_claims_have_one_winner(self, storage: Storage) -> None:
        results: list[Any] = []
        barrier = threading.Barrier(6)

        def claim() -> None:
            barrier.wait()
            results.append(storage.claim("command:race", now=T0, lease_until=T0 + 30, message_type="X"))

        threads = [threading.Thread(target=claim) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sum(isinstance(r, Claimed) for r in results) == 1
        assert sum(isinstance(r, Busy) for r in results) == 5


    # -- sequence numbers shared by producers (D25) ----------------------------------------------
    def reopen(self, storage: Storage) -> Storage:
        """Another handle on the same store (a restarted producer / another process's engine)."""
        return storage

    def test_allocate_sequence_counts_per_entity_and_survives_a_reopen(self, storage: Storage) -> None:
        assert [storage.allocate_sequence("o1") for _ in range(3)] == [1, 2, 3]
        assert storage.allocate_sequence("o2") == 1
        again = self.reopen(storage)
        assert again.allocate_sequence("o1") == 4
        assert storage.allocate_sequence("o1") == 5

    def test_allocate_sequence_never_falls_behind_the_command_store(self, storage: Storage) -> None:
        assert storage.allocate_sequence("o1") == 1
        c = self.claimed(storage)
        storage.commit(self.effect("command:a", c.token, seq=7))
        assert storage.allocate_sequence("o1") == 8
        c = self.claimed(storage, key="command:b")
        storage.commit(self.effect("command:b", c.token, seq=3, entity="o9"))
        assert storage.allocate_sequence("o9") == 4

    def test_concurrent_allocations_never_repeat_a_number(self, storage: Storage) -> None:
        handles = [storage, self.reopen(storage)]
        got: list[int] = []
        lock = threading.Lock()
        barrier = threading.Barrier(6)

        def allocate(n: int) -> None:
            barrier.wait()
            mine = [handles[(n + k) % 2].allocate_sequence("race") for k in range(15)]
            with lock:
                got.extend(mine)

        threads = [threading.Thread(target=allocate, args=(n,)) for n in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(got) == list(range(1, 91))

    def test_record_publish_numbers_and_keeps_the_command_until_marked_sent(self, storage: Storage) -> None:
        a = storage.record_publish(new_command(PlaceOrder("c", "S", 1, 5), "o1"))
        b = storage.record_publish(new_command(PlaceOrder("c", "S", 1, 5), "o1"))
        z = storage.record_publish(new_command(PlaceOrder("c", "S", 1, 5), "o0"))
        assert (a.metadata.sequence_no, b.metadata.sequence_no, z.metadata.sequence_no) == (1, 2, 1)
        assert self.reopen(storage).unsent_commands() == [z, a, b]
        assert storage.unsent_commands("o1") == [a, b]
        # publishing the same command again (a retry) returns its record, numbered once
        retry = replace(b, metadata=replace(b.metadata, sequence_no=0))
        assert storage.record_publish(retry) == b
        storage.mark_sent("o1", 1)
        storage.mark_sent("o1", 1)  # no-op
        assert storage.unsent_commands("o1") == [b]
        assert storage.allocate_sequence("o1") == 3

    def test_concurrent_record_publish_keeps_one_record_per_number(self, storage: Storage) -> None:
        handles = [storage, self.reopen(storage)]
        barrier = threading.Barrier(4)

        def publish(n: int) -> None:
            barrier.wait()
            for k in range(10):
                handles[(n + k) % 2].record_publish(new_command(PlaceOrder("c", "S", 1, 5), "race"))

        threads = [threading.Thread(target=publish, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        unsent = storage.unsent_commands("race")
        assert [c.metadata.sequence_no for c in unsent] == list(range(1, 41))
        assert len({c.event_id for c in unsent}) == 40

    def test_one_command_published_concurrently_is_numbered_once(self, storage: Storage) -> None:
        handles = [storage, self.reopen(storage)]
        command = new_command(PlaceOrder("c", "S", 1, 5), "same")
        got: list[Any] = []
        barrier = threading.Barrier(6)

        def publish(n: int) -> None:
            barrier.wait()
            got.append(handles[n % 2].record_publish(command))

        threads = [threading.Thread(target=publish, args=(n,)) for n in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(got) == 6
        assert {c.metadata.sequence_no for c in got} == {1}
        assert storage.unsent_commands("same") == [got[0]]

    # -- content binding (digest) -------------------------------------------------------------
    def digest_claim(self, storage: Storage, digest: str | None, now: float = T0, key: str = "command:d") -> Any:
        return storage.claim(key, now=now, lease_until=now + 30, message_type="PlaceOrder", digest=digest)

    def test_completed_key_with_another_digest_is_a_conflict(self, storage: Storage) -> None:
        c = self.digest_claim(storage, "a" * 64)
        assert isinstance(c, Claimed)
        storage.commit(self.effect("command:d", c.token))
        assert isinstance(self.digest_claim(storage, "a" * 64, now=T0 + 100), Duplicate)
        assert self.digest_claim(storage, "b" * 64, now=T0 + 100) == Conflict("a" * 64)
        # a conflict writes nothing: the same content is still a duplicate afterwards
        assert isinstance(self.digest_claim(storage, "a" * 64, now=T0 + 101), Duplicate)

    def test_in_progress_key_with_another_digest_is_a_conflict_even_after_its_lease(self, storage: Storage) -> None:
        first = self.digest_claim(storage, "a" * 64)
        assert isinstance(first, Claimed)
        assert self.digest_claim(storage, "b" * 64, now=T0 + 1) == Conflict("a" * 64)
        assert self.digest_claim(storage, "b" * 64, now=T0 + 31) == Conflict("a" * 64)
        # the conflicting claim did not take the record: the owner still commits
        storage.commit(self.effect("command:d", first.token))
        assert isinstance(self.digest_claim(storage, "a" * 64, now=T0 + 40), Duplicate)

    def test_same_digest_takes_over_an_expired_lease(self, storage: Storage) -> None:
        first = self.digest_claim(storage, "a" * 64)
        assert isinstance(self.digest_claim(storage, "a" * 64, now=T0 + 1), Busy)
        second = self.digest_claim(storage, "a" * 64, now=T0 + 31)
        assert isinstance(second, Claimed)
        assert second.token != first.token

    def test_expired_completed_record_is_taken_over_by_any_digest(self, storage: Storage) -> None:
        c = self.digest_claim(storage, "a" * 64)
        storage.commit(self.effect("command:d", c.token))  # expires at T0 + 3600
        assert isinstance(self.digest_claim(storage, "b" * 64, now=T0 + 3601), Claimed)
        assert self.digest_claim(storage, "a" * 64, now=T0 + 3602) == Conflict("b" * 64)

    def test_unknown_digest_matches_any(self, storage: Storage) -> None:
        c = self.digest_claim(storage, None)
        storage.commit(self.effect("command:d", c.token))
        assert isinstance(self.digest_claim(storage, "b" * 64, now=T0 + 1), Duplicate)
        c2 = self.digest_claim(storage, "a" * 64, key="command:e")
        storage.commit(self.effect("command:e", c2.token, entity="o2"))
        assert isinstance(self.digest_claim(storage, None, now=T0 + 1, key="command:e"), Duplicate)

    def test_released_claim_forgets_its_digest(self, storage: Storage) -> None:
        c = self.digest_claim(storage, "a" * 64)
        storage.release("command:d", c.token)
        assert isinstance(self.digest_claim(storage, "b" * 64, now=T0 + 1), Claimed)

    def test_strictly_decoded_extremes_are_stored(self, storage: Storage) -> None:
        """What strict decoding lets through, every backend stores: a 128-character entity id of
        every SQS-allowed punctuation, a 128-character event id, the largest sequence number."""
        from flowgate.reference.messages import INT64_MAX, decode, encode

        punctuation = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
        entity = (punctuation * 5)[:128]
        cmd = new_command(PlaceOrder("c" * 1000, "S", 2**63 - 1, -(2**63)), entity,
                          sequence_no=INT64_MAX, event_id="e" * 128)
        assert decode(encode(cmd), TypeRegistry().commands(PlaceOrder)) == cmd
        key = f"command:{cmd.event_id}"
        c = storage.claim(key, now=T0, lease_until=T0 + 30, message_type=cmd.name, digest="f" * 64)
        assert isinstance(c, Claimed)
        storage.commit(Effect(key=key, token=c.token, message_type=cmd.name, expires_at=T0 + 10,
                              entities=(EntityWrite("order", entity, {"qty": 2**63 - 1, "s": "\u00e9\U0001f600"}),),
                              command=cmd, views=(ViewWrite("orders", entity, {"n": 1}),)))
        assert storage.load_commands(entity) == [cmd]
        assert storage.last_sequence(entity) == INT64_MAX
        assert storage.get_entity("order", entity) == {"qty": 2**63 - 1, "s": "\u00e9\U0001f600"}

    def test_over_long_or_nul_row_id_is_refused_alike_and_nothing_is_written(self, storage: Storage) -> None:
        from flowgate.reference.errors import DecodeError

        c = self.claimed(storage)
        for row_id in ("S" * 201, "S\x00KU"):
            eff = Effect(key="command:a", token=c.token, message_type="X", expires_at=T0 + 10,
                         views=(ViewWrite("inventory", row_id, {"n": 1}),))
            with pytest.raises(DecodeError):
                storage.commit(eff)
        assert storage.list_view("inventory") == {}
        assert isinstance(storage.claim("command:a", now=T0 + 1, lease_until=T0 + 2, message_type="X"), Busy)


class TestInMemoryStorage(StorageContract):
    __test__ = True

    @pytest.fixture
    def storage(self, registry: TypeRegistry, tmp_path: Any) -> Storage:
        return InMemoryStorage(registry)


class TestConnectedInMemoryStorage(StorageContract):
    """Every call through a client of its own over the same data: as one store."""

    __test__ = True

    @pytest.fixture
    def storage(self, registry: TypeRegistry, tmp_path: Any) -> Storage:
        return _RoundRobin(InMemoryStorage(registry))


class _RoundRobin:
    """Each call goes to the next of three clients of one :class:`InMemoryStorage`'s data."""

    def __init__(self, store: InMemoryStorage) -> None:
        self._clients = [store, store.connect(), store.connect()]
        self._n = 0

    def __getattr__(self, name: str) -> Any:
        self._n += 1
        return getattr(self._clients[self._n % 3], name)


def test_connected_clients_share_claims_tokens_and_rows(registry: TypeRegistry) -> None:
    a = InMemoryStorage(registry)
    b = a.connect()
    assert b is not a
    first = a.claim("command:x", now=T0, lease_until=T0 + 30, message_type="X")
    assert isinstance(first, Claimed)
    assert b.claim("command:x", now=T0 + 1, lease_until=T0 + 31, message_type="X") == Busy(T0 + 30)
    second = b.claim("command:x", now=T0 + 31, lease_until=T0 + 61, message_type="X")
    assert isinstance(second, Claimed)
    assert second.token > first.token  # one token sequence
    cmd = new_command(PlaceOrder("c", "S", 1, 5), "o1", sequence_no=1)
    with pytest.raises(LeaseLost):  # the fence holds across clients
        a.commit(Effect(key="command:x", token=first.token, message_type="X", expires_at=T0 + 99, command=cmd))
    b.commit(Effect(key="command:x", token=second.token, message_type="X", expires_at=T0 + 99, command=cmd))
    assert a.last_sequence("o1") == 1
    assert isinstance(a.claim("command:x", now=T0 + 50, lease_until=T0 + 80, message_type="X"), Duplicate)


class TestSqliteStorage(StorageContract):
    __test__ = True

    @pytest.fixture
    def storage(self, registry: TypeRegistry, tmp_path: Any) -> Iterator[Storage]:
        from flowgate.reference.sql import SqlStorage

        s = SqlStorage(registry, f"sqlite:///{tmp_path}/flowgate.db")
        self._handles = [s]
        yield s
        for h in self._handles[1:]:
            h.engine.dispose()
        s.drop()

    def reopen(self, storage: Storage) -> Storage:
        from flowgate.reference.sql import SqlStorage

        assert isinstance(storage, SqlStorage)
        other = SqlStorage(
            storage._registry, storage.engine.url.render_as_string(hide_password=False), prefix=storage.prefix
        )
        self._handles.append(other)
        return other


@pytest.mark.postgres
class TestPostgresStorage(StorageContract):
    __test__ = True

    @pytest.fixture
    def storage(self, registry: TypeRegistry, tmp_path: Any, postgres_url: str) -> Iterator[Storage]:
        from flowgate.reference.sql import SqlStorage

        s = SqlStorage(registry, postgres_url, prefix=f"t{uuid.uuid4().hex[:8]}_")
        self._handles = [s]
        yield s
        for h in self._handles[1:]:
            h.engine.dispose()
        s.drop()

    reopen = TestSqliteStorage.reopen


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_tables_of_the_previous_schema_are_upgraded(backend: str, registry: TypeRegistry, tmp_path: Any,
                                                    request: pytest.FixtureRequest) -> None:
    """A store created before the digest column (and, on PostgreSQL, with event_id VARCHAR(100))
    is upgraded in place: afterwards digests are stored and a 128-character eventId fits."""
    from sqlalchemy import text

    from flowgate.reference.sql import SqlStorage

    url = f"sqlite:///{tmp_path}/old.db" if backend == "sqlite" else request.getfixturevalue("postgres_url")
    prefix = f"u{uuid.uuid4().hex[:8]}_"
    old = SqlStorage(registry, url, prefix=prefix)
    with old.engine.begin() as c:
        c.execute(text(f'ALTER TABLE "{prefix}idempotency" DROP COLUMN digest'))
        if backend == "postgres":
            c.execute(text(f'ALTER TABLE "{prefix}commands" ALTER COLUMN event_id TYPE VARCHAR(100)'))
    new = SqlStorage(registry, url, prefix=prefix)
    try:
        c1 = new.claim("command:u", now=T0, lease_until=T0 + 30, message_type="X", digest="a" * 64)
        assert isinstance(c1, Claimed)
        assert new.claim("command:u", now=T0 + 1, lease_until=T0 + 2, message_type="X", digest="b" * 64) == \
            Conflict("a" * 64)
        cmd = new_command(PlaceOrder("c", "S", 1, 5), "o1", sequence_no=1, event_id="e" * 128)
        new.commit(Effect(key="command:u", token=c1.token, message_type="X", expires_at=T0 + 10, command=cmd))
        assert new.load_commands("o1") == [cmd]
    finally:
        new.drop()
        old.engine.dispose()
