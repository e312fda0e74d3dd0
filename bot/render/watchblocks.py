"""Block Kit for watches: "I'll keep watching", success, reminder, expiry, subscriptions, ``/dcv list``.

Pure functions built on :mod:`bot.render.blocks` (its text objects, limits and escaping), so watch
messages obey the same rules as every other dcv-bot message: anything that came from a user, DNS or
HTTP goes through :func:`~bot.render.escape.untrusted` or :func:`~bot.render.escape.escape_mrkdwn`.
The only markup produced here is our own: ``<!date^...>`` timestamps (shown in each reader's time
zone) and ``<https://...|thread>`` links to a Slack permalink.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from bot.model import CheckRequest, Diagnosis
from bot.render import blocks
from bot.render.blocks import Message, context, diagnosis_message, fit_blocks, section, watch_buttons
from bot.render.escape import escape_mrkdwn, truncate, untrusted
from bot.watches.changes import format_duration

_SLACK_LINK = re.compile(r"^https://[A-Za-z0-9.-]+\.slack\.com/[A-Za-z0-9/._?=&%-]*$")


def slack_time(epoch: float, now: float | None = None) -> str:
    """``<!date^...>`` markup: Slack shows it in the reader's time zone; the fallback is UTC."""
    fallback = datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M UTC")
    when = f"<!date^{int(epoch)}^{{date_short_pretty}} at {{time}}|{fallback}>"
    if now is not None and epoch > now:
        when += f" (in about {format_duration(epoch - now)})"
    return when


def link(url: str, label: str) -> str:
    """A link to a Slack permalink; anything that is not a plain slack.com URL is shown as text."""
    if _SLACK_LINK.match(url):
        return f"<{url}|{escape_mrkdwn(label)}>"
    return escape_mrkdwn(label)


def title(request: CheckRequest) -> str:
    return escape_mrkdwn(blocks.check_title(request))


def watching_message(
    watch_id: int,
    request: CheckRequest,
    next_check_at: float,
    expires_at: float,
    now: float,
    *,
    user_id: str | None = None,
) -> Message:
    """The reply (or parent) that says a watch started and when the bot looks again."""
    who = f" for {blocks.mention(user_id)}" if user_id else ""
    text = (
        f":eyes: Watching the {title(request)}{who} (watch #{watch_id}). "
        f"Next look: {slack_time(next_check_at, now)}; then every few minutes, backing off to every 30 "
        f"minutes, until it passes or {slack_time(expires_at)}. I'll reply in this thread when it passes."
    )
    fallback = f"Watching the {title(request)} (watch #{watch_id}); I'll reply here when it passes."
    return Message(text=fallback, blocks=[section(text), watch_buttons(str(watch_id), watching=True)])


def watch_offer(request: CheckRequest) -> Message:
    """Under a failing result: offer to keep checking after the user fixes it."""
    text = (
        ":point_right: Once you have fixed it, I can keep checking and reply here when it passes "
        "(`/dcv watch` does the same)."
    )
    value = json.dumps(request.to_dict(), separators=(",", ":"))
    return Message(
        text="Watch until it passes?", blocks=[section(text), watch_buttons(value, watching=False)]
    )


def _diagnosis_blocks(data: dict[str, Any] | None) -> list[dict[str, Any]]:
    if not data:
        return []
    return diagnosis_message(Diagnosis.from_dict(data)).blocks


def _request(payload: dict[str, Any]) -> CheckRequest:
    return CheckRequest.from_dict(payload["request"])


def verified_message(payload: dict[str, Any]) -> Message:
    """The success reply: how long it took and what changed (broadcast to the channel)."""
    request = _request(payload)
    took = format_duration(float(payload.get("took") or 0.0))
    checks = int(payload.get("checks_done") or 0)
    head = f":white_check_mark: *{title(request)} passes now*: it took {took} ({checks} re-checks)."
    changes = [untrusted(line) for line in payload.get("changes") or []]
    parts = [head]
    if changes:
        parts.append("*What changed*\n" + "\n".join(f"• {line}" for line in changes))
    parts.append("The CA should see it too; if its console still shows pending, ask it to check again.")
    text = truncate(f"{blocks.check_title(request)} passes now (it took {took})", 3000)
    return Message(text=escape_mrkdwn(text), blocks=fit_blocks([section("\n\n".join(parts))]))


def reminder_message(payload: dict[str, Any]) -> Message:
    """One hour of failing: the current diagnosis and the FAQ's advice for that case."""
    request = _request(payload)
    failing = format_duration(float(payload.get("failing_for") or 0.0))
    head = (
        f":hourglass: The {title(request)} still does not pass after {failing}. DNS changes usually "
        "show within an hour, so check that the record is configured exactly as the CA's console asks "
        "(name, type, value) and at the DNS provider that actually serves the domain. I keep watching."
    )
    body = [section(head), *_diagnosis_blocks(payload.get("final"))]
    return Message(
        text=escape_mrkdwn(f"{blocks.check_title(request)} still fails after {failing}"),
        blocks=fit_blocks(body),
    )


def expired_message(payload: dict[str, Any]) -> Message:
    """The watch ran out: the last diagnosis, and what to do next."""
    request = _request(payload)
    watched = format_duration(float(payload.get("watched_for") or 0.0))
    head = (
        f":stop_sign: Stopped watching the {title(request)} after {watched} without a pass. "
        "The last diagnosis is below; fix what it says and run `/dcv watch` again."
    )
    body = [section(head), *_diagnosis_blocks(payload.get("final"))]
    return Message(
        text=escape_mrkdwn(f"Stopped watching {blocks.check_title(request)}: no pass"),
        blocks=fit_blocks(body),
    )


def parent_update(payload: dict[str, Any]) -> Message:
    """The parent message once the watch ends."""
    request = _request(payload)
    if payload.get("event") == "verified":
        took = format_duration(float(payload.get("took") or 0.0))
        text = (
            f"{title(request)}: :white_check_mark: *passes* after {took} of watching (details in the thread)"
        )
    else:
        text = f"{title(request)}: :stop_sign: watch expired without a pass (details in the thread)"
    return Message(text=text, blocks=[section(text)])


SUBSCRIPTION_HEADS = {
    "verified": ":white_check_mark: *{what}* passes now (it took {took}).",
    "expired": ":stop_sign: *{what}*: the watch expired without a pass.",
    "reminder": ":hourglass: *{what}* still fails after {failing}.",
}


def subscription_message(payload: dict[str, Any], permalink: str | None) -> Message:
    """A result for a subscribed channel, with a link to the thread where it happened."""
    request = _request(payload)
    event = str(payload.get("event"))
    head = SUBSCRIPTION_HEADS.get(event, "*{what}*: {event}").format(
        what=title(request),
        took=format_duration(float(payload.get("took") or 0.0)),
        failing=format_duration(float(payload.get("failing_for") or 0.0)),
        event=escape_mrkdwn(event),
    )
    where = (
        link(permalink, "See the thread")
        if permalink
        else "The thread is in a conversation I cannot link to."
    )
    text = f"{head} {where}"
    summary = ""
    final = payload.get("final")
    if final:
        summary = blocks.verdict_line(Diagnosis.from_dict(final))
    body = [section(text)]
    if summary:
        body.append(context([summary]))
    body.append(context([f"Subscribed to {escape_mrkdwn(request.domain)}: `/dcv unsubscribe` stops these."]))
    return Message(text=escape_mrkdwn(f"{blocks.check_title(request)}: {event}"), blocks=fit_blocks(body))


def list_message(watches: Sequence[Any], subscriptions: Sequence[Any], now: float) -> Message:
    """``/dcv list``: this channel's active watches and subscriptions."""
    lines = ["*Watches in this channel*"]
    if not watches:
        lines.append("none (`/dcv watch dns DOMAIN VALUE` starts one)")
    for w in watches:
        last = escape_mrkdwn(w.last_verdict or "not checked")
        what = escape_mrkdwn(blocks.check_title(w.request))
        lines.append(f"• #{w.id} {what}: last {last}, next look {slack_time(w.next_check_at, now)}")
    lines.append("*Subscriptions*")
    if not subscriptions:
        lines.append("none (`/dcv subscribe DOMAIN`)")
    lines.extend(f"• {escape_mrkdwn(s.domain)}" for s in subscriptions)
    text = "\n".join(lines)
    return Message(
        text=f"{len(watches)} watches, {len(subscriptions)} subscriptions",
        blocks=fit_blocks([section(truncate(text, 2900))]),
    )
