"""Fixtures for the watch tests: a real PostgreSQL server per session, and a database per test.

PostgreSQL refuses to run as root, so as root the server runs as the ``postgres`` user in a temporary
directory that user owns. ``initdb``/``pg_ctl`` come from PATH or Debian's /usr/lib/postgresql/N/bin.
Without them the PostgreSQL half of the suite is skipped with the reason, except under ``CI=true``,
where a missing PostgreSQL is a failure (CI must test both databases).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shlex
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.watches.store import Limits, Store
from tests.servers.resolver import FakeClock

ON_CI = os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


@dataclass(frozen=True)
class PgServer:
    port: int
    superuser: str = "postgres"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.superuser}@127.0.0.1:{self.port}/{database}"


def _pg_bindir() -> Path | None:
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return Path(found).resolve().parent
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if Path(candidate, "pg_ctl").exists() and Path(candidate, "initdb").exists():
            return Path(candidate)
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_postgres(cmd: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    if os.geteuid() == 0:
        cmd = ["su", "postgres", "-s", "/bin/sh", "-c", shlex.join(cmd)]
    return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=120)


def _unavailable(reason: str) -> None:
    if ON_CI:
        pytest.fail(f"PostgreSQL is required on CI: {reason}")
    pytest.skip(f"PostgreSQL not available ({reason}); set up initdb/pg_ctl to run these tests")


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """A throw-away PostgreSQL cluster on a free loopback port, stopped and deleted at the end."""
    bindir = _pg_bindir()
    if bindir is None:
        _unavailable("initdb/pg_ctl not found")
    assert bindir is not None
    if os.geteuid() == 0:
        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            _unavailable("running as root and there is no 'postgres' user")
            raise
    base = Path(tempfile.mkdtemp(prefix="dcv-pg-"))
    if os.geteuid() == 0:
        os.chown(base, pw.pw_uid, pw.pw_gid)
    data = base / "data"
    port = _free_port()
    try:
        _as_postgres(
            [
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
            ]
        )
        opts = f"-p {port} -k /tmp -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300"
        _as_postgres(
            [str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(base / "log"), "-w", "start"]
        )
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(base, ignore_errors=True)
        _unavailable(f"could not start: {exc.stderr.strip()[:300]}")
    try:
        yield PgServer(port)
    finally:
        _as_postgres([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"], check=False)
        shutil.rmtree(base, ignore_errors=True)


def create_database(server: PgServer) -> str:
    import psycopg

    name = f"dcv_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server.url().replace("postgresql://", "postgresql://", 1), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return server.url(name)


def drop_database(server: PgServer, url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    with contextlib.suppress(Exception), psycopg.connect(server.url(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database URL: a SQLite file, or a new database on the session's PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'watches.sqlite3'}"
        return
    server: PgServer = request.getfixturevalue("pg_server")
    url = create_database(server)
    try:
        yield url
    finally:
        drop_database(server, url)


@pytest.fixture
def pg_url(pg_server: PgServer) -> Iterator[str]:
    """A fresh PostgreSQL database (for tests that only make sense with several processes)."""
    url = create_database(pg_server)
    try:
        yield url
    finally:
        drop_database(pg_server, url)


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    s = Store.open(db_url, limits=Limits(per_channel=5, per_team=8, commands_per_window=3, command_window=60))
    try:
        yield s
    finally:
        s.close()


class Clock(FakeClock):
    """A settable clock (epoch seconds) shared by scheduler, sender and schedule in a test."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        super().__init__(now)


@pytest.fixture
def clock() -> Clock:
    return Clock()
