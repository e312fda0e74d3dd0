"""What changed between two diagnoses of the same check, in words a person reads in a thread.

Used by the success message ("it took 2 h 14 min; what changed: ns2 now serves the value") and by
``dcv ... --wait``, which prints each change as it happens. Works on the JSON form of a diagnosis
(:meth:`bot.model.Diagnosis.to_dict`) because that is what the watch store keeps.
"""

from __future__ import annotations

from typing import Any

MAX_LINES = 8


def format_duration(seconds: float) -> str:
    """``45 s``, ``12 min``, ``2 h 14 min``, ``3 d 2 h``: coarse, as people say it."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def _server_key(obs: dict[str, Any]) -> tuple[str, str, str]:
    return (str(obs.get("kind")), str(obs.get("server")), str(obs.get("address")))


def _describe_obs(obs: dict[str, Any]) -> str:
    status = str(obs.get("status"))
    values = obs.get("values") or []
    if status == "answer" and values:
        shown = ", ".join(str(v) for v in values[:3])
        more = f" (+{len(values) - 3} more)" if len(values) > 3 else ""
        return f"answer {shown}{more}"
    return status


def describe_changes(before: dict[str, Any] | None, after: dict[str, Any]) -> list[str]:
    """Lines naming what differs: the verdict, findings that went away or appeared, servers that changed.

    Returns at most :data:`MAX_LINES` lines (the last one says how many more there were).
    """
    if before is None:
        return []
    lines: list[str] = []
    if before.get("verdict") != after.get("verdict"):
        lines.append(f"verdict {before.get('verdict')} → {after.get('verdict')}")
    old_codes = [f["code"] for f in before.get("findings", []) if f.get("severity") != "info"]
    new_codes = [f["code"] for f in after.get("findings", []) if f.get("severity") != "info"]
    gone = [c for c in old_codes if c not in new_codes]
    came = [c for c in new_codes if c not in old_codes]
    if gone:
        lines.append("resolved: " + ", ".join(dict.fromkeys(gone)))
    if came:
        lines.append("new: " + ", ".join(dict.fromkeys(came)))
    old_obs = {_server_key(o): o for o in before.get("observations", [])}
    for obs in after.get("observations", []):
        key = _server_key(obs)
        prev = old_obs.get(key)
        now_text = _describe_obs(obs)
        label = (
            f"{obs.get('server')} ({obs.get('address')})" if obs.get("address") else str(obs.get("server"))
        )
        if prev is None:
            lines.append(f"{label}: now asked, {now_text}")
            continue
        prev_text = _describe_obs(prev)
        if prev_text != now_text:
            lines.append(f"{label}: {prev_text} → {now_text}")
        elif prev.get("serial") != obs.get("serial") and obs.get("serial") is not None:
            lines.append(f"{label}: SOA serial {prev.get('serial')} → {obs.get('serial')}")
    if len(lines) > MAX_LINES:
        extra = len(lines) - (MAX_LINES - 1)
        lines = [*lines[: MAX_LINES - 1], f"… and {extra} more changes"]
    return lines
