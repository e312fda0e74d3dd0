"""The DNS check end to end: real DNS over real sockets against in-process loopback servers.

Each test builds a small world (three authoritative nameserver addresses for example.com, a recursive
resolver used for discovery and a caching "public" resolver), changes it the way real zones go wrong,
and asserts the verdict and the finding codes the contract promises.
"""

from __future__ import annotations

import dataclasses
import time

import dns.flags
import pytest

from bot.config import ServerAddress
from bot.engine import run_check
from bot.model import Diagnosis, Severity, Verdict
from bot.names import dns_request
from tests.conftest import DnsWorld, WorldFactory, world_zone
from tests.servers.fixtures import allocate_loopback
from tests.servers.resolver import CachingResolver
from tests.servers.zones import zone_text

TOKEN = "2026112900000036y2mq5yalr0pc6znh0qbw8cwmw4mzqo1sxqiv0n2d0c5k4xtf"


async def check(world: DnsWorld, value: str = TOKEN, **kw: object) -> Diagnosis:
    request = dns_request(world.zone, value, allow_private=True, **kw)  # type: ignore[arg-type]
    return await run_check(request, world.settings)


def codes(diagnosis: Diagnosis) -> list[str]:
    return diagnosis.codes()


def first(diagnosis: Diagnosis, code: str) -> dict[str, object]:
    found = [f for f in diagnosis.findings if f.code == code]
    assert found, f"{code} not in {codes(diagnosis)}"
    return found[0].to_dict()


async def test_record_everywhere_passes(dns_world: WorldFactory) -> None:
    world = await dns_world({"_dnsauth": {"TXT": TOKEN}})
    diagnosis = await check(world)
    assert diagnosis.verdict is Verdict.PASS
    assert codes(diagnosis) == ["DNS_RECORD_FOUND"]
    auth = [o for o in diagnosis.observations if o.kind == "authoritative"]
    assert len(auth) == 3
    assert {o.address for o in auth} == set(world.lab.addresses)
    assert all(o.values == [TOKEN] and o.serial == 1 and o.ttl == 300 for o in auth)
    assert [o.kind for o in diagnosis.observations].count("resolver") == 1


async def test_queries_to_nameservers_are_non_recursive_with_edns_1232(dns_world: WorldFactory) -> None:
    world = await dns_world({"_dnsauth": {"TXT": TOKEN}})
    seen: list[tuple[bool, int]] = []
    for server in world.lab.servers:
        server.add_fault(
            "delay",
            0,
            qname="_dnsauth.example.com",
            qtype="TXT",
            predicate=lambda q: (
                seen.append((bool(q.message.flags & dns.flags.RD), q.message.payload)) is None
            ),
        )
    await check(world)
    assert seen, "no query reached the nameservers"
    assert all(rd is False and payload == 1232 for rd, payload in seen)


async def test_multi_string_txt_is_joined(dns_world: WorldFactory) -> None:
    half = len(TOKEN) // 2
    world = await dns_world({"_dnsauth": {"TXT": f'"{TOKEN[:half]}" "{TOKEN[half:]}"'}})
    assert (await check(world)).verdict is Verdict.PASS


async def test_missing_record_nxdomain(dns_world: WorldFactory) -> None:
    world = await dns_world({"www": {"A": "192.0.2.1"}})
    diagnosis = await check(world)
    assert diagnosis.verdict is Verdict.FAIL
    finding = first(diagnosis, "DNS_RECORD_MISSING")
    assert finding["evidence"]["status"] == "nxdomain"  # type: ignore[index]
    assert finding["faq"] == "no-record-value"
    assert "_dnsauth" in str(finding["remedy"]) and "ns1.example.com" in str(finding["remedy"])


async def test_missing_record_nodata_is_told_apart(dns_world: WorldFactory) -> None:
    world = await dns_world({"_dnsauth": {"A": "192.0.2.1"}})
    finding = first(await check(world), "DNS_RECORD_MISSING")
    assert finding["evidence"]["status"] == "nodata"  # type: ignore[index]
    assert "NODATA" in str(finding["message"])


async def test_value_mismatch_lists_every_value_found(dns_world: WorldFactory) -> None:
    world = await dns_world({"_dnsauth": {"TXT": ["old-token-1", "old-token-2"]}})
    diagnosis = await check(world)
    assert diagnosis.verdict is Verdict.FAIL
    finding = first(diagnosis, "DNS_VALUE_MISMATCH")
    assert finding["evidence"]["found"] == ["old-token-1", "old-token-2"]  # type: ignore[index]
    assert finding["faq"] == "record-mismatch"


@pytest.mark.parametrize(
    ("published", "difference"),
    [
        (f'"\\"{TOKEN}\\""', "quotes"),
        (f'" {TOKEN} "', "spaces around"),
        (f'"{TOKEN}."', "trailing dot"),
        (f'"{TOKEN.upper()}"', "letter case"),
    ],
)
async def test_format_only_differences(dns_world: WorldFactory, published: str, difference: str) -> None:
    world = await dns_world({"_dnsauth": {"TXT": published}})
    diagnosis = await check(world)
    assert diagnosis.verdict is Verdict.FAIL
    assert "DNS_VALUE_MISMATCH" not in codes(diagnosis)
    assert difference in str(first(diagnosis, "DNS_VALUE_FORMAT")["message"])


async def test_stale_values_beside_the_right_one_warn_but_pass(dns_world: WorldFactory) -> None:
    world = await dns_world({"_dnsauth": {"TXT": [TOKEN, "previous-order-token"]}})
    diagnosis = await check(world)
    assert diagnosis.verdict is Verdict.PASS
    assert first(diagnosis, "DNS_STALE_VALUES")["evidence"]["stale"] == ["previous-order-token"]  # type: ignore[index]


@pytest.mark.parametrize("owner", ["@", "_acme-challenge", "_pki-validation", "www"])
async def test_value_at_the_wrong_name(dns_world: WorldFactory, owner: str) -> None:
    world = await dns_world({owner: {"TXT": TOKEN}})
    diagnosis = await check(world)
    assert diagnosis.verdict is Verdict.FAIL
    expected_at = "example.com" if owner == "@" else f"{owner}.example.com"
    assert first(diagnosis, "DNS_WRONG_NAME")["evidence"]["found_at"] == expected_at  # type: ignore[index]
    assert "DNS_RECORD_MISSING" not in codes(diagnosis)


async def test_zone_appended_twice(dns_world: WorldFactory) -> None:
    world = await dns_world({"_dnsauth.example.com": {"TXT": TOKEN}})
    diagnosis = await check(world)
    finding = first(diagnosis, "DNS_ZONE_DOUBLED")
    assert finding["evidence"]["found_at"] == "_dnsauth.example.com.example.com"  # type: ignore[index]
    assert "_dnsauth" in str(finding["remedy"])


async def test_zone_wildcard_does_not_fake_a_wrong_name(dns_world: WorldFactory) -> None:
    world = await dns_world({"*": {"TXT": TOKEN}, "_dnsauth": {"A": "192.0.2.1"}})
    diagnosis = await check(world)
    assert "DNS_WRONG_NAME" not in codes(diagnosis)
    assert "DNS_ZONE_DOUBLED" not in codes(diagnosis)


async def test_txt_where_cname_is_wanted(dns_world: WorldFactory) -> None:
    world = await dns_world({"_dnsauth": {"TXT": "abc.dcv.digicert.com"}})
    diagnosis = await check(world, "abc.dcv.digicert.com", record_type="CNAME")
    assert first(diagnosis, "DNS_WRONG_TYPE")["evidence"]["found_type"] == "TXT"  # type: ignore[index]


async def test_cname_where_txt_is_wanted(dns_world: WorldFactory) -> None:
    world = await dns_world({"_dnsauth": {"CNAME": "www.example.com."}, "www": {"A": "192.0.2.1"}})
    diagnosis = await check(world)
    assert first(diagnosis, "DNS_WRONG_TYPE")["evidence"]["found_type"] == "CNAME"  # type: ignore[index]


async def test_cname_method_passes(dns_world: WorldFactory) -> None:
    world = await dns_world({"_dnsauth": {"CNAME": "abc123.dcv.digicert.com."}})
    diagnosis = await check(world, "ABC123.dcv.digicert.com.", record_type="CNAME")
    assert diagnosis.verdict is Verdict.PASS


async def test_cname_chain_to_another_zone_is_followed(dns_world: WorldFactory) -> None:
    other = zone_text("dcv-delegate.net", {"abc": {"TXT": TOKEN}}, ns=["ns1.example.com."])
    world = await dns_world(
        {"_dnsauth": {"CNAME": "abc.dcv-delegate.net."}}, extra_zones={"dcv-delegate.net": other}
    )
    diagnosis = await check(world)
    assert diagnosis.verdict is Verdict.PASS
    auth = [o for o in diagnosis.observations if o.kind == "authoritative"]
    assert all(o.detail.get("cname_chain") == ["abc.dcv-delegate.net"] for o in auth)


async def test_dangling_cname(dns_world: WorldFactory) -> None:
    other = zone_text("dcv-delegate.net", {"something-else": {"TXT": "x"}}, ns=["ns1.example.com."])
    world = await dns_world(
        {"_dnsauth": {"CNAME": "gone.dcv-delegate.net."}}, extra_zones={"dcv-delegate.net": other}
    )
    diagnosis = await check(world)
    finding = first(diagnosis, "DNS_CNAME_BROKEN")
    assert "does not exist" in str(finding["message"])
    assert finding["faq"] == "no-record-value"


async def test_cname_loop(dns_world: WorldFactory) -> None:
    world = await dns_world(
        {"_dnsauth": {"CNAME": "a.example.com."}, "a": {"CNAME": "_dnsauth.example.com."}}
    )
    assert "loops" in str(first(await check(world), "DNS_CNAME_BROKEN")["message"])


async def test_lagging_secondary_is_pending(dns_world: WorldFactory) -> None:
    world = await dns_world({"www": {"A": "192.0.2.1"}}, serial=1)
    world.set_records({"www": {"A": "192.0.2.1"}, "_dnsauth": {"TXT": TOKEN}}, serial=2, only=[0, 1])
    world.flush()
    diagnosis = await check(world)
    assert diagnosis.verdict is Verdict.PENDING
    finding = first(diagnosis, "DNS_PROPAGATING")
    assert finding["faq"] == "propagation"
    serials = finding["evidence"]["serials"]  # type: ignore[index]
    assert sorted(serials.values()) == [1, 2, 2]  # type: ignore[union-attr]
    assert world.lab.addresses[2] in str(finding["message"])


async def test_negative_cache_at_resolver_is_pending_with_retry_after(dns_world: WorldFactory) -> None:
    world = await dns_world({"www": {"A": "192.0.2.1"}}, soa_ttl=3600, minimum=900)
    first_look = await check(world)  # the public resolver now caches NXDOMAIN
    assert "DNS_RECORD_MISSING" in codes(first_look)
    world.set_records(
        {"www": {"A": "192.0.2.1"}, "_dnsauth": {"TXT": TOKEN}}, serial=2, soa_ttl=3600, minimum=900
    )
    diagnosis = await check(world)
    assert diagnosis.verdict is Verdict.PENDING
    finding = first(diagnosis, "DNS_CACHED_NEGATIVE")
    assert finding["evidence"]["negative_ttl"] == 900  # type: ignore[index]
    assert diagnosis.retry_after is not None and 880 <= diagnosis.retry_after <= 900


async def test_old_value_cached_at_resolver_is_pending(dns_world: WorldFactory) -> None:
    world = await dns_world({"_dnsauth": {"TXT": (600, "old-value")}})
    await check(world)  # the public resolver caches the old value for 600 s
    world.set_records({"_dnsauth": {"TXT": (600, TOKEN)}}, serial=2)
    diagnosis = await check(world)
    assert diagnosis.verdict is Verdict.PENDING
    assert "DNS_CACHED_STALE" in codes(diagnosis)
    assert diagnosis.retry_after is not None and 580 <= diagnosis.retry_after <= 600


async def test_nameserver_that_drops_queries(dns_world: WorldFactory) -> None:
    world = await dns_world({"_dnsauth": {"TXT": TOKEN}})
    world.lab.add_fault("drop", only=[2], qname="_dnsauth.example.com")
    world.lab.add_fault("drop", only=[2], qname="example.com", qtype="SOA")
    diagnosis = await check(world)
    assert diagnosis.verdict is Verdict.FAIL
    finding = first(diagnosis, "DNS_NS_TIMEOUT")
    assert "The other 2 servers serve the value" in str(finding["message"])
    assert world.lab.addresses[2] in str(finding["message"])
    assert finding["faq"] == "dns-timeout"


async def test_every_nameserver_dead_is_an_error(dns_world: WorldFactory) -> None:
    world = await dns_world({"_dnsauth": {"TXT": TOKEN}})
    world.lab.add_fault("drop", qname="_dnsauth.example.com")
    diagnosis = await check(world)
    assert diagnosis.verdict is Verdict.FAIL
    assert first(diagnosis, "DNS_NS_TIMEOUT")["severity"] == "error"


@pytest.mark.parametrize("fault", ["refuse", "not_authoritative", "upward_referral"])
async def test_lame_nameserver(dns_world: WorldFactory, fault: str) -> None:
    world = await dns_world({"_dnsauth": {"TXT": TOKEN}})
    world.lab.add_fault(fault, only=[1], qname="_dnsauth.example.com")
    diagnosis = await check(world)
    assert diagnosis.verdict is Verdict.FAIL
    assert world.lab.addresses[1] in str(first(diagnosis, "DNS_NS_LAME")["message"])


async def test_truncated_udp_answer_is_retried_over_tcp(dns_world: WorldFactory) -> None:
    world = await dns_world({"_dnsauth": {"TXT": TOKEN}})
    world.lab.add_fault("truncate", qname="_dnsauth.example.com")
    diagnosis = await check(world)
    assert diagnosis.verdict is Verdict.PASS
    assert all(o.detail.get("tcp") for o in diagnosis.observations if o.kind == "authoritative")
    assert world.lab.count("_dnsauth.example.com", "TXT", "tcp") >= 3


async def test_domain_not_delegated_is_unresolvable(dns_world: WorldFactory) -> None:
    registry = zone_text("com", {"other": {"NS": "ns1.other.com."}}, ns=["a.gtld.example."])
    world = await dns_world({"_dnsauth": {"TXT": TOKEN}}, extra_zones={"com": registry})
    request = dns_request("not-registered.com", TOKEN, allow_private=True)
    diagnosis = await run_check(request, world.settings)
    assert diagnosis.verdict is Verdict.FAIL
    finding = first(diagnosis, "DNS_UNRESOLVABLE")
    assert "does not exist" in str(finding["message"])
    assert finding["faq"] == "dns-timeout"


async def test_resolvers_servfail(dns_world: WorldFactory) -> None:
    world = await dns_world({"_dnsauth": {"TXT": TOKEN}})
    world.public[0].servfail = True
    diagnosis = await check(world)
    assert diagnosis.verdict is Verdict.FAIL
    assert "DNS_SERVFAIL" in codes(diagnosis)
    assert "DNSSEC_BOGUS" not in codes(diagnosis)


async def test_dnssec_bogus(dns_world: WorldFactory) -> None:
    world = await dns_world({"_dnsauth": {"TXT": TOKEN}})
    world.public[0].dnssec_bogus_zones.add(__import__("dns.name").name.from_text("example.com"))
    diagnosis = await check(world)
    assert diagnosis.verdict is Verdict.FAIL
    assert first(diagnosis, "DNSSEC_BOGUS")["faq"] == "dns-timeout"
    assert "DNS_SERVFAIL" not in codes(diagnosis)


async def test_caa_forbids_the_chosen_ca(dns_world: WorldFactory) -> None:
    world = await dns_world({"_dnsauth": {"TXT": TOKEN}, "@": {"CAA": '0 issue "digicert.com"'}})
    diagnosis = await check(world, ca="letsencrypt")
    assert diagnosis.verdict is Verdict.FAIL
    finding = first(diagnosis, "CAA_FORBIDS")
    assert 'issue "letsencrypt.org"' in str(finding["remedy"])
    allowed = await check(world, ca="digicert")
    assert allowed.verdict is Verdict.PASS


async def test_caa_is_climbed_from_a_subdomain_and_reported_without_ca(dns_world: WorldFactory) -> None:
    world = await dns_world(
        {"_dnsauth.shop": {"TXT": TOKEN}, "shop": {"A": "192.0.2.1"}, "@": {"CAA": '0 issue "sectigo.com"'}}
    )
    request = dns_request("shop.example.com", TOKEN, allow_private=True)
    diagnosis = await run_check(request, world.settings)
    assert diagnosis.verdict is Verdict.PASS
    assert "CAA_PRESENT" in codes(diagnosis)
    judged = await run_check(dataclasses.replace(request, ca="letsencrypt"), world.settings)
    assert first(judged, "CAA_FORBIDS")["evidence"]["caa_name"] == "example.com"  # type: ignore[index]


async def test_caa_issuewild_and_critical_unknown_tag(dns_world: WorldFactory) -> None:
    world = await dns_world(
        {
            "_dnsauth": {"TXT": TOKEN},
            "@": {"CAA": ['0 issue "letsencrypt.org"', '0 issuewild "digicert.com"']},
        }
    )
    wildcard = dns_request("*.example.com", TOKEN, ca="letsencrypt", allow_private=True)
    assert "CAA_FORBIDS" in (await run_check(wildcard, world.settings)).codes()
    world.set_records({"_dnsauth": {"TXT": TOKEN}, "@": {"CAA": '128 tbs "unknown"'}}, serial=2)
    world.flush()
    assert "CAA_FORBIDS" in codes(await check(world, ca="letsencrypt"))


async def test_own_resolvers_unreachable(dns_world: WorldFactory) -> None:
    world = await dns_world({"_dnsauth": {"TXT": TOKEN}})
    dead = allocate_loopback(1)[0]  # nothing listens there
    settings = dataclasses.replace(
        world.settings, resolvers=(ServerAddress(dead, world.lab.port),), timeout=3.0
    )
    diagnosis = await run_check(dns_request("example.com", TOKEN, allow_private=True), settings)
    assert codes(diagnosis) == ["RESOLVER_UNREACHABLE"]
    assert diagnosis.findings[0].severity is Severity.ERROR
    assert "not at example.com" in str(diagnosis.findings[0].remedy)


async def test_check_respects_its_deadline_when_everything_is_silent(dns_world: WorldFactory) -> None:
    world = await dns_world({"_dnsauth": {"TXT": TOKEN}})
    world.lab.add_fault("drop")
    for resolver in [world.resolver, *world.public]:
        resolver.add_fault("drop")
    settings = dataclasses.replace(world.settings, timeout=1.5)
    started = time.monotonic()
    diagnosis = await run_check(dns_request("example.com", TOKEN, allow_private=True), settings)
    elapsed = time.monotonic() - started
    assert diagnosis.verdict is Verdict.FAIL
    assert elapsed < settings.timeout + 1.0


async def test_queries_in_flight_are_bounded(dns_world: WorldFactory) -> None:
    world = await dns_world({"_dnsauth": {"TXT": TOKEN}}, n=6)
    peaks: list[int] = []

    def record_peak(_: object) -> bool:
        # Called as each query arrives: how many are being answered across all six servers right now.
        peaks.append(sum(server.in_flight for server in world.lab.servers))
        return True

    world.lab.add_fault("delay", 0.05, predicate=record_peak)
    settings = dataclasses.replace(world.settings, max_concurrent_queries=3)
    diagnosis = await run_check(dns_request("example.com", TOKEN, allow_private=True), settings)
    assert diagnosis.verdict is Verdict.PASS
    assert peaks and max(peaks) <= 3


async def test_private_nameserver_addresses_are_skipped_in_production(dns_world: WorldFactory) -> None:
    world = await dns_world({"_dnsauth": {"TXT": TOKEN}}, public=0)
    settings = dataclasses.replace(world.settings, allow_private=False)
    diagnosis = await run_check(dns_request("example.com", TOKEN, allow_private=True), settings)
    auth = [o for o in diagnosis.observations if o.kind == "authoritative"]
    assert auth and all(o.status == "skipped" for o in auth)
    assert world.lab.count("_dnsauth.example.com", "TXT") == 0
    assert diagnosis.verdict is Verdict.FAIL


async def test_public_resolver_label_shows_in_observations(dns_world: WorldFactory) -> None:
    world = await dns_world({"_dnsauth": {"TXT": TOKEN}}, public=2)
    diagnosis = await check(world)
    labels = [o.server for o in diagnosis.observations if o.kind == "resolver"]
    assert labels == ["public1", "public2"]
    assert isinstance(world.public[0], CachingResolver)


async def test_cname_loop_through_another_zone(dns_world: WorldFactory) -> None:
    other = zone_text(
        "dcv-delegate.net",
        {"loop1": {"CNAME": "loop2.dcv-delegate.net."}, "loop2": {"CNAME": "loop1.dcv-delegate.net."}},
        ns=["ns1.example.com."],
    )
    world = await dns_world(
        {"_dnsauth": {"CNAME": "loop1.dcv-delegate.net."}}, extra_zones={"dcv-delegate.net": other}
    )
    finding = first(await check(world), "DNS_CNAME_BROKEN")
    assert "loop1.dcv-delegate.net" in str(finding["message"])


async def test_zone_whose_servers_all_refuse_is_examined_through_the_parent(
    dns_world: WorldFactory, auth_server: object
) -> None:
    world = await dns_world({"_dnsauth": {"TXT": TOKEN}})
    lame = await auth_server(None, port=world.lab.port)  # type: ignore[operator]  # serves nothing: REFUSED
    registry = world_zone(
        "com", world.lab.addresses, {"alllame": {"NS": "ns.alllame.com."}, "ns.alllame": {"A": lame.address}}
    )
    world.lab.set_zone("com", registry)
    for resolver in [world.resolver, *world.public]:
        resolver.set_upstreams("com", world.lab.endpoints)
    diagnosis = await run_check(dns_request("alllame.com", TOKEN, allow_private=True), world.settings)
    assert diagnosis.verdict is Verdict.FAIL
    assert "DNS_UNRESOLVABLE" not in codes(diagnosis)
    lame_finding = first(diagnosis, "DNS_NS_LAME")
    assert "ns.alllame.com" in str(lame_finding["message"]) and lame.address in str(lame_finding["message"])
    assert "DNS_SERVFAIL" in codes(diagnosis)  # and the world's resolvers cannot get an answer


async def test_name_under_a_registry_zone_is_only_unresolvable(dns_world: WorldFactory) -> None:
    world = await dns_world({"_dnsauth": {"TXT": TOKEN}})
    world.lab.set_zone("com", world_zone("com", world.lab.addresses, {}))
    for resolver in [world.resolver, *world.public]:
        resolver.set_upstreams("com", world.lab.endpoints)
    diagnosis = await run_check(dns_request("nowhere.com", TOKEN, allow_private=True), world.settings)
    assert codes(diagnosis)[0] == "DNS_UNRESOLVABLE"
    assert "DNS_RECORD_MISSING" not in codes(diagnosis)
    assert "DNS_NS_LAME" not in codes(diagnosis)


async def test_every_nameserver_address_is_asked_ipv6_included(
    dns_world: WorldFactory, auth_server: object
) -> None:
    world = await dns_world({"_dnsauth": {"TXT": TOKEN}}, n=2)
    v6 = await auth_server(None, address="::1", port=world.lab.port)  # type: ignore[operator]
    records = {"_dnsauth": {"TXT": TOKEN}, "ns2": {"AAAA": "::1"}}
    world.set_records(records, serial=1)
    v6.set_zone("example.com", world_zone("example.com", world.lab.addresses, records))
    diagnosis = await check(world)
    assert diagnosis.verdict is Verdict.PASS
    asked = {(o.server, o.address) for o in diagnosis.observations if o.kind == "authoritative"}
    assert asked == {
        ("ns1.example.com", world.lab.addresses[0]),
        ("ns2.example.com", world.lab.addresses[1]),
        ("ns2.example.com", "::1"),
    }
    assert v6.count("_dnsauth.example.com", "TXT") == 1


@pytest.mark.parametrize("fault", ["wrong_id", "wrong_question", "malformed"])
async def test_bogus_answers_are_ignored_not_believed(dns_world: WorldFactory, fault: str) -> None:
    """A reply with another ID, another question or garbage is skipped (spoof resistance); the server
    then counts as silent, and the check still ends within its deadline."""
    world = await dns_world({"_dnsauth": {"TXT": TOKEN}})
    world.lab.add_fault(fault, only=[2], qname="_dnsauth.example.com")
    settings = dataclasses.replace(world.settings, timeout=3.0)
    started = time.monotonic()
    diagnosis = await run_check(dns_request("example.com", TOKEN, allow_private=True), settings)
    assert time.monotonic() - started < settings.timeout + 1.0
    bad = [o for o in diagnosis.observations if o.address == world.lab.addresses[2]]
    assert [o.status for o in bad] == ["timeout"]
    assert world.lab.addresses[2] in str(first(diagnosis, "DNS_NS_TIMEOUT")["message"])


async def test_one_bogus_answer_then_the_real_one(dns_world: WorldFactory) -> None:
    world = await dns_world({"_dnsauth": {"TXT": TOKEN}})
    world.lab.add_fault("wrong_id", only=[2], qname="_dnsauth.example.com", times=1)
    diagnosis = await check(world)
    assert diagnosis.verdict is Verdict.PASS
    assert world.lab.servers[2].count("_dnsauth.example.com", "TXT") == 2  # the retry got the real answer


async def test_nameservers_that_reject_caa_queries_block_issuance(dns_world: WorldFactory) -> None:
    """NOTIMP for the CAA type (a provider bug Let's Encrypt documents): resolvers cannot tell whether
    CAA forbids the CA, and CAs treat that as a refusal (BR 3.2.2.8)."""
    world = await dns_world({"_dnsauth": {"TXT": TOKEN}})
    world.lab.add_fault("notimp", qtype="CAA")
    diagnosis = await check(world, ca="letsencrypt")
    assert diagnosis.verdict is Verdict.FAIL
    finding = first(diagnosis, "CAA_FORBIDS")
    assert finding["evidence"]["error"]  # type: ignore[index]
    assert "failed" in str(finding["message"])
    assert "DNS_RECORD_FOUND" in codes(diagnosis)  # the validation record itself is fine
