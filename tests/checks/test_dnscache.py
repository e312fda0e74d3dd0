"""The discovery cache: answers kept for their TTL (capped), failures never, and really used."""

from __future__ import annotations

from bot.checks.dnscache import MAX_TTL, ResolverCache
from bot.checks.dnsquery import QueryResult
from bot.engine import run_check, shared_resolver_cache
from bot.names import dns_request
from tests.conftest import WorldFactory
from tests.servers.resolver import FakeClock


def result(status: str, ttl: int | None = None, **kw: object) -> QueryResult:
    return QueryResult("192.0.2.1", 53, "example.com", "NS", status, ttl=ttl, **kw)  # type: ignore[arg-type]


def test_answers_live_for_their_ttl_and_failures_are_not_cached() -> None:
    clock = FakeClock(100.0)
    cache = ResolverCache(clock=clock)
    key = ("192.0.2.1", 53, "example.com", "NS", False)
    cache.put(key, result("answer", ttl=30, values=["ns1.example.net"]))
    assert cache.get(key) is not None
    clock.now += 31
    assert cache.get(key) is None
    for failure in ("servfail", "timeout", "refused", "error"):
        cache.put(key, result(failure))
        assert cache.get(key) is None


def test_ttl_is_capped_and_negative_answers_use_the_negative_ttl() -> None:
    clock = FakeClock(100.0)
    cache = ResolverCache(clock=clock)
    key = ("192.0.2.1", 53, "x.example.com", "SOA", False)
    cache.put(key, result("answer", ttl=86400))
    clock.now += MAX_TTL + 1
    assert cache.get(key) is None
    cache.put(key, result("nxdomain", soa_ttl=3600, soa_minimum=60))
    clock.now += 59
    assert cache.get(key) is not None
    clock.now += 2
    assert cache.get(key) is None


def test_size_is_bounded() -> None:
    cache = ResolverCache(max_entries=3)
    for i in range(10):
        cache.put(("a", 53, f"n{i}.example.com", "A", False), result("answer", ttl=60))
    assert len(cache) == 3


async def test_a_second_check_skips_discovery_queries(dns_world: WorldFactory) -> None:
    world = await dns_world({"_dnsauth": {"TXT": "v"}})
    request = dns_request("example.com", "v", allow_private=True)
    discovery_types = ("SOA", "NS", "A", "AAAA")
    await run_check(request, world.settings)
    asked_first = {t: world.resolver.count(qtype=t) for t in discovery_types}
    assert all(asked_first.values())
    await run_check(request, world.settings)
    assert {t: world.resolver.count(qtype=t) for t in discovery_types} == asked_first
    assert shared_resolver_cache.hits >= 9  # zone (SOA), NS set, 3 x (A, AAAA), CAA at example.com
