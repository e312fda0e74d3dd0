"""CAA: which CAs the domain allows to issue (RFC 8659), looked up the way CAs do.

The CA looks for a CAA record set at the domain, then at each parent, and the nearest non-empty set
applies (RFC 8659 section 3; resolvers follow CNAMEs on the way). A lookup error before that set is
found blocks issuance, because the records might be hiding behind the error (Boulder ``va/caa.go``,
CA/B Forum BR 3.2.2.8).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from bot.checks.dnsquery import QueryResult

KNOWN_TAGS = {"issue", "issuewild", "iodef", "issuemail", "issuevmc", "contactemail", "contactphone"}

Ask = Callable[[str, str], Awaitable[QueryResult]]


@dataclass(frozen=True, slots=True)
class CaaRecord:
    flags: int
    tag: str
    value: str

    @property
    def critical(self) -> bool:
        # RFC 8659 defines bit 128; Boulder also honours 1 because it is widely set by mistake.
        return bool(self.flags & 128) or bool(self.flags & 1)

    @property
    def issuer(self) -> str:
        """The issuer domain of an ``issue``/``issuewild`` value (empty for ``;``, which forbids all)."""
        return self.value.split(";", 1)[0].strip().lower()

    def __str__(self) -> str:
        return f'{self.flags} {self.tag} "{self.value}"'


@dataclass(slots=True)
class CaaLookup:
    """The relevant CAA record set, or why it could not be found."""

    found_at: str | None = None
    records: list[CaaRecord] = field(default_factory=list)
    error: str | None = None
    error_at: str | None = None
    names_checked: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CaaLookup:
        return cls(
            found_at=data.get("found_at"),
            records=[CaaRecord(**r) for r in data.get("records", [])],
            error=data.get("error"),
            error_at=data.get("error_at"),
            names_checked=list(data.get("names_checked", [])),
        )


def parse_caa(text: str) -> CaaRecord | None:
    """Parse the presentation form ``0 issue "ca.example"``; ``None`` if it is not CAA data."""
    parts = text.split(maxsplit=2)
    if len(parts) < 2 or not parts[0].isdigit():
        return None
    value = parts[2] if len(parts) == 3 else ""
    if len(value) >= 2 and value.startswith('"') and value.endswith('"'):
        value = value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return CaaRecord(int(parts[0]), parts[1].lower(), value)


def climb(domain: str) -> list[str]:
    """The names whose CAA sets may apply, nearest first: the domain and each parent, TLD included."""
    labels = domain.split(".")
    return [".".join(labels[i:]) for i in range(len(labels))]


async def lookup_caa(ask: Ask, domain: str, *, wildcard: bool = False) -> CaaLookup:
    """Find the CAA set that applies to ``domain``; ``wildcard`` is kept for the caller's judgement."""
    names = climb(domain)
    results = await asyncio.gather(*(ask(name, "CAA") for name in names))
    lookup = CaaLookup(names_checked=names)
    for name, result in zip(names, results, strict=True):
        if result.status == "answer" and result.values:
            lookup.found_at = name
            lookup.records = [r for r in (parse_caa(v) for v in result.values) if r is not None]
            return lookup
        if result.status in {"nxdomain", "nodata", "cname"}:
            continue
        lookup.error = result.error or result.status
        lookup.error_at = name
        return lookup
    return lookup


def authorises(lookup: CaaLookup, issuer_domains: tuple[str, ...], *, wildcard: bool) -> tuple[bool, str]:
    """Whether the CAA set allows a CA known by ``issuer_domains``; the reason in words."""
    if lookup.error:
        return False, f"the CAA lookup at {lookup.error_at} failed ({lookup.error}), which blocks issuance"
    if not lookup.records:
        return True, "no CAA records: every CA may issue"
    unknown_critical = [r for r in lookup.records if r.critical and r.tag not in KNOWN_TAGS]
    if unknown_critical:
        return False, f"{unknown_critical[0]} is marked critical with a tag CAs do not know"
    issue = [r for r in lookup.records if r.tag == "issue"]
    issuewild = [r for r in lookup.records if r.tag == "issuewild"]
    # RFC 8659 5.3: for a wildcard, issuewild overrides issue when present.
    relevant, tag = (issuewild, "issuewild") if wildcard and issuewild else (issue, "issue")
    if not relevant:
        return True, f"the CAA set at {lookup.found_at} has no {tag} property"
    issuers = {r.issuer for r in relevant}
    if any(domain in issuers for domain in issuer_domains):
        return True, f"{tag} authorises it"
    allowed = ", ".join(sorted(i for i in issuers if i)) or "no CA at all"
    return False, f"the {tag} properties at {lookup.found_at} allow only {allowed}"
