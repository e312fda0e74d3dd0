"""The file checker against real aiohttp servers on loopback, names from a real DNS server."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web

from bot.checks.http import MAX_BODY, USER_AGENT, gather_file_evidence
from bot.config import ServerAddress, Settings
from bot.diagnosis.file import diagnose_file
from bot.model import CheckRequest, Diagnosis, Severity, Verdict
from bot.names import file_request
from bot.netpolicy import AddressPolicy, BlockedAddress
from tests.checks.weblab import WebLab, drip, endless
from tests.servers.dnsserver import AuthServer
from tests.servers.fixtures import allocate_loopback
from tests.servers.zones import zone_text

ZONE = "dcvlab.net."
PATH = "/.well-known/pki-validation/fileauth.txt"
TOKEN = "9c1d2e3f4a5b6c7d8e9f"


@dataclass
class Lab:
    web: WebLab
    dns: AuthServer
    a1: str
    a2: str
    a3: str
    settings: Settings

    def records(self, records: dict[str, dict[str, Any]]) -> None:
        self.dns.set_zone(ZONE, zone_text(ZONE, records))

    def url(self, scheme: str, host: str, path: str = PATH) -> str:
        port = self.web.http_port if scheme == "http" else self.web.https_port
        return f"{scheme}://{host}:{port}{path}"

    async def check(
        self,
        name: str,
        content: str = TOKEN,
        *,
        ca: str | None = None,
        policy: AddressPolicy | None = None,
        **settings: Any,
    ) -> Diagnosis:
        request = file_request(f"{name}.dcvlab.net", content, ca=ca, allow_private=True)
        return await self.run(request, policy=policy, **settings)

    async def run(
        self, request: CheckRequest, *, policy: AddressPolicy | None = None, **settings: Any
    ) -> Diagnosis:
        ev = await gather_file_evidence(request, self.settings.with_overrides(**settings), policy=policy)
        return diagnose_file(request, ev)


@pytest_asyncio.fixture
async def lab() -> AsyncIterator[Lab]:
    a1, a2, a3, dns_addr = allocate_loopback(4)
    web_lab = await WebLab([a1, a2, a3, "::1"]).start()
    dns = AuthServer(dns_addr, 0, {ZONE: zone_text(ZONE, {})})
    await dns.start()
    settings = Settings(
        resolvers=(ServerAddress(dns.address, dns.port),),
        http_port=web_lab.http_port,
        https_port=web_lab.https_port,
        allow_private=True,
        timeout=4.0,
        dns_query_timeout=0.5,
    )
    yield Lab(web_lab, dns, a1, a2, a3, settings)
    await web_lab.stop()
    await dns.stop()


def codes(d: Diagnosis, severity: Severity | None = None) -> set[str]:
    """Finding codes, without the note every https fetch of this lab gets for its private-CA certificate
    (``HTTP_CERT_INVALID`` has tests of its own)."""
    return {
        f.code
        for f in d.findings
        if (severity is None or f.severity is severity) and f.code != "HTTP_CERT_INVALID"
    }


def by(d: Diagnosis, address: str, scheme: str) -> Any:
    return next(o for o in d.observations if o.address == address and o.detail.get("scheme") == scheme)


# -- the file is there ----------------------------------------------------------------------------------


async def test_found_on_every_address_and_scheme(lab: Lab) -> None:
    lab.records({"www": {"A": [lab.a1, lab.a2]}})
    lab.web.serve(PATH, TOKEN)
    started = time.monotonic()
    d = await lab.check("www")
    elapsed = time.monotonic() - started
    assert d.verdict is Verdict.PASS, d.findings
    assert codes(d) == {"HTTP_FILE_FOUND"}
    assert {(o.address, o.detail["scheme"]) for o in d.observations} == {
        (lab.a1, "http"),
        (lab.a1, "https"),
        (lab.a2, "http"),
        (lab.a2, "https"),
    }
    for o in d.observations:
        assert o.status == "ok" and o.values == [TOKEN] and o.detail["content_verdict"] == "exact"
        assert o.detail["hops"][0]["address"] == o.address
    assert elapsed < 1.0


async def test_request_headers_sni_and_no_cookies(lab: Lab) -> None:
    lab.records({"www": {"A": lab.a1}})

    async def set_cookie(request: web.Request) -> web.StreamResponse:
        response = web.HTTPFound(f"{request.scheme}://www.dcvlab.net:{request.url.port}/next")
        response.set_cookie("session", "secret")
        raise response

    lab.web.route(PATH, set_cookie)
    lab.web.serve("/next", TOKEN)
    await lab.check("www", ca="letsencrypt")
    assert lab.web.hits
    for hit in lab.web.hits:
        assert hit.host is not None and hit.host.startswith("www.dcvlab.net")
        assert hit.user_agent == USER_AGENT
        assert hit.headers.get("Accept") == "*/*"
        assert hit.headers.get("Accept-Encoding") == "identity"
        assert "Cookie" not in hit.headers
        assert hit.headers.get("Connection", "").lower() == "close"
    assert set(lab.web.sni_seen) == {"www.dcvlab.net"}


async def test_cname_is_followed(lab: Lab) -> None:
    lab.records({"www": {"CNAME": "origin.dcvlab.net."}, "origin": {"A": lab.a1}})
    lab.web.serve(PATH, TOKEN)
    d = await lab.check("www")
    assert d.verdict is Verdict.PASS


# -- no or private address ------------------------------------------------------------------------------


async def test_no_address(lab: Lab) -> None:
    lab.records({"www": {"TXT": "nothing here"}})
    d = await lab.check("www")
    assert codes(d) == {"HTTP_NO_ADDRESS"} and d.verdict is Verdict.FAIL
    d = await lab.check("absent")
    assert codes(d) == {"HTTP_NO_ADDRESS"}
    assert "NXDOMAIN" in d.findings[0].message


async def test_private_address_with_production_policy(lab: Lab) -> None:
    lab.records({"www": {"A": lab.a1}})
    lab.web.serve(PATH, TOKEN)
    d = await lab.check("www", policy=AddressPolicy.production())
    assert codes(d) == {"HTTP_PRIVATE_ADDRESS"}
    assert "loopback" in d.findings[0].message
    assert lab.web.count() == 0


# -- connect failures -----------------------------------------------------------------------------------


async def test_refused(lab: Lab) -> None:
    idle = allocate_loopback(1)[0]  # nothing listens there
    lab.records({"www": {"A": idle}})
    d = await lab.check("www")
    assert codes(d) == {"HTTP_REFUSED"}
    assert idle in d.findings[0].message and "refused" in d.findings[0].message


@pytest_asyncio.fixture
async def filtered() -> AsyncIterator[tuple[str, int]]:
    """An address and port whose accept queue is full, so new SYNs are dropped: a connect timeout,
    exactly what a firewall that drops packets looks like to a client."""
    address = allocate_loopback(1)[0]
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind((address, 0))
    server.listen(0)
    fillers = []
    for _ in range(3):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            s.connect(server.getsockname())
        fillers.append(s)
    await asyncio.sleep(0.05)
    yield address, server.getsockname()[1]
    for s in [*fillers, server]:
        s.close()


async def test_connect_timeout_is_filtered(lab: Lab, filtered: tuple[str, int]) -> None:
    address, port = filtered
    lab.records({"www": {"A": address}})
    started = time.monotonic()
    d = await lab.check("www", http_port=port, https_port=port + 1 if port < 65535 else port - 1, timeout=2.0)
    elapsed = time.monotonic() - started
    assert "HTTP_TIMEOUT" in codes(d, Severity.ERROR)
    http = by(d, address, "http")
    assert http.status == "timeout" and "connect" in http.error
    assert elapsed < 2.5


async def test_tls_error(lab: Lab) -> None:
    """Plain HTTP spoken on the HTTPS port: the handshake fails."""
    plain = allocate_loopback(1)[0]

    async def speak_http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(100)
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(speak_http, plain, lab.web.https_port)
    lab.records({"www": {"A": plain}})
    try:
        d = await lab.check("www")
    finally:
        server.close()
    assert "HTTP_TLS_ERROR" in codes(d)
    assert by(d, plain, "https").status == "tls_error"


async def test_ipv6_broken_while_ipv4_works(lab: Lab) -> None:
    lab.records({"www": {"A": lab.a1, "AAAA": "::1"}})
    lab.web.serve(PATH, TOKEN, address=lab.a1)

    async def hang(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(30)
        raise web.HTTPOk()

    lab.web.route(None, hang, address="::1")
    d = await lab.check("www", timeout=1.5)
    assert d.verdict is Verdict.FAIL
    assert codes(d, Severity.ERROR) == {"HTTP_IPV6_BROKEN"}
    assert by(d, "::1", "http").status == "read_timeout"


# -- answers that are not the file ----------------------------------------------------------------------


async def test_not_found_and_bad_status(lab: Lab) -> None:
    lab.records({"www": {"A": lab.a1}})

    async def forbidden(request: web.Request) -> web.StreamResponse:
        raise web.HTTPForbidden(text="denied")

    lab.web.route(PATH, forbidden, scheme="https")
    d = await lab.check("www")
    assert {"HTTP_NOT_FOUND", "HTTP_BAD_STATUS"} <= codes(d, Severity.ERROR)
    assert by(d, lab.a1, "http").detail["http_status"] == 404
    assert by(d, lab.a1, "https").detail["http_status"] == 403


async def test_soft_404_html(lab: Lab) -> None:
    lab.records({"www": {"A": lab.a1}})
    lab.web.serve(None, "<!DOCTYPE html><html><body>Shop</body></html>", content_type="text/html")  # type: ignore[arg-type]
    d = await lab.check("www")
    assert codes(d) == {"HTTP_SOFT_404"}


async def test_soft_404_plain_text_catch_all(lab: Lab) -> None:
    lab.records({"www": {"A": lab.a1}})
    lab.web.serve(None, "ok", content_type="text/plain")  # type: ignore[arg-type]
    d = await lab.check("www")
    assert codes(d) == {"HTTP_SOFT_404"}
    assert any(o.detail.get("catch_all") for o in d.observations)
    assert any("/dcv-bot-" in h.path for h in lab.web.hits)


async def test_content_mismatch(lab: Lab) -> None:
    lab.records({"www": {"A": lab.a1}})
    lab.web.serve(PATH, "stale-token\x00<b>")
    d = await lab.check("www")
    assert codes(d) == {"HTTP_CONTENT_MISMATCH"}
    assert "stale-token\\x00<b>" in d.findings[0].message


@pytest.mark.parametrize(
    ("body", "severity"),
    [
        (b"\xef\xbb\xbf" + TOKEN.encode(), Severity.ERROR),
        (b"  " + TOKEN.encode(), Severity.ERROR),
        (TOKEN.encode() + b"  \r\n", Severity.WARNING),
    ],
)
async def test_content_format(lab: Lab, body: bytes, severity: Severity) -> None:
    lab.records({"www": {"A": lab.a1}})
    lab.web.serve(PATH, body)
    d = await lab.check("www")
    assert codes(d, severity) == {"HTTP_CONTENT_FORMAT"}
    assert "HTTP_CONTENT_MISMATCH" not in codes(d)


async def test_too_large(lab: Lab) -> None:
    lab.records({"www": {"A": lab.a1}})
    lab.web.serve(PATH, b"A" * (MAX_BODY * 50))
    d = await lab.check("www")
    assert codes(d) == {"HTTP_TOO_LARGE"}
    assert by(d, lab.a1, "http").detail["bytes"] == MAX_BODY + 1


async def test_endless_body_is_cut_at_the_cap(lab: Lab) -> None:
    lab.records({"www": {"A": lab.a1}})
    lab.web.route(PATH, endless)
    started = time.monotonic()
    d = await lab.check("www")
    assert time.monotonic() - started < 1.5
    assert codes(d) == {"HTTP_TOO_LARGE"}


async def test_drip_respects_the_deadline(lab: Lab) -> None:
    lab.records({"www": {"A": lab.a1}})
    lab.web.route(PATH, drip)
    started = time.monotonic()
    d = await lab.check("www", timeout=1.5)
    elapsed = time.monotonic() - started
    assert elapsed < 1.6, elapsed
    assert "HTTP_TIMEOUT" in codes(d)
    assert by(d, lab.a1, "http").status == "read_timeout"


async def test_slow_answer_after_a_completed_tls_handshake_is_not_a_tls_error(lab: Lab) -> None:
    """The handshake succeeds, then the server sits on the request: a timeout, not HTTP_TLS_ERROR."""

    async def silent(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(30)
        return web.Response(text=TOKEN)

    lab.records({"www": {"A": lab.a1}})
    lab.web.route(PATH, silent)
    d = await lab.check("www", timeout=1.5)
    https = by(d, lab.a1, "https")
    assert https.status == "read_timeout", https.error
    assert "after connect" in (https.error or "")
    assert "HTTP_TLS_ERROR" not in codes(d)
    assert "HTTP_TIMEOUT" in codes(d)


async def test_a_certificate_browsers_reject_is_noted_but_not_fatal(lab: Lab) -> None:
    lab.records({"www": {"A": lab.a1}})
    lab.web.serve(PATH, TOKEN)
    d = await lab.check("www")
    assert d.verdict is Verdict.PASS
    note = next(f for f in d.findings if f.code == "HTTP_CERT_INVALID")
    assert note.severity is Severity.INFO and lab.a1 in note.message
    https = by(d, lab.a1, "https")
    assert https.status == "ok" and "does not verify" in str(https.detail["certificate"])
    assert "certificate" not in by(d, lab.a1, "http").detail


async def test_inconsistent_load_balancer(lab: Lab) -> None:
    lab.records({"www": {"A": [lab.a1, lab.a2, lab.a3]}})
    lab.web.serve(PATH, TOKEN, address=lab.a1)
    lab.web.serve(PATH, TOKEN, address=lab.a2)
    d = await lab.check("www")
    assert d.verdict is Verdict.FAIL
    assert {"HTTP_INCONSISTENT", "HTTP_NOT_FOUND", "HTTP_FILE_FOUND"} <= codes(d)
    assert lab.a3 in next(f for f in d.findings if f.code == "HTTP_INCONSISTENT").message


# -- redirects ------------------------------------------------------------------------------------------


def redirect_to(location: str, status: int = 301) -> Any:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(status=status, headers={"Location": location})

    return handler


@pytest.mark.parametrize(
    ("ca", "verdict"),
    [
        ("alibaba", Verdict.FAIL),
        ("digicert", Verdict.PASS),
        ("letsencrypt", Verdict.PASS),
        (None, Verdict.FAIL),
    ],
)
async def test_http_to_https_per_ca(lab: Lab, ca: str | None, verdict: Verdict) -> None:
    lab.records({"www": {"A": lab.a1}})
    lab.web.route(PATH, redirect_to(lab.url("https", "www.dcvlab.net")), scheme="http")
    lab.web.serve(PATH, TOKEN, scheme="https")
    d = await lab.check("www", ca=ca)
    assert d.verdict is verdict
    http = by(d, lab.a1, "http")
    assert [h["scheme"] for h in http.detail["hops"]] == ["http", "https"]
    assert http.detail["hops"][0]["status"] == 301 and http.detail["hops"][1]["status"] == 200


async def test_two_hops_same_domain_tencent(lab: Lab) -> None:
    lab.records({"www": {"A": lab.a1}, "files": {"A": lab.a2}, "other": {"A": lab.a2}})
    lab.web.route(
        PATH, redirect_to(lab.url("https", "www.dcvlab.net", "/hop")), address=lab.a1, scheme="http"
    )
    lab.web.route("/hop", redirect_to(lab.url("http", "files.dcvlab.net")), address=lab.a1)
    lab.web.serve(PATH, TOKEN, address=lab.a2)
    lab.web.serve(PATH, TOKEN, address=lab.a1, scheme="https")
    d = await lab.check("www", ca="tencent")
    assert d.verdict is Verdict.PASS, d.findings
    assert by(d, lab.a1, "http").detail["hops"][-1]["address"] == lab.a2
    d = await lab.check("www", ca="digicert")
    assert d.verdict is Verdict.FAIL


@pytest.mark.parametrize(
    ("location", "fragment"),
    [
        ("self", "loop"),
        ("chain", "too many redirects"),
        ("http://www.dcvlab.net.well-known/pki-validation/fileauth.txt", "'/' is missing"),
        ("ftp://www.dcvlab.net/file", "only http and https"),
        ("http://www.dcvlab.net:8081/x", "port 8081"),
        ("303", "303"),
        ("http://localhost/x", "invalid host"),
        ("http://nowhere.dcvlab.net/x", "no usable address"),
    ],
)
async def test_refused_redirects(lab: Lab, location: str, fragment: str) -> None:
    lab.records({"www": {"A": lab.a1}})
    if location == "self":
        lab.web.route(PATH, redirect_to(lab.url("http", "www.dcvlab.net")), scheme="http")
    elif location == "chain":

        async def chain(request: web.Request) -> web.StreamResponse:
            n = int(request.query.get("n", "0"))
            return web.Response(status=302, headers={"Location": f"{PATH}?n={n + 1}"})

        lab.web.route(PATH, chain, scheme="http")
    elif location == "303":
        lab.web.route(PATH, redirect_to(lab.url("https", "www.dcvlab.net"), status=303), scheme="http")
    else:
        lab.web.route(PATH, redirect_to(location), scheme="http")
    lab.web.serve(PATH, TOKEN, scheme="https")
    policy = (
        AddressPolicy(allow_private=True) if location != "http://localhost/x" else AddressPolicy.production()
    )
    if location == "http://localhost/x":
        d = await lab.run(
            file_request("www.dcvlab.net", TOKEN, ca="letsencrypt", allow_private=True),
            policy=_Exempt({(lab.a1, lab.web.http_port), (lab.a1, lab.web.https_port)}),
        )
    else:
        d = await lab.check("www", ca="letsencrypt", policy=policy)
    http = by(d, lab.a1, "http")
    assert http.status == "redirect_error", http
    assert fragment in http.error
    assert d.verdict is Verdict.FAIL
    assert any(f.code == "HTTP_REDIRECT" and f.severity is Severity.ERROR for f in d.findings)
    if location == "chain":
        assert len(http.detail["hops"]) == 11


# -- SSRF: production policy, a canary that must never be hit -------------------------------------------


class _Exempt(AddressPolicy):
    """The production policy, except for the exact (address, port) pairs of the test's origin server,
    which stands in for a public web server that tries to bounce the bot inwards."""

    def __init__(self, exempt: set[tuple[str, int]]) -> None:
        super().__init__(allow_private=False)
        self.exempt = exempt

    def check(self, ip: str, port: int | None = None) -> None:
        if (ip, port) in self.exempt:
            return
        super().check(ip, port)

    def reason(self, ip: str) -> str | None:
        if any(ip == e[0] for e in self.exempt):
            return None
        return super().reason(ip)


@pytest_asyncio.fixture
async def canary(lab: Lab) -> AsyncIterator[WebLab]:
    """Servers on 127.0.0.1 and ::1... well, on the lab's third address and ::1, same ports as the lab,
    counting every request; no request may ever reach them."""
    yield lab.web


REFUSALS: dict[str, str] = {}

SSRF_LOCATIONS = [
    "http://{canary}:{port}/",
    "http://[::ffff:{canary}]:{port}/",
    "http://[::1]:{port}/",
    "http://2130706433:{port}/",
    "http://0x7f000001:{port}/",
    "http://017700000001:{port}/",
    "http://127.1:{port}/",
    "http://loopback.dcvlab.net:{port}/",
    "http://private.dcvlab.net:{port}/",
    "http://metadata.dcvlab.net:{port}/",
    "http://mapped.dcvlab.net:{port}/",
    "http://{canary}:22/",
    "https://{canary}:{sport}/",
]


@pytest.mark.parametrize("template", SSRF_LOCATIONS)
async def test_ssrf_redirects_refused(lab: Lab, template: str) -> None:
    origin, canary_ip = lab.a1, lab.a3
    lab.records(
        {
            "www": {"A": origin},
            "loopback": {"A": canary_ip},
            "private": {"A": "10.0.0.1"},
            "metadata": {"A": "169.254.169.254"},
            "mapped": {"AAAA": f"::ffff:{canary_ip}"},
        }
    )
    location = template.format(canary=canary_ip, port=lab.web.http_port, sport=lab.web.https_port)
    lab.web.route(PATH, redirect_to(location), address=origin)
    policy = _Exempt({(origin, lab.web.http_port), (origin, lab.web.https_port)})
    request = file_request("www.dcvlab.net", TOKEN, ca="letsencrypt")
    d = await lab.run(request, policy=policy)
    assert lab.web.count(address=canary_ip) == 0
    assert lab.web.count(address="::1") == 0
    assert lab.web.count(address=origin) == 2  # http and https each hit the origin once
    assert d.verdict is Verdict.FAIL
    for scheme in ("http", "https"):
        o = by(d, origin, scheme)
        assert o.status in {"redirect_error", "blocked"}, (location, o)
        REFUSALS[location.split(":", 1)[1]] = str(o.error)


SSRF_TARGETS = [
    "127.0.0.1",
    "::ffff:127.0.0.1",
    "2130706433",
    "0x7f000001",
    "017700000001",
    "127.1",
    "::1",
    "[::1]",
    "localhost",
    "10.0.0.1",
    "169.254.169.254",
]


@pytest.mark.parametrize("domain", SSRF_TARGETS)
async def test_ssrf_hand_built_requests_refused(lab: Lab, domain: str) -> None:
    """Even a request built without :func:`file_request` (which refuses these) fetches nothing."""
    request = CheckRequest(
        method="file", domain=domain, target=f"http://{domain}{PATH}", expected=TOKEN, path=PATH
    )
    d = await lab.run(request, policy=AddressPolicy.production())
    assert lab.web.count() == 0
    assert d.verdict is Verdict.FAIL
    assert all(o.status == "blocked" for o in d.observations)


@pytest.mark.parametrize("name", ["loopback", "private", "metadata", "mapped"])
async def test_ssrf_names_resolving_inwards(lab: Lab, name: str) -> None:
    lab.records(
        {
            "loopback": {"A": lab.a3},
            "private": {"A": "10.0.0.1"},
            "metadata": {"A": "169.254.169.254"},
            "mapped": {"AAAA": f"::ffff:{lab.a3}"},
        }
    )
    d = await lab.check(name, policy=AddressPolicy.production())
    assert codes(d) == {"HTTP_PRIVATE_ADDRESS"}
    assert lab.web.count() == 0


async def test_socket_guard_backstop(lab: Lab) -> None:
    """The socket factory refuses a connect even when the earlier layers were bypassed."""
    from bot.checks.http import Target, fetch_once

    target = Target("http", lab.a3, lab.web.http_port, PATH, ip_literal=True)
    result = await fetch_once(target, lab.a3, _Guarded(), deadline=time.monotonic() + 2)
    assert result.outcome == "blocked"
    assert lab.web.count() == 0


class _Guarded(AddressPolicy):
    """Lets the pre-check pass once, as a buggy earlier layer would; the socket factory must still refuse."""

    calls = 0

    def check(self, ip: str, port: int | None = None) -> None:
        self.calls += 1
        if self.calls == 1:
            return
        raise BlockedAddress(ip, "is a loopback address (RFC 1122)")
