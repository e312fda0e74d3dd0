"""Table tests for the address policy, in the manner of Boulder's ``iana/ip_test.go``."""

from __future__ import annotations

import errno
import ipaddress

import pytest

from bot.config import Settings
from bot.netpolicy import (
    IPV4_BLOCKS,
    IPV6_BLOCKS,
    AddressPolicy,
    BlockedAddress,
    address_reason,
)

# (address, blocked?) — boundaries of each block and the address just outside.
BOUNDARIES: list[tuple[str, bool]] = [
    # 0.0.0.0/8
    ("0.0.0.0", True),
    ("0.255.255.255", True),
    ("1.0.0.0", False),
    # 10.0.0.0/8
    ("9.255.255.255", False),
    ("10.0.0.0", True),
    ("10.255.255.255", True),
    ("11.0.0.0", False),
    # 100.64.0.0/10
    ("100.63.255.255", False),
    ("100.64.0.0", True),
    ("100.127.255.255", True),
    ("100.128.0.0", False),
    # 127.0.0.0/8
    ("126.255.255.255", False),
    ("127.0.0.0", True),
    ("127.0.0.1", True),
    ("127.255.255.255", True),
    ("128.0.0.0", False),
    # 169.254.0.0/16
    ("169.253.255.255", False),
    ("169.254.0.0", True),
    ("169.254.169.254", True),
    ("169.254.255.255", True),
    ("169.255.0.0", False),
    # 172.16.0.0/12
    ("172.15.255.255", False),
    ("172.16.0.0", True),
    ("172.31.255.255", True),
    ("172.32.0.0", False),
    # 192.0.0.0/24 and 192.0.2.0/24
    ("191.255.255.255", False),
    ("192.0.0.0", True),
    ("192.0.0.9", True),
    ("192.0.0.255", True),
    ("192.0.1.0", False),
    ("192.0.2.0", True),
    ("192.0.2.255", True),
    ("192.0.3.0", False),
    # AS112, AMT, 6to4 relay
    ("192.31.195.255", False),
    ("192.31.196.0", True),
    ("192.31.197.0", False),
    ("192.52.193.7", True),
    ("192.88.98.255", False),
    ("192.88.99.0", True),
    ("192.88.99.2", True),
    ("192.88.100.0", False),
    # 192.168.0.0/16
    ("192.167.255.255", False),
    ("192.168.0.0", True),
    ("192.168.255.255", True),
    ("192.169.0.0", False),
    ("192.175.48.1", True),
    # 198.18.0.0/15
    ("198.17.255.255", False),
    ("198.18.0.0", True),
    ("198.19.255.255", True),
    ("198.20.0.0", False),
    # TEST-NET-2/3
    ("198.51.100.0", True),
    ("198.51.101.0", False),
    ("203.0.113.255", True),
    ("203.0.114.0", False),
    # multicast, reserved, broadcast
    ("223.255.255.255", False),
    ("224.0.0.0", True),
    ("239.255.255.255", True),
    ("240.0.0.0", True),
    ("255.255.255.254", True),
    ("255.255.255.255", True),
    # public IPv4
    ("8.8.8.8", False),
    ("1.1.1.1", False),
    ("223.5.5.5", False),
    # IPv6 outside 2000::/3
    ("::", True),
    ("::1", True),
    ("::2", True),  # Boulder's "surprisingly unreserved" ::2 is outside 2000::/3 for us
    ("::ffff:127.0.0.1", True),
    ("::ffff:8.8.8.8", True),
    ("::7f00:1", True),
    ("64:ff9b::a00:1", True),
    ("64:ff9b::808:808", True),
    ("64:ff9b:1::1", True),
    ("100::1", True),
    ("5f00::1", True),
    ("fc00::", True),
    ("fd00:ec2::254", True),
    ("fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", True),
    ("fe80::1", True),
    ("fec0::1", True),
    ("ff02::1", True),
    ("1fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", True),
    ("4000::", True),
    # inside 2000::/3
    ("2000::", False),
    ("2000:ffff::1", False),
    ("2001::", True),
    ("2001:0:ffff::1", True),  # Teredo
    ("2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff", True),
    ("2001:200::", False),  # just past 2001::/23
    ("2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", False),
    ("2001:db8::", True),
    ("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", True),
    ("2001:db9::", False),
    ("2001:ffff:ffff:ffff:ffff:ffff:ffff:ffff", False),
    ("2002::", True),
    ("2002:a00:1::1", True),  # 6to4 of 10.0.0.1
    ("2002:ffff:ffff:ffff:ffff:ffff:ffff:ffff", True),
    ("2003::", False),
    ("2620:4f:7fff:ffff:ffff:ffff:ffff:ffff", False),
    ("2620:4f:8000::", True),
    ("2620:4f:8001::", False),
    ("3ffe:ffff:ffff:ffff:ffff:ffff:ffff:ffff", False),
    ("3fff::", True),
    ("3fff:fff:ffff:ffff:ffff:ffff:ffff:ffff", True),
    ("3fff:1000::", False),
    ("3fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", False),
    ("2606:4700:4700::1111", False),
    ("2400:3200::1", False),
]


@pytest.mark.parametrize(("ip", "blocked"), BOUNDARIES)
def test_block_boundaries(ip: str, blocked: bool) -> None:
    assert (AddressPolicy.production().reason(ip) is not None) is blocked


@pytest.mark.parametrize(
    ("ip", "fragment"),
    [
        ("10.1.2.3", "private address (RFC 1918)"),
        ("127.0.0.1", "loopback"),
        ("169.254.169.254", "metadata"),
        ("::ffff:10.0.0.1", "IPv4-mapped"),
        ("64:ff9b::a00:1", "NAT64"),
        ("2002:a00:1::", "6to4"),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"),
        ("fe80::1%eth0", "zone-scoped"),
        ("fe80::1%1", "zone-scoped"),
        ("4000::1", "outside the global unicast"),
        ("224.0.0.1", "multicast"),
        ("ff05::2", "multicast"),
        ("fd00::1", "unique local"),
        ("0.0.0.0", '"this host"'),
    ],
)
def test_reasons_are_specific(ip: str, fragment: str) -> None:
    reason = address_reason(ip)
    assert reason is not None
    assert fragment in reason


@pytest.mark.parametrize(
    "spelling",
    [
        "0000:0000:0000:0000:0000:0000:0000:0001",
        "0:0:0:0:0:0:0:1",
        "::0001",
        "::FFFF:127.0.0.1",
        "::ffff:7f00:1",
        "0:0:0:0:0:ffff:7f00:0001",
        "FE80:0000::0001",
        "0100::",
        "2001:DB8::1",
        "2002:0a00:0001:0000:0000:0000:0000:0000",
    ],
)
def test_non_canonical_ipv6_spellings_blocked(spelling: str) -> None:
    assert AddressPolicy.production().reason(spelling) is not None


@pytest.mark.parametrize(
    "text",
    [
        "127.1",
        "2130706433",
        "0x7f000001",
        "017700000001",
        "0177.0.0.1",
        "010.0.0.1",
        "[::1]",
        "localhost",
        "",
        " 8.8.8.8",
    ],
)
def test_non_canonical_forms_refused_even_when_private_allowed(text: str) -> None:
    assert AddressPolicy.production().reason(text) == "is not a canonical IP address"
    assert AddressPolicy(allow_private=True).reason(text) == "is not a canonical IP address"


def test_check_raises_eacces_with_message() -> None:
    with pytest.raises(BlockedAddress) as info:
        AddressPolicy.production().check("10.0.0.1", 80)
    assert info.value.errno == errno.EACCES
    assert str(info.value) == "[Errno 13] blocked address 10.0.0.1 (is a private address (RFC 1918))"
    assert info.value.strerror == "blocked address 10.0.0.1 (is a private address (RFC 1918))"
    assert isinstance(info.value, OSError)


def test_allowed_ports() -> None:
    policy = AddressPolicy(allowed_ports=frozenset({80, 443}))
    policy.check("8.8.8.8", 80)
    policy.check("8.8.8.8", 443)
    policy.check("8.8.8.8")
    with pytest.raises(BlockedAddress, match="port 8080"):
        policy.check("8.8.8.8", 8080)
    # allow_private lifts address blocks, never port restrictions
    lab = AddressPolicy(allow_private=True, allowed_ports=frozenset({80}))
    lab.check("127.0.0.1", 80)
    with pytest.raises(BlockedAddress):
        lab.check("127.0.0.1", 22)


def test_with_ports_copies() -> None:
    base = AddressPolicy(allow_private=True)
    restricted = base.with_ports(frozenset({8080}))
    assert base.allowed_ports is None
    assert restricted.allowed_ports == frozenset({8080})
    assert restricted.allow_private


def test_allow_private_lifts_address_blocks() -> None:
    lab = AddressPolicy(allow_private=True)
    for ip, _ in BOUNDARIES:
        lab.check(ip)
    lab.check("fe80::1%lo")


def test_production_never_allows_private() -> None:
    policy = AddressPolicy.production()
    assert policy.allow_private is False
    assert policy.allowed_ports is None
    for ip in ("127.0.0.1", "10.0.0.1", "::1", "169.254.169.254", "::ffff:127.0.0.1"):
        with pytest.raises(BlockedAddress):
            policy.check(ip, 80)
    # Production ignores the settings' test switch by construction.
    assert AddressPolicy.production().reason("127.0.0.1") is not None


def test_from_settings() -> None:
    assert AddressPolicy.from_settings(Settings(allow_private=True)).allow_private is True
    assert AddressPolicy.from_settings(Settings()).allow_private is False
    assert AddressPolicy.from_settings(Settings()).reason("192.168.1.1") is not None


def test_every_row_blocks_its_first_and_last_address() -> None:
    for net4, _ in IPV4_BLOCKS:
        assert address_reason(str(net4.network_address)) is not None
        assert address_reason(str(net4.broadcast_address)) is not None
    for net6, _ in IPV6_BLOCKS:
        assert address_reason(str(net6.network_address)) is not None
        assert address_reason(str(net6.broadcast_address)) is not None


def test_more_specific_row_wins() -> None:
    assert address_reason("192.0.0.9") == "is the Port Control Protocol anycast address (RFC 7723)"
    assert address_reason("2001:db8::1") == "is a documentation address (RFC 3849)"
    assert address_reason("0.0.0.0") == 'is the "this host" address (RFC 1122)'


def test_does_not_rely_on_is_global() -> None:
    # Addresses Python 3.11's is_global gets wrong (reliability.md 2.4) are all blocked here.
    for ip in (
        "192.0.0.100",
        "224.0.0.1",
        "64:ff9b::a00:1",
        "2002:a00:1::1",
        "::7f00:1",
        "fec0::1",
        "3fff::1",
    ):
        assert address_reason(ip) is not None
        assert ipaddress.ip_address(ip) is not None


def test_table_size_pinned() -> None:
    # A change to the registry rows must be deliberate: update REGISTRY_SYNCED and this count together.
    assert (len(IPV4_BLOCKS), len(IPV6_BLOCKS)) == (27, 15)
