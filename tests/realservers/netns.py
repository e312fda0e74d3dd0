"""Network namespaces and firewall rules that the tests create, and remove again.

A :class:`Netns` is an empty network namespace with only its loopback up and no route anywhere, so
nothing sent inside it can leave the machine. :class:`Firewall` adds iptables rules (tagged with a
comment naming this process) in the host or in such a namespace, and deletes exactly the rules it added.
"""

from __future__ import annotations

import ctypes
import os
import re
import shlex
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from .procs import run

T = TypeVar("T")

_CLONE_NEWNET = 0x40000000


class Netns:
    """A network namespace of our own: ``ip netns add``, loopback up, deleted on :meth:`close`."""

    def __init__(self, prefix: str = "dcvlab") -> None:
        self.name = f"{prefix}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        run(["ip", "netns", "add", self.name])
        self._executor: ThreadPoolExecutor | None = None
        try:
            run(["ip", "link", "set", "lo", "up"], netns=self.name)
        except Exception:
            self.close()
            raise

    def call(self, fn: Callable[..., T], *args: object, **kwargs: object) -> T:
        """Run ``fn`` in a worker thread that has entered this namespace (sockets it opens live there).

        ``setns(CLONE_NEWNET)`` changes only the calling thread, so the rest of the test process stays
        in the host's namespace.
        """
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                max_workers=1, initializer=_enter_netns, initargs=(self.name,), thread_name_prefix=self.name
            )
        return self._executor.submit(fn, *args, **kwargs).result()

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        run(["ip", "netns", "delete", self.name], check=False)


def _enter_netns(name: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if libc.setns(fd, _CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"setns({name}): {os.strerror(errno)}")
    finally:
        os.close(fd)


class Firewall:
    """iptables rules added by this test process, in the host or in one namespace."""

    def __init__(self, netns: str | None = None) -> None:
        self.netns = netns
        self.tag = f"dcvlab-{os.getpid()}"
        self._rules: list[tuple[str, list[str]]] = []

    def add(self, chain: str, *spec: str) -> tuple[str, list[str]]:
        """Insert a rule at the top of ``chain`` (``INPUT``, ``OUTPUT``); returns a handle to delete it."""
        rule = [*spec, "-m", "comment", "--comment", self.tag]
        # spec ends with the target ("-j DROP"); the comment match must come before it
        if "-j" in spec:
            j = spec.index("-j")
            rule = [*spec[:j], "-m", "comment", "--comment", self.tag, *spec[j:]]
        run(["iptables", "-w", "5", "-I", chain, *rule], netns=self.netns)
        handle = (chain, rule)
        self._rules.append(handle)
        return handle

    def delete(self, handle: tuple[str, list[str]]) -> None:
        chain, rule = handle
        if handle in self._rules:
            self._rules.remove(handle)
            run(["iptables", "-w", "5", "-D", chain, *rule], netns=self.netns, check=False)

    def drop_address(self, address: str, *, proto: str | None = None, port: int | None = None):
        """Silently drop everything sent to ``address`` (optionally one protocol/port): a filtered host."""
        spec = ["-d", f"{address}/32"]
        if proto:
            spec += ["-p", proto]
            if port:
                spec += ["--dport", str(port)]
        return self.add("INPUT", *spec, "-j", "DROP")

    def reap_orphans(self) -> list[str]:
        """Delete rules tagged by an earlier run of this tier whose process is gone (killed mid-run).

        Only rules carrying a ``dcvlab-<pid>`` comment whose pid no longer exists are touched: a stale
        REJECT between the secondary and the primary would otherwise break the next run's transfers.
        """
        removed = []
        listing = run(["iptables", "-w", "5", "-S"], netns=self.netns).stdout
        for line in listing.splitlines():
            match = re.search(r"--comment \"?dcvlab-(\d+)\"?", line)
            if not line.startswith("-A ") or not match or Path(f"/proc/{match.group(1)}").exists():
                continue
            args = shlex.split(line)
            run(["iptables", "-w", "5", "-D", *args[1:]], netns=self.netns, check=False)
            removed.append(line)
        return removed

    def clear(self) -> None:
        for handle in list(reversed(self._rules)):
            self.delete(handle)
