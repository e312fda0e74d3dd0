"""The remedy catalogue: what to do for each finding code, and the CA FAQ entries behind it.

The text lives in ``bot/data/remedies.toml`` so it is written and reviewed in one place. Diagnosis
rules call :func:`finding` to build a :class:`~bot.model.Finding` whose remedy is filled in with the
concrete evidence (which server, which value, when it should become visible).
"""

from __future__ import annotations

import string
import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from bot.model import Finding, Severity


@dataclass(frozen=True, slots=True)
class Remedy:
    code: str
    title: str
    faq: str | None
    template: str


@dataclass(frozen=True, slots=True)
class FaqEntry:
    key: str
    title: str
    text: str


class _LenientFields(dict[str, Any]):
    """Format fields that leave an unknown placeholder visible instead of raising."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


@cache
def _catalogue() -> dict[str, Any]:
    raw = resources.files("bot").joinpath("data/remedies.toml").read_text(encoding="utf-8")
    return tomllib.loads(raw)


@cache
def remedies() -> dict[str, Remedy]:
    """Every finding code's catalogue entry."""
    return {
        code: Remedy(code, entry["title"], entry.get("faq") or None, entry.get("remedy", ""))
        for code, entry in _catalogue()["code"].items()
    }


@cache
def faq_entries() -> dict[str, FaqEntry]:
    """The CA FAQ entries, keyed by the contract's FAQ keys."""
    return {key: FaqEntry(key, e["title"], e["text"]) for key, e in _catalogue()["faq"].items()}


def remedy_for(code: str) -> Remedy:
    """The catalogue entry for ``code``; a KeyError means a rule uses a code the catalogue lacks."""
    return remedies()[code]


def render_remedy(code: str, fields: dict[str, Any]) -> str:
    template = remedy_for(code).template
    return string.Formatter().vformat(template, (), _LenientFields(fields)).strip()


def finding(
    code: str,
    severity: Severity,
    message: str,
    *,
    evidence: dict[str, Any] | None = None,
    fields: dict[str, Any] | None = None,
) -> Finding:
    """Build a finding for ``code`` with its FAQ key and remedy (templated with ``fields``).

    Info findings carry no remedy. ``fields`` default to the evidence, so most rules pass one dict.
    """
    entry = remedy_for(code)
    evidence = evidence or {}
    remedy = None
    if severity is not Severity.INFO and entry.template:
        remedy = render_remedy(code, {**evidence, **(fields or {})})
    return Finding(
        code=code, severity=severity, message=message, faq=entry.faq, remedy=remedy, evidence=evidence
    )
