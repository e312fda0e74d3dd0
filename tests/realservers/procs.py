"""Start and stop the daemons of the real-server lab, and run its helper commands.

Every daemon runs in the foreground under a :class:`Daemon`, which remembers the pid it launched and
stops exactly that process (SIGTERM, then SIGKILL after a grace period). Nothing here ever signals a
process by name.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

# What the tier needs, and the Debian package that ships it (see .ci/install-realservers.sh).
REQUIRED_PROGRAMS: dict[str, str] = {
    "knotd": "knot",
    "knotc": "knot",
    "nsd": "nsd",
    "nsd-control": "nsd",
    "unbound": "unbound",
    "unbound-control": "unbound",
    "nginx": "nginx-light",
    "iptables": "iptables",
    "ip": "iproute2",
    "openssl": "openssl",
}

# Debian installs daemons in /usr/sbin, which is not on every user's PATH.
_SBIN_DIRS = ("/usr/sbin", "/sbin", "/usr/local/sbin")


def find_program(name: str) -> str | None:
    """The absolute path of ``name``, looking in the sbin directories too."""
    found = shutil.which(name)
    if found:
        return found
    for directory in _SBIN_DIRS:
        candidate = Path(directory) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def missing_programs() -> list[str]:
    return [name for name in REQUIRED_PROGRAMS if find_program(name) is None]


def program(name: str) -> str:
    path = find_program(name)
    if path is None:
        raise FileNotFoundError(f"{name} not installed: run .ci/install-realservers.sh")
    return path


def netns_prefix(netns: str | None) -> list[str]:
    return [program("ip"), "netns", "exec", netns] if netns else []


def run(
    argv: Sequence[str], *, netns: str | None = None, check: bool = True, timeout: float = 20
) -> subprocess.CompletedProcess[str]:
    """Run a short helper command (knotc, nsd-control, iptables, ...), capturing its output."""
    argv = [program(argv[0]) if "/" not in argv[0] else argv[0], *argv[1:]]
    done = subprocess.run(
        [*netns_prefix(netns), *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    if check and done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv)} exited {done.returncode}: {done.stdout.strip()} {done.stderr.strip()}"
        )
    return done


def wait_for(
    condition: Callable[[], object], *, timeout: float, interval: float = 0.05, what: str = "condition"
) -> object:
    """Poll ``condition`` until it returns something truthy, or raise TimeoutError after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            result = condition()
            if result:
                return result
        except Exception as exc:  # the condition may fail until the server is up
            last_error = exc
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what} (last error: {last_error!r})")
        time.sleep(interval)


_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child, before exec: get SIGTERM when the test process dies, even by SIGKILL.

    Without this a killed pytest would leave the daemons holding port 53 on the lab's addresses.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


class Daemon:
    """One foreground server process with its own log file in its own working directory."""

    def __init__(self, name: str, argv: Sequence[str], workdir: Path, *, netns: str | None = None) -> None:
        self.name = name
        self.argv = [program(argv[0]), *argv[1:]] if argv else []
        self.workdir = workdir
        self.netns = netns
        self.log_path = workdir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [*netns_prefix(self.netns), *self.argv],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.workdir,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def check_alive(self) -> None:
        if not self.alive():
            raise RuntimeError(f"{self.name} exited early; its log says:\n{self.log_tail()}")

    def stop(self, grace: float = 5.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(grace)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])
