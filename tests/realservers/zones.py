"""The lab's DNS hierarchy: addresses and zone contents.

Everything lives in 127.53.0.0/16 (nobody else on the machine uses that block), port 53::

    127.53.0.1   ns.nic.lab     NSD   the root "." and the TLD "lab." (the "registry")
    127.53.1.1   ns1.dns.lab    Knot  primary of every child zone
    127.53.2.1   ns2.dns.lab    NSD   secondary (AXFR/IXFR + NOTIFY) of example, other, dyn, signed.lab
    127.53.8.1   lame.dns.lab   NSD   with no zones at all: answers REFUSED (lame delegation)
    127.53.9.9   dead.dns.lab   nothing listens, and an iptables rule drops what is sent there
    127.53.53.1  resolver       Unbound, iterator only (what DCV_RESOLVERS points at)
    127.53.53.2  validator      Unbound with the DNSSEC validator, trust anchor for signed.lab
    127.53.80.1  web            nginx :80 and :443
    127.53.80.2  web2           nginx :80 and :443 (second member of a "load balancer")
    127.53.80.3  web3           nginx :80, and plain HTTP (no TLS) on :443
    127.53.80.8  filtered       an iptables rule drops TCP sent there
    127.53.80.9  closed         nothing listens: connections are refused

Child zones, all served by ns1 (Knot) and, where listed, ns2 (NSD, by zone transfer):

- ``example.lab``  static scenarios (records found, mismatches, wrong names, CNAMEs, CAA, web hosts)
- ``sub.example.lab``  a child zone on ns1 only (ns2 serves only the delegation in example.lab)
- ``other.lab``    targets of CNAME chains that leave example.lab
- ``dyn.lab``      records the tests change at runtime; SOA TTL 45 < MINIMUM 3600, so the negative TTL
                   (RFC 2308: min of the two) is 45 s
- ``signed.lab``   DNSSEC-signed offline; ``_dnsauth.signed.lab`` TXT carries an expired RRSIG
- ``lame.lab``     NS ns1 + lame.dns.lab (REFUSED)
- ``drop.lab``     NS ns1 + dead.dns.lab (packets dropped)
- ``nsd.lab``      primary on NSD (ns2) itself: NSD follows a CNAME into other.lab, which it also serves,
                   and answers with the rcode of the chain's end (NXDOMAIN for a dangling one)
- ``alllame.lab``  NS lame.dns.lab only: nobody answers for it, resolvers SERVFAIL

``nowhere.lab`` is not delegated at all (NXDOMAIN from the TLD).
"""

from __future__ import annotations

ROOT = "127.53.0.1"
NS1 = "127.53.1.1"
NS2 = "127.53.2.1"
LAME = "127.53.8.1"
DEAD = "127.53.9.9"
RESOLVER = "127.53.53.1"
VALIDATOR = "127.53.53.2"
WEB = "127.53.80.1"
WEB2 = "127.53.80.2"
WEB3 = "127.53.80.3"
FILTERED = "127.53.80.8"
CLOSED = "127.53.80.9"

# Zones served by the Knot primary, and which of them the NSD secondary transfers.
PRIMARY_ZONES = (
    "example.lab",
    "sub.example.lab",
    "other.lab",
    "dyn.lab",
    "signed.lab",
    "lame.lab",
    "drop.lab",
)
SECONDARY_ZONES = ("example.lab", "other.lab", "dyn.lab", "signed.lab")

DYN_SOA_TTL = 45
DYN_SOA_MINIMUM = 3600
NEGATIVE_TTL = min(DYN_SOA_TTL, DYN_SOA_MINIMUM)
DYN_RECORD_TTL = 300

# File-method scenarios: host -> address(es). The nginx side is in web.py.
WEB_HOSTS: dict[str, tuple[str, ...]] = {
    "found": (WEB,),
    "missing": (WEB,),
    "wrong": (WEB,),
    "bom": (WEB,),
    "crlf": (WEB,),
    "spaces": (WEB,),
    "tohttps": (WEB,),
    "moved": (WEB,),
    "loop": (WEB,),
    "spa": (WEB,),
    "forbidden": (WEB,),
    "drip": (WEB,),
    "slowbody": (WEB,),
    "huge": (WEB,),
    "lb": (WEB, WEB2),
    "closed": (CLOSED,),
    "v6broken": (WEB, "::1"),
    "tlsbroken": (WEB3,),
    "gzip": (WEB,),
    "noslash": (WEB,),
    "oddport": (WEB,),
    "filtered": (FILTERED,),
}


def root_zone() -> str:
    return f"""$TTL 86400
.            86400 IN SOA ns.nic.lab. hostmaster.nic.lab. 1 3600 600 1209600 300
.                  IN NS  ns.nic.lab.
lab.               IN NS  ns.nic.lab.
net.               IN NS  ns.nic.lab.
ns.nic.lab.        IN A   {ROOT}
"""


PRIVATE_WEB_NAME = "private-web.net"
"""A name under a real TLD (so production input checks accept it) whose address is the lab's private
web server: the production address policy must refuse to contact it."""


def net_zone() -> str:
    return f"""$TTL 3600
net.                  IN SOA ns.nic.lab. hostmaster.nic.lab. 1 3600 600 1209600 300
net.                  IN NS  ns.nic.lab.
{PRIVATE_WEB_NAME}.   IN A   {WEB}
"""


def tld_zone() -> str:
    delegations = []
    for zone in ("example.lab", "other.lab", "dyn.lab", "signed.lab"):
        delegations.append(f"{zone}. IN NS ns1.dns.lab.\n{zone}. IN NS ns2.dns.lab.")
    delegations.append("lame.lab. IN NS ns1.dns.lab.\nlame.lab. IN NS lame.dns.lab.")
    delegations.append("drop.lab. IN NS ns1.dns.lab.\ndrop.lab. IN NS dead.dns.lab.")
    delegations.append("alllame.lab. IN NS lame.dns.lab.")
    delegations.append("nsd.lab. IN NS ns2.dns.lab.")
    body = "\n".join(delegations)
    return f"""$TTL 3600
lab.          IN SOA ns.nic.lab. hostmaster.nic.lab. 1 3600 600 1209600 300
lab.          IN NS  ns.nic.lab.
ns.nic.lab.   IN A   {ROOT}
ns1.dns.lab.  IN A   {NS1}
ns2.dns.lab.  IN A   {NS2}
lame.dns.lab. IN A   {LAME}
dead.dns.lab. IN A   {DEAD}
{body}
"""


def _soa(zone: str, ttl: int = 3600, minimum: int = 300, refresh: int = 3600, retry: int = 2) -> str:
    return (
        f"{zone}. {ttl} IN SOA ns1.dns.lab. hostmaster.{zone}. 1 {refresh} {retry} 1209600 {minimum}\n"
        f"{zone}. IN NS ns1.dns.lab.\n"
    )


def example_zone() -> str:
    web = "\n".join(
        f"{host}.example.lab. IN {'AAAA' if ':' in addr else 'A'} {addr}"
        for host, addrs in WEB_HOSTS.items()
        for addr in addrs
    )
    return (
        "$TTL 300\n"
        + _soa("example.lab")
        + "example.lab. IN NS ns2.dns.lab.\n"
        + r"""
_dnsauth.ok.example.lab.            IN TXT "v-ok"
_dnsauth.mismatch.example.lab.      IN TXT "v-something-else"
_dnsauth.quoted.example.lab.        IN TXT "\"v-quoted\""
_dnsauth.spaced.example.lab.        IN TXT " v-spaced "
_dnsauth.stalevals.example.lab.     IN TXT "v-stalevals"
_dnsauth.stalevals.example.lab.     IN TXT "v-from-last-year"
wrongname.example.lab.              IN TXT "v-wrongname"
_acme-challenge.prefix.example.lab. IN TXT "v-prefix"
_dnsauth.doubled.example.lab.example.lab. IN TXT "v-doubled"
_dnsauth.chain.example.lab.         IN CNAME hop1.other.lab.
_dnsauth.dangling.example.lab.      IN CNAME nothing-here.other.lab.
_dnsauth.cnloop.example.lab.        IN CNAME loop1.other.lab.
_dnsauth.cn.example.lab.            IN CNAME dcv.other.lab.
_dnsauth.txtnotcname.example.lab.   IN TXT "dcv.other.lab"
_dnsauth.xn--bcher-kva.example.lab. IN TXT "v-idn"
_dnsauth.case.example.lab.          IN TXT "V-CASE"
noaddr.example.lab.                 IN TXT "no address here"
*.wild.example.lab.                 IN TXT "v-wild"
sub.example.lab.                    IN NS ns1.dns.lab.
caatree.example.lab.                IN CAA 0 issue "digicert.com"
_dnsauth.deep.caatree.example.lab.  IN TXT "v-caatree"
caawild.example.lab.                IN CAA 0 issue "letsencrypt.org"
caawild.example.lab.                IN CAA 0 issuewild ";"
_dnsauth.caawild.example.lab.       IN TXT "v-caawild"
caacrit.example.lab.                IN CAA 128 tbs "unknown-critical"
_dnsauth.caacrit.example.lab.       IN TXT "v-caacrit"
caa.example.lab.                    IN CAA 0 issue "digicert.com"
_dnsauth.caa.example.lab.           IN TXT "v-caa"
"""
        + web
        + "\n"
    )


def other_zone() -> str:
    return (
        "$TTL 300\n"
        + _soa("other.lab")
        + "other.lab. IN NS ns2.dns.lab.\n"
        + """
hop1.other.lab.  IN CNAME hop2.other.lab.
hop2.other.lab.  IN TXT "v-chain"
loop1.other.lab. IN CNAME loop2.other.lab.
loop2.other.lab. IN CNAME loop1.other.lab.
dcv.other.lab.   IN A 127.53.80.1
"""
    )


def dyn_zone() -> str:
    return (
        f"$TTL {DYN_RECORD_TTL}\n"
        + _soa("dyn.lab", ttl=DYN_SOA_TTL, minimum=DYN_SOA_MINIMUM)
        + "dyn.lab. IN NS ns2.dns.lab.\n"
        + 'ready.dyn.lab. IN TXT "ready"\n'
    )


def signed_zone_unsigned() -> str:
    return (
        "$TTL 300\n"
        + _soa("signed.lab")
        + "signed.lab. IN NS ns2.dns.lab.\n"
        + """
_dnsauth.signed.lab.      IN TXT "v-bogus"
_dnsauth.good.signed.lab. IN TXT "v-good"
"""
    )


SIGNED_EXPIRED = (("_dnsauth.signed.lab.", "TXT"),)


def sub_zone() -> str:
    """A child of example.lab hosted on ns1 only (ns2 has just the delegation): a zone cut to find."""
    return "$TTL 300\n" + _soa("sub.example.lab") + '_dnsauth.sub.example.lab. IN TXT "v-sub"\n'


def nsd_zone() -> str:
    return (
        "$TTL 300\n"
        + _soa("nsd.lab").replace("ns1.dns.lab.", "ns2.dns.lab.")
        + """
_dnsauth.dangle.nsd.lab. IN CNAME nothing-here.other.lab.
_dnsauth.chain.nsd.lab.  IN CNAME hop1.other.lab.
"""
    )


def lame_zone() -> str:
    return (
        "$TTL 300\n"
        + _soa("lame.lab")
        + "lame.lab. IN NS lame.dns.lab.\n"
        + '_dnsauth.lame.lab. IN TXT "v-lame"\n'
    )


def drop_zone() -> str:
    return (
        "$TTL 300\n"
        + _soa("drop.lab")
        + "drop.lab. IN NS dead.dns.lab.\n"
        + '_dnsauth.drop.lab. IN TXT "v-drop"\n'
    )


CHILD_ZONES = {
    "example.lab": example_zone,
    "sub.example.lab": sub_zone,
    "other.lab": other_zone,
    "dyn.lab": dyn_zone,
    "lame.lab": lame_zone,
    "drop.lab": drop_zone,
}
