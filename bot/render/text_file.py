"""The terminal table of a file check: one row per address and scheme."""

from __future__ import annotations

from collections.abc import Sequence

from bot.model import Observation
from bot.render.text import _cell, table

_STATUS_WORDS = {
    "ok": "200",
    "timeout": "connect timeout",
    "read_timeout": "read timeout",
    "refused": "refused",
    "unreachable": "unreachable",
    "tls_error": "TLS error",
    "reset": "reset",
    "blocked": "not fetched",
    "too_large": "too large",
    "redirect_error": "bad redirect",
    "protocol_error": "bad response",
}


def _status(obs: Observation) -> str:
    code = obs.detail.get("http_status")
    if obs.status == "status" and code is not None:
        return str(code)
    if obs.status in {"too_large", "read_timeout"} and code is not None:
        return f"{code}, {_STATUS_WORDS[obs.status]}"
    return _STATUS_WORDS.get(obs.status, obs.status)


def _content(obs: Observation) -> str:
    if obs.status == "blocked":
        return str(obs.detail.get("blocked") or obs.error or "")
    verdict = obs.detail.get("content_verdict")
    if obs.detail.get("catch_all"):
        verdict = "catch-all page"
    if verdict is None:
        return obs.error or "-"
    shown = f' "{obs.values[0]}"' if obs.values and verdict != "exact" else ""
    return f"{str(verdict).replace('_', ' ')}{shown}"


def _address(obs: Observation) -> str:
    address = obs.address or "-"
    return f"[{address}]" if ":" in address else address


def file_table(observations: Sequence[Observation]) -> list[str]:
    """Rows: address, scheme (with port), status, redirects followed, bytes, content verdict, time."""
    rows = []
    for obs in observations:
        scheme = obs.detail.get("scheme") or "-"
        port = f":{obs.port}" if obs.port and obs.port not in (80, 443) else ""
        rows.append(
            [
                _cell(_address(obs), 41),
                f"{scheme}{port}",
                _cell(_status(obs), 24),
                str(obs.detail.get("redirects") or 0),
                str(obs.detail.get("bytes") or 0) if obs.status != "blocked" else "-",
                _cell(_content(obs), 60),
                "-" if obs.rtt_ms is None else f"{obs.rtt_ms:.0f} ms",
            ]
        )
    return table(["address", "scheme", "status", "hops", "bytes", "content", "time"], rows)
