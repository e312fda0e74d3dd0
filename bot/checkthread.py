"""Checks on an event loop of their own, in one worker thread.

A check is CPU work in small slices (building and parsing DNS messages, TLS, judging), and when dozens
run on the loop that also answers Slack, an ``ack`` waits behind every slice that is ready before it:
Slack gives up after 3 seconds and the bot's p99 ack time suffers long before that. On a separate loop
the checks compete with Slack work only through the interpreter's thread switching (every 5 ms), not
through one shared queue of ready callbacks.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class CheckThread:
    """Runs coroutines on a private event loop in a daemon thread, started on first use."""

    def __init__(self, name: str = "dcv-checks") -> None:
        self.name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=self._serve, args=(loop,), name=self.name, daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop

    @staticmethod
    def _serve(loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def run(self, make: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """Await ``make()`` run on the worker loop; cancelling the caller cancels the work there."""
        future = asyncio.run_coroutine_threadsafe(make(), self._running_loop())
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            future.cancel()
            raise

    def close(self, timeout: float = 5.0) -> None:
        """Stop the worker loop (work still running there is abandoned) and join the thread."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
