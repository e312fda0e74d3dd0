"""A small TTL cache for what dcv-bot asks its own recursive resolvers during discovery.

Watches re-check the same domains every minute; without a cache every re-check would ask again for
the zone, its NS set, every nameserver's A and AAAA and the CAA chain, which costs more CPU than the
checks themselves. Only discovery answers are cached (the record is always asked of the
authoritative servers directly), for the remaining TTL the resolver gave, capped, so the cache never
holds anything longer than the resolver itself would. Failures are never cached.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace

from bot.checks.dnsquery import QueryResult

CacheKey = tuple[str, int, str, str, bool]
"""(resolver address, port, query name, type, checking disabled)"""

MAX_TTL = 300.0


class ResolverCache:
    """LRU + TTL cache of resolver answers; safe to share between concurrent checks in one loop."""

    def __init__(self, max_entries: int = 20_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_entries = max_entries
        self.clock = clock
        self._entries: OrderedDict[CacheKey, tuple[float, QueryResult]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: CacheKey) -> QueryResult | None:
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return None
        expires, result = entry
        if expires <= self.clock():
            del self._entries[key]
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return replace(result, rtt_ms=0.0)

    def put(self, key: CacheKey, result: QueryResult) -> None:
        ttl = _cacheable_ttl(result)
        if ttl is None or ttl <= 0:
            return
        self._entries[key] = (self.clock() + min(ttl, MAX_TTL), result)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


def _cacheable_ttl(result: QueryResult) -> float | None:
    if result.status == "answer" and result.ttl is not None:
        return float(result.ttl)
    if result.status in {"nxdomain", "nodata"}:
        ttl = result.negative_ttl
        return float(ttl) if ttl is not None else None
    return None
