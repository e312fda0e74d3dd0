"""Helpers to build and edit zones for the in-process DNS test servers.

Zones are plain :class:`dns.zone.Zone` objects with *absolute* names (parsed with ``relativize=False``).
Tests usually write them as zone-file text, or build the text from a small dict with :func:`zone_text`::

    text = zone_text(
        "example.test.",
        {
            "@": {"A": "192.0.2.1", "CAA": '0 issue "letsencrypt.org"'},
            "www": {"CNAME": "example.test."},
            "_acme-challenge": {"TXT": ["token-1", ("multi", "string")]},
            "sub": {"NS": "ns1.sub.example.test."},
            "ns1.sub": {"A": "127.0.0.53"},
        },
        serial=2024010101,
        minimum=60,
    )
"""

from __future__ import annotations

import copy
import ipaddress
from collections.abc import Mapping, Sequence

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.rdtypes.ANY.SOA
import dns.rrset
import dns.zone

__all__ = [
    "RecordValue",
    "RecordValues",
    "bump_serial",
    "clone_rrset",
    "copy_zone",
    "get_serial",
    "make_rdataset",
    "nameservers_for",
    "parse_zone",
    "to_name",
    "to_rdtype",
    "zone_text",
]

#: One record value: zone-file rdata text (``"192.0.2.1"``, ``'0 issue "ca.example"'``), or, for TXT only,
#: a tuple of strings making ONE multi-string TXT record.  A TXT ``str`` that does not start with ``"``
#: is quoted for you (so ``"hello world"`` is one string; values over 255 bytes are split into
#: 255-byte strings); one that starts with ``"`` is used as is (so ``'"part 1" "part 2"'`` is one record
#: with two strings).
RecordValue = str | tuple[str, ...]
#: One value, or a list of values (a list = several records in the RRset).
RecordValues = RecordValue | list[RecordValue]


def to_name(name: str | dns.name.Name) -> dns.name.Name:
    """Return *name* as an absolute :class:`dns.name.Name` (a missing final dot is implied)."""
    if isinstance(name, dns.name.Name):
        return name if name.is_absolute() else name.concatenate(dns.name.root)
    return dns.name.from_text(name)


def to_rdtype(rdtype: str | int | dns.rdatatype.RdataType) -> dns.rdatatype.RdataType:
    """Return *rdtype* (``"TXT"``, ``16`` or an ``RdataType``) as an ``RdataType``."""
    if isinstance(rdtype, str):
        return dns.rdatatype.from_text(rdtype)
    return dns.rdatatype.RdataType.make(rdtype)


def _quote(value: str | bytes) -> str:
    """A zone-file character-string: quoted, with ``"`` and ``\\`` escaped and non-ASCII as ``\\DDD``."""
    data = value.encode() if isinstance(value, str) else value
    out = []
    for byte in data:
        if byte in b'"\\':
            out.append("\\" + chr(byte))
        elif 0x20 <= byte < 0x7F:
            out.append(chr(byte))
        else:
            out.append(f"\\{byte:03d}")
    return '"' + "".join(out) + '"'


def _rdata_text(rdtype: dns.rdatatype.RdataType, value: RecordValue) -> str:
    if rdtype in (dns.rdatatype.TXT, dns.rdatatype.SPF):
        if isinstance(value, tuple):
            return " ".join(_quote(part) for part in value)
        if value.startswith('"'):
            return value
        # Like DNS providers do: a long value becomes several strings of at most 255 bytes.
        data = value.encode()
        return " ".join(_quote(data[i : i + 255]) for i in range(0, max(len(data), 1), 255))
    if isinstance(value, tuple):
        raise TypeError(f"tuple values are only allowed for TXT records, not {rdtype.name}")
    return value


def _as_list(values: RecordValues) -> list[RecordValue]:
    return list(values) if isinstance(values, list) else [values]


def clone_rrset(
    source: dns.rdataset.Rdataset,
    name: dns.name.Name | None = None,
    ttl: int | None = None,
) -> dns.rrset.RRset:
    """A new RRset with *source*'s records, owned by *name* (default: *source*'s own name, if it is an
    RRset) and with TTL *ttl* (default: *source*'s TTL)."""
    if name is None:
        if not isinstance(source, dns.rrset.RRset):
            raise TypeError("an owner name is needed to turn an rdataset into an RRset")
        name = source.name
    rrset = dns.rrset.RRset(name, source.rdclass, source.rdtype, source.covers)
    new_ttl = source.ttl if ttl is None else ttl
    for rdata in source:
        rrset.add(rdata, new_ttl)
    rrset.ttl = new_ttl
    return rrset


def make_rdataset(
    rdtype: str | int | dns.rdatatype.RdataType,
    values: RecordValues,
    ttl: int,
    origin: dns.name.Name | None = None,
) -> dns.rdataset.Rdataset:
    """Build an IN-class rdataset of *rdtype* from zone-file rdata texts (see :data:`RecordValue`).

    Relative names inside rdata (e.g. a CNAME target without a final dot) are made absolute with *origin*.
    """
    rdt = to_rdtype(rdtype)
    rds = dns.rdataset.Rdataset(dns.rdataclass.IN, rdt)
    for value in _as_list(values):
        rdata = dns.rdata.from_text(dns.rdataclass.IN, rdt, _rdata_text(rdt, value), origin=origin)
        rds.add(rdata, ttl)
    rds.update_ttl(ttl)
    rds.ttl = ttl
    return rds


def zone_text(
    origin: str,
    records: Mapping[str, Mapping[str, RecordValues | tuple[int, RecordValues]]] | None = None,
    *,
    serial: int = 1,
    ttl: int = 300,
    soa_ttl: int | None = None,
    minimum: int = 300,
    refresh: int = 3600,
    retry: int = 600,
    expire: int = 86400,
    mname: str | None = None,
    rname: str | None = None,
    ns: Sequence[str] | None = None,
    nameservers: Mapping[str, str | Sequence[str]] | None = None,
) -> str:
    """Build zone-file text for *origin* from a dict ``{owner: {TYPE: values}}``.

    * *owner* is ``"@"`` for the apex, a name relative to *origin* (``"_acme-challenge"``,
      ``"*.wild"``), or an absolute name ending in a dot.
    * *values* is a :data:`RecordValues`; ``(ttl, values)`` gives that RRset its own TTL.
    * The SOA is generated (``mname``/``rname`` default to ``ns1.<origin>``/``hostmaster.<origin>``) with
      TTL *soa_ttl* (default *ttl*) and MINIMUM *minimum*: the negative-caching TTL is
      ``min(soa_ttl, minimum)``. Give an ``"SOA"`` at ``"@"`` to override it completely.
    * Apex NS records default to *ns* or ``["ns1.<origin>"]`` unless ``records["@"]`` has ``"NS"``.
    * *nameservers* ``{ns name: address or [addresses]}`` gives the apex NS records *and* the in-zone
      A/AAAA records for them (e.g. the lab's loopback addresses, see :func:`nameservers_for`); it
      replaces *ns*. An address list may be empty (for NS names outside the zone).
    """
    origin_name = to_name(origin)
    o = origin_name.to_text()
    lines = [f"$ORIGIN {o}", f"$TTL {ttl}"]
    records = dict(records or {})
    apex = dict(records.pop("@", {}))
    if "SOA" not in apex:
        m = mname or f"ns1.{o}"
        r = rname or f"hostmaster.{o}"
        lines.append(
            f"@ {soa_ttl if soa_ttl is not None else ttl} IN SOA {m} {r} "
            f"{serial} {refresh} {retry} {expire} {minimum}"
        )
    if nameservers is not None:
        ns = list(nameservers)
        for target, addrs in nameservers.items():
            target_name = dns.name.from_text(target, origin_name)
            addr_list = [addrs] if isinstance(addrs, str) else list(addrs)
            if addr_list and not target_name.is_subdomain(origin_name):
                raise ValueError(f"cannot put addresses for {target} into zone {o}: out of zone")
            for addr in addr_list:
                rdtype = "AAAA" if ipaddress.ip_address(addr).version == 6 else "A"
                lines.append(f"{target_name} {ttl} IN {rdtype} {addr}")
    if "NS" not in apex:
        for target in ns or [f"ns1.{o}"]:
            lines.append(f"@ {ttl} IN NS {target}")
    for owner, rrsets in [("@", apex), *records.items()]:
        for rdtype, spec in rrsets.items():
            rr_ttl, values = spec if isinstance(spec, tuple) and isinstance(spec[0], int) else (ttl, spec)
            rdt = to_rdtype(rdtype)
            for value in _as_list(values):
                lines.append(f"{owner} {rr_ttl} IN {rdt.name} {_rdata_text(rdt, value)}")
    return "\n".join(lines) + "\n"


def nameservers_for(origin: str, addresses: Sequence[str], prefix: str = "ns") -> dict[str, str]:
    """NS names for *addresses*: ``{"ns1.<origin>": addresses[0], "ns2.<origin>": addresses[1], ...}``.

    Pass it as ``zone_text(..., nameservers=...)`` so a zone names the lab's own servers."""
    o = to_name(origin).to_text()
    return {f"{prefix}{i + 1}.{o}": addr for i, addr in enumerate(addresses)}


def parse_zone(origin: str | dns.name.Name, text: str) -> dns.zone.Zone:
    """Parse zone-file *text* for *origin* into a zone with absolute names (``relativize=False``)."""
    return dns.zone.from_text(text, to_name(origin), relativize=False)


def copy_zone(zone: dns.zone.Zone) -> dns.zone.Zone:
    """Return an independent deep copy of *zone* (so two servers never share mutable records)."""
    return copy.deepcopy(zone)


def _soa_rdataset(zone: dns.zone.Zone) -> dns.rdataset.Rdataset:
    assert zone.origin is not None
    rds = zone.get_rdataset(zone.origin, dns.rdatatype.SOA)
    if rds is None or len(rds) == 0:
        raise ValueError(f"zone {zone.origin} has no SOA")
    return rds


def get_serial(zone: dns.zone.Zone) -> int:
    """Return the SOA serial of *zone*."""
    soa: dns.rdtypes.ANY.SOA.SOA = _soa_rdataset(zone)[0]
    return int(soa.serial)


def bump_serial(zone: dns.zone.Zone, by: int = 1, *, to: int | None = None) -> int:
    """Increase the SOA serial of *zone* in place by *by* (or set it *to* a value); return the new serial."""
    rds = _soa_rdataset(zone)
    soa: dns.rdtypes.ANY.SOA.SOA = rds[0]
    new = (int(soa.serial) + by) % (1 << 32) if to is None else to
    new_rds = dns.rdataset.Rdataset(rds.rdclass, rds.rdtype)
    new_rds.add(soa.replace(serial=new), rds.ttl)
    assert zone.origin is not None
    zone.replace_rdataset(zone.origin, new_rds)
    return new
