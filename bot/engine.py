"""One entry point for a whole check: gather evidence, judge it, under the overall deadline.

Slack, the command line and the watch scheduler all call :func:`run_check`.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

from bot.checks.dnscache import ResolverCache
from bot.config import Settings
from bot.model import CheckError, CheckRequest, Diagnosis

DEADLINE_GRACE = 5.0
"""Seconds past ``settings.timeout`` after which a check is abandoned. Every network step already
stops at the deadline; this only guards against a bug turning into a hang."""

shared_resolver_cache = ResolverCache()
"""Discovery answers shared by every check in this process (see :mod:`bot.checks.dnscache`)."""


async def run_check(
    request: CheckRequest, settings: Settings, *, cache: ResolverCache | None = None
) -> Diagnosis:
    """Run the check ``request`` describes against the real network and return its diagnosis.

    Never raises for network trouble (that becomes findings); finishes within ``settings.timeout``
    plus a small margin for judging. ``cache`` defaults to the process-wide discovery cache. Raises
    :class:`~bot.model.CheckError` if the check overruns its deadline by :data:`DEADLINE_GRACE`.
    """
    try:
        async with asyncio.timeout(settings.timeout + DEADLINE_GRACE):
            return await _run(request, settings, shared_resolver_cache if cache is None else cache)
    except TimeoutError:
        raise CheckError(
            f"the check of {request.target} did not finish within {settings.timeout + DEADLINE_GRACE:.0f} s"
        ) from None


async def _run(request: CheckRequest, settings: Settings, cache: ResolverCache) -> Diagnosis:
    started = time.monotonic()
    checked_at = datetime.now(UTC)
    if request.method == "dns":
        from bot.checks.dns import gather_dns_evidence
        from bot.diagnosis.dns import diagnose_dns

        dns_evidence = await gather_dns_evidence(request, settings, cache=cache)
        diagnosis = diagnose_dns(request, dns_evidence)
    else:
        from bot.checks.http import gather_file_evidence
        from bot.diagnosis.file import diagnose_file

        file_evidence = await gather_file_evidence(request, settings)
        diagnosis = diagnose_file(request, file_evidence)
    diagnosis.checked_at = checked_at
    diagnosis.duration_ms = (time.monotonic() - started) * 1000
    return diagnosis
