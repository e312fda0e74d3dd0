"""Block Kit messages for Slack: pure functions from a :class:`~bot.model.Diagnosis` (or a command's
outcome) to ``text`` + ``blocks``.

Every string that came from a user, a DNS server or a web server is passed through
:mod:`bot.render.escape` before it lands in a text object, and every text object is cut to Slack's
limits here, so callers can post the result as it is:

* at most 50 blocks per message; section text at most 3000 characters, a field at most 2000, at most
  10 fields; header text (plain_text) at most 150; context blocks at most 10 elements;
* the blocks of one message stay under :data:`MESSAGE_BUDGET` characters in all, well below the
  undocumented ~13k cumulative size at which Slack answers ``msg_blocks_too_long`` (bolt-js#2509).

mrkdwn text objects carry ``verbatim: true`` so Slack does not auto-link names and URLs we print.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.model import CheckRequest, Diagnosis, Finding, Observation, Severity, Verdict
from bot.remedies import FaqEntry
from bot.render.escape import (
    code_span,
    escape_mrkdwn,
    neutralise_backticks,
    plain,
    truncate,
    truncate_marked,
    untrusted,
)
from bot.render.text import table

MAX_BLOCKS = 50
SECTION_TEXT_LIMIT = 3000
FIELD_TEXT_LIMIT = 2000
MAX_FIELDS = 10
HEADER_TEXT_LIMIT = 150
CONTEXT_ELEMENTS_LIMIT = 10
MESSAGE_BUDGET = 11_000
"""Characters across all text objects of one message."""
FALLBACK_TEXT_LIMIT = 3000
MAX_FINDING_SECTIONS = 12
MAX_TABLE_ROWS = 24
VALUE_COLUMN = 48
"""Characters of a value shown in the per-server table; longer values are cut and marked."""
EVIDENCE_LIMIT = 600

ACTION_WATCH = "dcv_watch"
ACTION_UNWATCH = "dcv_unwatch"
ACTION_PREFIX = "dcv_"
"""Every button dcv-bot posts has an ``action_id`` starting with this; one listener routes them."""

VERDICT_EMOJI = {
    Verdict.PASS: ":white_check_mark:",
    Verdict.PENDING: ":hourglass_flowing_sand:",
    Verdict.FAIL: ":x:",
}
VERDICT_WORD = {Verdict.PASS: "passes", Verdict.PENDING: "pending", Verdict.FAIL: "fails"}
SEVERITY_EMOJI = {Severity.ERROR: ":x:", Severity.WARNING: ":warning:", Severity.INFO: ":information_source:"}
METHOD_TITLE = {"dns": "DNS", "file": "File"}

_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,30}$")


@dataclass(frozen=True, slots=True)
class Message:
    """A message ready for ``chat.postMessage``/``respond``: fallback ``text`` plus ``blocks``."""

    text: str
    blocks: list[dict[str, Any]] = field(default_factory=list)

    def as_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for the Web API or ``respond()`` (blocks omitted when there are none)."""
        kwargs: dict[str, Any] = {"text": self.text}
        if self.blocks:
            kwargs["blocks"] = self.blocks
        return kwargs


# --- text objects and blocks -------------------------------------------------------------------------


def mrkdwn(text: str, limit: int = SECTION_TEXT_LIMIT) -> dict[str, Any]:
    """A mrkdwn text object; ``text`` must already be escaped. Empty text becomes a single space."""
    return {"type": "mrkdwn", "text": truncate(text, limit) or " ", "verbatim": True}


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": mrkdwn(text)}


def fields_section(items: Sequence[str]) -> dict[str, Any]:
    return {"type": "section", "fields": [mrkdwn(item, FIELD_TEXT_LIMIT) for item in items[:MAX_FIELDS]]}


def header(text: str) -> dict[str, Any]:
    return {"type": "header", "text": {"type": "plain_text", "text": plain(text, HEADER_TEXT_LIMIT) or "dcv"}}


def context(items: Sequence[str]) -> dict[str, Any]:
    return {"type": "context", "elements": [mrkdwn(item) for item in items[:CONTEXT_ELEMENTS_LIMIT]]}


def divider() -> dict[str, Any]:
    return {"type": "divider"}


def code_block(lines: Iterable[str], limit: int = SECTION_TEXT_LIMIT) -> str:
    """A fenced code block of already-escaped lines, cut (and marked) to fit ``limit`` characters."""
    body = neutralise_backticks("\n".join(lines))
    return "```" + truncate_marked(body, limit - 6) + "```"


def mention(user_id: str) -> str:
    """``<@U123>`` for a real Slack user id; anything else is shown escaped, never as markup."""
    return f"<@{user_id}>" if _USER_ID.match(user_id) else escape_mrkdwn(user_id)


def watch_buttons(watch_value: str, *, watching: bool) -> dict[str, Any]:
    """An actions block offering "Watch until it passes" or "Stop watching" (issue 6 posts it).

    ``watch_value`` is opaque to this module (the watch id or a stored request key) and comes back
    in the action payload; Slack limits a button value to 2000 characters.
    """
    if watching:
        button = {
            "type": "button",
            "action_id": ACTION_UNWATCH,
            "text": {"type": "plain_text", "text": "Stop watching"},
            "value": watch_value[:2000],
        }
    else:
        button = {
            "type": "button",
            "action_id": ACTION_WATCH,
            "style": "primary",
            "text": {"type": "plain_text", "text": "Watch until it passes"},
            "value": watch_value[:2000],
        }
    return {"type": "actions", "elements": [button]}


# --- the diagnosis -------------------------------------------------------------------------------------


def verdict_line(diagnosis: Diagnosis) -> str:
    """``:x: fails: <summary>`` (escaped, one line)."""
    verdict = diagnosis.verdict
    summary = untrusted(" ".join(diagnosis.summary.split()))
    return f"{VERDICT_EMOJI[verdict]} *{VERDICT_WORD[verdict]}*: {truncate(summary, 600)}"


def check_title(request: CheckRequest) -> str:
    """``DNS check for _dnsauth.example.com`` (the name is validated by :mod:`bot.names`)."""
    what = request.target if request.method == "dns" else request.display_domain
    return f"{METHOD_TITLE.get(request.method, request.method)} check for {what}"


def diagnosis_text(diagnosis: Diagnosis) -> str:
    """The fallback ``text`` of the diagnosis message (notifications, screen readers)."""
    title = escape_mrkdwn(check_title(diagnosis.request))
    summary = untrusted(" ".join(diagnosis.summary.split()))
    return truncate(f"{title}: {VERDICT_WORD[diagnosis.verdict]}. {summary}", FALLBACK_TEXT_LIMIT)


def diagnosis_message(diagnosis: Diagnosis, *, note: str | None = None) -> Message:
    """The full diagnosis: verdict, request, per-server table, expected vs seen, findings, remedies.

    ``note`` (already escaped mrkdwn) is put first, e.g. why the answer is ephemeral.
    """
    request = diagnosis.request
    blocks: list[dict[str, Any]] = []
    if note:
        blocks.append(section(note))
    emoji = {Verdict.PASS: "✅", Verdict.PENDING: "⏳", Verdict.FAIL: "❌"}[diagnosis.verdict]
    blocks.append(header(f"{emoji} {check_title(request)}: {VERDICT_WORD[diagnosis.verdict]}"))
    blocks.append(section(verdict_line(diagnosis)))
    blocks.append(fields_section(_request_fields(diagnosis)))
    blocks.extend(_observation_blocks(request, diagnosis.observations))
    seen = _expected_vs_seen(request, diagnosis.observations)
    if seen:
        blocks.append(section(seen))
    blocks.extend(_finding_blocks(diagnosis.findings))
    blocks.append(context(_footer(diagnosis)))
    return Message(text=diagnosis_text(diagnosis), blocks=fit_blocks(blocks))


def _request_fields(diagnosis: Diagnosis) -> list[str]:
    request = diagnosis.request
    fields = [f"*Domain*\n{code_span(request.display_domain)}"]
    if request.method == "dns":
        fields.append(f"*Record*\n{code_span(request.target)} ({escape_mrkdwn(request.record_type)})")
    else:
        fields.append(f"*File URL*\n{code_span(request.target, 300)}")
    fields.append(f"*Expected value*\n{code_span(request.expected, 300)}")
    if request.ca:
        fields.append(f"*CA*\n{code_span(request.ca)}")
    if diagnosis.retry_after is not None and diagnosis.verdict is not Verdict.PASS:
        fields.append(f"*Look again in*\n{_duration(diagnosis.retry_after)}")
    return fields


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


def _footer(diagnosis: Diagnosis) -> list[str]:
    checked = diagnosis.checked_at.strftime("%Y-%m-%d %H:%M:%S UTC")
    items = [f"Checked {checked} in {diagnosis.duration_ms:.0f} ms"]
    faqs = sorted({f.faq for f in diagnosis.findings if f.faq})
    if faqs:
        items.append("More: " + ", ".join(f"`/dcv faq {escape_mrkdwn(key)}`" for key in faqs))
    return items


def _cell(text: str, width: int) -> str:
    return truncate(untrusted(text), width)


def _observation_rows(request: CheckRequest, observations: Sequence[Observation]) -> list[list[str]]:
    rows: list[list[str]] = []
    for obs in observations:
        answer = ", ".join(obs.values) if obs.values else (obs.error or "")
        if request.method == "file" or obs.kind == "http":
            hops = obs.detail.get("hops")
            status = obs.status
            if obs.detail.get("http_status") is not None:
                status = f"{obs.status} {obs.detail['http_status']}"
            rows.append(
                [
                    _cell(obs.address or "-", 39),
                    _cell(str(obs.detail.get("scheme") or "-"), 5),
                    _cell(status, 16),
                    str(len(hops)) if isinstance(hops, list) else "-",
                    _cell(answer, VALUE_COLUMN) or "-",
                    f"{obs.rtt_ms:.0f}ms" if obs.rtt_ms is not None else "-",
                ]
            )
        else:
            rows.append(
                [
                    _cell(obs.server, 32),
                    _cell(obs.address or "-", 39),
                    _cell(obs.status if obs.status != "answer" else answer, VALUE_COLUMN) or "-",
                    str(obs.ttl) if obs.ttl is not None else "-",
                    str(obs.serial) if obs.serial is not None else "-",
                    f"{obs.rtt_ms:.0f}ms" if obs.rtt_ms is not None else "-",
                ]
            )
    return rows


def _table(headers: list[str], rows: list[list[str]], title: str) -> str:
    shown = rows[:MAX_TABLE_ROWS]
    lines = table(headers, shown)
    if len(rows) > len(shown):
        lines.append(f"… and {len(rows) - len(shown)} more")
    return f"*{title}*\n" + code_block(lines, SECTION_TEXT_LIMIT - len(title) - 4)


def _observation_blocks(request: CheckRequest, observations: Sequence[Observation]) -> list[dict[str, Any]]:
    if request.method == "file":
        rows = _observation_rows(request, observations)
        if not rows:
            return []
        headers = ["address", "scheme", "status", "hops", "content", "time"]
        return [section(_table(headers, rows, "Fetches"))]
    blocks = []
    groups = (("authoritative", "Authoritative nameservers"), ("resolver", "Public resolvers"))
    for kind, title in groups:
        group = [o for o in observations if o.kind == kind]
        if group:
            headers = ["server", "address", "answer", "ttl", "serial", "time"]
            blocks.append(section(_table(headers, _observation_rows(request, group), title)))
    return blocks


def _expected_vs_seen(request: CheckRequest, observations: Sequence[Observation]) -> str:
    """``Expected X; seen: A (ns1, ns2), B (ns3); no record at ns4``: the comparison people ask for."""
    relevant = [o for o in observations if o.kind in ("authoritative", "http")] or list(observations)
    if not relevant:
        return ""
    by_value: dict[str, list[str]] = {}
    missing: list[str] = []
    for obs in relevant:
        # A web server is told apart by address and scheme; a nameserver by its name.
        who = f"{obs.detail.get('scheme', 'http')} {obs.address}" if obs.kind == "http" else obs.server
        if obs.values:
            for value in obs.values:
                by_value.setdefault(value, []).append(who)
        else:
            missing.append(f"{who} ({obs.status})")
    lines = [f"*Expected* {code_span(request.expected, 300)}"]
    for i, (value, servers) in enumerate(by_value.items()):
        if i == 10:
            lines.append(f"… and {len(by_value) - 10} more values")
            break
        mark = "✅" if value == request.expected else "✖️"
        names = truncate(untrusted(", ".join(dict.fromkeys(servers))), 200)
        lines.append(f"{mark} *Seen* {code_span(value, 300)} at {names}")
    if missing:
        names = truncate(untrusted(", ".join(dict.fromkeys(missing))), 400)
        lines.append(f"*Nothing* at {names}")
    return "\n".join(lines)


def _evidence_scalar(value: Any) -> str | None:
    if isinstance(value, str | int | float | bool):
        return str(value)
    if isinstance(value, list) and value and all(isinstance(v, str | int | float) for v in value):
        return ", ".join(str(v) for v in value)
    if (
        isinstance(value, dict)
        and value
        and all(isinstance(v, str | int | float | None) for v in value.values())
    ):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    return None  # nested detail (per-fetch records) is in the table above


def _evidence_text(evidence: dict[str, Any]) -> str:
    """``key: value`` lines of the evidence; structures the tables above already show are left out."""
    lines = []
    for key, value in evidence.items():
        text = _evidence_scalar(value)
        if text is not None:
            lines.append(f"{key}: {text}")
    return truncate_marked(untrusted("\n".join(lines)), EVIDENCE_LIMIT)


def finding_text(finding: Finding) -> str:
    """One finding as mrkdwn: code, message, remedy and (for errors) the evidence, escaped."""
    # Each part is cut on its own (1000 + 1000 + 800 < 3000), so a cut never eats a closing ```.
    message = truncate_marked(untrusted(finding.message), 1000)
    parts = [f"{SEVERITY_EMOJI[finding.severity]} *{escape_mrkdwn(finding.code)}*: {message}"]
    if finding.remedy:
        parts.append(f"*What to do:* {truncate_marked(untrusted(finding.remedy, keep_newlines=True), 1000)}")
    evidence = _evidence_text(finding.evidence) if finding.severity is Severity.ERROR else ""
    if evidence:
        parts.append("*Evidence:* " + code_block(evidence.split("\n"), EVIDENCE_LIMIT + 100))
    return "\n".join(parts)


def _finding_blocks(findings: Sequence[Finding]) -> list[dict[str, Any]]:
    problems = [f for f in findings if f.severity is not Severity.INFO]
    infos = [f for f in findings if f.severity is Severity.INFO]
    blocks: list[dict[str, Any]] = []
    if problems:
        blocks.append(divider())
    for finding in problems[:MAX_FINDING_SECTIONS]:
        blocks.append(section(finding_text(finding)))
    if len(problems) > MAX_FINDING_SECTIONS:
        blocks.append(context([f"… and {len(problems) - MAX_FINDING_SECTIONS} more findings not shown"]))
    if infos:
        lines = [
            f"{SEVERITY_EMOJI[f.severity]} {escape_mrkdwn(f.code)}: {untrusted(f.message)}" for f in infos
        ]
        blocks.append(context([truncate_marked("\n".join(lines), SECTION_TEXT_LIMIT)]))
    return blocks


def block_text_size(block: dict[str, Any]) -> int:
    """Characters of text a block carries (what Slack's cumulative limit counts, approximately)."""
    total = 0
    stack: list[Any] = [block]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if isinstance(item.get("text"), str):
                total += len(item["text"])
            stack.extend(v for k, v in item.items() if k != "text" or not isinstance(v, str))
        elif isinstance(item, list):
            stack.extend(item)
    return total


def fit_blocks(blocks: list[dict[str, Any]], budget: int = MESSAGE_BUDGET) -> list[dict[str, Any]]:
    """Keep a message inside the block count and total size limits.

    The last block (the footer) is kept; blocks before it are dropped from the end until the rest
    fits, and a context note says that something was left out.
    """
    if len(blocks) <= MAX_BLOCKS and sum(map(block_text_size, blocks)) <= budget:
        return blocks
    footer, body = blocks[-1], blocks[:-1]
    note = context(["… more of this diagnosis did not fit into one Slack message; run `dcv` for all of it"])
    reserve = block_text_size(footer) + block_text_size(note)
    kept: list[dict[str, Any]] = []
    used = 0
    for block in body:
        size = block_text_size(block)
        if len(kept) + 3 > MAX_BLOCKS or used + size + reserve > budget:
            break
        kept.append(block)
        used += size
    return [*kept, note, footer]


# --- parent message, notices, help, faq ---------------------------------------------------------------


def parent_message(request: CheckRequest, user_id: str, diagnosis: Diagnosis | None = None) -> Message:
    """The short channel message a thread hangs off: "checking…" first, then the verdict."""
    title = escape_mrkdwn(check_title(request))
    who = mention(user_id)
    if diagnosis is None:
        text = f"{title} requested by {who}: checking…"
        return Message(text=text, blocks=[section(f":mag: {text}")])
    line = verdict_line(diagnosis)
    text = truncate(f"{title} requested by {who}: {line} (details in the thread)", FALLBACK_TEXT_LIMIT)
    return Message(text=text, blocks=[section(text)])


def parent_error_message(request: CheckRequest, user_id: str, reason: str) -> Message:
    """The parent after a check that could not be carried out (``reason`` is our own text)."""
    title = escape_mrkdwn(check_title(request))
    text = f"{title} requested by {mention(user_id)}: :warning: {escape_mrkdwn(reason)}"
    return Message(text=text, blocks=[section(text)])


def notice(text: str) -> Message:
    """A one-section message from our own (escaped) mrkdwn text."""
    return Message(text=text, blocks=[section(text)])


USAGE = """\
*Usage*
• `/dcv dns DOMAIN VALUE [--name HOST] [--type TXT|CNAME] [--ca CA]`: check a DNS validation record
• `/dcv file TARGET CONTENT [--path PATH] [--ca CA]`: check a validation file (TARGET: a domain or its \
`http(s)://DOMAIN/.well-known/pki-validation/FILE` URL)
• `/dcv watch dns …` / `/dcv watch file …`: keep checking until it passes, then say so here
• `/dcv unwatch DOMAIN|ID` · `/dcv subscribe DOMAIN` · `/dcv unsubscribe DOMAIN` · `/dcv list`
• `/dcv faq [TOPIC]` · `/dcv help`
Put a value in quotes when it contains spaces."""


def usage_text(reason: str | None = None) -> str:
    """The ephemeral reply to a command that could not be parsed (``reason`` is escaped here)."""
    head = f":warning: {untrusted(reason)}\n\n" if reason else ""
    return head + USAGE


def help_message() -> Message:
    examples = (
        "*Examples*\n"
        "• `/dcv dns example.com 2026112900000068mjx3sb6kxvl8ebm1e4oh2r` (TXT at `_dnsauth.example.com`)\n"
        "• `/dcv dns example.com abc123 --name _acme-challenge --ca letsencrypt`\n"
        "• `/dcv dns www.example.com dcv.digicert.com --type CNAME --name _abc123`\n"
        "• `/dcv file example.com 2026112900000068mjx3 --path /.well-known/pki-validation/fileauth.txt`\n"
        "The bot posts a short message here and the diagnosis in its thread. In a private channel, "
        "invite it first (`/invite @dcv`), or use `/dcv` in a direct message with the bot."
    )
    text = "dcv-bot finds out why a certificate's domain control validation fails."
    return Message(text=text, blocks=[section(f"*{text}*"), section(USAGE), section(examples)])


def faq_message(entries: Sequence[FaqEntry], all_entries: Sequence[FaqEntry]) -> Message:
    """The FAQ entries asked for, or (when ``entries`` is empty) the list of topics."""
    if not entries:
        lines = [f"• `{escape_mrkdwn(e.key)}`: {escape_mrkdwn(e.title)}" for e in all_entries]
        text = "*CA FAQ topics* (`/dcv faq TOPIC`)\n" + "\n".join(lines)
        return Message(text="CA FAQ topics", blocks=[section(text)])
    blocks = [
        section(f"*{escape_mrkdwn(e.title)}* (`{escape_mrkdwn(e.key)}`)\n{escape_mrkdwn(e.text)}")
        for e in entries
    ]
    return Message(
        text="; ".join(escape_mrkdwn(e.title) for e in entries),
        blocks=fit_blocks([*blocks, context(["From the CA's domain verification FAQ"])]),
    )


def cannot_post_note(error: str) -> str:
    """Why a diagnosis arrives as an ephemeral reply, and how to get it into the channel next time."""
    if error == "not_in_channel":
        why = "I am not a member of this channel, so I could not post the check here."
    elif error == "channel_not_found":
        why = "I cannot see this conversation (a private channel or a DM I am not part of)."
    elif error == "is_archived":
        why = "This channel is archived, so I could not post the check here."
    else:
        why = f"I could not post in this conversation (`{escape_mrkdwn(error)}`)."
    return (
        f":information_source: {why} Only you can see this reply. To get results in the channel, "
        "invite me with `/invite @dcv`, or run `/dcv` in a direct message with me (Apps → dcv)."
    )
