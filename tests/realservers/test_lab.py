"""The lab itself works, checked without dcv: delegation, transfers, caching, DNSSEC, nginx, faults.

If one of these fails, the scenario tests' failures say nothing about dcv.
"""

from __future__ import annotations

import http.client
import socket
import ssl

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from . import zones
from .dnslab import query, txt_values
from .lab import Lab
from .web import FILE_PATH, SERVED

pytestmark = pytest.mark.realservers


def test_lab_starts_in_seconds(lab: Lab) -> None:
    assert lab.startup_seconds < 10


def test_delegation_resolves_through_the_hierarchy(lab: Lab) -> None:
    name = "_dnsauth.ok.example.lab"
    for resolver in (zones.RESOLVER, zones.VALIDATOR):
        msg = lab.dns.resolve(name, resolver=resolver)
        assert msg.rcode() == dns.rcode.NOERROR
        assert txt_values(msg, name) == ["v-ok"]
    # the registry (root + lab. on one NSD) refers to ns1/ns2
    referral = lab.dns.query(zones.ROOT, name, "TXT")
    assert not referral.flags & dns.flags.AA
    assert {str(r.name) for r in referral.authority} == {"example.lab."}
    assert {str(r.target) for r in referral.authority[0]} == {"ns1.dns.lab.", "ns2.dns.lab."}
    for ns in (zones.NS1, zones.NS2):
        msg = lab.dns.query(ns, name, "TXT")
        assert msg.flags & dns.flags.AA
        assert txt_values(msg, name) == ["v-ok"]
    assert lab.dns.resolve("nowhere.lab", "SOA").rcode() == dns.rcode.NXDOMAIN


def test_primary_and_secondary_are_different_software(lab: Lab) -> None:
    def version(address: str) -> str:
        msg = dns.message.make_query("version.bind", "TXT", "CH")
        answer = dns.query.udp(msg, address, timeout=1)
        return " ".join(b"".join(r.strings).decode() for r in answer.answer[0])

    assert "Knot DNS" in version(zones.NS1)
    assert "NSD" in version(zones.NS2)
    for ns in (zones.NS1, zones.NS2):
        assert lab.dns.query(ns, "example.lab", "SOA").flags & dns.flags.AA


def test_secondary_follows_primary_by_notify_and_ixfr(lab: Lab, unique: str) -> None:
    name = f"_dnsauth.{unique}.dyn.lab"
    serial = lab.dns.set_txt(name, "first")  # waits for ns2
    assert lab.dns.serial(zones.NS2, "dyn.lab") == serial
    assert txt_values(lab.dns.query(zones.NS2, name, "TXT"), name) == ["first"]


def test_held_secondary_lags_then_catches_up(lab: Lab, unique: str) -> None:
    name = f"_dnsauth.{unique}.dyn.lab"
    before = lab.dns.serial(zones.NS2, "dyn.lab")
    with lab.dns.secondary_held():
        serial = lab.dns.set_txt(name, "lagging")
        assert serial > (before or 0)
        assert txt_values(lab.dns.query(zones.NS1, name, "TXT"), name) == ["lagging"]
        # NOTIFY has gone out; give NSD a fair chance to (fail to) refresh
        with pytest.raises(TimeoutError):
            lab.dns.wait_serial(zones.NS2, "dyn.lab", serial, timeout=1.5)
        assert lab.dns.query(zones.NS2, name, "TXT").rcode() == dns.rcode.NXDOMAIN
    assert lab.dns.serial(zones.NS2, "dyn.lab") == serial
    assert txt_values(lab.dns.query(zones.NS2, name, "TXT"), name) == ["lagging"]


def test_resolver_caches_nxdomain_for_the_negative_ttl(lab: Lab, unique: str) -> None:
    name = f"_dnsauth.{unique}.dyn.lab"
    for msg in lab.dns.prime(name):
        assert msg.rcode() == dns.rcode.NXDOMAIN
        soa = [r for r in msg.authority if r.rdtype == dns.rdatatype.SOA]
        assert soa and 0 < soa[0].ttl <= zones.NEGATIVE_TTL
    lab.dns.set_txt(name, "now-here")
    for resolver in (zones.RESOLVER, zones.VALIDATOR):
        assert lab.dns.resolve(name, resolver=resolver).rcode() == dns.rcode.NXDOMAIN  # still cached
    lab.dns.flush("dyn.lab")
    for resolver in (zones.RESOLVER, zones.VALIDATOR):
        assert txt_values(lab.dns.resolve(name, resolver=resolver), name) == ["now-here"]


def test_resolver_keeps_a_changed_value_for_its_ttl(lab: Lab, unique: str) -> None:
    name = f"_dnsauth.{unique}.dyn.lab"
    lab.dns.set_txt(name, "old-value")
    for msg in lab.dns.prime(name):
        assert txt_values(msg, name) == ["old-value"]
    lab.dns.set_txt(name, "new-value")
    msg = lab.dns.resolve(name)
    assert txt_values(msg, name) == ["old-value"]
    assert 0 < msg.answer[0].ttl <= zones.DYN_RECORD_TTL
    lab.dns.flush("dyn.lab")
    assert txt_values(lab.dns.resolve(name), name) == ["new-value"]


def test_lame_server_refuses_and_dead_server_is_silent(lab: Lab) -> None:
    assert lab.dns.query(zones.LAME, "lame.lab", "SOA").rcode() == dns.rcode.REFUSED
    with pytest.raises(dns.exception.Timeout):
        query(zones.DEAD, "drop.lab", "SOA", timeout=0.5)
    # the resolvers still find the records through the working server
    assert txt_values(lab.dns.resolve("_dnsauth.lame.lab"), "_dnsauth.lame.lab") == ["v-lame"]


def test_dnssec_zone_has_a_bogus_signature_and_a_good_one(lab: Lab) -> None:
    bogus, good = "_dnsauth.signed.lab", "_dnsauth.good.signed.lab"
    assert lab.dns.resolve(bogus, resolver=zones.VALIDATOR).rcode() == dns.rcode.SERVFAIL
    unchecked = lab.dns.resolve(bogus, resolver=zones.VALIDATOR, cd=True)
    assert txt_values(unchecked, bogus) == ["v-bogus"]
    secure = lab.dns.resolve(good, resolver=zones.VALIDATOR, dnssec=True)
    assert txt_values(secure, good) == ["v-good"]
    assert secure.flags & dns.flags.AD
    # the non-validating resolver does not care
    assert txt_values(lab.dns.resolve(bogus), bogus) == ["v-bogus"]
    # both authoritative servers serve the signed zone (NSD got it by AXFR)
    for ns in (zones.NS1, zones.NS2):
        msg = lab.dns.query(ns, bogus, "TXT", dnssec=True)
        assert any(r.rdtype == dns.rdatatype.RRSIG for r in msg.answer)


def test_cname_chain_and_caa(lab: Lab) -> None:
    msg = lab.dns.resolve("_dnsauth.chain.example.lab")
    assert txt_values(msg, "hop2.other.lab") == ["v-chain"]
    msg = lab.dns.resolve("caa.example.lab", "CAA")
    assert [r.to_text() for r in msg.answer[0]] == ['0 issue "digicert.com"']
    assert lab.dns.resolve("_dnsauth.cnloop.example.lab").rcode() in (dns.rcode.SERVFAIL, dns.rcode.NOERROR)


def test_nsd_follows_cnames_into_zones_it_serves_knot_does_not(lab: Lab) -> None:
    nsd = lab.dns.query(zones.NS2, "_dnsauth.dangle.nsd.lab", "TXT")
    assert nsd.rcode() == dns.rcode.NXDOMAIN
    assert [r.rdtype for r in nsd.answer] == [dns.rdatatype.CNAME]
    knot = lab.dns.query(zones.NS1, "_dnsauth.dangling.example.lab", "TXT")
    assert knot.rcode() == dns.rcode.NOERROR
    assert [r.rdtype for r in knot.answer] == [dns.rdatatype.CNAME]


def _get(
    address: str,
    host: str,
    *,
    tls: bool = False,
    path: str = FILE_PATH,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    if tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(address, 443, timeout=3, context=ctx)
    else:
        conn = http.client.HTTPConnection(address, 80, timeout=3)
    try:
        conn.request("GET", path, headers={"Host": host, **(headers or {})})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read(4096)
    finally:
        conn.close()


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
def test_nginx_scenarios(lab: Lab, tls: bool) -> None:
    for host in ("found", "wrong", "bom", "crlf", "spaces"):
        status, _, body = _get(zones.WEB, f"{host}.example.lab", tls=tls)
        assert (status, body) == (200, SERVED[host]), host
    assert _get(zones.WEB, "missing.example.lab", tls=tls)[0] == 404
    assert _get(zones.WEB, "forbidden.example.lab", tls=tls)[0] == 403
    status, headers, body = _get(zones.WEB, "spa.example.lab", tls=tls)
    assert status == 200 and headers["content-type"].startswith("text/html") and b"<html>" in body
    status, headers, _ = _get(zones.WEB, "moved.example.lab", tls=tls)
    assert status == 302 and headers["location"] == f"http://found.example.lab{FILE_PATH}"
    status, headers, _ = _get(zones.WEB, "loop.example.lab", tls=tls)
    assert status == 301 and headers["location"] == f"http://loop.example.lab{FILE_PATH}"
    assert _get(zones.WEB, "lb.example.lab", tls=tls)[0] == 200
    assert _get(zones.WEB2, "lb.example.lab", tls=tls)[0] == 404
    status, headers, _ = _get(zones.WEB, "huge.example.lab", tls=tls)
    assert status == 200 and int(headers["content-length"]) > 10_000_000


def test_nginx_redirects_http_to_https(lab: Lab) -> None:
    status, headers, _ = _get(zones.WEB, "tohttps.example.lab")
    assert status == 301 and headers["location"] == f"https://tohttps.example.lab{FILE_PATH}"
    assert _get(zones.WEB, "tohttps.example.lab", tls=True)[2] == SERVED["tohttps"]


def test_nginx_gzip_and_plain_http_on_443(lab: Lab) -> None:
    status, headers, body = _get(zones.WEB, "gzip.example.lab", headers={"Accept-Encoding": "gzip"})
    assert status == 200 and headers.get("content-encoding") == "gzip" and body != SERVED["gzip"]
    assert _get(zones.WEB, "gzip.example.lab")[2] == SERVED["gzip"]
    with pytest.raises(ssl.SSLError):
        _get(zones.WEB3, "tlsbroken.example.lab", tls=True)
    assert _get(zones.WEB3, "tlsbroken.example.lab")[2] == SERVED["tlsbroken"]


def test_closed_port_refuses_and_filtered_port_times_out(lab: Lab) -> None:
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((zones.CLOSED, 80), timeout=2).close()
    with pytest.raises(TimeoutError):
        socket.create_connection((zones.FILTERED, 443), timeout=0.5).close()


def test_web_hosts_resolve_to_the_lab(lab: Lab) -> None:
    msg = lab.dns.resolve("lb.example.lab", "A")
    assert sorted(r.address for r in msg.answer[0]) == [zones.WEB, zones.WEB2]


def test_netns_is_isolated_and_loss_rule_applies(netns) -> None:
    from .netns import Firewall

    def udp_roundtrips(n: int) -> int:
        got = 0
        with (
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server,
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client,
        ):
            server.bind(("127.53.200.1", 5300))
            client.settimeout(0.02)
            for i in range(n):
                client.sendto(b"%d" % i, ("127.53.200.1", 5300))
                data, peer = server.recvfrom(64)  # may block forever if dropped -> use select
                server.sendto(data, peer)
                try:
                    client.recvfrom(64)
                    got += 1
                except TimeoutError:
                    pass
        return got

    # no route out of the namespace
    def no_route() -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.connect(("192.0.2.1", 53))
            except OSError:
                return True
        return False

    assert netns.call(no_route)
    fw = Firewall(netns.name)
    loss = "-p udp --sport 5300 -m statistic --mode random --probability 0.5 -j DROP"
    fw.add("INPUT", *loss.split())
    try:
        got = netns.call(udp_roundtrips, 100)
    finally:
        fw.clear()
    assert 20 < got < 80  # about half of the replies dropped
