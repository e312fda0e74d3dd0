"""The watch scheduler: claim due watches under a lease, re-check them, write back only while leased.

Any number of processes may run a :class:`Scheduler` against one database (PostgreSQL; SQLite for
processes on one host). Each loop iteration claims at most as many due watches as it has free slots
(bounded concurrency), runs their checks concurrently, and writes each result back with a statement
fenced by the claim's lease token (``shared/research/reliability.md`` §5.3, R36-R41):

* a check that overruns its lease, so that another process re-claimed the watch, loses its write: the
  other process's result counts, and each due time leads to one effective check;
* a success changes the status to ``verified`` and inserts the outbox rows (thread reply, parent update,
  subscribed channels) in the same transaction, each with a unique dedupe key, so a verification is
  announced exactly once even if this process dies right after the commit;
* expiry and the one-hour reminder go through the outbox the same way;
* :meth:`Scheduler.stop` lets in-flight checks finish for a grace period, cancels the rest and releases
  this process's leases, so another process does not have to wait for them to run out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from bot.model import CheckRequest, Diagnosis, Verdict
from bot.watches.changes import describe_changes
from bot.watches.schedule import Clock, WatchSchedule
from bot.watches.store import CheckOutcome, Claim, OutboxEvent, Store, Watch

log = logging.getLogger(__name__)

CheckRunner = Callable[[CheckRequest], Awaitable[Diagnosis]]


def make_owner(prefix: str = "dcv") -> str:
    """A lease owner name that is unique per process start and says where it runs (for operators)."""
    return f"{prefix}:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass(slots=True)
class SchedulerStats:
    """Counters for tests, logs and the benchmark."""

    claimed: int = 0
    checked: int = 0
    errors: int = 0
    lease_lost: int = 0
    verified: int = 0
    expired: int = 0
    reminders: int = 0


def decide(
    watch: Watch,
    diagnosis: Diagnosis | None,
    error: str | None,
    *,
    now: float,
    schedule: WatchSchedule,
    rng: random.Random,
) -> CheckOutcome:
    """Turn one re-check into the watch's next state and the events to announce (pure)."""
    if diagnosis is not None and "RESOLVER_UNREACHABLE" in diagnosis.codes():
        # Trouble on dcv-bot's side says nothing about the domain: keep the last real diagnosis and
        # treat the re-check like a failed one (no reminder, retried on the schedule).
        error = error or "dcv-bot's own resolvers did not answer, so the domain was not judged"
        diagnosis = None
    result = diagnosis.to_dict() if diagnosis is not None else watch.last_diagnosis
    verdict = diagnosis.verdict.value if diagnosis is not None else None
    base_payload: dict[str, Any] = {
        "request": watch.request.to_dict(),
        "started_at": watch.created_at,
        "checked_at": now,
        "checks_done": watch.checks_done + 1,
        "first": watch.first_diagnosis,
        "final": result,
        "error": error,
    }
    if diagnosis is not None and diagnosis.verdict is Verdict.PASS:
        payload = dict(base_payload, took=now - watch.created_at)
        payload["changes"] = describe_changes(watch.first_diagnosis, diagnosis.to_dict())
        return CheckOutcome(
            status="verified",
            checked_at=now,
            next_check_at=now,
            verdict=verdict,
            diagnosis=result,
            error=None,
            failing_since=None,
            reminded=watch.reminded,
            events=(OutboxEvent("verified", payload),),
        )
    if now >= watch.expires_at:
        payload = dict(base_payload, watched_for=now - watch.created_at)
        return CheckOutcome(
            status="expired",
            checked_at=now,
            next_check_at=now,
            verdict=verdict,
            diagnosis=result,
            error=error,
            failing_since=watch.failing_since,
            reminded=watch.reminded,
            events=(OutboxEvent("expired", payload),),
        )
    failing_since = watch.failing_since if watch.failing_since is not None else watch.created_at
    events: tuple[OutboxEvent, ...] = ()
    reminded = watch.reminded
    if error is None and schedule.reminder_due(now, failing_since, reminded):
        reminded = True
        events = (OutboxEvent("reminder", dict(base_payload, failing_for=now - failing_since)),)
    retry_after = diagnosis.retry_after if diagnosis is not None else None
    next_at = schedule.next_check_at(
        now,
        watch.checks_done + 1,
        retry_after,
        rng,
        expires_at=watch.expires_at,
        reminder_at=None if reminded else schedule.reminder_at(failing_since),
    )
    return CheckOutcome(
        status="active",
        checked_at=now,
        next_check_at=next_at,
        verdict=verdict,
        diagnosis=result,
        error=error,
        failing_since=failing_since,
        reminded=reminded,
        events=events,
    )


class Scheduler:
    """Re-checks due watches until stopped. See the module docstring for the guarantees."""

    def __init__(
        self,
        store: Store,
        run_check: CheckRunner,
        schedule: WatchSchedule,
        *,
        clock: Clock = time.time,
        owner: str | None = None,
        concurrency: int = 32,
        check_timeout: float = 30.0,
        lease_seconds: float | None = None,
        poll_interval: float = 1.0,
        rng: random.Random | None = None,
        on_events: Callable[[], None] | None = None,
        stop_grace: float = 5.0,
    ) -> None:
        self.store = store
        self.run_check = run_check
        self.schedule = schedule
        self.clock = clock
        self.owner = owner or make_owner("sched")
        self.concurrency = concurrency
        self.check_timeout = check_timeout
        # R41: a lease several times the check deadline, so a live check never loses its lease to a
        # slow database commit, while a dead process's watches come back within minutes.
        self.lease_seconds = lease_seconds if lease_seconds is not None else max(4 * check_timeout, 60.0)
        self.poll_interval = poll_interval
        self.rng = rng or random.Random()
        self.on_events = on_events
        self.stop_grace = stop_grace
        self.stats = SchedulerStats()
        self._wake = asyncio.Event()
        self._stopping = False
        self._in_flight: set[asyncio.Task[None]] = set()

    async def run_once(self) -> int:
        """Claim what is due now (up to ``concurrency``), check it all, and return how many were claimed."""
        claims = await self.store.run(
            self.store.claim_due,
            self.owner,
            now=self.clock(),
            limit=self.concurrency,
            lease_seconds=self.lease_seconds,
        )
        self.stats.claimed += len(claims)
        await asyncio.gather(*(self.process(c) for c in claims))
        return len(claims)

    async def run(self) -> None:
        """Run until :meth:`stop`; database trouble is logged and retried, never fatal."""
        self._stopping = False
        try:
            while not self._stopping:
                # Cleared before claiming, so a check finishing from here on wakes the wait below.
                self._wake.clear()
                free = self.concurrency - len(self._in_flight)
                claims: list[Claim] = []
                if free > 0:
                    try:
                        claims = await self.store.run(
                            self.store.claim_due,
                            self.owner,
                            now=self.clock(),
                            limit=free,
                            lease_seconds=self.lease_seconds,
                        )
                    except Exception:
                        log.exception("claiming due watches failed; retrying")
                self.stats.claimed += len(claims)
                for claim in claims:
                    task = asyncio.create_task(self.process(claim), name=f"watch-{claim.watch.id}")
                    self._in_flight.add(task)
                    task.add_done_callback(self._task_done)
                if claims and len(claims) == free:
                    # More may be due: claim again as soon as a slot frees up.
                    await self._sleep(None)
                else:
                    await self._sleep(self.poll_interval)
        finally:
            await self._drain()

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._wake.set()

    async def _sleep(self, delay: float | None) -> None:
        if self._stopping:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await self._wake.wait()

    def stop(self) -> None:
        """Ask :meth:`run` to return (it drains and releases leases before it does)."""
        self._stopping = True
        self._wake.set()

    async def _drain(self) -> None:
        if self._in_flight:
            _done, pending = await asyncio.wait(set(self._in_flight), timeout=self.stop_grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
        try:
            released = await self.store.run(self.store.release_leases, self.owner)
            if released:
                log.info("released %d leases on stop", released)
        except Exception:
            log.exception("releasing leases failed; they expire on their own")

    async def process(self, claim: Claim) -> None:
        """Re-check one claimed watch and write the outcome back (fenced)."""
        watch = claim.watch
        diagnosis: Diagnosis | None = None
        error: str | None = None
        try:
            async with asyncio.timeout(self.check_timeout):
                diagnosis = await self.run_check(watch.request)
        except TimeoutError:
            error = f"the check did not finish within {self.check_timeout:g} s"
        except Exception as exc:  # a broken check must not kill the scheduler; it is retried later
            log.warning("check of watch %s failed: %s", watch.id, exc)
            error = f"{type(exc).__name__}: {exc}"
        self.stats.checked += 1
        if error is not None:
            self.stats.errors += 1
        outcome = decide(watch, diagnosis, error, now=self.clock(), schedule=self.schedule, rng=self.rng)
        try:
            written = await self.store.run(self.store.finish_check, claim, outcome)
        except Exception:
            log.exception(
                "writing back watch %s failed; its lease will expire and it is re-checked", watch.id
            )
            return
        if not written:
            self.stats.lease_lost += 1
            log.info("watch %s: lease lost during the check; result discarded", watch.id)
            return
        if outcome.status == "verified":
            self.stats.verified += 1
        elif outcome.status == "expired":
            self.stats.expired += 1
        self.stats.reminders += sum(1 for e in outcome.events if e.kind == "reminder")
        if outcome.events and self.on_events is not None:
            self.on_events()
