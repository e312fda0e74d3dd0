"""The file checker: fetch the validation file from every address of a domain, as a CA would.

For ``http://DOMAIN/.well-known/pki-validation/FILE`` it resolves A and AAAA through the configured
resolvers (never the system resolver), applies the address policy to every address, and fetches the file
from **every** allowed address on http and https concurrently, with the domain as Host header and SNI.
Each fetch is pinned to its address and follows redirects by hand, recording every hop. Nothing is
judged here: the result is a :class:`FileEvidence` for :mod:`bot.diagnosis.file`.

SSRF defences, in layers (shared/research/reliability.md 2.3):

1. names and URLs are built by us (:func:`bot.names.file_request`); redirect targets are re-validated
   (:func:`redirect_target`: Boulder's ``processRedirect`` rules);
2. every resolved address goes through :class:`~bot.netpolicy.AddressPolicy`; blocked ones are recorded,
   never fetched;
3. each connection uses a resolver that returns exactly the vetted address for exactly that host, and a
   ``socket_factory`` that re-checks the concrete socket address right before ``connect()``: this also
   catches IP-literal URLs, which aiohttp connects to without asking any resolver.

CA behaviour mirrored (Boulder ``va/http.go``, BR 3.2.2.4.18): TLS certificates are not verified,
keep-alive is off, only 301/302/307/308 redirects to http/https on the configured ports are followed,
at most 10 of them, and the body is read only up to a small cap.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import hashlib
import ipaddress
import secrets
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from bot.checks.dnsquery import Deadline, DnsClient, Recursor
from bot.config import Settings
from bot.model import CheckRequest, InputError, Observation
from bot.names import normalize_domain
from bot.netpolicy import AddressPolicy, BlockedAddress

USER_AGENT = "dcv-bot/0.1 (domain control validation diagnostics)"
"""Fixed and naming the bot, so server logs and WAF rules can tell its requests apart."""
MAX_BODY = 4096
"""Bytes of a response body read at most (one more is read to tell "too large"); a validation file is a
few dozen bytes (Boulder even caps at 128)."""
MAX_REDIRECTS = 10
"""Redirects followed at most, like Boulder (Let's Encrypt); stricter CAs are judged in the diagnosis."""
MAX_REDIRECT_PATH = 2000
"""Boulder's ``maxPathSize`` for a redirect target."""
REDIRECT_STATUSES = frozenset({301, 302, 307, 308})
"""BR 3.2.2.4.18: only these protocol-layer redirects may be followed (303 is not among them)."""
CONNECT_TIMEOUT = 5.0
"""Seconds for the TCP connect (and the TLS handshake) of one hop."""
READ_TIMEOUT = 5.0
"""Seconds to wait for the response headers, and for each chunk of the body."""
EXCERPT_CHARS = 200
MAX_PARALLEL = 16
MAX_ADDRESSES = 8
"""Addresses per family fetched at most (a domain with dozens of A records is a CDN; a sample tells)."""
DEADLINE_MARGIN = 0.3
"""Seconds of the check's deadline kept back for judging and printing."""

Scheme = Literal["http", "https"]
SCHEMES: tuple[Scheme, ...] = ("http", "https")


# ------------------------------------------------------------------------------------------------------
# Evidence


@dataclass(slots=True)
class ResolvedAddress:
    """One address of the domain: its record type and, if the policy blocks it, why."""

    ip: str
    rtype: Literal["A", "AAAA"]
    blocked: str | None = None

    @property
    def family(self) -> int:
        return 6 if self.rtype == "AAAA" else 4


@dataclass(slots=True)
class FileEvidence:
    """Everything the file checker saw; JSON-serialisable so diagnosis tests can replay it.

    ``lookup`` maps ``A``/``AAAA`` to the lookup outcome (``answer``, ``nxdomain``, ``nodata``,
    ``timeout``, ``servfail``, ``error``); ``lookup_errors`` holds the resolver's message per type.
    ``observations`` has one ``http`` observation per (address, scheme) fetched, plus one per blocked
    address (status ``blocked``, no fetch).
    """

    domain: str
    path: str
    addresses: list[ResolvedAddress] = field(default_factory=list)
    lookup: dict[str, str] = field(default_factory=dict)
    lookup_errors: dict[str, str] = field(default_factory=dict)
    cname_chain: list[str] = field(default_factory=list)
    observations: list[Observation] = field(default_factory=list)
    ports: dict[str, int] = field(default_factory=lambda: {"http": 80, "https": 443})
    max_body: int = MAX_BODY
    skipped: str | None = None
    """Why nothing was fetched at all (a wildcard request), or None."""
    duration_ms: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["observations"] = [o.to_dict() for o in self.observations]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FileEvidence:
        return cls(
            domain=data["domain"],
            path=data["path"],
            addresses=[ResolvedAddress(**a) for a in data.get("addresses", [])],
            lookup=dict(data.get("lookup") or {}),
            lookup_errors=dict(data.get("lookup_errors") or {}),
            cname_chain=list(data.get("cname_chain") or []),
            observations=[Observation.from_dict(o) for o in data.get("observations", [])],
            ports=dict(data.get("ports") or {"http": 80, "https": 443}),
            max_body=int(data.get("max_body", MAX_BODY)),
            skipped=data.get("skipped"),
            duration_ms=float(data.get("duration_ms", 0.0)),
        )


# ------------------------------------------------------------------------------------------------------
# Content


def sanitize_excerpt(body: bytes, limit: int = EXCERPT_CHARS) -> str:
    """Printable, truncated text of ``body``: invalid UTF-8 replaced (Boulder ``utf8filter``), control
    characters, a BOM and line endings shown as escapes so that invisible differences become visible."""
    text = body.decode("utf-8", errors="replace")
    out: list[str] = []
    for char in text:
        if char == "\n":
            out.append("\\n")
        elif char == "\r":
            out.append("\\r")
        elif char == "\t":
            out.append("\\t")
        elif char == "\ufeff":
            out.append("\\ufeff")
        elif ord(char) < 0x20 or 0x7F <= ord(char) < 0xA0:
            out.append(f"\\x{ord(char):02x}")
        else:
            out.append(char)
    excerpt = "".join(out)
    return excerpt if len(excerpt) <= limit else excerpt[: limit - 1] + "…"


ContentVerdict = Literal["exact", "trailing_space", "format", "html", "empty", "contains", "mismatch"]


def _strip_one_newline(data: bytes) -> bytes:
    return data[:-1] if data.endswith(b"\n") else data


def _looks_like_html(body: bytes, content_type: str | None) -> bool:
    if content_type and content_type.split(";")[0].strip().lower() in {"text/html", "application/xhtml+xml"}:
        return True
    head = body[:1024].lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html", b"<head", b"<body")) or b"<html" in head


def classify_content(
    body: bytes, expected: str, content_type: str | None = None
) -> tuple[ContentVerdict, list[str]]:
    """Compare a served body with the expected content; return the verdict and the differences.

    ``exact``: byte for byte (one trailing newline, which every editor adds, is ignored). ``trailing_space``
    and ``format``: equal once a BOM, CR line endings and white space around lines are removed, the first
    when only trailing white space differs (CAs such as Let's Encrypt trim it, Boulder
    ``TrimRightFunc``), the second for a BOM, leading white space or CRLF inside the content, which
    byte-exact CAs reject. ``html``: an HTML page (soft 404). ``contains``: the value with other text
    around it. ``empty``, ``mismatch``: what they say.
    """
    wanted = expected.encode("utf-8")
    if _strip_one_newline(body) == _strip_one_newline(wanted):
        return "exact", []
    if not body.strip():
        return "empty", ["the response body is empty"] if not body else ["the body is only white space"]
    text = body.decode("utf-8", errors="replace")
    differences: list[str] = []
    core = text
    if core.startswith("\ufeff"):
        differences.append("starts with a UTF-8 byte order mark (EF BB BF)")
        core = core[1:]
    stripped = core.strip()
    if core[: len(core) - len(core.lstrip())]:
        differences.append("has white space before the value")
    if "\r" in stripped:
        differences.append("uses Windows (CRLF) line endings")
    trailing = core[len(core.rstrip()) :]
    if trailing and trailing != "\n":
        differences.append(f"ends with extra white space ({sanitize_excerpt(trailing.encode())})")

    def norm(s: str) -> str:
        s = s.replace("\r\n", "\n").replace("\r", "\n").strip()
        return "\n".join(line.strip() for line in s.split("\n"))

    if differences and norm(core) == norm(expected.lstrip("\ufeff")):
        only_trailing = all(d.startswith("ends with extra white space") for d in differences)
        return ("trailing_space" if only_trailing else "format"), differences
    if _looks_like_html(body, content_type):
        return "html", ["an HTML page"]
    wanted_text = norm(expected)
    if wanted_text and wanted_text in norm(core):
        return "contains", ["the expected value with other text around it"]
    if norm(core).lower() == wanted_text.lower():
        return "mismatch", ["differs only in letter case (tokens are case-sensitive)"]
    return "mismatch", []


# ------------------------------------------------------------------------------------------------------
# Redirect rules


class RedirectRefused(Exception):
    """A redirect the CA would not follow (or that the bot must not follow); the message says why."""


@dataclass(frozen=True, slots=True)
class Target:
    """Where one hop goes: scheme, validated host (name or IP literal), port, path."""

    scheme: Scheme
    host: str
    port: int
    path: str
    ip_literal: bool = False

    @property
    def url(self) -> URL:
        return URL.build(scheme=self.scheme, host=self.host, port=self.port, path=self.path, encoded=True)


def _validate_host(host: str, policy: AddressPolicy) -> tuple[str, bool]:
    """Return ``(host, is_ip_literal)`` or raise :class:`RedirectRefused`."""
    if not host:
        raise RedirectRefused("the redirect has no host")
    if host.rstrip(".").lower().endswith(".well-known"):
        # Boulder's targeted error: "Redirect / https://example.com" makes example.com.well-known/...
        raise RedirectRefused(
            f"the redirect goes to host {host!r}: a '/' is missing after the domain in the redirect rule"
        )
    literal = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        ipaddress.ip_address(literal)
    except ValueError:
        pass
    else:
        why = policy.reason(literal)
        if why is not None:
            raise RedirectRefused(f"the redirect goes to the IP address {literal}, which {why}")
        return literal, True
    try:
        name, wildcard = normalize_domain(host, allow_private=policy.allow_private)
    except InputError as exc:
        raise RedirectRefused(f"the redirect goes to an invalid host: {exc}") from None
    if wildcard:
        raise RedirectRefused(f"the redirect goes to an invalid host {host!r}")
    return name, False


def initial_target(domain: str, path: str, scheme: Scheme, ports: dict[str, int]) -> Target:
    return Target(scheme, domain, ports[scheme], path)


def redirect_target(
    status: int,
    location: str | None,
    current: Target,
    *,
    ports: dict[str, int],
    policy: AddressPolicy,
    seen: set[str],
    redirects: int,
) -> Target:
    """Apply the redirect rules (Boulder ``processRedirect``; BR 3.2.2.4.18) to one redirect response.

    ``redirects`` is how many redirects were followed before this one. Returns the next hop or raises
    :class:`RedirectRefused` with a reason a person can act on.
    """
    if status not in REDIRECT_STATUSES:
        raise RedirectRefused(
            f"status {status} is not a redirect CAs follow (only 301, 302, 307 and 308 are)"
        )
    if redirects >= MAX_REDIRECTS:
        raise RedirectRefused(f"too many redirects (more than {MAX_REDIRECTS})")
    if not location:
        raise RedirectRefused(f"status {status} without a Location header")
    if "\\" in location or any(ord(c) < 0x21 for c in location):
        raise RedirectRefused(f"the Location {location[:100]!r} is not a valid URL")
    try:
        url = current.url.join(URL(location))
    except (ValueError, TypeError) as exc:
        raise RedirectRefused(f"the Location {location[:100]!r} is not a valid URL ({exc})") from None
    scheme = (url.scheme or "").lower()
    if scheme not in ("http", "https"):
        raise RedirectRefused(
            f"the redirect goes to a {scheme or 'schemeless'} URL; only http and https work"
        )
    if url.user is not None or url.password is not None:
        raise RedirectRefused("the redirect URL carries user information")
    explicit = url.explicit_port if url.is_absolute() else None
    if explicit is not None and explicit not in (80, 443, ports["http"], ports["https"]):
        raise RedirectRefused(
            f"the redirect goes to port {explicit}; CAs only connect to ports 80 and 443 "
            "(BR: Authorized Ports)"
        )
    raw_host = url.raw_host or ""
    host, literal = _validate_host(raw_host, policy)
    port = explicit if explicit is not None else ports[scheme]
    # In labs the configured ports stand in for 80/443; map an explicit standard port onto them.
    if port in (80, 443) and port not in (ports["http"], ports["https"]):
        port = ports["http"] if port == 80 else ports["https"]
    path = url.raw_path or "/"
    if url.raw_query_string:
        path = f"{path}?{url.raw_query_string}"
    if len(path) > MAX_REDIRECT_PATH:
        raise RedirectRefused(f"the redirect path is longer than {MAX_REDIRECT_PATH} bytes")
    nxt = Target(scheme, host, port, path, literal)  # type: ignore[arg-type]
    key = str(nxt.url)
    if key in seen:
        raise RedirectRefused(f"redirect loop: {key} was already visited")
    return nxt


# ------------------------------------------------------------------------------------------------------
# DNS


@dataclass(slots=True)
class Lookup:
    addresses: list[ResolvedAddress] = field(default_factory=list)
    status: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    cname_chain: list[str] = field(default_factory=list)


_LOOKUP_STATUS = {"answer": "answer", "nxdomain": "nxdomain", "nodata": "nodata", "cname": "nodata",
                  "timeout": "timeout", "servfail": "servfail", "refused": "servfail"}  # fmt: skip
"""How a resolver's answer for A/AAAA reads for the file check (an alias without an address is NODATA)."""


async def resolve_addresses(name: str, settings: Settings, budget: float, policy: AddressPolicy) -> Lookup:
    """A and AAAA of ``name`` through ``settings.resolvers``, each address judged by ``policy``."""
    result = Lookup()
    if not settings.resolvers:
        for rtype in ("A", "AAAA"):
            result.status[rtype] = "error"
            result.errors[rtype] = "no DNS resolvers are configured (DCV_RESOLVERS)"
        return result
    # The same query path as the DNS check: EDNS, TCP on truncation, per-query timeouts (dnsquery).
    client = DnsClient(
        Deadline(max(0.1, budget)),
        query_timeout=settings.dns_query_timeout,
        max_in_flight=settings.max_concurrent_queries,
    )
    recursor = Recursor(client, settings.resolvers)
    rtypes: tuple[Literal["A", "AAAA"], ...] = ("A", "AAAA")
    answers = await asyncio.gather(*(recursor.ask(name, rtype) for rtype in rtypes))
    for rtype, answer in zip(rtypes, answers, strict=True):
        result.status[rtype] = _LOOKUP_STATUS.get(answer.status, "error")
        if answer.status not in {"answer", "nxdomain", "nodata", "cname"}:
            result.errors[rtype] = answer.error or f"the resolvers answered {answer.rcode or answer.status}"
        for chained in answer.cname_chain:
            if chained not in result.cname_chain:
                result.cname_chain.append(chained)
        values = answer.values if answer.status == "answer" else []
        for ip in values[:MAX_ADDRESSES]:
            result.addresses.append(ResolvedAddress(ip, rtype, policy.reason(ip)))
    return result


# ------------------------------------------------------------------------------------------------------
# One pinned HTTP request


class _PinnedResolver(AbstractResolver):
    """Resolves exactly one host to exactly one vetted address (Boulder's pre-resolved dialer)."""

    def __init__(self, host: str, ip: str) -> None:
        self._host = host
        self._ip = ip

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if host != self._host:
            # A hop must never reach a host it was not vetted for (Boulder dialerMismatchError).
            raise OSError(errno.EACCES, f"blocked host {host}: not the host this connection was vetted for")
        fam = socket.AF_INET6 if ":" in self._ip else socket.AF_INET
        return [
            {
                "hostname": host,
                "host": self._ip,
                "port": port,
                "family": fam,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
            }
        ]

    async def close(self) -> None:
        return None


class _TrackedSocket(socket.socket):
    """A socket that notes when its non-blocking connect completed, so a timeout can be blamed on the
    TCP connect (filtered port) or on what came after it (TLS handshake)."""

    connected: bool = False

    def connect(self, address: Any) -> None:
        super().connect(address)
        self.connected = True

    def getsockopt(self, *args: Any) -> Any:
        value = super().getsockopt(*args)
        if args[:2] == (socket.SOL_SOCKET, socket.SO_ERROR) and value == 0:
            self.connected = True
        return value


@dataclass(slots=True)
class _HopState:
    sockets: list[_TrackedSocket] = field(default_factory=list)
    addresses: list[str] = field(default_factory=list)
    phase: str = "connect"
    """``connect`` (TCP, then TLS), ``request`` (connected, waiting for the headers), ``body``."""

    @property
    def tcp_connected(self) -> bool:
        return any(s.connected for s in self.sockets)


def _socket_factory(policy: AddressPolicy, pinned: str, state: _HopState) -> Callable[[Any], socket.socket]:
    def factory(addr_info: Any) -> socket.socket:
        family, type_, proto, _, sockaddr = addr_info
        ip, port = str(sockaddr[0]), int(sockaddr[1])
        if family == socket.AF_INET6 and len(sockaddr) >= 4 and sockaddr[3]:
            raise BlockedAddress(ip, "is a zone-scoped IPv6 address")
        # The last line of defence: the exact address about to be connected to (reliability.md 2.3).
        policy.check(ip, port)
        if ip != pinned:
            raise BlockedAddress(ip, f"is not the vetted address {pinned}")
        sock = _TrackedSocket(family, type_, proto)
        state.sockets.append(sock)
        state.addresses.append(ip)
        return sock

    return factory


@dataclass(slots=True)
class HopResult:
    status: int | None = None
    location: str | None = None
    body: bytes = b""
    too_large: bool = False
    content_type: str | None = None
    server_header: str | None = None
    content_length: str | None = None
    outcome: str = "ok"
    """``ok`` (a response), ``timeout``, ``read_timeout``, ``refused``, ``unreachable``, ``reset``,
    ``tls_error``, ``blocked``, ``protocol_error``, ``error``."""
    error: str | None = None
    phase: str = "connect"
    address: str | None = None


def _classify_exception(exc: BaseException, state: _HopState, scheme: Scheme) -> tuple[str, str]:
    """Boulder-style (``detailedError``): which phase failed and how, in words for the user."""
    connected = state.tcp_connected
    if isinstance(exc, BlockedAddress):
        return "blocked", str(exc.strerror)
    if isinstance(exc, aiohttp.ClientConnectorError) and isinstance(exc.os_error, BlockedAddress):
        return "blocked", str(exc.os_error.strerror)
    if isinstance(
        exc, aiohttp.ClientConnectorCertificateError | aiohttp.ClientConnectorSSLError | ssl.SSLError
    ):
        detail = str(getattr(exc, "os_error", exc) or exc)
        return "tls_error", f"TLS handshake failed: {_short(detail)}"
    if isinstance(exc, TimeoutError):
        if state.phase == "request":
            return (
                "read_timeout",
                "timeout after connect (the server accepted the connection but did not answer)",
            )
        if state.phase == "connect" and not connected:
            return "timeout", "timeout during connect (likely firewall problem)"
        if state.phase == "connect" and scheme == "https":
            return "tls_error", "timeout during the TLS handshake (connected, but TLS never completed)"
        if state.phase == "body":
            return (
                "read_timeout",
                "timeout while reading the body (the server sends too slowly or never ends)",
            )
        return "read_timeout", "timeout after connect (the server accepted the connection but did not answer)"
    if isinstance(exc, aiohttp.ClientConnectorError) or (isinstance(exc, OSError) and not connected):
        os_error = getattr(exc, "os_error", exc)
        code = getattr(os_error, "errno", None)
        if code == errno.ECONNREFUSED:
            return "refused", "connection refused (nothing listens on the port)"
        if code in (errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EADDRNOTAVAIL):
            return "unreachable", f"network unreachable ({_short(str(os_error))})"
        if code == errno.ECONNRESET:
            return "reset", "connection reset during connect"
        if isinstance(os_error, ssl.SSLError):
            return "tls_error", f"TLS handshake failed: {_short(str(os_error))}"
        return "error", f"connect failed: {_short(str(os_error))}"
    if isinstance(exc, aiohttp.ServerDisconnectedError | ConnectionResetError) or (
        isinstance(exc, OSError) and exc.errno == errno.ECONNRESET
    ):
        if scheme == "https" and state.phase == "connect":
            return "tls_error", "the connection was closed during the TLS handshake"
        return "reset", "the connection was closed or reset before a complete response"
    if isinstance(exc, aiohttp.ClientResponseError | aiohttp.ClientPayloadError):
        return "protocol_error", f"invalid HTTP response: {_short(str(exc))}"
    if isinstance(exc, aiohttp.ClientOSError):
        return "reset", f"connection error: {_short(str(exc))}"
    return "error", f"{type(exc).__name__}: {_short(str(exc))}"


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


async def fetch_once(
    target: Target,
    ip: str,
    policy: AddressPolicy,
    *,
    deadline: float,
    max_body: int = MAX_BODY,
    verify_certificate: bool = False,
) -> HopResult:
    """One GET of ``target`` connected to ``ip`` (already vetted), redirects not followed.

    Never raises for network trouble; never outlives ``deadline`` (a ``time.monotonic()`` value).
    With ``verify_certificate``, an https certificate that does not verify ends the request with
    outcome ``certificate`` (the caller notes it and asks again without verifying, as CAs do).
    """
    state = _HopState()
    result = HopResult(address=ip)
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        result.outcome, result.error, result.phase = (
            "timeout",
            "no time left in the check's deadline",
            "connect",
        )
        return result
    try:
        policy.check(ip, target.port)
    except BlockedAddress as exc:
        result.outcome, result.error = "blocked", str(exc.strerror)
        return result
    connector = aiohttp.TCPConnector(
        resolver=_PinnedResolver(target.host, ip),
        socket_factory=_socket_factory(policy, ip, state),
        use_dns_cache=False,
        force_close=True,  # Boulder disables keep-alive: every hop is a fresh connection
        # CAs do not verify the certificate here (Boulder InsecureSkipVerify); verifying first only
        # lets the report say whether browsers would accept it.
        ssl=_verifying_context() if verify_certificate and target.scheme == "https" else False,
        limit=1,
        happy_eyeballs_delay=None,
    )
    timeout = aiohttp.ClientTimeout(
        total=None,
        sock_connect=min(CONNECT_TIMEOUT, remaining),
        sock_read=min(READ_TIMEOUT, remaining),
    )
    # The connection (TCP and, for https, TLS) is complete when aiohttp reports it created: a timeout
    # after that is the server's slowness, not a failed handshake.
    tracing = aiohttp.TraceConfig()

    async def connected(*_: object) -> None:
        state.phase = "request"

    tracing.on_connection_create_end.append(connected)
    session = aiohttp.ClientSession(
        trace_configs=[tracing],
        connector=connector,
        cookie_jar=aiohttp.DummyCookieJar(),
        trust_env=False,  # no proxies from the environment
        auto_decompress=False,
        timeout=timeout,
        headers={"User-Agent": USER_AGENT, "Accept": "*/*", "Accept-Encoding": "identity"},
        max_line_size=8190,
        max_field_size=8190,
    )
    try:
        async with (
            session,
            asyncio.timeout_at(_loop_time(deadline)),
            session.get(target.url, allow_redirects=False) as response,
        ):
            state.phase = "body"
            result.status = response.status
            result.location = response.headers.get("Location")
            result.content_type = response.headers.get("Content-Type")
            result.server_header = response.headers.get("Server")
            result.content_length = response.headers.get("Content-Length")
            body = bytearray()
            while len(body) <= max_body:
                # A per-chunk deadline: aiohttp's read timeout never fires on a server that drips.
                async with asyncio.timeout(min(READ_TIMEOUT, max(0.0, deadline - time.monotonic()))):
                    chunk = await response.content.read(max_body + 1 - len(body))
                if not chunk:
                    break
                body.extend(chunk)
            result.too_large = len(body) > max_body
            result.body = bytes(body[:max_body])
            response.close()  # do not drain an endless body
    except asyncio.CancelledError:
        raise
    except aiohttp.ClientConnectorCertificateError as exc:
        result.outcome = "certificate"
        reason = getattr(exc.certificate_error, "verify_message", None) or str(exc.certificate_error)
        result.error = f"the certificate does not verify: {_short(str(reason))}"
    except Exception as exc:
        if result.status is not None and state.phase == "body":
            result.outcome = "read_timeout" if isinstance(exc, TimeoutError) else "reset"
            result.error = (
                "timeout while reading the body (the server sends too slowly or never ends)"
                if isinstance(exc, TimeoutError)
                else f"the body was cut off: {_short(str(exc)) or type(exc).__name__}"
            )
        else:
            result.outcome, result.error = _classify_exception(exc, state, target.scheme)
            result.status = None
    result.phase = state.phase
    if state.addresses:
        result.address = state.addresses[-1]
    return result


@functools.cache
def _verifying_context() -> ssl.SSLContext:
    """The system's trust store, built once (loading it costs milliseconds)."""
    return ssl.create_default_context()


def _loop_time(deadline: float) -> float:
    """Convert a ``time.monotonic()`` deadline into the event loop's clock."""
    loop = asyncio.get_running_loop()
    return loop.time() + (deadline - time.monotonic())


# ------------------------------------------------------------------------------------------------------
# A whole fetch: one address, one scheme, redirects followed by hand


@dataclass(slots=True)
class _Context:
    request: CheckRequest
    settings: Settings
    policy: AddressPolicy
    ports: dict[str, int]
    deadline: float
    semaphore: asyncio.Semaphore
    max_body: int = MAX_BODY


async def _address_for_hop(ctx: _Context, target: Target, first_ip: str) -> tuple[str | None, str | None]:
    """The address to connect to for ``target``: the same address for the request's own domain (so each
    row of the report is one server), else a fresh, policy-checked lookup (Boulder re-resolves every hop)."""
    if target.ip_literal:
        return target.host, None
    if target.host == ctx.request.domain:
        return first_ip, None
    budget = min(ctx.settings.dns_query_timeout * 2, ctx.deadline - time.monotonic())
    if budget <= 0:
        return None, f"no time left to resolve {target.host}"
    lookup = await resolve_addresses(target.host, ctx.settings, budget, ctx.policy)
    allowed = [a for a in lookup.addresses if a.blocked is None]
    if not allowed:
        blocked = [a for a in lookup.addresses if a.blocked]
        if blocked:
            return None, f"{target.host} resolves to {blocked[0].ip}, which {blocked[0].blocked}"
        why = lookup.errors.get("A") or lookup.status.get("A", "no address")
        return None, f"{target.host} has no usable address ({why})"
    same_family = [a for a in allowed if ("." in a.ip) == ("." in first_ip)]
    return (same_family or allowed)[0].ip, None


async def fetch_chain(ctx: _Context, address: ResolvedAddress, scheme: Scheme, path: str) -> Observation:
    """Fetch ``path`` from ``address`` over ``scheme`` and follow redirects; one observation."""
    target = initial_target(ctx.request.domain, path, scheme, ctx.ports)
    hops: list[dict[str, Any]] = []
    seen: set[str] = set()
    started = time.monotonic()
    final: HopResult | None = None
    redirect_error: str | None = None
    ip: str | None = address.ip
    async with ctx.semaphore:
        while True:
            seen.add(str(target.url))
            hop: dict[str, Any] = {
                "url": str(target.url),
                "scheme": target.scheme,
                "host": target.host,
                "port": target.port,
                "address": ip,
            }
            hops.append(hop)
            if ip is None:
                break
            final = await fetch_once(
                target, ip, ctx.policy, deadline=ctx.deadline, max_body=ctx.max_body, verify_certificate=True
            )
            if final.outcome == "certificate":
                hop["certificate"] = final.error
                final = await fetch_once(target, ip, ctx.policy, deadline=ctx.deadline, max_body=ctx.max_body)
            elif target.scheme == "https" and final.status is not None:
                hop["certificate"] = "valid"
            hop["address"] = final.address
            hop["status"] = final.status
            if final.error:
                hop["error"] = final.error
            if final.status is None or not 300 <= final.status < 400 or final.status == 304:
                break
            hop["location"] = final.location
            try:
                target = redirect_target(
                    final.status,
                    final.location,
                    target,
                    ports=ctx.ports,
                    policy=ctx.policy,
                    seen=seen,
                    redirects=len(hops) - 1,
                )
            except RedirectRefused as exc:
                redirect_error = str(exc)
                break
            ip, why = await _address_for_hop(ctx, target, address.ip)
            if why is not None:
                redirect_error = why
                hops.append(
                    {
                        "url": str(target.url),
                        "scheme": target.scheme,
                        "host": target.host,
                        "port": target.port,
                        "address": None,
                        "status": None,
                        "error": why,
                    }
                )
                break
    rtt_ms = round((time.monotonic() - started) * 1000, 1)
    return _observation(ctx, address, scheme, hops, final, redirect_error, rtt_ms)


def _observation(
    ctx: _Context,
    address: ResolvedAddress,
    scheme: Scheme,
    hops: list[dict[str, Any]],
    final: HopResult | None,
    redirect_error: str | None,
    rtt_ms: float,
) -> Observation:
    detail: dict[str, Any] = {
        "scheme": scheme,
        "family": address.family,
        "hops": hops,
        "redirects": max(0, len(hops) - 1),
        "http_status": final.status if final else None,
        "bytes": len(final.body) if final else 0,
        "content_verdict": None,
        "content_type": final.content_type if final else None,
        "server_header": final.server_header if final else None,
        "phase": final.phase if final else None,
    }
    certificates = [hop["certificate"] for hop in hops if "certificate" in hop]
    if certificates:
        detail["certificate"] = certificates[0]
    values: list[str] = []
    error = final.error if final else None
    if redirect_error is not None:
        status, error = "redirect_error", redirect_error
    elif final is None:
        status = "error"
    elif final.outcome != "ok" and final.status is None:
        status = final.outcome
    elif final.too_large:
        status = "too_large"
        detail["bytes"] = ctx.max_body + 1
        values = [sanitize_excerpt(final.body)]
    elif final.outcome != "ok":
        status = final.outcome  # the body broke off or never ended
        values = [sanitize_excerpt(final.body)] if final.body else []
    elif final.status == 200:
        status = "ok"
        verdict, differences = classify_content(final.body, ctx.request.expected, final.content_type)
        detail["content_verdict"] = verdict
        detail["differences"] = differences
        detail["sha256"] = hashlib.sha256(final.body).hexdigest()
        values = [sanitize_excerpt(final.body)]
    else:
        status = "status"
        values = [sanitize_excerpt(final.body)] if final.body else []
    first_port = hops[0]["port"] if hops else ctx.ports[scheme]
    return Observation(
        kind="http",
        server=ctx.request.domain,
        address=address.ip,
        port=first_port,
        status=status,
        values=values,
        rtt_ms=rtt_ms,
        error=error,
        detail=detail,
    )


def _blocked_observation(domain: str, address: ResolvedAddress) -> Observation:
    return Observation(
        kind="http",
        server=domain,
        address=address.ip,
        port=None,
        status="blocked",
        error=f"not fetched: {address.ip} {address.blocked}",
        detail={
            "scheme": None,
            "family": address.family,
            "hops": [],
            "redirects": 0,
            "blocked": address.blocked,
        },
    )


async def _probe_catch_all(
    ctx: _Context, observations: list[Observation], addresses: list[ResolvedAddress]
) -> None:
    """Fetch one random, surely missing file from the first address whose 200 response did not carry the
    expected content; if it returns the same body, the application answers every path (a soft 404)."""
    suspects = [
        o
        for o in observations
        if o.status == "ok" and o.detail.get("content_verdict") in {"mismatch", "contains", "html", "empty"}
    ]
    if not suspects:
        return
    first = suspects[0]
    address = next(a for a in addresses if a.ip == first.address)
    path = f"/.well-known/pki-validation/dcv-bot-{secrets.token_hex(8)}.txt"
    control = await fetch_chain(ctx, address, first.detail["scheme"], path)
    digest = control.detail.get("sha256")
    info = {"path": path, "status": control.detail.get("http_status"), "same_body": False}
    for obs in suspects:
        same = control.status == "ok" and digest is not None and obs.detail.get("sha256") == digest
        obs.detail["control"] = {**info, "same_body": same}
        if same:
            obs.detail["catch_all"] = True


async def gather_file_evidence(
    request: CheckRequest, settings: Settings, *, policy: AddressPolicy | None = None
) -> FileEvidence:
    """Resolve the domain and fetch the file from every allowed address on http and https.

    ``policy`` defaults to :meth:`AddressPolicy.from_settings`, restricted to the configured HTTP and
    HTTPS ports. Finishes within ``settings.timeout`` (less a small margin); never raises for network
    trouble.
    """
    started = time.monotonic()
    ports = {"http": settings.http_port, "https": settings.https_port}
    path = request.path or "/.well-known/pki-validation/fileauth.txt"
    evidence = FileEvidence(domain=request.domain, path=path, ports=dict(ports))
    if request.wildcard:
        evidence.skipped = "wildcard"
        return evidence
    base = policy if policy is not None else AddressPolicy.from_settings(settings)
    active = base.with_ports(frozenset({settings.http_port, settings.https_port}))
    deadline = started + max(0.5, settings.timeout - DEADLINE_MARGIN)
    ctx = _Context(request, settings, active, ports, deadline, asyncio.Semaphore(MAX_PARALLEL))

    # The request's domain itself is vetted like a redirect target: a hand-built request with an IP
    # literal or a special-use name must not slip through.
    try:
        host, literal = _validate_host(request.domain, active)
    except RedirectRefused as exc:
        evidence.lookup = {"A": "error", "AAAA": "error"}
        evidence.lookup_errors = {"A": str(exc)}
        return evidence
    if literal:
        rtype: Literal["A", "AAAA"] = "AAAA" if ":" in host else "A"
        evidence.addresses = [ResolvedAddress(host, rtype, active.reason(host))]
        evidence.lookup = {rtype: "answer"}
    else:
        budget = min(settings.dns_query_timeout * 2 + 0.5, (deadline - time.monotonic()) / 2)
        lookup = await resolve_addresses(host, settings, budget, active)
        evidence.addresses = lookup.addresses
        evidence.lookup = lookup.status
        evidence.lookup_errors = lookup.errors
        evidence.cname_chain = lookup.cname_chain

    allowed = [a for a in evidence.addresses if a.blocked is None]
    tasks = [fetch_chain(ctx, a, scheme, path) for a in allowed for scheme in SCHEMES]
    observations = list(await asyncio.gather(*tasks))
    if time.monotonic() < deadline - 0.5:
        with contextlib.suppress(Exception):
            await _probe_catch_all(ctx, observations, allowed)
    blocked = [_blocked_observation(request.domain, a) for a in evidence.addresses if a.blocked]
    evidence.observations = observations + blocked
    evidence.duration_ms = round((time.monotonic() - started) * 1000, 1)
    return evidence
