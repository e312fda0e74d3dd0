"""Socket Mode end to end: apps.connections.open with the app token, envelopes over a local WebSocket,
acks recorded by envelope id, the check flow posting through the Web API."""

from __future__ import annotations

import json

import pytest

from tests.conftest import DnsWorld
from tests.slack.conftest import GOOD_VALUE, BotFactory
from tests.slack.fakeslack import FakeSlack

pytestmark = pytest.mark.usefixtures("no_violations")


async def test_slash_command_over_socket_mode(
    world: DnsWorld, start_bot: BotFactory, fake_slack: FakeSlack
) -> None:
    bot = await start_bot(world.settings, socket=True, slack_signing_secret=None)
    assert bot.info == {"mode": "socket"}
    await fake_slack.wait_for(lambda: fake_slack.sockets)
    opens = fake_slack.calls_to("apps.connections.open")
    assert opens and opens[0].token == fake_slack.app_token

    check = fake_slack.slash_envelope(f"dns example.com {GOOD_VALUE}")
    bad = fake_slack.slash_envelope("dns example.com")
    await fake_slack.push(check)
    await fake_slack.push(bad)
    await fake_slack.wait_for(lambda: len(fake_slack.acks) >= 2 and fake_slack.calls_to("chat.update"))

    acks = {a["envelope_id"]: a for a in fake_slack.acks}
    assert set(acks) == {check["envelope_id"], bad["envelope_id"]}
    assert not acks[check["envelope_id"]].get("payload")  # an empty ack
    usage = acks[bad["envelope_id"]]["payload"]
    assert usage["response_type"] == "ephemeral" and "VALUE is missing" in usage["text"]

    posts = fake_slack.calls_to("chat.postMessage")
    assert len(posts) == 2 and posts[1].params["thread_ts"]
    assert "passes" in posts[1].params["text"]
    assert all(
        c.token == fake_slack.bot_token for c in fake_slack.calls if c.method != "apps.connections.open"
    )

    assert await bot.shutdown() == 0
    await fake_slack.wait_for(lambda: not fake_slack.sockets)


async def test_socket_mode_not_in_channel_falls_back_to_respond(
    world: DnsWorld, start_bot: BotFactory, fake_slack: FakeSlack
) -> None:
    fake_slack.invisible.add("D0HUMANS")
    await start_bot(world.settings, socket=True)
    await fake_slack.wait_for(lambda: fake_slack.sockets)
    await fake_slack.push(fake_slack.slash_envelope(f"dns example.com {GOOD_VALUE}", channel_id="D0HUMANS"))
    await fake_slack.wait_for(lambda: fake_slack.hooks)
    assert GOOD_VALUE in json.dumps(fake_slack.hooks[0])
