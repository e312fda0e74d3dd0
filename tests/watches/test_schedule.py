"""Properties of the re-check schedule (no clock is ever waited on)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.config import Settings
from bot.model import Verdict
from bot.watches.changes import describe_changes, format_duration
from bot.watches.schedule import DAY, HOUR, WatchSchedule, parse_duration
from tests.watches.helpers import dns_request, make_diag

NOW = 1_800_000_000.0
schedules = st.builds(
    WatchSchedule,
    min_interval=st.floats(1, 600),
    ttl=st.floats(3600, 30 * DAY),
    jitter=st.floats(0, 0.5),
)


@given(schedules, st.integers(0, 500), st.one_of(st.none(), st.integers(0, 100_000)), st.integers(0, 2**32))
def test_gap_is_within_its_envelope(s: WatchSchedule, n: int, retry_after: int | None, seed: int) -> None:
    at = s.next_check_at(NOW, n, retry_after, random.Random(seed))
    gap = at - NOW
    nominal = s.nominal_gap(n)
    assert gap >= s.min_interval - 1e-6
    if retry_after:
        assert gap >= retry_after - 1e-6
    upper = max(nominal * (1 + s.jitter), s.min_interval, retry_after or 0)
    assert gap <= upper + 1e-6
    assert gap <= max(s.cap * (1 + s.jitter), s.min_interval, retry_after or 0) + 1e-6


@given(schedules)
def test_nominal_gaps_back_off_then_cap(s: WatchSchedule) -> None:
    gaps = [s.nominal_gap(n) for n in range(1, 12)]
    assert gaps == sorted(gaps)
    assert gaps[:3] == [60, 300, 900]
    assert set(gaps[3:]) == {s.cap}


def test_first_recheck_respects_retry_after_and_min_interval() -> None:
    s = WatchSchedule(min_interval=60, jitter=0)
    rng = random.Random(1)
    assert s.first_check_at(NOW, None, rng) == NOW + 60
    assert s.first_check_at(NOW, 240, rng) == NOW + 240
    assert s.first_check_at(NOW, 10, rng) == NOW + 60


@given(schedules, st.integers(0, 50), st.integers(0, 2**32), st.floats(0, 30 * DAY))
def test_never_past_expiry(s: WatchSchedule, n: int, seed: int, left: float) -> None:
    at = s.next_check_at(NOW, n, 10**6, random.Random(seed), expires_at=NOW + left)
    assert at <= NOW + left


def test_reminder_pulls_the_check_in_to_the_hour_mark() -> None:
    s = WatchSchedule(jitter=0)
    rng = random.Random(1)
    created = NOW
    now = created + 50 * 60  # 50 minutes of failing; the next gap would be 30 minutes
    at = s.next_check_at(now, 5, None, rng, reminder_at=s.reminder_at(created))
    assert at == created + HOUR
    assert s.reminder_due(at, created, reminded=False)
    assert not s.reminder_due(at, created, reminded=True)
    assert not s.reminder_due(created + 59 * 60, created, reminded=False)


def test_jitter_spreads_watches_created_together() -> None:
    s = WatchSchedule()
    rng = random.Random(7)
    times = {round(s.next_check_at(NOW, 3, None, rng)) for _ in range(50)}
    assert len(times) > 40


def test_expiry_follows_ttl_and_ca_file_validity() -> None:
    s = WatchSchedule.from_settings(Settings(watch_ttl=30 * DAY, watch_min_interval=90))
    assert s.min_interval == 90
    assert s.expires_at(NOW, "dns", None) == NOW + 30 * DAY
    assert s.expires_at(NOW, "file", "alibaba") == NOW + 3 * DAY
    assert s.expires_at(NOW, "file", "digicert") == NOW + 30 * DAY
    assert WatchSchedule().expires_at(NOW, "file", None) == NOW + 3 * DAY  # the 72 h default


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("30m", 1800), ("2h", 7200), ("1d", DAY), ("45", 45)]
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "-5m", "0s", "nanm", "31d", "5x"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_format_duration() -> None:
    assert format_duration(42) == "42 s"
    assert format_duration(600) == "10 min"
    assert format_duration(2 * HOUR + 14 * 60) == "2 h 14 min"
    assert format_duration(3 * DAY + 2 * HOUR) == "3 d 2 h"


def test_describe_changes_names_the_server_that_caught_up() -> None:
    request = dns_request()
    before = make_diag(request, Verdict.PENDING).to_dict()
    after = make_diag(request, Verdict.PASS).to_dict()
    lines = describe_changes(before, after)
    assert lines[0] == "verdict pending → pass"
    assert "resolved: DNS_PROPAGATING" in lines
    assert any(line.startswith("ns2.example.net (192.0.2.2): nxdomain → answer token-1") for line in lines)
    assert describe_changes(None, after) == []
