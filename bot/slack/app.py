"""The Slack app factory: ``build_app(settings, services) -> AsyncApp``, with no module-level state.

:class:`Services` is everything the listeners need besides the settings: the check to run, the
background task registry, the trigger-id dedupe, and the optional watch service (issue 6). Tests build
as many apps as they like, each with its own services, pointed at a local stand-in for the Web API
through ``settings.slack_api_url``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from slack_bolt.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import AsyncConnectionErrorRetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.web.async_client import AsyncWebClient

from bot.checkthread import CheckThread
from bot.config import Settings
from bot.model import CheckRequest, Diagnosis
from bot.render.blocks import Message
from bot.slack.commands import ListCommand, SubscribeCommand, UnsubscribeCommand, UnwatchCommand, WatchCommand
from bot.slack.tasks import TaskRegistry

log = logging.getLogger(__name__)

RunCheck = Callable[[CheckRequest], Awaitable[Diagnosis]]
Respond = Callable[..., Awaitable[Any]]
"""Bolt's ``respond``: posts to the command's ``response_url`` (ephemeral unless told otherwise)."""

CHECK_DEADLINE_MARGIN = 10.0
"""Seconds a check may run beyond ``Settings.timeout`` before the Slack side gives up on it."""


@dataclass(frozen=True, slots=True)
class SlackContext:
    """Who asked, where, and how to answer: what a command or button handler needs from Slack.

    ``client`` posts with the bot token (``chat.postMessage`` needs the bot in the channel, or
    ``chat:write.public`` for public channels); ``respond`` answers through the ``response_url``,
    which works everywhere, including DMs and private channels the bot is not in.
    """

    team_id: str
    channel_id: str
    user_id: str
    client: AsyncWebClient
    respond: Respond
    enterprise_id: str | None = None
    trigger_id: str | None = None
    message_ts: str | None = None
    """For button actions: the message that carries the button."""
    thread_ts: str | None = None
    """For button actions: the thread that message sits in, if any."""


class WatchCommands(Protocol):
    """What the watch service (``bot/watches/``, issue 6) plugs into the Slack app.

    Command methods run in the background after ``ack()``; a returned :class:`Message` is sent to
    the user ephemerally through ``respond``; return ``None`` when the method posted by itself.
    Messages must be built with :mod:`bot.render.blocks` helpers (they escape and fit the limits).
    """

    async def watch(self, ctx: SlackContext, command: WatchCommand) -> Message | None:
        """``/dcv watch dns|file ...``: start a watch without a prior check."""

    async def unwatch(self, ctx: SlackContext, command: UnwatchCommand) -> Message | None:
        """``/dcv unwatch DOMAIN|ID``."""

    async def subscribe(self, ctx: SlackContext, command: SubscribeCommand) -> Message | None:
        """``/dcv subscribe DOMAIN``: this channel gets every verification result for DOMAIN."""

    async def unsubscribe(self, ctx: SlackContext, command: UnsubscribeCommand) -> Message | None:
        """``/dcv unsubscribe DOMAIN``."""

    async def list_watches(self, ctx: SlackContext, command: ListCommand) -> Message | None:
        """``/dcv list``: the channel's watches and subscriptions."""

    async def on_action(self, ctx: SlackContext, action_id: str, value: str) -> Message | None:
        """A button whose ``action_id`` starts with ``dcv_`` (see ``blocks.watch_buttons``)."""

    async def on_check_done(
        self, diagnosis: Diagnosis, channel: str, thread_ts: str | None, ctx: SlackContext
    ) -> None:
        """A ``/dcv dns|file`` check finished and its diagnosis was shown.

        ``thread_ts`` is the parent message the diagnosis was posted under, or ``None`` when the
        bot could not post in ``channel`` and answered the user ephemerally instead.
        """


class TriggerDedupe:
    """Remembers recent ``(team_id, trigger_id)`` pairs so a repeated delivery runs once.

    Slack does not document retries of slash commands, but a second process, a proxy retry or a
    replayed request inside the 5-minute signature window would otherwise start a second check.
    In memory: a restart forgets, which is acceptable for interactive commands.
    """

    def __init__(self, ttl: float = 600.0, max_entries: int = 10_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._seen: OrderedDict[tuple[str, str], float] = OrderedDict()

    def seen(self, team_id: str, trigger_id: str, now: float | None = None) -> bool:
        """Record the pair; True if it was already recorded within ``ttl`` seconds."""
        now = time.monotonic() if now is None else now
        while self._seen:
            key, at = next(iter(self._seen.items()))
            if now - at <= self.ttl and len(self._seen) < self.max_entries:
                break
            self._seen.popitem(last=False)
        key = (team_id, trigger_id)
        if key in self._seen:
            return True
        self._seen[key] = now
        return False


class BotIdentity:
    """The bot's ``auth.test`` result, fetched once and then reused for every request.

    Bolt's default single-workspace authorization calls ``auth.test`` lazily on the first request,
    which puts a Web API round trip in front of the first ``ack()`` and makes "bad input is answered
    without any API call" false for that request. ``serve`` loads it at start-up instead (and fails
    fast on a rejected token); the Bolt ``authorize`` hook below only falls back to a lazy load.
    """

    def __init__(self) -> None:
        self._result: AuthorizeResult | None = None
        self._lock = asyncio.Lock()

    @property
    def loaded(self) -> bool:
        return self._result is not None

    async def load(self, client: AsyncWebClient) -> AuthorizeResult:
        """Call ``auth.test`` once (raises ``SlackApiError`` when Slack rejects the token)."""
        async with self._lock:
            if self._result is None:
                response = await client.auth_test()
                self._result = AuthorizeResult.from_auth_test_response(
                    bot_token=client.token, auth_test_response=response
                )
            return self._result


@dataclass(slots=True)
class Services:
    """The Slack app's collaborators. Build with :meth:`from_settings` or by hand in tests."""

    run_check: RunCheck
    tasks: TaskRegistry = field(default_factory=TaskRegistry)
    watches: WatchCommands | None = None
    check_deadline: float = 20.0
    """Seconds after which a check is abandoned and the user told so (the engine has its own deadline)."""
    dedupe: TriggerDedupe = field(default_factory=TriggerDedupe)
    identity: BotIdentity = field(default_factory=BotIdentity)

    admit: Callable[[SlackContext], Awaitable[Message | None]] | None = None
    """The per-user command rate limit for checks (``None`` admits; a message refuses). The watch
    service plugs in its database-held limit, shared by every bot process."""
    check_thread: CheckThread | None = None
    """Where :meth:`from_settings` runs checks, off the loop that acks Slack; closed by :meth:`close`."""

    @classmethod
    def from_settings(cls, settings: Settings, *, watches: WatchCommands | None = None) -> Services:
        """Services that run the real engine (``bot.engine.run_check``) with ``settings``, on a
        :class:`~bot.checkthread.CheckThread` so their CPU work never delays an ``ack``."""
        from bot.engine import run_check as engine_run_check

        check_thread = CheckThread()

        async def run_check(request: CheckRequest) -> Diagnosis:
            return await check_thread.run(lambda: engine_run_check(request, settings))

        return cls(
            run_check=run_check,
            watches=watches,
            check_deadline=settings.timeout + CHECK_DEADLINE_MARGIN,
            check_thread=check_thread,
        )

    def close(self) -> None:
        """Release what :meth:`from_settings` started (after in-flight checks have drained)."""
        if self.check_thread is not None:
            self.check_thread.close()


class RateLimitRetryHandler(AsyncRetryHandler):
    """Retry a 429 after ``Retry-After`` (plus up to 1 s jitter), but never wait beyond ``max_wait``.

    slack_sdk's own ``AsyncRateLimitErrorRetryHandler`` sleeps whatever ``Retry-After`` says, without
    a cap, and raises ``ValueError`` on a non-numeric header; a background task should rather give up
    and report than hang for minutes.
    """

    def __init__(self, max_retry_count: int = 2, max_wait: float = 30.0) -> None:
        super().__init__(max_retry_count=max_retry_count)
        self.max_wait = max_wait

    @staticmethod
    def retry_after(response: HttpResponse) -> float:
        for name, values in response.headers.items():
            if name.lower() == "retry-after":
                value = values[0] if isinstance(values, list) and values else values
                try:
                    return max(0.0, float(str(value).strip()))
                except ValueError:
                    return 1.0
        return 1.0

    async def _can_retry_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        return (
            response is not None
            and response.status_code == 429
            and self.retry_after(response) <= self.max_wait
        )

    async def prepare_for_next_attempt_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> None:
        assert response is not None
        state.next_attempt_requested = True
        await asyncio.sleep(self.retry_after(response) + random.random())
        state.increment_current_attempt()


def build_client(settings: Settings, *, with_token: bool = True) -> AsyncWebClient:
    """A Web API client for ``settings.slack_api_url`` that retries connection errors and 429s.

    ``with_token=False`` gives the template client Bolt copies for each request; the token then comes
    from the ``authorize`` result (Bolt warns, and ignores the token, when a client has both).
    """
    return AsyncWebClient(
        token=settings.slack_bot_token if with_token else None,
        base_url=settings.slack_api_url,
        timeout=15,
        retry_handlers=[AsyncConnectionErrorRetryHandler(max_retry_count=1), RateLimitRetryHandler()],
        logger=logging.getLogger("bot.slack.webapi"),
    )


def build_app(settings: Settings, services: Services) -> AsyncApp:
    """The Bolt app with dcv-bot's listeners. Serve it with :mod:`bot.slack.runtime`."""
    from bot.slack.listeners import register

    token_client = build_client(settings)

    async def authorize() -> AuthorizeResult:
        return await services.identity.load(token_client)

    app = AsyncApp(
        client=build_client(settings, with_token=False),
        authorize=authorize,
        # Empty in Socket Mode, where requests are authenticated by the app token instead; Bolt builds
        # the verifier lazily, so an empty secret only matters (and fails closed) over HTTP.
        signing_secret=settings.slack_signing_secret or "",
        name="dcv-bot",
        logger=logging.getLogger("bot.slack.bolt"),
    )
    register(app, settings, services)
    return app
