"""The watch store on SQLite and PostgreSQL: schema, migrations, uniqueness, limits, fencing."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from bot.model import Verdict
from bot.watches.store import (
    CheckOutcome,
    OutboxEvent,
    Store,
    WatchRefused,
    make_engine,
    metadata,
    migrate,
    normalize_url,
)
from tests.watches.helpers import dns_request, make_diag, new_watch

NOW = 1_800_000_000.0


def create(store: Store, *args: object, now: float = NOW, **kw: object) -> int:
    spec = new_watch(*args, **kw)  # type: ignore[arg-type]
    return store.create_watch(spec, now=now, next_check_at=now + 60, expires_at=now + 3600).id


def test_url_normalisation() -> None:
    assert normalize_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_url("sqlite:///x.db") == "sqlite:///x.db"
    with pytest.raises(ValueError, match="SQLite or PostgreSQL"):
        make_engine("mysql://u@h/db")


def test_migrations_match_the_schema_and_are_idempotent(db_url: str) -> None:
    engine = make_engine(db_url)
    migrate(engine)
    migrate(engine)  # a second start changes nothing
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"version_table": "dcv_alembic_version"})
        assert ctx.get_current_revision() == "0001"
        diff = compare_metadata(ctx, metadata)
    assert diff == []
    engine.dispose()


def test_sqlite_pragmas(tmp_path: object) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/p.sqlite3")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    engine.dispose()


def test_duplicate_watch_is_refused_politely_and_allowed_after_it_ends(store: Store) -> None:
    wid = create(store)
    with pytest.raises(WatchRefused) as exc:
        create(store)
    assert exc.value.reason == "duplicate"
    assert f"#{wid}" in exc.value.message
    # Another channel, or another domain, is a different watch.
    create(store, channel="C2")
    create(store, "other.example")
    assert [w.id for w in store.cancel_watches("T1", "C1", str(wid), now=NOW)] == [wid]
    create(store)  # the partial unique index only covers active watches


def test_channel_and_team_limits(store: Store) -> None:
    for i in range(5):
        create(store, f"d{i}.example")
    with pytest.raises(WatchRefused) as exc:
        create(store, "d5.example")
    assert exc.value.reason == "channel_limit"
    assert "unwatch" in exc.value.message
    for i in range(3):
        create(store, f"e{i}.example", channel="C2")
    with pytest.raises(WatchRefused) as exc:
        create(store, "f.example", channel="C3")
    assert exc.value.reason == "team_limit"
    create(store, "f.example", channel="C3", team="T2")  # other workspaces are not affected


def test_subscriptions(store: Store) -> None:
    store.subscribe("T1", "C1", "example.com", user_id="U1", now=NOW)
    with pytest.raises(WatchRefused) as exc:
        store.subscribe("T1", "C1", "example.com", user_id="U2", now=NOW)
    assert exc.value.reason == "duplicate_subscription"
    store.subscribe("T1", "C2", "example.com", user_id="U1", now=NOW)
    assert [s.domain for s in store.channel_subscriptions("T1", "C1")] == ["example.com"]
    assert store.unsubscribe("T1", "C1", "example.com")
    assert not store.unsubscribe("T1", "C1", "example.com")
    assert store.channel_subscriptions("T1", "C1") == []


def test_rate_limit_is_per_key_and_window(store: Store) -> None:
    for _ in range(3):
        store.hit_rate("T1:U1", now=NOW)
    with pytest.raises(WatchRefused) as exc:
        store.hit_rate("T1:U1", now=NOW + 1)
    assert exc.value.reason == "rate_limited"
    assert "Try again in about" in exc.value.message
    store.hit_rate("T1:U2", now=NOW + 1)
    store.hit_rate("T1:U1", now=NOW + 61)  # next window


def test_rate_limit_state_survives_reopening(db_url: str) -> None:
    first = Store.open(db_url)
    for _ in range(first.limits.commands_per_window):
        first.hit_rate("T:U", now=NOW)
    first.close()
    second = Store.open(db_url)
    with pytest.raises(WatchRefused):
        second.hit_rate("T:U", now=NOW + 1)
    second.close()


def test_receipts_detect_repeats(store: Store) -> None:
    assert store.record_receipt("T1", "trigger-1", now=NOW)
    assert not store.record_receipt("T1", "trigger-1", now=NOW + 1)
    assert store.record_receipt("T2", "trigger-1", now=NOW)


def test_claims_are_leased_and_fenced(store: Store) -> None:
    wid = create(store)
    assert store.claim_due("a", now=NOW, limit=10, lease_seconds=30) == []  # not due yet
    [claim] = store.claim_due("a", now=NOW + 60, limit=10, lease_seconds=30)
    assert claim.watch.id == wid
    assert store.claim_due("b", now=NOW + 61, limit=10, lease_seconds=30) == []  # leased
    [stolen] = store.claim_due("b", now=NOW + 91, limit=10, lease_seconds=30)  # lease ran out
    outcome = CheckOutcome("active", NOW + 92, NOW + 200, "pending", None, None, NOW, False)
    assert not store.finish_check(claim, outcome)  # the first holder lost its write
    assert store.finish_check(stolen, outcome)
    watch = store.get_watch(wid)
    assert watch is not None and watch.checks_done == 1 and watch.next_check_at == NOW + 200


def test_success_queues_thread_parent_and_subscriber_posts_once(store: Store) -> None:
    store.subscribe("T1", "C1", "example.com", user_id="U1", now=NOW)  # the watch's own channel
    store.subscribe("T1", "C9", "example.com", user_id="U1", now=NOW)
    store.subscribe("T2", "C8", "example.com", user_id="U1", now=NOW)  # another workspace: not told
    wid = create(store)
    [claim] = store.claim_due("a", now=NOW + 60, limit=10, lease_seconds=30)
    final = make_diag(dns_request(), Verdict.PASS).to_dict()
    outcome = CheckOutcome(
        "verified",
        NOW + 61,
        NOW + 61,
        "pass",
        final,
        None,
        None,
        False,
        (OutboxEvent("verified", {"final": final}),),
    )
    assert store.finish_check(claim, outcome)
    assert not store.finish_check(claim, outcome)  # replaying the same success changes nothing
    keys = sorted(r.dedupe_key for r in store.outbox_rows())
    assert keys == sorted(
        [f"watch:{wid}:verified", f"watch:{wid}:verified:parent", f"watch:{wid}:verified:sub:C9"]
    )
    assert store.get_watch(wid).status == "verified"  # type: ignore[union-attr]


def test_cancel_by_domain_only_touches_this_channel(store: Store) -> None:
    create(store)
    other = create(store, channel="C2")
    cancelled = store.cancel_watches("T1", "C1", "example.com", now=NOW)
    assert len(cancelled) == 1
    assert store.get_watch(other).status == "active"  # type: ignore[union-attr]
    assert store.cancel_watches("T1", "C1", "example.com", now=NOW) == []


def test_concurrent_claims_never_share_a_watch(db_url: str) -> None:
    """Threads claiming from one database (two connections) split the due watches without overlap."""
    from concurrent.futures import ThreadPoolExecutor

    store = Store.open(db_url)
    try:
        with store.engine.begin() as conn:
            conn.execute(sa.text("SELECT 1"))
        for i in range(60):
            store.create_watch(
                new_watch(f"d{i}.example", channel=f"C{i}"), now=NOW, next_check_at=NOW, expires_at=NOW + 3600
            )

        def claim(owner: str) -> list[int]:
            got: list[int] = []
            for _ in range(20):
                got += [c.watch.id for c in store.claim_due(owner, now=NOW, limit=3, lease_seconds=60)]
            return got

        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(claim, ["a", "b", "c", "d"]))
        flat = [w for r in results for w in r]
        assert len(flat) == len(set(flat)) == 60
    finally:
        store.close()
