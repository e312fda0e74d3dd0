"""Benchmark: time from a slash command to its ack, while many checks are running.

dcv-bot runs as it does in production: ``python -m bot serve`` in its own process (HTTP mode, then
Socket Mode), with the watch service and its SQLite store. Its Slack API is the tests' fake Web API,
and its DNS is the tests' loopback world (3 authoritative servers and a caching resolver); both run in
a separate thread of this process with their own event loop, so they do not share the bot's loop. The
authoritative servers answer after ``--dns-delay`` seconds, so every check takes about a second and
hundreds are in flight while later commands arrive.

Printed per mode: the request-to-ack latency (p50, p99, max) and the most checks in flight at once
(parent messages posted but not yet updated with a verdict). In HTTP mode the latency is measured by
the client (request sent to HTTP 200 received); in Socket Mode from pushing the envelope to receiving
the bot's ack on the WebSocket.

Goal (issue 4): p99 under 50 ms (Slack's own limit is 3 s).

    .venv/bin/python benchmarks/slack_ack.py [--commands 500] [--rate 20] [--dns-delay 0.3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402 - after the sys.path line, like the other benchmarks

from tests.conftest import world_zone  # noqa: E402
from tests.servers.fixtures import allocate_loopback, start_lab  # noqa: E402
from tests.servers.resolver import CachingResolver  # noqa: E402
from tests.slack.conftest import SIGNING_SECRET, sign  # noqa: E402
from tests.slack.fakeslack import FakeSlack  # noqa: E402

VALUE = "2026112900000068mjx3sb6kxvl8ebm1e4oh2r"
COMMAND = f"dns example.com {VALUE}"


class World:
    """The loopback DNS world and the fake Slack API, on their own event loop in a thread."""

    def __init__(self, dns_delay: float) -> None:
        self.dns_delay = dns_delay
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.started: list[Any] = []
        self.slack: FakeSlack
        self.env: dict[str, str] = {}

    def call(self, coro: Any, timeout: float = 60) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout)

    async def _start(self) -> None:
        addresses = allocate_loopback(3)
        zone = world_zone("example.com", addresses, {"_dnsauth": {"TXT": VALUE}}, serial=1)
        lab = await start_lab({"example.com": zone}, 3, addresses=addresses)
        lab.add_fault("delay", self.dns_delay)
        resolver = CachingResolver(allocate_loopback()[0], 0, {"example.com": lab.endpoints})
        await resolver.start()
        self.slack = await FakeSlack().start()
        self.started = [self.slack, resolver, lab]
        self.env = {
            "DCV_RESOLVERS": f"{resolver.address}:{resolver.port}",
            "DCV_PUBLIC_RESOLVERS": "",
            "DCV_DNS_PORT": str(lab.port),
            "DCV_ALLOW_PRIVATE": "1",
            "DCV_TIMEOUT": "8",
            "SLACK_BOT_TOKEN": self.slack.bot_token,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": self.slack.base_url,
        }

    def start(self) -> None:
        self.call(self._start())

    async def _stop(self) -> None:
        for item in self.started:
            await item.stop()

    def stop(self) -> None:
        self.call(self._stop())
        self.loop.call_soon_threadsafe(self.loop.stop)

    def in_flight(self) -> int:
        parents = sum(
            1
            for c in list(self.slack.calls)
            if c.method == "chat.postMessage" and not c.params.get("thread_ts")
        )
        updates = sum(1 for c in list(self.slack.calls) if c.method == "chat.update")
        return parents - updates

    async def _push_and_wait(self, text: str) -> float:
        envelope = self.slack.slash_envelope(text)
        key = envelope["envelope_id"]
        started = time.monotonic()
        await self.slack.push(envelope)
        await self.slack.wait_for(lambda: key in self.slack.ack_times)
        return self.slack.ack_times[key] - started


def bot_cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def wait_until(predicate: Any, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.05)


async def run_mode(mode: str, world: World, args: argparse.Namespace, workdir: str) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "DCV_"))}
    env.update(world.env)
    env.update(
        {
            "PORT": str(port),
            "DCV_DATABASE_URL": f"sqlite:///{workdir}/{mode}.sqlite3",
            "PYTHONPATH": str(ROOT),
        }
    )
    if mode == "socket":
        env["SLACK_APP_TOKEN"] = world.slack.app_token
    world.slack.calls.clear()
    log = open(Path(workdir) / f"{mode}.log", "w")  # noqa: SIM115, ASYNC230 - closed below; setup only
    bot = subprocess.Popen(  # noqa: ASYNC220 - started once before measuring
        [sys.executable, "-m", "bot", "serve"], env=env, cwd=workdir, stdout=log, stderr=log
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:
            if mode == "http":

                async def healthy() -> bool:
                    try:
                        async with session.get(url + "/healthz") as r:
                            return r.status == 200
                    except aiohttp.ClientError:
                        return False

                deadline = time.monotonic() + 20
                while not await healthy():
                    if time.monotonic() > deadline or bot.poll() is not None:
                        raise RuntimeError(f"bot did not start; see {workdir}/{mode}.log")
                    await asyncio.sleep(0.1)
            else:
                await wait_until(lambda: bool(world.slack.sockets), 20)

            async def one_http() -> float:
                body = urlencode(world.slack.slash_payload(COMMAND))
                headers = sign(body)
                started = time.perf_counter()
                async with session.post(
                    url + "/slack/events", data=body.encode(), headers=headers
                ) as response:
                    await response.read()
                    if response.status != 200:
                        raise RuntimeError(f"HTTP {response.status}")
                return time.perf_counter() - started

            async def one_socket() -> float:
                future = asyncio.run_coroutine_threadsafe(world._push_and_wait(COMMAND), world.loop)
                return await asyncio.wrap_future(future)

            one = one_http if mode == "http" else one_socket
            for _ in range(args.warmup):
                await one()
            await wait_until(lambda: world.in_flight() == 0, 30)

            peak = 0
            latencies: list[float] = []

            async def sample() -> None:
                nonlocal peak
                while True:
                    peak = max(peak, world.in_flight())
                    await asyncio.sleep(0.05)

            sampler = asyncio.create_task(sample())
            cpu_before, wall_before = bot_cpu_seconds(bot.pid), time.monotonic()
            tasks = []
            for _ in range(args.commands):
                tasks.append(asyncio.create_task(one()))
                await asyncio.sleep(1 / args.rate)  # an open loop: commands arrive at a fixed rate
            latencies = list(await asyncio.gather(*tasks))
            await wait_until(lambda: world.in_flight() == 0, 60)
            sampler.cancel()
        cpu = bot_cpu_seconds(bot.pid) - cpu_before
        wall = time.monotonic() - wall_before
        ms = [x * 1000 for x in latencies]
        print(
            f"{mode:6}  commands={len(ms)} at {args.rate:g}/s  ack p50={statistics.median(ms):6.2f} ms  "
            f"p99={percentile(ms, 0.99):6.2f} ms  max={max(ms):6.2f} ms  checks in flight (peak)={peak}"
        )
        print(f"        bot process CPU: {cpu:.1f} s over {wall:.1f} s ({100 * cpu / wall:.0f}% of one core)")
        if world.slack.violations:
            count, first = len(world.slack.violations), world.slack.violations[0]
            print(f"        fake Slack saw {count} invalid payloads: {first}")
    finally:
        bot.terminate()
        try:
            bot.wait(30)
        except subprocess.TimeoutExpired:
            bot.kill()
        log.close()
        print(f"        bot exited with {bot.returncode} after SIGTERM")


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--commands", type=int, default=500)
    parser.add_argument("--rate", type=float, default=20.0, help="commands per second (open loop)")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument(
        "--dns-delay", type=float, default=0.3, help="seconds every authoritative answer waits"
    )
    parser.add_argument("--modes", default="http,socket")
    parser.add_argument("--text", default=None, help="command text instead of a DNS check (e.g. help)")
    args = parser.parse_args()
    if args.text is not None:
        global COMMAND
        COMMAND = args.text
    world = World(args.dns_delay)
    world.start()
    try:
        with tempfile.TemporaryDirectory() as workdir:
            for mode in args.modes.split(","):
                await run_mode(mode.strip(), world, args, workdir)
    finally:
        world.stop()


if __name__ == "__main__":
    asyncio.run(main())
