"""Watches in Slack: the ``WatchCommands`` hook, the outbox deliverer, and their life cycle in ``dcv serve``.

* :class:`SlackWatchService` implements :class:`bot.slack.app.WatchCommands`: ``/dcv watch``,
  ``unwatch``, ``subscribe``, ``unsubscribe``, ``list``, the "Watch until it passes" / "Stop watching"
  buttons, and the automatic watch of a pending result (``on_check_done``). Every command counts
  against a per-user rate limit held in the database.
* :class:`SlackDeliverer` makes the outbox's posts with a Web API client that never retries on its own
  (a blind retry of ``chat.postMessage`` can post twice; the outbox decides about retries): thread
  replies (the success one with ``reply_broadcast``), parent updates, and subscription posts with a
  permalink to the thread. Every post carries the dedupe key in its message metadata, which is how a
  post made just before a crash is found again (``conversations.replies``/``history`` with
  ``include_all_metadata``).
* :func:`watch_runtime` opens the store and runs the scheduler and the outbox sender beside the Slack
  app for as long as ``dcv serve`` runs, and stops them (releasing leases) on shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import AsyncIterator
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.config import Settings
from bot.model import CheckRequest, Diagnosis, InputError, Verdict
from bot.names import dns_request, file_request
from bot.render import blocks, watchblocks
from bot.render.blocks import Message
from bot.render.escape import escape_mrkdwn as escape
from bot.slack.app import Services, SlackContext
from bot.slack.commands import ListCommand, SubscribeCommand, UnsubscribeCommand, UnwatchCommand, WatchCommand
from bot.slack.listeners import CANNOT_POST_ERRORS, POST_FLAGS, UPDATE_FLAGS
from bot.watches.outbox import OutboxSender, PermanentDeliveryError, RateLimited
from bot.watches.schedule import Clock, WatchSchedule
from bot.watches.scheduler import CheckRunner, Scheduler
from bot.watches.store import NewWatch, OutboxItem, Store, Watch, WatchRefused

log = logging.getLogger(__name__)

METADATA_EVENT = "dcv_watch_result"
PERMANENT_ERRORS = frozenset(
    {
        *CANNOT_POST_ERRORS,
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "invalid_blocks",
        "msg_too_long",
        "msg_blocks_too_long",
        "no_text",
        "message_not_found",
        "cant_update_message",
    }
)


def _error_code(exc: SlackApiError) -> str:
    try:
        return str(exc.response.get("error") or "unknown_error")
    except Exception:
        return "unknown_error"


def _retry_after(exc: SlackApiError) -> float | None:
    response = exc.response
    if getattr(response, "status_code", None) != 429:
        return None
    headers = getattr(response, "headers", {}) or {}
    for name, value in headers.items():
        if name.lower() == "retry-after":
            raw = value[0] if isinstance(value, list) and value else value
            try:
                return max(1.0, float(str(raw).strip()))
            except ValueError:
                return 1.0
    return 1.0


def posting_client(settings: Settings) -> AsyncWebClient:
    """A Web API client with no retry handlers: the outbox owns retries (R30)."""
    return AsyncWebClient(
        token=settings.slack_bot_token,
        base_url=settings.slack_api_url,
        timeout=15,
        retry_handlers=[],
        logger=logging.getLogger("bot.slack.webapi"),
    )


class SlackWatchService:
    """The :class:`~bot.slack.app.WatchCommands` hook of the Slack app."""

    def __init__(
        self,
        store: Store,
        schedule: WatchSchedule,
        *,
        allow_private: bool = False,
        clock: Clock = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.schedule = schedule
        self.allow_private = allow_private
        self.clock = clock
        self.rng = rng or random.Random()

    # -- helpers ---------------------------------------------------------------------------------------

    async def _rate(self, ctx: SlackContext) -> None:
        await self.store.run(self.store.hit_rate, f"{ctx.team_id}:{ctx.user_id}", now=self.clock())

    async def admit(self, ctx: SlackContext) -> Message | None:
        """The same per-user limit for ``/dcv dns|file`` checks: a refusal message, or ``None``."""
        try:
            await self._rate(ctx)
        except WatchRefused as refused:
            return blocks.notice(f":information_source: {refused.message}")
        return None

    async def _create(
        self, ctx: SlackContext, request: CheckRequest, *, thread_ts: str | None, first: Diagnosis | None
    ) -> Watch:
        now = self.clock()
        retry_after = first.retry_after if first is not None else None
        spec = NewWatch(
            team_id=ctx.team_id,
            channel_id=ctx.channel_id,
            created_by=ctx.user_id,
            request=request,
            thread_ts=thread_ts,
            parent_ts=thread_ts,
            first_diagnosis=first,
        )
        return await self.store.run(
            self.store.create_watch,
            spec,
            now=now,
            next_check_at=self.schedule.first_check_at(now, retry_after, self.rng),
            expires_at=self.schedule.expires_at(now, request.method, request.ca),
        )

    async def _reply(self, ctx: SlackContext, thread_ts: str, message: Message) -> None:
        with contextlib.suppress(SlackApiError):
            await ctx.client.chat_postMessage(
                channel=ctx.channel_id, thread_ts=thread_ts, **message.as_kwargs(), **POST_FLAGS
            )

    # -- commands --------------------------------------------------------------------------------------

    async def watch(self, ctx: SlackContext, command: WatchCommand) -> Message | None:
        try:
            await self._rate(ctx)
            watch = await self._create(ctx, command.request, thread_ts=None, first=None)
        except WatchRefused as refused:
            return blocks.notice(f":information_source: {refused.message}")
        # The watch's thread hangs off a new channel message that says when the bot looks again.
        message = watchblocks.watching_message(
            watch.id, watch.request, watch.next_check_at, watch.expires_at, self.clock(), user_id=ctx.user_id
        )
        try:
            response = await ctx.client.chat_postMessage(
                channel=ctx.channel_id, **message.as_kwargs(), **POST_FLAGS
            )
        except SlackApiError as exc:
            # Nowhere to report to: do not keep a watch nobody will hear from.
            await self.store.run(
                self.store.cancel_watches, ctx.team_id, ctx.channel_id, str(watch.id), now=self.clock()
            )
            return Message(
                text=blocks.cannot_post_note(_error_code(exc)),
                blocks=[blocks.section(blocks.cannot_post_note(_error_code(exc)))],
            )
        ts = str(response["ts"])
        await self.store.run(self.store.set_thread, watch.id, thread_ts=ts, parent_ts=None)
        return None

    async def unwatch(self, ctx: SlackContext, command: UnwatchCommand) -> Message | None:
        try:
            await self._rate(ctx)
        except WatchRefused as refused:
            return blocks.notice(f":information_source: {refused.message}")
        selector = command.watch_id or command.domain or ""
        return await self._cancel(ctx, selector)

    async def _cancel(self, ctx: SlackContext, selector: str) -> Message:
        cancelled = await self.store.run(
            self.store.cancel_watches, ctx.team_id, ctx.channel_id, selector, now=self.clock()
        )
        if not cancelled:
            return blocks.notice(
                f":information_source: No active watch for `{escape(selector)}` in this channel "
                "(`/dcv list` shows them)."
            )
        for w in cancelled:
            if w.thread_ts:
                note = blocks.notice(
                    f":octagonal_sign: Stopped watching (watch #{w.id}) at the request of "
                    f"{blocks.mention(ctx.user_id)}."
                )
                await self._reply(ctx, w.thread_ts, note)
        names = ", ".join(f"#{w.id} {escape(blocks.check_title(w.request))}" for w in cancelled)
        return blocks.notice(f":white_check_mark: Stopped watching {names}.")

    async def subscribe(self, ctx: SlackContext, command: SubscribeCommand) -> Message | None:
        try:
            await self._rate(ctx)
            await self.store.run(
                self.store.subscribe,
                ctx.team_id,
                ctx.channel_id,
                command.domain,
                user_id=ctx.user_id,
                now=self.clock(),
            )
        except WatchRefused as refused:
            return blocks.notice(f":information_source: {refused.message}")
        return blocks.notice(
            f":bell: Subscribed: every verification result for {escape(command.domain)} in this workspace "
            "(passing, expiring, or still failing after an hour) will be posted here with a link to its "
            "thread."
        )

    async def unsubscribe(self, ctx: SlackContext, command: UnsubscribeCommand) -> Message | None:
        try:
            await self._rate(ctx)
        except WatchRefused as refused:
            return blocks.notice(f":information_source: {refused.message}")
        removed = await self.store.run(self.store.unsubscribe, ctx.team_id, ctx.channel_id, command.domain)
        if not removed:
            return blocks.notice(
                f":information_source: This channel is not subscribed to {escape(command.domain)}."
            )
        return blocks.notice(f":no_bell: Unsubscribed from {escape(command.domain)}.")

    async def list_watches(self, ctx: SlackContext, command: ListCommand) -> Message | None:
        try:
            await self._rate(ctx)
        except WatchRefused as refused:
            return blocks.notice(f":information_source: {refused.message}")
        watches = await self.store.run(self.store.channel_watches, ctx.team_id, ctx.channel_id)
        subs = await self.store.run(self.store.channel_subscriptions, ctx.team_id, ctx.channel_id)
        return watchblocks.list_message(watches, subs, self.clock())

    async def on_action(self, ctx: SlackContext, action_id: str, value: str) -> Message | None:
        try:
            await self._rate(ctx)
        except WatchRefused as refused:
            return blocks.notice(f":information_source: {refused.message}")
        if action_id == blocks.ACTION_UNWATCH:
            return await self._cancel(ctx, value if value.isdigit() else "")
        if action_id != blocks.ACTION_WATCH:
            return None
        try:
            request = self._request_from_button(value)
        except (InputError, ValueError, KeyError, TypeError):
            return blocks.notice(":warning: That button is out of date; run the check again.")
        thread = ctx.thread_ts or ctx.message_ts
        try:
            watch = await self._create(ctx, request, thread_ts=thread, first=None)
        except WatchRefused as refused:
            return blocks.notice(f":information_source: {refused.message}")
        if thread:
            message = watchblocks.watching_message(
                watch.id, request, watch.next_check_at, watch.expires_at, self.clock(), user_id=ctx.user_id
            )
            await self._reply(ctx, thread, message)
        return None

    def _request_from_button(self, value: str) -> CheckRequest:
        """Rebuild the request from the button, validating it again like typed input."""
        data = json.loads(value)
        stored = CheckRequest.from_dict(data)
        if stored.method == "dns":
            domain = f"*.{stored.domain}" if stored.wildcard else stored.domain
            host = stored.target + "." if stored.target else None
            return dns_request(
                domain,
                stored.expected,
                host=host,
                record_type=stored.record_type,
                ca=stored.ca,
                allow_private=self.allow_private,
            )
        return file_request(stored.target, stored.expected, ca=stored.ca, allow_private=self.allow_private)

    async def on_check_done(
        self, diagnosis: Diagnosis, channel: str, thread_ts: str | None, ctx: SlackContext
    ) -> None:
        """A pending result is watched at once (the thread says when); a failing one gets the offer button."""
        if thread_ts is None:
            return
        if diagnosis.verdict is Verdict.FAIL:
            await self._reply(ctx, thread_ts, watchblocks.watch_offer(diagnosis.request))
            return
        if diagnosis.verdict is not Verdict.PENDING:
            return
        try:
            watch = await self._create(ctx, diagnosis.request, thread_ts=thread_ts, first=diagnosis)
        except WatchRefused as refused:
            await self._reply(ctx, thread_ts, blocks.notice(f":information_source: {refused.message}"))
            return
        message = watchblocks.watching_message(
            watch.id, watch.request, watch.next_check_at, watch.expires_at, self.clock()
        )
        await self._reply(ctx, thread_ts, message)


class SlackDeliverer:
    """Posts outbox rows to Slack (see the module docstring)."""

    def __init__(self, client: AsyncWebClient) -> None:
        self.client = client

    async def deliver(self, item: OutboxItem) -> str | None:
        try:
            return await self._deliver(item)
        except SlackApiError as exc:
            wait = _retry_after(exc)
            if wait is not None:
                raise RateLimited(wait) from None
            code = _error_code(exc)
            if code in PERMANENT_ERRORS:
                raise PermanentDeliveryError(code) from None
            raise RuntimeError(f"Slack answered {code}") from None

    def _metadata(self, item: OutboxItem) -> dict[str, Any]:
        return {
            "event_type": METADATA_EVENT,
            "event_payload": {"dedupe_key": item.dedupe_key, "watch_id": item.watch_id or 0},
        }

    async def _deliver(self, item: OutboxItem) -> str | None:
        payload = item.payload
        if item.kind == "parent_update":
            if not item.thread_ts:
                return None
            message = watchblocks.parent_update(payload)
            await self.client.chat_update(
                channel=item.channel_id, ts=item.thread_ts, **message.as_kwargs(), **UPDATE_FLAGS
            )
            return item.thread_ts
        if item.kind.startswith("subscription_"):
            permalink = await self._permalink(payload.get("origin_channel"), payload.get("origin_thread_ts"))
            message = watchblocks.subscription_message(payload, permalink)
            extra: dict[str, Any] = {}
        else:
            builder = {
                "verified": watchblocks.verified_message,
                "expired": watchblocks.expired_message,
                "reminder": watchblocks.reminder_message,
            }[item.kind]
            message = builder(payload)
            extra = {"thread_ts": item.thread_ts} if item.thread_ts else {}
            if item.kind == "verified" and item.thread_ts:
                extra["reply_broadcast"] = True
        response = await self.client.chat_postMessage(
            channel=item.channel_id,
            **message.as_kwargs(),
            **POST_FLAGS,
            **extra,
            metadata=self._metadata(item),
        )
        return str(response.get("ts") or "") or None

    async def _permalink(self, channel: Any, ts: Any) -> str | None:
        if not channel or not ts:
            return None
        try:
            response = await self.client.chat_getPermalink(channel=str(channel), message_ts=str(ts))
            return str(response.get("permalink") or "") or None
        except SlackApiError as exc:
            log.info("chat.getPermalink failed (%s); posting without a link", _error_code(exc))
            return None

    async def find_delivered(self, item: OutboxItem) -> str | None:
        """Look for an earlier post of ``item`` by its dedupe key; None when absent or not visible to us."""
        if item.kind == "parent_update":
            return None  # updating a message twice shows the same result: nothing to reconcile
        try:
            if item.thread_ts:
                response = await self.client.conversations_replies(
                    channel=item.channel_id, ts=item.thread_ts, include_all_metadata=True, limit=200
                )
            else:
                response = await self.client.conversations_history(
                    channel=item.channel_id, include_all_metadata=True, limit=100
                )
        except SlackApiError as exc:
            # Typically missing_scope (channels:history): fall back to at-least-once delivery.
            log.warning("cannot look for an earlier post of %s (%s)", item.dedupe_key, _error_code(exc))
            return None
        for message in response.get("messages") or []:
            meta = message.get("metadata") or {}
            if (
                meta.get("event_type") == METADATA_EVENT
                and (meta.get("event_payload") or {}).get("dedupe_key") == item.dedupe_key
            ):
                return str(message.get("ts") or "") or None
        return None


class WatchStartError(Exception):
    """The watch database cannot be opened; the message says which setting to fix."""


@contextlib.asynccontextmanager
async def watch_runtime(
    settings: Settings, services: Services, *, run_check: CheckRunner | None = None
) -> AsyncIterator[SlackWatchService]:
    """Open the store, plug the watch service into ``services``, run scheduler and sender until exit."""
    try:
        store = await asyncio.to_thread(Store.open, settings.database_url)
    except Exception as exc:
        raise WatchStartError(
            f"dcv serve: cannot open the watch database DCV_DATABASE_URL ({type(exc).__name__}: {exc})"
        ) from exc
    schedule = WatchSchedule.from_settings(settings)
    service = SlackWatchService(store, schedule, allow_private=settings.allow_private)
    services.watches = service
    services.admit = service.admit
    sender = OutboxSender(store, SlackDeliverer(posting_client(settings)))
    scheduler = Scheduler(
        store,
        run_check or services.run_check,
        schedule,
        check_timeout=services.check_deadline,
        on_events=sender.wake,
    )
    tasks = [
        asyncio.create_task(scheduler.run(), name="dcv-watch-scheduler"),
        asyncio.create_task(sender.run(), name="dcv-watch-outbox"),
    ]
    try:
        yield service
    finally:
        scheduler.stop()
        sender.stop()
        await asyncio.gather(*tasks, return_exceptions=True)
        services.watches = None
        services.admit = None
        await asyncio.to_thread(store.close)
