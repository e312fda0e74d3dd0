"""Real processes: kill -9 between the check and the post, kill -9 after the post, two workers on one DB.

Each worker is ``python -m tests.watches.worker`` (the production scheduler, outbox and Slack deliverer
with a stand-in check); the fake Slack API runs in the test's event loop and counts what was posted.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import pytest_asyncio

from bot.watches.store import Limits, NewWatch, Store, watches
from tests.watches.helpers import dns_request
from tests.watches.slackfake import WatchFakeSlack

ROOT = Path(__file__).resolve().parents[2]


@pytest_asyncio.fixture
async def slack() -> AsyncIterator[WatchFakeSlack]:
    fake = WatchFakeSlack()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()
    assert fake.violations == []


class Workers:
    def __init__(self, tmp: Path, db_url: str, slack: WatchFakeSlack) -> None:
        self.tmp = tmp
        self.db_url = db_url
        self.slack = slack
        self.log = tmp / "checks.log"
        self.present = tmp / "present"
        self.procs: list[asyncio.subprocess.Process] = []

    async def start(self, **env: str) -> asyncio.subprocess.Process:
        full = dict(os.environ)
        full.update(
            PYTHONPATH=str(ROOT),
            WORKER_DB=self.db_url,
            WORKER_SLACK=self.slack.base_url,
            WORKER_LOG=str(self.log),
            WORKER_PRESENT=str(self.present),
        )
        full.update(env)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.watches.worker", cwd=ROOT, env=full, stdout=asyncio.subprocess.PIPE
        )
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        assert line.strip() == b"ready", line
        self.procs.append(proc)
        return proc

    async def stop_all(self) -> None:
        for proc in self.procs:
            if proc.returncode is None:
                proc.terminate()
                await asyncio.wait_for(proc.wait(), 30)

    def checks(self) -> Counter[str]:
        if not self.log.exists():
            return Counter()
        return Counter(line.split()[1] for line in self.log.read_text().splitlines())

    def pids(self) -> set[str]:
        return {line.split()[0] for line in self.log.read_text().splitlines()}


@pytest_asyncio.fixture
async def workers(tmp_path: Path, db_url: str, slack: WatchFakeSlack) -> AsyncIterator[Workers]:
    w = Workers(tmp_path, db_url, slack)
    try:
        yield w
    finally:
        await w.stop_all()


async def until(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


def add_watches(url: str, n: int, *, due: float) -> Store:
    store = Store.open(url, limits=Limits(per_channel=10_000, per_team=10_000))
    for i in range(n):
        spec = NewWatch(
            "T1", f"C{i:04d}", "U1", dns_request(f"d{i}.example"), thread_ts=f"1700000000.{i:06d}"
        )
        store.create_watch(spec, now=due, next_check_at=due, expires_at=due + 3600)
    return store


async def test_kill_9_between_check_and_post_then_restart_posts_once(
    workers: Workers, slack: WatchFakeSlack
) -> None:
    store = add_watches(workers.db_url, 1, due=time.time())
    workers.present.touch()  # the record is there: the first re-check passes
    first = await workers.start(WORKER_NO_OUTBOX="1")
    await until(lambda: store.watches_by_status("verified") != [])
    first.kill()  # SIGKILL: the success is committed with its outbox row, nothing was posted
    await first.wait()
    assert slack.posts() == []
    assert [r.status for r in store.outbox_rows()] == ["pending"]

    await workers.start()
    await until(lambda: [r.status for r in store.outbox_rows()] == ["sent"])
    await asyncio.sleep(0.5)
    assert slack.dedupe_keys() == ["watch:1:verified"]
    [post] = slack.posts()
    assert post["reply_broadcast"] is True and post["thread_ts"] == "1700000000.000000"
    assert workers.checks() == Counter({"d0.example": 1})
    store.close()


async def test_kill_9_after_the_post_is_reconciled_on_restart(
    workers: Workers, slack: WatchFakeSlack
) -> None:
    store = add_watches(workers.db_url, 1, due=time.time())
    workers.present.touch()
    crashing = await workers.start(WORKER_CRASH="after_post", WORKER_OUTBOX_LEASE="1")
    assert await asyncio.wait_for(crashing.wait(), 30) == -9
    assert slack.dedupe_keys() == ["watch:1:verified"]
    assert [r.status for r in store.outbox_rows()] == ["pending"]  # the post was never recorded

    await workers.start(WORKER_OUTBOX_LEASE="1")
    await until(lambda: [r.status for r in store.outbox_rows()] == ["sent"])
    assert slack.dedupe_keys() == ["watch:1:verified"]  # found by its metadata, not posted again
    assert any(c.method == "conversations.replies" for c in slack.calls)
    store.close()


@pytest.mark.postgres
async def test_two_processes_share_hundreds_of_due_watches(
    tmp_path: Path, pg_url: str, slack: WatchFakeSlack
) -> None:
    n = 300
    workers = Workers(tmp_path, pg_url, slack)
    store = add_watches(pg_url, n, due=time.time())
    try:
        # First round: nothing is there yet; each due watch is checked once and rescheduled an hour on.
        await workers.start(WORKER_CHECK_DELAY="0.02", WORKER_INTERVAL="3600")
        await workers.start(WORKER_CHECK_DELAY="0.02", WORKER_INTERVAL="3600")
        await until(lambda: sum(workers.checks().values()) >= n, 60)
        await asyncio.sleep(0.5)
        assert set(workers.checks().values()) == {1}, "a due watch was checked twice"
        # Second round: the records appeared and the hour has "passed": every watch is due again,
        # passes on its one check and is announced once.
        workers.present.touch()
        with store.engine.begin() as conn:
            conn.execute(watches.update().values(next_check_at=time.time()))
        await until(lambda: len(store.outbox_rows(status="sent")) == n, 90)
        await asyncio.sleep(0.5)
        assert set(workers.checks().values()) == {2}, "a due watch was checked more than once"
    finally:
        await workers.stop_all()
    keys = slack.dedupe_keys()
    assert len(keys) == len(set(keys)) == n
    assert len(workers.pids()) == 2, "both processes should have taken a share"
    assert {w.status for w in store.watches_by_status()} == {"verified"}
    store.close()
