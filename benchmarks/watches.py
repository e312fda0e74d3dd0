"""How many watches one dcv-bot process keeps re-checking per minute, and how that grows with processes.

    .venv/bin/python benchmarks/watches.py [--watches 10000] [--seconds 60] [--processes 1,2,3]
                                           [--check engine|noop] [--pg] [--scenario pending|failing]

Starts the loopback DNS lab (three authoritative servers and a resolver, in their own process, so
their CPU is not counted) and fills a database with N active watches that stay active:
``--scenario pending`` (the default, the usual watch) has the record on two of the three nameservers
while the third lags; ``failing`` has it nowhere, the costliest re-check because the wrong-name
probes run too. The watches are due spread over the first minute and re-checked once a minute (the
steady state the goal names: 10,000 watches at one check a minute). Worker processes then run the
production scheduler and the real DNS engine for ``--seconds``; printed per run: checks per minute,
CPU cores used (CPU seconds / wall seconds, bot processes only) and peak RSS per process.
``--check noop`` replaces the engine with an instant stand-in, which measures the scheduler and
database alone. With ``--pg`` the runs also go to a throw-away PostgreSQL (initdb/pg_ctl, as in the
test suite) with 1, 2 and 3 processes; ``--saturate`` makes every watch overdue, so the figures are
capacity rather than the steady-state rate. A script that prints figures, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SATURATE = "--saturate" in sys.argv
sys.path.insert(0, str(ROOT))


# --- child: the DNS lab ------------------------------------------------------------------------------


async def serve_dns(watches: int, scenario: str) -> None:
    from tests.conftest import world_zone
    from tests.servers.fixtures import allocate_loopback, start_lab
    from tests.servers.resolver import CachingResolver

    addresses = allocate_loopback(3)
    base = {"www": {"A": "192.0.2.80"}}
    zone = world_zone("example.com", addresses, base, serial=1)
    lab = await start_lab({"example.com": zone}, 3, addresses=addresses)
    if scenario == "pending":
        # The usual watch: the records are on the primary and one secondary, the third lags behind
        # (DNS_PROPAGATING), so every re-check asks every server and stays pending.
        records = {**base, **{f"_dnsauth.w{i}": {"TXT": f"token-{i}"} for i in range(watches)}}
        lab.set_zone("example.com", world_zone("example.com", addresses, records, serial=2), only=[0, 1])
    resolver = CachingResolver(allocate_loopback()[0], 0, {"example.com": lab.endpoints})
    await resolver.start()
    print(json.dumps({"resolver": f"{resolver.address}:{resolver.port}", "dns_port": lab.port}), flush=True)
    await asyncio.Event().wait()


# --- child: one bot process --------------------------------------------------------------------------


async def work(url: str, dns: dict[str, Any], seconds: float, check_kind: str) -> None:
    from bot.config import Settings, parse_resolvers
    from bot.engine import run_check
    from bot.model import CheckRequest, Diagnosis, Verdict
    from bot.watches.schedule import WatchSchedule
    from bot.watches.scheduler import Scheduler
    from bot.watches.store import Store

    settings = Settings(
        resolvers=parse_resolvers(dns["resolver"]),
        public_resolvers=(),
        dns_port=dns["dns_port"],
        allow_private=True,
        timeout=5.0,
        dns_query_timeout=1.0,
    )

    async def engine(request: CheckRequest) -> Diagnosis:
        return await run_check(request, settings)

    async def noop(request: CheckRequest) -> Diagnosis:
        return Diagnosis(request, Verdict.FAIL, "stand-in", [], [])

    store = Store.open(url)
    schedule = WatchSchedule(min_interval=60, steps=(60.0,), cap=60, jitter=0.05)
    scheduler = Scheduler(
        store,
        engine if check_kind == "engine" else noop,
        schedule,
        concurrency=64,
        check_timeout=10,
        poll_interval=0.2,
    )
    task = asyncio.create_task(scheduler.run())
    wall0, cpu0 = time.monotonic(), time.process_time()
    await asyncio.sleep(seconds)
    checked, wall, cpu = scheduler.stats.checked, time.monotonic() - wall0, time.process_time() - cpu0
    scheduler.stop()
    await task
    store.close()
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "checked": checked,
                "wall": wall,
                "cpu": cpu,
                "peak_mb": peak_kib / 1024,
                "lease_lost": scheduler.stats.lease_lost,
            }
        ),
        flush=True,
    )


# --- parent ------------------------------------------------------------------------------------------


def fill(url: str, n: int) -> None:
    """N active watches, inserted in bulk (the per-command limit checks are not what is measured)."""
    import json as _json

    from bot.names import dns_request
    from bot.watches.store import Store, watches

    store = Store.open(url)
    now = time.time()
    with store.engine.begin() as conn:
        conn.execute(watches.delete())
        rows = []
        for i in range(n):
            request = dns_request(f"w{i}.example.com", f"token-{i}", allow_private=True)
            rows.append(
                {
                    "team_id": "T1",
                    "channel_id": f"C{i % 500}",
                    "created_by": "U1",
                    "origin": "bench",
                    "domain": request.domain,
                    "method": "dns",
                    "target": request.target,
                    "request_json": _json.dumps(request.to_dict()),
                    "status": "active",
                    "created_at": now,
                    "expires_at": now + 86400,
                    "next_check_at": now,
                    "checks_done": 0,
                    "reminded": False,
                }
            )
        conn.execute(watches.insert(), rows)
    store.close()


def spread_due(url: str, n: int, start: float) -> None:
    """Make the watches due evenly over the minute after ``start``: the steady state, without a backlog."""
    import sqlalchemy as sa

    from bot.watches.store import Store, watches

    store = Store.open(url)
    with store.engine.begin() as conn:
        first = conn.execute(sa.select(sa.func.min(watches.c.id))).scalar_one()
        conn.execute(watches.update().values(next_check_at=start + (watches.c.id - first) * 60.0 / n))
    store.close()


def run_workers(
    url: str, dns: dict[str, Any], procs: int, seconds: float, check: str, n: int
) -> dict[str, float]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    # Steady state: due evenly over the next minute (workers start within about two seconds). With
    # --saturate every watch is already overdue, so the figure is the processes' capacity.
    spread_due(url, n, time.time() - 60.0 if SATURATE else time.time() + 2.0)
    children = [
        subprocess.Popen(
            [sys.executable, __file__, "--worker", url, json.dumps(dns), str(seconds), check],
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )
        for _ in range(procs)
    ]
    results = [json.loads(c.communicate(timeout=seconds + 120)[0].strip().splitlines()[-1]) for c in children]
    wall = max(r["wall"] for r in results)
    return {
        "per_minute": sum(r["checked"] for r in results) / wall * 60,
        "cores": sum(r["cpu"] for r in results) / wall,
        "peak_mb": max(r["peak_mb"] for r in results),
        "lease_lost": sum(r["lease_lost"] for r in results),
    }


def start_pg(base: Path) -> tuple[str, list[str]]:
    bindir = Path(shutil.which("pg_ctl") or "/usr/lib/postgresql/15/bin/pg_ctl").resolve().parent
    as_pg = ["su", "postgres", "-s", "/bin/sh", "-c"] if os.geteuid() == 0 else None
    import shlex
    import socket

    if as_pg:
        shutil.chown(base, "postgres")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    def run(cmd: list[str]) -> None:
        full = [*as_pg, shlex.join(cmd)] if as_pg else cmd
        subprocess.run(full, check=True, capture_output=True)

    data = base / "data"
    run([str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"])
    run(
        [
            str(bindir / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(base / "log"),
            "-w",
            "start",
            "-o",
            f"-p {port} -k /tmp -c listen_addresses=127.0.0.1 -c max_connections=200",
        ]
    )
    stop = [str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]
    return f"postgresql://postgres@127.0.0.1:{port}/postgres", [*as_pg, shlex.join(stop)] if as_pg else stop


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--serve-dns":
        asyncio.run(serve_dns(int(sys.argv[2]), sys.argv[3]))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        asyncio.run(work(sys.argv[2], json.loads(sys.argv[3]), float(sys.argv[4]), sys.argv[5]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--watches", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--processes", default="1,2,3", help="process counts for the PostgreSQL runs")
    parser.add_argument("--check", choices=["engine", "noop"], default="engine")
    parser.add_argument("--pg", action="store_true", help="also measure 1..3 processes on PostgreSQL")
    parser.add_argument("--saturate", action="store_true", help="all watches overdue: measure capacity")
    parser.add_argument(
        "--scenario",
        choices=["pending", "failing"],
        default="pending",
        help="pending: the record lags on one of three nameservers (the usual watch); failing: the record "
        "is missing everywhere, so every re-check also probes the usual wrong names",
    )
    args = parser.parse_args()

    dns_proc = subprocess.Popen(
        [sys.executable, __file__, "--serve-dns", str(args.watches), args.scenario],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    assert dns_proc.stdout is not None
    dns = json.loads(dns_proc.stdout.readline())
    tmp = Path(tempfile.mkdtemp(prefix="dcv-bench-"))
    stop_pg: list[str] | None = None
    pg_dir = tmp
    load = "all overdue (capacity)" if args.saturate else "due once a minute"
    print(
        f"{args.watches} active watches ({args.scenario}), {load}; check = {args.check}; "
        f"window {args.seconds:g} s"
    )
    print(f"{'database':<12} {'procs':>5} {'checks/min':>11} {'cores':>6} {'peak MB/proc':>13}")
    try:
        url = f"sqlite:///{tmp / 'bench.sqlite3'}"
        fill(url, args.watches)
        r = run_workers(url, dns, 1, args.seconds, args.check, args.watches)
        print(f"{'sqlite':<12} {1:>5} {r['per_minute']:>11.0f} {r['cores']:>6.2f} {r['peak_mb']:>13.0f}")
        if args.pg:
            # Its own directory: PostgreSQL runs as the postgres user, who cannot enter ``tmp``.
            pg_dir = Path(tempfile.mkdtemp(prefix="dcv-bench-pg-"))
            pg_url, stop_pg = start_pg(pg_dir)
            for n in (int(x) for x in args.processes.split(",")):
                fill(pg_url, args.watches)
                r = run_workers(pg_url, dns, n, args.seconds, args.check, args.watches)
                print(
                    f"{'postgresql':<12} {n:>5} {r['per_minute']:>11.0f} {r['cores']:>6.2f} "
                    f"{r['peak_mb']:>13.0f}   (lease losses: {r['lease_lost']:.0f})"
                )
    finally:
        dns_proc.terminate()
        if stop_pg:
            subprocess.run(stop_pg, check=False, capture_output=True)
            shutil.rmtree(pg_dir, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
