"""The DNS diagnosis: pure rules from a request and its :class:`DnsEvidence` to a :class:`Diagnosis`.

One small function per failure mode, each returning findings with a stable code, a message naming the
server and the value, and the evidence; :data:`RULES` runs them in order. The verdict follows from the
findings: any error is ``fail``; otherwise a delay finding (propagation, caching) is ``pending``;
otherwise ``pass``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bot.cas import profile_for
from bot.checks.caa import authorises
from bot.checks.dns import DnsEvidence
from bot.checks.dnsquery import QueryResult
from bot.model import CheckRequest, Diagnosis, Finding, Observation, Severity, Verdict, sort_findings
from bot.names import is_public_suffix
from bot.remedies import finding
from bot.values import format_difference, same_value

DELAY_CODES = frozenset({"DNS_PROPAGATING", "DNS_CACHED_NEGATIVE", "DNS_CACHED_STALE"})


@dataclass(slots=True)
class _Context:
    """What several rules need, computed once."""

    request: CheckRequest
    evidence: DnsEvidence
    answering: list[QueryResult]
    """Authoritative answers that speak for the zone (not timeouts, refusals or referrals)."""
    with_value: list[QueryResult]
    without_value: list[QueryResult]
    now: datetime

    @property
    def everywhere(self) -> bool:
        return bool(self.answering) and not self.without_value


def _has_expected(result: QueryResult, request: CheckRequest, evidence: DnsEvidence) -> bool:
    values = _effective_values(result, evidence)
    return any(same_value(v, request.expected, request.record_type) for v in values)


def _effective_values(result: QueryResult, evidence: DnsEvidence) -> list[str]:
    """The values a CA ends up with: the answer itself, or the end of a CNAME chain leaving the zone."""
    if result.status == "answer":
        return result.values
    if result.status == "cname" and evidence.cname_target and evidence.cname_target.status == "answer":
        return evidence.cname_target.values
    return []


def _servers(results: list[QueryResult]) -> str:
    return ", ".join(f"{r.label or r.server} ({r.server})" for r in results)


def _quote_values(values: list[str], limit: int = 5) -> str:
    shown = ", ".join(f'"{v[:120]}"' for v in values[:limit])
    return shown + (f" and {len(values) - limit} more" if len(values) > limit else "")


def _host(request: CheckRequest) -> str:
    return request.host_label or "@"


# --- rules --------------------------------------------------------------------------------------------


def resolver_unreachable(ctx: _Context) -> list[Finding]:
    failure = ctx.evidence.resolver_failure
    if failure is None:
        return []
    return [
        finding(
            "RESOLVER_UNREACHABLE",
            Severity.ERROR,
            f"dcv-bot could not check {ctx.request.target}: {failure}.",
            evidence={"domain": ctx.request.domain, "detail": failure},
            fields={"resolvers": "DCV_RESOLVERS"},
        )
    ]


def unresolvable(ctx: _Context) -> list[Finding]:
    ev, request = ctx.evidence, ctx.request
    if ev.resolver_failure:
        return []
    problem: str | None = None
    if ev.zone is None:
        lookup = ev.zone_lookup
        problem = f"{request.domain} does not resolve: {ev.zone_failure or 'no zone found'}."
        if lookup and lookup.status == "servfail":
            problem = (
                f"Resolvers answer SERVFAIL for {request.target}: the domain's nameservers do not answer "
                "or answer wrongly, so nothing under it resolves."
            )
    elif _is_registry_zone(ev.zone, request.domain):
        problem = (
            f"{request.domain} does not exist in DNS: the {ev.zone} registry answers that no such domain "
            "is delegated (not registered, expired, or on hold)."
        )
    elif not ev.nameservers or not ev.nameserver_addresses:
        problem = ev.zone_failure or (
            f"The nameservers of {ev.zone} ({', '.join(ev.nameservers) or 'none'}) have no addresses."
        )
    if problem is None:
        return []
    return [
        finding(
            "DNS_UNRESOLVABLE",
            Severity.ERROR,
            problem,
            evidence={"domain": request.domain, "zone": ev.zone, "nameservers": ev.nameservers},
            fields={"problem": problem},
        )
    ]


def _is_registry_zone(zone: str, domain: str) -> bool:
    """True when the zone found is a registry's (the domain itself is not delegated)."""
    if zone == domain or not domain.endswith("." + zone):
        return False
    return is_public_suffix(zone)


def nameserver_health(ctx: _Context) -> list[Finding]:
    ev = ctx.evidence
    if ev.zone is None or _is_registry_zone(ev.zone, ctx.request.domain):
        return []
    # The contract's pass needs every authoritative server to answer with the value: a CA's resolver
    # picks any listed server, and while it may retry another after a timeout or a refusal, CAs that
    # validate from several vantage points fail as soon as one of them gives up.
    severity = Severity.ERROR
    serving = len(ctx.with_value)
    others = (
        (" The other server serves" if serving == 1 else f" The other {serving} servers serve")
        + " the value, so the CA may succeed when it retries another server, but it will be slow and "
        "can time out."
        if serving
        else ""
    )
    findings = []
    timeouts = [r for r in ev.authoritative if r.status == "timeout"]
    if timeouts:
        findings.append(
            finding(
                "DNS_NS_TIMEOUT",
                severity,
                f"{len(timeouts)} nameserver address(es) of {ev.zone} did not answer: {_servers(timeouts)}."
                + others,
                evidence={"servers": [f"{r.label} ({r.server})" for r in timeouts], "zone": ev.zone},
                fields={"servers": _servers(timeouts)},
            )
        )
    lame = [r for r in ev.authoritative if r.status in {"refused", "referral"} or _not_authoritative(r)]
    for result in lame:
        problem = {
            "refused": "refuses queries for it (REFUSED)",
            "referral": "answers with a referral instead of the zone's data",
        }.get(result.status, "answers without the authoritative (AA) flag")
        findings.append(
            finding(
                "DNS_NS_LAME",
                severity,
                f"{result.label} ({result.server}) is listed for {ev.zone} but {problem}." + others,
                evidence={"server": result.label, "address": result.server, "zone": ev.zone},
                fields={"servers": f"{result.label} ({result.server})", "problem": problem},
            )
        )
    errors = [r for r in ev.authoritative if r.status == "error"]
    if errors:
        findings.append(
            finding(
                "DNS_NS_TIMEOUT",
                severity,
                "Nameserver address(es) answered with errors: "
                + "; ".join(f"{r.label} ({r.server}): {r.error}" for r in errors)
                + ".",
                evidence={"servers": [f"{r.label} ({r.server})" for r in errors], "zone": ev.zone},
                fields={"servers": _servers(errors)},
            )
        )
    if ev.unresolved_nameservers:
        findings.append(
            finding(
                "DNS_NS_LAME",
                Severity.WARNING,
                f"Nameserver name(s) {', '.join(ev.unresolved_nameservers)} of {ev.zone} have no address.",
                evidence={"servers": ev.unresolved_nameservers, "zone": ev.zone},
                fields={
                    "servers": ", ".join(ev.unresolved_nameservers),
                    "problem": "has no A or AAAA record",
                },
            )
        )
    return findings


def _not_authoritative(result: QueryResult) -> bool:
    return result.status in {"answer", "nodata", "nxdomain", "cname"} and not result.authoritative


def record_presence(ctx: _Context) -> list[Finding]:
    """The value everywhere, nowhere, or somewhere: found, missing/mismatch, or propagating."""
    zone = ctx.evidence.zone
    if not ctx.answering or (zone is not None and _is_registry_zone(zone, ctx.request.domain)):
        return []
    if ctx.everywhere:
        return [_found(ctx)]
    if ctx.with_value:
        return [_propagating(ctx)]
    return _absent(ctx)


def _found(ctx: _Context) -> Finding:
    request = ctx.request
    via = ""
    chain = next((r.cname_chain for r in ctx.with_value if r.cname_chain), [])
    if chain:
        via = f" via CNAME {' -> '.join([request.target, *chain])}"
    findings_evidence = {"name": request.target, "servers": len(ctx.with_value), "cname_chain": chain}
    asked = len(ctx.evidence.authoritative)
    who = (
        f"All {len(ctx.with_value)} authoritative nameserver address(es)"
        if len(ctx.with_value) == asked
        else f"{len(ctx.with_value)} of {asked} authoritative nameserver addresses (every one that answered)"
    )
    return finding(
        "DNS_RECORD_FOUND",
        Severity.INFO,
        f"{who} serve the expected {request.record_type} value at {request.target}{via}.",
        evidence=findings_evidence,
    )


def _serial_of(ctx: _Context, result: QueryResult) -> int | None:
    for soa in ctx.evidence.serials:
        if soa.server == result.server and soa.port == result.port:
            return soa.soa_serial
    return None


def _propagating(ctx: _Context) -> Finding:
    behind = ctx.without_value
    serials = {f"{r.label} ({r.server})": _serial_of(ctx, r) for r in ctx.answering}
    newest = max((s for s in serials.values() if s is not None), default=None)
    refresh = next((s.soa_refresh for s in ctx.evidence.serials if s.soa_refresh), None)
    serial_text = ", ".join(f"{server}: serial {serial}" for server, serial in serials.items())
    same_serial = len({s for s in serials.values() if s is not None}) == 1
    detail = (
        "with the same SOA serial, so the provider's servers disagree without a zone change in flight"
        if same_serial
        else f"their SOA serials differ (newest {newest})"
    )
    return finding(
        "DNS_PROPAGATING",
        Severity.WARNING,
        f"{len(ctx.with_value)} of {len(ctx.answering)} nameserver addresses serve the value; "
        f"{_servers(behind)} {'does' if len(behind) == 1 else 'do'} not yet, {detail}.",
        evidence={"serials": serials, "behind": [f"{r.label} ({r.server})" for r in behind]},
        fields={
            "behind": _servers(behind),
            "verb": "does" if len(behind) == 1 else "do",
            "serials": serial_text,
            "refresh": f"{refresh} s" if refresh else "the zone's refresh interval",
        },
    )


def _absent(ctx: _Context) -> list[Finding]:
    request, ev = ctx.request, ctx.evidence
    findings: list[Finding] = []
    broken = _cname_problem(ctx)
    if broken is not None:
        return [broken, *_wrong_places(ctx)]
    found = sorted({v for r in ctx.answering for v in _effective_values(r, ev)})
    if found:
        formatted = [v for v in found if format_difference(v, request.expected, request.record_type)]
        if formatted:
            difference = format_difference(formatted[0], request.expected, request.record_type) or ""
            findings.append(
                finding(
                    "DNS_VALUE_FORMAT",
                    Severity.ERROR,
                    f'{request.target} holds "{formatted[0][:200]}", which differs from the expected value '
                    f"only by {difference}.",
                    evidence={"name": request.target, "found": formatted, "expected": request.expected},
                    fields={"difference": difference},
                )
            )
        else:
            findings.append(
                finding(
                    "DNS_VALUE_MISMATCH",
                    Severity.ERROR,
                    f"{request.target} has {request.record_type} value(s) {_quote_values(found)}, "
                    f'none of them the expected "{request.expected}".',
                    evidence={"name": request.target, "found": found, "expected": request.expected},
                    fields={"found": _quote_values(found), "rtype": request.record_type},
                )
            )
        return findings + _wrong_places(ctx)
    wrong = _wrong_places(ctx)
    if wrong:
        return wrong
    nxdomain = all(r.status == "nxdomain" for r in ctx.answering)
    how = (
        f"the name {request.target} does not exist (NXDOMAIN)"
        if nxdomain
        else f"the name {request.target} exists but has no {request.record_type} record (NODATA)"
    )
    return [
        finding(
            "DNS_RECORD_MISSING",
            Severity.ERROR,
            f"No authoritative nameserver of {ev.zone} has the record: {how}.",
            evidence={
                "name": request.target,
                "status": "nxdomain" if nxdomain else "nodata",
                "zone": ev.zone,
                "nameservers": ev.nameservers,
            },
            fields={
                "rtype": request.record_type,
                "host": _host(request),
                "expected": request.expected,
                "nameservers": ", ".join(ev.nameservers),
            },
        )
    ]


def _cname_problem(ctx: _Context) -> Finding | None:
    request, ev = ctx.request, ctx.evidence
    chained = sorted(
        (r for r in ctx.answering if r.cname_chain), key=lambda r: len(r.cname_chain), reverse=True
    )
    if not chained:
        return None
    chain = chained[0].cname_chain
    full = [request.target, *chain]
    problem: str | None = None
    if len(set(chain)) < len(chain) or request.target in chain:
        problem = "loops back on itself"
    elif chained[0].status == "nxdomain" or (
        ev.cname_target is not None
        and ev.cname_target.status == "nxdomain"
        and not ev.cname_target.cname_chain
    ):
        problem = f"ends at {chain[-1]}, which does not exist (NXDOMAIN)"
    elif ev.cname_target is not None and ev.cname_target.cname_chain:
        tail = ev.cname_target.cname_chain
        if len(set(tail)) < len(tail) or any(name in full for name in tail):
            problem = "loops back on itself"
        elif ev.cname_target.status == "nxdomain":
            problem = f"ends at {tail[-1]}, which does not exist (NXDOMAIN)"
    elif ev.cname_target is not None and ev.cname_target.status == "servfail":
        # Resolvers give up on a chain that loops or leads to broken servers: SERVFAIL, no answer.
        problem = (
            f"cannot be followed past {chain[-1]}: resolvers answer SERVFAIL (a loop or a broken target)"
        )
    if problem is None:
        values = _effective_values(chained[0], ev)
        if values or chained[0].status == "answer":
            return None
        # The chain resolves but has no record of the wanted type at its end.
        return finding(
            "DNS_WRONG_TYPE",
            Severity.ERROR,
            f"{request.target} is a CNAME to {chain[-1]}, which has no {request.record_type} record.",
            evidence={"name": request.target, "found_type": "CNAME", "cname_chain": chain},
            fields={"found_type": "CNAME", "rtype": request.record_type, "expected": request.expected},
        )
    chain_text = " -> ".join(full)
    return finding(
        "DNS_CNAME_BROKEN",
        Severity.ERROR,
        f"{request.target} is a CNAME that {problem} ({chain_text}).",
        evidence={"name": request.target, "cname_chain": chain, "problem": problem},
        fields={"chain": chain_text, "problem": problem, "last": chain[-1], "rtype": request.record_type},
    )


def _wrong_places(ctx: _Context) -> list[Finding]:
    """The expected value (or the wanted record) published at a name or type the CA does not read."""
    request, ev = ctx.request, ctx.evidence
    control = set(ev.wildcard_control.values) if ev.wildcard_control else set()
    findings = []
    for probe in ev.probes:
        result = probe.result
        if result.status != "answer" or not result.values:
            continue
        if probe.kind == "other-type":
            if request.record_type == "CNAME":
                findings.append(
                    finding(
                        "DNS_WRONG_TYPE",
                        Severity.ERROR,
                        f"{request.target} has a TXT record ({_quote_values(result.values)}) where the CA "
                        "looks for a CNAME.",
                        evidence={"name": request.target, "found_type": "TXT", "found": result.values},
                        fields={"found_type": "TXT", "rtype": "CNAME", "expected": request.expected},
                    )
                )
            continue
        matching = [v for v in result.values if same_value(v, request.expected, request.record_type)]
        if not matching or set(result.values) <= control:
            continue  # not ours, or the zone has a wildcard that answers everything the same
        code = "DNS_ZONE_DOUBLED" if probe.kind == "doubled" else "DNS_WRONG_NAME"
        where = {
            "doubled": "the name with the domain appended twice",
            "apex": "the domain itself (apex)",
            "zone-apex": "the zone's apex instead of the subdomain",
            "prefix": "another prefix",
        }.get(probe.kind, "another name")
        findings.append(
            finding(
                code,
                Severity.ERROR,
                f"The expected value is published at {result.qname} ({where}), but the CA reads "
                f"{request.target}.",
                evidence={"found_at": result.qname, "name": request.target, "kind": probe.kind},
                fields={"host": _host(request), "rtype": request.record_type},
            )
        )
    return findings


def stale_values(ctx: _Context) -> list[Finding]:
    request = ctx.request
    if not ctx.everywhere:
        return []
    others = sorted(
        {
            v
            for r in ctx.with_value
            for v in _effective_values(r, ctx.evidence)
            if not same_value(v, request.expected, request.record_type)
        }
    )
    if not others or request.record_type != "TXT":
        return []
    return [
        finding(
            "DNS_STALE_VALUES",
            Severity.WARNING,
            f"{request.target} also holds {len(others)} other TXT value(s): {_quote_values(others)}.",
            evidence={"name": request.target, "stale": others},
            fields={"stale": _quote_values(others), "rtype": "TXT"},
        )
    ]


def resolver_caches(ctx: _Context) -> list[Finding]:
    """Authoritative servers are right; do resolvers still hold an old answer?"""
    request, ev = ctx.request, ctx.evidence
    if not ctx.everywhere:
        return []
    negative = [r for r in ev.resolvers if r.status in {"nxdomain", "nodata"}]
    stale = [r for r in ev.resolvers if r.status == "answer" and not _has_expected(r, request, ev)]
    findings = []
    if negative:
        zone_ttl = _zone_negative_ttl(ev)
        remaining = max((r.negative_ttl for r in negative if r.negative_ttl is not None), default=zone_ttl)
        wait = remaining if remaining is not None else zone_ttl
        visible = _visible_at(ctx, wait)
        findings.append(
            finding(
                "DNS_CACHED_NEGATIVE",
                Severity.WARNING,
                f"Every authoritative nameserver serves the value, but {_servers(negative)} still answer "
                f"{'NXDOMAIN' if negative[0].status == 'nxdomain' else 'no record'} from their cache"
                + (f" for up to {wait} s more." if wait is not None else "."),
                evidence={
                    "resolvers": [r.label for r in negative],
                    "negative_ttl": zone_ttl,
                    "remaining": wait,
                    "visible_at": visible,
                },
                fields={
                    "resolvers": _servers(negative),
                    "negative_ttl": zone_ttl if zone_ttl is not None else "?",
                    "visible_at": visible or "the end of the negative TTL",
                },
            )
        )
    if stale:
        ttl = max((r.ttl for r in stale if r.ttl is not None), default=None)
        visible = _visible_at(ctx, ttl)
        findings.append(
            finding(
                "DNS_CACHED_STALE",
                Severity.WARNING,
                f"Every authoritative nameserver serves the value, but {_servers(stale)} still return "
                f"{_quote_values(sorted({v for r in stale for v in r.values}))} from their cache"
                + (f" for up to {ttl} s more." if ttl is not None else "."),
                evidence={"resolvers": [r.label for r in stale], "ttl": ttl, "visible_at": visible},
                fields={
                    "resolvers": _servers(stale),
                    "ttl": ttl if ttl is not None else "?",
                    "visible_at": visible,
                },
            )
        )
    return findings


def _zone_negative_ttl(ev: DnsEvidence) -> int | None:
    ttls = [r.negative_ttl for r in ev.authoritative if r.negative_ttl is not None]
    if ttls:
        return max(ttls)
    from_serials = [
        min(s.soa_ttl, s.soa_minimum)
        for s in ev.serials
        if s.soa_ttl is not None and s.soa_minimum is not None
    ]
    return max(from_serials, default=None)


def _visible_at(ctx: _Context, seconds: int | None) -> str | None:
    if seconds is None:
        return None
    return (ctx.now + timedelta(seconds=seconds)).strftime("%H:%M:%S UTC")


def resolver_failures(ctx: _Context) -> list[Finding]:
    request, ev = ctx.request, ctx.evidence
    failing = [r for r in ev.resolvers if r.status == "servfail"]
    if not failing:
        return []
    unchecked = {(r.server, r.port): r for r in ev.resolvers_unchecked}
    bogus = [
        r for r in failing if unchecked.get((r.server, r.port)) and unchecked[(r.server, r.port)].answered
    ]
    plain = [r for r in failing if r not in bogus]
    findings = []
    if bogus:
        ede = next((r.error for r in bogus if r.error), None)
        findings.append(
            finding(
                "DNSSEC_BOGUS",
                Severity.ERROR,
                f"{_servers(bogus)} answer SERVFAIL for {request.target} but give an answer with DNSSEC "
                "checking disabled (CD): the signatures do not validate" + (f" ({ede})." if ede else "."),
                evidence={"resolvers": [r.label for r in bogus], "name": request.target, "ede": ede},
                fields={"resolvers": _servers(bogus)},
            )
        )
    if plain:
        findings.append(
            finding(
                "DNS_SERVFAIL",
                Severity.ERROR,
                f"{_servers(plain)} answer SERVFAIL for {request.target}.",
                evidence={"resolvers": [r.label for r in plain], "name": request.target},
                fields={"resolvers": _servers(plain)},
            )
        )
    return findings


def caa(ctx: _Context) -> list[Finding]:
    request, lookup = ctx.request, ctx.evidence.caa
    if lookup is None:
        return []
    profile = profile_for(request.ca)
    if profile is None or not profile.caa_domains:
        if lookup.records:
            # Without --ca, CAA is reported but not judged (contract).
            return [
                finding(
                    "CAA_PRESENT",
                    Severity.INFO,
                    f"CAA at {lookup.found_at} allows only: "
                    + ", ".join(
                        sorted({r.issuer or "no CA" for r in lookup.records if r.tag.startswith("issue")})
                    )
                    + " (give --ca to check your CA against it).",
                    evidence={"caa_name": lookup.found_at, "records": [str(r) for r in lookup.records]},
                )
            ]
        return []
    allowed, reason = authorises(lookup, profile.caa_domains, wildcard=request.wildcard)
    if allowed:
        return []
    tag = "issuewild" if request.wildcard else "issue"
    records = "; ".join(str(r) for r in lookup.records) or (lookup.error or "")
    return [
        finding(
            "CAA_FORBIDS",
            Severity.ERROR,
            f"CAA does not authorise {profile.name} for {request.display_domain}: {reason}.",
            evidence={
                "caa_name": lookup.found_at or lookup.error_at,
                "records": [str(r) for r in lookup.records],
                "ca": profile.name,
                "error": lookup.error,
            },
            fields={
                "records": records,
                "tag": tag,
                "issuer": profile.caa_domains[0],
            },
        )
    ]


Rule = Callable[[_Context], list[Finding]]

RULES: tuple[Rule, ...] = (
    resolver_unreachable,
    unresolvable,
    nameserver_health,
    record_presence,
    stale_values,
    resolver_caches,
    resolver_failures,
    caa,
)


# --- assembly -----------------------------------------------------------------------------------------


def diagnose_dns(request: CheckRequest, evidence: DnsEvidence, *, now: datetime | None = None) -> Diagnosis:
    """Judge ``evidence`` gathered for ``request``. Pure: same input, same diagnosis."""
    moment = now or datetime.now(UTC)
    answering = [
        r
        for r in evidence.authoritative
        if r.status in {"answer", "nxdomain", "nodata", "cname"} and r.authoritative
    ]
    with_value = [r for r in answering if _has_expected(r, request, evidence)]
    without_value = [r for r in answering if r not in with_value]
    ctx = _Context(request, evidence, answering, with_value, without_value, moment)
    findings: list[Finding] = []
    for rule in RULES:
        findings.extend(rule(ctx))
        if findings and findings[-1].code in {"RESOLVER_UNREACHABLE"}:
            break
    findings = sort_findings(findings)
    verdict = _verdict(findings)
    return Diagnosis(
        request=request,
        verdict=verdict,
        summary=_summary(request, verdict, findings),
        findings=findings,
        observations=observations(evidence),
        retry_after=_retry_after(findings, verdict),
        checked_at=moment,
    )


def _verdict(findings: list[Finding]) -> Verdict:
    if any(f.severity is Severity.ERROR for f in findings):
        return Verdict.FAIL
    if any(f.code in DELAY_CODES for f in findings):
        return Verdict.PENDING
    if any(f.code == "DNS_RECORD_FOUND" for f in findings):
        return Verdict.PASS
    return Verdict.FAIL


def _retry_after(findings: list[Finding], verdict: Verdict) -> int | None:
    if verdict is not Verdict.PENDING:
        return None
    waits = [
        int(f.evidence[key])
        for f in findings
        for key in ("remaining", "ttl")
        if f.code in {"DNS_CACHED_NEGATIVE", "DNS_CACHED_STALE"} and f.evidence.get(key) is not None
    ]
    return max(waits) if waits else None


def _summary(request: CheckRequest, verdict: Verdict, findings: list[Finding]) -> str:
    name = request.target
    if verdict is Verdict.PASS:
        warnings = [f for f in findings if f.severity is Severity.WARNING]
        extra = f" ({len(warnings)} warning{'s' if len(warnings) > 1 else ''})" if warnings else ""
        served = f"{request.record_type} record at {name} is served by every nameserver"
        return f"{served}: the CA will see it{extra}."
    top = findings[0] if findings else None
    if top is None:
        return f"No nameserver answered for {name}."
    if verdict is Verdict.PENDING:
        return f"Correct at the source, not visible everywhere yet: {top.message}"
    return top.message


def observations(evidence: DnsEvidence) -> list[Observation]:
    """The per-server table: every nameserver address, then every public resolver."""
    serials = {(s.server, s.port): s for s in evidence.serials}
    rows: list[Observation] = []
    for result in evidence.authoritative:
        soa = serials.get((result.server, result.port))
        rows.append(_observation("authoritative", result, soa.soa_serial if soa else None))
    for skipped in (a for a in evidence.nameserver_addresses if a.skipped):
        rows.append(
            Observation(
                kind="authoritative",
                server=skipped.name,
                address=skipped.address,
                port=None,
                status="skipped",
                error=f"not asked: {skipped.skipped}",
            )
        )
    for result in evidence.resolvers:
        rows.append(_observation("resolver", result, None))
    return rows


def _observation(kind: str, result: QueryResult, serial: int | None) -> Observation:
    status = {"referral": "notauth", "cname": "cname"}.get(result.status, result.status)
    if kind == "authoritative" and result.answered and not result.authoritative:
        status = "notauth"
    detail: dict[str, object] = {}
    if result.cname_chain:
        detail["cname_chain"] = result.cname_chain
    if result.tcp:
        detail["tcp"] = True
    if result.status in {"nxdomain", "nodata"} and result.negative_ttl is not None:
        detail["negative_ttl"] = result.negative_ttl
    return Observation(
        kind="authoritative" if kind == "authoritative" else "resolver",
        server=result.label or result.server,
        address=result.server,
        port=result.port,
        status=status,
        values=list(result.values),
        ttl=result.ttl if result.status == "answer" else result.negative_ttl,
        serial=serial,
        rtt_ms=round(result.rtt_ms, 1) if result.rtt_ms is not None else None,
        error=result.error,
        detail=detail,
    )
