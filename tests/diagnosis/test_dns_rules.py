"""The DNS diagnosis rules on recorded observations: no network, one row per failure mode."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.checks.caa import CaaLookup, CaaRecord
from bot.checks.dns import DnsEvidence, NameserverAddress, Probe
from bot.checks.dnsquery import QueryResult
from bot.diagnosis.dns import diagnose_dns
from bot.model import Diagnosis, Verdict
from bot.names import dns_request

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
TOKEN = "tok-2026-abc"
TARGET = "_dnsauth.example.com"
RECORDED = Path(__file__).parent / "recorded"


def auth(i: int, status: str = "answer", values: tuple[str, ...] = (TOKEN,), **kw: Any) -> QueryResult:
    fields: dict[str, Any] = {
        "server": f"192.0.2.{i}",
        "port": 53,
        "qname": kw.pop("qname", TARGET),
        "rtype": kw.pop("rtype", "TXT"),
        "status": status,
        "label": f"ns{i}.example.net",
        "values": list(values) if status == "answer" else [],
        "ttl": 300 if status == "answer" else None,
        "authoritative": kw.pop("aa", True),
        "soa_ttl": 3600 if status in {"nxdomain", "nodata"} else None,
        "soa_minimum": 600 if status in {"nxdomain", "nodata"} else None,
    }
    fields.update(kw)
    return QueryResult(**fields)


def serial(i: int, number: int) -> QueryResult:
    return QueryResult(
        server=f"192.0.2.{i}", port=53, qname="example.com", rtype="SOA", status="answer",
        label=f"ns{i}.example.net", soa_serial=number, soa_ttl=3600, soa_minimum=600, soa_refresh=7200,
        authoritative=True,
    )  # fmt: skip


def resolver(status: str = "answer", values: tuple[str, ...] = (TOKEN,), **kw: Any) -> QueryResult:
    return QueryResult(
        server="198.51.100.53", port=53, qname=TARGET, rtype="TXT", status=status, label="Public",
        values=list(values) if status == "answer" else [], **kw,
    )  # fmt: skip


def evidence(auths: list[QueryResult], serials: tuple[int, ...] | None = None, **kw: Any) -> DnsEvidence:
    numbers = serials or tuple(1 for _ in auths)
    return DnsEvidence(
        zone="example.com",
        nameservers=sorted({a.label for a in auths}),
        nameserver_addresses=[NameserverAddress(a.label, a.server) for a in auths],
        authoritative=auths,
        serials=[serial(int(a.server.rsplit(".", 1)[1]), n) for a, n in zip(auths, numbers, strict=True)],
        **kw,
    )


def judge(ev: DnsEvidence, **request_kw: Any) -> Diagnosis:
    value = request_kw.pop("value", TOKEN)
    return diagnose_dns(dns_request("example.com", value, **request_kw), ev, now=NOW)


CASES: list[tuple[str, DnsEvidence, dict[str, Any], Verdict, list[str]]] = [
    ("found everywhere", evidence([auth(1), auth(2)]), {}, Verdict.PASS, ["DNS_RECORD_FOUND"]),
    (
        "stale beside the right one",
        evidence([auth(1, values=(TOKEN, "old")), auth(2, values=(TOKEN, "old"))]),
        {}, Verdict.PASS, ["DNS_STALE_VALUES", "DNS_RECORD_FOUND"],
    ),
    ("missing, nxdomain", evidence([auth(1, "nxdomain"), auth(2, "nxdomain")]), {}, Verdict.FAIL,
     ["DNS_RECORD_MISSING"]),
    ("mismatch", evidence([auth(1, values=("other",)), auth(2, values=("other",))]), {}, Verdict.FAIL,
     ["DNS_VALUE_MISMATCH"]),
    ("format", evidence([auth(1, values=(f'"{TOKEN}"',))]), {}, Verdict.FAIL, ["DNS_VALUE_FORMAT"]),
    (
        "propagating: one secondary behind",
        evidence([auth(1), auth(2), auth(3, "nxdomain")], serials=(2, 2, 1)),
        {}, Verdict.PENDING, ["DNS_PROPAGATING"],
    ),
    (
        "negative cache at a resolver",
        evidence([auth(1), auth(2)], resolvers=[resolver("nxdomain", soa_ttl=420, soa_minimum=600)]),
        {}, Verdict.PENDING, ["DNS_CACHED_NEGATIVE", "DNS_RECORD_FOUND"],
    ),
    (
        "old value cached at a resolver",
        evidence([auth(1), auth(2)], resolvers=[resolver(values=("old",), ttl=120)]),
        {}, Verdict.PENDING, ["DNS_CACHED_STALE", "DNS_RECORD_FOUND"],
    ),
    (
        "one nameserver silent",
        evidence([auth(1), auth(2, "timeout", error="no answer within 2.0 s")]),
        {}, Verdict.FAIL, ["DNS_NS_TIMEOUT", "DNS_RECORD_FOUND"],
    ),
    ("one nameserver refuses", evidence([auth(1), auth(2, "refused")]), {}, Verdict.FAIL,
     ["DNS_NS_LAME", "DNS_RECORD_FOUND"]),
    ("not authoritative", evidence([auth(1), auth(2, aa=False)]), {}, Verdict.FAIL,
     ["DNS_NS_LAME", "DNS_RECORD_FOUND"]),
    (
        "doubled zone",
        evidence(
            [auth(1, "nxdomain")],
            probes=[Probe("doubled", auth(1, qname=f"{TARGET}.example.com"))],
        ),
        {}, Verdict.FAIL, ["DNS_ZONE_DOUBLED"],
    ),
    (
        "apex",
        evidence([auth(1, "nxdomain")], probes=[Probe("apex", auth(1, qname="example.com"))]),
        {}, Verdict.FAIL, ["DNS_WRONG_NAME"],
    ),
    (
        "wildcard zone does not fake a wrong name",
        evidence(
            [auth(1, "nodata")],
            probes=[Probe("apex", auth(1, qname="example.com"))],
            wildcard_control=auth(1, qname="_dcv-control-1.example.com"),
        ),
        {}, Verdict.FAIL, ["DNS_RECORD_MISSING"],
    ),
    (
        "cname dangling",
        evidence([auth(1, "cname", cname_chain=["x.other.net"])],
                 cname_target=QueryResult("r", 53, "x.other.net", "TXT", "nxdomain")),
        {}, Verdict.FAIL, ["DNS_CNAME_BROKEN"],
    ),
    (
        "cname followed to the value",
        evidence([auth(1, "cname", cname_chain=["x.other.net"])],
                 cname_target=QueryResult("r", 53, "x.other.net", "TXT", "answer", values=[TOKEN])),
        {}, Verdict.PASS, ["DNS_RECORD_FOUND"],
    ),
    (
        "servfail at resolver",
        evidence([auth(1)], resolvers=[resolver("servfail")]),
        {}, Verdict.FAIL, ["DNS_SERVFAIL", "DNS_RECORD_FOUND"],
    ),
    (
        "dnssec bogus",
        evidence([auth(1)], resolvers=[resolver("servfail", error="EDE 6: signature expired")],
                 resolvers_unchecked=[resolver()]),
        {}, Verdict.FAIL, ["DNSSEC_BOGUS", "DNS_RECORD_FOUND"],
    ),
    (
        "caa forbids",
        evidence([auth(1)], caa=CaaLookup("example.com", [CaaRecord(0, "issue", "digicert.com")])),
        {"ca": "letsencrypt"}, Verdict.FAIL, ["CAA_FORBIDS", "DNS_RECORD_FOUND"],
    ),
    (
        "caa lookup error blocks",
        evidence([auth(1)], caa=CaaLookup(error="servfail", error_at="example.com")),
        {"ca": "letsencrypt"}, Verdict.FAIL, ["CAA_FORBIDS", "DNS_RECORD_FOUND"],
    ),
    (
        "caa allows",
        evidence(
            [auth(1)],
            caa=CaaLookup("example.com", [CaaRecord(0, "issue", "letsencrypt.org; accounturi=x")]),
        ),
        {"ca": "letsencrypt"}, Verdict.PASS, ["DNS_RECORD_FOUND"],
    ),
    (
        "caa empty issuer forbids all",
        evidence([auth(1)], caa=CaaLookup("example.com", [CaaRecord(0, "issue", ";")])),
        {"ca": "digicert"}, Verdict.FAIL, ["CAA_FORBIDS", "DNS_RECORD_FOUND"],
    ),
    ("own resolvers down", DnsEvidence(resolver_failure="the configured resolvers did not answer (timeout)"),
     {}, Verdict.FAIL, ["RESOLVER_UNREACHABLE"]),
    ("zone not found", DnsEvidence(zone_failure="the resolvers could not find the zone (servfail)"),
     {}, Verdict.FAIL, ["DNS_UNRESOLVABLE"]),
    ("registry answers", DnsEvidence(zone="com"), {}, Verdict.FAIL, ["DNS_UNRESOLVABLE"]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "ev", "request_kw", "verdict", "expected_codes"), CASES, ids=[c[0] for c in CASES]
)
def test_rules(
    case: str, ev: DnsEvidence, request_kw: dict[str, Any], verdict: Verdict, expected_codes: list[str]
) -> None:
    diagnosis = judge(ev, **request_kw)
    assert diagnosis.verdict is verdict, diagnosis.summary
    assert diagnosis.codes() == expected_codes
    for item in diagnosis.problems:
        assert item.remedy and "{" not in item.remedy, (item.code, item.remedy)


def test_negative_cache_retry_after_is_the_remaining_negative_ttl() -> None:
    ev = evidence([auth(1)], resolvers=[resolver("nxdomain", soa_ttl=420, soa_minimum=600)])
    diagnosis = judge(ev)
    assert diagnosis.retry_after == 420
    assert "12:07:00 UTC" in (diagnosis.findings[0].remedy or "")


def test_propagation_names_the_server_behind_and_the_serials() -> None:
    ev = evidence([auth(1), auth(2), auth(3, "nxdomain")], serials=(7, 7, 6))
    finding = judge(ev).findings[0]
    assert "ns3.example.net (192.0.2.3)" in finding.message
    assert "serial 6" in (finding.remedy or "") and "serial 7" in (finding.remedy or "")


def test_wildcard_uses_issuewild() -> None:
    caa = CaaLookup("example.com", [CaaRecord(0, "issue", "letsencrypt.org"), CaaRecord(0, "issuewild", ";")])
    assert judge(evidence([auth(1)], caa=caa), ca="letsencrypt").verdict is Verdict.PASS
    wildcard = diagnose_dns(
        dns_request("*.example.com", TOKEN, ca="letsencrypt"), evidence([auth(1)], caa=caa)
    )
    assert "CAA_FORBIDS" in wildcard.codes()


def test_critical_unknown_caa_property_forbids() -> None:
    caa = CaaLookup("example.com", [CaaRecord(0, "issue", "letsencrypt.org"), CaaRecord(128, "tbs", "x")])
    assert "CAA_FORBIDS" in judge(evidence([auth(1)], caa=caa), ca="letsencrypt").codes()


def test_evidence_and_diagnosis_round_trip_through_json() -> None:
    ev = evidence(
        [auth(1), auth(2, "nxdomain")],
        serials=(2, 1),
        resolvers=[resolver("nxdomain", soa_ttl=100, soa_minimum=600)],
        probes=[Probe("apex", auth(1, qname="example.com"))],
        caa=CaaLookup("example.com", [CaaRecord(0, "issue", "x.example")]),
    )
    again = DnsEvidence.from_dict(json.loads(json.dumps(ev.to_dict())))
    assert again == ev
    diagnosis = judge(ev)
    assert Diagnosis.from_dict(json.loads(json.dumps(diagnosis.to_dict()))).to_dict() == diagnosis.to_dict()


@pytest.mark.parametrize("path", sorted(RECORDED.glob("*.json")), ids=lambda p: p.stem)
def test_recorded_observations(path: Path) -> None:
    """Evidence recorded from real servers (the loopback lab), judged again without the network."""
    data = json.loads(path.read_text())
    request = dns_request(data["domain"], data["value"], **data.get("options", {}))
    diagnosis = diagnose_dns(request, DnsEvidence.from_dict(data["evidence"]), now=NOW)
    assert diagnosis.verdict.value == data["verdict"]
    assert diagnosis.codes() == data["codes"]
