"""The engine's safety net: a check that overruns its deadline ends in CheckError, not a hang."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import bot.checks.dns
from bot import engine
from bot.config import Settings
from bot.model import CheckError
from bot.names import dns_request


async def test_a_stuck_check_is_abandoned(monkeypatch: pytest.MonkeyPatch) -> None:
    async def stuck(*_: Any, **__: Any) -> None:
        await asyncio.sleep(3600)

    monkeypatch.setattr(bot.checks.dns, "gather_dns_evidence", stuck)
    monkeypatch.setattr(engine, "DEADLINE_GRACE", 0.05)
    settings = Settings(timeout=0.1)
    with pytest.raises(CheckError, match="did not finish"):
        await engine.run_check(dns_request("example.com", "v"), settings)
