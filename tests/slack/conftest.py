"""Fixtures for the Slack tests: the fake Slack API, a running dcv-bot (HTTP or Socket Mode), signing."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
import pytest_asyncio
from slack_sdk.signature import SignatureVerifier

from bot.config import Settings
from bot.slack.app import Services
from bot.slack.runtime import serve
from tests.conftest import DnsWorld, WorldFactory
from tests.slack.fakeslack import FakeSlack

SIGNING_SECRET = "8f14e45fceea167a5a36dedd4bea2543"

# The validation record every world below serves: TXT at _dnsauth.example.com.
GOOD_VALUE = "2026112900000068mjx3sb6kxvl8ebm1e4oh2r"


def sign(body: str, secret: str = SIGNING_SECRET, timestamp: str | int | None = None) -> dict[str, str]:
    """Headers Slack would send with ``body``: timestamp and ``v0=`` HMAC signature."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    signature = SignatureVerifier(secret).generate_signature(timestamp=ts, body=body)
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": signature,
    }


@pytest_asyncio.fixture
async def fake_slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as slack:
        yield slack


@pytest_asyncio.fixture
async def world(dns_world: WorldFactory) -> DnsWorld:
    """A loopback DNS world (3 authoritative servers, a recursive and a public resolver) with the record."""
    return await dns_world({"_dnsauth": {"TXT": GOOD_VALUE}})


def slack_settings(base: Settings, slack: FakeSlack, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "slack_bot_token": slack.bot_token,
        "slack_signing_secret": SIGNING_SECRET,
        "slack_api_url": slack.base_url,
        "port": 0,
    }
    values.update(overrides)
    return base.with_overrides(**values)


@dataclass
class RunningBot:
    """dcv-bot served by :func:`bot.slack.runtime.serve` inside the test's event loop."""

    settings: Settings
    services: Services
    slack: FakeSlack
    stop: asyncio.Event
    task: asyncio.Task[int]
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.info['port']}"

    async def post(self, body: str, headers: dict[str, str]) -> tuple[int, str]:
        async with (
            aiohttp.ClientSession() as session,
            session.post(self.url + "/slack/events", data=body.encode(), headers=headers) as response,
        ):
            return response.status, await response.text()

    async def command(self, text: str, **overrides: Any) -> tuple[int, str, dict[str, str]]:
        """Send a signed ``/dcv text``; returns (status, body, the payload sent)."""
        payload = self.slack.slash_payload(text, **overrides)
        body = urlencode(payload)
        status, answer = await self.post(body, sign(body))
        return status, answer, payload

    async def shutdown(self) -> int:
        self.stop.set()
        return await asyncio.wait_for(self.task, 30)


BotFactory = Callable[..., Awaitable[RunningBot]]


@pytest_asyncio.fixture
async def start_bot(fake_slack: FakeSlack) -> AsyncIterator[BotFactory]:
    """``await start_bot(settings_base, services=None, socket=False)`` -> :class:`RunningBot`."""
    bots: list[RunningBot] = []

    async def factory(
        base: Settings,
        *,
        services: Services | None = None,
        socket: bool = False,
        background: list[Any] | None = None,
        **overrides: Any,
    ) -> RunningBot:
        if socket:
            overrides.setdefault("slack_app_token", fake_slack.app_token)
        settings = slack_settings(base, fake_slack, **overrides)
        services = services or Services.from_settings(settings)
        started: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        stop = asyncio.Event()
        task = asyncio.create_task(
            serve(
                settings,
                services=services,
                stop=stop,
                ready=started.set_result,
                host="127.0.0.1",
                background=background or [],
            )
        )
        done, _ = await asyncio.wait({task, started}, timeout=15, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            raise AssertionError(f"serve() returned {task.result()} before it was ready")
        bot = RunningBot(settings, services, fake_slack, stop, task, started.result())
        bots.append(bot)
        return bot

    yield factory
    for bot in bots:
        if not bot.task.done():
            bot.stop.set()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(bot.task, 30)


@pytest.fixture
def no_violations(fake_slack: FakeSlack) -> Any:
    """Fail the test if the fake Slack API saw an invalid payload."""
    yield
    assert fake_slack.violations == []
