"""The one place that makes untrusted text safe to show in Slack mrkdwn.

Slack treats exactly three characters as control characters in message text: ``&``, ``<`` and ``>``
(they build ``<@U123>`` mentions, ``<!channel>`` pings and ``<https://x|label>`` links). Slack's own
formatting guide says to replace those three with HTML entities and nothing else. Everything a user
typed, a DNS server answered or a web server served goes through :func:`escape_mrkdwn` (or one of the
helpers built on it) before it reaches a message, so a TXT record reading ``<!channel>`` shows as text.

Two more hazards are handled here because they are about display, not content:

* Backticks would close our own code spans and let the rest of a value be formatted; inside code we
  replace them with a look-alike (U+02CB) so the value stays readable and inert.
* Control characters and bidirectional overrides (U+202E and friends) can hide or reorder what a person
  reads; they are shown as ``\\u202e``-style escapes instead.
"""

from __future__ import annotations

import unicodedata

BACKTICK_LOOKALIKE = "\u02cb"
"""MODIFIER LETTER GRAVE ACCENT: looks like a backtick, is not mrkdwn syntax."""

ELLIPSIS = "…"

# Bidirectional controls (Unicode TR #9) and zero-width characters that can disguise text.
_INVISIBLE = frozenset(
    "\u200b\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2060\u2066\u2067\u2068\u2069\ufeff"
)


def escape_mrkdwn(text: str) -> str:
    """Replace ``&``, ``<`` and ``>`` with ``&amp;``, ``&lt;`` and ``&gt;`` (``&`` first)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def unescape_mrkdwn(text: str) -> str:
    """The inverse of :func:`escape_mrkdwn` (``&amp;`` last, so ``&amp;lt;`` becomes ``&lt;``)."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def visible(text: str, *, keep_newlines: bool = False) -> str:
    """Show control, format and bidi-override characters as ``\\uXXXX`` escapes.

    A remote value is displayed, never interpreted, so the reader must see every character that is
    really there: a TXT value with a trailing tab or a right-to-left override is a real mismatch.
    """
    out: list[str] = []
    for char in text:
        if char == "\n" and keep_newlines:
            out.append(char)
        elif char in _INVISIBLE or unicodedata.category(char) in {"Cc", "Cf", "Zl", "Zp", "Cs", "Co"}:
            code = ord(char)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(char)
    return "".join(out)


def untrusted(text: str, *, keep_newlines: bool = False) -> str:
    """Text from a user, a DNS answer or an HTTP body, made visible and escaped for mrkdwn."""
    return escape_mrkdwn(visible(text, keep_newlines=keep_newlines))


def neutralise_backticks(text: str) -> str:
    """Replace backticks so ``text`` cannot close the code span or block it is placed in."""
    return text.replace("`", BACKTICK_LOOKALIKE)


def code_span(text: str, limit: int = 200) -> str:
    """An inline code span holding untrusted ``text``, escaped, single-line and truncated to ``limit``."""
    body = truncate(untrusted(text), limit)
    return f"`{neutralise_backticks(body)}`" if body else "`(empty)`"


def truncate(text: str, limit: int, *, marker: str = ELLIPSIS) -> str:
    """Cut ``text`` (already escaped) to at most ``limit`` characters, ending with ``marker`` if cut.

    The cut never splits an HTML entity produced by :func:`escape_mrkdwn`, so a truncated ``&amp;``
    does not show up as a stray ``&am``.
    """
    if limit <= 0:
        return ""
    if len(text) <= limit:
        return text
    if len(marker) >= limit:
        return marker[:limit]
    cut = text[: limit - len(marker)]
    amp = cut.rfind("&", max(0, len(cut) - 5))
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut + marker


def truncate_marked(text: str, limit: int) -> str:
    """Like :func:`truncate`, but the marker says how many characters were left out."""
    if len(text) <= limit:
        return text
    # The marker's own length depends on the count; two passes settle it.
    marker = f"{ELLIPSIS} [{len(text) - limit} more characters not shown]"
    marker = f"{ELLIPSIS} [{len(text) - (limit - len(marker))} more characters not shown]"
    return truncate(text, limit, marker=marker)


def plain(text: str, limit: int) -> str:
    """Text for a ``plain_text`` object (headers, buttons): visible, escaped, truncated.

    Whether Slack parses ``<!channel>`` in plain_text is not documented; escaping is harmless there
    (Slack decodes the entities for display) and removes the doubt.
    """
    return truncate(untrusted(" ".join(text.split())), limit)
