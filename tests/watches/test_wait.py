"""``--wait``: the watch schedule in the terminal, with a fake clock, and the real command end to end."""

from __future__ import annotations

import asyncio
import json
import random
import sys

from bot.model import CheckRequest, Diagnosis, Verdict
from bot.watches.schedule import WatchSchedule
from bot.watches.wait import wait_until_pass
from tests.conftest import WorldFactory
from tests.test_cli import env_for
from tests.watches.conftest import Clock
from tests.watches.helpers import dns_request, make_diag

TOKEN = "wait-token-0123456789"


async def test_waits_on_the_schedule_until_it_passes() -> None:
    clock = Clock()
    slept: list[float] = []
    verdicts = [Verdict.PENDING, Verdict.PENDING, Verdict.PASS]

    async def check(request: CheckRequest) -> Diagnosis:
        return make_diag(request, verdicts.pop(0), retry_after=240)

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.advance(seconds)

    lines: list[str] = []
    final = await wait_until_pass(
        dns_request(),
        check,
        WatchSchedule(jitter=0),
        3600,
        report=lines.append,
        clock=clock,
        sleep=sleep,
        rng=random.Random(1),
    )
    assert final.verdict is Verdict.PASS
    assert slept == [240, 240]  # retry_after (the cache TTL) beats the 60 s minimum and the 1 min step
    assert any("changed: verdict pending → pass" in line for line in lines)
    assert lines[-1].startswith("passes after 8 min")


async def test_gives_up_at_the_deadline_with_one_last_look() -> None:
    clock = Clock()
    slept: list[float] = []

    async def check(request: CheckRequest) -> Diagnosis:
        return make_diag(request, Verdict.PENDING)

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.advance(seconds)

    lines: list[str] = []
    final = await wait_until_pass(
        dns_request(), check, WatchSchedule(jitter=0), 600, report=lines.append, clock=clock, sleep=sleep
    )
    assert final.verdict is Verdict.PENDING
    assert sum(slept) == 600  # 60 + 60 + 300, then cut to the deadline: a final check at 10 min
    assert slept == [60, 60, 300, 180]
    assert lines[-1].startswith("gave up after 10 min")


async def test_dcv_dns_wait_prints_changes_and_exits_0_when_it_passes(dns_world: WorldFactory) -> None:
    world = await dns_world(None, ttl=1, minimum=1)
    world.set_records({"_dnsauth": {"TXT": TOKEN}}, serial=2, only=[0], ttl=1, minimum=1)
    env = env_for(world, DCV_WATCH_MIN_INTERVAL="0.5")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "dns",
        "example.com",
        TOKEN,
        "--json",
        "--wait",
        "60s",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd="/",
    )
    assert process.stderr is not None
    first_line = await asyncio.wait_for(process.stderr.readline(), 30)  # the first check is done
    world.set_records({"_dnsauth": {"TXT": TOKEN}}, serial=2, ttl=1, minimum=1)
    world.flush()
    out, err = await asyncio.wait_for(process.communicate(), 90)
    assert process.returncode == 0, err.decode()
    assert json.loads(out)["verdict"] == "pass"
    text = first_line.decode() + err.decode()
    assert "dcv: pending: next look at" in text
    assert "changed: verdict pending → pass" in text


async def test_wait_rejects_a_bad_duration() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "dns",
        "example.com",
        TOKEN,
        "--wait",
        "soon",
        cwd="/",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _out, err = await process.communicate()
    assert process.returncode == 2
    assert "duration" in err.decode()
