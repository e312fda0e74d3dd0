"""Faults that need real networking: packet loss and blocked TCP (iptables inside a network namespace we
create), truncation by a real server, an HTTP server that drips or never ends. The checker must survive,
report, and finish by its deadline (``DCV_TIMEOUT``) plus process start-up.

The DNS fault tests start a second copy of the DNS lab inside a fresh namespace (same addresses, no route
out) and run ``dcv`` there with ``ip netns exec``, so their iptables rules touch nothing else.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from . import zones
from .dnslab import DnsLab
from .lab import DcvResult, Lab
from .netns import Firewall, Netns
from .web import CONTENT

pytestmark = pytest.mark.realservers

DEADLINE = 5
GRACE = 4  # interpreter start-up and output, on a loaded 2-core machine


@pytest.fixture
def nslab(netns: Netns) -> Iterator[tuple[DnsLab, Netns]]:
    root = Path(tempfile.mkdtemp(prefix="dcvns-", dir="/tmp"))
    dns_lab = DnsLab(root, netns=netns.name, call=netns.call)
    try:
        dns_lab.start()  # stops what it started if it fails
        yield dns_lab, netns
    finally:
        dns_lab.stop()
        shutil.rmtree(root, ignore_errors=True)


def run_in(lab: Lab, ns: Netns, *args: str) -> DcvResult:
    r = lab.dcv(*args, env=lab.env(DCV_TIMEOUT=str(DEADLINE)), netns=ns.name)
    assert r.elapsed < DEADLINE + GRACE, f"ran past its deadline\n{r.explain()}"
    assert r.data.get("schema") == "dcv.diagnosis/1", r.explain()
    assert r.verdict in ("pass", "pending", "fail"), r.explain()
    return r


def test_packet_loss_to_the_nameservers(lab: Lab, nslab: tuple[DnsLab, Netns]) -> None:
    _, ns = nslab
    fw = Firewall(ns.name)
    for address in (zones.NS1, zones.NS2):
        fw.add(
            "INPUT", "-d", address, "-p", "udp", "--dport", "53",
            "-m", "statistic", "--mode", "random", "--probability", "0.4", "-j", "DROP",
        )  # fmt: skip
    r = run_in(lab, ns, "dns", "ok.example.lab", "v-ok")
    # whatever got through must be reported truthfully: a value seen is "v-ok", never another
    for o in r.observations("authoritative"):
        assert o["status"] in ("answer", "timeout"), r.explain()
        if o["status"] == "answer":
            assert o["values"] == ["v-ok"], r.explain()
    if r.verdict != "pass":
        assert "DNS_NS_TIMEOUT" in r.codes or "DNS_SERVFAIL" in r.codes, r.explain()


def test_every_query_dropped(lab: Lab, nslab: tuple[DnsLab, Netns]) -> None:
    _, ns = nslab
    fw = Firewall(ns.name)
    for address in (zones.NS1, zones.NS2):
        fw.add("INPUT", "-d", address, "-j", "DROP")
    r = run_in(lab, ns, "dns", "ok.example.lab", "v-ok")
    assert r.verdict != "pass", r.explain()
    assert "DNS_RECORD_MISSING" not in r.codes, f"silence is not absence\n{r.explain()}"


BIG = [f"filler-{i:02d}-" + "x" * 180 for i in range(10)]


def test_truncated_udp_answer_is_retried_over_tcp(lab: Lab, nslab: tuple[DnsLab, Netns]) -> None:
    dns_lab, ns = nslab
    name = "_dnsauth.big.dyn.lab"
    dns_lab.set_txt(name, *BIG, "v-big")
    udp = ns.call(_udp_only, zones.NS1, name)
    assert udp, "the lab's answer should be truncated over UDP"
    r = run_in(lab, ns, "dns", "big.dyn.lab", "v-big")
    assert r.verdict == "pass", r.explain()
    assert "DNS_STALE_VALUES" in r.codes, r.explain()


def test_truncated_udp_answer_with_tcp_blocked(lab: Lab, nslab: tuple[DnsLab, Netns]) -> None:
    dns_lab, ns = nslab
    name = "_dnsauth.big.dyn.lab"
    dns_lab.set_txt(name, *BIG, "v-big")
    fw = Firewall(ns.name)
    for address in (zones.NS1, zones.NS2):
        fw.add("INPUT", "-d", address, "-p", "tcp", "--dport", "53", "-j", "DROP")
    r = run_in(lab, ns, "dns", "big.dyn.lab", "v-big")
    assert r.verdict != "pass", r.explain()
    assert "DNS_RECORD_MISSING" not in r.codes, f"a truncated answer is not an empty one\n{r.explain()}"


def _udp_only(address: str, name: str) -> bool:
    import dns.flags
    import dns.message
    import dns.query

    msg = dns.message.make_query(name, "TXT", use_edns=0, payload=1232)
    msg.flags &= ~dns.flags.RD
    answer = dns.query.udp(msg, address, timeout=1)
    return bool(answer.flags & dns.flags.TC)


def test_http_server_that_drips_one_byte_a_second(lab: Lab) -> None:
    """nginx ``limit_rate 1``: the TLS handshake is quick, then the response comes a byte a second."""
    r = lab.dcv("file", "drip.example.lab", CONTENT["drip"], env=lab.env(DCV_TIMEOUT=str(DEADLINE)))
    assert r.elapsed < DEADLINE + GRACE, r.explain()
    assert r.data.get("schema") == "dcv.diagnosis/1", r.explain()
    assert r.verdict == "fail", r.explain()
    assert "HTTP_TIMEOUT" in r.codes, r.explain()
    # the handshake is not what is slow: a TLS error would send the user to the wrong place
    assert "HTTP_TLS_ERROR" not in r.codes, r.explain()


def test_http_body_that_never_finishes(lab: Lab) -> None:
    """Headers and the value arrive at once, then the body drips: the check still ends by its deadline."""
    r = lab.dcv("file", "slowbody.example.lab", CONTENT["slowbody"], env=lab.env(DCV_TIMEOUT=str(DEADLINE)))
    assert r.elapsed < DEADLINE + GRACE, r.explain()
    assert r.verdict != "pass", r.explain()
    assert "HTTP_TLS_ERROR" not in r.codes, r.explain()


def test_http_endless_body(lab: Lab) -> None:
    r = lab.dcv("file", "huge.example.lab", CONTENT["huge"], env=lab.env(DCV_TIMEOUT=str(DEADLINE)))
    assert r.elapsed < DEADLINE + GRACE, r.explain()
    assert "HTTP_TOO_LARGE" in r.codes, r.explain()
