"""Watches through the running Slack app: signed ``/dcv`` commands over HTTP, the real DNS engine against
the loopback DNS world, the production outbox deliverer posting to the strict fake Slack API.

The scheduler and the sender are driven by hand with a settable clock, so "an hour later" takes no time.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from bot.config import Settings
from bot.render import blocks
from bot.slack.app import Services, SlackContext
from bot.slack.runtime import serve
from bot.slack.watches import SlackDeliverer, SlackWatchService, posting_client
from bot.watches.outbox import OutboxSender
from bot.watches.schedule import WatchSchedule
from bot.watches.scheduler import Scheduler
from bot.watches.store import Limits, Store
from tests.conftest import DnsWorld, WorldFactory
from tests.slack.conftest import GOOD_VALUE, BotFactory, RunningBot, slack_settings, start_bot  # noqa: F401
from tests.watches.conftest import Clock
from tests.watches.slackfake import WatchFakeSlack

RECORD = {"_dnsauth": {"TXT": GOOD_VALUE}}


@pytest_asyncio.fixture
async def fake_slack() -> AsyncIterator[WatchFakeSlack]:
    """Replaces the Slack tests' fake with the one that knows the watch methods (same strictness)."""
    slack = WatchFakeSlack()
    await slack.start()
    try:
        yield slack
    finally:
        await slack.stop()
    assert slack.violations == []


class Harness:
    def __init__(self, bot: RunningBot, store: Store, clock: Clock, settings: Settings) -> None:
        self.bot = bot
        self.store = store
        self.clock = clock
        schedule = WatchSchedule.from_settings(settings)
        self.scheduler = Scheduler(store, bot.services.run_check, schedule, clock=clock, rng=random.Random(1))
        self.sender = OutboxSender(
            store, SlackDeliverer(posting_client(bot.settings)), clock=clock, channel_interval=0
        )

    async def tick(self) -> None:
        """Move the clock to the next due watch, re-check it, deliver what that queued."""
        active = self.store.watches_by_status("active")
        if active:
            self.clock.now = max(self.clock.now, min(w.next_check_at for w in active))
        await self.scheduler.run_once()
        while await self.sender.run_once():
            pass

    async def hook_texts(self) -> list[str]:
        return [str(h.get("text")) for h in self.bot.slack.hooks]


@pytest_asyncio.fixture
async def harness(tmp_path: Path, start_bot: BotFactory) -> AsyncIterator[Any]:  # noqa: F811
    created: list[Store] = []

    async def factory(world: DnsWorld) -> Harness:
        store = Store.open(f"sqlite:///{tmp_path / 'w.sqlite3'}", limits=Limits(commands_per_window=5))
        created.append(store)
        clock = Clock(time.time())
        service = SlackWatchService(
            store,
            WatchSchedule.from_settings(world.settings),
            allow_private=True,
            clock=clock,
            rng=random.Random(1),
        )
        services = Services.from_settings(world.settings, watches=service)
        services.admit = service.admit  # as watch_runtime does in production
        bot = await start_bot(world.settings, services=services)
        return Harness(bot, store, clock, world.settings)

    yield factory
    for store in created:
        store.close()


async def test_pending_check_is_watched_until_the_record_appears_and_posts_once(
    dns_world: WorldFactory, harness: Any, fake_slack: WatchFakeSlack
) -> None:
    world = await dns_world(None, serial=1)
    world.set_records(RECORD, serial=2, only=[0])  # only ns1 has it: propagating
    h: Harness = await harness(world)
    status, _, _ = await h.bot.command(f"dns example.com {GOOD_VALUE}")
    assert status == 200
    await fake_slack.wait_for(
        lambda: any("Watching" in str(c.params.get("text")) for c in fake_slack.calls_to("chat.postMessage"))
    )
    [watch] = h.store.watches_by_status("active")
    assert watch.first_diagnosis is not None and watch.first_diagnosis["verdict"] == "pending"
    parent_ts = watch.thread_ts
    watching = next(
        c.params for c in fake_slack.calls_to("chat.postMessage") if "Watching" in str(c.params["text"])
    )
    assert watching["thread_ts"] == parent_ts
    rendered = json.dumps(watching["blocks"])
    assert "<!date^" in rendered and blocks.ACTION_UNWATCH in rendered  # says when, offers "Stop watching"

    await h.tick()  # ns2 and ns3 still lag
    assert h.store.get_watch(watch.id).status == "active"  # type: ignore[union-attr]
    world.set_records(RECORD, serial=2)
    world.flush()
    await h.tick()
    assert h.store.get_watch(watch.id).status == "verified"  # type: ignore[union-attr]
    for _ in range(3):  # later rounds find nothing more to do
        h.clock.advance(3600)
        await h.tick()

    success = fake_slack.posts(kind="verified")
    assert len(success) == 1
    assert success[0]["reply_broadcast"] is True and success[0]["thread_ts"] == parent_ts
    assert "passes now" in success[0]["text"]
    text = json.dumps(success[0]["blocks"])
    assert "What changed" in text and "verdict pending" in text
    updates = [c.params for c in fake_slack.calls_to("chat.update") if c.params.get("ts") == parent_ts]
    assert "after" in updates[-1]["text"] and "passes" in updates[-1]["text"]


async def test_watch_subscribe_list_unwatch_commands(
    dns_world: WorldFactory, harness: Any, fake_slack: WatchFakeSlack
) -> None:
    world = await dns_world(None)
    h: Harness = await harness(world)
    await h.bot.command("subscribe example.com", channel_id="C0SUBS")
    await h.bot.command("subscribe example.com", channel_id="C0SUBS")
    await h.bot.command(f"watch dns example.com {GOOD_VALUE}")
    await h.bot.command(f"watch dns example.com {GOOD_VALUE}")
    await fake_slack.wait_for(lambda: len(fake_slack.hooks) >= 3)
    texts = await h.hook_texts()
    assert any("Subscribed" in t for t in texts)
    assert any("already subscribed" in t for t in texts)
    assert any("already watching" in t for t in texts)
    [watch] = h.store.watches_by_status("active")
    assert watch.thread_ts is not None  # the "Watching" parent message is the thread

    await h.bot.command("list")
    await fake_slack.wait_for(lambda: any("watches" in str(x.get("text")) for x in fake_slack.hooks))
    listing = json.dumps([x for x in fake_slack.hooks if "watches" in str(x.get("text"))][-1])
    assert f"#{watch.id}" in listing

    # The record appears; the success goes to the thread and, once, to the subscribed channel.
    world.set_records(RECORD, serial=2)
    world.flush()
    await h.tick()
    assert len(fake_slack.posts(kind="verified")) == 1
    [fan] = [p for p in fake_slack.messages.values() if p.get("channel") == "C0SUBS"]
    assert "See the thread" in json.dumps(fan["blocks"])
    assert "fake.slack.com/archives/C0001/p" in json.dumps(fan["blocks"])

    await h.bot.command(f"unwatch {watch.id}")
    await fake_slack.wait_for(lambda: any("No active watch" in str(x.get("text")) for x in fake_slack.hooks))


async def test_rate_limit_answers_politely(
    dns_world: WorldFactory, harness: Any, fake_slack: WatchFakeSlack
) -> None:
    world = await dns_world(None)
    h: Harness = await harness(world)
    for _ in range(6):
        await h.bot.command("list")
    await fake_slack.wait_for(lambda: any("Easy there" in str(x.get("text")) for x in fake_slack.hooks))


async def test_rate_limit_covers_checks_too(
    dns_world: WorldFactory, harness: Any, fake_slack: WatchFakeSlack
) -> None:
    world = await dns_world({"_dnsauth": {"TXT": GOOD_VALUE}})
    h: Harness = await harness(world)
    for _ in range(6):
        status, _, _ = await h.bot.command(f"dns example.com {GOOD_VALUE}")
        assert status == 200  # acked at once either way
    await fake_slack.wait_for(lambda: any("Easy there" in str(x.get("text")) for x in fake_slack.hooks))
    await fake_slack.wait_for(lambda: len(fake_slack.calls_to("chat.update")) == 5)
    parents = [c for c in fake_slack.calls_to("chat.postMessage") if not c.params.get("thread_ts")]
    assert len(parents) == 5  # the sixth check never ran


async def test_stop_watching_button_and_failing_offer(
    dns_world: WorldFactory, harness: Any, fake_slack: WatchFakeSlack
) -> None:
    world = await dns_world({"_dnsauth": {"TXT": "something-else"}})
    h: Harness = await harness(world)
    await h.bot.command(f"dns example.com {GOOD_VALUE}")
    await fake_slack.wait_for(
        lambda: any(
            blocks.ACTION_WATCH in json.dumps(c.params.get("blocks"))
            for c in fake_slack.calls_to("chat.postMessage")
        )
    )
    offer = next(
        c.params
        for c in fake_slack.calls_to("chat.postMessage")
        if blocks.ACTION_WATCH in json.dumps(c.params.get("blocks"))
    )
    value = next(e["value"] for b in offer["blocks"] if b["type"] == "actions" for e in b["elements"])
    service = h.bot.services.watches
    assert isinstance(service, SlackWatchService)

    async def respond(**kwargs: Any) -> None:
        return None

    ctx = SlackContext(
        "T0001",
        "C0001",
        "U0USER",
        posting_client(h.bot.settings),
        respond,
        message_ts=offer["thread_ts"],
        thread_ts=offer["thread_ts"],
    )
    assert await service.on_action(ctx, blocks.ACTION_WATCH, value) is None
    [watch] = h.store.watches_by_status("active")
    assert watch.request.expected == GOOD_VALUE and watch.thread_ts == offer["thread_ts"]
    # A forged button value is validated like typed input.
    bad = await service.on_action(
        ctx,
        blocks.ACTION_WATCH,
        json.dumps({"method": "dns", "domain": "localhost", "target": "localhost", "expected": "x"}),
    )
    assert bad is not None
    message = await service.on_action(ctx, blocks.ACTION_UNWATCH, str(watch.id))
    assert message is not None and "Stopped watching" in message.text
    assert h.store.watches_by_status("active") == []


async def test_dcv_serve_runs_the_watch_runtime(tmp_path: Path, fake_slack: WatchFakeSlack) -> None:
    """Production wiring: ``serve`` without injected services opens the store and runs scheduler + sender."""
    settings = slack_settings(
        Settings(allow_private=True), fake_slack, database_url=f"sqlite:///{tmp_path / 'serve.sqlite3'}"
    )
    stop = asyncio.Event()
    ready: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(serve(settings, stop=stop, ready=ready.set_result, host="127.0.0.1"))
    await asyncio.wait_for(ready, 15)
    stop.set()
    assert await asyncio.wait_for(task, 30) == 0
    store = Store.open(settings.database_url)
    assert store.watches_by_status() == []  # migrated and empty
    store.close()


async def test_dcv_serve_refuses_an_unusable_database(fake_slack: WatchFakeSlack) -> None:
    import io

    settings = slack_settings(Settings(), fake_slack, database_url="postgresql://nobody@127.0.0.1:1/none")
    err = io.StringIO()
    assert await serve(settings, stop=asyncio.Event(), stderr=err, host="127.0.0.1") == 2
    assert "DCV_DATABASE_URL" in err.getvalue()


pytestmark = pytest.mark.timeout(120)
