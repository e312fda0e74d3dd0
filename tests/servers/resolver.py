"""A small caching recursive resolver ("public resolver") in front of the in-process authoritative servers.

It does not iterate from the root: a static mapping ``zone -> [(address, port), ...]`` picks the
authoritative servers by longest suffix match; referrals to child zones with loopback glue are followed.
It follows CNAMEs across zones (up to 8) and assembles the chain in its answer like a real resolver.

Caching follows RFC 2308: positive RRsets for their TTL, NXDOMAIN / NODATA for
``min(SOA TTL, SOA MINIMUM)``; answers carry the *remaining* TTL, and negative answers carry the SOA
with TTL = remaining negative TTL. Time comes from an injectable clock (:class:`FakeClock` in tests).

Modes: ``dnssec_bogus_names`` / ``dnssec_bogus_zones`` (SERVFAIL unless the query has CD=1, like a
validating resolver that finds a bad signature), ``servfail`` (everything SERVFAIL), plus every fault of
:class:`~._base.DnsServerBase` (delay, drop, ...). Upstream failures (all time out / REFUSED / SERVFAIL
/ garbage) give SERVFAIL.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.SOA
import dns.rrset

from ._base import DnsServerBase, Transport, is_loopback
from .zones import RecordValues, clone_rrset, make_rdataset, to_name, to_rdtype

__all__ = ["CachingResolver", "FakeClock", "Upstream"]

log = logging.getLogger(__name__)

#: An upstream server: ``"127.0.0.11"`` (uses the resolver's ``upstream_port``) or ``(address, port)``.
Upstream = str | tuple[str, int]

MAX_REFERRALS = 8
_EPS = 1e-6


class FakeClock:
    """A manually advanced clock for :class:`CachingResolver` (``clock=FakeClock()``)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        """Move time forward by *seconds*; returns the new time."""
        self.now += seconds
        return self.now


@dataclasses.dataclass
class _Entry:
    rrset: dns.rrset.RRset  # positive data, or the SOA of a negative entry
    stored: float
    ttl: int
    rcode: dns.rcode.Rcode = dns.rcode.NOERROR

    def remaining(self, now: float) -> int | None:
        """Remaining TTL in whole seconds, or None once expired."""
        elapsed = now - self.stored
        if elapsed + _EPS >= self.ttl:
            return None
        return self.ttl - int(elapsed + _EPS)

    def with_ttl(self, ttl: int) -> dns.rrset.RRset:
        return clone_rrset(self.rrset, ttl=ttl)


@dataclasses.dataclass
class _Step:
    """The outcome of resolving one name (possibly a partial CNAME chain)."""

    rcode: dns.rcode.Rcode = dns.rcode.NOERROR
    answer: list[dns.rrset.RRset] = dataclasses.field(default_factory=list)
    authority: list[dns.rrset.RRset] = dataclasses.field(default_factory=list)
    #: Set when the chain continues at another name that must be resolved separately.
    next: dns.name.Name | None = None


def _neg_ttl(soa: dns.rrset.RRset) -> int:
    rdata: dns.rdtypes.ANY.SOA.SOA = soa[0]
    return min(int(soa.ttl), int(rdata.minimum))


def _find(
    section: Iterable[dns.rrset.RRset], name: dns.name.Name, rdtype: dns.rdatatype.RdataType
) -> dns.rrset.RRset | None:
    for rrset in section:
        if rrset.name == name and rrset.rdtype == rdtype:
            return rrset
    return None


class CachingResolver(DnsServerBase):
    """Caching recursive resolver on one loopback address (UDP+TCP, same port).

    :param address: loopback address to listen on.
    :param port: listening port (0 = ephemeral).
    :param upstreams: ``{zone: [Upstream, ...]}``; the longest matching zone's servers are asked (RD=0,
        EDNS 1232, UDP with TCP fallback on TC), in order, until one answers.
    :param upstream_port: port for upstreams given as bare addresses.
    :param clock: seconds as float; default :func:`time.monotonic`; use :class:`FakeClock` in tests.
    :param upstream_timeout: per-upstream timeout in seconds.
    :param dnssec_bogus_names: names (exact) answered SERVFAIL unless the query has CD=1.
    :param dnssec_bogus_zones: like *dnssec_bogus_names*, for the names and everything below them.
    :param servfail: answer SERVFAIL to everything.
    :param max_cname: CNAMEs followed per query.
    """

    recursion_available = True

    def __init__(
        self,
        address: str = "127.0.0.1",
        port: int = 0,
        upstreams: Mapping[str, Sequence[Upstream]] | None = None,
        *,
        upstream_port: int = 53,
        clock: Callable[[], float] = time.monotonic,
        upstream_timeout: float = 1.0,
        dnssec_bogus_names: Iterable[str] = (),
        dnssec_bogus_zones: Iterable[str] = (),
        servfail: bool = False,
        max_cname: int = 8,
        name: str | None = None,
    ) -> None:
        super().__init__(address, port, name=name)
        self.upstream_port = upstream_port
        self.clock = clock
        self.upstream_timeout = upstream_timeout
        self.dnssec_bogus_names: set[dns.name.Name] = {to_name(n) for n in dnssec_bogus_names}
        self.dnssec_bogus_zones: set[dns.name.Name] = {to_name(n) for n in dnssec_bogus_zones}
        self.servfail = servfail
        self.max_cname = max_cname
        self.upstreams: dict[dns.name.Name, list[tuple[str, int]]] = {}
        for zone, servers in (upstreams or {}).items():
            self.set_upstreams(zone, servers)
        self._positive: dict[tuple[dns.name.Name, dns.rdatatype.RdataType], _Entry] = {}
        # key rdtype None = NXDOMAIN for the whole name
        self._negative: dict[tuple[dns.name.Name, dns.rdatatype.RdataType | None], _Entry] = {}
        #: Queries this resolver sent to upstream servers.
        self.upstream_queries = 0

    # ---------------------------------------------------------------- configuration

    def set_upstreams(self, zone: str | dns.name.Name, servers: Sequence[Upstream]) -> None:
        """Send queries for *zone* (and below, unless a longer zone is mapped) to *servers*."""
        endpoints = [(s, self.upstream_port) if isinstance(s, str) else (s[0], int(s[1])) for s in servers]
        for addr, _ in endpoints:
            if not is_loopback(addr):
                raise ValueError(f"upstream {addr!r} is not a loopback address")
        self.upstreams[to_name(zone)] = endpoints

    def mark_bogus(self, name: str | dns.name.Name, *, subtree: bool = False) -> None:
        """Make *name* (and with *subtree* everything below) fail DNSSEC validation (SERVFAIL unless CD)."""
        (self.dnssec_bogus_zones if subtree else self.dnssec_bogus_names).add(to_name(name))

    def is_bogus(self, name: dns.name.Name) -> bool:
        """True if answers involving *name* are treated as DNSSEC-bogus."""
        return name in self.dnssec_bogus_names or any(name.is_subdomain(z) for z in self.dnssec_bogus_zones)

    # ---------------------------------------------------------------- cache access for tests

    def flush(self, name: str | dns.name.Name | None = None) -> None:
        """Empty the cache, or drop every entry (positive and negative) for one *name*."""
        if name is None:
            self._positive.clear()
            self._negative.clear()
            return
        n = to_name(name)
        for pkey in [k for k in self._positive if k[0] == n]:
            del self._positive[pkey]
        for nkey in [k for k in self._negative if k[0] == n]:
            del self._negative[nkey]

    def cached(self, name: str | dns.name.Name, rdtype: str | int) -> dns.rrset.RRset | None:
        """The cached RRset with its remaining TTL, or None (missing or expired)."""
        entry = self._positive.get((to_name(name), to_rdtype(rdtype)))
        if entry is None:
            return None
        remaining = entry.remaining(self.clock())
        return None if remaining is None else entry.with_ttl(remaining)

    def cached_negative(
        self, name: str | dns.name.Name, rdtype: str | int | None = None
    ) -> tuple[dns.rcode.Rcode, int] | None:
        """``(NXDOMAIN, remaining)`` for a cached NXDOMAIN of *name* (``rdtype=None``), ``(NOERROR,
        remaining)`` for a cached NODATA of *name*/*rdtype*; None if not cached."""
        key = (to_name(name), None if rdtype is None else to_rdtype(rdtype))
        entry = self._negative.get(key)
        if entry is None:
            return None
        remaining = entry.remaining(self.clock())
        return None if remaining is None else (entry.rcode, remaining)

    def seed(self, name: str | dns.name.Name, rdtype: str | int, values: RecordValues, ttl: int) -> None:
        """Put an RRset in the cache as if it had just been received with *ttl*."""
        n = to_name(name)
        rrset = clone_rrset(make_rdataset(rdtype, values, ttl), n)
        self._positive[(n, rrset.rdtype)] = _Entry(rrset, self.clock(), ttl)

    def seed_negative(
        self,
        name: str | dns.name.Name,
        rdtype: str | int | None = None,
        *,
        ttl: int = 300,
        zone: str | dns.name.Name | None = None,
    ) -> None:
        """Cache NXDOMAIN for *name* (``rdtype=None``) or NODATA for *name*/*rdtype*, for *ttl* seconds.

        The SOA is made up for *zone* (default: the longest mapped upstream zone, else the parent)."""
        n = to_name(name)
        origin = to_name(zone) if zone is not None else (self._zone_of(n) or n.parent())
        o = origin.to_text()
        soa = dns.rrset.from_text(origin, ttl, "IN", "SOA", f"ns1.{o} hostmaster.{o} 1 3600 600 86400 {ttl}")
        rcode = dns.rcode.NXDOMAIN if rdtype is None else dns.rcode.NOERROR
        key = (n, None if rdtype is None else to_rdtype(rdtype))
        self._negative[key] = _Entry(soa, self.clock(), ttl, rcode)

    # ---------------------------------------------------------------- resolution

    async def build_response_async(
        self, query: dns.message.Message, transport: Transport
    ) -> dns.message.Message:
        """Answer from the cache or the upstreams; SERVFAIL on failure or DNSSEC-bogus data without CD."""
        q = query.question[0]
        if self.servfail or q.rdclass != dns.rdataclass.IN:
            return self.make_reply(query, dns.rcode.SERVFAIL if self.servfail else dns.rcode.REFUSED)
        qtype = dns.rdatatype.RdataType.make(q.rdtype)
        step = await self.resolve(q.name, qtype)
        if not query.flags & dns.flags.CD:
            chain = [q.name] + [r[0].target for r in step.answer if r.rdtype == dns.rdatatype.CNAME]
            if any(self.is_bogus(n) for n in chain):
                return self.make_reply(query, dns.rcode.SERVFAIL)
        response = self.make_reply(query, step.rcode)
        response.answer = step.answer
        response.authority = step.authority
        return response

    async def resolve(self, qname: dns.name.Name, qtype: dns.rdatatype.RdataType) -> _Step:
        """Resolve *qname*/*qtype* following CNAMEs; returns rcode, answer chain and authority."""
        result = _Step()
        name = qname
        seen = {qname}
        while True:
            step = self._from_cache(name, qtype)
            if step is None:
                step = await self._from_upstream(name, qtype)
            result.answer.extend(step.answer)
            result.rcode, result.authority = step.rcode, step.authority
            cnames = [r for r in result.answer if r.rdtype == dns.rdatatype.CNAME]
            if step.rcode == dns.rcode.SERVFAIL or len(cnames) > self.max_cname:
                return _Step(dns.rcode.SERVFAIL)
            if step.next is None:
                return result
            if step.next in seen:  # CNAME loop
                return _Step(dns.rcode.SERVFAIL)
            seen.add(step.next)
            name = step.next

    def _from_cache(self, name: dns.name.Name, qtype: dns.rdatatype.RdataType) -> _Step | None:
        now = self.clock()
        keys: list[dns.rdatatype.RdataType] = [qtype]
        if qtype != dns.rdatatype.CNAME:
            keys.append(dns.rdatatype.CNAME)
        for rdtype in keys:
            entry = self._positive.get((name, rdtype))
            remaining = entry.remaining(now) if entry is not None else None
            if entry is not None and remaining is not None:
                rrset = entry.with_ttl(remaining)
                nxt = rrset[0].target if rdtype != qtype else None
                return _Step(answer=[rrset], next=nxt)
        for key in ((name, None), (name, qtype)):
            entry = self._negative.get(key)
            remaining = entry.remaining(now) if entry is not None else None
            if entry is not None and remaining is not None:
                return _Step(rcode=entry.rcode, authority=[entry.with_ttl(remaining)])
        return None

    async def _from_upstream(self, name: dns.name.Name, qtype: dns.rdatatype.RdataType) -> _Step:
        response = await self._query_upstream(name, qtype)
        if response is None:
            return _Step(dns.rcode.SERVFAIL)
        now = self.clock()
        for rrset in response.answer:
            if rrset.rdtype != dns.rdatatype.RRSIG and rrset.ttl > 0:
                self._positive[(rrset.name, dns.rdatatype.RdataType.make(rrset.rdtype))] = _Entry(
                    clone_rrset(rrset), now, int(rrset.ttl)
                )
        step, end = self._interpret(response, name, qtype)
        if step.rcode in (dns.rcode.NXDOMAIN, dns.rcode.NOERROR) and step.authority:
            soa = step.authority[0]
            ttl = int(soa.ttl)
            if ttl > 0:
                key = (end, None if step.rcode == dns.rcode.NXDOMAIN else qtype)
                self._negative[key] = _Entry(clone_rrset(soa), now, ttl, step.rcode)
        return step

    def _interpret(
        self, response: dns.message.Message, name: dns.name.Name, qtype: dns.rdatatype.RdataType
    ) -> tuple[_Step, dns.name.Name]:
        """Turn an upstream answer for *name* into a step; also returns the name the chain ended at."""
        answer: list[dns.rrset.RRset] = []
        current = name
        seen = {name}
        for _ in range(self.max_cname + 1):
            rrset = _find(response.answer, current, qtype)
            if rrset is not None:
                return _Step(answer=[*answer, rrset]), current
            cname = _find(response.answer, current, dns.rdatatype.CNAME)
            if cname is None or qtype == dns.rdatatype.CNAME:
                break
            answer.append(cname)
            current = cname[0].target
            if current in seen:
                return _Step(dns.rcode.SERVFAIL), current
            seen.add(current)
        soa = next((r for r in response.authority if r.rdtype == dns.rdatatype.SOA), None)
        if response.rcode() == dns.rcode.NXDOMAIN or soa is not None:
            authority = []
            if soa is not None:
                authority.append(clone_rrset(soa, ttl=_neg_ttl(soa)))
            return _Step(response.rcode(), answer, authority), current
        if answer:
            return _Step(answer=answer, next=current), current
        return _Step(dns.rcode.SERVFAIL), current  # no data, no SOA, no progress: lame or broken

    def _zone_of(self, name: dns.name.Name) -> dns.name.Name | None:
        best: dns.name.Name | None = None
        for zone in self.upstreams:
            if name.is_subdomain(zone) and (best is None or len(zone) > len(best)):
                best = zone
        return best

    async def _ask(self, query: dns.message.Message, server: tuple[str, int]) -> dns.message.Message | None:
        self.upstream_queries += 1
        try:
            async with asyncio.timeout(self.upstream_timeout):
                response, _ = await dns.asyncquery.udp_with_fallback(
                    query, server[0], timeout=self.upstream_timeout, port=server[1]
                )
        except (TimeoutError, dns.exception.DNSException, OSError, EOFError, ValueError) as e:
            log.debug("%s: upstream %s failed: %r", self.name, server, e)
            return None
        if response.rcode() not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
            return None
        return response

    async def _query_upstream(
        self, name: dns.name.Name, qtype: dns.rdatatype.RdataType
    ) -> dns.message.Message | None:
        """Ask the mapped authoritative servers, following downward referrals with loopback glue."""
        cut = self._zone_of(name)
        if cut is None:
            log.warning("%s: no upstream configured for %s", self.name, name)
            return None
        servers = list(self.upstreams[cut])
        query = dns.message.make_query(name, qtype, use_edns=0, payload=1232)
        query.flags &= ~dns.flags.RD
        for _ in range(MAX_REFERRALS):
            referral: tuple[dns.name.Name, list[tuple[str, int]]] | None = None
            for server in servers:
                response = await self._ask(query, server)
                if response is None:
                    continue
                ns = next((r for r in response.authority if r.rdtype == dns.rdatatype.NS), None)
                is_referral = (
                    not response.answer
                    and response.rcode() == dns.rcode.NOERROR
                    and not response.flags & dns.flags.AA
                    and ns is not None
                )
                if not is_referral:
                    return response
                assert ns is not None
                if ns.name == cut or not ns.name.is_subdomain(cut) or not name.is_subdomain(ns.name):
                    continue  # upward or sideways referral: a lame server
                targets = {rdata.target for rdata in ns}
                glue = [
                    (rdata.address, server[1])
                    for rrset in response.additional
                    if rrset.name in targets and rrset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA)
                    for rdata in rrset
                    if is_loopback(rdata.address)
                ]
                if glue:
                    referral = (ns.name, glue)
                    break
            if referral is None:
                return None
            cut, servers = referral
        return None
