"""Routing of watch/subscription commands and buttons to the WatchCommands hook (issue 6 plugs in)."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import urlencode

import pytest

from bot.model import Diagnosis
from bot.render import blocks
from bot.render.blocks import Message
from bot.slack.app import Services, SlackContext, WatchCommands
from bot.slack.commands import ListCommand, SubscribeCommand, UnsubscribeCommand, UnwatchCommand, WatchCommand
from tests.conftest import DnsWorld
from tests.slack.conftest import GOOD_VALUE, BotFactory, sign
from tests.slack.fakeslack import FakeSlack

pytestmark = pytest.mark.usefixtures("no_violations")


class RecordingWatches:
    """A WatchCommands that records what it was asked and answers with a short message."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any, SlackContext]] = []
        self.done: list[tuple[Diagnosis, str, str | None]] = []

    def _answer(self, name: str, command: Any, ctx: SlackContext) -> Message:
        self.calls.append((name, command, ctx))
        return blocks.notice(f"{name} ok")

    async def watch(self, ctx: SlackContext, command: WatchCommand) -> Message | None:
        return self._answer("watch", command, ctx)

    async def unwatch(self, ctx: SlackContext, command: UnwatchCommand) -> Message | None:
        return self._answer("unwatch", command, ctx)

    async def subscribe(self, ctx: SlackContext, command: SubscribeCommand) -> Message | None:
        return self._answer("subscribe", command, ctx)

    async def unsubscribe(self, ctx: SlackContext, command: UnsubscribeCommand) -> Message | None:
        return self._answer("unsubscribe", command, ctx)

    async def list_watches(self, ctx: SlackContext, command: ListCommand) -> Message | None:
        return self._answer("list", command, ctx)

    async def on_action(self, ctx: SlackContext, action_id: str, value: str) -> Message | None:
        return self._answer("action", (action_id, value), ctx)

    async def on_check_done(
        self, diagnosis: Diagnosis, channel: str, thread_ts: str | None, ctx: SlackContext
    ) -> None:
        self.done.append((diagnosis, channel, thread_ts))


def services_with(world: DnsWorld, watches: WatchCommands | None) -> Services:
    services = Services.from_settings(world.settings)
    services.watches = watches
    return services


@pytest.mark.parametrize(
    ("text", "name", "expected"),
    [
        (f"watch dns example.com {GOOD_VALUE}", "watch", "_dnsauth.example.com"),
        ("unwatch example.com", "unwatch", UnwatchCommand(domain="example.com")),
        ("unwatch 17", "unwatch", UnwatchCommand(watch_id="17")),
        ("subscribe example.com", "subscribe", SubscribeCommand("example.com")),
        ("unsubscribe example.com", "unsubscribe", UnsubscribeCommand("example.com")),
        ("list", "list", ListCommand()),
    ],
)
async def test_watch_commands_reach_the_hook(
    text: str, name: str, expected: Any, world: DnsWorld, start_bot: BotFactory, fake_slack: FakeSlack
) -> None:
    watches = RecordingWatches()
    bot = await start_bot(world.settings, services=services_with(world, watches))
    status, body, _ = await bot.command(text)
    assert (status, body) == (200, "")
    await fake_slack.wait_for(lambda: fake_slack.hooks)
    ((called, command, ctx),) = watches.calls
    assert called == name
    if isinstance(expected, str):
        assert command.request.target == expected
    else:
        assert command == expected
    assert (ctx.team_id, ctx.channel_id, ctx.user_id) == ("T0001", "C0001", "U0USER")
    assert f"{name} ok" in fake_slack.hooks[0]["text"]


async def test_without_watch_service_commands_are_answered_politely(
    world: DnsWorld, start_bot: BotFactory, fake_slack: FakeSlack
) -> None:
    bot = await start_bot(world.settings)
    calls = len(fake_slack.calls)
    for text in ("subscribe example.com", "list", f"watch dns example.com {GOOD_VALUE}"):
        status, body, _ = await bot.command(text)
        assert status == 200 and "not enabled" in json.loads(body)["text"]
    assert len(fake_slack.calls) == calls


async def test_check_done_hook_gets_the_thread(
    world: DnsWorld, start_bot: BotFactory, fake_slack: FakeSlack
) -> None:
    watches = RecordingWatches()
    bot = await start_bot(world.settings, services=services_with(world, watches))
    await bot.command(f"dns example.com {GOOD_VALUE}")
    await fake_slack.wait_for(lambda: fake_slack.calls_to("chat.update"))
    for _ in range(100):
        if watches.done:
            break
        await asyncio.sleep(0.02)
    diagnosis, channel, thread_ts = watches.done[0]
    assert diagnosis.verdict.value == "pass" and channel == "C0001"
    assert thread_ts == fake_slack.calls_to("chat.update")[0].params["ts"]


async def test_buttons_reach_the_hook(world: DnsWorld, start_bot: BotFactory, fake_slack: FakeSlack) -> None:
    watches = RecordingWatches()
    bot = await start_bot(world.settings, services=services_with(world, watches))
    payload = {
        "type": "block_actions",
        "team": {"id": "T0001"},
        "user": {"id": "U0USER"},
        "channel": {"id": "C0001"},
        "container": {"type": "message", "message_ts": "1700000000.000002", "thread_ts": "1700000000.000001"},
        "response_url": fake_slack.new_response_url(),
        "trigger_id": "1.2.3",
        "api_app_id": "A0DCV",
        "token": "legacyverificationtoken123",
        "actions": [{"action_id": blocks.ACTION_WATCH, "block_id": "b", "type": "button", "value": "w-1"}],
    }
    body = urlencode({"payload": json.dumps(payload)})
    status, _ = await bot.post(body, sign(body))
    assert status == 200
    await fake_slack.wait_for(lambda: fake_slack.hooks)
    ((name, (action_id, value), ctx),) = watches.calls
    assert (name, action_id, value) == ("action", "dcv_watch", "w-1")
    assert (ctx.message_ts, ctx.thread_ts) == ("1700000000.000002", "1700000000.000001")
