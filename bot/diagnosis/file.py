"""Judging a file check: pure rules from a :class:`FileEvidence` to a :class:`Diagnosis`.

One small function per failure mode, listed in :data:`RULES` in order; each returns findings with a
stable code, a message naming the address, the scheme and the step, and the evidence.

The verdict rule (what "every address the CA could use serves the expected content" means here):

* The CA resolves the domain itself and may use **any** of its addresses, so every address counts, and
  an address the bot will not contact (private, special-purpose) is one the CA cannot reach either.
* For each address the CA starts with ``http://`` or ``https://`` (BR 3.2.2.4.18 allows either; the
  Alibaba Cloud FAQ asks for "port 80 or 443"). A scheme it **cannot connect to** (refused, connect
  timeout, unreachable, TLS handshake failure) is skipped in favour of the other one, so such a failure
  only matters if no scheme serves the file on that address (then it is an error, else a warning).
* A scheme that **answers** (any HTTP response, a redirect the CA's rules refuse, a body that is cut
  off or too large) is taken as the CA's result: it must serve the expected content too. A CA that gets
  a 404 or a forbidden redirect on ``http://`` fails; it does not go looking on ``https://``.
* Redirects count against the CA's limit (``--ca``: Alibaba Cloud and Sectigo none, DigiCert one,
  Tencent/TrustAsia two within the same registered domain, Let's Encrypt ten; see :mod:`bot.cas`).
  Without ``--ca`` the strictest rule applies (none), and the finding names the CAs that would accept.
* Content must match byte for byte, except one trailing newline; trailing white space alone is a
  warning (most CAs trim it), a BOM, leading white space or CRLF line endings are errors.

``pass`` when every address passes by these rules, otherwise ``fail``; the file method has no
``pending`` (nothing here is cached by anyone but the CA's console).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from bot.cas import DEFAULT_MAX_REDIRECTS, PROFILES, CaProfile, profile_for
from bot.checks.http import FileEvidence, sanitize_excerpt
from bot.model import CheckRequest, Diagnosis, Finding, Observation, Severity, Verdict, sort_findings
from bot.names import registered_domain
from bot.remedies import finding, remedy_for

CONNECT_FAILURES = frozenset({"timeout", "refused", "unreachable", "tls_error"})
"""Outcomes where no HTTP conversation took place: a CA moves on to the other scheme."""
SERVED_VERDICTS = frozenset({"exact", "trailing_space"})
SOFT_404_VERDICTS = frozenset({"html"})
MISMATCH_VERDICTS = frozenset({"mismatch", "contains", "empty"})

# ------------------------------------------------------------------------------------------------------
# Redirect policy


@dataclass(frozen=True, slots=True)
class RedirectRule:
    """How many redirects a CA follows, and whether they must stay within the registered domain."""

    who: str
    max_redirects: int
    same_domain: bool = False
    text: str | None = None
    """A description that replaces the generated one (the default rule)."""

    def accepts(self, count: int, hosts: Iterable[str], domain: str) -> bool:
        if count > self.max_redirects:
            return False
        if self.same_domain:
            base = registered_domain(domain)
            return all(registered_domain(h) == base for h in hosts)
        return True

    def describe(self) -> str:
        if self.text:
            return self.text
        if self.max_redirects == 0:
            return f"{self.who} follows no redirects"
        limit = "one redirect" if self.max_redirects == 1 else f"up to {self.max_redirects} redirects"
        scope = " within the same registered domain" if self.same_domain else ""
        return f"{self.who} follows {limit}{scope}"


def rule_for(profile: CaProfile | None) -> RedirectRule:
    if profile is None or profile.max_redirects is None:
        text = "without --ca the strictest common rule applies (no redirect at all)"
        if profile is not None:
            text = (
                f"{short_name(profile)}'s redirect policy is not known, so the strictest rule applies (none)"
            )
        return RedirectRule("any CA", DEFAULT_MAX_REDIRECTS, text=text)
    return RedirectRule(short_name(profile), profile.max_redirects, profile.redirects_same_domain)


def short_name(profile: CaProfile) -> str:
    """``Alibaba Cloud`` for ``Alibaba Cloud (DigiCert, GlobalSign and other brands)``."""
    return profile.name.split(" (")[0]


def accepting_cas(count: int, hosts: list[str], domain: str) -> tuple[list[str], list[str]]:
    """Names of the CAs with a known policy that would and would not follow this chain."""
    yes: list[str] = []
    no: list[str] = []
    seen: set[str] = set()
    for profile in PROFILES.values():
        name = short_name(profile)
        if profile.max_redirects is None or name in seen:
            continue
        seen.add(name)
        rule = RedirectRule(name, profile.max_redirects, profile.redirects_same_domain)
        (yes if rule.accepts(count, hosts, domain) else no).append(name)
    return yes, no


# ------------------------------------------------------------------------------------------------------
# Per-observation judgement


@dataclass(slots=True)
class Judged:
    """One (address, scheme) fetch and what it means for the CA."""

    obs: Observation
    outcome: str
    """``served``, ``skipped`` (could not connect: the CA tries the other scheme), ``bad`` (answered with
    something else), ``blocked``."""
    redirect_ok: bool | None = None
    """None without redirects; else whether the CA's rule accepts the chain."""

    @property
    def scheme(self) -> str:
        return str(self.obs.detail.get("scheme") or "-")

    @property
    def address(self) -> str:
        return self.obs.address or "-"

    @property
    def family(self) -> int:
        return int(self.obs.detail.get("family") or (6 if ":" in self.address else 4))

    @property
    def label(self) -> str:
        return f"{self.scheme} at {self.address}" if self.obs.detail.get("scheme") else self.address

    @property
    def hops(self) -> list[dict[str, Any]]:
        return list(self.obs.detail.get("hops") or [])

    @property
    def final_url(self) -> str:
        hops = self.hops
        return str(hops[-1]["url"]) if hops else "-"


@dataclass(slots=True)
class Context:
    request: CheckRequest
    evidence: FileEvidence
    judged: list[Judged]
    rule: RedirectRule
    ipv6_broken: bool = False
    address_ok: dict[str, bool] = field(default_factory=dict)

    @property
    def domain(self) -> str:
        return self.request.domain

    @property
    def path(self) -> str:
        return self.request.path or self.evidence.path

    def url(self, j: Judged) -> str:
        hops = j.hops
        return str(hops[0]["url"]) if hops else f"{j.scheme}://{self.domain}{self.path}"

    def severity(self, items: list[Judged]) -> Severity:
        """Error when the failure decides the verdict for an address; a warning when every address
        concerned still serves the file on the other scheme and these are only connect failures."""
        for j in items:
            if j.outcome != "skipped" or not self.address_ok.get(j.address, False):
                return Severity.ERROR
        return Severity.WARNING


def _judge(obs: Observation, rule: RedirectRule, domain: str) -> Judged:
    status = obs.status
    if status == "blocked":
        return Judged(obs, "blocked")
    redirects = int(obs.detail.get("redirects") or 0)
    redirect_ok: bool | None = None
    if redirects and status != "redirect_error":
        hosts = [str(h.get("host")) for h in obs.detail.get("hops", [])[1:]]
        redirect_ok = rule.accepts(redirects, hosts, domain)
    if status in CONNECT_FAILURES and not redirects:
        return Judged(obs, "skipped", redirect_ok)
    verdict = obs.detail.get("content_verdict")
    served = status == "ok" and verdict in SERVED_VERDICTS and not obs.detail.get("catch_all")
    if served and redirect_ok is not False:
        return Judged(obs, "served", redirect_ok)
    return Judged(obs, "bad", redirect_ok)


def _context(request: CheckRequest, evidence: FileEvidence) -> Context:
    rule = rule_for(profile_for(request.ca))
    judged = [_judge(o, rule, request.domain) for o in evidence.observations if o.kind == "http"]
    ctx = Context(request, evidence, judged, rule)
    by_address: dict[str, list[Judged]] = {}
    for j in judged:
        by_address.setdefault(j.address, []).append(j)
    for address, items in by_address.items():
        ctx.address_ok[address] = any(j.outcome == "served" for j in items) and not any(
            j.outcome in {"bad", "blocked"} for j in items
        )
    v4_ok = any(ok for a, ok in ctx.address_ok.items() if ":" not in a)
    v6 = [j for j in judged if j.family == 6 and j.outcome != "blocked"]
    ctx.ipv6_broken = (
        v4_ok
        and bool(v6)
        and all(j.outcome != "served" for j in v6)
        and all(j.obs.status in CONNECT_FAILURES | {"read_timeout", "reset"} for j in v6)
    )
    return ctx


def _items(ctx: Context, statuses: set[str], *, skip_v6_broken: bool = True) -> list[Judged]:
    return [
        j
        for j in ctx.judged
        if j.obs.status in statuses and not (skip_v6_broken and ctx.ipv6_broken and j.family == 6)
    ]


def _obs_evidence(items: list[Judged]) -> list[dict[str, Any]]:
    return [
        {
            "address": j.address,
            "scheme": j.scheme,
            "status": j.obs.status,
            "http_status": j.obs.detail.get("http_status"),
            "error": j.obs.error,
            "hops": j.hops,
        }
        for j in items
    ]


def _join(parts: Iterable[str], limit: int = 6) -> str:
    items = list(dict.fromkeys(parts))
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _ports(ctx: Context, items: list[Judged]) -> str:
    ports = sorted({int(j.obs.port) for j in items if j.obs.port})
    return " and ".join(str(p) for p in ports) or "80 and 443"


# ------------------------------------------------------------------------------------------------------
# Rules, one per failure mode

Rule = Callable[[Context], list[Finding]]


def rule_wildcard(ctx: Context) -> list[Finding]:
    if not ctx.request.wildcard:
        return []
    display = ctx.request.display_domain
    return [
        finding(
            "FILE_WILDCARD",
            Severity.ERROR,
            f"{display} is a wildcard: CAs may not validate wildcards by file (BR 3.2.2.4.18), only by DNS.",
            evidence={"display": display, "domain": ctx.domain},
        )
    ]


def rule_no_address(ctx: Context) -> list[Finding]:
    ev = ctx.evidence
    if ctx.request.wildcard or ev.addresses:
        return []
    statuses = {k: v for k, v in ev.lookup.items()}
    errors = {k: v for k, v in ev.lookup_errors.items()}
    if statuses and all(s == "nxdomain" for s in statuses.values()):
        why = f"{ctx.domain} does not exist in DNS (NXDOMAIN)"
    elif statuses and all(s in {"nodata", "nxdomain"} for s in statuses.values()):
        why = f"{ctx.domain} has no A or AAAA record"
    else:
        details = "; ".join(f"{k}: {errors.get(k) or s}" for k, s in statuses.items()) or "no answer"
        why = f"the addresses of {ctx.domain} could not be looked up ({details})"
    return [
        finding(
            "HTTP_NO_ADDRESS",
            Severity.ERROR,
            f"{why}, so there is no server to fetch the file from.",
            evidence={
                "domain": ctx.domain,
                "lookup": statuses,
                "errors": errors,
                "cname_chain": ev.cname_chain,
            },
        )
    ]


def rule_private_address(ctx: Context) -> list[Finding]:
    blocked = [a for a in ctx.evidence.addresses if a.blocked]
    items = [j for j in ctx.judged if j.obs.status == "blocked" and not j.obs.detail.get("blocked")]
    if not blocked and not items:
        return []
    addresses = [a.ip for a in blocked] + [j.address for j in items]
    reasons = [f"{a.ip} {a.blocked}" for a in blocked] + [str(j.obs.error) for j in items]
    reason = blocked[0].blocked if blocked else "is not an address the bot may contact"
    public = [a.ip for a in ctx.evidence.addresses if not a.blocked]
    tail = f" (besides the public {_join(public)})" if public else ""
    return [
        finding(
            "HTTP_PRIVATE_ADDRESS",
            Severity.ERROR,
            f"{ctx.domain} resolves to {_join(reasons)}{tail}: a CA cannot reach that from the internet, "
            "and the bot did not fetch it.",
            evidence={
                "domain": ctx.domain,
                "addresses": _join(addresses),
                "reasons": reasons,
                "public": public,
            },
            fields={"reason": reason},
        )
    ]


def rule_ipv6_broken(ctx: Context) -> list[Finding]:
    if not ctx.ipv6_broken:
        return []
    v6 = [j for j in ctx.judged if j.family == 6 and j.outcome != "blocked"]
    working = [a for a, ok in ctx.address_ok.items() if ok and ":" not in a]
    failing = _join(f"{j.label}: {j.obs.error}" for j in v6)
    return [
        finding(
            "HTTP_IPV6_BROKEN",
            Severity.ERROR,
            f"Every IPv6 address fails ({failing}) while IPv4 works ({_join(working)}). CAs that prefer "
            "IPv6, Let's Encrypt among them, do not fall back to IPv4 on every error.",
            evidence={
                "failing": _join(sorted({j.address for j in v6})),
                "observations": _obs_evidence(v6),
                "working": working,
            },
        )
    ]


def _connect_rule(code: str, statuses: set[str]) -> Rule:
    def rule(ctx: Context) -> list[Finding]:
        items = _items(ctx, statuses)
        if not items:
            return []
        severity = ctx.severity(items)
        lines = _join((f"{j.label} port {j.obs.port}: {j.obs.error}" for j in items), 8)
        tail = (
            ""
            if severity is Severity.ERROR
            else " The other scheme serves the file, so CAs can still use it."
        )
        return [
            finding(
                code,
                severity,
                f"{lines}.{tail}",
                evidence={
                    "targets": _join(f"{j.address} port {j.obs.port}" for j in items),
                    "ports": _ports(ctx, items),
                    "error": items[0].obs.error,
                    "observations": _obs_evidence(items),
                },
            )
        ]

    rule.__name__ = f"rule_{code.lower()}"
    return rule


rule_timeout = _connect_rule("HTTP_TIMEOUT", {"timeout", "unreachable", "read_timeout", "reset"})
rule_refused = _connect_rule("HTTP_REFUSED", {"refused"})
rule_tls_error = _connect_rule("HTTP_TLS_ERROR", {"tls_error"})


def _status_items(ctx: Context, wanted: Callable[[int | None, str], bool]) -> list[Judged]:
    out = []
    for j in ctx.judged:
        code = j.obs.detail.get("http_status")
        if j.obs.status in {"status", "protocol_error"} and wanted(code, j.obs.status):
            out.append(j)
    return out


def _status_text(items: list[Judged]) -> str:
    return _join(str(j.obs.detail.get("http_status") or "an invalid response") for j in items)


def _via(j: Judged) -> str:
    return f" (after redirects, at {j.final_url})" if j.obs.detail.get("redirects") else ""


def rule_not_found(ctx: Context) -> list[Finding]:
    items = _status_items(ctx, lambda code, _s: code in (404, 410))
    if not items:
        return []
    lines = _join(f"{j.label} answered {j.obs.detail.get('http_status')}{_via(j)}" for j in items)
    return [
        finding(
            "HTTP_NOT_FOUND",
            Severity.ERROR,
            f"The file is not there: {lines}.",
            evidence={
                "urls": _join(ctx.url(j) for j in items),
                "status": _status_text(items),
                "observations": _obs_evidence(items),
            },
            fields={"domain": ctx.domain, "path": ctx.path},
        )
    ]


def rule_bad_status(ctx: Context) -> list[Finding]:
    items = _status_items(ctx, lambda code, s: s == "protocol_error" or code not in (404, 410))
    if not items:
        return []
    lines = _join(
        f"{j.label} answered {j.obs.detail.get('http_status') or j.obs.error}{_via(j)}" for j in items
    )
    return [
        finding(
            "HTTP_BAD_STATUS",
            Severity.ERROR,
            f"The file's URL does not answer 200: {lines}.",
            evidence={
                "urls": _join(ctx.url(j) for j in items),
                "status": _status_text(items),
                "observations": _obs_evidence(items),
            },
            fields={"path": ctx.path},
        )
    ]


def rule_soft_404(ctx: Context) -> list[Finding]:
    items = [
        j
        for j in ctx.judged
        if j.obs.status == "ok"
        and (j.obs.detail.get("content_verdict") in SOFT_404_VERDICTS or j.obs.detail.get("catch_all"))
    ]
    if not items:
        return []
    catch_all = any(j.obs.detail.get("catch_all") for j in items)
    what = "an HTML page" if any(j.obs.detail.get("content_verdict") == "html" for j in items) else "a page"
    if catch_all:
        what += " that the site also returns for a file that does not exist (a catch-all)"
    excerpt = items[0].obs.values[0] if items[0].obs.values else ""
    return [
        finding(
            "HTTP_SOFT_404",
            Severity.ERROR,
            f'{_join(j.label for j in items)} answered 200 with {what} instead of the file: "{excerpt}".',
            evidence={
                "urls": _join(ctx.url(j) for j in items),
                "what": what,
                "served": excerpt,
                "content_type": items[0].obs.detail.get("content_type"),
                "control": items[0].obs.detail.get("control"),
                "observations": _obs_evidence(items),
            },
        )
    ]


def _hop_text(j: Judged) -> str:
    parts = []
    for hop in j.hops:
        status = hop.get("status")
        parts.append(
            f"{hop.get('url')}"
            + (f" [{status}]" if status else "")
            + (f" ({hop['error']})" if hop.get("error") else "")
        )
    return " -> ".join(parts)


def rule_redirect(ctx: Context) -> list[Finding]:
    refused = [j for j in ctx.judged if j.obs.status == "redirect_error"]
    followed = [j for j in ctx.judged if j.redirect_ok is not None]
    findings: list[Finding] = []
    if refused:
        lines = _join((f"{j.label}: {j.obs.error}" for j in refused), 4)
        findings.append(
            finding(
                "HTTP_REDIRECT",
                Severity.ERROR,
                f"A redirect no CA follows: {lines}.",
                evidence={
                    "urls": _join(ctx.url(j) for j in refused),
                    "hops": "; ".join(_hop_text(j) for j in refused),
                    "observations": _obs_evidence(refused),
                },
                fields={"policy": "CAs refuse this redirect (" + str(refused[0].obs.error) + ")."},
            )
        )
    bad = [j for j in followed if j.redirect_ok is False]
    good = [j for j in followed if j.redirect_ok]
    for items, allowed in ((bad, False), (good, True)):
        if not items:
            continue
        longest = max(items, key=lambda j: int(j.obs.detail.get("redirects") or 0))
        count = int(longest.obs.detail.get("redirects") or 0)
        hosts = [str(h.get("host")) for h in longest.hops[1:]]
        yes, no = accepting_cas(count, hosts, ctx.domain)
        who = f"{_join(yes)} would follow it" if yes else "no CA with a known policy would follow it"
        if no:
            who += f"; {_join(no)} would not"
        verdict = "allows" if allowed else "does not allow"
        policy = f"{ctx.rule.describe()[0].upper()}{ctx.rule.describe()[1:]}, so it {verdict} this ({who})."
        times = "once" if count == 1 else f"{count} times"
        severity = Severity.INFO if allowed else Severity.ERROR
        findings.append(
            finding(
                "HTTP_REDIRECT",
                severity,
                f"{_join(j.label for j in items)} redirect{'s' if len(items) == 1 else ''} {times}: "
                f"{_hop_text(longest)}. {policy}",
                evidence={
                    "urls": _join(ctx.url(j) for j in items),
                    "hops": "; ".join(_hop_text(j) for j in items),
                    "redirects": count,
                    "accepted_by": yes,
                    "refused_by": no,
                    "rule": ctx.rule.describe(),
                    "observations": _obs_evidence(items),
                },
                fields={"policy": policy},
            )
        )
    return findings


def rule_too_large(ctx: Context) -> list[Finding]:
    items = [j for j in ctx.judged if j.obs.status == "too_large"]
    if not items:
        return []
    limit = ctx.evidence.max_body
    return [
        finding(
            "HTTP_TOO_LARGE",
            Severity.ERROR,
            f"{_join(j.label for j in items)} sent more than {limit} bytes (the bot stopped reading there): "
            f'"{items[0].obs.values[0] if items[0].obs.values else ""}".',
            evidence={
                "urls": _join(ctx.url(j) for j in items),
                "limit": limit,
                "content_type": items[0].obs.detail.get("content_type"),
                "observations": _obs_evidence(items),
            },
            fields={"path": ctx.path},
        )
    ]


def rule_content_mismatch(ctx: Context) -> list[Finding]:
    items = [
        j
        for j in ctx.judged
        if j.obs.status == "ok"
        and j.obs.detail.get("content_verdict") in MISMATCH_VERDICTS
        and not j.obs.detail.get("catch_all")
    ]
    if not items:
        return []
    served = list(dict.fromkeys(j.obs.values[0] if j.obs.values else "" for j in items))
    notes = list(dict.fromkeys(d for j in items for d in j.obs.detail.get("differences") or []))
    note = f" ({'; '.join(notes)})" if notes else ""
    shown = " / ".join(f'"{s}"' for s in served[:3])
    return [
        finding(
            "HTTP_CONTENT_MISMATCH",
            Severity.ERROR,
            f"{_join(j.label for j in items)} serve{'s' if len(items) == 1 else ''} {shown}{note}, "
            f'not the expected "{sanitize_excerpt(ctx.request.expected.encode(), 100)}".',
            evidence={
                "urls": _join(ctx.url(j) for j in items),
                "served": " / ".join(served[:3]) or "an empty file",
                "expected": ctx.request.expected,
                "differences": notes,
                "observations": _obs_evidence(items),
            },
            fields={"served": shown or "an empty file", "path": ctx.path},
        )
    ]


def rule_content_format(ctx: Context) -> list[Finding]:
    items = [
        j
        for j in ctx.judged
        if j.obs.status == "ok" and j.obs.detail.get("content_verdict") in {"format", "trailing_space"}
    ]
    if not items:
        return []
    strict = [j for j in items if j.obs.detail.get("content_verdict") == "format"]
    differences = list(dict.fromkeys(d for j in items for d in j.obs.detail.get("differences") or []))
    difference = "; ".join(differences)
    severity = Severity.ERROR if strict else Severity.WARNING
    tail = (
        ""
        if strict
        else " Most CAs (Let's Encrypt among them) ignore trailing white space; a byte-exact CA may not."
    )
    return [
        finding(
            "HTTP_CONTENT_FORMAT",
            severity,
            f"{_join(j.label for j in items)} serve{'s' if len(items) == 1 else ''} the right value, "
            f'but the file {difference}: "{items[0].obs.values[0] if items[0].obs.values else ""}".{tail}',
            evidence={
                "urls": _join(ctx.url(j) for j in items),
                "difference": difference,
                "served": items[0].obs.values[0] if items[0].obs.values else "",
                "observations": _obs_evidence(items),
            },
        )
    ]


def rule_inconsistent(ctx: Context) -> list[Finding]:
    served = [j for j in ctx.judged if j.outcome == "served"]
    if not served:
        return []
    failing = [
        j
        for j in ctx.judged
        if j.outcome in {"bad", "blocked"} or (j.outcome == "skipped" and not ctx.address_ok.get(j.address))
    ]
    if ctx.ipv6_broken:
        failing = [j for j in failing if j.family != 6]
    if not failing:
        return []
    return [
        finding(
            "HTTP_INCONSISTENT",
            Severity.ERROR,
            f"{_join(j.label for j in served)} serve the file, but "
            f"{_join(f'{j.label} ({_short_outcome(j)})' for j in failing)} do not; "
            "the CA may use any of them.",
            evidence={
                "serving": [f"{j.scheme}://{j.address}" for j in served],
                "failing": _join(f"{j.label}: {_short_outcome(j)}" for j in failing),
                "observations": _obs_evidence(failing),
            },
            fields={"domain": ctx.domain},
        )
    ]


def _short_outcome(j: Judged) -> str:
    status = j.obs.status
    if status == "status":
        return f"HTTP {j.obs.detail.get('http_status')}"
    if status == "ok":
        if j.redirect_ok is False:
            return "redirect not allowed"
        return str(j.obs.detail.get("content_verdict") or "ok")
    return status.replace("_", " ")


def rule_file_found(ctx: Context) -> list[Finding]:
    served = [j for j in ctx.judged if j.outcome == "served"]
    if not served:
        return []
    total = len([j for j in ctx.judged if j.outcome != "blocked"])
    return [
        finding(
            "HTTP_FILE_FOUND",
            Severity.INFO,
            f"The expected content is served by {_join(j.label for j in served)} ({len(served)} of {total} "
            "fetches).",
            evidence={"serving": [f"{j.scheme}://{j.address}" for j in served]},
        )
    ]


def rule_certificate(ctx: Context) -> list[Finding]:
    """A certificate browsers would reject: noted, never fatal (CAs do not verify it when validating)."""
    invalid = [
        j for j in ctx.judged if j.scheme == "https" and j.obs.detail.get("certificate", "valid") != "valid"
    ]
    if not invalid:
        return []
    reasons = sorted({str(j.obs.detail["certificate"]) for j in invalid})
    return [
        finding(
            "HTTP_CERT_INVALID",
            Severity.INFO,
            f"The HTTPS certificate of {ctx.domain} at {_join(j.address for j in invalid)} does not verify "
            f"({'; '.join(reasons)}). CAs ignore this when they fetch the file, so it does not block "
            "validation; browsers will warn until the new certificate is installed.",
            evidence={"addresses": [j.address for j in invalid], "reasons": reasons},
        )
    ]


RULES: tuple[Rule, ...] = (
    rule_wildcard,
    rule_no_address,
    rule_private_address,
    rule_ipv6_broken,
    rule_timeout,
    rule_refused,
    rule_tls_error,
    rule_redirect,
    rule_not_found,
    rule_bad_status,
    rule_soft_404,
    rule_too_large,
    rule_content_mismatch,
    rule_content_format,
    rule_inconsistent,
    rule_certificate,
    rule_file_found,
)
"""The rules in order; each adds findings independently. Findings are then sorted by severity."""


def _summary(ctx: Context, verdict: Verdict, findings: list[Finding]) -> str:
    addresses = sorted({j.address for j in ctx.judged if j.outcome != "blocked"})
    if verdict is Verdict.PASS:
        warn = [f for f in findings if f.severity is Severity.WARNING]
        extra = f", with {len(warn)} warning{'s' if len(warn) != 1 else ''}" if warn else ""
        return (
            f"The expected file is served at every address of {ctx.domain} "
            f"({len(addresses)} address{'es' if len(addresses) != 1 else ''}){extra}."
        )
    errors = [f for f in findings if f.severity is Severity.ERROR]
    if not errors:
        return f"The file check of {ctx.domain} failed."
    first = errors[0]
    more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
    title = remedy_for(first.code).title
    if not title[1:2].isupper():  # keep acronyms such as "IPv6" and "HTTPS" as they are
        title = title[0].lower() + title[1:]
    return f"File validation of {ctx.request.display_domain} would fail: {title}{more}."


def diagnose_file(request: CheckRequest, evidence: FileEvidence) -> Diagnosis:
    """Judge ``evidence`` for ``request``; pure, no network."""
    ctx = _context(request, evidence)
    findings: list[Finding] = []
    for rule in RULES:
        findings.extend(rule(ctx))
    if request.wildcard:
        findings = [f for f in findings if f.code == "FILE_WILDCARD"]
    has_error = any(f.severity is Severity.ERROR for f in findings)
    every_address_ok = bool(ctx.address_ok) and all(ctx.address_ok.values())
    no_blocked = not any(a.blocked for a in evidence.addresses)
    verdict = Verdict.PASS if every_address_ok and no_blocked and not has_error else Verdict.FAIL
    findings = sort_findings(findings)
    return Diagnosis(
        request=request,
        verdict=verdict,
        summary=_summary(ctx, verdict, findings),
        findings=findings,
        observations=list(evidence.observations),
        retry_after=None,
        duration_ms=evidence.duration_ms,
    )
