"""The data that flows through dcv-bot: requests, observations, findings and diagnoses.

Checkers produce :class:`Observation` records (what one server said, exactly); the diagnosis rules turn a
:class:`CheckRequest` plus its evidence into a :class:`Diagnosis`. Everything here is plain data with a
stable JSON form (``schema: dcv.diagnosis/1``, see ``shared/design/contract.md``), so the same objects
serve the terminal, Slack, the watch store and recorded-observation tests.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

SCHEMA = "dcv.diagnosis/1"

Method = Literal["dns", "file"]
RecordType = Literal["TXT", "CNAME"]
ObservationKind = Literal["authoritative", "resolver", "http"]


class Verdict(enum.StrEnum):
    """Overall outcome of a check."""

    PASS = "pass"  # noqa: S105  (a verdict, not a password)
    """Every server the CA may ask serves the expected value; nothing blocks issuance."""
    PENDING = "pending"
    """Correct at the source but not visible everywhere yet; time alone will fix it."""
    FAIL = "fail"
    """A person has to change something."""

    @property
    def exit_code(self) -> int:
        """The ``dcv`` command's exit status for this verdict (contract: 0 pass, 1 fail, 3 pending)."""
        return {Verdict.PASS: 0, Verdict.FAIL: 1, Verdict.PENDING: 3}[self]


class Severity(enum.StrEnum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


class DcvError(Exception):
    """Base class of dcv-bot's own errors."""


class InputError(DcvError, ValueError):
    """The user's input cannot be checked; the message is a one-line reason meant for the user."""


class CheckError(DcvError):
    """A check could not be carried out at all (not a finding about the domain)."""


@dataclass(frozen=True, slots=True)
class CheckRequest:
    """What to verify, already normalised and validated (see :mod:`bot.names`).

    ``target`` is the DNS validation name (an absolute name without the trailing dot) for the DNS
    method, and the ``http://`` URL of the file for the file method.
    """

    method: Method
    domain: str
    target: str
    expected: str
    record_type: RecordType = "TXT"
    wildcard: bool = False
    ca: str | None = None
    host_label: str | None = None
    """For DNS: the host record as the user gave it, relative to ``domain`` (``_dnsauth``, ``@``)."""
    path: str | None = None
    """For the file method: the URL path of the validation file."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CheckRequest:
        return cls(
            method=data["method"],
            domain=data["domain"],
            target=data["target"],
            expected=data["expected"],
            record_type=data.get("record_type", "TXT"),
            wildcard=bool(data.get("wildcard", False)),
            ca=data.get("ca"),
            host_label=data.get("host_label"),
            path=data.get("path"),
        )

    @property
    def display_domain(self) -> str:
        """The domain as a certificate names it (``*.example.com`` for a wildcard)."""
        return f"*.{self.domain}" if self.wildcard else self.domain


@dataclass(slots=True)
class Observation:
    """What one server said to one question, exactly.

    ``status`` is one of: ``answer``, ``nxdomain``, ``nodata``, ``timeout``, ``refused``, ``servfail``,
    ``notauth`` (answered without authority / referral), ``error`` for DNS; for HTTP the fetch outcome
    (``ok``, ``status``, ``timeout``, ``refused``, ``tls_error``, ``blocked``, ``too_large``, ``error``).
    ``detail`` carries the method-specific extras (CNAME chain, flags, HTTP hops, content verdict...).
    """

    kind: ObservationKind
    server: str
    address: str | None
    port: int | None
    status: str
    values: list[str] = field(default_factory=list)
    ttl: int | None = None
    serial: int | None = None
    rtt_ms: float | None = None
    error: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if not data["detail"]:
            del data["detail"]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Observation:
        return cls(
            kind=data["kind"],
            server=data["server"],
            address=data.get("address"),
            port=data.get("port"),
            status=data["status"],
            values=list(data.get("values") or []),
            ttl=data.get("ttl"),
            serial=data.get("serial"),
            rtt_ms=data.get("rtt_ms"),
            error=data.get("error"),
            detail=dict(data.get("detail") or {}),
        )


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing the diagnosis noticed, with its remedy and the evidence behind it."""

    code: str
    severity: Severity
    message: str
    faq: str | None = None
    remedy: str | None = None
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "severity": self.severity.value,
            "faq": self.faq,
            "message": self.message,
            "remedy": self.remedy,
            "evidence": self.evidence,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Finding:
        return cls(
            code=data["code"],
            severity=Severity(data["severity"]),
            message=data["message"],
            faq=data.get("faq"),
            remedy=data.get("remedy"),
            evidence=dict(data.get("evidence") or {}),
        )


_SEVERITY_ORDER = {Severity.ERROR: 0, Severity.WARNING: 1, Severity.INFO: 2}


@dataclass(slots=True)
class Diagnosis:
    """The judgement of one check: verdict, findings (most important first) and the evidence."""

    request: CheckRequest
    verdict: Verdict
    summary: str
    findings: list[Finding]
    observations: list[Observation]
    retry_after: int | None = None
    checked_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    duration_ms: float = 0.0

    @property
    def problems(self) -> list[Finding]:
        """Findings that are errors or warnings."""
        return [f for f in self.findings if f.severity is not Severity.INFO]

    def codes(self) -> list[str]:
        return [f.code for f in self.findings]

    def to_dict(self) -> dict[str, Any]:
        """The contract's JSON object (plus ``request`` so a diagnosis can be stored and reloaded)."""
        return {
            "schema": SCHEMA,
            "method": self.request.method,
            "domain": self.request.domain,
            "target": self.request.target,
            "expected": self.request.expected,
            "verdict": self.verdict.value,
            "summary": self.summary,
            "findings": [f.to_dict() for f in self.findings],
            "observations": [o.to_dict() for o in self.observations],
            "retry_after": self.retry_after,
            "checked_at": self.checked_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "duration_ms": round(self.duration_ms, 1),
            "request": self.request.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Diagnosis:
        checked = datetime.strptime(data["checked_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        request_data = data.get("request") or {
            "method": data["method"],
            "domain": data["domain"],
            "target": data["target"],
            "expected": data["expected"],
        }
        return cls(
            request=CheckRequest.from_dict(request_data),
            verdict=Verdict(data["verdict"]),
            summary=data["summary"],
            findings=[Finding.from_dict(f) for f in data["findings"]],
            observations=[Observation.from_dict(o) for o in data["observations"]],
            retry_after=data.get("retry_after"),
            checked_at=checked,
            duration_ms=float(data.get("duration_ms", 0.0)),
        )


def sort_findings(findings: list[Finding]) -> list[Finding]:
    """Most important first: errors, then warnings, then info; stable within a severity."""
    return sorted(findings, key=lambda f: _SEVERITY_ORDER[f.severity])
