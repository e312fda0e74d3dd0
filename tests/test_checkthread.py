"""The check worker thread: work runs on its own loop, results and cancellation cross back."""

from __future__ import annotations

import asyncio
import threading

import pytest

from bot.checkthread import CheckThread


async def test_runs_on_another_thread_and_returns_the_result() -> None:
    worker = CheckThread()
    try:

        async def where() -> str:
            await asyncio.sleep(0)
            return threading.current_thread().name

        assert await worker.run(where) == "dcv-checks"
        assert threading.current_thread().name != "dcv-checks"
    finally:
        worker.close()


async def test_exceptions_cross_back() -> None:
    worker = CheckThread()
    try:

        async def boom() -> None:
            raise ValueError("from the worker")

        with pytest.raises(ValueError, match="from the worker"):
            await worker.run(boom)
    finally:
        worker.close()


async def test_cancelling_the_caller_cancels_the_work() -> None:
    worker = CheckThread()
    cancelled = threading.Event()
    try:

        async def slow() -> None:
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                cancelled.set()
                raise

        task = asyncio.create_task(worker.run(slow))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await asyncio.to_thread(cancelled.wait, 2.0)
    finally:
        worker.close()


def test_close_without_use_and_twice_is_harmless() -> None:
    worker = CheckThread()
    worker.close()
    worker.close()
