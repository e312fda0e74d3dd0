"""End to end over HTTP: signed slash commands to the running aiohttp server, the real engine checking
the loopback DNS world, posts landing in the fake Slack API."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from urllib.parse import urlencode

import pytest

from bot.model import CheckRequest, Diagnosis
from bot.slack.app import Services
from tests.conftest import DnsWorld, WorldFactory
from tests.slack.conftest import GOOD_VALUE, SIGNING_SECRET, BotFactory, sign
from tests.slack.fakeslack import FakeSlack

pytestmark = pytest.mark.usefixtures("no_violations")


def _thread_reply(slack: FakeSlack) -> dict:
    replies = [c.params for c in slack.calls_to("chat.postMessage") if c.params.get("thread_ts")]
    assert len(replies) == 1, replies
    return replies[0]


async def test_dns_check_posts_parent_thread_reply_and_update(
    world: DnsWorld, start_bot: BotFactory, fake_slack: FakeSlack
) -> None:
    bot = await start_bot(world.settings)
    status, body, _ = await bot.command(f"dns example.com {GOOD_VALUE}")
    assert status == 200
    assert body == ""  # an empty ack: nothing shown until the parent message appears
    await fake_slack.wait_for(lambda: fake_slack.calls_to("chat.update"))

    posts = fake_slack.calls_to("chat.postMessage")
    parent, reply = posts[0].params, _thread_reply(fake_slack)
    assert "thread_ts" not in parent
    assert parent["channel"] == "C0001"
    assert "DNS check for _dnsauth.example.com requested by <@U0USER>: checking" in parent["text"]
    parent_ts = fake_slack.messages[("C0001", reply["thread_ts"])]
    assert parent_ts is not None
    assert reply["channel"] == "C0001"
    assert "passes" in reply["text"]
    rendered = json.dumps(reply["blocks"])
    assert GOOD_VALUE in rendered
    assert "Authoritative nameservers" in rendered
    update = fake_slack.calls_to("chat.update")[0].params
    assert update["ts"] == reply["thread_ts"]
    assert ":white_check_mark:" in update["text"] and "passes" in update["text"]
    # Slack saw the bot token on every call, and auth.test came first (start-up token check).
    assert fake_slack.calls[0].method == "auth.test"
    assert fake_slack.hooks == []


async def test_mismatch_reports_what_was_seen(
    dns_world: WorldFactory, start_bot: BotFactory, fake_slack: FakeSlack
) -> None:
    world = await dns_world({"_dnsauth": {"TXT": "old-value-123"}})
    bot = await start_bot(world.settings)
    await bot.command("dns example.com new-value-456")
    await fake_slack.wait_for(lambda: fake_slack.calls_to("chat.update"))
    reply = _thread_reply(fake_slack)
    rendered = json.dumps(reply["blocks"])
    assert "fails" in reply["text"]
    assert "old-value-123" in rendered and "new-value-456" in rendered
    assert "DNS_VALUE_MISMATCH" in rendered
    assert ":x:" in fake_slack.calls_to("chat.update")[0].params["text"]


async def test_hostile_txt_record_is_shown_as_text(
    dns_world: WorldFactory, start_bot: BotFactory, fake_slack: FakeSlack
) -> None:
    """A TXT record reading ``<!channel>`` or a disguised link must not ping or link (the fake flags
    any unescaped markup as a violation)."""
    world = await dns_world({"_dnsauth": {"TXT": ["<!channel> <https://evil.example|bank> `x` &lt;"]}})
    bot = await start_bot(world.settings)
    await bot.command("dns example.com expected-value")
    await fake_slack.wait_for(lambda: fake_slack.calls_to("chat.update"))
    rendered = json.dumps(_thread_reply(fake_slack)["blocks"])
    assert "&lt;!channel&gt;" in rendered
    assert "&lt;https://evil.example|bank&gt;" in rendered
    assert "&amp;lt;" in rendered
    assert "<!channel>" not in rendered


async def test_parse_error_is_an_ephemeral_ack_without_api_calls(
    world: DnsWorld, start_bot: BotFactory, fake_slack: FakeSlack
) -> None:
    bot = await start_bot(world.settings)
    calls_before = len(fake_slack.calls)
    status, body, _ = await bot.command("dns <!channel>.example.com")
    assert status == 200
    answer = json.loads(body)
    assert answer["response_type"] == "ephemeral"
    assert "VALUE is missing" in answer["text"]
    assert "/dcv dns DOMAIN VALUE" in answer["text"]
    status, body, _ = await bot.command("dns <!channel> value")
    answer = json.loads(body)
    assert "&lt;!channel&gt;" in answer["text"] and "<!channel>" not in answer["text"]
    await asyncio.sleep(0.2)
    assert len(fake_slack.calls) == calls_before
    assert fake_slack.hooks == []


async def test_help_and_faq_are_answered_in_the_ack(
    world: DnsWorld, start_bot: BotFactory, fake_slack: FakeSlack
) -> None:
    bot = await start_bot(world.settings)
    calls_before = len(fake_slack.calls)
    for text, expect in (
        ("help", "/dcv dns DOMAIN VALUE"),
        ("faq", "record-mismatch"),
        ("faq timeout", "timed out"),
    ):
        status, body, _ = await bot.command(text)
        assert status == 200
        answer = json.loads(body)
        assert answer["response_type"] == "ephemeral"
        assert expect in json.dumps(answer)
        assert fake_slack.validate_message("ack", answer) is None
    assert len(fake_slack.calls) == calls_before


async def test_not_in_channel_answers_through_response_url(
    world: DnsWorld, start_bot: BotFactory, fake_slack: FakeSlack
) -> None:
    fake_slack.not_member.add("C0PRIV")
    bot = await start_bot(world.settings)
    status, _, payload = await bot.command(f"dns example.com {GOOD_VALUE}", channel_id="C0PRIV")
    assert status == 200
    await fake_slack.wait_for(lambda: fake_slack.hooks)
    hook = fake_slack.hooks[0]
    assert hook["_path"] == payload["response_url"].split(str(fake_slack.port))[1]
    assert hook["response_type"] == "ephemeral"
    rendered = json.dumps(hook)
    assert "not a member" in rendered and "/invite @dcv" in rendered
    assert GOOD_VALUE in rendered  # the diagnosis itself, not just an apology
    assert fake_slack.calls_to("chat.update") == []


async def test_private_channel_not_found_answers_through_response_url(
    world: DnsWorld, start_bot: BotFactory, fake_slack: FakeSlack
) -> None:
    fake_slack.invisible.add("G0SECRET")
    bot = await start_bot(world.settings)
    await bot.command(f"dns example.com {GOOD_VALUE}", channel_id="G0SECRET")
    await fake_slack.wait_for(lambda: fake_slack.hooks)
    assert "private channel" in json.dumps(fake_slack.hooks[0])


async def test_rate_limited_post_is_retried_after_retry_after(
    world: DnsWorld, start_bot: BotFactory, fake_slack: FakeSlack
) -> None:
    bot = await start_bot(world.settings)
    fake_slack.fail("chat.postMessage", "ratelimited", status=429, headers={"Retry-After": "1"})
    await bot.command(f"dns example.com {GOOD_VALUE}")
    await fake_slack.wait_for(lambda: fake_slack.calls_to("chat.update"), timeout=15)
    first, second = fake_slack.calls_to("chat.postMessage")[:2]
    assert first.params == second.params  # the same parent message, sent again
    assert second.at - first.at >= 1.0
    assert len(fake_slack.hooks) == 0


async def test_duplicate_trigger_id_runs_once(
    world: DnsWorld, start_bot: BotFactory, fake_slack: FakeSlack
) -> None:
    bot = await start_bot(world.settings)
    payload = fake_slack.slash_payload(f"dns example.com {GOOD_VALUE}")
    body = urlencode(payload)
    for _ in range(3):
        status, _ = await bot.post(body, sign(body))
        assert status == 200
    await fake_slack.wait_for(lambda: fake_slack.calls_to("chat.update"))
    await asyncio.sleep(0.3)
    assert len(fake_slack.calls_to("chat.postMessage")) == 2  # one parent, one reply


@pytest.mark.parametrize(
    "case",
    ["unsigned", "wrong secret", "stale", "future", "non-numeric timestamp", "empty timestamp", "tampered"],
)
async def test_bad_signatures_are_rejected_401(
    case: str, world: DnsWorld, start_bot: BotFactory, fake_slack: FakeSlack
) -> None:
    bot = await start_bot(world.settings)
    body = urlencode(fake_slack.slash_payload(f"dns example.com {GOOD_VALUE}"))
    headers = sign(body)
    if case == "unsigned":
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
    elif case == "wrong secret":
        headers = sign(body, secret="0" * 32)
    elif case == "stale":
        headers = sign(body, timestamp=int(time.time()) - 301)
    elif case == "future":
        headers = sign(body, timestamp=int(time.time()) + 301)
    elif case == "non-numeric timestamp":
        headers = {**sign(body, timestamp="1e9"), "X-Slack-Request-Timestamp": "1e9"}
    elif case == "empty timestamp":
        headers = {**headers, "X-Slack-Request-Timestamp": ""}
    elif case == "tampered":
        body = body.replace("example.com", "example.org")
    status, _ = await bot.post(body, headers)
    assert status == 401
    await asyncio.sleep(0.1)
    assert [c.method for c in fake_slack.calls] == ["auth.test"]


async def test_oversized_body_is_refused(world: DnsWorld, start_bot: BotFactory) -> None:
    bot = await start_bot(world.settings)
    body = "text=" + "a" * (1024 * 1024)
    status, _ = await bot.post(body, sign(body))
    assert status == 413


async def test_healthz(world: DnsWorld, start_bot: BotFactory) -> None:
    import aiohttp

    bot = await start_bot(world.settings)
    async with aiohttp.ClientSession() as session, session.get(bot.url + "/healthz") as response:
        assert response.status == 200
        assert (await response.json())["ok"] is True


async def test_ack_is_fast_while_checks_run(
    world: DnsWorld, start_bot: BotFactory, fake_slack: FakeSlack
) -> None:
    """The HTTP 200 comes back at once even though every check takes 1.5 s."""
    settings = world.settings

    async def slow_check(request: CheckRequest) -> Diagnosis:
        from bot.engine import run_check

        diagnosis = await run_check(request, settings)
        await asyncio.sleep(1.5)
        return diagnosis

    bot = await start_bot(settings, services=Services(run_check=slow_check))
    await bot.command("help")  # warm up (first request authorises)
    started = time.monotonic()
    results = await asyncio.gather(*(bot.command(f"dns example.com {GOOD_VALUE}") for _ in range(10)))
    elapsed = time.monotonic() - started
    assert all(status == 200 for status, _, _ in results)
    assert elapsed < 1.0
    await fake_slack.wait_for(lambda: len(fake_slack.calls_to("chat.update")) == 10, timeout=20)


async def test_tokens_and_response_urls_never_reach_the_logs(
    world: DnsWorld, start_bot: BotFactory, fake_slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    bot = await start_bot(world.settings)
    fake_slack.not_member.add("C0PRIV")
    _, _, payload = await bot.command(f"dns example.com {GOOD_VALUE}", channel_id="C0PRIV")
    await fake_slack.wait_for(lambda: fake_slack.hooks)
    body = urlencode(fake_slack.slash_payload("dns example.com x"))
    await bot.post(body, sign(body, secret="wrong-secret-wrong-secret"))  # Bolt logs failed bodies
    fake_slack.fail("chat.postMessage", "invalid_blocks")
    await bot.command(f"dns example.com {GOOD_VALUE}")
    await fake_slack.wait_for(lambda: len(fake_slack.hooks) >= 2)
    await bot.shutdown()
    text = caplog.text + "\n".join(r.getMessage() for r in caplog.records)
    assert caplog.records  # slack_sdk and bolt did log at DEBUG
    for secret in (
        fake_slack.bot_token,
        SIGNING_SECRET,
        payload["response_url"],
        "legacyverificationtoken123",
    ):
        assert secret not in text
    assert payload["response_url"].rsplit("/", 1)[1] not in text
