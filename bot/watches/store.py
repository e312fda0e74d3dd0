"""Persistent state of watches: SQLAlchemy Core on SQLite (default) or PostgreSQL, one schema, one code path.

Tables (all times are UTC epoch seconds as floating-point numbers, which compare the same way on both
databases and need no time-zone handling; ``shared/research/reliability.md`` R43):

``watches``
    a stored :class:`~bot.model.CheckRequest` plus where to report (team, channel, thread), its schedule
    (``next_check_at``, ``expires_at``), the first and latest diagnosis, and a lease
    (``lease_owner``/``lease_token``/``lease_until``) that a scheduler holds while it re-checks the watch.
    A partial unique index allows one *active* watch per (team, channel, domain, method, target).
``subscriptions``
    a channel that wants every verification result for a domain of its workspace.
``outbox``
    posts to make, each with a unique ``dedupe_key``; created in the same transaction as the status
    change that causes them, delivered by :mod:`bot.watches.outbox` under a lease.
``rate_counters`` / ``command_receipts``
    per-user command rate limit and duplicate-request detection, kept here so that they hold across
    restarts and across several bot processes.

Why a synchronous engine behind :meth:`Store.run` rather than async drivers: every transaction here is
short (a few indexed statements), SQLAlchemy's synchronous pysqlite and psycopg dialects are the mature,
fully featured path on both databases (the ``BEGIN IMMEDIATE`` recipe of the SQLite dialect relies on
pysqlite connection events, and aiosqlite is not a dependency), and the blocking calls run on a small
dedicated thread pool, sized to the connection pool, so the event loop never waits on the database and
database work cannot starve the loop's default executor that DNS and aiohttp use.

SQLite settings (R42): WAL journal (readers do not block the writer), ``busy_timeout`` so a second
writer waits instead of failing, ``foreign_keys=ON``, ``synchronous=NORMAL`` (durable across process
crashes in WAL mode; a power loss can lose the last commits, which at worst repeats a check and is
caught by the outbox dedupe key), and every write transaction starts with ``BEGIN IMMEDIATE`` so that a
claim's read and write are one serialised unit: a deferred transaction that reads and then writes can
fail with SQLITE_BUSY without honouring the busy timeout. On PostgreSQL, claims use
``FOR UPDATE SKIP LOCKED`` and watch creation takes a per-workspace advisory lock so the limits count
exactly.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import uuid
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, ParamSpec, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.pool import StaticPool

from bot.model import CheckRequest, Diagnosis

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

WatchStatus = Literal["active", "verified", "expired", "cancelled"]
OutboxStatus = Literal["pending", "sent", "dead"]
EventKind = Literal["verified", "expired", "reminder"]

metadata = sa.MetaData()

# Column sizes follow what Slack and DNS can carry: Slack ids and timestamps are short; a domain is at
# most 253 characters; a file target is a URL we built ourselves (bounded by names.py).
_ID = 64

watches = sa.Table(
    "watches",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("team_id", sa.String(_ID), nullable=False),
    sa.Column("channel_id", sa.String(_ID), nullable=False),
    sa.Column("thread_ts", sa.String(_ID)),
    sa.Column("parent_ts", sa.String(_ID)),
    sa.Column("created_by", sa.String(_ID), nullable=False),
    sa.Column("origin", sa.String(16), nullable=False),
    sa.Column("domain", sa.String(255), nullable=False),
    sa.Column("method", sa.String(8), nullable=False),
    sa.Column("target", sa.String(2048), nullable=False),
    sa.Column("request_json", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("expires_at", sa.Double, nullable=False),
    sa.Column("next_check_at", sa.Double, nullable=False),
    sa.Column("checks_done", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_checked_at", sa.Double),
    sa.Column("last_verdict", sa.String(16)),
    sa.Column("last_error", sa.String(500)),
    sa.Column("failing_since", sa.Double),
    sa.Column("reminded", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("first_diagnosis", sa.Text),
    sa.Column("last_diagnosis", sa.Text),
    sa.Column("finished_at", sa.Double),
    sa.Column("lease_owner", sa.String(128)),
    sa.Column("lease_token", sa.String(64)),
    sa.Column("lease_until", sa.Double),
)
sa.Index("ix_watches_due", watches.c.status, watches.c.next_check_at)
sa.Index("ix_watches_channel", watches.c.team_id, watches.c.channel_id, watches.c.status)
sa.Index(
    "uq_watches_active",
    watches.c.team_id,
    watches.c.channel_id,
    watches.c.domain,
    watches.c.method,
    watches.c.target,
    unique=True,
    sqlite_where=sa.text("status = 'active'"),
    postgresql_where=sa.text("status = 'active'"),
)

subscriptions = sa.Table(
    "subscriptions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("team_id", sa.String(_ID), nullable=False),
    sa.Column("channel_id", sa.String(_ID), nullable=False),
    sa.Column("domain", sa.String(255), nullable=False),
    sa.Column("created_by", sa.String(_ID), nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.UniqueConstraint("team_id", "channel_id", "domain", name="uq_subscriptions"),
)
sa.Index("ix_subscriptions_domain", subscriptions.c.team_id, subscriptions.c.domain)

outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("dedupe_key", sa.String(255), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("team_id", sa.String(_ID), nullable=False),
    sa.Column("channel_id", sa.String(_ID), nullable=False),
    sa.Column("thread_ts", sa.String(_ID)),
    sa.Column("watch_id", sa.Integer, sa.ForeignKey("watches.id", ondelete="SET NULL")),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("failures", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", sa.Double, nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("sent_at", sa.Double),
    sa.Column("slack_ts", sa.String(_ID)),
    sa.Column("last_error", sa.String(500)),
    sa.Column("lease_owner", sa.String(128)),
    sa.Column("lease_token", sa.String(64)),
    sa.Column("lease_until", sa.Double),
    sa.UniqueConstraint("dedupe_key", name="uq_outbox_dedupe_key"),
)
sa.Index("ix_outbox_due", outbox.c.status, outbox.c.next_attempt_at)

rate_counters = sa.Table(
    "rate_counters",
    metadata,
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("window_start", sa.Double, primary_key=True),
    sa.Column("count", sa.Integer, nullable=False),
)

command_receipts = sa.Table(
    "command_receipts",
    metadata,
    sa.Column("team_id", sa.String(_ID), primary_key=True),
    sa.Column("request_key", sa.String(255), primary_key=True),
    sa.Column("received_at", sa.Double, nullable=False),
)


# ----------------------------------------------------------------------------------------------------
# Errors and records


class WatchRefused(Exception):
    """A watch or subscription command was refused; ``message`` is meant for the user as is."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True, slots=True)
class Limits:
    """Abuse controls (R44/R45 of the reliability research): active watches and command rate."""

    per_channel: int = 20
    per_team: int = 200
    commands_per_window: int = 10
    command_window: float = 60.0


@dataclass(frozen=True, slots=True)
class NewWatch:
    """Everything needed to start a watch."""

    team_id: str
    channel_id: str
    created_by: str
    request: CheckRequest
    thread_ts: str | None = None
    parent_ts: str | None = None
    first_diagnosis: Diagnosis | None = None
    origin: str = "slack"


@dataclass(frozen=True, slots=True)
class Watch:
    """One row of ``watches``."""

    id: int
    team_id: str
    channel_id: str
    thread_ts: str | None
    parent_ts: str | None
    created_by: str
    origin: str
    domain: str
    method: str
    target: str
    request: CheckRequest
    status: str
    created_at: float
    expires_at: float
    next_check_at: float
    checks_done: int
    last_checked_at: float | None
    last_verdict: str | None
    last_error: str | None
    failing_since: float | None
    reminded: bool
    first_diagnosis: dict[str, Any] | None
    last_diagnosis: dict[str, Any] | None
    finished_at: float | None

    @classmethod
    def from_row(cls, row: sa.Row[Any]) -> Watch:
        m = row._mapping
        return cls(
            id=int(m["id"]),
            team_id=m["team_id"],
            channel_id=m["channel_id"],
            thread_ts=m["thread_ts"],
            parent_ts=m["parent_ts"],
            created_by=m["created_by"],
            origin=m["origin"],
            domain=m["domain"],
            method=m["method"],
            target=m["target"],
            request=CheckRequest.from_dict(json.loads(m["request_json"])),
            status=m["status"],
            created_at=float(m["created_at"]),
            expires_at=float(m["expires_at"]),
            next_check_at=float(m["next_check_at"]),
            checks_done=int(m["checks_done"]),
            last_checked_at=m["last_checked_at"],
            last_verdict=m["last_verdict"],
            last_error=m["last_error"],
            failing_since=m["failing_since"],
            reminded=bool(m["reminded"]),
            first_diagnosis=json.loads(m["first_diagnosis"]) if m["first_diagnosis"] else None,
            last_diagnosis=json.loads(m["last_diagnosis"]) if m["last_diagnosis"] else None,
            finished_at=m["finished_at"],
        )


@dataclass(frozen=True, slots=True)
class Claim:
    """A watch this process holds the lease of; every write-back is fenced by ``token``."""

    watch: Watch
    token: str
    lease_until: float


@dataclass(frozen=True, slots=True)
class Subscription:
    team_id: str
    channel_id: str
    domain: str
    created_by: str
    created_at: float


@dataclass(frozen=True, slots=True)
class OutboxEvent:
    """Something to announce about a watch: it verified, expired, or still fails after an hour."""

    kind: EventKind
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CheckOutcome:
    """What one re-check changes on its watch; applied only while the lease is held."""

    status: WatchStatus
    checked_at: float
    next_check_at: float
    verdict: str | None
    diagnosis: dict[str, Any] | None
    error: str | None
    failing_since: float | None
    reminded: bool
    events: tuple[OutboxEvent, ...] = ()


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """One post to make, claimed under a lease."""

    id: int
    dedupe_key: str
    kind: str
    team_id: str
    channel_id: str
    thread_ts: str | None
    watch_id: int | None
    payload: dict[str, Any]
    attempts: int
    failures: int
    token: str


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """An outbox row as stored (for inspection and tests)."""

    id: int
    dedupe_key: str
    kind: str
    channel_id: str
    thread_ts: str | None
    status: str
    attempts: int
    failures: int
    next_attempt_at: float
    slack_ts: str | None
    last_error: str | None
    payload: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------------
# Engine


def normalize_url(url: str) -> str:
    """Map the contract's URL forms to SQLAlchemy drivers: ``postgresql://`` uses psycopg 3."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    if url.startswith("postgresql+psycopg2://"):
        return "postgresql+psycopg://" + url[len("postgresql+psycopg2://") :]
    return url


def make_engine(url: str) -> Engine:
    """Create the engine for ``url`` with the settings of the module docstring."""
    url = normalize_url(url)
    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed)
    if parsed.get_backend_name() != "postgresql":
        raise ValueError(f"DCV_DATABASE_URL must name SQLite or PostgreSQL, not {parsed.get_backend_name()}")
    return sa.create_engine(parsed, pool_pre_ping=True, pool_size=8, max_overflow=4)


def _sqlite_engine(parsed: sa.URL) -> Engine:
    memory = parsed.database in (None, "", ":memory:")
    if memory:
        # One shared connection, or every pool checkout would see its own empty database.
        engine = sa.create_engine(parsed, poolclass=StaticPool, connect_args={"check_same_thread": False})
    else:
        Path(parsed.database or "").expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(
            parsed, connect_args={"timeout": 30.0, "check_same_thread": False}, pool_size=4, max_overflow=4
        )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module (SQLAlchemy's documented recipe) so the
        # "begin" hook below decides between BEGIN and BEGIN IMMEDIATE.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        if not memory:
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        read_only = conn.get_execution_options().get("dcv_read_only", False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest version (Alembic migrations shipped in the package).

    Safe to call from several processes at once: PostgreSQL serialises them with an advisory lock taken
    in the migration transaction, SQLite with ``BEGIN IMMEDIATE``.
    """
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).with_name("migrations")))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")


def _insert(conn: Connection, table: sa.Table) -> Any:
    """The dialect's INSERT, which has ``on_conflict_do_nothing``/``on_conflict_do_update``."""
    if conn.dialect.name == "postgresql":
        return pg_dialect.insert(table)
    return sqlite_dialect.insert(table)


def _team_lock_key(team_id: str) -> int:
    # A stable 31-bit key: PostgreSQL advisory locks take a bigint, and crc32 does not vary per process
    # the way hash() does.
    return zlib.crc32(f"dcv-watch:{team_id}".encode()) & 0x7FFFFFFF


def _clip(text: str | None, limit: int = 500) -> str | None:
    return None if text is None else text[:limit]


def new_token() -> str:
    return uuid.uuid4().hex


# ----------------------------------------------------------------------------------------------------
# Store


class Store:
    """All reads and writes of watch state. Methods are synchronous; async code calls them via :meth:`run`."""

    def __init__(self, engine: Engine, *, limits: Limits | None = None, threads: int = 4) -> None:
        self.engine = engine
        self.limits = limits or Limits()
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="dcv-db")

    @classmethod
    def open(cls, url: str, *, limits: Limits | None = None, apply_migrations: bool = True) -> Store:
        """Open the database at ``url`` (the contract's ``DCV_DATABASE_URL``) and migrate it."""
        engine = make_engine(url)
        if apply_migrations:
            migrate(engine)
        threads = 4 if engine.dialect.name == "sqlite" else 8
        return cls(engine, limits=limits, threads=threads)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        self.engine.dispose()

    async def run(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a blocking store method on the database threads, off the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self.engine.connect() as raw:
            conn = raw.execution_options(dcv_read_only=True)
            with conn.begin():
                yield conn

    # -- watches ---------------------------------------------------------------------------------------

    def create_watch(self, spec: NewWatch, *, now: float, next_check_at: float, expires_at: float) -> Watch:
        """Insert an active watch, or raise :class:`WatchRefused` (duplicate, channel or workspace limit)."""
        request = spec.request
        try:
            with self._write() as conn:
                if conn.dialect.name == "postgresql":
                    conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_team_lock_key(spec.team_id))))
                existing = conn.execute(
                    sa.select(watches.c.id).where(
                        watches.c.team_id == spec.team_id,
                        watches.c.channel_id == spec.channel_id,
                        watches.c.domain == request.domain,
                        watches.c.method == request.method,
                        watches.c.target == request.target,
                        watches.c.status == "active",
                    )
                ).scalar()
                if existing is not None:
                    raise _duplicate(request, int(existing))
                self._check_limits(conn, spec.team_id, spec.channel_id)
                row = conn.execute(
                    watches.insert()
                    .values(
                        team_id=spec.team_id,
                        channel_id=spec.channel_id,
                        thread_ts=spec.thread_ts,
                        parent_ts=spec.parent_ts,
                        created_by=spec.created_by,
                        origin=spec.origin,
                        domain=request.domain,
                        method=request.method,
                        target=request.target,
                        request_json=json.dumps(request.to_dict()),
                        status="active",
                        created_at=now,
                        expires_at=expires_at,
                        next_check_at=next_check_at,
                        checks_done=0,
                        reminded=False,
                        failing_since=now if spec.first_diagnosis is not None else None,
                        last_verdict=spec.first_diagnosis.verdict.value if spec.first_diagnosis else None,
                        first_diagnosis=_dump(spec.first_diagnosis),
                        last_diagnosis=_dump(spec.first_diagnosis),
                        last_checked_at=now if spec.first_diagnosis is not None else None,
                    )
                    .returning(*watches.c)
                ).one()
                return Watch.from_row(row)
        except IntegrityError:
            # Only reachable when two creations race past the pre-check (the unique index is the
            # authority); look the winner up in a fresh transaction.
            winner = self.find_active(spec.team_id, spec.channel_id, request)
            raise _duplicate(request, winner.id if winner else None) from None

    def _check_limits(self, conn: Connection, team_id: str, channel_id: str) -> None:
        in_channel = conn.execute(
            sa.select(sa.func.count())
            .select_from(watches)
            .where(
                watches.c.team_id == team_id, watches.c.channel_id == channel_id, watches.c.status == "active"
            )
        ).scalar_one()
        if in_channel >= self.limits.per_channel:
            raise WatchRefused(
                "channel_limit",
                f"This channel already has {in_channel} active watches, the most one channel may have. "
                "Stop one with `/dcv unwatch ID` (see `/dcv list`) and try again.",
            )
        in_team = conn.execute(
            sa.select(sa.func.count())
            .select_from(watches)
            .where(watches.c.team_id == team_id, watches.c.status == "active")
        ).scalar_one()
        if in_team >= self.limits.per_team:
            raise WatchRefused(
                "team_limit",
                f"This workspace already has {in_team} active watches, the most dcv-bot keeps for one "
                "workspace. Some will finish or expire soon; try again later.",
            )

    def find_active(self, team_id: str, channel_id: str, request: CheckRequest) -> Watch | None:
        with self._read() as conn:
            row = conn.execute(
                sa.select(watches).where(
                    watches.c.team_id == team_id,
                    watches.c.channel_id == channel_id,
                    watches.c.domain == request.domain,
                    watches.c.method == request.method,
                    watches.c.target == request.target,
                    watches.c.status == "active",
                )
            ).first()
            return Watch.from_row(row) if row else None

    def get_watch(self, watch_id: int) -> Watch | None:
        with self._read() as conn:
            row = conn.execute(sa.select(watches).where(watches.c.id == watch_id)).first()
            return Watch.from_row(row) if row else None

    def set_thread(self, watch_id: int, *, thread_ts: str | None, parent_ts: str | None) -> None:
        """Record where the watch's thread is, once the bot has posted its parent message."""
        with self._write() as conn:
            conn.execute(
                watches.update()
                .where(watches.c.id == watch_id)
                .values(thread_ts=thread_ts, parent_ts=parent_ts)
            )

    def cancel_watches(self, team_id: str, channel_id: str, selector: str, *, now: float) -> list[Watch]:
        """Cancel this channel's active watches named by ``selector`` (a watch id or a domain).

        Returns the cancelled watches (empty when nothing matched). A leased watch is cancelled too: the
        scheduler's fenced write-back requires ``status='active'`` and so discards its result.
        """
        with self._write() as conn:
            where = [
                watches.c.team_id == team_id,
                watches.c.channel_id == channel_id,
                watches.c.status == "active",
            ]
            key = selector.strip().lstrip("#")
            if key.isdigit():
                where.append(watches.c.id == int(key))
            else:
                where.append(watches.c.domain == key)
            rows = conn.execute(
                watches.update()
                .where(*where)
                .values(
                    status="cancelled", finished_at=now, lease_owner=None, lease_token=None, lease_until=None
                )
                .returning(*watches.c)
            ).all()
            return [Watch.from_row(r) for r in rows]

    def channel_watches(self, team_id: str, channel_id: str) -> list[Watch]:
        with self._read() as conn:
            rows = conn.execute(
                sa.select(watches)
                .where(
                    watches.c.team_id == team_id,
                    watches.c.channel_id == channel_id,
                    watches.c.status == "active",
                )
                .order_by(watches.c.id)
            ).all()
            return [Watch.from_row(r) for r in rows]

    def watches_by_status(self, status: str | None = None) -> list[Watch]:
        with self._read() as conn:
            query = sa.select(watches).order_by(watches.c.id)
            if status is not None:
                query = query.where(watches.c.status == status)
            return [Watch.from_row(r) for r in conn.execute(query).all()]

    def claim_due(self, owner: str, *, now: float, limit: int, lease_seconds: float) -> list[Claim]:
        """Lease up to ``limit`` due active watches to ``owner`` (one statement, one short transaction).

        PostgreSQL: the candidate subquery takes ``FOR UPDATE SKIP LOCKED`` so concurrent claimers pass
        each other by; a row claimed and committed meanwhile is re-checked against the WHERE clause on
        its newest version and drops out. SQLite: SQLAlchemy omits the locking clause and
        ``BEGIN IMMEDIATE`` makes the whole statement exclusive.
        """
        if limit <= 0:
            return []
        token = new_token()
        until = now + lease_seconds
        rows = self._lease(
            watches,
            (watches.c.status == "active", watches.c.next_check_at <= now),
            (watches.c.next_check_at,),
            now=now,
            limit=limit,
            values={"lease_owner": owner, "lease_token": token, "lease_until": until},
        )
        claims = [Claim(Watch.from_row(r), token, until) for r in rows]
        claims.sort(key=lambda c: c.watch.next_check_at)
        return claims

    def _lease(
        self,
        table: sa.Table,
        due: tuple[sa.ColumnElement[bool], ...],
        order: tuple[sa.ColumnElement[Any], ...],
        *,
        now: float,
        limit: int,
        values: dict[str, Any],
    ) -> list[sa.Row[Any]]:
        """Take a lease on up to ``limit`` due rows of ``table`` whose lease is free or ran out; one
        statement, so two claimers never get the same row (see :meth:`claim_due`)."""
        candidates = (
            sa.select(table.c.id)
            .where(*due, sa.or_(table.c.lease_until.is_(None), table.c.lease_until < now))
            .order_by(*order)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        with self._write() as conn:
            return list(
                conn.execute(
                    table.update()
                    .where(table.c.id.in_(candidates.scalar_subquery()))
                    .values(**values)
                    .returning(*table.c)
                ).all()
            )

    def finish_check(self, claim: Claim, outcome: CheckOutcome) -> bool:
        """Write a re-check's result back, fenced by the lease token; queue its posts in the same transaction.

        Returns False (and changes nothing) when the lease was lost: another process re-claimed the watch
        after the lease ran out, or it was cancelled meanwhile.
        """
        watch = claim.watch
        with self._write() as conn:
            result = conn.execute(
                watches.update()
                .where(
                    watches.c.id == watch.id,
                    watches.c.lease_token == claim.token,
                    watches.c.status == "active",
                )
                .values(
                    status=outcome.status,
                    last_checked_at=outcome.checked_at,
                    next_check_at=outcome.next_check_at,
                    checks_done=watches.c.checks_done + 1,
                    last_verdict=outcome.verdict,
                    last_error=_clip(outcome.error),
                    last_diagnosis=json.dumps(outcome.diagnosis) if outcome.diagnosis is not None else None,
                    failing_since=outcome.failing_since,
                    reminded=outcome.reminded,
                    finished_at=None if outcome.status == "active" else outcome.checked_at,
                    lease_owner=None,
                    lease_token=None,
                    lease_until=None,
                )
            )
            if result.rowcount != 1:
                return False
            for ev in outcome.events:
                self._queue_event(conn, watch, ev, now=outcome.checked_at)
            return True

    def _queue_event(self, conn: Connection, watch: Watch, ev: OutboxEvent, *, now: float) -> None:
        """Insert the outbox rows for one event: the thread reply, the parent update, the subscribers."""
        base = f"watch:{watch.id}:{ev.kind}"
        payload = dict(ev.payload)
        payload.update(
            event=ev.kind,
            watch_id=watch.id,
            origin_team=watch.team_id,
            origin_channel=watch.channel_id,
            origin_thread_ts=watch.thread_ts,
            origin_parent_ts=watch.parent_ts,
        )
        rows: list[dict[str, Any]] = []
        if watch.origin == "slack":
            rows.append(
                _outbox_values(
                    base, ev.kind, watch.team_id, watch.channel_id, watch.thread_ts, watch.id, payload, now
                )
            )
            if ev.kind in ("verified", "expired") and watch.parent_ts:
                rows.append(
                    _outbox_values(
                        f"{base}:parent",
                        "parent_update",
                        watch.team_id,
                        watch.channel_id,
                        watch.parent_ts,
                        watch.id,
                        payload,
                        now,
                    )
                )
        subscribers = conn.execute(
            sa.select(subscriptions.c.channel_id).where(
                subscriptions.c.team_id == watch.team_id, subscriptions.c.domain == watch.domain
            )
        ).scalars()
        for channel in subscribers:
            # The success reply is broadcast to its own channel already; anything else there is in a
            # thread only, so a subscribed origin channel still gets its own post.
            if channel == watch.channel_id and ev.kind == "verified" and watch.origin == "slack":
                continue
            rows.append(
                _outbox_values(
                    f"{base}:sub:{channel}",
                    f"subscription_{ev.kind}",
                    watch.team_id,
                    channel,
                    None,
                    watch.id,
                    payload,
                    now,
                )
            )
        if rows:
            stmt = _insert(conn, outbox).values(rows).on_conflict_do_nothing(index_elements=["dedupe_key"])
            conn.execute(stmt)

    def release_leases(self, owner: str) -> int:
        """Give back every lease ``owner`` holds (graceful stop), so other processes need not wait it out."""
        with self._write() as conn:
            n = conn.execute(
                watches.update()
                .where(watches.c.lease_owner == owner)
                .values(lease_owner=None, lease_token=None, lease_until=None)
            ).rowcount
            n += conn.execute(
                outbox.update()
                .where(outbox.c.lease_owner == owner)
                .values(lease_owner=None, lease_token=None, lease_until=None)
            ).rowcount
            return int(n)

    # -- subscriptions ---------------------------------------------------------------------------------

    def subscribe(self, team_id: str, channel_id: str, domain: str, *, user_id: str, now: float) -> None:
        """Subscribe a channel to a domain, or raise :class:`WatchRefused` if it already is."""
        with self._write() as conn:
            stmt = (
                _insert(conn, subscriptions)
                .values(
                    team_id=team_id, channel_id=channel_id, domain=domain, created_by=user_id, created_at=now
                )
                .on_conflict_do_nothing(index_elements=["team_id", "channel_id", "domain"])
                .returning(subscriptions.c.id)
            )
            # RETURNING rather than rowcount: psycopg reports -1 for INSERT ... ON CONFLICT here.
            if conn.execute(stmt).first() is None:
                raise WatchRefused(
                    "duplicate_subscription",
                    f"This channel is already subscribed to {domain}; every verification result for it "
                    "in this workspace is posted here.",
                )

    def unsubscribe(self, team_id: str, channel_id: str, domain: str) -> bool:
        with self._write() as conn:
            n = conn.execute(
                subscriptions.delete().where(
                    subscriptions.c.team_id == team_id,
                    subscriptions.c.channel_id == channel_id,
                    subscriptions.c.domain == domain,
                )
            ).rowcount
            return bool(n)

    def channel_subscriptions(self, team_id: str, channel_id: str) -> list[Subscription]:
        with self._read() as conn:
            rows = conn.execute(
                sa.select(subscriptions)
                .where(subscriptions.c.team_id == team_id, subscriptions.c.channel_id == channel_id)
                .order_by(subscriptions.c.domain)
            ).all()
            return [
                Subscription(r.team_id, r.channel_id, r.domain, r.created_by, float(r.created_at))
                for r in rows
            ]

    # -- outbox ----------------------------------------------------------------------------------------

    def claim_outbox(self, owner: str, *, now: float, limit: int, lease_seconds: float) -> list[OutboxItem]:
        """Lease up to ``limit`` due pending posts; ``attempts`` counts claims, so >1 means "maybe posted"."""
        if limit <= 0:
            return []
        token = new_token()
        rows = self._lease(
            outbox,
            (outbox.c.status == "pending", outbox.c.next_attempt_at <= now),
            (outbox.c.next_attempt_at, outbox.c.id),
            now=now,
            limit=limit,
            values={
                "lease_owner": owner,
                "lease_token": token,
                "lease_until": now + lease_seconds,
                "attempts": outbox.c.attempts + 1,
            },
        )
        items = [
            OutboxItem(
                id=int(r.id),
                dedupe_key=r.dedupe_key,
                kind=r.kind,
                team_id=r.team_id,
                channel_id=r.channel_id,
                thread_ts=r.thread_ts,
                watch_id=r.watch_id,
                payload=json.loads(r.payload),
                attempts=int(r.attempts),
                failures=int(r.failures),
                token=token,
            )
            for r in rows
        ]
        items.sort(key=lambda i: i.id)
        return items

    def mark_sent(self, item: OutboxItem, *, slack_ts: str | None, now: float) -> bool:
        with self._write() as conn:
            n = conn.execute(
                outbox.update()
                .where(
                    outbox.c.id == item.id, outbox.c.lease_token == item.token, outbox.c.status == "pending"
                )
                .values(
                    status="sent",
                    slack_ts=slack_ts,
                    sent_at=now,
                    lease_owner=None,
                    lease_token=None,
                    lease_until=None,
                )
            ).rowcount
            return n == 1

    def reschedule_outbox(
        self, item: OutboxItem, *, at: float, error: str, failed: bool, dead: bool = False
    ) -> bool:
        """Put a post back for a later attempt or mark it dead; ``failed`` counts against the retry budget."""
        values: dict[str, Any] = {
            "next_attempt_at": at,
            "last_error": _clip(error),
            "lease_owner": None,
            "lease_token": None,
            "lease_until": None,
        }
        if failed:
            values["failures"] = outbox.c.failures + 1
        if dead:
            values["status"] = "dead"
        with self._write() as conn:
            n = conn.execute(
                outbox.update()
                .where(
                    outbox.c.id == item.id, outbox.c.lease_token == item.token, outbox.c.status == "pending"
                )
                .values(**values)
            ).rowcount
            return n == 1

    def outbox_rows(self, *, status: str | None = None) -> list[OutboxRow]:
        with self._read() as conn:
            query = sa.select(outbox).order_by(outbox.c.id)
            if status is not None:
                query = query.where(outbox.c.status == status)
            return [
                OutboxRow(
                    id=int(r.id),
                    dedupe_key=r.dedupe_key,
                    kind=r.kind,
                    channel_id=r.channel_id,
                    thread_ts=r.thread_ts,
                    status=r.status,
                    attempts=int(r.attempts),
                    failures=int(r.failures),
                    next_attempt_at=float(r.next_attempt_at),
                    slack_ts=r.slack_ts,
                    last_error=r.last_error,
                    payload=json.loads(r.payload),
                )
                for r in conn.execute(query).all()
            ]

    def next_outbox_due(self) -> float | None:
        with self._read() as conn:
            value = conn.execute(
                sa.select(sa.func.min(outbox.c.next_attempt_at)).where(outbox.c.status == "pending")
            ).scalar()
            return None if value is None else float(value)

    # -- abuse controls --------------------------------------------------------------------------------

    def hit_rate(self, key: str, *, now: float, limit: int | None = None, window: float | None = None) -> int:
        """Count one command for ``key`` in the current window; raise :class:`WatchRefused` over the limit."""
        limit = self.limits.commands_per_window if limit is None else limit
        window = self.limits.command_window if window is None else window
        start = float(int(now // window) * window)
        with self._write() as conn:
            stmt = _insert(conn, rate_counters).values(key=key, window_start=start, count=1)
            stmt = stmt.on_conflict_do_update(
                index_elements=["key", "window_start"], set_={"count": rate_counters.c.count + 1}
            ).returning(rate_counters.c.count)
            count = int(conn.execute(stmt).scalar_one())
            # Old windows are useless; trimming this key's history on every hit keeps the table tiny.
            conn.execute(
                rate_counters.delete().where(rate_counters.c.key == key, rate_counters.c.window_start < start)
            )
        if count > limit:
            wait = int(start + window - now) + 1
            raise WatchRefused(
                "rate_limited",
                f"Easy there: that is more than {limit} dcv commands in {int(window)} seconds. "
                f"Try again in about {wait} seconds.",
            )
        return count

    def record_receipt(self, team_id: str, request_key: str, *, now: float, keep: float = 3600.0) -> bool:
        """Remember a request (trigger id, action id); False if seen before (a retry or a double click)."""
        with self._write() as conn:
            stmt = (
                _insert(conn, command_receipts)
                .values(team_id=team_id, request_key=request_key[:255], received_at=now)
                .on_conflict_do_nothing(index_elements=["team_id", "request_key"])
                .returning(command_receipts.c.team_id)
            )
            fresh = conn.execute(stmt).first() is not None
            conn.execute(command_receipts.delete().where(command_receipts.c.received_at < now - keep))
            return fresh


def _outbox_values(
    key: str,
    kind: str,
    team_id: str,
    channel_id: str,
    thread_ts: str | None,
    watch_id: int,
    payload: dict[str, Any],
    now: float,
) -> dict[str, Any]:
    return {
        "dedupe_key": key,
        "kind": kind,
        "team_id": team_id,
        "channel_id": channel_id,
        "thread_ts": thread_ts,
        "watch_id": watch_id,
        "payload": json.dumps(payload),
        "status": "pending",
        "attempts": 0,
        "failures": 0,
        "next_attempt_at": now,
        "created_at": now,
    }


def _dump(diagnosis: Diagnosis | None) -> str | None:
    return None if diagnosis is None else json.dumps(diagnosis.to_dict())


def _duplicate(request: CheckRequest, watch_id: int | None) -> WatchRefused:
    ident = f" (watch #{watch_id})" if watch_id is not None else ""
    return WatchRefused(
        "duplicate",
        f"This channel is already watching the {request.method.upper()} check of {request.target}{ident}. "
        f"I'll post in its thread when it passes; `/dcv unwatch {watch_id or request.domain}` stops it.",
    )


def active_counts(store: Store) -> dict[str, int]:
    """Number of watches per status (for the benchmark and operators)."""
    with store._read() as conn:
        rows = conn.execute(sa.select(watches.c.status, sa.func.count()).group_by(watches.c.status)).tuples()
        return {status: int(count) for status, count in rows}
