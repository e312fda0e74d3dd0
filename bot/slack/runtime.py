"""Run the Slack app: ``await serve(settings)`` (what ``dcv serve`` calls).

* Socket Mode when ``SLACK_APP_TOKEN`` is set: an outgoing WebSocket, no public URL needed. The
  ``AsyncSocketModeHandler`` is created inside the running loop (its aiohttp session needs one) and
  driven with ``connect_async``/``close_async``.
* HTTP mode otherwise: an aiohttp server on ``PORT`` with Slack's requests at ``POST /slack/events``
  and ``GET /healthz``; request bodies are capped at 64 KiB (Slack's are a few KiB; aiohttp's default
  of 1 MiB only invites abuse).

SIGTERM and SIGINT stop intake first (close the socket / stop listening), then give in-flight checks
a bounded time to finish and cancel the rest cleanly (the user is told the check was interrupted).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any, TextIO

import aiohttp
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError

from bot.config import Settings
from bot.slack.app import Services, build_app, build_client
from bot.slack.redact import install_log_redaction

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
HEALTH_PATH = "/healthz"
MAX_BODY_BYTES = 64 * 1024
DRAIN_MARGIN = 5.0
"""Seconds beyond a check's own deadline that shutdown waits for in-flight work."""

Ready = Callable[[dict[str, Any]], None]
Background = Callable[[Settings, Services], contextlib.AbstractAsyncContextManager[object]]
"""Something that runs beside the Slack app for as long as it serves (the watch scheduler and outbox).

It is entered after the app is built and before requests are served, and exited after in-flight
checks have drained, so it may plug hooks into ``services`` (``services.watches``) on entry."""


def default_background() -> list[Background]:
    """What ``dcv serve`` runs beside the app: the watch service (store, scheduler, outbox sender)."""
    from bot.slack.watches import watch_runtime

    return [watch_runtime]


def missing_credentials(settings: Settings) -> str | None:
    """A message naming exactly what to set, or ``None`` when the mode's credentials are present."""
    if settings.slack_app_token:
        missing = [] if settings.slack_bot_token else ["SLACK_BOT_TOKEN"]
        if missing:
            return (
                "dcv serve: Socket Mode (SLACK_APP_TOKEN is set) also needs SLACK_BOT_TOKEN "
                "(the xoxb- Bot User OAuth Token from OAuth & Permissions)."
            )
        if not settings.slack_app_token.startswith("xapp-"):
            return (
                "dcv serve: SLACK_APP_TOKEN must be an app-level token starting with xapp- "
                "(Basic Information > App-Level Tokens)."
            )
        return None
    missing = [
        name
        for name, value in (
            ("SLACK_BOT_TOKEN", settings.slack_bot_token),
            ("SLACK_SIGNING_SECRET", settings.slack_signing_secret),
        )
        if not value
    ]
    if not missing:
        return None
    return (
        f"dcv serve: missing {' and '.join(missing)}. "
        "Set SLACK_BOT_TOKEN and SLACK_APP_TOKEN for Socket Mode (recommended; no public URL needed), "
        "or SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET for HTTP mode "
        f"(Slack then sends requests to https://YOUR-HOST{EVENTS_PATH}, port PORT={settings.port})."
    )


async def serve(
    settings: Settings,
    *,
    services: Services | None = None,
    stop: asyncio.Event | None = None,
    ready: Ready | None = None,
    background: list[Background] | None = None,
    stderr: TextIO | None = None,
    host: str = "0.0.0.0",  # noqa: S104 - Slack must reach HTTP mode; terminate TLS in front of it
) -> int:
    """Serve Slack until SIGTERM/SIGINT (or ``stop`` is set). Returns the process exit status.

    Exit 2 (with a message on ``stderr`` naming what to set) when credentials are missing or rejected;
    0 after a clean shutdown. ``background`` defaults to :func:`default_background` when ``services``
    is not given (and to nothing when it is); a background
    service that cannot start (say, an unusable ``DCV_DATABASE_URL``) also ends in exit 2 with its
    message. ``services``, ``stop`` and ``ready`` exist for tests and embedding: ``ready`` is called
    with ``{"mode": ..., "port": ...}`` once requests are being served.
    """
    err = stderr or sys.stderr
    problem = missing_credentials(settings)
    if problem is None and os.environ.get("SLACK_CLIENT_ID") and os.environ.get("SLACK_CLIENT_SECRET"):
        # Bolt silently switches to multi-workspace OAuth mode and ignores the bot token when both are set.
        problem = (
            "dcv serve: unset SLACK_CLIENT_ID and SLACK_CLIENT_SECRET; "
            "dcv-bot runs as a single-workspace app."
        )
    if problem:
        print(problem, file=err)
        return 2
    uninstall = install_log_redaction(
        [s for s in (settings.slack_bot_token, settings.slack_app_token, settings.slack_signing_secret) if s]
    )
    # slack_sdk logs whole request and response bodies at DEBUG; never let that through in production.
    logging.getLogger("slack_sdk").setLevel(
        max(logging.getLogger("slack_sdk").getEffectiveLevel(), logging.INFO)
    )
    try:
        # Watches (issue 6) run beside the app in production; callers passing their own services
        # (tests, embedding) decide about background services themselves.
        if background is None:
            background = default_background() if services is None else []
        services = services or Services.from_settings(settings)
        app = build_app(settings, services)
        rejected = await _verify_token(settings, services)
        if rejected:
            print(rejected, file=err)
            return 2
        stop = stop or asyncio.Event()
        async with contextlib.AsyncExitStack() as stack:
            # One HTTP session for every Web API call. Without it slack_sdk opens a new session and TCP
            # connection per call (three per check); Bolt copies ``app.client.session`` into the client
            # it builds for each request. Closed last, after in-flight checks have drained.
            session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=32), trust_env=False)
            stack.push_async_callback(session.close)
            stack.callback(services.close)
            app.client.session = session
            for factory in background:
                try:
                    await stack.enter_async_context(factory(settings, services))
                except Exception as exc:
                    # e.g. WatchStartError: an unusable DCV_DATABASE_URL; its message names the setting.
                    log.debug("background service failed to start", exc_info=True)
                    print(str(exc) or f"dcv serve: {type(exc).__name__} while starting", file=err)
                    return 2
            with _signals_set(stop):
                if settings.slack_app_token:
                    await run_socket_mode(app, settings, services, stop, ready)
                else:
                    await run_http(app, settings, services, stop, ready, host=host)
        return 0
    finally:
        uninstall()


async def _verify_token(settings: Settings, services: Services) -> str | None:
    """Fail fast on a bot token Slack rejects; tolerate Slack being unreachable (loaded lazily later)."""
    try:
        await services.identity.load(build_client(settings))
    except SlackApiError as exc:
        code = exc.response.get("error")
        if code in ("invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired"):
            return f"dcv serve: Slack rejected SLACK_BOT_TOKEN ({code}); copy the Bot User OAuth Token again."
        log.warning("auth.test failed at start-up: %s", code)
    except Exception as exc:
        log.warning("could not reach the Slack API at start-up (%s); continuing", type(exc).__name__)
    return None


@contextlib.contextmanager
def _signals_set(stop: asyncio.Event) -> Any:
    """SIGTERM/SIGINT set ``stop`` while serving; the previous handlers come back afterwards."""
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
        except (NotImplementedError, RuntimeError):
            # Not the main thread, or a platform without signal support in asyncio: rely on ``stop``.
            pass
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


async def _drain(services: Services) -> None:
    cancelled = await services.tasks.drain(services.check_deadline + DRAIN_MARGIN)
    log.info("shutdown complete (%d background task(s) cancelled)", cancelled)


async def run_socket_mode(
    app: AsyncApp, settings: Settings, services: Services, stop: asyncio.Event, ready: Ready | None = None
) -> None:
    """Connect over Socket Mode, serve until ``stop``, then disconnect and drain."""
    handler = AsyncSocketModeHandler(
        app, app_token=settings.slack_app_token, logger=logging.getLogger("bot.slack.socket")
    )
    await handler.connect_async()  # type: ignore[no-untyped-call]
    log.info("connected to Slack in Socket Mode")
    try:
        if ready:
            ready({"mode": "socket"})
        await stop.wait()
    finally:
        # Disconnect first so Slack routes new commands to another connection (or reports the app
        # offline) instead of to a process that is about to go away; then let running checks finish.
        services.tasks.close()
        await handler.close_async()  # type: ignore[no-untyped-call]
        await _drain(services)


def build_web_app(app: AsyncApp, services: Services) -> web.Application:
    """The aiohttp application of HTTP mode: ``POST /slack/events``, ``GET /healthz``, drain on cleanup."""

    async def events(request: web.Request) -> web.Response:
        if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
            raise web.HTTPRequestEntityTooLarge(max_size=MAX_BODY_BYTES, actual_size=request.content_length)
        timestamp = request.headers.get("X-Slack-Request-Timestamp", "")
        if not timestamp.isascii() or not timestamp.isdigit() or not request.headers.get("X-Slack-Signature"):
            # slack_sdk's verifier raises ValueError on a non-numeric timestamp (a 500); answer 401 here.
            return web.json_response({"error": "invalid request"}, status=401)
        bolt_request = await to_bolt_request(request)
        bolt_response = await app.async_dispatch(bolt_request)
        return await to_aiohttp_response(bolt_response)

    async def healthz(_request: web.Request) -> web.Response:
        if services.tasks.closed:
            return web.json_response(
                {"ok": False, "status": "draining", "in_flight": len(services.tasks)}, status=503
            )
        return web.json_response({"ok": True, "in_flight": len(services.tasks)})

    async def lifecycle(_web_app: web.Application) -> AsyncIterator[None]:
        yield
        await _drain(services)

    web_app = web.Application(client_max_size=MAX_BODY_BYTES)
    web_app.add_routes([web.post(EVENTS_PATH, events), web.get(HEALTH_PATH, healthz)])
    web_app.cleanup_ctx.append(lifecycle)
    return web_app


async def run_http(
    app: AsyncApp,
    settings: Settings,
    services: Services,
    stop: asyncio.Event,
    ready: Ready | None = None,
    *,
    host: str = "0.0.0.0",  # noqa: S104 - Slack must reach HTTP mode; terminate TLS in front of it
) -> None:
    """Serve HTTP mode on ``settings.port`` (0 picks a free port) until ``stop``."""
    runner = web.AppRunner(build_web_app(app, services), access_log=None, shutdown_timeout=5.0)
    await runner.setup()
    site = web.TCPSite(runner, host, settings.port)
    await site.start()
    port = runner.addresses[0][1] if runner.addresses else settings.port
    log.info("serving Slack requests on port %s at %s", port, EVENTS_PATH)
    try:
        if ready:
            ready({"mode": "http", "port": port})
        await stop.wait()
    finally:
        services.tasks.close()
        # Stops listening, waits for in-flight requests, then runs ``lifecycle``'s drain.
        await runner.cleanup()
