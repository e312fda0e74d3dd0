"""The one way dcv-bot asks a DNS server a question.

Every query: EDNS with a 1232-byte payload (DNS Flag Day 2020), UDP first and TCP when the answer is
truncated, a per-query timeout that never outlives the check's deadline, one retry after a UDP timeout
(a single lost packet should not condemn a nameserver), and a shared semaphore that bounds how many
queries are in flight. Outcomes are classified, never raised: a check reports what each server did.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdatatype
import dns.rrset

from bot.config import ServerAddress

if TYPE_CHECKING:
    from bot.checks.dnscache import ResolverCache

EDNS_PAYLOAD = 1232


class Deadline:
    """An absolute point in time (monotonic) that every step of one check shares."""

    def __init__(self, seconds: float) -> None:
        self.at = time.monotonic() + seconds

    def remaining(self) -> float:
        return max(0.0, self.at - time.monotonic())


@dataclass(slots=True)
class QueryResult:
    """What one server answered to one question.

    ``status``: ``answer`` (records of the type at the name, possibly via CNAME), ``nxdomain``,
    ``nodata``, ``cname`` (only a CNAME chain, the target not answered here), ``referral`` (an
    authoritative server that is not authoritative: no AA bit or a delegation), ``refused``,
    ``servfail``, ``timeout``, ``error`` (FORMERR, NOTIMP, malformed, network error).
    """

    server: str
    port: int
    qname: str
    rtype: str
    status: str
    label: str = ""
    """Who the server is for a person: a nameserver's name or a public resolver's label."""
    values: list[str] = field(default_factory=list)
    ttl: int | None = None
    cname_chain: list[str] = field(default_factory=list)
    """CNAME targets in order, starting after ``qname`` (absolute names without trailing dot)."""
    soa_owner: str | None = None
    soa_serial: int | None = None
    soa_ttl: int | None = None
    soa_minimum: int | None = None
    soa_refresh: int | None = None
    authoritative: bool = False
    rcode: str | None = None
    rtt_ms: float | None = None
    error: str | None = None
    tcp: bool = False
    rrsets: dict[str, list[str]] = field(default_factory=dict)
    """Every answer RRset by ``name type`` (for the CAA and NS readers)."""
    referral_zone: str | None = None
    """For a referral: the zone cut it points to, with its nameservers and any glue addresses."""
    referral_ns: list[str] = field(default_factory=list)
    glue: dict[str, list[str]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> QueryResult:
        return cls(**data)

    @property
    def negative_ttl(self) -> int | None:
        """RFC 2308: a negative answer is cached for min(SOA TTL, SOA MINIMUM)."""
        if self.soa_ttl is None or self.soa_minimum is None:
            return None
        return min(self.soa_ttl, self.soa_minimum)

    @property
    def answered(self) -> bool:
        return self.status in {"answer", "nxdomain", "nodata", "cname"}


def name_text(name: dns.name.Name) -> str:
    """An absolute name as dcv-bot writes it: lower case, no trailing dot (root is ``.``)."""
    text = name.to_text(omit_final_dot=True).lower()
    return text or "."


def rdata_text(rdata: dns.rdata.Rdata) -> str:
    """The value a person compares with the console: TXT strings joined, names without the dot."""
    if rdata.rdtype == dns.rdatatype.TXT:
        strings: tuple[bytes, ...] = rdata.strings  # type: ignore[attr-defined]
        return b"".join(strings).decode("utf-8", errors="replace")
    if rdata.rdtype in (dns.rdatatype.CNAME, dns.rdatatype.NS):
        return name_text(rdata.target)  # type: ignore[attr-defined]
    return str(rdata.to_text())


class DnsClient:
    """Sends queries with the house rules; one instance per check (it carries the deadline)."""

    def __init__(self, deadline: Deadline, *, query_timeout: float, max_in_flight: int) -> None:
        self.deadline = deadline
        self.query_timeout = query_timeout
        self._slots = asyncio.Semaphore(max_in_flight)

    async def query(
        self,
        server: str,
        port: int,
        qname: str,
        rtype: str,
        *,
        recursion: bool,
        checking_disabled: bool = False,
        attempts: int = 2,
        label: str = "",
    ) -> QueryResult:
        """Ask ``server`` one question; classify the outcome instead of raising."""
        message = dns.message.make_query(
            dns.name.from_text(qname), dns.rdatatype.from_text(rtype), use_edns=0, payload=EDNS_PAYLOAD
        )
        if not recursion:
            message.flags &= ~dns.flags.RD
        if checking_disabled:
            message.flags |= dns.flags.CD
        result = QueryResult(
            server=server, port=port, qname=qname, rtype=rtype, status="timeout", label=label
        )
        for _ in range(attempts):
            timeout = min(self.query_timeout, self.deadline.remaining())
            if timeout <= 0.05:
                result.error = result.error or "check deadline reached before an answer"
                break
            result = await self._attempt(message, result, timeout)
            if result.status != "timeout":
                break
        return result

    async def _attempt(
        self,
        message: dns.message.Message,
        result: QueryResult,
        timeout: float,  # noqa: ASYNC109  (dnspython needs the number; asyncio.timeout enforces it)
    ) -> QueryResult:
        started = time.monotonic()
        try:
            async with self._slots, asyncio.timeout(timeout):
                response, used_tcp = await dns.asyncquery.udp_with_fallback(
                    message,
                    result.server,
                    timeout=timeout,
                    port=result.port,
                    # Spoof resistance: a packet with the wrong ID, question or source is skipped and
                    # the real answer awaited, as a resolver would (reliability.md R20).
                    ignore_unexpected=True,
                    ignore_errors=True,
                )
        except TimeoutError:
            result.status = "timeout"
            result.error = f"no answer within {timeout:.1f} s"
            return result
        except dns.exception.Timeout:
            result.status = "timeout"
            result.error = f"no answer within {timeout:.1f} s"
            return result
        except (dns.exception.DNSException, OSError, EOFError, ValueError) as exc:
            result.status = "error"
            result.error = _describe_exception(exc)
            result.rtt_ms = (time.monotonic() - started) * 1000
            return result
        result.rtt_ms = (time.monotonic() - started) * 1000
        result.tcp = used_tcp
        _read_response(response, result)
        return result


def _describe_exception(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (nothing listens on port 53 over TCP)"
    if isinstance(exc, dns.message.Truncated):
        return "answer truncated even over TCP"
    if isinstance(exc, dns.exception.FormError):
        return f"malformed answer ({exc})"
    if isinstance(exc, EOFError):
        return "the server closed the TCP connection without answering"
    text = str(exc) or type(exc).__name__
    return text[:200]


def _read_response(response: dns.message.Message, result: QueryResult) -> None:
    rcode = response.rcode()
    result.rcode = dns.rcode.to_text(rcode)
    result.authoritative = bool(response.flags & dns.flags.AA)
    # The zone's SOA: in the authority section of a negative answer, or the answer to an SOA query.
    soa_answer = [
        r for r in response.answer if r.rdtype == dns.rdatatype.SOA and name_text(r.name) == result.qname
    ]
    for rrset in [*response.authority, *soa_answer]:
        if rrset.rdtype == dns.rdatatype.SOA and rrset:
            soa = rrset[0]
            result.soa_owner = name_text(rrset.name)
            result.soa_serial = soa.serial
            result.soa_ttl = rrset.ttl
            result.soa_minimum = soa.minimum
            result.soa_refresh = soa.refresh
    for rrset in response.authority:
        if rrset.rdtype == dns.rdatatype.NS:
            result.referral_zone = name_text(rrset.name)
            result.referral_ns = sorted(rdata_text(r) for r in rrset)
    for rrset in response.additional:
        if rrset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
            result.glue.setdefault(name_text(rrset.name), []).extend(rdata_text(r) for r in rrset)
    for rrset in response.answer:
        key = f"{name_text(rrset.name)} {dns.rdatatype.to_text(rrset.rdtype)}"
        result.rrsets[key] = [rdata_text(r) for r in rrset]
    if rcode == dns.rcode.NXDOMAIN:
        result.status = "nxdomain"
        _follow_answer(response, result)
        return
    if rcode == dns.rcode.REFUSED:
        result.status = "refused"
        return
    if rcode == dns.rcode.SERVFAIL:
        result.status = "servfail"
        result.error = _extended_error(response)
        return
    if rcode != dns.rcode.NOERROR:
        result.status = "error"
        result.error = f"answered {result.rcode}"
        return
    _follow_answer(response, result)


def _extended_error(response: dns.message.Message) -> str | None:
    errors = response.extended_errors()
    if not errors:
        return None
    return "; ".join(f"EDE {e.code}: {e.text}" if e.text else f"EDE {e.code}" for e in errors)


def _follow_answer(response: dns.message.Message, result: QueryResult) -> None:
    """Walk the answer section from the question name through any CNAMEs to the wanted RRset."""
    wanted = dns.rdatatype.from_text(result.rtype)
    current = dns.name.from_text(result.qname)
    seen = {current}
    for _ in range(16):
        rrset = _find(response.answer, current, wanted)
        if rrset is not None:
            result.status = "answer" if result.status != "nxdomain" else "nxdomain"
            result.values = [rdata_text(r) for r in rrset]
            result.ttl = rrset.ttl
            if result.status == "answer":
                return
        cname = (
            _find(response.answer, current, dns.rdatatype.CNAME) if wanted != dns.rdatatype.CNAME else None
        )
        if cname is None:
            break
        target = cname[0].target
        result.cname_chain.append(name_text(target))
        result.ttl = cname.ttl if result.ttl is None else min(result.ttl, cname.ttl)
        if target in seen:
            break
        seen.add(target)
        current = target
    if result.status == "nxdomain":
        return
    if result.cname_chain:
        result.status = "cname"
    elif not result.authoritative and _is_referral(response):
        result.status = "referral"
    else:
        result.status = "nodata"


def _find(section: list[dns.rrset.RRset], name: dns.name.Name, rdtype: int) -> dns.rrset.RRset | None:
    for rrset in section:
        if rrset.name == name and rrset.rdtype == rdtype:
            return rrset
    return None


def _is_referral(response: dns.message.Message) -> bool:
    return any(rrset.rdtype == dns.rdatatype.NS for rrset in response.authority) and not response.answer


class Recursor:
    """Asks the configured recursive resolvers in order until one answers (RD set, optional cache)."""

    def __init__(
        self, client: DnsClient, resolvers: tuple[ServerAddress, ...], cache: ResolverCache | None = None
    ) -> None:
        self.client = client
        self.resolvers = resolvers
        self.cache = cache

    async def ask(self, qname: str, rtype: str, *, checking_disabled: bool = False) -> QueryResult:
        result: QueryResult | None = None
        for resolver in self.resolvers:
            key = (resolver.address, resolver.port, qname, rtype, checking_disabled)
            cached = self.cache.get(key) if self.cache is not None else None
            if cached is not None:
                return cached
            result = await self.client.query(
                resolver.address,
                resolver.port,
                qname,
                rtype,
                recursion=True,
                checking_disabled=checking_disabled,
                label=resolver.name,
            )
            if result.status not in {"timeout", "error", "refused"}:
                if self.cache is not None:
                    self.cache.put(key, result)
                return result
        if result is None:
            return QueryResult(
                server="", port=0, qname=qname, rtype=rtype, status="error", error="no resolvers"
            )
        return result
