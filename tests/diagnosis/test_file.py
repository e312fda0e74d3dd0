"""File-method rules on recorded evidence: no network."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bot.checks.http import FileEvidence, ResolvedAddress, classify_content, sanitize_excerpt
from bot.diagnosis.file import RULES, diagnose_file
from bot.model import Observation, Severity, Verdict
from bot.names import file_request, registered_domain

DOMAIN = "shop.example.com"
URL = f"http://{DOMAIN}/.well-known/pki-validation/fileauth.txt"
TOKEN = "2f7a9c1e0b3d4a5f"


def obs(
    address: str,
    scheme: str,
    status: str = "ok",
    *,
    verdict: str | None = "exact",
    http_status: int | None = 200,
    body: str = TOKEN,
    hops: list[dict[str, Any]] | None = None,
    error: str | None = None,
    **detail: Any,
) -> Observation:
    port = 80 if scheme == "http" else 443
    if hops is None:
        hops = [
            {
                "url": f"{scheme}://{DOMAIN}/.well-known/pki-validation/fileauth.txt",
                "scheme": scheme,
                "host": DOMAIN,
                "port": port,
                "address": address,
                "status": http_status,
            }
        ]
    return Observation(
        kind="http",
        server=DOMAIN,
        address=address,
        port=port,
        status=status,
        values=[body] if body else [],
        rtt_ms=12.0,
        error=error,
        detail={
            "scheme": scheme,
            "family": 6 if ":" in address else 4,
            "hops": hops,
            "redirects": len(hops) - 1,
            "http_status": http_status if status in {"ok", "status", "too_large", "read_timeout"} else None,
            "bytes": len(body),
            "content_verdict": verdict if status == "ok" else None,
            **detail,
        },
    )


def fail(address: str, scheme: str, status: str, error: str) -> Observation:
    return obs(address, scheme, status, verdict=None, http_status=None, body="", error=error)


def evidence(*observations: Observation, addresses: list[ResolvedAddress] | None = None) -> FileEvidence:
    if addresses is None:
        seen = dict.fromkeys(o.address for o in observations if o.address)
        addresses = [ResolvedAddress(a, "AAAA" if ":" in a else "A") for a in seen]
    return FileEvidence(
        domain=DOMAIN,
        path="/.well-known/pki-validation/fileauth.txt",
        addresses=addresses,
        lookup={"A": "answer", "AAAA": "nodata"},
        observations=list(observations),
    )


def both(address: str, **kw: Any) -> list[Observation]:
    return [obs(address, "http", **kw), obs(address, "https", **kw)]


def request(ca: str | None = None, target: str = DOMAIN) -> Any:
    return file_request(target, TOKEN, ca=ca)


def codes(diagnosis: Any, severity: Severity | None = None) -> list[str]:
    return [f.code for f in diagnosis.findings if severity is None or f.severity is severity]


def redirect_hops(*urls: str, final_status: int = 200) -> list[dict[str, Any]]:
    hops = []
    for i, url in enumerate(urls):
        scheme, rest = url.split("://", 1)
        host = rest.split("/", 1)[0]
        hops.append(
            {
                "url": url,
                "scheme": scheme,
                "host": host,
                "port": 80 if scheme == "http" else 443,
                "address": "203.0.113.10",
                "status": final_status if i == len(urls) - 1 else 301,
            }
        )
    return hops


A1, A2, V6 = "198.51.100.7", "198.51.100.8", "2001:4860::7"


# -- pass -----------------------------------------------------------------------------------------------


def test_pass_everywhere() -> None:
    d = diagnose_file(request(), evidence(*both(A1), *both(A2)))
    assert d.verdict is Verdict.PASS
    assert codes(d) == ["HTTP_FILE_FOUND"]
    assert "every address" in d.summary
    assert d.retry_after is None


def test_https_closed_is_a_warning_when_http_serves() -> None:
    d = diagnose_file(
        request(), evidence(obs(A1, "http"), fail(A1, "https", "refused", "connection refused"))
    )
    assert d.verdict is Verdict.PASS
    assert codes(d, Severity.WARNING) == ["HTTP_REFUSED"]


def test_trailing_space_is_a_warning() -> None:
    d = diagnose_file(
        request(), evidence(*both(A1, verdict="trailing_space", differences=["ends with extra white space"]))
    )
    assert d.verdict is Verdict.PASS
    assert codes(d, Severity.WARNING) == ["HTTP_CONTENT_FORMAT"]


# -- one rule per code ----------------------------------------------------------------------------------


def test_wildcard() -> None:
    d = diagnose_file(
        request(target="*.example.com"), FileEvidence(domain="example.com", path="/x", skipped="wildcard")
    )
    assert d.verdict is Verdict.FAIL
    assert codes(d) == ["FILE_WILDCARD"]
    assert "dcv dns example.com" in (d.findings[0].remedy or "")


@pytest.mark.parametrize(
    ("lookup", "fragment"),
    [
        ({"A": "nxdomain", "AAAA": "nxdomain"}, "does not exist"),
        ({"A": "nodata", "AAAA": "nodata"}, "no A or AAAA"),
        ({"A": "timeout", "AAAA": "timeout"}, "could not be looked up"),
    ],
)
def test_no_address(lookup: dict[str, str], fragment: str) -> None:
    ev = FileEvidence(domain=DOMAIN, path="/p", lookup=lookup)
    d = diagnose_file(request(), ev)
    assert d.verdict is Verdict.FAIL
    assert codes(d) == ["HTTP_NO_ADDRESS"]
    assert fragment in d.findings[0].message


def test_private_address_only() -> None:
    ev = evidence(addresses=[ResolvedAddress("10.0.0.5", "A", "is a private address (RFC 1918)")])
    ev.observations = [
        Observation(
            kind="http",
            server=DOMAIN,
            address="10.0.0.5",
            port=None,
            status="blocked",
            error="not fetched",
            detail={"blocked": "is a private address (RFC 1918)", "family": 4},
        )
    ]
    d = diagnose_file(request(), ev)
    assert d.verdict is Verdict.FAIL
    assert codes(d) == ["HTTP_PRIVATE_ADDRESS"]
    assert "10.0.0.5 is a private address" in d.findings[0].message
    assert "10.0.0.5" in (d.findings[0].remedy or "")


def test_private_beside_public_still_fails() -> None:
    ev = evidence(*both(A1))
    ev.addresses.append(ResolvedAddress("192.168.1.2", "A", "is a private address (RFC 1918)"))
    d = diagnose_file(request(), ev)
    assert d.verdict is Verdict.FAIL
    assert "HTTP_PRIVATE_ADDRESS" in codes(d, Severity.ERROR)


def test_timeout_and_refused_are_told_apart() -> None:
    d = diagnose_file(
        request(),
        evidence(
            fail(A1, "http", "timeout", "timeout during connect (likely firewall problem)"),
            fail(A1, "https", "refused", "connection refused (nothing listens on the port)"),
        ),
    )
    assert d.verdict is Verdict.FAIL
    assert set(codes(d, Severity.ERROR)) == {"HTTP_TIMEOUT", "HTTP_REFUSED"}
    timeout = next(f for f in d.findings if f.code == "HTTP_TIMEOUT")
    assert A1 in timeout.message and "firewall" in timeout.message and "port 80" in timeout.message
    assert timeout.faq == "file-timeout"


def test_tls_error() -> None:
    d = diagnose_file(
        request(),
        evidence(
            fail(A1, "http", "refused", "refused"), fail(A1, "https", "tls_error", "TLS handshake failed")
        ),
    )
    assert "HTTP_TLS_ERROR" in codes(d, Severity.ERROR)


def test_ipv6_broken() -> None:
    ev = evidence(
        *both(A1), fail(V6, "http", "timeout", "timeout during connect"), fail(V6, "https", "timeout", "t")
    )
    d = diagnose_file(request(), ev)
    assert d.verdict is Verdict.FAIL
    assert codes(d, Severity.ERROR) == ["HTTP_IPV6_BROKEN"]
    assert "HTTP_TIMEOUT" not in codes(d)
    assert "HTTP_INCONSISTENT" not in codes(d)


def test_not_found_and_bad_status() -> None:
    d = diagnose_file(
        request(),
        evidence(
            obs(A1, "http", "status", http_status=404, verdict=None, body="nope"),
            obs(A1, "https", "status", http_status=403, verdict=None, body="denied"),
        ),
    )
    assert set(codes(d, Severity.ERROR)) == {"HTTP_NOT_FOUND", "HTTP_BAD_STATUS"}
    nf = next(f for f in d.findings if f.code == "HTTP_NOT_FOUND")
    assert nf.faq == "no-file" and "404" in nf.message


def test_gone_is_not_found() -> None:
    d = diagnose_file(request(), evidence(*both(A1, status="status", http_status=410, verdict=None)))
    assert codes(d) == ["HTTP_NOT_FOUND"]


def test_soft_404_html() -> None:
    page = "<!doctype html><html><body>Welcome</body></html>"
    d = diagnose_file(request(), evidence(*both(A1, verdict="html", body=page, content_type="text/html")))
    assert codes(d) == ["HTTP_SOFT_404"]
    assert "HTML" in d.findings[0].message


def test_soft_404_catch_all_text() -> None:
    d = diagnose_file(
        request(),
        evidence(*both(A1, verdict="mismatch", body="app", catch_all=True, control={"same_body": True})),
    )
    assert codes(d) == ["HTTP_SOFT_404"]
    assert "catch-all" in d.findings[0].message


def test_content_mismatch_shows_what_was_served() -> None:
    d = diagnose_file(request(), evidence(*both(A1, verdict="mismatch", body="old-token-123")))
    assert codes(d) == ["HTTP_CONTENT_MISMATCH"]
    f = d.findings[0]
    assert "old-token-123" in f.message and "old-token-123" in (f.remedy or "")
    assert f.faq == "file-content-invalid"


def test_content_format_is_an_error_for_a_bom() -> None:
    d = diagnose_file(
        request(),
        evidence(
            *both(
                A1,
                verdict="format",
                body="\\ufeff" + TOKEN,
                differences=["starts with a UTF-8 byte order mark (EF BB BF)"],
            )
        ),
    )
    assert d.verdict is Verdict.FAIL
    assert codes(d, Severity.ERROR) == ["HTTP_CONTENT_FORMAT"]
    assert "byte order mark" in d.findings[0].message
    assert "HTTP_CONTENT_MISMATCH" not in codes(d)


def test_too_large() -> None:
    d = diagnose_file(request(), evidence(*both(A1, status="too_large", verdict=None, body="AAAA")))
    assert codes(d) == ["HTTP_TOO_LARGE"]
    assert "4096" in d.findings[0].message


def test_inconsistent_load_balancer() -> None:
    d = diagnose_file(
        request(), evidence(*both(A1), *both(A2, status="status", http_status=404, verdict=None))
    )
    assert d.verdict is Verdict.FAIL
    assert {"HTTP_INCONSISTENT", "HTTP_NOT_FOUND", "HTTP_FILE_FOUND"} <= set(codes(d))
    inc = next(f for f in d.findings if f.code == "HTTP_INCONSISTENT")
    assert A2 in inc.message and A1 in inc.message


def test_scheme_answering_404_fails_even_if_other_scheme_serves() -> None:
    d = diagnose_file(
        request(), evidence(obs(A1, "http", "status", http_status=404, verdict=None), obs(A1, "https"))
    )
    assert d.verdict is Verdict.FAIL
    assert {"HTTP_NOT_FOUND", "HTTP_INCONSISTENT"} <= set(codes(d, Severity.ERROR))


# -- redirects, per CA ----------------------------------------------------------------------------------

TO_HTTPS = redirect_hops(URL, URL.replace("http://", "https://"))
TWO_SAME = redirect_hops(
    URL, f"https://{DOMAIN}/x", "https://www.example.com/.well-known/pki-validation/fileauth.txt"
)
TWO_OTHER = redirect_hops(
    URL, f"https://{DOMAIN}/x", "https://cdn.other.net/.well-known/pki-validation/fileauth.txt"
)
ELEVEN = redirect_hops(*[f"http://{DOMAIN}/{i}" for i in range(12)])  # 11 redirects
THREE = redirect_hops(*[f"http://{DOMAIN}/{i}" for i in range(4)])


@pytest.mark.parametrize(
    ("ca", "hops", "allowed"),
    [
        (None, TO_HTTPS, False),
        ("alibaba", TO_HTTPS, False),
        ("sectigo", TO_HTTPS, False),
        ("digicert", TO_HTTPS, True),
        ("digicert", TWO_SAME, False),
        ("tencent", TWO_SAME, True),
        ("trustasia", TWO_SAME, True),
        ("tencent", TWO_OTHER, False),
        ("tencent", THREE, False),
        ("letsencrypt", THREE, True),
        ("letsencrypt", TWO_OTHER, True),
        ("globalsign", TO_HTTPS, False),
        ("digicert.com", TO_HTTPS, False),
    ],
)
def test_redirect_policy(ca: str | None, hops: list[dict[str, Any]], allowed: bool) -> None:
    d = diagnose_file(request(ca=ca), evidence(obs(A1, "http", hops=hops), obs(A1, "https")))
    redirect = [f for f in d.findings if f.code == "HTTP_REDIRECT"]
    assert len(redirect) == 1
    assert redirect[0].severity is (Severity.INFO if allowed else Severity.ERROR)
    assert d.verdict is (Verdict.PASS if allowed else Verdict.FAIL)
    assert redirect[0].evidence["hops"].count("->") == len(hops) - 1


def test_redirect_without_ca_names_who_accepts() -> None:
    d = diagnose_file(request(), evidence(obs(A1, "http", hops=TO_HTTPS), obs(A1, "https")))
    f = next(f for f in d.findings if f.code == "HTTP_REDIRECT")
    assert "strictest" in f.message
    assert "DigiCert" in f.evidence["accepted_by"] and "Let's Encrypt" in f.evidence["accepted_by"]
    assert "Alibaba Cloud" in f.evidence["refused_by"]


def test_refused_redirect_is_an_error_whatever_the_ca() -> None:
    loop = obs(
        A1,
        "http",
        "redirect_error",
        verdict=None,
        http_status=301,
        body="",
        error="redirect loop: http://x was already visited",
        hops=redirect_hops(URL, URL, final_status=301),
    )
    d = diagnose_file(request(ca="letsencrypt"), evidence(loop, obs(A1, "https")))
    assert d.verdict is Verdict.FAIL
    f = next(f for f in d.findings if f.code == "HTTP_REDIRECT")
    assert f.severity is Severity.ERROR and "loop" in f.message


def test_eleven_hops_refused_for_letsencrypt() -> None:
    d = diagnose_file(request(ca="letsencrypt"), evidence(obs(A1, "http", hops=ELEVEN), obs(A1, "https")))
    assert next(f for f in d.findings if f.code == "HTTP_REDIRECT").severity is Severity.ERROR


# -- plumbing -------------------------------------------------------------------------------------------


def test_every_file_code_has_a_rule_and_a_remedy() -> None:
    from bot.remedies import remedies

    file_codes = [c for c in remedies() if c.startswith("HTTP_") or c == "FILE_WILDCARD"]
    assert len(file_codes) == 17
    assert len(RULES) == 17


def test_evidence_round_trips_through_json() -> None:
    ev = evidence(*both(A1), fail(V6, "http", "timeout", "t"))
    again = FileEvidence.from_dict(json.loads(json.dumps(ev.to_dict())))
    assert (
        diagnose_file(request(), again).to_dict()["findings"]
        == diagnose_file(request(), ev).to_dict()["findings"]
    )


def test_findings_sorted_and_remedied() -> None:
    d = diagnose_file(request(), evidence(*both(A1), *both(A2, verdict="mismatch", body="zzz")))
    severities = [f.severity for f in d.findings]
    assert severities == sorted(severities, key=[Severity.ERROR, Severity.WARNING, Severity.INFO].index)
    assert all(f.remedy for f in d.findings if f.severity is not Severity.INFO)


def test_registered_domain() -> None:
    assert registered_domain("a.b.example.com") == "example.com"
    assert registered_domain("www.example.com.cn") == "example.com.cn"
    assert registered_domain("example.co.uk") == "example.co.uk"


@pytest.mark.parametrize(
    ("body", "expected", "verdict"),
    [
        (b"TOKEN", "TOKEN", "exact"),
        (b"TOKEN\n", "TOKEN", "exact"),
        (b"TOKEN", "TOKEN\n", "exact"),
        (b"\xef\xbb\xbfTOKEN", "TOKEN", "format"),
        (b"  TOKEN", "TOKEN", "format"),
        (b"a\r\nb\r\n", "a\nb", "format"),
        (b"TOKEN \n\n", "TOKEN", "trailing_space"),
        (b"TOKEN\r\n", "TOKEN", "trailing_space"),
        (b"<html><body>hi</body></html>", "TOKEN", "html"),
        (b"", "TOKEN", "empty"),
        (b"prefix TOKEN suffix", "TOKEN", "contains"),
        (b"token", "TOKEN", "mismatch"),
        (b"OTHER", "TOKEN", "mismatch"),
    ],
)
def test_classify_content(body: bytes, expected: str, verdict: str) -> None:
    assert classify_content(body, expected)[0] == verdict


def test_sanitize_excerpt() -> None:
    assert sanitize_excerpt(b"\xef\xbb\xbfA\r\n\x00\xff") == "\\ufeffA\\r\\n\\x00\ufffd"
    assert len(sanitize_excerpt(b"x" * 1000)) == 200
