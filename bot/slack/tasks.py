"""A bounded registry for the background work a slash command starts after ``ack()``.

Bolt acknowledges as soon as the listener calls ``ack()``; the check itself runs afterwards. asyncio
keeps only weak references to tasks, so a fire-and-forget task can be garbage collected mid-flight, and
nothing would wait for it on shutdown. The registry keeps a strong reference to every task, bounds how
many run at once (a semaphore) and how many may wait (so a flood of commands cannot queue unbounded
work), logs what a task raised, and drains on shutdown: in-flight work gets a bounded time to finish,
the rest is cancelled cleanly.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger(__name__)


class RegistryFull(Exception):
    """Too much work is already queued; the caller should tell the user to try again shortly."""


class RegistryClosed(Exception):
    """The process is shutting down and takes no new work."""


class TaskRegistry:
    """Run coroutines in the background, at most ``max_concurrent`` at a time.

    ``max_pending`` bounds running plus waiting tasks; :meth:`spawn` raises :class:`RegistryFull`
    beyond it. After :meth:`close`, :meth:`spawn` raises :class:`RegistryClosed`.
    """

    def __init__(self, max_concurrent: int = 16, max_pending: int = 256) -> None:
        if max_concurrent < 1 or max_pending < max_concurrent:
            raise ValueError("need 1 <= max_concurrent <= max_pending")
        self.max_concurrent = max_concurrent
        self.max_pending = max_pending
        self._semaphore: asyncio.Semaphore | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def __len__(self) -> int:
        """Tasks running or waiting for a slot."""
        return len(self._tasks)

    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str | None = None) -> asyncio.Task[Any]:
        """Schedule ``coro``; it starts once a slot is free. Must be called from the running loop."""
        if self._closed:
            coro.close()
            raise RegistryClosed("shutting down")
        if len(self._tasks) >= self.max_pending:
            coro.close()
            raise RegistryFull(f"{len(self._tasks)} tasks pending")
        if self._semaphore is None:
            # Created lazily so the registry can be built outside a running loop (app factories).
            self._semaphore = asyncio.Semaphore(self.max_concurrent)
        task = asyncio.get_running_loop().create_task(self._run(coro), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    async def _run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        assert self._semaphore is not None
        try:
            async with self._semaphore:
                return await coro
        finally:
            # A task cancelled while waiting for a slot never awaited its coroutine.
            coro.close()

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.error("background task %s failed", task.get_name(), exc_info=exc)

    def close(self) -> None:
        """Refuse new work from now on (in-flight work continues)."""
        self._closed = True

    async def drain(self, grace: float) -> int:
        """Close, wait up to ``grace`` seconds for in-flight tasks, cancel the rest.

        Returns how many tasks had to be cancelled. Cancelled tasks are awaited, so their ``finally``
        blocks (and our "check interrupted" replies) have run when this returns.
        """
        self.close()
        if not self._tasks:
            return 0
        _, pending = await asyncio.wait(set(self._tasks), timeout=max(0.0, grace))
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=5.0)
            log.warning("shutdown: cancelled %d unfinished background task(s)", len(pending))
        return len(pending)
