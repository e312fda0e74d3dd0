"""``dcv dns|file ... --wait DURATION``: the watch schedule in a terminal.

Checks, then re-checks on the same schedule as a Slack watch (first no earlier than ``retry_after`` and
``DCV_WATCH_MIN_INTERVAL``, then about 1, 5, 15 minutes, capped at 30, with jitter; one last look
when the time is up) until the verdict is ``pass`` or DURATION has passed, printing a line per re-check
and what changed since the previous one. Nothing is stored: a terminal wait lives as long as the command.
The clock and the sleep are arguments, so tests run an hour of waiting in no time.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from bot.model import CheckRequest, Diagnosis, Verdict
from bot.watches.changes import describe_changes, format_duration
from bot.watches.schedule import Clock, WatchSchedule

Sleep = Callable[[float], Awaitable[None]]
Print = Callable[[str], None]


async def wait_until_pass(
    request: CheckRequest,
    run_check: Callable[[CheckRequest], Awaitable[Diagnosis]],
    schedule: WatchSchedule,
    duration: float,
    *,
    report: Print,
    first: Diagnosis | None = None,
    clock: Clock = time.time,
    sleep: Sleep = asyncio.sleep,
    rng: random.Random | None = None,
) -> Diagnosis:
    """Re-check until pass or ``duration`` seconds from now; return the last diagnosis.

    ``report`` receives one line per re-check (and per change); ``first`` is a diagnosis already made.
    """
    rng = rng or random.Random()
    started = clock()
    end = started + duration
    diagnosis = first or await run_check(request)
    checks = 0
    while diagnosis.verdict is not Verdict.PASS:
        now = clock()
        if now >= end:
            report(f"gave up after {format_duration(now - started)}: still {diagnosis.verdict.value}")
            break
        at = schedule.next_check_at(now, checks, diagnosis.retry_after, rng, expires_at=end)
        report(f"{diagnosis.verdict.value}: next look at {_hhmmss(at)} (in {format_duration(at - now)})")
        await sleep(max(0.0, at - now))
        previous = diagnosis
        diagnosis = await run_check(request)
        checks += 1
        for line in describe_changes(previous.to_dict(), diagnosis.to_dict()):
            report(f"  changed: {line}")
    if diagnosis.verdict is Verdict.PASS and checks:
        report(f"passes after {format_duration(clock() - started)} ({checks} re-checks)")
    return diagnosis


def _hhmmss(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).astimezone().strftime("%H:%M:%S")
