"""Which network addresses dcv-bot may contact.

Every outbound connection the bot makes on a user's behalf (an HTTP fetch of a validation file, a DNS
query to a domain's nameserver) goes through :class:`AddressPolicy`. Without it, anyone could point a
domain, a redirect or an NS record at ``127.0.0.1``, ``10.0.0.0/8`` or the cloud metadata address
``169.254.169.254`` and use the bot to probe the network it runs in (SSRF).

The blocklist is data, not ``ipaddress.is_global``: the standard library's tables differ between Python
versions and lag the registries (CVE-2024-4032; on 3.11 ``is_global`` is True for multicast and for the
NAT64 and 6to4 forms of private addresses). Like Let's Encrypt's Boulder (``iana/ip.go``) every row of the
IANA IPv4 and IPv6 Special-Purpose Address Registries is blocked, whatever its "globally reachable"
column says (the Baseline Requirements care about presence in the registry), plus multicast, plus every
IPv6 address outside the global unicast space ``2000::/3``. Embedded-IPv4 forms (IPv4-mapped, NAT64,
6to4, Teredo) are therefore blocked outright, with no need to unwrap them.
"""

from __future__ import annotations

import copy
import errno
import ipaddress
from typing import TYPE_CHECKING, Self

if TYPE_CHECKING:
    from bot.config import Settings

REGISTRY_SYNCED = "2026-08-07"
"""When the rows below were last compared with IANA's registries (via Boulder's embedded CSVs)."""

IPv4Row = tuple[ipaddress.IPv4Network, str]
IPv6Row = tuple[ipaddress.IPv6Network, str]


def _v4(rows: list[tuple[str, str]]) -> tuple[IPv4Row, ...]:
    table = [(ipaddress.IPv4Network(block), why) for block, why in rows]
    # Most specific first, so an address gets the most precise reason.
    return tuple(sorted(table, key=lambda row: -row[0].prefixlen))


def _v6(rows: list[tuple[str, str]]) -> tuple[IPv6Row, ...]:
    table = [(ipaddress.IPv6Network(block), why) for block, why in rows]
    return tuple(sorted(table, key=lambda row: -row[0].prefixlen))


# IANA IPv4 Special-Purpose Address Registry, every row, plus multicast (not in that registry; TCP to it
# fails anyway, but letsdebug blocks it too and a clear reason beats a confusing socket error).
IPV4_BLOCKS: tuple[IPv4Row, ...] = _v4(
    [
        ("0.0.0.0/8", 'is a "this network" address (RFC 791)'),
        ("0.0.0.0/32", 'is the "this host" address (RFC 1122)'),
        ("10.0.0.0/8", "is a private address (RFC 1918)"),
        ("100.64.0.0/10", "is a carrier-grade NAT shared address (RFC 6598)"),
        ("127.0.0.0/8", "is a loopback address (RFC 1122)"),
        ("169.254.0.0/16", "is a link-local address (RFC 3927), where cloud metadata services live"),
        ("172.16.0.0/12", "is a private address (RFC 1918)"),
        ("192.0.0.0/24", "is reserved for IETF protocol assignments (RFC 6890)"),
        ("192.0.0.0/29", "is an IPv4 service continuity prefix (RFC 7335)"),
        ("192.0.0.8/32", "is the IPv4 dummy address (RFC 7600)"),
        ("192.0.0.9/32", "is the Port Control Protocol anycast address (RFC 7723)"),
        ("192.0.0.10/32", "is the TURN anycast address (RFC 8155)"),
        ("192.0.0.170/32", "is a NAT64/DNS64 discovery address (RFC 8880)"),
        ("192.0.0.171/32", "is a NAT64/DNS64 discovery address (RFC 8880)"),
        ("192.0.2.0/24", "is a documentation address, TEST-NET-1 (RFC 5737)"),
        ("192.31.196.0/24", "is an AS112 address (RFC 7535)"),
        ("192.52.193.0/24", "is an AMT address (RFC 7450)"),
        ("192.88.99.0/24", "is the deprecated 6to4 relay anycast block (RFC 7526)"),
        ("192.88.99.2/32", "is the 6a44 relay anycast address (RFC 6751)"),
        ("192.168.0.0/16", "is a private address (RFC 1918)"),
        ("192.175.48.0/24", "is a direct delegation AS112 address (RFC 7534)"),
        ("198.18.0.0/15", "is a benchmarking address (RFC 2544)"),
        ("198.51.100.0/24", "is a documentation address, TEST-NET-2 (RFC 5737)"),
        ("203.0.113.0/24", "is a documentation address, TEST-NET-3 (RFC 5737)"),
        ("224.0.0.0/4", "is a multicast address (RFC 5771)"),
        ("240.0.0.0/4", "is reserved for future use (RFC 1112)"),
        ("255.255.255.255/32", "is the limited broadcast address (RFC 919)"),
    ]
)

GLOBAL_UNICAST_V6 = ipaddress.IPv6Network("2000::/3")
"""IANA IPv6 Address Space: unicast assignments are currently limited to 2000::/3."""

# Outside 2000::/3 everything is blocked; these rows only give the well-known blocks a precise reason.
IPV6_OUTSIDE_NAMES: tuple[IPv6Row, ...] = _v6(
    [
        ("::/128", "is the unspecified address (RFC 4291)"),
        ("::1/128", "is the IPv6 loopback address (RFC 4291)"),
        ("::ffff:0:0/96", "is an IPv4-mapped IPv6 address (RFC 4291)"),
        ("::/96", "is a deprecated IPv4-compatible IPv6 address (RFC 4291)"),
        ("64:ff9b::/96", "is a NAT64 address (RFC 6052)"),
        ("64:ff9b:1::/48", "is a local-use NAT64 address (RFC 8215)"),
        ("100::/64", "is a discard-only address (RFC 6666)"),
        ("100:0:0:1::/64", "is a dummy IPv6 prefix (RFC 9780)"),
        ("5f00::/16", "is an SRv6 segment identifier (RFC 9602)"),
        ("fc00::/7", "is a unique local (private) IPv6 address (RFC 4193)"),
        ("fe80::/10", "is a link-local IPv6 address (RFC 4291)"),
        ("fec0::/10", "is a deprecated site-local IPv6 address (RFC 3879)"),
        ("ff00::/8", "is a multicast address (RFC 4291)"),
    ]
)

# IANA IPv6 Special-Purpose Address Registry rows that fall inside 2000::/3.
IPV6_BLOCKS: tuple[IPv6Row, ...] = _v6(
    [
        ("2001::/23", "is reserved for IETF protocol assignments (RFC 2928)"),
        ("2001::/32", "is a Teredo address (RFC 4380)"),
        ("2001:1::1/128", "is the Port Control Protocol anycast address (RFC 7723)"),
        ("2001:1::2/128", "is the TURN anycast address (RFC 8155)"),
        ("2001:1::3/128", "is the DNS-SD service registration protocol anycast address (RFC 9665)"),
        ("2001:2::/48", "is a benchmarking address (RFC 5180)"),
        ("2001:3::/32", "is an AMT address (RFC 7450)"),
        ("2001:4:112::/48", "is an AS112 address (RFC 7535)"),
        ("2001:10::/28", "is a deprecated ORCHID address (RFC 4843)"),
        ("2001:20::/28", "is an ORCHIDv2 address (RFC 7343)"),
        ("2001:30::/28", "is a drone remote ID address (RFC 9374)"),
        ("2001:db8::/32", "is a documentation address (RFC 3849)"),
        ("2002::/16", "is a 6to4 address (RFC 3056)"),
        ("2620:4f:8000::/48", "is a direct delegation AS112 address (RFC 7534)"),
        ("3fff::/20", "is a documentation address (RFC 9637)"),
    ]
)


class BlockedAddress(OSError):
    """Raised when an address (or port) may not be contacted.

    An :class:`OSError` with ``errno.EACCES`` so that socket layers (aiohttp's connector, aiohappyeyeballs)
    treat it as a failed connect and keep the message: ``blocked address IP (reason)``.
    """

    def __init__(self, ip: str, reason: str) -> None:
        super().__init__(errno.EACCES, f"blocked address {ip} ({reason})")
        self.ip = ip
        self.reason = reason


NOT_CANONICAL = "is not a canonical IP address"


def address_reason(ip: str) -> str | None:
    """Why ``ip`` is special-purpose (a registry row, multicast, outside 2000::/3), or None if public.

    ``ip`` must be a canonical IPv4 dotted quad or an IPv6 address; anything else (``127.1``,
    ``0x7f000001``, ``2130706433``, ``010.0.0.1``, brackets, host names) gets a reason too, because a
    socket layer might interpret it differently from us.
    """
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return NOT_CANONICAL
    if isinstance(addr, ipaddress.IPv6Address) and addr.scope_id is not None:
        # fe80::1%eth0: the zone picks an interface of the bot's own host (Boulder refuses these too).
        return "is a zone-scoped IPv6 address"
    if isinstance(addr, ipaddress.IPv4Address):
        for net4, why in IPV4_BLOCKS:
            if addr in net4:
                return why
        return None
    if addr not in GLOBAL_UNICAST_V6:
        for net6, why in IPV6_OUTSIDE_NAMES:
            if addr in net6:
                return why
        return "is outside the global unicast IPv6 space 2000::/3"
    for net6, why in IPV6_BLOCKS:
        if addr in net6:
            return why
    return None


class AddressPolicy:
    """Decides whether an address (and port) may be contacted.

    ``allow_private=True`` lifts the address blocks, for tests and labs only (``DCV_ALLOW_PRIVATE=1``);
    it never makes a malformed address acceptable. ``allowed_ports`` (None: any port) restricts ports,
    as Boulder allows only its configured HTTP and HTTPS ports (BR 3.2.2.4.18: "Authorized Ports").
    """

    def __init__(self, *, allow_private: bool = False, allowed_ports: frozenset[int] | None = None) -> None:
        self.allow_private = allow_private
        self.allowed_ports = allowed_ports

    @classmethod
    def production(cls) -> Self:
        """The policy for real use: every special-purpose address blocked, any port."""
        return cls(allow_private=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        """The policy the settings ask for (``DCV_ALLOW_PRIVATE``), any port."""
        return cls(allow_private=settings.allow_private)

    def with_ports(self, ports: frozenset[int]) -> AddressPolicy:
        """A copy of this policy that also restricts the port to ``ports``."""
        clone = copy.copy(self)
        clone.allowed_ports = frozenset(ports)
        return clone

    def reason(self, ip: str) -> str | None:
        """None when ``ip`` may be contacted, else a human reason (``"is a loopback address (RFC 1122)"``)."""
        why = address_reason(ip)
        if why is None:
            return None
        if self.allow_private and why != NOT_CANONICAL:
            return None
        return why

    def check(self, ip: str, port: int | None = None) -> None:
        """Raise :class:`BlockedAddress` unless ``ip`` (and ``port``, when given) may be contacted."""
        why = self.reason(ip)
        if why is not None:
            raise BlockedAddress(ip, why)
        if port is not None and self.allowed_ports is not None and port not in self.allowed_ports:
            raise BlockedAddress(ip, f"port {port} is not an allowed port")

    def __repr__(self) -> str:
        ports = sorted(self.allowed_ports) if self.allowed_ports is not None else "any"
        return f"AddressPolicy(allow_private={self.allow_private}, allowed_ports={ports})"
