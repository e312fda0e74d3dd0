"""Thin Bolt listeners: parse, ``ack()`` at once, hand the work to the task registry.

Bolt sends the HTTP 200 (or the Socket Mode envelope ack) as soon as ``ack()`` is called, so nothing
slow may come before it: parsing is pure and fast, and a bad command is answered in the ack itself
(ephemeral, no API call). A check then runs in the background:

1. the check starts at once, concurrently with
2. a short parent message in the channel ("DNS check for ... requested by @user: checking…");
3. the diagnosis is posted as a reply in the parent's thread;
4. the parent is updated with the verdict.

Where the bot cannot post (``not_in_channel``, ``channel_not_found`` for private channels and DMs it is
not part of, ``is_archived``), the user gets the diagnosis ephemerally through ``response_url`` with
a note on how to invite the bot, instead of a silent failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.config import Settings
from bot.model import CheckRequest, Diagnosis
from bot.remedies import faq_entries
from bot.render import blocks
from bot.render.blocks import Message
from bot.slack.app import Respond, Services, SlackContext, WatchCommands
from bot.slack.commands import (
    CheckCommand,
    Command,
    CommandError,
    FaqCommand,
    HelpCommand,
    ListCommand,
    SubscribeCommand,
    UnsubscribeCommand,
    UnwatchCommand,
    WatchCommand,
    parse_command,
)
from bot.slack.tasks import RegistryClosed, RegistryFull

log = logging.getLogger(__name__)

POST_FLAGS: dict[str, Any] = {
    "link_names": False,
    "unfurl_links": False,
    "unfurl_media": False,
    "parse": "none",
}
"""Every ``chat.postMessage``: no @-name linking, no unfurling, no automatic parsing of our text."""
UPDATE_FLAGS: dict[str, Any] = {"link_names": False, "parse": "none"}

CANNOT_POST_ERRORS = frozenset({"not_in_channel", "channel_not_found", "is_archived", "restricted_action"})

WATCHES_DISABLED = (
    ":information_source: Watches and subscriptions are not enabled on this dcv-bot. "
    "`/dcv dns ...` and `/dcv file ...` work as usual."
)
BUSY = ":hourglass: dcv-bot is busy with many checks right now; please try again in a minute."
RESTARTING = ":arrows_counterclockwise: dcv-bot is restarting; please try again in a minute."
INTERRUPTED = "the check was interrupted because dcv-bot is shutting down; please run it again"


def register(app: AsyncApp, settings: Settings, services: Services) -> None:
    """Attach dcv-bot's listeners to ``app``."""
    app.command("/dcv")(_command_listener(settings, services))
    app.action(re.compile("^" + re.escape(blocks.ACTION_PREFIX)))(_action_listener(services))


def _command_listener(settings: Settings, services: Services) -> Callable[..., Awaitable[None]]:
    async def on_dcv(
        ack: Callable[..., Awaitable[Any]],
        command: dict[str, Any],
        respond: Respond,
        client: AsyncWebClient,
    ) -> None:
        team_id = str(command.get("team_id") or "")
        trigger_id = str(command.get("trigger_id") or "")
        if trigger_id and services.dedupe.seen(team_id, trigger_id):
            log.info("duplicate delivery of trigger %s ignored", trigger_id)
            await ack()
            return
        try:
            parsed = parse_command(str(command.get("text") or ""), allow_private=settings.allow_private)
        except CommandError as err:
            await ack(text=blocks.usage_text(err.reason), response_type="ephemeral")
            return
        if isinstance(parsed, HelpCommand):
            await ack(response_type="ephemeral", **blocks.help_message().as_kwargs())
            return
        if isinstance(parsed, FaqCommand):
            entries = faq_entries()
            message = blocks.faq_message([entries[k] for k in parsed.keys], list(entries.values()))
            await ack(response_type="ephemeral", **message.as_kwargs())
            return
        ctx = SlackContext(
            team_id=team_id,
            channel_id=str(command.get("channel_id") or ""),
            user_id=str(command.get("user_id") or ""),
            client=client,
            respond=respond,
            enterprise_id=command.get("enterprise_id") or None,
            trigger_id=trigger_id or None,
        )
        if isinstance(parsed, CheckCommand):
            job = check_flow(ctx, parsed.request, services)
        elif services.watches is None:
            await ack(text=WATCHES_DISABLED, response_type="ephemeral")
            return
        else:
            job = _watch_flow(ctx, services.watches, parsed)
        try:
            services.tasks.spawn(job, name=f"dcv {type(parsed).__name__} {trigger_id}")
        except RegistryFull:
            await ack(text=BUSY, response_type="ephemeral")
            return
        except RegistryClosed:
            await ack(text=RESTARTING, response_type="ephemeral")
            return
        await ack()

    return on_dcv


def _action_listener(services: Services) -> Callable[..., Awaitable[None]]:
    async def on_action(
        ack: Callable[..., Awaitable[Any]],
        body: dict[str, Any],
        respond: Respond,
        client: AsyncWebClient,
    ) -> None:
        await ack()
        actions = body.get("actions") or [{}]
        action_id = str(actions[0].get("action_id") or "")
        value = str(actions[0].get("value") or "")
        container = body.get("container") or {}
        ctx = SlackContext(
            team_id=str((body.get("team") or {}).get("id") or ""),
            channel_id=str((body.get("channel") or {}).get("id") or container.get("channel_id") or ""),
            user_id=str((body.get("user") or {}).get("id") or ""),
            client=client,
            respond=respond,
            enterprise_id=(body.get("enterprise") or {}).get("id"),
            message_ts=container.get("message_ts"),
            thread_ts=container.get("thread_ts"),
        )
        watches = services.watches
        if watches is None:
            job = _send(ctx, blocks.notice(WATCHES_DISABLED))
        else:
            job = _reply_with(ctx, watches.on_action(ctx, action_id, value))
        try:
            services.tasks.spawn(job, name=f"dcv action {action_id}")
        except (RegistryFull, RegistryClosed):
            log.warning("button %s dropped: the task registry takes no more work", action_id)

    return on_action


async def _watch_flow(ctx: SlackContext, watches: WatchCommands, command: Command) -> None:
    if isinstance(command, WatchCommand):
        outcome = watches.watch(ctx, command)
    elif isinstance(command, UnwatchCommand):
        outcome = watches.unwatch(ctx, command)
    elif isinstance(command, SubscribeCommand):
        outcome = watches.subscribe(ctx, command)
    elif isinstance(command, UnsubscribeCommand):
        outcome = watches.unsubscribe(ctx, command)
    elif isinstance(command, ListCommand):
        outcome = watches.list_watches(ctx, command)
    else:  # pragma: no cover - the listener routes only watch commands here
        raise TypeError(f"not a watch command: {command!r}")
    await _reply_with(ctx, outcome)


async def _reply_with(ctx: SlackContext, outcome: Awaitable[Message | None]) -> None:
    try:
        message = await outcome
    except Exception:
        log.exception("watch service failed")
        message = blocks.notice(":warning: Something went wrong on dcv-bot's side; the error was logged.")
    if message is not None:
        await _send(ctx, message)


async def _send(ctx: SlackContext, message: Message) -> None:
    """An ephemeral reply through ``response_url``; failures are logged, never raised."""
    try:
        response = await ctx.respond(response_type="ephemeral", replace_original=False, **message.as_kwargs())
    except Exception as exc:
        log.warning("respond() failed: %s", type(exc).__name__)
        return
    status = getattr(response, "status_code", 200)
    if status != 200:
        log.warning("respond() answered HTTP %s", status)


def _api_error(exc: SlackApiError) -> str:
    try:
        return str(exc.response.get("error") or "unknown_error")
    except Exception:
        return "unknown_error"


async def _run_guarded(services: Services, request: CheckRequest) -> Diagnosis | str:
    """The diagnosis, or a sentence for the user saying why there is none (never raises)."""
    try:
        async with asyncio.timeout(services.check_deadline):
            return await services.run_check(request)
    except TimeoutError:
        log.warning("check of %s did not finish within %.0f s", request.target, services.check_deadline)
        return f"the check did not finish within {services.check_deadline:.0f} seconds"
    except Exception:
        log.exception("check of %s failed", request.target)
        return "the check failed because of an error inside dcv-bot (it was logged)"


async def check_flow(ctx: SlackContext, request: CheckRequest, services: Services) -> None:
    """Run one check and show it: parent message, diagnosis in its thread, parent updated."""
    if services.admit is not None:
        refusal = await services.admit(ctx)
        if refusal is not None:
            await _send(ctx, refusal)
            return
    check = asyncio.ensure_future(_run_guarded(services, request))
    parent_ts: str | None = None
    post_error: str | None = None
    try:
        try:
            parent = blocks.parent_message(request, ctx.user_id)
            response = await ctx.client.chat_postMessage(
                channel=ctx.channel_id, **parent.as_kwargs(), **POST_FLAGS
            )
            parent_ts = str(response["ts"])
        except SlackApiError as exc:
            post_error = _api_error(exc)
            if post_error not in CANNOT_POST_ERRORS:
                log.warning("could not post the parent message in %s: %s", ctx.channel_id, post_error)
        result = await check
    except asyncio.CancelledError:
        check.cancel()
        await _tell_interrupted(ctx, request, parent_ts)
        raise
    if isinstance(result, str):
        await _show_failure(ctx, request, parent_ts, result)
        return
    if parent_ts is None:
        await _send(ctx, blocks.diagnosis_message(result, note=blocks.cannot_post_note(post_error or "")))
    else:
        await _post_in_thread(ctx, request, parent_ts, result)
    if services.watches is not None:
        try:
            await services.watches.on_check_done(result, ctx.channel_id, parent_ts, ctx)
        except Exception:
            log.exception("watch service failed after the check of %s", request.target)


async def _post_in_thread(
    ctx: SlackContext, request: CheckRequest, parent_ts: str, diagnosis: Diagnosis
) -> None:
    message = blocks.diagnosis_message(diagnosis)
    try:
        await ctx.client.chat_postMessage(
            channel=ctx.channel_id, thread_ts=parent_ts, **message.as_kwargs(), **POST_FLAGS
        )
    except SlackApiError as exc:
        # The parent went out, so the channel is writable; the reply itself was refused (a size limit
        # or a rate limit past its retries). Give the user the diagnosis privately rather than nothing.
        log.warning("could not post the diagnosis in the thread: %s", _api_error(exc))
        await _send(ctx, message)
    try:
        parent = blocks.parent_message(request, ctx.user_id, diagnosis)
        await ctx.client.chat_update(
            channel=ctx.channel_id, ts=parent_ts, **parent.as_kwargs(), **UPDATE_FLAGS
        )
    except SlackApiError as exc:
        log.warning("could not update the parent message: %s", _api_error(exc))


async def _show_failure(ctx: SlackContext, request: CheckRequest, parent_ts: str | None, reason: str) -> None:
    message = blocks.parent_error_message(request, ctx.user_id, reason)
    if parent_ts is None:
        await _send(ctx, message)
        return
    try:
        await ctx.client.chat_update(
            channel=ctx.channel_id, ts=parent_ts, **message.as_kwargs(), **UPDATE_FLAGS
        )
    except SlackApiError as exc:
        log.warning("could not update the parent message: %s", _api_error(exc))
        await _send(ctx, message)


async def _tell_interrupted(ctx: SlackContext, request: CheckRequest, parent_ts: str | None) -> None:
    """Best effort, bounded: the process is stopping, so this must not hold up the shutdown."""
    with contextlib.suppress(Exception):
        async with asyncio.timeout(3.0):
            await _show_failure(ctx, request, parent_ts, INTERRUPTED)
