"""The whole lab: DNS hierarchy + resolvers + nginx, and the environment that points ``dcv`` at it."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import zones
from .dnslab import DnsLab
from .netns import Firewall
from .web import WebLab

REPO = Path(__file__).resolve().parents[2]


@dataclass
class DcvResult:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    elapsed: float
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        return str(self.data.get("verdict"))

    @property
    def codes(self) -> list[str]:
        return [f["code"] for f in self.data.get("findings", [])]

    def finding(self, code: str) -> dict[str, Any]:
        for f in self.data.get("findings", []):
            if f["code"] == code:
                return dict(f)
        raise AssertionError(f"no {code} finding in {self.codes}\n{self.explain()}")

    def observations(self, kind: str | None = None) -> list[dict[str, Any]]:
        return [o for o in self.data.get("observations", []) if kind is None or o.get("kind") == kind]

    def explain(self) -> str:
        """Everything a failing assertion should show: the command, the verdict, codes, observations."""
        lines = [
            f"$ {' '.join(self.argv)}  (exit {self.returncode}, {self.elapsed:.2f}s)",
            f"verdict={self.data.get('verdict')} codes={self.codes} "
            f"retry_after={self.data.get('retry_after')}",
            f"summary: {self.data.get('summary')}",
        ]
        for o in self.data.get("observations", []):
            lines.append(
                f"  {o.get('kind')} {o.get('server')} {o.get('address')}:{o.get('port')} "
                f"{o.get('status')} values={o.get('values')} serial={o.get('serial')} ttl={o.get('ttl')} "
                f"error={o.get('error')}"
            )
        if self.stderr.strip():
            lines.append("stderr: " + self.stderr.strip()[-2000:])
        return "\n".join(lines)


LOCK_PATH = "/tmp/dcvlab.lock"


def _exclusive_lock(timeout: float = 60.0):
    """One lab per machine at a time: the addresses and port 53 are fixed. Waits for another run to end."""
    handle = open(LOCK_PATH, "a+")  # noqa: SIM115 - held until Lab.stop()
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return handle
        except BlockingIOError:
            if time.monotonic() > deadline:
                handle.close()
                raise RuntimeError(f"another lab holds {LOCK_PATH} (a concurrent test run?)") from None
            time.sleep(0.2)


class Lab:
    """Started once per test session (see conftest.py); every scenario uses its own names in it."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="dcvlab-", dir="/tmp"))
        self.root.chmod(0o755)  # nginx workers (nobody) read the docroots below it
        self.dns = DnsLab(self.root / "dns")
        self.web = WebLab(self.root / "web")
        self.firewall = Firewall()

    def start(self) -> Lab:
        try:
            self._lock = _exclusive_lock()
        except BaseException:
            shutil.rmtree(self.root, ignore_errors=True)
            raise
        started = time.monotonic()
        try:
            self.firewall.reap_orphans()
            self.dns.start()
            self.web.start()
            # a filtered web host: SYNs to it vanish
            self.firewall.drop_address(zones.FILTERED, proto="tcp")
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started
        return self

    def stop(self) -> None:
        try:
            self.web.stop()
            self.dns.stop()
            self.firewall.clear()
        finally:
            lock = getattr(self, "_lock", None)
            if lock is not None:
                lock.close()
            if not os.environ.get("DCV_LAB_KEEP"):
                shutil.rmtree(self.root, ignore_errors=True)

    def env(self, **overrides: str) -> dict[str, str]:
        """The environment for ``dcv`` against the lab: its resolvers, port 53, private addresses allowed."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("DCV_")}
        env.update(
            {
                "DCV_RESOLVERS": zones.RESOLVER,
                "DCV_PUBLIC_RESOLVERS": f"lab={zones.RESOLVER},lab-validating={zones.VALIDATOR}",
                "DCV_DNS_PORT": "53",
                "DCV_ALLOW_PRIVATE": "1",
                "DCV_HTTP_PORT": "80",
                "DCV_HTTPS_PORT": "443",
                "DCV_TIMEOUT": "8",
                "DCV_DATABASE_URL": f"sqlite:///{self.root}/dcv.sqlite3",
                "PYTHONPATH": str(REPO),
            }
        )
        env.update(overrides)
        return env

    def dcv(
        self, *args: str, env: dict[str, str] | None = None, timeout: float = 60, netns: str | None = None
    ) -> DcvResult:
        """Run the real command, ``python -m bot ARGS --json``, and parse its JSON."""
        argv = [sys.executable, "-m", "bot", *args, "--json"]
        full = ["ip", "netns", "exec", netns, *argv] if netns else argv
        started = time.monotonic()
        done = subprocess.run(
            full,
            capture_output=True,
            text=True,
            env=env or self.env(),
            cwd=self.root,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        result = DcvResult(argv, done.returncode, done.stdout, done.stderr, time.monotonic() - started)
        try:
            result.data = json.loads(done.stdout)
        except ValueError:
            raise AssertionError(
                f"dcv printed no JSON object (exit {done.returncode})\n$ {' '.join(argv)}\n"
                f"stdout: {done.stdout[-2000:]}\nstderr: {done.stderr[-3000:]}"
            ) from None
        return result
