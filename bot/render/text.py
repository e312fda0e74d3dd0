"""The terminal report: verdict, the per-server table, then findings with their remedies."""

from __future__ import annotations

import textwrap
import unicodedata
from collections.abc import Sequence
from functools import partial

from bot.model import Diagnosis, Observation, Severity, Verdict

_VERDICT_STYLE = {
    Verdict.PASS: ("PASS", "32"),
    Verdict.PENDING: ("PENDING", "33"),
    Verdict.FAIL: ("FAIL", "31"),
}
_SEVERITY_STYLE = {
    Severity.ERROR: ("error", "31"),
    Severity.WARNING: ("warning", "33"),
    Severity.INFO: ("ok", "32"),
}
MAX_CELL = 48
WIDTH = 100
# URLs and names must not be split at their hyphens or dots when a paragraph wraps.
_wrap = partial(textwrap.wrap, width=WIDTH, break_on_hyphens=False, break_long_words=False)


def printable(text: str) -> str:
    """Make text read from the network safe for a terminal: no control characters or escapes."""
    return "".join(
        ch if unicodedata.category(ch)[0] != "C" else f"\\x{ord(ch):02x}" if ord(ch) < 256 else "?"
        for ch in text
    )


def _cell(text: str, limit: int = MAX_CELL) -> str:
    text = printable(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _paint(text: str, code: str, color: bool) -> str:
    return f"\x1b[{code}m{text}\x1b[0m" if color else text


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """A plain aligned table."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines.extend("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows)
    return lines


def _answer(obs: Observation) -> str:
    if obs.status in {"answer", "cname"} and obs.values:
        shown = ", ".join(f'"{v}"' for v in obs.values[:3])
        more = f" +{len(obs.values) - 3}" if len(obs.values) > 3 else ""
        via = f" (via {obs.detail['cname_chain'][-1]})" if obs.detail.get("cname_chain") else ""
        return shown + more + via
    if obs.status == "cname" and obs.detail.get("cname_chain"):
        return "CNAME -> " + " -> ".join(obs.detail["cname_chain"])
    if obs.error and obs.status in {"timeout", "error", "skipped", "servfail"}:
        return f"{obs.status.upper()}: {obs.error}"
    return obs.status.upper()


def dns_table(observations: Sequence[Observation]) -> list[str]:
    """Per-server rows: nameserver or resolver, address, answer, TTL, SOA serial, round-trip time."""
    rows = []
    for obs in observations:
        role = "NS" if obs.kind == "authoritative" else "resolver"
        address = obs.address or "-"
        if obs.port and obs.port != 53:
            address = f"[{address}]:{obs.port}" if ":" in address else f"{address}:{obs.port}"
        rows.append(
            [
                role,
                _cell(obs.server, 32),
                _cell(address, 40),
                _cell(_answer(obs)),
                "-" if obs.ttl is None else str(obs.ttl),
                "-" if obs.serial is None else str(obs.serial),
                "-" if obs.rtt_ms is None else f"{obs.rtt_ms:.0f} ms",
            ]
        )
    return table(["", "server", "address", "answer", "TTL", "serial", "time"], rows)


def observation_table(diagnosis: Diagnosis) -> list[str]:
    if diagnosis.request.method == "dns":
        return dns_table(diagnosis.observations)
    from bot.render.text_file import file_table

    return file_table(diagnosis.observations)


def render_text(diagnosis: Diagnosis, *, color: bool = False) -> str:
    """The whole report as a string."""
    request = diagnosis.request
    label, code = _VERDICT_STYLE[diagnosis.verdict]
    what = f"{request.record_type} {request.target}" if request.method == "dns" else f"file {request.target}"
    lines = [
        f"{_paint(label, code + ';1', color)}  {printable(what)}  (domain {request.display_domain}"
        + (f", CA {request.ca}" if request.ca else "")
        + ")",
        f"expected: {_cell(request.expected, 200)}",
        "",
        *_wrap(printable(diagnosis.summary)),
        "",
    ]
    if diagnosis.observations:
        lines.extend(observation_table(diagnosis))
        lines.append("")
    for item in diagnosis.findings:
        tag, tag_code = _SEVERITY_STYLE[item.severity]
        head = f"[{_paint(tag, tag_code, color)}] {item.code}"
        if item.faq:
            head += f"  (FAQ: {item.faq})"
        lines.append(head)
        lines.extend(_wrap(printable(item.message), initial_indent="  ", subsequent_indent="  "))
        if item.remedy:
            lines.extend(_wrap(printable(item.remedy), initial_indent="  fix: ", subsequent_indent="       "))
        lines.append("")
    if diagnosis.retry_after:
        lines.append(f"Look again in {diagnosis.retry_after} s; it should pass without further action.")
    lines.append(f"checked {diagnosis.checked_at:%Y-%m-%d %H:%M:%S} UTC in {diagnosis.duration_ms:.0f} ms")
    return "\n".join(lines)
