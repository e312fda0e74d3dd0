"""When to look again: backoff with jitter, the CA's token lifetime, and the one-hour reminder.

Pure arithmetic on epoch seconds: every function takes ``now`` (and a random source for jitter) as
arguments, so Slack watches, ``dcv ... --wait`` and the tests share one schedule and no test waits.

The shape follows the CAs' own polling (DigiCert: every minute for 15 minutes, then every 5, then every
15; ``shared/research/dcv-anchors.md``) and the reliability research (§5.5): the first re-check comes
no earlier than the diagnosis' ``retry_after`` (a negative-cache or record TTL: asking sooner cannot
change the answer) nor ``DCV_WATCH_MIN_INTERVAL``; then about 1, 5 and 15 minutes, capped at 30.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from bot.cas import profile_for
from bot.config import Settings

Clock = Callable[[], float]
"""Returns the current time as UTC epoch seconds (``time.time`` in production, a fake in tests)."""

HOUR = 3600.0
DAY = 24 * HOUR


@dataclass(frozen=True, slots=True)
class WatchSchedule:
    """The re-check schedule of a watch.

    ``steps`` are the nominal gaps after the first re-check (seconds); past the last step the gap stays
    at ``cap``. ``jitter`` is the relative spread of each gap (0.2 means ±20 %), so that many watches
    created together do not re-check in lockstep. ``min_interval`` is a floor on every gap.
    """

    min_interval: float = 60.0
    ttl: float = 3 * DAY
    steps: tuple[float, ...] = (60.0, 300.0, 900.0)
    cap: float = 1800.0
    jitter: float = 0.2
    reminder_after: float = HOUR

    @classmethod
    def from_settings(cls, settings: Settings) -> WatchSchedule:
        return cls(min_interval=settings.watch_min_interval, ttl=settings.watch_ttl)

    def nominal_gap(self, checks_done: int) -> float:
        """The gap before re-check number ``checks_done + 1`` (0-based: after the first re-check, 1 min)."""
        if checks_done <= 0:
            return self.min_interval
        index = checks_done - 1
        return min(self.cap, self.steps[index]) if index < len(self.steps) else self.cap

    def _jittered(self, gap: float, rng: random.Random) -> float:
        return gap * (1.0 + rng.uniform(-self.jitter, self.jitter))

    def first_check_at(self, now: float, retry_after: float | None, rng: random.Random) -> float:
        """When a new watch (of a check just made at ``now``) is first re-checked."""
        return self.next_check_at(now, 0, retry_after, rng)

    def next_check_at(
        self,
        now: float,
        checks_done: int,
        retry_after: float | None,
        rng: random.Random,
        *,
        expires_at: float | None = None,
        reminder_at: float | None = None,
    ) -> float:
        """When to re-check after ``checks_done`` re-checks, the latest at ``now``.

        The gap is the jittered step, raised to ``min_interval`` and to ``retry_after`` (nothing can
        change before a cached answer expires). It is then pulled in to ``reminder_at`` when that is at
        least ``min_interval`` away (so the one-hour reminder carries a fresh diagnosis on time), and to
        ``expires_at`` (one last look at the end: a watch never outlives its expiry).
        """
        gap = max(self._jittered(self.nominal_gap(checks_done), rng), self.min_interval)
        if retry_after is not None and retry_after > 0:
            gap = max(gap, float(retry_after))
        at = now + gap
        if reminder_at is not None and now + self.min_interval <= reminder_at < at:
            at = reminder_at
        if expires_at is not None:
            at = min(at, expires_at)
        return at

    def expires_at(self, created_at: float, method: str, ca: str | None) -> float:
        """``DCV_WATCH_TTL`` after creation; a file watch never past the CA's file validity.

        A validation file is only good for a while after download (Alibaba, TrustAsia/Tencent: 3 days;
        :mod:`bot.cas`); watching it longer would only watch a file the CA no longer accepts.
        """
        ttl = self.ttl
        profile = profile_for(ca)
        if method == "file" and profile is not None and profile.file_validity_hours:
            ttl = min(ttl, profile.file_validity_hours * HOUR)
        return created_at + ttl

    def reminder_at(self, failing_since: float | None) -> float | None:
        """When the one "still failing after an hour" reminder is due, if the watch is failing."""
        return None if failing_since is None else failing_since + self.reminder_after

    def reminder_due(self, now: float, failing_since: float | None, reminded: bool) -> bool:
        at = self.reminder_at(failing_since)
        return not reminded and at is not None and now >= at


def parse_duration(text: str) -> float:
    """Parse ``90s``, ``30m``, ``2h``, ``1d`` or a bare number of seconds; raise ValueError otherwise."""
    raw = text.strip().lower()
    units = {"s": 1.0, "m": 60.0, "h": HOUR, "d": DAY}
    scale = 1.0
    if raw and raw[-1] in units:
        scale = units[raw[-1]]
        raw = raw[:-1]
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{text!r} is not a duration; use e.g. 90s, 30m or 2h") from None
    if not value > 0 or value != value or value * scale > 30 * DAY:
        raise ValueError(f"{text!r} is not a duration between 1 second and 30 days")
    return value * scale
