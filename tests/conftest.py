"""Fixtures shared by the whole suite: loopback DNS labs and a ready-made DNS "world"."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_asyncio

from bot.config import ServerAddress, Settings
from tests.servers.dnsserver import AuthServer
from tests.servers.fixtures import (  # noqa: F401  (re-exported fixtures)
    DnsLab,
    allocate_loopback,
    auth_server,
    caching_resolver,
    dns_lab,
    fake_clock,
    loopback,
    start_lab,
)
from tests.servers.resolver import CachingResolver
from tests.servers.zones import zone_text


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may inherit Slack credentials or dcv settings from the developer's shell."""
    import os

    for key in list(os.environ):
        if key.startswith(("SLACK_", "DCV_")) or key == "PORT":
            monkeypatch.delenv(key, raising=False)


@pytest.fixture(autouse=True)
def _fresh_discovery_cache() -> None:
    """Tests rebuild zones under the same names; answers cached by an earlier test must not leak."""
    from bot.engine import shared_resolver_cache

    shared_resolver_cache.clear()


@dataclass
class DnsWorld:
    """Authoritative servers for a zone, a recursive resolver in front, and settings pointing at them."""

    zone: str
    lab: DnsLab
    resolver: CachingResolver
    public: list[CachingResolver]
    settings: Settings
    extra: dict[str, Any] = field(default_factory=dict)

    def set_records(
        self,
        records: Mapping[str, Mapping[str, Any]],
        *,
        serial: int,
        only: Sequence[int] | None = None,
        **zone_kw: Any,
    ) -> None:
        """Replace the zone on all (or ``only`` some) servers with ``records`` at ``serial``."""
        text = world_zone(self.zone, self.lab.addresses, records, serial=serial, **zone_kw)
        self.lab.set_zone(self.zone, text, only=only)

    def flush(self) -> None:
        """Empty every resolver cache, dcv-bot's own discovery cache included."""
        from bot.engine import shared_resolver_cache

        shared_resolver_cache.clear()
        for resolver in [self.resolver, *self.public]:
            resolver.flush()


def world_zone(
    origin: str, addresses: Sequence[str], records: Mapping[str, Mapping[str, Any]] | None, **kw: Any
) -> str:
    """Zone text whose NS records name ns1..nsN.<origin>, with A records at the lab's addresses."""
    records = dict(records or {})
    ns_names = [f"ns{i + 1}.{origin}." for i in range(len(addresses))]
    for i, address in enumerate(addresses):
        records.setdefault(f"ns{i + 1}", {})
        records[f"ns{i + 1}"] = {**records[f"ns{i + 1}"], "A": address}
    return zone_text(origin, records, ns=ns_names, **kw)


WorldFactory = Callable[..., Awaitable[DnsWorld]]


@pytest_asyncio.fixture
async def dns_world() -> AsyncIterator[WorldFactory]:
    """``await dns_world(records, zone="example.com", n=3, public=1, **zone_kw)`` -> :class:`DnsWorld`."""
    started: list[Any] = []

    async def factory(
        records: Mapping[str, Mapping[str, Any]] | None = None,
        *,
        zone: str = "example.com",
        n: int = 3,
        public: int = 1,
        serial: int = 1,
        extra_zones: Mapping[str, str] | None = None,
        resolver_kw: Mapping[str, Any] | None = None,
        timeout: float = 4.0,
        **zone_kw: Any,
    ) -> DnsWorld:
        addresses = allocate_loopback(n)
        zones: dict[str, Any] = {zone: world_zone(zone, addresses, records, serial=serial, **zone_kw)}
        zones.update(extra_zones or {})
        lab = await start_lab(zones, n, addresses=addresses)
        started.append(lab)
        mapping = {origin: lab.endpoints for origin in zones}
        resolver = CachingResolver(allocate_loopback()[0], 0, mapping, **(resolver_kw or {}))
        await resolver.start()
        started.append(resolver)
        publics = []
        for _ in range(public):
            pub = CachingResolver(allocate_loopback()[0], 0, mapping, **(resolver_kw or {}))
            await pub.start()
            started.append(pub)
            publics.append(pub)
        settings = Settings(
            resolvers=(ServerAddress(resolver.address, resolver.port),),
            public_resolvers=tuple(
                ServerAddress(p.address, p.port, f"public{i + 1}") for i, p in enumerate(publics)
            ),
            dns_port=lab.port,
            allow_private=True,
            timeout=timeout,
            dns_query_timeout=0.5,
        )
        return DnsWorld(zone, lab, resolver, publics, settings)

    yield factory
    for item in reversed(started):
        await item.stop()


__all__ = ["AuthServer", "DnsWorld", "WorldFactory"]
