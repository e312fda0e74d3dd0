"""Block Kit builders and the escape function, on their own: escaping, truncation and Slack's limits."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.model import CheckRequest, Diagnosis, Finding, Observation, Severity, Verdict
from bot.names import dns_request
from bot.remedies import faq_entries
from bot.render import blocks
from bot.render.escape import code_span, escape_mrkdwn, truncate, truncate_marked, unescape_mrkdwn, untrusted
from tests.slack.fakeslack import FakeSlack

HOSTILE = [
    "<!channel>",
    "<!here>",
    "<@U123>",
    "<https://evil.example|https://bank.example>",
    "&lt;",
    "<!subteam^S1>",
]


def make_diagnosis(
    values: list[str], *, expected: str = "good", findings: list[Finding] | None = None, n: int = 3
) -> Diagnosis:
    request = dns_request("example.com", expected)
    observations = [
        Observation(
            "authoritative", f"ns{i}.example.net", f"192.0.2.{i}", 53, "answer", values, 300, 2026112901, 12.5
        )
        for i in range(1, n + 1)
    ]
    observations.append(Observation("resolver", "Google", "8.8.8.8", 53, "nxdomain", [], None, None, 30.0))
    return Diagnosis(
        request=request,
        verdict=Verdict.FAIL,
        summary=f"the record holds {values[0] if values else 'nothing'}",
        findings=findings
        or [
            Finding(
                "DNS_VALUE_MISMATCH",
                Severity.ERROR,
                f"found {values!r}",
                "record-mismatch",
                f"replace {values!r} with good",
                {"found": values},
            ),
            Finding("DNS_RECORD_FOUND", Severity.INFO, "info note"),
        ],
        observations=observations,
        retry_after=240,
        checked_at=datetime(2026, 11, 29, 12, 0, tzinfo=UTC),
        duration_ms=812.0,
    )


def all_texts(message_blocks: list[dict[str, Any]]) -> list[str]:
    texts: list[str] = []

    def walk(item: Any) -> None:
        if isinstance(item, dict):
            if isinstance(item.get("text"), str):
                texts.append(item["text"])
            for key, value in item.items():
                if not (key == "text" and isinstance(value, str)):
                    walk(value)
        elif isinstance(item, list):
            for value in item:
                walk(value)

    walk(message_blocks)
    return texts


def assert_valid(message: blocks.Message) -> None:
    fake = FakeSlack()
    params = {
        "channel": "C1",
        "text": message.text,
        "blocks": message.blocks,
        "link_names": False,
        "unfurl_links": False,
        "unfurl_media": False,
        "parse": "none",
    }
    fake.validate_message("chat.postMessage", params)
    assert fake.violations == []


@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_values_are_escaped(hostile: str) -> None:
    message = blocks.diagnosis_message(make_diagnosis([hostile]))
    assert_valid(message)
    rendered = json.dumps(message.blocks) + message.text
    assert hostile not in rendered
    assert escape_mrkdwn(hostile) in rendered


def test_golden_escapes() -> None:
    assert escape_mrkdwn("<!channel>") == "&lt;!channel&gt;"
    assert escape_mrkdwn("<@U123>") == "&lt;@U123&gt;"
    assert escape_mrkdwn("<https://evil|x>") == "&lt;https://evil|x&gt;"
    assert escape_mrkdwn("&lt;") == "&amp;lt;"
    assert code_span("a`b") == "`aˋb`"
    assert untrusted("a\u202eb\x00") == "a\\u202eb\\x00"


@given(st.text())
def test_escape_round_trip_and_no_markup(text: str) -> None:
    escaped = escape_mrkdwn(text)
    assert unescape_mrkdwn(escaped) == text
    assert "<" not in escaped and ">" not in escaped
    assert re.sub(r"&(amp|lt|gt);", "", escaped).count("&") == 0


@given(st.text(), st.integers(min_value=0, max_value=300))
def test_truncate_never_exceeds_or_splits_entities(text: str, limit: int) -> None:
    escaped = escape_mrkdwn(text)
    marked_limit = max(limit, 60)
    for cut, bound in (
        (truncate(escaped, limit), limit),
        (truncate_marked(escaped, marked_limit), marked_limit),
    ):
        assert len(cut) <= bound
        assert re.sub(r"&(amp|lt|gt);", "", cut).count("&") == 0
        if len(escaped) <= bound:
            assert cut == escaped


def test_100kb_evidence_is_truncated_and_marked() -> None:
    huge = "A" * 100_000
    finding = Finding("DNS_VALUE_MISMATCH", Severity.ERROR, huge, "record-mismatch", huge, {"found": [huge]})
    diagnosis = make_diagnosis([huge], findings=[finding] * 30, n=40)
    message = blocks.diagnosis_message(diagnosis)
    assert_valid(message)
    assert len(message.blocks) <= blocks.MAX_BLOCKS
    total = sum(len(t) for t in all_texts(message.blocks))
    assert total <= blocks.MESSAGE_BUDGET
    rendered = json.dumps(message.blocks)
    assert "more characters not shown" in rendered or "…" in rendered
    assert "did not fit" in rendered or "more findings not shown" in rendered
    assert len(message.text) <= 3000


def test_diagnosis_message_shape() -> None:
    message = blocks.diagnosis_message(make_diagnosis(["bad"]))
    assert_valid(message)
    kinds = [b["type"] for b in message.blocks]
    assert kinds[0] == "header"
    assert "fails" in message.blocks[0]["text"]["text"]
    rendered = json.dumps(message.blocks)
    for piece in (
        "ns1.example.net",
        "192.0.2.1",
        "2026112901",
        "Authoritative nameservers",
        "Public resolvers",
        "*Expected*",
        "*What to do:*",
        "DNS_VALUE_MISMATCH",
        "/dcv faq record-mismatch",
        "4 min",
    ):
        assert piece in rendered, piece
    for texts in (b.get("text") for b in message.blocks if b["type"] == "section"):
        if texts and texts["type"] == "mrkdwn":
            assert texts["verbatim"] is True


def test_file_diagnosis_renders_fetch_table() -> None:
    request = CheckRequest(
        "file",
        "example.com",
        "http://example.com/.well-known/pki-validation/f.txt",
        "c",
        path="/.well-known/pki-validation/f.txt",
    )
    obs = Observation(
        "http",
        "http://example.com/.well-known/pki-validation/f.txt",
        "192.0.2.1",
        80,
        "status",
        ["<html>"],
        detail={"http_status": 404, "hops": []},
    )
    diagnosis = Diagnosis(request, Verdict.FAIL, "404", [], [obs])
    message = blocks.diagnosis_message(diagnosis)
    assert_valid(message)
    rendered = json.dumps(message.blocks)
    assert "Fetches" in rendered and "status 404" in rendered and "&lt;html&gt;" in rendered


def test_other_messages_are_valid() -> None:
    request = dns_request("example.com", "v")
    diagnosis = make_diagnosis(["v"])
    entries = list(faq_entries().values())
    for message in (
        blocks.help_message(),
        blocks.faq_message([], entries),
        blocks.faq_message(entries, entries),
        blocks.parent_message(request, "U0USER"),
        blocks.parent_message(request, "U0USER", diagnosis),
        blocks.parent_error_message(request, "U0USER", "timed out"),
        blocks.notice(blocks.cannot_post_note("not_in_channel")),
        blocks.diagnosis_message(diagnosis, note=blocks.cannot_post_note("channel_not_found")),
        blocks.Message(
            text=blocks.usage_text("<!channel> bad"), blocks=[blocks.section(blocks.usage_text("x"))]
        ),
    ):
        assert_valid(message)
    assert "&lt;web root&gt;" in json.dumps(blocks.faq_message(entries, entries).blocks)


def test_mention_only_for_real_user_ids() -> None:
    assert blocks.mention("U0USER") == "<@U0USER>"
    assert blocks.mention("<!channel>") == "&lt;!channel&gt;"


def test_watch_buttons_are_valid() -> None:
    message = blocks.Message(
        text="watch?", blocks=[blocks.section("x"), blocks.watch_buttons("w-1", watching=False)]
    )
    assert_valid(message)
    assert message.blocks[1]["elements"][0]["action_id"].startswith(blocks.ACTION_PREFIX)
