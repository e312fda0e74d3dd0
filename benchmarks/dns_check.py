"""Benchmark: one DNS check against nameservers that are each DELAY away, vs asking them in turn.

Starts four authoritative nameserver addresses on loopback that wait ``--delay`` seconds before every
answer (in-process: this kernel has no netem), a caching resolver in front, and runs the real check.
Prints the check's wall time beside

* the slowest single path: discovery plus one nameserver's record and SOA queries, and
* the serial time: discovery plus asking every nameserver address, one query after another,

and the ratios. Goal (issue 2): check / slowest single path < 1.3 with 4 addresses at 100 ms.

    .venv/bin/python benchmarks/dns_check.py [--delay 0.1] [--servers 4] [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.checks.dnsquery import Deadline, DnsClient
from bot.config import ServerAddress, Settings
from bot.engine import run_check
from bot.names import dns_request
from tests.servers.fixtures import allocate_loopback, start_lab
from tests.servers.resolver import CachingResolver
from tests.servers.zones import nameservers_for, zone_text

TOKEN = "benchmark-token-0123456789"


async def main(delay: float, servers: int, runs: int) -> None:
    addresses = allocate_loopback(servers)
    zone = zone_text(
        "example.com", {"_dnsauth": {"TXT": TOKEN}}, nameservers=nameservers_for("example.com", addresses)
    )
    lab = await start_lab({"example.com": zone}, servers, addresses=addresses)
    resolver = CachingResolver(allocate_loopback()[0], 0, {"example.com": lab.endpoints})
    public = CachingResolver(allocate_loopback()[0], 0, {"example.com": lab.endpoints})
    await resolver.start()
    await public.start()
    settings = Settings(
        resolvers=(ServerAddress(resolver.address, resolver.port),),
        public_resolvers=(ServerAddress(public.address, public.port, "public"),),
        dns_port=lab.port,
        allow_private=True,
        timeout=10.0,
    )
    request = dns_request("example.com", TOKEN, allow_private=True)
    try:
        warm = await run_check(request, settings)  # resolvers now hold the delegation, as real ones do
        assert warm.verdict.value == "pass", warm.summary
        lab.add_fault("delay", delay)
        checks, singles, serials = [], [], []
        for _ in range(runs):
            started = time.perf_counter()
            diagnosis = await run_check(request, settings)
            checks.append(time.perf_counter() - started)
            assert diagnosis.verdict.value == "pass", diagnosis.summary
            discovery = await _discovery_time(settings)
            client = DnsClient(Deadline(30), query_timeout=5, max_in_flight=64)
            per_server = []
            for address in lab.addresses:
                started = time.perf_counter()
                await asyncio.gather(
                    client.query(address, lab.port, request.target, "TXT", recursion=False),
                    client.query(address, lab.port, "example.com", "SOA", recursion=False),
                )
                per_server.append(time.perf_counter() - started)
            singles.append(discovery + max(per_server))
            serial_total = discovery
            for address in lab.addresses:
                for qname, rtype in ((request.target, "TXT"), ("example.com", "SOA")):
                    started = time.perf_counter()
                    await client.query(address, lab.port, qname, rtype, recursion=False)
                    serial_total += time.perf_counter() - started
            serials.append(serial_total)
    finally:
        await lab.stop()
        await resolver.stop()
        await public.stop()
    check, single, serial = (statistics.median(x) * 1000 for x in (checks, singles, serials))
    print(f"nameserver addresses: {servers}, injected delay per answer: {delay * 1000:.0f} ms, runs: {runs}")
    spread = f"(min {min(checks) * 1000:.1f}, max {max(checks) * 1000:.1f})"
    print(f"full check (median):            {check:8.1f} ms   {spread}")
    print(f"slowest single path (median):   {single:8.1f} ms")
    print(f"asking one after another:       {serial:8.1f} ms")
    print(f"check / slowest single path:    {check / single:8.2f}   (goal < 1.3)")
    print(f"one after another / check:      {serial / check:8.2f}")


async def _discovery_time(settings: Settings) -> float:
    client = DnsClient(Deadline(30), query_timeout=5, max_in_flight=64)
    resolver = settings.resolvers[0]
    started = time.perf_counter()
    await client.query(resolver.address, resolver.port, "_dnsauth.example.com", "SOA", recursion=True)
    await client.query(resolver.address, resolver.port, "example.com", "NS", recursion=True)
    await client.query(resolver.address, resolver.port, "ns1.example.com", "A", recursion=True)
    return time.perf_counter() - started


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--delay", type=float, default=0.1, help="seconds each nameserver waits (default 0.1)"
    )
    parser.add_argument("--servers", type=int, default=4, help="nameserver addresses (default 4)")
    parser.add_argument("--runs", type=int, default=5)
    options = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # the lab resolver warns about zones it does not serve
    asyncio.run(main(options.delay, options.servers, options.runs))
