"""The DNS checker: gathers what every authoritative nameserver and public resolver says.

Steps (shared/design/architecture.md, "The DNS check"):

1. Through the configured recursive resolvers, find the zone that holds the validation name, its
   nameservers, and every address (A and AAAA) of every nameserver.
2. Concurrently ask each nameserver address directly (no recursion) for the record and the zone's SOA
   serial, ask each public resolver for the record as the world sees it, look up CAA, and probe the
   names where people put the record by mistake.
3. Follow a CNAME at the validation name to its end.

Nothing here judges: :mod:`bot.diagnosis.dns` turns the :class:`DnsEvidence` into findings. All
queries share one deadline (``settings.timeout``) and one bound on queries in flight.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import asdict, dataclass, field
from typing import Any

from bot.checks.caa import CaaLookup, lookup_caa
from bot.checks.dnscache import ResolverCache
from bot.checks.dnsquery import Deadline, DnsClient, QueryResult, Recursor
from bot.config import Settings
from bot.model import CheckRequest
from bot.netpolicy import AddressPolicy
from bot.values import same_value

COMMON_PREFIXES = ("_dnsauth", "_acme-challenge", "_pki-validation", "_globalsign-domain-verification", "www")
"""Owner names CAs and their documentation use; a value found there was meant for the validation name."""

MAX_CNAME_HOPS = 8


@dataclass(slots=True)
class NameserverAddress:
    name: str
    address: str
    skipped: str | None = None
    """Why the address was not asked (the address policy refused it)."""


@dataclass(slots=True)
class Probe:
    """A lookup at a name where the record is often published by mistake."""

    kind: str
    """``doubled`` (zone appended twice), ``apex``, ``prefix``, ``zone-apex``, ``other-type``."""
    result: QueryResult


@dataclass(slots=True)
class DnsEvidence:
    """Everything the DNS checker saw, in a form the diagnosis rules can judge without a network."""

    resolver_failure: str | None = None
    """Set when dcv-bot's own resolvers did not answer at all: the check could not run."""
    zone: str | None = None
    zone_lookup: QueryResult | None = None
    zone_failure: str | None = None
    delegation_from_parent: bool = False
    """The resolvers could not reach the zone; its nameservers come from the parent's referral."""
    nameservers: list[str] = field(default_factory=list)
    nameserver_addresses: list[NameserverAddress] = field(default_factory=list)
    unresolved_nameservers: list[str] = field(default_factory=list)
    authoritative: list[QueryResult] = field(default_factory=list)
    serials: list[QueryResult] = field(default_factory=list)
    resolvers: list[QueryResult] = field(default_factory=list)
    resolvers_unchecked: list[QueryResult] = field(default_factory=list)
    """Re-asks, with checking disabled (CD), of resolvers that answered SERVFAIL."""
    cname_target: QueryResult | None = None
    """The record at the end of a CNAME chain that leaves the zone, as a recursive resolver sees it."""
    probes: list[Probe] = field(default_factory=list)
    wildcard_control: QueryResult | None = None
    caa: CaaLookup | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DnsEvidence:
        def result(item: dict[str, Any] | None) -> QueryResult | None:
            return QueryResult.from_dict(item) if item else None

        return cls(
            resolver_failure=data.get("resolver_failure"),
            zone=data.get("zone"),
            zone_lookup=result(data.get("zone_lookup")),
            zone_failure=data.get("zone_failure"),
            delegation_from_parent=bool(data.get("delegation_from_parent", False)),
            nameservers=list(data.get("nameservers", [])),
            nameserver_addresses=[NameserverAddress(**n) for n in data.get("nameserver_addresses", [])],
            unresolved_nameservers=list(data.get("unresolved_nameservers", [])),
            authoritative=[QueryResult.from_dict(r) for r in data.get("authoritative", [])],
            serials=[QueryResult.from_dict(r) for r in data.get("serials", [])],
            resolvers=[QueryResult.from_dict(r) for r in data.get("resolvers", [])],
            resolvers_unchecked=[QueryResult.from_dict(r) for r in data.get("resolvers_unchecked", [])],
            cname_target=result(data.get("cname_target")),
            probes=[Probe(p["kind"], QueryResult.from_dict(p["result"])) for p in data.get("probes", [])],
            wildcard_control=result(data.get("wildcard_control")),
            caa=CaaLookup.from_dict(data["caa"]) if data.get("caa") else None,
        )


async def gather_dns_evidence(
    request: CheckRequest, settings: Settings, *, cache: ResolverCache | None = None
) -> DnsEvidence:
    """Ask the real DNS about ``request``; never raises for network trouble.

    ``cache`` keeps discovery answers (zone, NS, nameserver addresses, CAA) from the configured
    resolvers between checks, within their TTLs.
    """
    deadline = Deadline(settings.timeout)
    client = DnsClient(
        deadline, query_timeout=settings.dns_query_timeout, max_in_flight=settings.max_concurrent_queries
    )
    recursor = Recursor(client, settings.resolvers, cache)
    policy = AddressPolicy.from_settings(settings)
    evidence = DnsEvidence()

    public_task = asyncio.create_task(_ask_public_resolvers(client, settings, request))
    caa_task = asyncio.create_task(lookup_caa(recursor.ask, request.domain, wildcard=request.wildcard))
    try:
        await _discover(recursor, request, evidence, policy, settings.dns_port)
        if evidence.zone and evidence.nameserver_addresses:
            await _ask_nameservers(client, settings, request, evidence)
        if evidence.resolver_failure is None:
            await _follow_cname(recursor, request, evidence)
        evidence.resolvers, evidence.resolvers_unchecked = await public_task
        evidence.caa = await caa_task
    finally:
        for task in (public_task, caa_task):
            task.cancel()
    return evidence


async def _discover(
    recursor: Recursor, request: CheckRequest, evidence: DnsEvidence, policy: AddressPolicy, dns_port: int
) -> None:
    """Find the zone of the validation name, its nameservers and their addresses."""
    if not recursor.resolvers:
        evidence.resolver_failure = (
            "no resolvers are configured (DCV_RESOLVERS is empty and resolv.conf has none)"
        )
        return
    name = request.target
    lookup: QueryResult | None = None
    first_failure: QueryResult | None = None
    for _ in range(MAX_CNAME_HOPS + 1):
        lookup = await recursor.ask(name, "SOA")
        if lookup.status == "servfail":
            # A validating resolver says SERVFAIL for bogus DNSSEC; with checking disabled the zone is
            # still found, and the DNSSEC problem is reported from the public resolvers' answers.
            unchecked = await recursor.ask(name, "SOA", checking_disabled=True)
            if unchecked.answered:
                lookup = unchecked
        climbable = name != request.domain and name.endswith("." + request.domain)
        if lookup.cname_chain or (lookup.status in {"servfail", "timeout"} and climbable):
            # The validation name is an alias (its own zone is the one holding the CNAME, and any SOA
            # in this answer belongs to the target's zone), or the lookup failed somewhere along a
            # chain: look from the parent, which is in the same zone or the one above it.
            first_failure = first_failure or (lookup if not lookup.cname_chain else None)
            name = _parent(name)
            continue
        if lookup.status == "answer" and lookup.rrsets.get(f"{name} SOA"):
            evidence.zone = name
            break
        if lookup.status in {"nxdomain", "nodata"} and lookup.soa_owner:
            evidence.zone = lookup.soa_owner
            break
        break
    if evidence.zone is None and first_failure is not None:
        lookup = first_failure
    evidence.zone_lookup = lookup
    delegation: QueryResult | None = None
    if evidence.zone is None and lookup is not None and lookup.status in {"servfail", "timeout"}:
        # The resolvers cannot reach the zone's servers (all lame, dead or bogus): ask the parent
        # zone's servers directly who they delegate to, so those servers can be examined one by one.
        delegation = await _delegation_from_parent(recursor, request, dns_port, policy)
        if delegation is not None and delegation.referral_zone:
            evidence.zone = delegation.referral_zone
            evidence.delegation_from_parent = True
    if evidence.zone is None:
        await _explain_missing_zone(recursor, evidence, lookup)
        return
    if delegation is not None and delegation.referral_ns:
        evidence.nameservers = delegation.referral_ns
    else:
        ns_lookup = await recursor.ask(evidence.zone, "NS")
        evidence.nameservers = sorted(set(ns_lookup.values)) if ns_lookup.status == "answer" else []
    if not evidence.nameservers:
        evidence.zone_failure = (
            f"the resolvers found the zone {evidence.zone} but no NS records for it ({ns_lookup.status}"
            + (f": {ns_lookup.error}" if ns_lookup.error else "")
            + ")"
        )
        return
    glue = delegation.glue if delegation is not None else {}
    lookups = await asyncio.gather(
        *(recursor.ask(ns, rtype) for ns in evidence.nameservers if ns not in glue for rtype in ("A", "AAAA"))
    )
    for ns in evidence.nameservers:
        addresses = glue.get(ns) or [
            a for r in lookups if r.qname == ns and r.status == "answer" for a in r.values
        ]
        if not addresses:
            evidence.unresolved_nameservers.append(ns)
        for address in addresses:
            evidence.nameserver_addresses.append(NameserverAddress(ns, address, policy.reason(address)))


async def _delegation_from_parent(
    recursor: Recursor, request: CheckRequest, port: int, policy: AddressPolicy
) -> QueryResult | None:
    """The referral the parent zone's nameservers give for the validation name, asked directly."""
    parent = _parent(request.domain)
    lookup = await recursor.ask(parent, "SOA")
    parent_zone = parent if lookup.rrsets.get(f"{parent} SOA") else lookup.soa_owner
    if parent_zone is None:
        return None
    ns_lookup = await recursor.ask(parent_zone, "NS")
    for ns in ns_lookup.values[:3]:
        addresses = await recursor.ask(ns, "A")
        for address in addresses.values[:1]:
            if policy.reason(address) is not None:
                continue
            referral = await recursor.client.query(
                address, port, request.target, "SOA", recursion=False, attempts=1, label=ns
            )
            if referral.status == "referral" and referral.referral_zone:
                cut = referral.referral_zone
                if request.target == cut or request.target.endswith("." + cut):
                    return referral
            if referral.answered:
                return None  # the parent answers itself: no delegation below it
    return None


async def _explain_missing_zone(
    recursor: Recursor, evidence: DnsEvidence, lookup: QueryResult | None
) -> None:
    if lookup is None or lookup.status in {"timeout", "error", "refused"}:
        # Tell "our resolvers are down" from "the domain's servers are down": a healthy resolver
        # answers for the root zone at once.
        root = await recursor.ask(".", "NS")
        if root.status in {"timeout", "error"}:
            detail = root.error or root.status
            evidence.resolver_failure = f"the configured resolvers did not answer ({detail})"
            return
    status = lookup.status if lookup else "no answer"
    error = f": {lookup.error}" if lookup and lookup.error else ""
    evidence.zone_failure = f"the resolvers could not find the zone ({status}{error})"


def _parent(name: str) -> str:
    _, _, parent = name.partition(".")
    return parent or "."


async def _ask_nameservers(
    client: DnsClient, settings: Settings, request: CheckRequest, evidence: DnsEvidence
) -> None:
    zone = evidence.zone
    assert zone is not None
    targets = [ns for ns in evidence.nameserver_addresses if ns.skipped is None]
    record_queries = [
        client.query(
            ns.address, settings.dns_port, request.target, request.record_type, recursion=False, label=ns.name
        )
        for ns in targets
    ]
    serial_queries = [
        client.query(ns.address, settings.dns_port, zone, "SOA", recursion=False, label=ns.name)
        for ns in targets
    ]
    results = await asyncio.gather(*record_queries, *serial_queries)
    evidence.authoritative = list(results[: len(targets)])
    evidence.serials = list(results[len(targets) :])
    if not any(_holds_expected(r, request) for r in evidence.authoritative):
        # Only when no server has the value is it worth asking where else it might be: a passing check
        # (and every watch re-check) stays at two queries per nameserver address.
        evidence.probes, evidence.wildcard_control = await _probe_wrong_names(
            client, settings, request, evidence, targets
        )


def _holds_expected(result: QueryResult, request: CheckRequest) -> bool:
    return any(same_value(v, request.expected, request.record_type) for v in result.values)


def probe_names(request: CheckRequest, zone: str) -> list[tuple[str, str, str]]:
    """``(kind, name, rtype)`` of every place worth looking when the value is not at the target."""
    domain, target, rtype = request.domain, request.target, request.record_type
    candidates: list[tuple[str, str, str]] = []
    for doubled in (f"{target}.{zone}", f"{target}.{domain}"):
        candidates.append(("doubled", doubled, rtype))
    candidates.append(("apex", domain, rtype))
    if zone != domain and domain.endswith("." + zone):
        candidates.append(("zone-apex", zone, rtype))
        if request.host_label and request.host_label != "@":
            candidates.append(("zone-apex", f"{request.host_label}.{zone}", rtype))
    for prefix in COMMON_PREFIXES:
        candidates.append(("prefix", f"{prefix}.{domain}", rtype))
    other = "TXT" if rtype == "CNAME" else "CNAME"
    candidates.append(("other-type", target, other))
    seen: set[tuple[str, str]] = set()
    unique = []
    for kind, name, qtype in candidates:
        if len(name) > 253 or (name == target and qtype == rtype) or (name, qtype) in seen:
            continue
        seen.add((name, qtype))
        unique.append((kind, name, qtype))
    return unique


async def _probe_wrong_names(
    client: DnsClient,
    settings: Settings,
    request: CheckRequest,
    evidence: DnsEvidence,
    targets: list[NameserverAddress],
) -> tuple[list[Probe], QueryResult | None]:
    """Ask one nameserver about the usual wrong places, plus a random name to spot zone wildcards."""
    zone = evidence.zone
    if not targets or zone is None:
        return [], None
    server = targets[0]

    async def ask(name: str, rtype: str) -> QueryResult:
        return await client.query(
            server.address, settings.dns_port, name, rtype, recursion=False, attempts=1, label=server.name
        )

    candidates = [c for c in probe_names(request, zone) if c[1] == zone or c[1].endswith("." + zone)]
    control_name = f"_dcv-control-{secrets.token_hex(4)}.{request.domain}"
    results = await asyncio.gather(
        *(ask(name, rtype) for _, name, rtype in candidates), ask(control_name, request.record_type)
    )
    probes = [Probe(kind, result) for (kind, _, _), result in zip(candidates, results[:-1], strict=True)]
    return probes, results[-1]


async def _follow_cname(recursor: Recursor, request: CheckRequest, evidence: DnsEvidence) -> None:
    """When the validation name is a CNAME leaving the zone, resolve its end as a CA would."""
    chains = [r.cname_chain for r in evidence.authoritative if r.status == "cname" and r.cname_chain]
    if not chains:
        return
    # Servers that also hold the target's zone follow the chain further than the others.
    chain = max(chains, key=len)
    if len(set(chain)) < len(chain) or request.target in chain:
        return  # a loop inside the zone: nothing further to ask
    evidence.cname_target = await recursor.ask(chain[-1], request.record_type)


async def _ask_public_resolvers(
    client: DnsClient, settings: Settings, request: CheckRequest
) -> tuple[list[QueryResult], list[QueryResult]]:
    answers = await asyncio.gather(
        *(
            client.query(r.address, r.port, request.target, request.record_type, recursion=True, label=r.name)
            for r in settings.public_resolvers
        )
    )
    failed = [
        (r, a) for r, a in zip(settings.public_resolvers, answers, strict=True) if a.status == "servfail"
    ]
    unchecked = await asyncio.gather(
        *(
            client.query(
                r.address,
                r.port,
                request.target,
                request.record_type,
                recursion=True,
                checking_disabled=True,
                attempts=1,
                label=r.name,
            )
            for r, _ in failed
        )
    )
    return list(answers), list(unchecked)
