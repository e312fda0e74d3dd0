"""The outbox sender: deliver queued watch posts once, survive rate limits, crashes and restarts.

Rows come from :meth:`bot.watches.store.Store.finish_check` (same transaction as the status change).
A sender claims due ``pending`` rows under a lease (several processes may run one), hands each to a
:class:`Deliverer` (the Slack one lives in :mod:`bot.slack.watches`) and records the outcome fenced by
the lease token (``shared/research/reliability.md`` §5.3, R29/R30):

* success ⇒ ``sent`` with the message's ``ts``;
* :class:`RateLimited` (HTTP 429) ⇒ the row is put back at ``now + Retry-After`` plus up to a second
  of jitter (capped at 10 minutes), not counted as a failure and never dropped; the worker is released
  at once instead of sleeping inline;
* :class:`PermanentDeliveryError` (the channel is gone, the bot was removed) ⇒ ``dead`` at once;
* anything else ⇒ exponential backoff with jitter, ``dead`` after ``max_failures``.

``attempts`` counts claims. A row claimed before (``attempts > 1``) may have been posted by a process
that died before it could record that, so the deliverer is first asked to find the earlier post (Slack:
the message metadata carries the dedupe key) and the row is marked sent if it exists. Delivery is
at-least-once underneath; the dedupe key and that reconciliation make the visible effect once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from bot.watches.schedule import Clock
from bot.watches.scheduler import make_owner
from bot.watches.store import OutboxItem, Store

log = logging.getLogger(__name__)

MAX_RETRY_AFTER = 600.0
BACKOFF_BASE = 5.0


class RateLimited(Exception):
    """The API asked us to wait ``retry_after`` seconds (HTTP 429)."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"rate limited; retry after {retry_after:g} s")
        self.retry_after = retry_after


class PermanentDeliveryError(Exception):
    """Retrying cannot help (channel not found, bot not in channel, invalid auth)."""


class Deliverer(Protocol):
    """Makes the posts of the outbox (Slack in production, a recorder in tests)."""

    async def deliver(self, item: OutboxItem) -> str | None:
        """Post ``item``; return the message ts (or None). Raise the errors of this module."""

    async def find_delivered(self, item: OutboxItem) -> str | None:
        """The ts of an earlier post of ``item`` (same dedupe key); None if none, or no way to tell."""


@dataclass(slots=True)
class OutboxStats:
    sent: int = 0
    reconciled: int = 0
    rate_limited: int = 0
    failed: int = 0
    dead: int = 0
    lease_lost: int = 0


class OutboxSender:
    """Delivers due outbox rows until stopped."""

    def __init__(
        self,
        store: Store,
        deliverer: Deliverer,
        *,
        clock: Clock = time.time,
        owner: str | None = None,
        concurrency: int = 4,
        lease_seconds: float = 120.0,
        max_failures: int = 6,
        poll_interval: float = 1.0,
        channel_interval: float = 1.0,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.deliverer = deliverer
        self.clock = clock
        self.owner = owner or make_owner("outbox")
        self.concurrency = concurrency
        self.lease_seconds = lease_seconds
        self.max_failures = max_failures
        self.poll_interval = poll_interval
        # R33: Slack asks for about one message per second per channel; pace in-process.
        self.channel_interval = channel_interval
        self.rng = rng or random.Random()
        self.stats = OutboxStats()
        self._wake = asyncio.Event()
        self._stopping = False
        self._channel_locks: dict[str, asyncio.Lock] = {}
        self._channel_last: dict[str, float] = {}

    def wake(self) -> None:
        """New rows were queued: look now rather than at the next poll."""
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def run_once(self) -> int:
        """Claim and deliver what is due now; return how many rows were claimed."""
        items = await self.store.run(
            self.store.claim_outbox,
            self.owner,
            now=self.clock(),
            limit=self.concurrency,
            lease_seconds=self.lease_seconds,
        )
        await asyncio.gather(*(self.send(i) for i in items))
        return len(items)

    async def run(self) -> None:
        """Run until :meth:`stop`; in-flight posts finish (a post is not interrupted halfway)."""
        self._stopping = False
        try:
            while not self._stopping:
                self._wake.clear()
                try:
                    claimed = await self.run_once()
                except Exception:
                    log.exception("outbox round failed; retrying")
                    claimed = 0
                if claimed == self.concurrency:
                    continue
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.poll_interval):
                        await self._wake.wait()
        finally:
            with contextlib.suppress(Exception):
                await self.store.run(self.store.release_leases, self.owner)

    async def send(self, item: OutboxItem) -> None:
        """Deliver one claimed row and record the outcome (fenced by its lease token)."""
        try:
            if item.attempts > 1:
                earlier = await self.deliverer.find_delivered(item)
                if earlier is not None:
                    self.stats.reconciled += 1
                    await self._record_sent(item, earlier)
                    return
            async with self._paced(item.channel_id):
                ts = await self.deliverer.deliver(item)
        except RateLimited as exc:
            self.stats.rate_limited += 1
            wait = min(max(exc.retry_after, 1.0), MAX_RETRY_AFTER) + self.rng.uniform(0.0, 1.0)
            await self._put_back(item, at=self.clock() + wait, error=str(exc), failed=False)
            return
        except PermanentDeliveryError as exc:
            self.stats.dead += 1
            log.error("outbox %s (%s) cannot be delivered: %s", item.id, item.dedupe_key, exc)
            await self._put_back(item, at=self.clock(), error=str(exc), failed=True, dead=True)
            return
        except Exception as exc:
            failures = item.failures + 1
            dead = failures >= self.max_failures
            self.stats.failed += 1
            if dead:
                self.stats.dead += 1
                log.error(
                    "outbox %s (%s) gave up after %d failures: %s", item.id, item.dedupe_key, failures, exc
                )
            else:
                log.warning("outbox %s (%s) failed (%d): %s", item.id, item.dedupe_key, failures, exc)
            delay = min(MAX_RETRY_AFTER, BACKOFF_BASE * 2 ** (failures - 1))
            at = self.clock() + delay * self.rng.uniform(0.5, 1.0)
            await self._put_back(item, at=at, error=f"{type(exc).__name__}: {exc}", failed=True, dead=dead)
            return
        self.stats.sent += 1
        await self._record_sent(item, ts)

    async def _record_sent(self, item: OutboxItem, ts: str | None) -> None:
        if not await self.store.run(self.store.mark_sent, item, slack_ts=ts, now=self.clock()):
            self.stats.lease_lost += 1
            log.warning("outbox %s: lease lost before recording the post", item.id)

    async def _put_back(
        self, item: OutboxItem, *, at: float, error: str, failed: bool, dead: bool = False
    ) -> None:
        if not await self.store.run(
            self.store.reschedule_outbox, item, at=at, error=error, failed=failed, dead=dead
        ):
            self.stats.lease_lost += 1

    @contextlib.asynccontextmanager
    async def _paced(self, channel: str) -> AsyncIterator[None]:
        lock = self._channel_locks.setdefault(channel, asyncio.Lock())
        async with lock:
            if self.channel_interval > 0:
                wait = self._channel_last.get(channel, 0.0) + self.channel_interval - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
            try:
                yield
            finally:
                self._channel_last[channel] = time.monotonic()
