"""Scheduler and outbox in one process, on SQLite and PostgreSQL, driven by a settable clock."""

from __future__ import annotations

import asyncio
import random

import pytest

from bot.model import Diagnosis, Finding, Severity, Verdict
from bot.watches.outbox import OutboxSender
from bot.watches.schedule import HOUR, WatchSchedule
from bot.watches.scheduler import Scheduler, decide
from bot.watches.store import Store
from tests.watches.conftest import Clock
from tests.watches.helpers import FakeChecker, RecordingDeliverer, new_watch


def start(
    store: Store,
    clock: Clock,
    *,
    domain: str = "example.com",
    schedule: WatchSchedule | None = None,
    **kw: object,
) -> int:
    schedule = schedule or WatchSchedule(jitter=0)
    spec = new_watch(domain, **kw)  # type: ignore[arg-type]
    now = clock()
    watch = store.create_watch(
        spec,
        now=now,
        next_check_at=schedule.first_check_at(now, None, random.Random()),
        expires_at=schedule.expires_at(now, "dns", None),
    )
    return watch.id


def make(store: Store, clock: Clock, checker: FakeChecker, **kw: object) -> Scheduler:
    return Scheduler(store, checker, WatchSchedule(jitter=0), clock=clock, rng=random.Random(1), **kw)  # type: ignore[arg-type]


def sender(store: Store, clock: Clock, deliverer: RecordingDeliverer, **kw: object) -> OutboxSender:
    return OutboxSender(store, deliverer, clock=clock, channel_interval=0, rng=random.Random(1), **kw)  # type: ignore[arg-type]


async def test_pending_watch_passes_and_posts_once(store: Store, clock: Clock) -> None:
    store.subscribe("T1", "C9", "example.com", user_id="U2", now=clock())
    wid = start(store, clock)
    checker = FakeChecker()
    sched = make(store, clock, checker)
    assert await sched.run_once() == 0  # not due before the minimum interval
    clock.advance(60)
    assert await sched.run_once() == 1
    assert store.get_watch(wid).status == "active"  # type: ignore[union-attr]
    checker.verdicts["example.com"] = Verdict.PASS
    clock.advance(60)
    assert await sched.run_once() == 1
    assert store.get_watch(wid).status == "verified"  # type: ignore[union-attr]
    deliverer = RecordingDeliverer()
    out = sender(store, clock, deliverer)
    while await out.run_once():
        pass
    clock.advance(3600)
    assert await sched.run_once() == 0
    assert await out.run_once() == 0
    assert sorted(deliverer.keys()) == sorted(
        [f"watch:{wid}:verified", f"watch:{wid}:verified:parent", f"watch:{wid}:verified:sub:C9"]
    )
    reply = next(p for p in deliverer.posts if p.kind == "verified")
    assert reply.thread_ts == "100.1"
    assert reply.payload["took"] == pytest.approx(120)
    assert "verdict pending → pass" in reply.payload["changes"]
    fan = next(p for p in deliverer.posts if p.kind == "subscription_verified")
    assert fan.channel_id == "C9" and fan.thread_ts is None
    assert fan.payload["origin_channel"] == "C1" and fan.payload["origin_thread_ts"] == "100.1"
    assert checker.calls["example.com"] == 2


async def test_reminder_once_after_an_hour_then_expiry_once(store: Store, clock: Clock) -> None:
    schedule = WatchSchedule(jitter=0, ttl=3 * HOUR)
    wid = start(store, clock, schedule=schedule)
    store.subscribe("T1", "C9", "example.com", user_id="U2", now=clock())
    checker = FakeChecker(verdicts={"example.com": Verdict.FAIL})
    sched = Scheduler(store, checker, schedule, clock=clock, rng=random.Random(1))
    created = clock()
    for _ in range(100):
        watch = store.get_watch(wid)
        assert watch is not None
        if watch.status != "active":
            break
        clock.now = max(clock.now, watch.next_check_at)
        await sched.run_once()
    watch = store.get_watch(wid)
    assert watch is not None and watch.status == "expired"
    assert watch.finished_at == pytest.approx(created + 3 * HOUR)
    rows = store.outbox_rows()
    kinds = sorted(r.kind for r in rows)
    assert kinds == ["expired", "parent_update", "reminder", "subscription_expired", "subscription_reminder"]
    reminder = next(r for r in rows if r.kind == "reminder")
    assert reminder.payload["failing_for"] == pytest.approx(HOUR)  # on the hour mark, not later
    assert sched.stats.reminders == 1 and sched.stats.expired == 1


async def test_lease_that_expires_mid_check_loses_its_write(store: Store, clock: Clock) -> None:
    wid = start(store, clock)
    clock.advance(60)
    slow = FakeChecker(verdicts={"example.com": Verdict.PASS}, gate=asyncio.Event())
    fast = FakeChecker(verdicts={"example.com": Verdict.PASS})
    a = make(store, clock, slow, lease_seconds=30, owner="A")
    b = make(store, clock, fast, lease_seconds=30, owner="B")
    [claim] = await store.run(store.claim_due, "A", now=clock(), limit=1, lease_seconds=30)
    task = asyncio.create_task(a.process(claim))
    await asyncio.sleep(0.05)
    assert slow.calls["example.com"] == 1
    assert await b.run_once() == 0  # A's lease still holds
    clock.advance(31)  # A's check overran its lease; B takes the watch over
    assert await b.run_once() == 1
    assert slow.gate is not None
    slow.gate.set()
    await task
    assert a.stats.lease_lost == 1 and b.stats.verified == 1
    assert [r.dedupe_key for r in store.outbox_rows() if r.kind == "verified"] == [f"watch:{wid}:verified"]
    assert store.get_watch(wid).checks_done == 1  # type: ignore[union-attr]


async def test_concurrency_is_bounded_and_everything_due_is_checked(store: Store, clock: Clock) -> None:
    for i in range(30):
        start(store, clock, domain=f"d{i}.example", channel=f"C{i}", team=f"T{i}")
    clock.advance(60)
    in_flight = 0
    peak = 0

    async def check(request):  # type: ignore[no-untyped-def]
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        return await FakeChecker()(request)

    sched = Scheduler(store, check, WatchSchedule(jitter=0), clock=clock, concurrency=4, poll_interval=0.05)
    runner = asyncio.create_task(sched.run())
    for _ in range(200):
        await asyncio.sleep(0.02)
        if sched.stats.checked >= 30:
            break
    sched.stop()
    await runner
    assert sched.stats.checked == 30
    assert peak <= 4


async def test_graceful_stop_releases_leases(store: Store, clock: Clock) -> None:
    wid = start(store, clock)
    clock.advance(60)
    checker = FakeChecker(gate=asyncio.Event())
    sched = make(store, clock, checker, poll_interval=0.05, stop_grace=0.1)
    runner = asyncio.create_task(sched.run())
    for _ in range(100):
        await asyncio.sleep(0.02)
        if checker.calls["example.com"]:
            break
    sched.stop()
    await asyncio.wait_for(runner, 10)
    # The cancelled check left no lease behind: another process can claim the watch at once.
    [claim] = await store.run(store.claim_due, "other", now=clock(), limit=5, lease_seconds=30)
    assert claim.watch.id == wid


async def test_cancelled_watch_discards_the_running_check(store: Store, clock: Clock) -> None:
    wid = start(store, clock)
    clock.advance(60)
    checker = FakeChecker(verdicts={"example.com": Verdict.PASS}, gate=asyncio.Event())
    sched = make(store, clock, checker)
    [claim] = await store.run(store.claim_due, "A", now=clock(), limit=1, lease_seconds=30)
    task = asyncio.create_task(sched.process(claim))
    await asyncio.sleep(0.02)
    assert store.cancel_watches("T1", "C1", str(wid), now=clock())
    assert checker.gate is not None
    checker.gate.set()
    await task
    assert store.outbox_rows() == []
    assert store.get_watch(wid).status == "cancelled"  # type: ignore[union-attr]


async def test_check_errors_are_retried_with_backoff(store: Store, clock: Clock) -> None:
    wid = start(store, clock)
    clock.advance(60)

    async def broken(request):  # type: ignore[no-untyped-def]
        raise RuntimeError("resolver exploded")

    sched = make(store, clock, FakeChecker())
    sched.run_check = broken
    await sched.run_once()
    watch = store.get_watch(wid)
    assert watch is not None and watch.status == "active"
    assert watch.last_error == "RuntimeError: resolver exploded"
    assert watch.next_check_at >= clock() + 60
    assert watch.last_diagnosis is not None  # the last good diagnosis is kept


# -- outbox ---------------------------------------------------------------------------------------------


async def verified_row(store: Store, clock: Clock, *, parent: bool = False) -> None:
    start(store, clock, parent_ts="100.0" if parent else None)
    clock.advance(60)
    await make(store, clock, FakeChecker(verdicts={"example.com": Verdict.PASS})).run_once()


async def test_429_delays_the_post_and_does_not_drop_it(store: Store, clock: Clock) -> None:
    await verified_row(store, clock)
    deliverer = RecordingDeliverer(rate_limit=[7.0])
    out = sender(store, clock, deliverer)
    t0 = clock()
    assert await out.run_once() == 1
    [row] = store.outbox_rows()
    assert row.status == "pending" and row.failures == 0
    assert t0 + 7 <= row.next_attempt_at <= t0 + 8
    clock.advance(5)
    assert await out.run_once() == 0  # not before Retry-After
    assert deliverer.posts == []
    clock.advance(4)
    assert await out.run_once() == 1
    assert len(deliverer.posts) == 1
    assert store.outbox_rows()[0].status == "sent"
    assert out.stats.rate_limited == 1


async def test_errors_back_off_then_dead(store: Store, clock: Clock) -> None:
    await verified_row(store, clock)
    deliverer = RecordingDeliverer(fail=100)
    out = sender(store, clock, deliverer, max_failures=3)
    gaps = []
    for _ in range(3):
        assert await out.run_once() == 1
        row = store.outbox_rows()[0]
        gaps.append(row.next_attempt_at - clock())
        clock.now = row.next_attempt_at
    row = store.outbox_rows()[0]
    assert row.status == "dead" and row.failures == 3
    assert gaps[0] < gaps[1]
    assert await out.run_once() == 0


async def test_permanent_error_is_dead_at_once(store: Store, clock: Clock) -> None:
    await verified_row(store, clock)
    out = sender(store, clock, RecordingDeliverer(permanent=True))
    await out.run_once()
    assert store.outbox_rows()[0].status == "dead"


async def test_post_made_before_a_crash_is_reconciled_not_repeated(store: Store, clock: Clock) -> None:
    await verified_row(store, clock)
    deliverer = RecordingDeliverer()
    # A process claims the row and posts, then dies before recording it.
    [item] = await store.run(store.claim_outbox, "dead-process", now=clock(), limit=5, lease_seconds=60)
    await deliverer.deliver(item)
    clock.advance(61)
    out = sender(store, clock, deliverer)
    assert await out.run_once() == 1
    assert len(deliverer.posts) == 1
    assert out.stats.reconciled == 1
    assert store.outbox_rows()[0].status == "sent"


def test_trouble_on_the_bots_side_keeps_the_last_diagnosis_and_sends_no_reminder(
    store: Store, clock: Clock
) -> None:
    wid = start(store, clock)
    watch = store.get_watch(wid)
    assert watch is not None
    unreachable = Diagnosis(
        watch.request,
        Verdict.FAIL,
        "could not check",
        [Finding("RESOLVER_UNREACHABLE", Severity.ERROR, "resolvers down")],
        [],
    )
    later = clock() + 2 * HOUR  # failing for two hours: a real failure would send the reminder now
    outcome = decide(
        watch, unreachable, None, now=later, schedule=WatchSchedule(jitter=0), rng=random.Random(1)
    )
    assert outcome.status == "active"
    assert outcome.events == ()
    assert outcome.diagnosis == watch.last_diagnosis
    really_failing = Diagnosis(watch.request, Verdict.FAIL, "no record", [], [])
    contrast = decide(
        watch, really_failing, None, now=later, schedule=WatchSchedule(jitter=0), rng=random.Random(1)
    )
    assert [e.kind for e in contrast.events] == ["reminder"]
    assert "resolvers did not answer" in str(outcome.error)
