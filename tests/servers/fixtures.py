"""Pytest fixtures and factories for the in-process DNS servers.

Wire them into a conftest with ``from tests.servers.fixtures import *  # noqa: F403`` (or import the
names listed in ``__all__``). Fixtures:

* ``dns_lab`` — async factory: ``lab = await dns_lab({"example.test.": text}, n=3)`` starts *n*
  :class:`AuthServer` on fresh distinct loopback addresses sharing one port; all stopped at teardown.
* ``caching_resolver`` — async factory: ``r = await caching_resolver(lab, clock=fake_clock)`` starts a
  :class:`CachingResolver` whose upstreams are the lab's servers for every zone the lab serves (or give
  ``upstreams={zone: [...]}``); stopped at teardown.
* ``auth_server`` — async factory for a single server: ``s = await auth_server({origin: text})``.
* ``fake_clock`` — a :class:`FakeClock` at t=1000.
* ``loopback`` — ``loopback(n)`` returns *n* fresh loopback addresses (not bound).
"""

from __future__ import annotations

import errno
import itertools
import os
import random
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

import dns.name
import pytest
import pytest_asyncio

from ._base import FaultKind
from .dnsserver import AuthServer, Fault, ZoneSpec
from .resolver import CachingResolver, FakeClock, Upstream
from .zones import RecordValues, to_name

__all__ = [
    "DnsLab",
    "allocate_loopback",
    "auth_server",
    "caching_resolver",
    "dns_lab",
    "fake_clock",
    "loopback",
    "start_lab",
]

# ------------------------------------------------------------------------------------------------------
# Loopback address allocation: 127.W.B.H with W = 0 without pytest-xdist, else worker number + 1
# (gw0 -> 1, gw1 -> 2, ...), B in 1..250 (so 127.0.0.0/24 stays free for hand-written tests), H in 1..254.


def _worker_octet() -> int:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    digits = "".join(ch for ch in worker if ch.isdigit())
    return (int(digits) + 1) % 250 if digits else 0


_lock = threading.Lock()
_hosts = itertools.count(random.randrange(250 * 254))


def allocate_loopback(n: int = 1) -> list[str]:
    """*n* consecutive loopback addresses never handed out before in this process (until wrap-around).

    They come from 127.W.1.1 - 127.W.250.254 (W = xdist worker number + 1, or 0 without xdist), so
    127.0.0.0/24 is never used and xdist workers never collide. A block of *n* never straddles a /24.
    """
    if not 1 <= n <= 254:
        raise ValueError("allocate between 1 and 254 addresses at a time")
    w = _worker_octet()
    with _lock:
        while True:
            start = next(_hosts) % (250 * 254)
            block, host = divmod(start, 254)
            if host + n <= 254:
                for _ in range(n - 1):
                    next(_hosts)
                return [f"127.{w}.{block + 1}.{host + 1 + i}" for i in range(n)]


# ------------------------------------------------------------------------------------------------------


class DnsLab:
    """A group of :class:`AuthServer` on distinct loopback addresses sharing one port.

    ``servers[0]`` is conventionally the primary. Zone edits go to all servers unless ``only=`` names
    some (indices or server objects): editing only the primary leaves the others as lagging secondaries
    (older serial, old records).
    """

    def __init__(self, servers: Sequence[AuthServer]) -> None:
        self.servers: list[AuthServer] = list(servers)

    @property
    def port(self) -> int:
        """The port every server listens on (UDP and TCP)."""
        return self.servers[0].port

    @property
    def addresses(self) -> list[str]:
        """The servers' addresses, in order."""
        return [s.address for s in self.servers]

    @property
    def endpoints(self) -> list[tuple[str, int]]:
        """``[(address, port), ...]``."""
        return [s.endpoint for s in self.servers]

    @property
    def primary(self) -> AuthServer:
        """``servers[0]``."""
        return self.servers[0]

    @property
    def secondaries(self) -> list[AuthServer]:
        """``servers[1:]``."""
        return self.servers[1:]

    def __getitem__(self, index: int) -> AuthServer:
        return self.servers[index]

    def __iter__(self) -> Any:
        return iter(self.servers)

    def __len__(self) -> int:
        return len(self.servers)

    def _select(self, only: Iterable[int | AuthServer] | None) -> list[AuthServer]:
        if only is None:
            return self.servers
        return [self.servers[s] if isinstance(s, int) else s for s in only]

    def zone_origins(self) -> list[dns.name.Name]:
        """Every zone origin served by at least one server."""
        return sorted({origin for s in self.servers for origin in s.zones})

    def set_zone(
        self, origin: str, spec: ZoneSpec, *, only: Iterable[int | AuthServer] | None = None
    ) -> None:
        """Serve zone *origin* (text or zone) on all servers, or only on *only*."""
        for server in self._select(only):
            server.set_zone(origin, spec)

    def remove_zone(self, origin: str, *, only: Iterable[int | AuthServer] | None = None) -> None:
        """Stop serving *origin* on all servers (or *only* some)."""
        for server in self._select(only):
            server.remove_zone(origin)

    def update_record(
        self,
        name: str,
        rdtype: str | int,
        values: RecordValues,
        ttl: int | None = None,
        *,
        only: Iterable[int | AuthServer] | None = None,
        bump: bool = True,
    ) -> None:
        """:meth:`AuthServer.update_record` on all servers (or *only* some)."""
        for server in self._select(only):
            server.update_record(name, rdtype, values, ttl, bump=bump)

    def add_record(
        self,
        name: str,
        rdtype: str | int,
        values: RecordValues,
        ttl: int | None = None,
        *,
        only: Iterable[int | AuthServer] | None = None,
        bump: bool = True,
    ) -> None:
        """:meth:`AuthServer.add_record` on all servers (or *only* some)."""
        for server in self._select(only):
            server.add_record(name, rdtype, values, ttl, bump=bump)

    def remove_record(
        self,
        name: str,
        rdtype: str | int | None = None,
        value: str | tuple[str, ...] | None = None,
        *,
        only: Iterable[int | AuthServer] | None = None,
        bump: bool = True,
    ) -> None:
        """:meth:`AuthServer.remove_record` on all servers (or *only* some)."""
        for server in self._select(only):
            server.remove_record(name, rdtype, value, bump=bump)

    def add_fault(
        self,
        kind: FaultKind | str,
        value: Any = None,
        *,
        only: Iterable[int | AuthServer] | None = None,
        **match: Any,
    ) -> list[Fault]:
        """:meth:`AuthServer.add_fault` on all servers (or *only* some); returns the faults."""
        return [server.add_fault(kind, value, **match) for server in self._select(only)]

    def clear_faults(self) -> None:
        """Remove every fault from every server."""
        for server in self.servers:
            server.clear_faults()

    def count(self, qname: str | None = None, qtype: str | int | None = None, transport: Any = None) -> int:
        """Total queries matching the filters over all servers."""
        return sum(server.count(qname, qtype, transport) for server in self.servers)

    def reset_stats(self) -> None:
        """Reset the query counters of every server."""
        for server in self.servers:
            server.reset_stats()

    async def stop(self) -> None:
        """Stop every server."""
        for server in self.servers:
            await server.stop()

    async def __aenter__(self) -> DnsLab:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


async def start_lab(
    zones: Mapping[str, ZoneSpec] | None = None,
    n: int = 3,
    *,
    addresses: Sequence[str] | None = None,
    port: int = 0,
) -> DnsLab:
    """Start *n* :class:`AuthServer` (on *addresses*, or freshly allocated ones) sharing one port.

    With ``port=0`` the first server picks an ephemeral port and the others bind the same number; if one
    of them finds it taken, everything is restarted on another port. Each server gets its own copy of
    *zones*. Use ``async with await start_lab(...) as lab:`` or call ``await lab.stop()``.
    """
    for attempt in range(20):
        addrs = list(addresses) if addresses is not None else allocate_loopback(n)
        started: list[AuthServer] = []
        try:
            for i, addr in enumerate(addrs):
                server_port = started[0].port if started else port
                server = AuthServer(addr, server_port, zones, name=f"ns{i + 1}@{addr}")
                await server.start()
                started.append(server)
        except OSError as e:
            for server in started:
                await server.stop()
            if port or e.errno != errno.EADDRINUSE or attempt == 19:
                raise
            continue
        return DnsLab(started)
    raise AssertionError("unreachable")


# ------------------------------------------------------------------------------------------------------
# Fixtures


class LabFactory(Protocol):
    """Signature of the ``dns_lab`` fixture."""

    def __call__(
        self,
        zones: Mapping[str, ZoneSpec] | None = ...,
        n: int = ...,
        *,
        addresses: Sequence[str] | None = ...,
        port: int = ...,
    ) -> Awaitable[DnsLab]: ...


class ResolverFactory(Protocol):
    """Signature of the ``caching_resolver`` fixture."""

    def __call__(
        self,
        lab: DnsLab | None = ...,
        *,
        upstreams: Mapping[str, Sequence[Upstream]] | None = ...,
        address: str | None = ...,
        port: int = ...,
        **kwargs: Any,
    ) -> Awaitable[CachingResolver]: ...


@pytest.fixture
def loopback() -> Callable[[int], list[str]]:
    """``loopback(n)``: *n* fresh loopback addresses (see :func:`allocate_loopback`)."""
    return allocate_loopback


@pytest.fixture
def fake_clock() -> FakeClock:
    """A :class:`FakeClock` starting at 1000.0; ``fake_clock.advance(seconds)``."""
    return FakeClock()


@pytest_asyncio.fixture
async def dns_lab() -> AsyncIterator[LabFactory]:
    """Async factory ``await dns_lab(zones, n=3, addresses=None, port=0) -> DnsLab``; stopped at teardown."""
    labs: list[DnsLab] = []

    async def factory(
        zones: Mapping[str, ZoneSpec] | None = None,
        n: int = 3,
        *,
        addresses: Sequence[str] | None = None,
        port: int = 0,
    ) -> DnsLab:
        lab = await start_lab(zones, n, addresses=addresses, port=port)
        labs.append(lab)
        return lab

    yield factory
    for lab in labs:
        await lab.stop()


@pytest_asyncio.fixture
async def auth_server() -> AsyncIterator[Callable[..., Awaitable[AuthServer]]]:
    """Async factory ``await auth_server(zones=None, address=None, port=0) -> AuthServer`` (started)."""
    servers: list[AuthServer] = []

    async def factory(
        zones: Mapping[str, ZoneSpec] | None = None, address: str | None = None, port: int = 0
    ) -> AuthServer:
        server = AuthServer(address or allocate_loopback()[0], port, zones)
        await server.start()
        servers.append(server)
        return server

    yield factory
    for server in servers:
        await server.stop()


@pytest_asyncio.fixture
async def caching_resolver() -> AsyncIterator[ResolverFactory]:
    """Async factory ``await caching_resolver(lab=None, *, upstreams=None, address=None, port=0, **kw)``.

    With *lab*, every zone the lab serves is forwarded to all the lab's servers (``upstreams`` entries are
    added on top). Other keyword arguments go to :class:`CachingResolver` (``clock=``,
    ``dnssec_bogus_names=``, ``upstream_timeout=``, ...). Stopped at teardown.
    """
    resolvers: list[CachingResolver] = []

    async def factory(
        lab: DnsLab | None = None,
        *,
        upstreams: Mapping[str, Sequence[Upstream]] | None = None,
        address: str | None = None,
        port: int = 0,
        **kwargs: Any,
    ) -> CachingResolver:
        mapping: dict[str, Sequence[Upstream]] = {}
        if lab is not None:
            for origin in lab.zone_origins():
                mapping[origin.to_text()] = lab.endpoints
        mapping.update({to_name(z).to_text(): s for z, s in (upstreams or {}).items()})
        resolver = CachingResolver(address or allocate_loopback()[0], port, mapping, **kwargs)
        await resolver.start()
        resolvers.append(resolver)
        return resolver

    yield factory
    for resolver in resolvers:
        await resolver.stop()
