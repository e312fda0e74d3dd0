"""Comparing the value a server holds with the value the CA console shows.

CAs compare DNS values exactly (Boulder joins the strings of a TXT record and compares them byte for
byte); CNAME targets are names, so case and the trailing dot do not matter. When a value differs only
in form (quotes, spaces, case, a trailing dot), the person needs to hear exactly that.
"""

from __future__ import annotations

from bot.model import RecordType

_QUOTES = "\"'\u201c\u201d\u2018\u2019"


def same_value(found: str, expected: str, record_type: RecordType) -> bool:
    """True when a CA would accept ``found`` for ``expected``."""
    if record_type == "CNAME":
        return found.rstrip(".").lower() == expected.rstrip(".").lower()
    return found == expected


def format_difference(found: str, expected: str, record_type: RecordType) -> str | None:
    """Describe how ``found`` differs from ``expected`` in form only; ``None`` if it differs for real."""
    if same_value(found, expected, record_type):
        return None
    differences: list[str] = []
    value = found
    if value != value.strip():
        differences.append("spaces around it")
        value = value.strip()
    unescaped = value.replace('\\"', '"')
    if len(unescaped) >= 2 and unescaped[0] in _QUOTES and unescaped[-1] in _QUOTES:
        differences.append("quotes around it")
        value = unescaped[1:-1].strip()
    if value.endswith(".") and not expected.endswith("."):
        differences.append("a trailing dot")
        value = value[:-1]
    if value == expected:
        return _join(differences)
    if "".join(value.split()) == "".join(expected.split()) and value != expected:
        differences.append("spaces inside it")
        value = "".join(value.split())
        if value == "".join(expected.split()):
            return _join(differences)
    if value.lower() == expected.lower():
        differences.append("letter case")
        return _join(differences)
    return None


def _join(parts: list[str]) -> str | None:
    if not parts:
        return None
    if len(parts) == 1:
        return parts[0]
    return ", ".join(parts[:-1]) + " and " + parts[-1]
