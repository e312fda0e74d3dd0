"""A dcv-bot watch process for the crash and multi-process tests: ``python -m tests.watches.worker``.

It runs the production :class:`Scheduler`, :class:`OutboxSender` and :class:`SlackDeliverer` against
``WORKER_DB`` and the fake Slack API at ``WORKER_SLACK``. The check is a stand-in that passes once
the file ``WORKER_PRESENT`` exists (the "record appeared") and appends ``pid domain`` to
``WORKER_LOG`` for every check it runs. ``WORKER_CRASH=after_post`` makes the process SIGKILL itself
right after Slack accepted its first post, before it could record it. ``WORKER_INTERVAL`` is the
gap between re-checks of a watch (seconds). Runs until SIGTERM, or until
``WORKER_SECONDS`` have passed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal

from bot.config import Settings
from bot.model import CheckRequest, Diagnosis, Verdict
from bot.slack.watches import SlackDeliverer, posting_client
from bot.watches.outbox import OutboxSender
from bot.watches.schedule import WatchSchedule
from bot.watches.scheduler import Scheduler
from bot.watches.store import OutboxItem, Store
from tests.watches.helpers import make_diag


async def check(request: CheckRequest) -> Diagnosis:
    with open(os.environ["WORKER_LOG"], "a") as log:
        log.write(f"{os.getpid()} {request.domain}\n")
    await asyncio.sleep(float(os.environ.get("WORKER_CHECK_DELAY", "0.01")))
    present = os.path.exists(os.environ["WORKER_PRESENT"])
    return make_diag(request, Verdict.PASS if present else Verdict.PENDING)


class CrashingDeliverer(SlackDeliverer):
    async def deliver(self, item: OutboxItem) -> str | None:
        ts = await super().deliver(item)
        os.kill(os.getpid(), signal.SIGKILL)
        return ts


async def main() -> None:
    settings = Settings(slack_bot_token="xoxb-1-fake-bot-token", slack_api_url=os.environ["WORKER_SLACK"])
    store = Store.open(os.environ["WORKER_DB"])
    client = posting_client(settings)
    crash = os.environ.get("WORKER_CRASH") == "after_post"
    deliverer = CrashingDeliverer(client) if crash else SlackDeliverer(client)
    gap = float(os.environ.get("WORKER_INTERVAL", "0.2"))
    schedule = WatchSchedule(min_interval=gap, steps=(gap, gap, gap), cap=gap, jitter=0)
    sender = OutboxSender(
        store,
        deliverer,
        lease_seconds=float(os.environ.get("WORKER_OUTBOX_LEASE", "120")),
        channel_interval=0,
        poll_interval=0.1,
    )
    scheduler = Scheduler(store, check, schedule, poll_interval=0.05, concurrency=16, on_events=sender.wake)
    tasks = [asyncio.create_task(scheduler.run())]
    if os.environ.get("WORKER_NO_OUTBOX") != "1":
        tasks.append(asyncio.create_task(sender.run()))
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print("ready", flush=True)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(float(os.environ.get("WORKER_SECONDS", "60"))):
            await stop.wait()
    scheduler.stop()
    sender.stop()
    await asyncio.gather(*tasks)
    store.close()


if __name__ == "__main__":
    asyncio.run(main())
