"""``dcv dns`` against real Knot, NSD and Unbound: every scenario of issue 5, end to end.

Each test runs the real command (``python -m bot dns ... --json``) with the lab's environment and
asserts the verdict, the finding codes and, where it matters, ``retry_after`` and the exit status.
Static scenarios live in example.lab/other.lab/signed.lab (see zones.py); tests that change records
use fresh names in dyn.lab, so no test inherits another's cache.
"""

from __future__ import annotations

import json

import pytest

from . import zones
from .dnslab import txt_values
from .lab import DcvResult, Lab

pytestmark = pytest.mark.realservers

EXIT = {"pass": 0, "fail": 1, "pending": 3}


def expect(result: DcvResult, verdict: str, *codes: str, absent: tuple[str, ...] = ()) -> None:
    """Assert the verdict, the exit status that goes with it, and that ``codes`` are among the findings."""
    why = result.explain()
    assert result.data.get("schema") == "dcv.diagnosis/1", why
    assert result.verdict == verdict, why
    assert result.returncode == EXIT[verdict], why
    for code in codes:
        assert code in result.codes, f"{code} missing\n{why}"
    for code in absent:
        assert code not in result.codes, f"{code} should not be reported\n{why}"
    for finding in result.data.get("findings", []):
        if finding.get("severity") in ("error", "warning"):
            assert finding.get("remedy"), f"{finding['code']} has no remedy\n{why}"


def mentions(result: DcvResult, code: str, text: str) -> bool:
    finding = result.finding(code)
    return text in json.dumps(finding)


def authoritative(result: DcvResult, address: str) -> list[dict]:
    return [o for o in result.observations("authoritative") if o.get("address") == address]


# -- the record is there -------------------------------------------------------------------------------


def test_record_visible_everywhere(lab: Lab) -> None:
    r = lab.dcv("dns", "ok.example.lab", "v-ok")
    expect(r, "pass", "DNS_RECORD_FOUND")
    assert r.data["domain"] == "ok.example.lab"
    assert r.data["target"] == "_dnsauth.ok.example.lab"
    assert r.data["retry_after"] is None, r.explain()
    # both real nameservers were asked, and both answered with the value
    for ns in (zones.NS1, zones.NS2):
        seen = authoritative(r, ns)
        assert seen, f"no observation of {ns}\n{r.explain()}"
        assert all(o["status"] == "answer" and "v-ok" in o["values"] for o in seen), r.explain()
        assert any(o.get("serial") for o in seen), r.explain()
    resolvers = {o["address"] for o in r.observations("resolver")}
    assert {zones.RESOLVER, zones.VALIDATOR} <= resolvers, r.explain()


@pytest.mark.parametrize("domain", ["*.ok.example.lab", "OK.Example.LAB.", "ok.example.lab."])
def test_domain_as_typed_by_a_user(lab: Lab, domain: str) -> None:
    r = lab.dcv("dns", domain, "v-ok")
    expect(r, "pass", "DNS_RECORD_FOUND")
    assert r.data["domain"] == "ok.example.lab", r.explain()


def test_name_option_relative_and_absolute(lab: Lab) -> None:
    expect(lab.dcv("dns", "prefix.example.lab", "v-prefix", "--name", "_acme-challenge"), "pass")
    expect(lab.dcv("dns", "example.lab", "v-ok", "--name", "_dnsauth.ok.example.lab."), "pass")


def test_unicode_domain(lab: Lab) -> None:
    r = lab.dcv("dns", "bücher.example.lab", "v-idn")
    expect(r, "pass", "DNS_RECORD_FOUND")
    assert r.data["domain"] == "xn--bcher-kva.example.lab", r.explain()


def test_name_at_the_domain_itself(lab: Lab) -> None:
    expect(lab.dcv("dns", "wrongname.example.lab", "v-wrongname", "--name", "@"), "pass", "DNS_RECORD_FOUND")


def test_value_split_into_several_strings(lab: Lab, unique: str) -> None:
    """TXT strings are at most 255 bytes; a longer value is served as several, which a CA concatenates."""
    value = "v-long-" + "0123456789abcdef" * 20
    name = f"_dnsauth.{unique}.dyn.lab"
    lab.dns.edit("dyn.lab", add=[(name, "TXT", f'"{value[:200]}" "{value[200:]}"')])
    assert len(lab.dns.query(zones.NS1, name, "TXT").answer[0][0].strings) == 2
    r = lab.dcv("dns", f"{unique}.dyn.lab", value)
    expect(r, "pass", "DNS_RECORD_FOUND", absent=("DNS_VALUE_MISMATCH", "DNS_VALUE_FORMAT"))


def test_child_zone_on_fewer_servers(lab: Lab) -> None:
    """sub.example.lab is its own zone on ns1 only; ns2 (example.lab's secondary) just delegates it."""
    r = lab.dcv("dns", "sub.example.lab", "v-sub")
    expect(r, "pass", "DNS_RECORD_FOUND", absent=("DNS_NS_LAME", "DNS_PROPAGATING"))
    assert {o["address"] for o in r.observations("authoritative")} == {zones.NS1}, r.explain()


def test_wildcard_record_answers_the_validation_name(lab: Lab) -> None:
    r = lab.dcv("dns", "host.wild.example.lab", "v-wild")
    expect(r, "pass", "DNS_RECORD_FOUND")


def test_value_beside_older_values(lab: Lab) -> None:
    r = lab.dcv("dns", "stalevals.example.lab", "v-stalevals")
    expect(r, "pass", "DNS_RECORD_FOUND", "DNS_STALE_VALUES")
    assert r.finding("DNS_STALE_VALUES")["severity"] == "warning"


def test_cname_chain_across_zones(lab: Lab) -> None:
    r = lab.dcv("dns", "chain.example.lab", "v-chain")
    expect(r, "pass", "DNS_RECORD_FOUND", absent=("DNS_CNAME_BROKEN", "DNS_WRONG_TYPE"))


def test_cname_method(lab: Lab) -> None:
    r = lab.dcv("dns", "cn.example.lab", "dcv.other.lab", "--type", "CNAME")
    expect(r, "pass", "DNS_RECORD_FOUND")


# -- a person has to fix something ---------------------------------------------------------------------


def test_record_missing(lab: Lab) -> None:
    r = lab.dcv("dns", "example.lab", "v-nowhere")
    expect(r, "fail", "DNS_RECORD_MISSING")


def test_value_mismatch(lab: Lab) -> None:
    r = lab.dcv("dns", "mismatch.example.lab", "v-expected")
    expect(r, "fail", "DNS_VALUE_MISMATCH", absent=("DNS_RECORD_FOUND",))
    assert mentions(r, "DNS_VALUE_MISMATCH", "v-something-else"), r.explain()


@pytest.mark.parametrize(
    ("domain", "value"),
    [("quoted.example.lab", "v-quoted"), ("spaced.example.lab", "v-spaced")],
    ids=["quotes-inside-the-value", "surrounding-spaces"],
)
def test_value_format(lab: Lab, domain: str, value: str) -> None:
    r = lab.dcv("dns", domain, value)
    expect(r, "fail", "DNS_VALUE_FORMAT", absent=("DNS_RECORD_FOUND",))


def test_value_differs_in_case(lab: Lab) -> None:
    expect(lab.dcv("dns", "case.example.lab", "v-case"), "fail", "DNS_VALUE_FORMAT")


@pytest.mark.parametrize(
    ("domain", "value", "where"),
    [
        ("wrongname.example.lab", "v-wrongname", "wrongname.example.lab"),
        ("prefix.example.lab", "v-prefix", "_acme-challenge.prefix.example.lab"),
    ],
    ids=["at-the-domain-itself", "under-another-prefix"],
)
def test_wrong_name(lab: Lab, domain: str, value: str, where: str) -> None:
    r = lab.dcv("dns", domain, value)
    expect(r, "fail", "DNS_WRONG_NAME", absent=("DNS_RECORD_FOUND",))
    assert mentions(r, "DNS_WRONG_NAME", where), r.explain()


def test_zone_appended_twice(lab: Lab) -> None:
    r = lab.dcv("dns", "doubled.example.lab", "v-doubled")
    expect(r, "fail", "DNS_ZONE_DOUBLED", absent=("DNS_RECORD_FOUND",))
    assert mentions(r, "DNS_ZONE_DOUBLED", "_dnsauth.doubled.example.lab.example.lab"), r.explain()


@pytest.mark.parametrize("domain", ["dangling.example.lab", "cnloop.example.lab"], ids=["dangling", "loop"])
def test_cname_chain_broken(lab: Lab, domain: str) -> None:
    r = lab.dcv("dns", domain, "v-anything")
    expect(r, "fail", "DNS_CNAME_BROKEN")


def test_cname_followed_by_nsd_into_another_zone(lab: Lab) -> None:
    """NSD serves both nsd.lab and other.lab, so it follows the CNAME itself; Knot would stop at it."""
    expect(lab.dcv("dns", "chain.nsd.lab", "v-chain"), "pass", "DNS_RECORD_FOUND")
    r = lab.dcv("dns", "dangle.nsd.lab", "v-x")
    # NSD answers NXDOMAIN *with the CNAME in the answer*: the name exists, its target does not
    expect(r, "fail", "DNS_CNAME_BROKEN", absent=("DNS_RECORD_MISSING",))


def test_txt_where_a_cname_is_wanted(lab: Lab) -> None:
    r = lab.dcv("dns", "txtnotcname.example.lab", "dcv.other.lab", "--type", "CNAME")
    expect(r, "fail", "DNS_WRONG_TYPE")


def test_caa_forbids_the_chosen_ca(lab: Lab) -> None:
    r = lab.dcv("dns", "caa.example.lab", "v-caa", "--ca", "letsencrypt")
    expect(r, "fail", "CAA_FORBIDS", "DNS_RECORD_FOUND")
    assert mentions(r, "CAA_FORBIDS", "digicert.com"), r.explain()


def test_caa_found_by_climbing_the_tree(lab: Lab) -> None:
    """RFC 8659: deep.caatree.example.lab has no CAA, so its parent's set applies."""
    r = lab.dcv("dns", "deep.caatree.example.lab", "v-caatree", "--ca", "letsencrypt")
    expect(r, "fail", "CAA_FORBIDS")
    assert mentions(r, "CAA_FORBIDS", "caatree.example.lab"), r.explain()


def test_caa_issuewild_forbids_a_wildcard(lab: Lab) -> None:
    expect(lab.dcv("dns", "caawild.example.lab", "v-caawild", "--ca", "letsencrypt"), "pass")
    r = lab.dcv("dns", "*.caawild.example.lab", "v-caawild", "--ca", "letsencrypt")
    expect(r, "fail", "CAA_FORBIDS")


def test_caa_unknown_critical_tag_forbids_everyone(lab: Lab) -> None:
    r = lab.dcv("dns", "caacrit.example.lab", "v-caacrit", "--ca", "digicert")
    expect(r, "fail", "CAA_FORBIDS")


def test_caa_allows_the_chosen_ca(lab: Lab) -> None:
    r = lab.dcv("dns", "caa.example.lab", "v-caa", "--ca", "digicert")
    expect(r, "pass", "DNS_RECORD_FOUND", absent=("CAA_FORBIDS",))


def test_caa_without_ca_is_reported_not_judged(lab: Lab) -> None:
    r = lab.dcv("dns", "caa.example.lab", "v-caa")
    expect(r, "pass", "DNS_RECORD_FOUND", absent=("CAA_FORBIDS",))


def test_domain_not_delegated(lab: Lab) -> None:
    r = lab.dcv("dns", "nowhere.lab", "v-x")
    expect(r, "fail", "DNS_UNRESOLVABLE")


# -- broken servers ------------------------------------------------------------------------------------


def test_nameserver_that_drops_queries(lab: Lab) -> None:
    r = lab.dcv("dns", "drop.lab", "v-drop", env=lab.env(DCV_TIMEOUT="6"))
    assert r.elapsed < 6 + 4, r.explain()
    assert r.verdict != "pass", r.explain()
    assert "DNS_NS_TIMEOUT" in r.codes, r.explain()
    assert mentions(r, "DNS_NS_TIMEOUT", zones.DEAD), r.explain()
    # the working server's answer is still shown
    assert any(o["status"] == "answer" for o in authoritative(r, zones.NS1)), r.explain()


def test_nameserver_that_refuses(lab: Lab) -> None:
    r = lab.dcv("dns", "lame.lab", "v-lame")
    expect(r, "fail", "DNS_NS_LAME")
    assert mentions(r, "DNS_NS_LAME", zones.LAME), r.explain()
    assert any(o["status"] == "refused" for o in authoritative(r, zones.LAME)), r.explain()


def test_dnssec_broken_signature(lab: Lab) -> None:
    r = lab.dcv("dns", "signed.lab", "v-bogus")
    expect(r, "fail", "DNSSEC_BOGUS")


def test_dnssec_good_signature_passes(lab: Lab) -> None:
    r = lab.dcv("dns", "good.signed.lab", "v-good")
    expect(r, "pass", "DNS_RECORD_FOUND", absent=("DNSSEC_BOGUS",))


def test_no_nameserver_answers_for_the_zone(lab: Lab) -> None:
    r = lab.dcv("dns", "alllame.lab", "v-x")
    assert r.verdict == "fail", r.explain()
    assert "DNS_NS_LAME" in r.codes or "DNS_UNRESOLVABLE" in r.codes, r.explain()
    assert "DNS_RECORD_MISSING" not in r.codes, r.explain()


def test_own_resolvers_unreachable(lab: Lab) -> None:
    env = lab.env(DCV_RESOLVERS=zones.DEAD, DCV_PUBLIC_RESOLVERS="", DCV_TIMEOUT="5")
    r = lab.dcv("dns", "ok.example.lab", "v-ok", env=env)
    assert r.elapsed < 5 + 4, r.explain()
    assert "RESOLVER_UNREACHABLE" in r.codes, r.explain()
    assert r.verdict != "pass", r.explain()


# -- time will fix it ----------------------------------------------------------------------------------


def test_lagging_secondary_then_transfer(lab: Lab, unique: str) -> None:
    name = f"_dnsauth.{unique}.dyn.lab"
    domain = f"{unique}.dyn.lab"
    with lab.dns.secondary_held():
        serial = lab.dns.set_txt(name, "v-lag")
        r = lab.dcv("dns", domain, "v-lag")
        expect(r, "pending", "DNS_PROPAGATING")
        assert mentions(r, "DNS_PROPAGATING", zones.NS2) or mentions(r, "DNS_PROPAGATING", "ns2.dns.lab"), (
            r.explain()
        )
        primary = authoritative(r, zones.NS1)
        assert any(o.get("serial") == serial for o in primary), r.explain()
    # released: NSD transferred the new serial (release waits for it)
    assert lab.dns.serial(zones.NS2, "dyn.lab") == serial
    lab.dns.flush("dyn.lab")  # the resolvers may have cached NSD's NXDOMAIN meanwhile
    r = lab.dcv("dns", domain, "v-lag")
    expect(r, "pass", "DNS_RECORD_FOUND", absent=("DNS_PROPAGATING",))


def test_lagging_secondary_still_serving_the_previous_value(lab: Lab, unique: str) -> None:
    """A changed value that only the primary has yet is propagation, not a mismatch."""
    name = f"_dnsauth.{unique}.dyn.lab"
    domain = f"{unique}.dyn.lab"
    lab.dns.set_txt(name, "v-last-month")
    with lab.dns.secondary_held():
        lab.dns.set_txt(name, "v-this-month")
        assert txt_values(lab.dns.query(zones.NS2, name, "TXT"), name) == ["v-last-month"]
        r = lab.dcv("dns", domain, "v-this-month")
        expect(r, "pending", "DNS_PROPAGATING", absent=("DNS_VALUE_MISMATCH",))
    lab.dns.flush("dyn.lab")
    expect(lab.dcv("dns", domain, "v-this-month"), "pass", "DNS_RECORD_FOUND")


def test_resolver_cached_nxdomain_before_the_record_existed(lab: Lab, unique: str) -> None:
    name = f"_dnsauth.{unique}.dyn.lab"
    domain = f"{unique}.dyn.lab"
    lab.dns.prime(name)  # the user asked before adding the record: NXDOMAIN cached for 45 s
    lab.dns.set_txt(name, "v-neg")  # now on both ns1 and ns2
    r = lab.dcv("dns", domain, "v-neg")
    expect(r, "pending", "DNS_CACHED_NEGATIVE")
    retry = r.data["retry_after"]
    # RFC 2308: the negative TTL is min(SOA TTL 45, MINIMUM 3600) = 45, minus the time already cached
    assert retry is not None and 0 < retry <= zones.NEGATIVE_TTL, r.explain()
    lab.dns.flush("dyn.lab")
    r = lab.dcv("dns", domain, "v-neg")
    expect(r, "pass", "DNS_RECORD_FOUND", absent=("DNS_CACHED_NEGATIVE",))


def test_resolver_still_holds_the_previous_value(lab: Lab, unique: str) -> None:
    name = f"_dnsauth.{unique}.dyn.lab"
    domain = f"{unique}.dyn.lab"
    lab.dns.set_txt(name, "v-before")
    lab.dns.prime(name)
    lab.dns.set_txt(name, "v-after")
    r = lab.dcv("dns", domain, "v-after")
    expect(r, "pending", "DNS_CACHED_STALE")
    retry = r.data["retry_after"]
    assert retry is not None and 0 < retry <= zones.DYN_RECORD_TTL, r.explain()
    lab.dns.flush("dyn.lab")
    r = lab.dcv("dns", domain, "v-after")
    expect(r, "pass", "DNS_RECORD_FOUND", absent=("DNS_CACHED_STALE",))


def test_value_changed_at_the_source_is_a_mismatch_not_a_cache(lab: Lab, unique: str) -> None:
    """The source has the old value and the CA console shows a new one: nothing to wait for."""
    name = f"_dnsauth.{unique}.dyn.lab"
    lab.dns.set_txt(name, "v-old-token")
    r = lab.dcv("dns", f"{unique}.dyn.lab", "v-new-token")
    expect(r, "fail", "DNS_VALUE_MISMATCH", absent=("DNS_CACHED_STALE", "DNS_PROPAGATING"))
