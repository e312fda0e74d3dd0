"""An in-process authoritative DNS server speaking the real wire protocol (UDP and TCP), for tests.

One :class:`AuthServer` is one nameserver *address*. A test typically starts several on distinct loopback
addresses sharing one port (see ``fixtures.DnsLab``), serving the same zones — a primary and
secondaries — and then edits one server's copy of a zone to model a lagging secondary.

Behaviour follows what real authoritative servers do:

* the closest enclosing zone held answers; a name outside every zone gets REFUSED;
* AA on authoritative answers; NXDOMAIN / NODATA carry the zone's SOA (TTL as in the zone) in the
  authority section; empty non-terminals are NODATA;
* a CNAME at the qname is returned and chased inside the same zone (with loop protection);
* NS records below the apex are a zone cut: queries at or below it get a referral (no AA, NS in
  authority, in-zone glue in additional), except DS at the cut, which the parent answers;
* wildcards (``*.zone``) synthesize answers for names that do not exist (RFC 4592 basics);
* EDNS is echoed (payload 1232, DO copied); UDP answers that do not fit 512 bytes (no EDNS) or the
  client's payload are replaced by an empty TC=1 reply; TCP gets everything;
* with DO=1, RRSIGs covering returned RRsets are included if the zone has them.

Faults and query counters come from :class:`~._base.DnsServerBase`.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable, Mapping

import dns.flags
import dns.message
import dns.name
import dns.node
import dns.rcode
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.rrset
import dns.zone

from ._base import DnsServerBase, Fault, FaultKind, QueryInfo, QueryRecord, Transport, is_loopback
from .zones import (
    RecordValues,
    bump_serial,
    clone_rrset,
    copy_zone,
    get_serial,
    make_rdataset,
    parse_zone,
    to_name,
    to_rdtype,
    zone_text,
)

__all__ = [
    "AuthServer",
    "Fault",
    "FaultKind",
    "QueryInfo",
    "QueryRecord",
    "Transport",
    "ZoneSpec",
    "is_loopback",
    "zone_text",
]

#: A zone given to a server: zone-file text (origin passed separately) or a parsed zone (copied).
ZoneSpec = str | dns.zone.Zone

#: How many CNAMEs an authoritative answer chases inside one zone before giving up.
MAX_CNAME_CHASE = 16

_ADDRESS_TYPES = (dns.rdatatype.A, dns.rdatatype.AAAA)


class _Kind(enum.Enum):
    ANSWER = "answer"
    CNAME = "cname"
    NODATA = "nodata"
    NXDOMAIN = "nxdomain"
    DELEGATION = "delegation"


@dataclasses.dataclass
class _Lookup:
    kind: _Kind
    rrsets: list[dns.rrset.RRset] = dataclasses.field(default_factory=list)
    #: For CNAME: the target; for DELEGATION: the zone cut.
    name: dns.name.Name | None = None


def _rrset(name: dns.name.Name, rds: dns.rdataset.Rdataset) -> dns.rrset.RRset:
    return clone_rrset(rds, name)


class AuthServer(DnsServerBase):
    """Authoritative DNS server on one loopback address.

    :param address: loopback address to listen on (127.0.0.0/8 or ::1).
    :param port: port for UDP and TCP; 0 = ephemeral (shared by both).
    :param zones: ``{origin: zone-file text or dns.zone.Zone}``; each server keeps its own copy.
    :param name: label for logs/repr.
    """

    def __init__(
        self,
        address: str = "127.0.0.1",
        port: int = 0,
        zones: Mapping[str, ZoneSpec] | None = None,
        *,
        name: str | None = None,
    ) -> None:
        super().__init__(address, port, name=name)
        self._zones: dict[dns.name.Name, dns.zone.Zone] = {}
        for origin, spec in (zones or {}).items():
            self.set_zone(origin, spec)

    # ---------------------------------------------------------------- zone management

    @property
    def zones(self) -> dict[dns.name.Name, dns.zone.Zone]:
        """The zones served, by origin (live objects: editing them changes the answers)."""
        return self._zones

    def set_zone(self, origin: str | dns.name.Name, spec: ZoneSpec) -> dns.zone.Zone:
        """Serve (or replace) the zone *origin* from zone-file text or a zone object (deep-copied)."""
        zone = parse_zone(origin, spec) if isinstance(spec, str) else copy_zone(spec)
        if zone.origin != to_name(origin):
            raise ValueError(f"zone origin {zone.origin} does not match {origin}")
        self._zones[zone.origin] = zone
        return zone

    def remove_zone(self, origin: str | dns.name.Name) -> None:
        """Stop serving *origin* (queries for it become REFUSED or go to an enclosing zone)."""
        self._zones.pop(to_name(origin), None)

    def zone(self, origin: str | dns.name.Name) -> dns.zone.Zone:
        """The zone object for *origin* (KeyError if not served)."""
        return self._zones[to_name(origin)]

    def find_zone(self, name: str | dns.name.Name, *, parent_side: bool = False) -> dns.zone.Zone | None:
        """The closest enclosing zone for *name*. With *parent_side*, a zone whose apex is *name* itself
        is skipped if an enclosing one is held (DS lives in the parent)."""
        n = to_name(name)
        best: dns.zone.Zone | None = None
        for origin, zone in self._zones.items():
            if not n.is_subdomain(origin):
                continue
            if parent_side and origin == n and n != dns.name.root:
                continue
            if best is None or len(origin) > len(best.origin or dns.name.root):
                best = zone
        if best is None and parent_side:
            return self.find_zone(n)
        return best

    def _zone_for_edit(self, name: dns.name.Name, origin: str | dns.name.Name | None) -> dns.zone.Zone:
        zone = self.zone(origin) if origin is not None else self.find_zone(name)
        if zone is None:
            raise KeyError(f"{self.name} serves no zone for {name}")
        return zone

    def update_record(
        self,
        name: str | dns.name.Name,
        rdtype: str | int,
        values: RecordValues,
        ttl: int | None = None,
        *,
        origin: str | dns.name.Name | None = None,
        bump: bool = True,
    ) -> None:
        """Replace the RRset ``name/rdtype`` with *values* (creating it if needed).

        *ttl* defaults to the existing RRset's TTL, else 300.
        *bump* increments the zone's SOA serial (as a real primary would).
        """
        n = to_name(name)
        zone = self._zone_for_edit(n, origin)
        rdt = to_rdtype(rdtype)
        if ttl is None:
            existing = zone.get_rdataset(n, rdt)
            ttl = existing.ttl if existing is not None else 300
        zone.replace_rdataset(n, make_rdataset(rdt, values, ttl, origin=zone.origin))
        if bump and rdt != dns.rdatatype.SOA:
            bump_serial(zone)

    def add_record(
        self,
        name: str | dns.name.Name,
        rdtype: str | int,
        values: RecordValues,
        ttl: int | None = None,
        *,
        origin: str | dns.name.Name | None = None,
        bump: bool = True,
    ) -> None:
        """Add *values* to the RRset ``name/rdtype`` (keeping existing records)."""
        n = to_name(name)
        zone = self._zone_for_edit(n, origin)
        rdt = to_rdtype(rdtype)
        existing = zone.get_rdataset(n, rdt)
        new_ttl = ttl if ttl is not None else (existing.ttl if existing is not None else 300)
        merged = make_rdataset(rdt, values, new_ttl, origin=zone.origin)
        for rdata in existing or ():
            merged.add(rdata, new_ttl)
        zone.replace_rdataset(n, merged)
        if bump:
            bump_serial(zone)

    def remove_record(
        self,
        name: str | dns.name.Name,
        rdtype: str | int | None = None,
        value: str | tuple[str, ...] | None = None,
        *,
        origin: str | dns.name.Name | None = None,
        bump: bool = True,
    ) -> None:
        """Remove the whole node *name* (``rdtype=None``), its RRset *rdtype*, or one record *value*."""
        n = to_name(name)
        zone = self._zone_for_edit(n, origin)
        if rdtype is None:
            if n in zone.nodes:
                zone.delete_node(n)
        else:
            rdt = to_rdtype(rdtype)
            if value is None:
                zone.delete_rdataset(n, rdt)
            else:
                rds = zone.get_rdataset(n, rdt)
                if rds is not None:
                    gone = set(make_rdataset(rdt, value, rds.ttl, origin=zone.origin))
                    kept = [rdata for rdata in rds if rdata not in gone]
                    if kept:
                        zone.replace_rdataset(n, dns.rdataset.from_rdata_list(rds.ttl, kept))
                    else:
                        zone.delete_rdataset(n, rdt)
        if n in zone.nodes and len(zone.nodes[n]) == 0:
            del zone.nodes[n]
        if bump:
            bump_serial(zone)

    def bump_serial(self, origin: str | dns.name.Name, by: int = 1, *, to: int | None = None) -> int:
        """Increase (or set) the SOA serial of *origin*; returns the new serial."""
        return bump_serial(self.zone(origin), by, to=to)

    def serial(self, origin: str | dns.name.Name) -> int:
        """The SOA serial of *origin* on this server."""
        return get_serial(self.zone(origin))

    # ---------------------------------------------------------------- answering

    def build_response(self, query: dns.message.Message, transport: Transport) -> dns.message.Message:
        """The authoritative answer to *query* (see the module docstring for the semantics)."""
        q = query.question[0]
        qname, qtype = q.name, dns.rdatatype.RdataType.make(q.rdtype)
        if q.rdclass != dns.rdataclass.IN or qtype in (dns.rdatatype.AXFR, dns.rdatatype.IXFR):
            return self.make_reply(query, dns.rcode.REFUSED)
        if dns.rdatatype.is_metatype(qtype) and qtype != dns.rdatatype.ANY:
            return self.make_reply(query, dns.rcode.NOTIMP)
        zone = self.find_zone(qname, parent_side=qtype == dns.rdatatype.DS)
        if zone is None:
            return self.make_reply(query, dns.rcode.REFUSED)
        response = self.make_reply(query)
        dnssec = bool(query.ednsflags & dns.flags.DO)
        name = qname
        seen: set[dns.name.Name] = set()
        aa = True
        for _ in range(MAX_CNAME_CHASE + 1):
            seen.add(name)
            result = self._lookup(zone, name, qtype)
            if result.kind is _Kind.DELEGATION:
                if name == qname:  # a referral only if it is the very first step
                    aa = False
                    self._add_referral(response, zone, result)
                break
            for rrset in result.rrsets:
                self._add(response.answer, zone, rrset, dnssec)
            if result.kind is _Kind.ANSWER:
                if qtype == dns.rdatatype.NS or qtype == dns.rdatatype.MX:
                    self._add_glue(response, zone, result.rrsets)
                break
            if result.kind in (_Kind.NODATA, _Kind.NXDOMAIN):
                if result.kind is _Kind.NXDOMAIN:
                    response.set_rcode(dns.rcode.NXDOMAIN)
                self._add_soa(response, zone, dnssec)
                break
            # CNAME: chase inside this zone only, and never around a loop.
            assert result.name is not None
            target = result.name
            if target in seen or not target.is_subdomain(zone.origin or dns.name.root):
                break
            name = target
        if aa:
            response.flags |= dns.flags.AA
        return response

    def _add(
        self, section: list[dns.rrset.RRset], zone: dns.zone.Zone, rrset: dns.rrset.RRset, dnssec: bool
    ) -> None:
        section.append(rrset)
        if dnssec and rrset.rdtype != dns.rdatatype.RRSIG:
            # (Wildcard-synthesized owners have no node, hence no RRSIG: good enough for tests.)
            node = zone.get_node(rrset.name)
            if node is not None:
                sig = node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.RRSIG, rrset.rdtype)
                if sig is not None:
                    section.append(_rrset(rrset.name, sig))

    def _add_soa(self, response: dns.message.Message, zone: dns.zone.Zone, dnssec: bool) -> None:
        assert zone.origin is not None
        soa = zone.get_rdataset(zone.origin, dns.rdatatype.SOA)
        if soa is not None:
            self._add(response.authority, zone, _rrset(zone.origin, soa), dnssec)

    def _add_referral(self, response: dns.message.Message, zone: dns.zone.Zone, result: _Lookup) -> None:
        response.authority.extend(result.rrsets)
        self._add_glue(response, zone, result.rrsets)

    def _add_glue(
        self, response: dns.message.Message, zone: dns.zone.Zone, rrsets: Iterable[dns.rrset.RRset]
    ) -> None:
        """A/AAAA for in-zone NS (or MX) targets, in the additional section."""
        origin = zone.origin or dns.name.root
        added: set[dns.name.Name] = set()
        for rrset in rrsets:
            if rrset.rdtype not in (dns.rdatatype.NS, dns.rdatatype.MX):
                continue
            for rdata in rrset:
                target: dns.name.Name = rdata.target if rrset.rdtype == dns.rdatatype.NS else rdata.exchange
                if target in added or not target.is_subdomain(origin):
                    continue
                added.add(target)
                for rdt in _ADDRESS_TYPES:
                    rds = zone.get_rdataset(target, rdt)
                    if rds is not None:
                        response.additional.append(_rrset(target, rds))

    @staticmethod
    def _exists(zone: dns.zone.Zone, name: dns.name.Name) -> bool:
        """True if *name* owns records or is an empty non-terminal (some deeper name exists)."""
        node = zone.nodes.get(name)
        if node is not None and len(node) > 0:
            return True
        return any(other != name and other.is_subdomain(name) for other in zone.nodes)

    def _lookup(self, zone: dns.zone.Zone, name: dns.name.Name, qtype: dns.rdatatype.RdataType) -> _Lookup:
        """Look *name*/*qtype* up in *zone* alone (one step, no CNAME chasing)."""
        origin = zone.origin
        assert origin is not None
        # Zone cuts between the apex and the name (the cut at the name itself answers DS).
        relative = name.relativize(origin)
        for depth in range(1, len(relative.labels) + 1):
            cut = dns.name.Name(name.labels[-(len(origin.labels) + depth) :])
            ns = zone.get_rdataset(cut, dns.rdatatype.NS)
            if ns is None or (cut == name and qtype == dns.rdatatype.DS):
                continue
            return _Lookup(_Kind.DELEGATION, [_rrset(cut, ns)], cut)
        node = zone.nodes.get(name)
        owner = name
        if node is None or len(node) == 0:
            if self._exists(zone, name):
                return _Lookup(_Kind.NODATA)
            node = self._wildcard(zone, name)
            if node is None:
                return _Lookup(_Kind.NXDOMAIN)
        return self._from_node(node, owner, qtype)

    def _wildcard(self, zone: dns.zone.Zone, name: dns.name.Name) -> dns.node.Node | None:
        """The wildcard node that synthesizes *name* (RFC 4592: ``*.`` + closest encloser), if any."""
        origin = zone.origin
        assert origin is not None
        encloser = name.parent()
        while True:
            if encloser == origin or self._exists(zone, encloser):
                break
            encloser = encloser.parent()
        source = dns.name.Name((b"*", *encloser.labels))
        node = zone.nodes.get(source)
        return node if node is not None and len(node) > 0 else None

    @staticmethod
    def _from_node(node: dns.node.Node, owner: dns.name.Name, qtype: dns.rdatatype.RdataType) -> _Lookup:
        if qtype == dns.rdatatype.ANY:
            return _Lookup(_Kind.ANSWER, [_rrset(owner, rds) for rds in node.rdatasets])
        rds = node.get_rdataset(dns.rdataclass.IN, qtype)
        if rds is not None and len(rds) > 0:
            return _Lookup(_Kind.ANSWER, [_rrset(owner, rds)])
        cname = node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.CNAME)
        if cname is not None and len(cname) > 0:
            return _Lookup(_Kind.CNAME, [_rrset(owner, cname)], cname[0].target)
        return _Lookup(_Kind.NODATA)


def make_servers(
    addresses: Iterable[str], port: int = 0, zones: Mapping[str, ZoneSpec] | None = None
) -> list[AuthServer]:
    """One (not yet started) :class:`AuthServer` per address, each with its own copy of *zones*."""
    return [AuthServer(address, port, zones) for address in addresses]
