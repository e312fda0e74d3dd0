"""``serve()``: credentials, exit codes, graceful shutdown on SIGTERM with in-flight checks."""

from __future__ import annotations

import asyncio
import io
import json
import signal

import pytest

from bot.config import Settings
from bot.model import CheckRequest, Diagnosis
from bot.slack.app import Services
from bot.slack.runtime import serve
from bot.slack.tasks import RegistryClosed, RegistryFull, TaskRegistry
from tests.conftest import DnsWorld
from tests.slack.conftest import GOOD_VALUE, BotFactory
from tests.slack.fakeslack import FakeSlack


@pytest.mark.parametrize(
    ("settings", "names"),
    [
        (Settings(), ["SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN"]),
        (Settings(slack_bot_token="xoxb-1"), ["SLACK_SIGNING_SECRET"]),
        (Settings(slack_signing_secret="s" * 32), ["SLACK_BOT_TOKEN"]),
        (Settings(slack_app_token="xapp-1"), ["SLACK_BOT_TOKEN"]),
        (Settings(slack_app_token="xoxb-wrong", slack_bot_token="xoxb-1"), ["xapp-"]),
    ],
)
async def test_missing_credentials_exit_2_naming_what_to_set(settings: Settings, names: list[str]) -> None:
    err = io.StringIO()
    assert await serve(settings, stderr=err) == 2
    for name in names:
        assert name in err.getvalue()


async def test_rejected_token_exits_2(fake_slack: FakeSlack) -> None:
    settings = Settings(
        slack_bot_token="xoxb-not-the-right-one",
        slack_signing_secret="s" * 32,
        slack_api_url=fake_slack.base_url,
        port=0,
    )
    err = io.StringIO()
    assert await serve(settings, stderr=err, host="127.0.0.1") == 2
    assert "invalid_auth" in err.getvalue()
    fake_slack.violations.clear()  # the wrong token was the point


async def test_oauth_environment_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_CLIENT_ID", "1.2")
    monkeypatch.setenv("SLACK_CLIENT_SECRET", "x")
    err = io.StringIO()
    settings = Settings(slack_bot_token="xoxb-1", slack_signing_secret="s" * 32)
    assert await serve(settings, stderr=err) == 2
    assert "SLACK_CLIENT_ID" in err.getvalue()


@pytest.mark.parametrize("socket", [False, True], ids=["http", "socket"])
async def test_sigterm_lets_in_flight_checks_finish(
    socket: bool, world: DnsWorld, start_bot: BotFactory, fake_slack: FakeSlack
) -> None:
    settings = world.settings
    release = asyncio.Event()
    started = asyncio.Event()

    async def held_check(request: CheckRequest) -> Diagnosis:
        from bot.engine import run_check

        diagnosis = await run_check(request, settings)
        started.set()
        await release.wait()
        return diagnosis

    bot = await start_bot(settings, services=Services(run_check=held_check), socket=socket)
    if socket:
        await fake_slack.wait_for(lambda: fake_slack.sockets)
        await fake_slack.push(fake_slack.slash_envelope(f"dns example.com {GOOD_VALUE}"))
    else:
        status, _, _ = await bot.command(f"dns example.com {GOOD_VALUE}")
        assert status == 200
    await asyncio.wait_for(started.wait(), 10)

    signal.raise_signal(signal.SIGTERM)  # serve() installed a loop handler; pytest survives
    await asyncio.sleep(0.3)
    assert not bot.task.done()  # waiting for the check, not killed
    assert bot.services.tasks.closed
    release.set()
    assert await asyncio.wait_for(bot.task, 15) == 0
    replies = [c for c in fake_slack.calls_to("chat.postMessage") if c.params.get("thread_ts")]
    assert len(replies) == 1 and "passes" in replies[0].params["text"]
    assert fake_slack.violations == []


async def test_shutdown_cancels_checks_past_the_grace_period(
    world: DnsWorld, start_bot: BotFactory, fake_slack: FakeSlack
) -> None:
    started = asyncio.Event()

    async def stuck_check(request: CheckRequest) -> Diagnosis:
        started.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    services = Services(run_check=stuck_check, check_deadline=0.5)
    bot = await start_bot(world.settings, services=services)
    await bot.command(f"dns example.com {GOOD_VALUE}")
    await asyncio.wait_for(started.wait(), 10)
    # The check's own deadline (0.5 s) fires first: the parent says so; shutdown is then immediate.
    await fake_slack.wait_for(lambda: fake_slack.calls_to("chat.update"))
    assert "did not finish within" in fake_slack.calls_to("chat.update")[0].params["text"]
    assert await bot.shutdown() == 0
    assert fake_slack.violations == []


async def test_new_commands_during_drain_are_told_to_retry(
    world: DnsWorld, start_bot: BotFactory, fake_slack: FakeSlack
) -> None:
    bot = await start_bot(world.settings)
    bot.services.tasks.close()
    status, body, _ = await bot.command(f"dns example.com {GOOD_VALUE}")
    assert status == 200 and "restarting" in json.loads(body)["text"]


async def test_task_registry_bounds_and_drain() -> None:
    registry = TaskRegistry(max_concurrent=2, max_pending=3)
    running = 0
    peak = 0
    gate = asyncio.Event()

    async def job() -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await gate.wait()
        running -= 1

    for _ in range(3):
        registry.spawn(job())
    with pytest.raises(RegistryFull):
        registry.spawn(job())
    await asyncio.sleep(0.05)
    assert peak == 2 and len(registry) == 3
    asyncio.get_running_loop().call_later(0.1, gate.set)
    assert await registry.drain(5) == 0
    assert len(registry) == 0
    with pytest.raises(RegistryClosed):
        registry.spawn(job())


async def test_task_registry_cancels_after_grace() -> None:
    registry = TaskRegistry()
    cleaned = asyncio.Event()

    async def forever() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            cleaned.set()

    registry.spawn(forever())
    await asyncio.sleep(0)
    assert await registry.drain(0.1) == 1
    assert cleaned.is_set()


async def test_background_services_wrap_the_serving_time(
    world: DnsWorld, start_bot: BotFactory, fake_slack: FakeSlack
) -> None:
    import contextlib

    events: list[str] = []

    @contextlib.asynccontextmanager
    async def background(settings: Settings, services: Services):  # type: ignore[no-untyped-def]
        events.append("start")
        yield None
        events.append(f"stop after drain={services.tasks.closed and len(services.tasks) == 0}")

    bot = await start_bot(world.settings, background=[background])
    assert events == ["start"]
    assert await bot.shutdown() == 0
    assert events == ["start", "stop after drain=True"]


async def test_background_service_that_cannot_start_exits_2(fake_slack: FakeSlack) -> None:
    import contextlib

    @contextlib.asynccontextmanager
    async def broken(settings: Settings, services: Services):  # type: ignore[no-untyped-def]
        raise RuntimeError("dcv serve: cannot open the watch database DCV_DATABASE_URL")
        yield

    settings = Settings(
        slack_bot_token=fake_slack.bot_token,
        slack_signing_secret="s" * 32,
        slack_api_url=fake_slack.base_url,
        port=0,
    )
    err = io.StringIO()
    assert await serve(settings, background=[broken], stderr=err, host="127.0.0.1") == 2
    assert "DCV_DATABASE_URL" in err.getvalue()
