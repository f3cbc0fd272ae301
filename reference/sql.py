"""SQLAlchemy adapter of :class:`~flowgate.reference.stores.Storage` (SQLite default, PostgreSQL supported).

All five stores live on one engine so :meth:`SqlStorage.commit` is ONE transaction whose first
statement is the fenced idempotency completion (``UPDATE ... WHERE key=:k AND fencing_token=:t
AND status='IN_PROGRESS'``). On PostgreSQL that update row-locks the record, so a concurrent
takeover waits for the commit and then sees COMPLETED. Times are epoch seconds (floats) from the
caller's clock, so a virtual clock works. Fencing tokens are random 62-bit integers, unique
across re-inserts of the same key (a sequential counter would restart at 1 after a release or a
cleanup and could let a stale worker commit).
"""

from __future__ import annotations

import functools
import json
import threading
import time
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import (
    BigInteger,
    Column,
    Double,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    create_engine,
    delete,
    func,
    insert,
    inspect,
    or_,
    select,
    text,
    true,
    update,
)
from sqlalchemy import text as sql_text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import (
    DataError,
    DBAPIError,
    DisconnectionError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    ProgrammingError,
    SQLAlchemyError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout

from flowgate.reference.errors import (
    LeaseLost,
    SequenceConflict,
    StoreError,
    StoreRefused,
    StoreUnavailable,
    WriteConflict,
)
from flowgate.reference.hooks import SYSTEM_RANDOMNESS, Randomness
from flowgate.reference.idempotency import (
    COMPLETED,
    DEAD_LETTERED,
    IN_PROGRESS,
    Busy,
    Claimed,
    ClaimResult,
    Conflict,
)
from flowgate.reference.messages import Command, TypeRegistry, decode, encode
from flowgate.reference.stores import (
    UNCHECKED,
    DeadLetter,
    Effect,
    State,
    as_command,
    check_effect_keys,
    digests_match,
    duplicate_of,
    outbox_to_json,
    with_sequence,
)

DEFAULT_URL = "sqlite:///flowgate.db"


class SqlStorage:
    """The SQL :class:`~flowgate.reference.stores.Storage`. ``prefix`` namespaces the tables (tests, tenants)."""

    def __init__(
        self,
        registry: TypeRegistry,
        url: str = DEFAULT_URL,
        *,
        prefix: str = "flowgate_",
        engine: Engine | None = None,
        create: bool = True,
        randomness: Randomness = SYSTEM_RANDOMNESS,
    ) -> None:
        self._registry = registry
        #: draws the fencing tokens (:class:`flowgate.reference.hooks.Randomness`, default the OS CSPRNG)
        self._random = randomness
        if engine is None:
            connect_args: dict[str, Any] = (
                {"timeout": 30, "check_same_thread": False} if url.startswith("sqlite") else {}
            )
            engine = create_engine(url, connect_args=connect_args, pool_pre_ping=True)
        self.engine = engine
        self._lock = threading.Lock() if engine.dialect.name == "sqlite" else None
        md = MetaData()
        p = prefix
        self.commands = Table(
            f"{p}commands",
            md,
            Column("entity_id", String(200), primary_key=True),
            Column("sequence_no", BigInteger, primary_key=True, autoincrement=False),
            # 200 >= the 128 characters strict decoding allows (it was 100: PostgreSQL refused a
            # valid 101..128-character eventId that SQLite stored)
            Column("event_id", String(200), nullable=False),
            Column("name", String(200), nullable=False),
            Column("body", Text, nullable=False),
        )
        self.entities = Table(
            f"{p}entities",
            md,
            Column("kind", String(100), primary_key=True),
            Column("entity_id", String(200), primary_key=True),
            Column("state", Text, nullable=False),
        )
        self.views = Table(
            f"{p}views",
            md,
            Column("view", String(100), primary_key=True),
            Column("row_id", String(200), primary_key=True),
            Column("state", Text, nullable=False),
        )
        self.idempotency = Table(
            f"{p}idempotency",
            md,
            Column("key", String(500), primary_key=True),
            Column("status", String(20), nullable=False),
            Column("lease_expires_at", Double, nullable=False),
            Column("fencing_token", BigInteger, nullable=False),
            Column("expires_at", Double, nullable=False),
            Column("message_type", String(200)),
            Column("outbox", Text, nullable=False, default="[]"),
            # message_digest() of what the key identifies (NULL: unknown, matches any); added to a
            # table created before it existed by _upgrade_schema
            Column("digest", String(64)),
            Index(f"ix_{p}idempotency_expires_at", "expires_at"),
        )
        self.dead = Table(
            f"{p}dead_letters",
            md,
            Column("id", Integer, primary_key=True, autoincrement=True),
            Column("key", String(500), nullable=False),
            Column("message_type", String(200), nullable=False),
            Column("entity_id", String(200), nullable=False),
            Column("sequence_no", BigInteger, nullable=False),
            Column("reason", Text, nullable=False),
            Column("body", Text, nullable=False),
            Column("recorded_at", Double, nullable=False),
        )
        # allocate_sequence: the last number allocated per entity (docs/decisions.md D25)
        self.sequences = Table(
            f"{p}sequences",
            md,
            Column("entity_id", String(200), primary_key=True),
            Column("last_no", BigInteger, nullable=False),
        )
        # record_publish: commands numbered and recorded, not yet marked sent
        self.unsent = Table(
            f"{p}unsent",
            md,
            Column("entity_id", String(200), primary_key=True),
            Column("sequence_no", BigInteger, primary_key=True, autoincrement=False),
            Column("event_id", String(200), nullable=False),
            Column("body", Text, nullable=False),
            # one record per command: two concurrent publishes of one command number it once
            Index(f"ux_{p}unsent_event", "entity_id", "event_id", unique=True),
        )
        self.metadata = md
        self.prefix = prefix
        if create:
            _create_tables(md, engine)
            self._upgrade_schema()

    def __repr__(self) -> str:
        return f"SqlStorage({self.engine.url!r})"

    def _upgrade_schema(self) -> None:
        """Bring tables created by an older version up to this schema (idempotent, additive):
        the idempotency ``digest`` column, and on PostgreSQL ``commands.event_id`` widened to
        VARCHAR(200) (SQLite does not enforce VARCHAR lengths). Safe to run concurrently: a
        column another process added meanwhile is tolerated."""
        insp = inspect(self.engine)
        idem = self.idempotency.name
        if "digest" not in {c["name"] for c in insp.get_columns(idem)}:
            try:
                with self._guard(), self.engine.begin() as c:
                    c.execute(text(f'ALTER TABLE "{idem}" ADD COLUMN digest VARCHAR(64)'))
            except (OperationalError, ProgrammingError):
                if "digest" not in {c["name"] for c in inspect(self.engine).get_columns(idem)}:
                    raise
        if self.engine.dialect.name == "postgresql":
            cmds = self.commands.name
            width = {c["name"]: getattr(c["type"], "length", None) for c in insp.get_columns(cmds)}
            if (width.get("event_id") or 200) < 200:
                with self.engine.begin() as c:
                    c.execute(text(f'ALTER TABLE "{cmds}" ALTER COLUMN event_id TYPE VARCHAR(200)'))

    def drop(self) -> None:
        """Drop this storage's tables (tests)."""
        self.metadata.drop_all(self.engine)
        self.engine.dispose()

    def ping(self) -> None:
        """``SELECT 1`` on a pooled connection (the breaker's probe); :class:`StoreUnavailable` if
        the database does not answer."""
        with self.engine.connect() as c:
            c.execute(sql_text("SELECT 1"))

    # -- reads -------------------------------------------------------------------------------
    def load_commands(self, entity_id: str) -> list[Command]:
        with self.engine.connect() as c:
            rows = c.execute(
                select(self.commands.c.body)
                .where(self.commands.c.entity_id == entity_id)
                .order_by(self.commands.c.sequence_no)
            ).all()
        out = []
        for (body,) in rows:
            message = decode(body, self._registry)
            assert isinstance(message, Command)
            out.append(message)
        return out

    def last_sequence(self, entity_id: str) -> int:
        with self.engine.connect() as c:
            value = c.execute(
                select(func.max(self.commands.c.sequence_no)).where(self.commands.c.entity_id == entity_id)
            ).scalar()
        return int(value or 0)

    # -- sequence numbers (producers) --------------------------------------------------------
    def _allocate(self, c: Any, entity_id: str) -> int:
        """One ``INSERT ... ON CONFLICT DO UPDATE ... RETURNING`` on the entity's counter row: the
        row lock (PostgreSQL) / the single writer (SQLite) makes it atomic across processes; the
        counter never falls behind the command store's highest applied number."""
        s, cmds = self.sequences, self.commands
        applied = (
            select(func.coalesce(func.max(cmds.c.sequence_no), 0))
            .where(cmds.c.entity_id == entity_id)
            .scalar_subquery()
        )
        if self.engine.dialect.name == "postgresql":
            start: Any = postgresql.insert(s)
            higher = func.greatest(s.c.last_no, applied)
        else:
            start = sqlite.insert(s)
            higher = func.max(s.c.last_no, applied)
        stmt = (
            start.values(entity_id=entity_id, last_no=applied + 1)
            .on_conflict_do_update(index_elements=[s.c.entity_id], set_={"last_no": higher + 1})
            .returning(s.c.last_no)
        )
        return int(c.execute(stmt).scalar_one())

    def allocate_sequence(self, entity_id: str) -> int:
        with self._guard(), self.engine.begin() as c:
            return self._allocate(c, entity_id)

    def record_publish(self, command: Command) -> Command:
        u = self.unsent
        recorded = select(u.c.body).where(
            u.c.entity_id == command.entity_id, u.c.event_id == command.event_id
        )
        for _ in range(3):
            try:
                with self._guard(), self.engine.begin() as c:
                    body = c.execute(recorded).scalar()
                    if body is not None:
                        return as_command(decode(body, self._registry))
                    numbered = with_sequence(command, self._allocate(c, command.entity_id))
                    c.execute(
                        insert(u).values(
                            entity_id=numbered.entity_id,
                            sequence_no=numbered.metadata.sequence_no,
                            event_id=numbered.event_id,
                            body=encode(numbered),
                        )
                    )
                return numbered
            except IntegrityError:
                continue  # the same command recorded concurrently: its record wins (rolled back here)
        raise StoreError(f"could not record {command.event_id!r}: record keeps changing")

    def unsent_commands(self, entity_id: str | None = None) -> list[Command]:
        u = self.unsent
        query = select(u.c.body).order_by(u.c.entity_id, u.c.sequence_no)
        if entity_id is not None:
            query = query.where(u.c.entity_id == entity_id)
        with self.engine.connect() as c:
            rows = c.execute(query).all()
        return [as_command(decode(body, self._registry)) for (body,) in rows]

    def mark_sent(self, entity_id: str, sequence_no: int) -> None:
        u = self.unsent
        with self._guard(), self.engine.begin() as c:
            c.execute(delete(u).where(u.c.entity_id == entity_id, u.c.sequence_no == sequence_no))

    def get_entity(self, kind: str, entity_id: str) -> State | None:
        t = self.entities
        with self.engine.connect() as c:
            text = c.execute(select(t.c.state).where(t.c.kind == kind, t.c.entity_id == entity_id)).scalar()
        return None if text is None else _loads(text)

    def get_view(self, view: str, row_id: str) -> State | None:
        t = self.views
        with self.engine.connect() as c:
            text = c.execute(select(t.c.state).where(t.c.view == view, t.c.row_id == row_id)).scalar()
        return None if text is None else _loads(text)

    def list_view(self, view: str) -> dict[str, State]:
        t = self.views
        with self.engine.connect() as c:
            rows = c.execute(select(t.c.row_id, t.c.state).where(t.c.view == view)).all()
        return {r: _loads(s) for r, s in rows}

    def dead_letters(self) -> list[DeadLetter]:
        t = self.dead
        with self.engine.connect() as c:
            rows = c.execute(select(t).order_by(t.c.id)).mappings().all()
        return [
            DeadLetter(
                r["key"],
                r["message_type"],
                r["entity_id"],
                int(r["sequence_no"]),
                r["reason"],
                r["body"],
                float(r["recorded_at"]),
            )
            for r in rows
        ]

    # -- idempotency -------------------------------------------------------------------------
    def claim(
        self, key: str, *, now: float, lease_until: float, message_type: str, digest: str | None = None
    ) -> ClaimResult:
        """One conditional write per attempt: INSERT, else a takeover UPDATE of an expired lease
        (same or unknown digest), of an expired COMPLETED record or of a DEAD_LETTERED one (same content, or
        expired: no effect, D24); else the row read decides
        between Duplicate, Busy and Conflict (nothing written)."""
        t = self.idempotency
        # a lease-expired IN_PROGRESS record is taken over only by the same (or an unknown) content
        same_content = true() if digest is None else or_(t.c.digest.is_(None), t.c.digest == digest)
        for _ in range(5):
            token = self._random.randbits(62)
            try:
                with self._guard(), self.engine.begin() as c:
                    c.execute(
                        insert(t).values(
                            key=key,
                            status=IN_PROGRESS,
                            lease_expires_at=lease_until,
                            fencing_token=token,
                            expires_at=lease_until,
                            message_type=message_type,
                            outbox="[]",
                            digest=digest,
                        )
                    )
                return Claimed(token, lease_until)
            except IntegrityError:
                pass
            with self._guard(), self.engine.begin() as c:
                taken = c.execute(
                    update(t)
                    .where(
                        t.c.key == key,
                        or_(
                            and_(t.c.status == IN_PROGRESS, t.c.lease_expires_at <= now, same_content),
                            and_(t.c.status == COMPLETED, t.c.expires_at <= now),
                            # dead-lettered: no effect, decided again by the same content (D24)
                            and_(t.c.status == DEAD_LETTERED, or_(t.c.expires_at <= now, same_content)),
                        ),
                    )
                    .values(
                        status=IN_PROGRESS,
                        lease_expires_at=lease_until,
                        fencing_token=token,
                        expires_at=lease_until,
                        message_type=message_type,
                        outbox="[]",
                        digest=digest,
                    )
                ).rowcount
            if taken == 1:
                return Claimed(token, lease_until)
            with self.engine.connect() as c:
                row = c.execute(
                    select(t.c.status, t.c.lease_expires_at, t.c.expires_at, t.c.outbox, t.c.digest).where(
                        t.c.key == key
                    )
                ).first()
            if row is None:
                continue  # released or cleaned up meanwhile: try the insert again
            if row.status != IN_PROGRESS and float(row.expires_at) <= now:
                continue  # expired meanwhile: the takeover will take it
            if not digests_match(row.digest, digest):
                return Conflict(str(row.digest))
            if row.status == COMPLETED:
                return duplicate_of(row.outbox, self._registry)
            if row.status == DEAD_LETTERED:
                continue  # taken over meanwhile, or the digest matched just now: try again
            return Busy(float(row.lease_expires_at))
        raise StoreError(f"could not claim {key!r}: record keeps changing")

    def extend(self, key: str, token: int, lease_until: float) -> bool:
        t = self.idempotency
        with self._guard(), self.engine.begin() as c:
            n = c.execute(
                update(t)
                .where(t.c.key == key, t.c.fencing_token == token, t.c.status == IN_PROGRESS)
                .values(
                    lease_expires_at=func.max(t.c.lease_expires_at, lease_until)
                    if self.engine.dialect.name == "sqlite"
                    else func.greatest(t.c.lease_expires_at, lease_until),
                    expires_at=lease_until,
                )
            ).rowcount
        return n == 1

    def release(self, key: str, token: int) -> None:
        t = self.idempotency
        with self._guard(), self.engine.begin() as c:
            c.execute(delete(t).where(t.c.key == key, t.c.fencing_token == token, t.c.status == IN_PROGRESS))

    def cleanup(self, now: float, *, abandoned_after: float, limit: int | None = None) -> int:
        """:func:`~flowgate.reference.stores.cleanable` as one DELETE of at most ``limit`` rows. The rows
        are chosen by a sub-select that, on PostgreSQL, locks them ``FOR UPDATE SKIP LOCKED``: a
        row a claim, heartbeat or commit is writing right now is skipped (left for the next
        sweep), never waited for; the outer DELETE re-checks the rule on the locked rows. On
        SQLite the in-process writer lock serialises it with the writers (one batch at a time)."""
        t = self.idempotency
        rule = and_(
            t.c.expires_at <= now,
            or_(t.c.status != IN_PROGRESS, t.c.lease_expires_at <= now - abandoned_after),
        )
        chosen = select(t.c.key).where(rule)
        if limit is not None:
            chosen = chosen.limit(limit)
        chosen = chosen.with_for_update(skip_locked=True)
        with self._guard(), self.engine.begin() as c:
            return int(c.execute(delete(t).where(rule, t.c.key.in_(chosen.scalar_subquery()))).rowcount)

    # -- the atomic commit -------------------------------------------------------------------
    def commit(self, effect: Effect) -> tuple[Command, ...]:
        check_effect_keys(effect)
        t = self.idempotency
        try:
            with self._guard(), self.engine.begin() as c:
                n = c.execute(
                    update(t)
                    .where(
                        t.c.key == effect.key,
                        t.c.fencing_token == effect.token,
                        t.c.status == IN_PROGRESS,
                    )
                    .values(
                        status=DEAD_LETTERED if effect.dead_letter is not None else COMPLETED,
                        expires_at=effect.expires_at,
                        message_type=effect.message_type,
                        outbox=outbox_to_json(effect.outbox),
                    )
                ).rowcount
                if n != 1:
                    raise LeaseLost(f"claim on {effect.key!r} is no longer ours")
                if effect.command is not None:
                    cmd = effect.command
                    try:
                        with c.begin_nested():
                            c.execute(
                                insert(self.commands).values(
                                    entity_id=cmd.entity_id,
                                    sequence_no=cmd.metadata.sequence_no,
                                    event_id=cmd.event_id,
                                    name=cmd.name,
                                    body=encode(cmd),
                                )
                            )
                    except IntegrityError as exc:
                        raise SequenceConflict(
                            f"{cmd.entity_id} already has seq {cmd.metadata.sequence_no}"
                        ) from exc
                for w in effect.entities:
                    e = self.entities
                    self._write_row(
                        c,
                        e,
                        and_(e.c.kind == w.kind, e.c.entity_id == w.entity_id),
                        {"kind": w.kind, "entity_id": w.entity_id},
                        w.state,
                        w.expected,
                        f"{w.kind} {w.entity_id}",
                    )
                for v in effect.views:
                    vt = self.views
                    self._write_row(
                        c,
                        vt,
                        and_(vt.c.view == v.view, vt.c.row_id == v.row_id),
                        {"view": v.view, "row_id": v.row_id},
                        v.state,
                        v.expected,
                        f"view {v.view} row {v.row_id}",
                    )
                if effect.dead_letter is not None:
                    d = effect.dead_letter
                    c.execute(
                        insert(self.dead).values(
                            key=d.key,
                            message_type=d.message_type,
                            entity_id=d.entity_id,
                            sequence_no=d.sequence_no,
                            reason=d.reason,
                            body=d.body,
                            recorded_at=d.recorded_at,
                        )
                    )
                numbered = []
                for follow in effect.commands:  # D33: numbered after the effect's own command
                    cmd = with_sequence(follow, self._allocate(c, follow.entity_id))
                    c.execute(
                        insert(self.unsent).values(
                            entity_id=cmd.entity_id,
                            sequence_no=cmd.metadata.sequence_no,
                            event_id=cmd.event_id,
                            body=encode(cmd),
                        )
                    )
                    numbered.append(cmd)
                if numbered:
                    c.execute(
                        update(t)
                        .where(t.c.key == effect.key)
                        .values(outbox=outbox_to_json(effect.outbox, tuple(numbered)))
                    )
                return tuple(numbered)
        except (LeaseLost, SequenceConflict, WriteConflict):
            raise
        except SQLAlchemyError as exc:
            raise StoreError(f"commit of {effect.key!r} failed: {exc}") from exc

    @staticmethod
    def _write_row(
        c: Any,
        table: Table,
        where: Any,
        ident: dict[str, str],
        state: State,
        expected: State | None,
        what: str,
    ) -> None:
        """Write one row, conditionally on its current content (optimistic concurrency).

        ``expected is None``: the row must not exist (INSERT; a concurrent insert violates the
        primary key). Otherwise an UPDATE guarded by the expected serialised state; zero rows
        means someone else wrote in between. :data:`UNCHECKED` keeps the old blind upsert.
        """
        text = _dumps(state)
        if expected is UNCHECKED:
            if c.execute(update(table).where(where).values(state=text)).rowcount == 0:
                c.execute(insert(table).values(**ident, state=text))
            return
        if expected is None:
            try:
                with c.begin_nested():
                    c.execute(insert(table).values(**ident, state=text))
            except IntegrityError as exc:
                raise WriteConflict(f"{what} was created since it was read") from exc
            return
        guarded = and_(where, table.c.state == _dumps(expected))
        if c.execute(update(table).where(guarded).values(state=text)).rowcount != 1:
            raise WriteConflict(f"{what} changed since it was read")

    def _guard(self) -> Any:
        """SQLite allows one writer: serialise writers in-process instead of hitting 'database is locked'."""
        return self._lock if self._lock is not None else _NullCtx()


def _create_tables(md: MetaData, engine: Engine, attempts: int = 5) -> None:
    """``CREATE TABLE`` for whatever is missing, tolerating another process doing the same.

    ``create_all`` checks, then creates: two workers starting together on a new database can both
    see a table missing and one fails with "already exists". That failure is retried (the next
    check sees the table), so concurrent start-up is safe on SQLite and PostgreSQL alike.
    """
    for attempt in range(attempts):
        try:
            md.create_all(engine, checkfirst=True)
            return
        except (OperationalError, ProgrammingError, IntegrityError):
            if attempt == attempts - 1:
                raise
            time.sleep(0.05 * (attempt + 1))


class _NullCtx:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _dumps(state: dict[str, Any]) -> str:
    return json.dumps(state, sort_keys=True, separators=(",", ":"))


def _loads(text: str) -> State:
    value = json.loads(text)
    assert isinstance(value, dict)
    return value


P = ParamSpec("P")
R = TypeVar("R")
_UNAVAILABLE = (OperationalError, InterfaceError, DisconnectionError, PoolTimeout)


def translate_error(exc: BaseException) -> BaseException:
    """The store error ``exc`` stands for (see the module docstring); ``exc`` itself if it is
    already one of ours (or not a database error at all)."""
    cause = exc
    if type(exc) is StoreError and isinstance(exc.__cause__, SQLAlchemyError):
        cause = exc.__cause__  # wrapped by a method (commit): classify what the driver said
    elif not isinstance(exc, SQLAlchemyError):
        return exc
    if isinstance(cause, _UNAVAILABLE) or (isinstance(cause, DBAPIError) and cause.connection_invalidated):
        return StoreUnavailable(f"store unavailable: {cause}")
    if isinstance(cause, DataError):
        return StoreRefused(f"store refused the statement: {cause}")
    if cause is exc:
        return StoreError(f"store error: {cause}")
    return exc


def _translated(method: Callable[P, R]) -> Callable[P, R]:
    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        except (SQLAlchemyError, StoreError) as exc:
            translated = translate_error(exc)
            if translated is exc:
                raise
            raise translated from exc

    return wrapper


#: the Storage port of SqlStorage, each method behind :func:`_translated`
TRANSLATED_METHODS = (
    "load_commands",
    "last_sequence",
    "allocate_sequence",
    "record_publish",
    "unsent_commands",
    "mark_sent",
    "get_entity",
    "get_view",
    "list_view",
    "dead_letters",
    "claim",
    "extend",
    "release",
    "cleanup",
    "commit",
    "ping",
)
for _name in TRANSLATED_METHODS:
    setattr(SqlStorage, _name, _translated(getattr(SqlStorage, _name)))
del _name
