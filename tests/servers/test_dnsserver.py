"""Tests of the in-process DNS test servers themselves, over the real wire protocol on loopback."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator

import dns.asyncquery
import dns.asyncresolver
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.resolver
import dns.rrset
import pytest

from .dnsserver import AuthServer
from .fixtures import LabFactory, ResolverFactory, allocate_loopback, start_lab
from .resolver import CachingResolver, FakeClock
from .zones import RecordValues, get_serial, nameservers_for, parse_zone, zone_text

ORIGIN = "example.test."

#: A zone exercising most answer paths. SOA TTL 300, MINIMUM 60 => negative TTL 60.
ZONE = zone_text(
    ORIGIN,
    {
        "@": {"A": "192.0.2.1", "TXT": ["hello world", ("part one", "part two")], "CAA": '0 issue "ca.test"'},
        "a.b": {"A": "192.0.2.2"},
        "www": {"CNAME": "example.test."},
        "chain1": {"CNAME": "chain2.example.test."},
        "chain2": {"CNAME": "www.example.test."},
        "dangling": {"CNAME": "missing.example.test."},
        "outside": {"CNAME": "target.other.test."},
        "loop1": {"CNAME": "loop2.example.test."},
        "loop2": {"CNAME": "loop1.example.test."},
        "*.wild": {"TXT": "wildcard", "A": "192.0.2.9"},
        "x.wild": {"AAAA": "2001:db8::1"},
        "sub": {"NS": ["ns1.sub.example.test.", "ns.elsewhere.test."], "DS": "12345 13 2 " + "ab" * 32},
        "ns1.sub": {"A": "127.0.0.53"},
        "v6": {"AAAA": "2001:db8::2"},
        "_acme-challenge": {"TXT": (60, "token-1")},
    },
    serial=2024010101,
    soa_ttl=300,
    minimum=60,
)

BIG_TXT: dict[str, dict[str, RecordValues]] = {
    "big": {"TXT": [f"record-{i:02d}-" + "x" * 50 for i in range(20)]}
}  # ~1.4 kB answer


def make_query(
    qname: str,
    qtype: str = "A",
    *,
    edns: bool = True,
    payload: int = 1232,
    rd: bool = False,
    cd: bool = False,
    do: bool = False,
) -> dns.message.QueryMessage:
    """A query like a DCV checker sends: RD=0, EDNS payload 1232 unless told otherwise."""
    q = dns.message.make_query(
        qname,
        qtype,
        use_edns=0 if edns else False,
        payload=payload,
        want_dnssec=do,
        flags=(dns.flags.RD if rd else 0) | (dns.flags.CD if cd else 0),
    )
    return q


async def ask(
    server: AuthServer | CachingResolver | tuple[str, int],
    qname: str,
    qtype: str = "A",
    *,
    tcp: bool = False,
    timeout: float = 2.0,
    **kw: bool | int,
) -> dns.message.Message:
    """Send one query over UDP (or TCP) and return the response."""
    addr, port = server if isinstance(server, tuple) else server.endpoint
    q = make_query(qname, qtype, **kw)  # type: ignore[arg-type]
    if tcp:
        return await dns.asyncquery.tcp(q, addr, port=port, timeout=timeout)
    return await dns.asyncquery.udp(q, addr, port=port, timeout=timeout)


@pytest.fixture
async def server() -> AsyncIterator[AuthServer]:
    """One authoritative server for :data:`ZONE` on a fresh loopback address."""
    async with AuthServer(allocate_loopback()[0], 0, {ORIGIN: ZONE}) as s:
        yield s


def soa_of(response: dns.message.Message) -> dns.rrset.RRset:
    """The single SOA RRset in the authority section."""
    soas = [r for r in response.authority if r.rdtype == dns.rdatatype.SOA]
    assert len(soas) == 1, response
    return soas[0]


# ================================================================================ authoritative basics


async def test_answer_copies_id_question_case_and_rd_and_sets_aa(server: AuthServer) -> None:
    q = make_query("ExAmPlE.TeSt.", "A", rd=True)
    r = await dns.asyncquery.udp(q, server.address, port=server.port, timeout=2)
    assert r.id == q.id
    assert r.question[0].name.to_text() == "ExAmPlE.TeSt."  # case preserved (0x20-safe)
    assert r.flags & dns.flags.AA
    assert r.flags & dns.flags.RD
    assert not r.flags & dns.flags.RA
    assert r.rcode() == dns.rcode.NOERROR
    assert [rd.address for rd in r.answer[0]] == ["192.0.2.1"]

    r = await ask(server, ORIGIN, "A")
    assert not r.flags & dns.flags.RD


async def test_nxdomain_carries_soa_with_zone_ttl(server: AuthServer) -> None:
    r = await ask(server, "nope.example.test.", "TXT")
    assert r.rcode() == dns.rcode.NXDOMAIN
    assert r.flags & dns.flags.AA
    assert r.answer == []
    soa = soa_of(r)
    assert soa.name == dns.name.from_text(ORIGIN)
    assert soa.ttl == 300
    assert soa[0].minimum == 60
    assert soa[0].serial == 2024010101


async def test_nodata_for_existing_name_without_the_type(server: AuthServer) -> None:
    r = await ask(server, "a.b.example.test.", "TXT")
    assert r.rcode() == dns.rcode.NOERROR
    assert r.flags & dns.flags.AA
    assert r.answer == []
    assert soa_of(r).ttl == 300


async def test_empty_non_terminal_is_nodata_not_nxdomain(server: AuthServer) -> None:
    r = await ask(server, "b.example.test.", "A")
    assert r.rcode() == dns.rcode.NOERROR
    assert r.answer == []
    soa_of(r)
    # ... while a sibling that does not exist is NXDOMAIN
    assert (await ask(server, "c.example.test.", "A")).rcode() == dns.rcode.NXDOMAIN


async def test_multi_string_txt_goes_out_as_several_strings(server: AuthServer) -> None:
    r = await ask(server, ORIGIN, "TXT")
    strings = sorted(rdata.strings for rdata in r.answer[0])
    assert strings == [(b"hello world",), (b"part one", b"part two")]
    assert r.answer[0].ttl == 300


async def test_rrset_ttl_as_in_zone(server: AuthServer) -> None:
    r = await ask(server, "_acme-challenge.example.test.", "TXT")
    assert r.answer[0].ttl == 60
    assert r.answer[0][0].strings == (b"token-1",)


@pytest.mark.parametrize(
    ("qname", "qtype", "expected"),
    [
        (ORIGIN, "CAA", '0 issue "ca.test"'),
        ("v6.example.test.", "AAAA", "2001:db8::2"),
        (ORIGIN, "NS", "ns1.example.test."),
        (ORIGIN, "SOA", "ns1.example.test. hostmaster.example.test. 2024010101 3600 600 86400 60"),
        ("www.example.test.", "CNAME", "example.test."),
    ],
)
async def test_record_types(server: AuthServer, qname: str, qtype: str, expected: str) -> None:
    r = await ask(server, qname, qtype)
    assert r.flags & dns.flags.AA
    assert [rd.to_text() for rd in r.answer[0]] == [expected]


async def test_cname_is_chased_inside_the_zone(server: AuthServer) -> None:
    r = await ask(server, "chain1.example.test.", "A")
    assert r.rcode() == dns.rcode.NOERROR
    assert r.flags & dns.flags.AA
    assert [(rr.name.to_text(), rr.rdtype) for rr in r.answer] == [
        ("chain1.example.test.", dns.rdatatype.CNAME),
        ("chain2.example.test.", dns.rdatatype.CNAME),
        ("www.example.test.", dns.rdatatype.CNAME),
        ("example.test.", dns.rdatatype.A),
    ]


async def test_cname_to_missing_name_is_nxdomain_with_the_cname(server: AuthServer) -> None:
    r = await ask(server, "dangling.example.test.", "TXT")
    assert r.rcode() == dns.rcode.NXDOMAIN
    assert [rr.rdtype for rr in r.answer] == [dns.rdatatype.CNAME]
    soa_of(r)


async def test_cname_out_of_zone_is_not_chased(server: AuthServer) -> None:
    r = await ask(server, "outside.example.test.", "A")
    assert r.rcode() == dns.rcode.NOERROR
    assert [rr.rdtype for rr in r.answer] == [dns.rdatatype.CNAME]
    assert r.authority == []


async def test_cname_loop_terminates(server: AuthServer) -> None:
    r = await ask(server, "loop1.example.test.", "A")
    assert [rr.name.to_text() for rr in r.answer] == ["loop1.example.test.", "loop2.example.test."]


async def test_referral_for_delegated_child(server: AuthServer) -> None:
    r = await ask(server, "_acme-challenge.www.sub.example.test.", "TXT")
    assert r.rcode() == dns.rcode.NOERROR
    assert not r.flags & dns.flags.AA
    assert r.answer == []
    ns = r.authority[0]
    assert ns.rdtype == dns.rdatatype.NS
    assert ns.name == dns.name.from_text("sub.example.test.")
    assert len(ns) == 2
    glue = {(rr.name.to_text(), rd.address) for rr in r.additional for rd in rr}
    assert glue == {("ns1.sub.example.test.", "127.0.0.53")}  # only in-zone targets get glue
    # NS at the cut is a referral too; DS at the cut is answered by the parent, authoritatively.
    assert not (await ask(server, "sub.example.test.", "NS")).flags & dns.flags.AA
    ds = await ask(server, "sub.example.test.", "DS")
    assert ds.flags & dns.flags.AA
    assert ds.answer[0].rdtype == dns.rdatatype.DS


async def test_refused_outside_all_zones(server: AuthServer) -> None:
    r = await ask(server, "example.org.", "A")
    assert r.rcode() == dns.rcode.REFUSED
    assert not r.flags & dns.flags.AA
    assert (await ask(server, "test.", "SOA")).rcode() == dns.rcode.REFUSED


async def test_closest_enclosing_zone_answers() -> None:
    child = zone_text("sub.example.test.", {"www": {"A": "192.0.2.77"}}, serial=7)
    async with AuthServer(allocate_loopback()[0], 0, {ORIGIN: ZONE, "sub.example.test.": child}) as s:
        r = await ask(s, "www.sub.example.test.", "A")
        assert r.flags & dns.flags.AA
        assert r.answer[0][0].address == "192.0.2.77"
        r = await ask(s, "nx.sub.example.test.", "A")
        assert r.rcode() == dns.rcode.NXDOMAIN
        assert soa_of(r).name == dns.name.from_text("sub.example.test.")
        # DS for the child apex comes from the parent zone (which holds it).
        r = await ask(s, "sub.example.test.", "DS")
        assert r.answer[0].rdtype == dns.rdatatype.DS
        # SOA at the child apex comes from the child.
        assert (await ask(s, "sub.example.test.", "SOA")).answer[0][0].serial == 7


async def test_wildcard_synthesis(server: AuthServer) -> None:
    r = await ask(server, "anything.wild.example.test.", "TXT")
    assert r.rcode() == dns.rcode.NOERROR
    assert r.flags & dns.flags.AA
    assert r.answer[0].name == dns.name.from_text("anything.wild.example.test.")
    assert r.answer[0][0].strings == (b"wildcard",)
    # deeper names are covered too (closest encloser is wild.example.test.)
    assert (await ask(server, "a.b.c.wild.example.test.", "A")).answer[0][0].address == "192.0.2.9"
    # wildcard without the type => NODATA
    r = await ask(server, "other.wild.example.test.", "MX")
    assert (r.rcode(), r.answer) == (dns.rcode.NOERROR, [])
    soa_of(r)
    # an existing name is not covered by the wildcard: NODATA for its missing types
    r = await ask(server, "x.wild.example.test.", "TXT")
    assert (r.rcode(), r.answer) == (dns.rcode.NOERROR, [])
    # below an existing name the closest encloser is that name, which has no wildcard: NXDOMAIN
    assert (await ask(server, "y.x.wild.example.test.", "TXT")).rcode() == dns.rcode.NXDOMAIN
    # the wildcard owner itself can be asked for literally
    assert (await ask(server, "*.wild.example.test.", "TXT")).answer[0][0].strings == (b"wildcard",)


async def test_dnssec_records_and_rrsig_with_do() -> None:
    sig = "A 13 2 300 20300101000000 20200101000000 12345 example.test. " + "AAAA" * 16
    text = zone_text(
        ORIGIN,
        {"@": {"DNSKEY": "257 3 13 " + "AAAA" * 22, "A": "192.0.2.1", "RRSIG": sig}},
    )
    async with AuthServer(allocate_loopback()[0], 0, {ORIGIN: text}) as s:
        r = await ask(s, ORIGIN, "DNSKEY")
        assert r.answer[0].rdtype == dns.rdatatype.DNSKEY
        r = await ask(s, ORIGIN, "A", do=True)
        assert r.ednsflags & dns.flags.DO
        assert {rr.rdtype for rr in r.answer} == {dns.rdatatype.A, dns.rdatatype.RRSIG}
        r = await ask(s, ORIGIN, "A")
        assert {rr.rdtype for rr in r.answer} == {dns.rdatatype.A}


# ================================================================================ EDNS, truncation, TCP


async def test_edns_is_echoed_with_payload_1232(server: AuthServer) -> None:
    r = await ask(server, ORIGIN, "A", payload=4096)
    assert r.edns == 0
    assert r.payload == 1232
    r = await ask(server, ORIGIN, "A", edns=False)
    assert r.edns == -1
    q = dns.message.make_query(ORIGIN, "A", use_edns=1)
    r = await dns.asyncquery.udp(q, server.address, port=server.port, timeout=2)
    assert r.rcode() == dns.rcode.BADVERS


async def test_long_txt_value_is_split_into_255_byte_strings(server: AuthServer) -> None:
    server.update_record("long.example.test.", "TXT", "v" * 600)
    r = await ask(server, "long.example.test.", "TXT")
    assert [len(part) for part in r.answer[0][0].strings] == [255, 255, 90]


async def test_large_answer_truncated_over_udp_and_complete_over_tcp() -> None:
    text = zone_text(ORIGIN, BIG_TXT)
    async with AuthServer(allocate_loopback()[0], 0, {ORIGIN: text}) as s:
        for kw in ({"edns": False}, {"payload": 1232}):
            r = await ask(s, "big.example.test.", "TXT", **kw)
            assert r.flags & dns.flags.TC, kw
            assert r.answer == []
        r = await ask(s, "big.example.test.", "TXT", payload=4096)  # fits the client's bigger buffer
        assert not r.flags & dns.flags.TC
        assert len(r.answer[0]) == 20
        r = await ask(s, "big.example.test.", "TXT", tcp=True)
        assert len(r.answer[0]) == 20

        s.reset_stats()
        q = make_query("big.example.test.", "TXT")
        r, used_tcp = await dns.asyncquery.udp_with_fallback(q, s.address, port=s.port, timeout=2)
        assert used_tcp
        assert len(r.answer[0]) == 20
        assert s.count("big.example.test.", "TXT", "udp") == 1
        assert s.count("big.example.test.", "TXT", "tcp") == 1


async def test_tcp_pipelined_queries_on_one_connection(server: AuthServer) -> None:
    reader, writer = await asyncio.open_connection(server.address, server.port)
    try:
        queries = [make_query(ORIGIN, t) for t in ("A", "TXT", "CAA")]
        for q in queries:
            wire = q.to_wire()
            writer.write(len(wire).to_bytes(2, "big") + wire)
        await writer.drain()
        ids = set()
        for _ in queries:
            size = int.from_bytes(await reader.readexactly(2), "big")
            ids.add(dns.message.from_wire(await reader.readexactly(size)).id)
        assert ids == {q.id for q in queries}
    finally:
        writer.close()


def _have_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _have_ipv6_loopback(), reason="no ::1 on this machine")
async def test_ipv6_loopback() -> None:
    async with AuthServer("::1", 0, {ORIGIN: ZONE}) as s:
        assert (await ask(s, ORIGIN, "A")).answer[0][0].address == "192.0.2.1"
        assert (await ask(s, ORIGIN, "A", tcp=True)).answer[0][0].address == "192.0.2.1"


def test_refuses_non_loopback_address() -> None:
    with pytest.raises(ValueError, match="loopback"):
        AuthServer("192.0.2.1")


async def test_stop_closes_sockets_and_port_can_be_reused() -> None:
    addr = allocate_loopback()[0]
    s = AuthServer(addr, 0, {ORIGIN: ZONE})
    await s.start()
    port = s.port
    # an open idle TCP connection must not keep stop() from finishing
    _reader, writer = await asyncio.open_connection(addr, port)
    await asyncio.wait_for(s.stop(), 2)
    with pytest.raises(OSError):
        await asyncio.open_connection(addr, port)
    writer.close()
    await s.start()  # restarts on the same port
    assert s.port == port
    assert (await ask(s, ORIGIN, "A")).rcode() == dns.rcode.NOERROR
    await s.stop()
    async with AuthServer(addr, port, {ORIGIN: ZONE}) as again:
        assert again.port == port
        assert (await ask(again, ORIGIN, "A", tcp=True)).rcode() == dns.rcode.NOERROR


# ================================================================================ runtime zone changes


async def test_update_and_remove_records_at_runtime(server: AuthServer) -> None:
    name = "_acme-challenge.example.test."
    server.update_record(name, "TXT", ["token-2", "token-3"])
    r = await ask(server, name, "TXT")
    assert sorted(rd.strings for rd in r.answer[0]) == [(b"token-2",), (b"token-3",)]
    assert r.answer[0].ttl == 60  # existing TTL kept
    assert server.serial(ORIGIN) == 2024010102
    server.add_record(name, "TXT", "token-4")
    assert len((await ask(server, name, "TXT")).answer[0]) == 3
    server.remove_record(name, "TXT", "token-2")
    assert len((await ask(server, name, "TXT")).answer[0]) == 2
    server.remove_record(name)
    assert (await ask(server, name, "TXT")).rcode() == dns.rcode.NXDOMAIN
    server.update_record("new.deep.example.test.", "A", "192.0.2.50", ttl=30, bump=False)
    assert (await ask(server, "deep.example.test.", "A")).rcode() == dns.rcode.NOERROR  # ENT now
    assert (await ask(server, "new.deep.example.test.", "A")).answer[0].ttl == 30
    assert server.bump_serial(ORIGIN, to=5) == 5
    assert soa_of(await ask(server, "nx.example.test.", "A"))[0].serial == 5


async def test_set_zone_replaces_and_remove_zone(server: AuthServer) -> None:
    server.set_zone(ORIGIN, zone_text(ORIGIN, {"@": {"A": "192.0.2.99"}}))
    assert (await ask(server, ORIGIN, "A")).answer[0][0].address == "192.0.2.99"
    server.remove_zone(ORIGIN)
    assert (await ask(server, ORIGIN, "A")).rcode() == dns.rcode.REFUSED


async def test_lab_shares_one_port_and_models_a_lagging_secondary(dns_lab: LabFactory) -> None:
    lab = await dns_lab({ORIGIN: ZONE}, n=3)
    assert len(set(lab.addresses)) == 3
    assert {s.port for s in lab.servers} == {lab.port}
    name = "_acme-challenge.example.test."
    lab.update_record(name, "TXT", "fresh-token", only=[0, 1])
    assert [s.serial(ORIGIN) for s in lab] == [2024010102, 2024010102, 2024010101]
    answers = [(await ask(s, name, "TXT")).answer[0][0].strings for s in lab]
    assert answers == [(b"fresh-token",), (b"fresh-token",), (b"token-1",)]
    serials = [soa_of(await ask(s, "nx.example.test.", "A"))[0].serial for s in lab]
    assert serials == [2024010102, 2024010102, 2024010101]
    # a different version of the zone given directly
    old = parse_zone(ORIGIN, ZONE)
    lab.set_zone(ORIGIN, old, only=[lab.primary])
    assert get_serial(lab.primary.zone(ORIGIN)) == 2024010101
    assert lab.primary.zone(ORIGIN) is not old  # servers keep their own copies


async def test_lab_with_nameserver_records_pointing_at_itself(dns_lab: LabFactory) -> None:
    addrs = allocate_loopback(3)
    text = zone_text(ORIGIN, {"@": {"A": "192.0.2.1"}}, nameservers=nameservers_for(ORIGIN, addrs))
    lab = await dns_lab({ORIGIN: text}, addresses=addrs)
    r = await ask(lab[2], ORIGIN, "NS")
    assert sorted(rd.target.to_text() for rd in r.answer[0]) == [f"ns{i}.example.test." for i in (1, 2, 3)]
    glue = {rr.name.to_text(): rr[0].address for rr in r.additional}
    assert glue == {f"ns{i + 1}.example.test.": addr for i, addr in enumerate(addrs)}
    v6 = zone_text(ORIGIN, nameservers={"ns1": ["::1", "127.0.0.1"], "ns.other.test.": []})
    assert "ns1.example.test. 300 IN AAAA ::1" in v6
    assert "@ 300 IN NS ns.other.test." in v6
    with pytest.raises(ValueError, match="out of zone"):
        zone_text(ORIGIN, nameservers={"ns.other.test.": "127.0.0.1"})


async def test_start_lab_on_fixed_addresses_and_port() -> None:
    addrs = allocate_loopback(2)
    lab = await start_lab({ORIGIN: ZONE}, addresses=addrs)
    try:
        async with await start_lab({ORIGIN: ZONE}, addresses=allocate_loopback(2), port=lab.port) as other:
            assert other.port == lab.port
            assert (await ask(other[1], ORIGIN, "A")).rcode() == dns.rcode.NOERROR
    finally:
        await lab.stop()
    assert lab.addresses == addrs


def test_allocate_loopback_gives_fresh_consecutive_addresses() -> None:
    a = allocate_loopback(5)
    b = allocate_loopback(5)
    assert not set(a) & set(b)
    assert all(x.startswith("127.") and not x.startswith("127.0.0.") for x in a + b)
    assert len({x.rsplit(".", 1)[0] for x in a}) == 1


# ================================================================================ faults


async def test_delay_does_not_block_other_queries_and_counts_in_flight(server: AuthServer) -> None:
    server.add_fault("delay", 0.3, qname="_acme-challenge.example.test.")
    start = time.monotonic()
    slow = [asyncio.create_task(ask(server, "_acme-challenge.example.test.", "TXT")) for _ in range(5)]
    fast = await ask(server, ORIGIN, "A")
    assert fast.rcode() == dns.rcode.NOERROR
    assert not any(task.done() for task in slow)  # the fast answer overtook the delayed ones
    await asyncio.gather(*slow)
    assert 0.3 <= time.monotonic() - start < 1.2  # in parallel, not 5 x 0.3 s
    assert server.max_in_flight == 5
    assert server.in_flight == 0


async def test_drop_never_answers(server: AuthServer) -> None:
    server.add_fault("drop")
    with pytest.raises(dns.exception.Timeout):
        await ask(server, ORIGIN, "A", timeout=0.2)
    with pytest.raises(dns.exception.Timeout):
        await ask(server, ORIGIN, "A", tcp=True, timeout=0.2)
    assert server.count(ORIGIN, "A") == 2


async def test_drop_udp_only_answers_over_tcp(server: AuthServer) -> None:
    server.add_fault("drop_udp_only")
    with pytest.raises(dns.exception.Timeout):
        await ask(server, ORIGIN, "A", timeout=0.2)
    assert (await ask(server, ORIGIN, "A", tcp=True)).answer


async def test_truncate_forces_tcp_fallback(server: AuthServer) -> None:
    server.add_fault("truncate")
    r = await ask(server, ORIGIN, "A")
    assert r.flags & dns.flags.TC
    assert r.answer == []
    r, used_tcp = await dns.asyncquery.udp_with_fallback(
        make_query(ORIGIN, "A"), server.address, port=server.port, timeout=2
    )
    assert used_tcp
    assert not r.flags & dns.flags.TC
    assert r.answer[0][0].address == "192.0.2.1"
    assert server.count(transport="tcp") == 1


@pytest.mark.parametrize(
    ("kind", "rcode"),
    [
        ("refuse", dns.rcode.REFUSED),
        ("servfail", dns.rcode.SERVFAIL),
        ("formerr", dns.rcode.FORMERR),
        ("notimp", dns.rcode.NOTIMP),
    ],
)
async def test_rcode_faults(server: AuthServer, kind: str, rcode: dns.rcode.Rcode) -> None:
    server.add_fault(kind)
    for tcp in (False, True):
        r = await ask(server, ORIGIN, "A", tcp=tcp)
        assert r.rcode() == rcode
        assert r.answer == []
        assert not r.flags & dns.flags.AA


async def test_notimp_for_one_qtype_only(server: AuthServer) -> None:
    server.add_fault("notimp", qtype="CAA")
    assert (await ask(server, ORIGIN, "CAA")).rcode() == dns.rcode.NOTIMP
    assert (await ask(server, ORIGIN, "TXT")).rcode() == dns.rcode.NOERROR


async def test_wrong_id_and_wrong_question_are_rejected_by_dnspython(server: AuthServer) -> None:
    with server.fault("wrong_id"):
        with pytest.raises(dns.query.BadResponse):
            await ask(server, ORIGIN, "A")
        with pytest.raises(dns.query.BadResponse):
            await ask(server, ORIGIN, "A", tcp=True)
    with server.fault("wrong_question"), pytest.raises(dns.query.BadResponse):
        await ask(server, ORIGIN, "A")
    assert server.faults == []


async def test_wrong_question_value(server: AuthServer) -> None:
    server.add_fault("wrong_question", "evil.test.")
    q = make_query(ORIGIN, "A")
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        await loop.sock_sendto(sock, q.to_wire(), server.endpoint)
        data = await asyncio.wait_for(loop.sock_recv(sock, 65535), 2)
    finally:
        sock.close()
    r = dns.message.from_wire(data)
    assert r.id == q.id
    assert r.question[0].name == dns.name.from_text("evil.test.")


async def test_malformed_reply_is_garbage(server: AuthServer) -> None:
    server.add_fault("malformed")
    with pytest.raises(dns.exception.DNSException):
        await ask(server, ORIGIN, "A")
    with pytest.raises(dns.exception.DNSException):
        await ask(server, ORIGIN, "A", tcp=True)


async def test_not_authoritative_and_upward_referral(server: AuthServer) -> None:
    with server.fault("not_authoritative"):
        r = await ask(server, ORIGIN, "A")
        assert r.answer
        assert not r.flags & dns.flags.AA
    with server.fault("upward_referral"):
        r = await ask(server, ORIGIN, "A")
        assert r.rcode() == dns.rcode.NOERROR
        assert r.answer == []
        assert not r.flags & dns.flags.AA
        assert r.authority[0].name == dns.name.root
        assert r.authority[0].rdtype == dns.rdatatype.NS


async def test_fault_restrictions_times_and_predicate(server: AuthServer) -> None:
    name = "_acme-challenge.example.test."
    server.add_fault("servfail", qname=name.upper(), times=2)
    assert (await ask(server, ORIGIN, "A")).rcode() == dns.rcode.NOERROR
    assert (await ask(server, name, "TXT")).rcode() == dns.rcode.SERVFAIL
    assert (await ask(server, name, "TXT")).rcode() == dns.rcode.SERVFAIL
    assert (await ask(server, name, "TXT")).rcode() == dns.rcode.NOERROR
    server.clear_faults()
    f = server.add_fault("refuse", qname="wild.example.test.", subtree=True, transport="tcp")
    assert (await ask(server, "x.wild.example.test.", "AAAA", tcp=True)).rcode() == dns.rcode.REFUSED
    assert (await ask(server, "x.wild.example.test.", "AAAA")).rcode() == dns.rcode.NOERROR
    assert f.hits == 1
    server.remove_fault(f)
    server.add_fault("refuse", predicate=lambda info: not info.message.flags & dns.flags.RD)
    assert (await ask(server, ORIGIN, "A")).rcode() == dns.rcode.REFUSED
    assert (await ask(server, ORIGIN, "A", rd=True)).rcode() == dns.rcode.NOERROR


async def test_unparsable_query_gets_formerr(server: AuthServer) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        await loop.sock_sendto(
            sock, b"\xab\xcd\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x05abc", server.endpoint
        )
        data = await asyncio.wait_for(loop.sock_recv(sock, 512), 2)
    finally:
        sock.close()
    r = dns.message.from_wire(data)
    assert r.id == 0xABCD
    assert r.rcode() == dns.rcode.FORMERR
    assert server.unparsable == 1


# ================================================================================ counters


async def test_query_records(server: AuthServer) -> None:
    await ask(server, "_acme-challenge.example.test.", "TXT", payload=1232)
    await ask(server, "_acme-challenge.example.test.", "TXT", tcp=True, edns=False, rd=True, cd=True)
    await ask(server, ORIGIN, "CAA", do=True)
    first, second, third = server.queries
    assert (first.transport, first.rd, first.edns, first.payload) == ("udp", False, 0, 1232)
    assert (second.transport, second.rd, second.cd, second.edns, second.payload) == ("tcp", True, True, -1, 0)
    assert third.do
    assert first.peer[0] == "127.0.0.1" or first.peer[0].startswith("127.")
    assert server.count("_ACME-challenge.example.test.", "TXT") == 2
    assert server.count(qtype="CAA") == 1
    assert server.count(transport="tcp") == 1
    assert first.qname_text == "_acme-challenge.example.test."
    server.reset_stats()
    assert server.count() == 0


# ================================================================================ caching resolver


async def test_resolver_answers_with_ra_and_forwards_with_rd0(
    dns_lab: LabFactory, caching_resolver: ResolverFactory
) -> None:
    lab = await dns_lab({ORIGIN: ZONE}, n=2)
    resolver = await caching_resolver(lab)
    r = await ask(resolver, "www.example.test.", "A", rd=True)
    assert r.flags & dns.flags.RA
    assert not r.flags & dns.flags.AA
    assert [rr.rdtype for rr in r.answer] == [dns.rdatatype.CNAME, dns.rdatatype.A]
    upstream = [q for s in lab for q in s.queries]
    assert len(upstream) == 1
    assert not upstream[0].rd
    assert upstream[0].payload == 1232
    assert resolver.count("www.example.test.", "A") == 1


async def test_resolver_positive_cache_keeps_old_value_until_ttl(
    dns_lab: LabFactory, caching_resolver: ResolverFactory, fake_clock: FakeClock
) -> None:
    lab = await dns_lab({ORIGIN: ZONE}, n=1)
    resolver = await caching_resolver(lab, clock=fake_clock)
    name = "_acme-challenge.example.test."
    r = await ask(resolver, name, "TXT", rd=True)
    assert (r.answer[0][0].strings, r.answer[0].ttl) == ((b"token-1",), 60)
    lab.update_record(name, "TXT", "token-2")
    fake_clock.advance(45)
    r = await ask(resolver, name, "TXT", rd=True)
    assert (r.answer[0][0].strings, r.answer[0].ttl) == ((b"token-1",), 15)  # old value, remaining TTL
    cached = resolver.cached(name, "TXT")
    assert cached is not None
    assert cached.ttl == 15
    assert lab.count(name, "TXT") == 1
    fake_clock.advance(15)
    r = await ask(resolver, name, "TXT", rd=True)
    assert (r.answer[0][0].strings, r.answer[0].ttl) == ((b"token-2",), 60)
    assert lab.count(name, "TXT") == 2


async def test_resolver_negative_cache_nxdomain(
    dns_lab: LabFactory, caching_resolver: ResolverFactory, fake_clock: FakeClock
) -> None:
    lab = await dns_lab({ORIGIN: ZONE}, n=3)
    resolver = await caching_resolver(lab, clock=fake_clock)
    name = "_acme-challenge.new.example.test."
    r = await ask(resolver, name, "TXT", rd=True)
    assert r.rcode() == dns.rcode.NXDOMAIN
    assert soa_of(r).ttl == 60  # min(SOA TTL 300, MINIMUM 60)
    lab.update_record(name, "TXT", "now-it-exists")
    fake_clock.advance(25)
    r = await ask(resolver, name, "TXT", rd=True)
    assert r.rcode() == dns.rcode.NXDOMAIN  # still cached
    assert soa_of(r).ttl == 35
    # NXDOMAIN covers every type of the name
    assert (await ask(resolver, name, "A", rd=True)).rcode() == dns.rcode.NXDOMAIN
    assert resolver.cached_negative(name) == (dns.rcode.NXDOMAIN, 35)
    fake_clock.advance(34)
    assert soa_of(await ask(resolver, name, "TXT", rd=True)).ttl == 1
    fake_clock.advance(1)
    r = await ask(resolver, name, "TXT", rd=True)
    assert r.rcode() == dns.rcode.NOERROR
    assert r.answer[0][0].strings == (b"now-it-exists",)
    assert lab.count(name) == 2


async def test_resolver_negative_ttl_is_soa_ttl_when_smaller(
    dns_lab: LabFactory, caching_resolver: ResolverFactory, fake_clock: FakeClock
) -> None:
    text = zone_text(ORIGIN, {"host": {"A": "192.0.2.5"}}, soa_ttl=30, minimum=3600)
    lab = await dns_lab({ORIGIN: text}, n=1)
    resolver = await caching_resolver(lab, clock=fake_clock)
    r = await ask(resolver, "host.example.test.", "TXT", rd=True)  # NODATA
    assert (r.rcode(), r.answer, soa_of(r).ttl) == (dns.rcode.NOERROR, [], 30)
    lab.update_record("host.example.test.", "TXT", "added")
    fake_clock.advance(10)
    r = await ask(resolver, "host.example.test.", "TXT", rd=True)
    assert (r.answer, soa_of(r).ttl) == ([], 20)
    assert resolver.cached_negative("host.example.test.", "TXT") == (dns.rcode.NOERROR, 20)
    # NODATA for TXT does not affect A
    assert (await ask(resolver, "host.example.test.", "A", rd=True)).answer
    fake_clock.advance(20)
    assert (await ask(resolver, "host.example.test.", "TXT", rd=True)).answer[0][0].strings == (b"added",)


async def test_resolver_follows_cname_across_zones(
    dns_lab: LabFactory, caching_resolver: ResolverFactory, fake_clock: FakeClock
) -> None:
    other = zone_text("other.test.", {"target": {"A": "192.0.2.200", "TXT": "delegated-token"}})
    lab_a = await dns_lab({ORIGIN: ZONE}, n=1)
    lab_b = await dns_lab({"other.test.": other}, n=2)
    resolver = await caching_resolver(lab_a, upstreams={"other.test.": lab_b.endpoints}, clock=fake_clock)
    r = await ask(resolver, "outside.example.test.", "A", rd=True)
    assert r.rcode() == dns.rcode.NOERROR
    assert [(rr.name.to_text(), rr.rdtype) for rr in r.answer] == [
        ("outside.example.test.", dns.rdatatype.CNAME),
        ("target.other.test.", dns.rdatatype.A),
    ]
    # the chain is cached in parts: the CNAME and the target
    fake_clock.advance(100)
    r = await ask(resolver, "outside.example.test.", "A", rd=True)
    assert [rr.ttl for rr in r.answer] == [200, 200]
    assert lab_a.count() + lab_b.count() == 2
    # a chain ending in NXDOMAIN in the other zone
    lab_a.update_record("outside.example.test.", "CNAME", "gone.other.test.", ttl=10)
    fake_clock.advance(300)
    r = await ask(resolver, "outside.example.test.", "A", rd=True)
    assert r.rcode() == dns.rcode.NXDOMAIN
    assert [rr.rdtype for rr in r.answer] == [dns.rdatatype.CNAME]
    assert soa_of(r).name == dns.name.from_text("other.test.")


async def test_resolver_cname_loop_is_servfail(
    dns_lab: LabFactory, caching_resolver: ResolverFactory
) -> None:
    zone_a = zone_text("a.test.", {"x": {"CNAME": "y.b.test."}})
    zone_b = zone_text("b.test.", {"y": {"CNAME": "x.a.test."}})
    lab = await dns_lab({"a.test.": zone_a, "b.test.": zone_b}, n=1)
    resolver = await caching_resolver(lab)
    assert (await ask(resolver, "x.a.test.", "A", rd=True)).rcode() == dns.rcode.SERVFAIL


async def test_resolver_follows_referral_with_loopback_glue(
    dns_lab: LabFactory, caching_resolver: ResolverFactory
) -> None:
    parent = await dns_lab({}, n=1)
    child_lab = await dns_lab(
        {"sub.example.test.": zone_text("sub.example.test.", {"www": {"A": "192.0.2.123"}})},
        n=1,
        port=parent.port,
    )
    parent.set_zone(
        ORIGIN,
        zone_text(ORIGIN, {"sub": {"NS": "ns.sub.example.test."}, "ns.sub": {"A": child_lab.addresses[0]}}),
    )
    resolver = await caching_resolver(parent)
    r = await ask(resolver, "www.sub.example.test.", "A", rd=True)
    assert r.answer[0][0].address == "192.0.2.123"
    assert child_lab.count("www.sub.example.test.") == 1


async def test_resolver_dnssec_bogus_needs_cd(dns_lab: LabFactory, caching_resolver: ResolverFactory) -> None:
    lab = await dns_lab({ORIGIN: ZONE}, n=1)
    name = "_acme-challenge.example.test."
    resolver = await caching_resolver(lab, dnssec_bogus_names=[name])
    assert (await ask(resolver, name, "TXT", rd=True)).rcode() == dns.rcode.SERVFAIL
    r = await ask(resolver, name, "TXT", rd=True, cd=True)
    assert r.rcode() == dns.rcode.NOERROR
    assert r.flags & dns.flags.CD
    assert r.answer[0][0].strings == (b"token-1",)
    assert (await ask(resolver, ORIGIN, "A", rd=True)).rcode() == dns.rcode.NOERROR
    # a bogus zone taints everything below it, including CNAME targets
    resolver.mark_bogus(ORIGIN, subtree=True)
    assert (await ask(resolver, "www.example.test.", "A", rd=True)).rcode() == dns.rcode.SERVFAIL
    assert (await ask(resolver, "www.example.test.", "A", rd=True, cd=True)).answer


async def test_resolver_servfail_mode_and_faults(
    dns_lab: LabFactory, caching_resolver: ResolverFactory
) -> None:
    lab = await dns_lab({ORIGIN: ZONE}, n=1)
    resolver = await caching_resolver(lab, servfail=True)
    assert (await ask(resolver, ORIGIN, "A", rd=True)).rcode() == dns.rcode.SERVFAIL
    assert lab.count() == 0
    resolver.servfail = False
    with resolver.fault("drop"), pytest.raises(dns.exception.Timeout):
        await ask(resolver, ORIGIN, "A", rd=True, timeout=0.2)
    with resolver.fault("delay", 0.2):
        start = time.monotonic()
        assert (await ask(resolver, ORIGIN, "A", rd=True)).answer
        assert time.monotonic() - start >= 0.2


async def test_resolver_servfail_when_upstreams_time_out_or_fail(
    dns_lab: LabFactory, caching_resolver: ResolverFactory
) -> None:
    lab = await dns_lab({ORIGIN: ZONE}, n=2)
    resolver = await caching_resolver(lab, upstream_timeout=0.2)
    lab.add_fault("drop")
    start = time.monotonic()
    r = await ask(resolver, ORIGIN, "A", rd=True)
    assert r.rcode() == dns.rcode.SERVFAIL
    assert time.monotonic() - start < 1.5
    assert lab[0].count() == 1
    assert lab[1].count() == 1
    # the first server REFUSES (lame), the second answers
    lab.clear_faults()
    lab[0].add_fault("refuse")
    assert (await ask(resolver, ORIGIN, "A", rd=True)).answer[0][0].address == "192.0.2.1"
    # both lame (one upward referral, one REFUSED): SERVFAIL
    lab[1].add_fault("upward_referral")
    assert (await ask(resolver, "v6.example.test.", "AAAA", rd=True)).rcode() == dns.rcode.SERVFAIL
    # no upstream mapped at all
    assert (await ask(resolver, "example.org.", "A", rd=True)).rcode() == dns.rcode.SERVFAIL


async def test_resolver_truncates_and_answers_over_tcp(
    dns_lab: LabFactory, caching_resolver: ResolverFactory
) -> None:
    lab = await dns_lab({ORIGIN: zone_text(ORIGIN, BIG_TXT)}, n=1)
    resolver = await caching_resolver(lab)
    r = await ask(resolver, "big.example.test.", "TXT", rd=True, edns=False)
    assert r.flags & dns.flags.TC
    r, used_tcp = await dns.asyncquery.udp_with_fallback(
        make_query("big.example.test.", "TXT", rd=True), resolver.address, port=resolver.port, timeout=2
    )
    assert used_tcp
    assert len(r.answer[0]) == 20
    assert lab.count(transport="tcp") == 1  # the resolver itself fell back to TCP upstream, once


async def test_resolver_seed_and_flush(caching_resolver: ResolverFactory, fake_clock: FakeClock) -> None:
    resolver = await caching_resolver(upstreams={}, clock=fake_clock)
    resolver.seed("seeded.example.test.", "TXT", "from-cache", ttl=100)
    resolver.seed_negative("gone.example.test.", ttl=50, zone=ORIGIN)
    resolver.seed_negative("seeded.example.test.", "A", ttl=40)
    r = await ask(resolver, "seeded.example.test.", "TXT", rd=True)
    assert (r.answer[0][0].strings, r.answer[0].ttl) == ((b"from-cache",), 100)
    r = await ask(resolver, "gone.example.test.", "TXT", rd=True)
    assert (r.rcode(), soa_of(r).ttl, soa_of(r).name.to_text()) == (dns.rcode.NXDOMAIN, 50, ORIGIN)
    assert (await ask(resolver, "seeded.example.test.", "A", rd=True)).rcode() == dns.rcode.NOERROR
    fake_clock.advance(10)
    assert resolver.cached("seeded.example.test.", "TXT").ttl == 90  # type: ignore[union-attr]
    resolver.flush("seeded.example.test.")
    assert resolver.cached("seeded.example.test.", "TXT") is None
    assert resolver.cached_negative("seeded.example.test.", "A") is None
    assert resolver.cached_negative("gone.example.test.") == (dns.rcode.NXDOMAIN, 40)
    resolver.flush()
    assert resolver.cached_negative("gone.example.test.") is None
    # nothing cached and no upstream: SERVFAIL
    assert (await ask(resolver, "gone.example.test.", "TXT", rd=True)).rcode() == dns.rcode.SERVFAIL


async def test_dnspython_stub_resolver_against_the_caching_resolver(
    dns_lab: LabFactory, caching_resolver: ResolverFactory
) -> None:
    """The way the checker will use it: a dnspython stub resolver pointed at the caching resolver."""
    lab = await dns_lab({ORIGIN: ZONE}, n=1)
    resolver = await caching_resolver(lab)
    stub = dns.asyncresolver.Resolver(configure=False)
    stub.nameservers = [resolver.address]
    stub.port = resolver.port
    stub.use_edns(0, 0, 1232)
    stub.lifetime = 2
    answer = await stub.resolve("www.example.test.", "A")
    assert [rd.address for rd in answer] == ["192.0.2.1"]
    assert answer.canonical_name == dns.name.from_text(ORIGIN)
    with pytest.raises(dns.resolver.NXDOMAIN):
        await stub.resolve("nope.example.test.", "TXT")
    with pytest.raises(dns.resolver.NoAnswer):
        await stub.resolve("a.b.example.test.", "TXT")
