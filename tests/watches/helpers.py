"""Small fakes for the watch tests: diagnoses, a scripted checker and a recording deliverer."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from bot.model import CheckRequest, Diagnosis, Finding, Observation, Severity, Verdict
from bot.watches.outbox import PermanentDeliveryError, RateLimited
from bot.watches.store import NewWatch, OutboxItem


def dns_request(domain: str = "example.com", value: str = "token-1") -> CheckRequest:
    return CheckRequest(
        method="dns", domain=domain, target=f"_dnsauth.{domain}", expected=value, host_label="_dnsauth"
    )


def make_diag(
    request: CheckRequest, verdict: Verdict, *, retry_after: int | None = None, ns2: str = "nxdomain"
) -> Diagnosis:
    """A diagnosis with two authoritative observations; ``ns2`` is the status of the lagging one."""
    findings = []
    if verdict is Verdict.PENDING:
        findings.append(
            Finding("DNS_PROPAGATING", Severity.WARNING, "ns2 lags", faq="propagation", remedy="wait")
        )
    elif verdict is Verdict.FAIL:
        findings.append(
            Finding("DNS_RECORD_MISSING", Severity.ERROR, "no record", faq="no-record-value", remedy="add it")
        )
    else:
        findings.append(Finding("DNS_RECORD_FOUND", Severity.INFO, "found"))
    obs = [
        Observation(
            "authoritative", "ns1.example.net", "192.0.2.1", 53, "answer", [request.expected], 300, 2
        ),
        Observation(
            "authoritative",
            "ns2.example.net",
            "192.0.2.2",
            53,
            "answer" if verdict is Verdict.PASS else ns2,
            [request.expected] if verdict is Verdict.PASS else [],
            300,
            2 if verdict is Verdict.PASS else 1,
        ),
    ]
    return Diagnosis(request, verdict, f"{verdict.value} summary", findings, obs, retry_after=retry_after)


def new_watch(
    domain: str = "example.com",
    *,
    channel: str = "C1",
    team: str = "T1",
    thread_ts: str | None = "100.1",
    parent_ts: str | None = "100.0",
    first: Verdict | None = Verdict.PENDING,
    origin: str = "slack",
    retry_after: int | None = None,
) -> NewWatch:
    request = dns_request(domain)
    first_diag = make_diag(request, first, retry_after=retry_after) if first is not None else None
    return NewWatch(
        team,
        channel,
        "U1",
        request,
        thread_ts=thread_ts,
        parent_ts=parent_ts,
        first_diagnosis=first_diag,
        origin=origin,
    )


@dataclass
class FakeChecker:
    """``run_check`` stand-in: a verdict per domain (default pending), a delay, and a call log."""

    verdicts: dict[str, Verdict] = field(default_factory=dict)
    delay: float = 0.0
    calls: Counter[str] = field(default_factory=Counter)
    retry_after: int | None = None
    gate: asyncio.Event | None = None

    async def __call__(self, request: CheckRequest) -> Diagnosis:
        self.calls[request.domain] += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.delay:
            await asyncio.sleep(self.delay)
        verdict = self.verdicts.get(request.domain, Verdict.PENDING)
        return make_diag(request, verdict, retry_after=self.retry_after)


@dataclass
class RecordingDeliverer:
    """Records posts; can answer 429 or fail for the first N attempts."""

    posts: list[OutboxItem] = field(default_factory=list)
    rate_limit: list[float] = field(default_factory=list)
    fail: int = 0
    permanent: bool = False
    delivered_keys: dict[str, str] = field(default_factory=dict)
    reconcile: bool = True

    async def deliver(self, item: OutboxItem) -> str | None:
        if self.rate_limit:
            raise RateLimited(self.rate_limit.pop(0))
        if self.permanent:
            raise PermanentDeliveryError("channel_not_found")
        if self.fail > 0:
            self.fail -= 1
            raise ConnectionError("connection reset")
        self.posts.append(item)
        ts = f"{1000 + len(self.posts)}.000100"
        self.delivered_keys[item.dedupe_key] = ts
        return ts

    async def find_delivered(self, item: OutboxItem) -> str | None:
        return self.delivered_keys.get(item.dedupe_key) if self.reconcile else None

    def keys(self) -> list[str]:
        return [p.dedupe_key for p in self.posts]


def payload_of(item: OutboxItem) -> dict[str, Any]:
    return item.payload
