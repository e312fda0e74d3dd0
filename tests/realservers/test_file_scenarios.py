"""``dcv file`` against real nginx (80 and 443, self-signed certificate), names resolved by the lab's DNS."""

from __future__ import annotations

import json

import pytest

from . import zones
from .lab import DcvResult, Lab
from .test_dns_scenarios import expect
from .web import CONTENT, FILE_PATH, SERVED

pytestmark = pytest.mark.realservers


def http_observations(result: DcvResult, address: str | None = None) -> list[dict]:
    return [o for o in result.observations("http") if address is None or o.get("address") == address]


def test_file_found(lab: Lab) -> None:
    r = lab.dcv("file", "found.example.lab", CONTENT["found"])
    expect(r, "pass", "HTTP_FILE_FOUND")
    seen = http_observations(r, zones.WEB)
    assert seen, r.explain()
    # both schemes were tried on the one address
    assert {o.get("port") for o in seen} >= {80, 443}, r.explain()


def test_file_found_by_url(lab: Lab) -> None:
    r = lab.dcv("file", f"http://found.example.lab{FILE_PATH}", CONTENT["found"])
    expect(r, "pass", "HTTP_FILE_FOUND")


def test_file_not_found(lab: Lab) -> None:
    expect(lab.dcv("file", "missing.example.lab", CONTENT["missing"]), "fail", "HTTP_NOT_FOUND")


def test_file_with_other_content(lab: Lab) -> None:
    r = lab.dcv("file", "wrong.example.lab", CONTENT["wrong"])
    expect(r, "fail", "HTTP_CONTENT_MISMATCH", absent=("HTTP_FILE_FOUND",))
    assert SERVED["wrong"].decode() in json.dumps(r.finding("HTTP_CONTENT_MISMATCH")), r.explain()


@pytest.mark.parametrize("host", ["bom", "crlf", "spaces"])
def test_file_differs_only_in_format(lab: Lab, host: str) -> None:
    r = lab.dcv("file", f"{host}.example.lab", CONTENT[host])
    assert "HTTP_CONTENT_FORMAT" in r.codes, r.explain()
    assert "HTTP_CONTENT_MISMATCH" not in r.codes, r.explain()
    assert r.verdict in ("pass", "fail"), r.explain()


def test_redirect_to_https(lab: Lab) -> None:
    # Let's Encrypt follows up to 10 redirects; DigiCert one; Alibaba none (research/dcv-anchors.md)
    r = lab.dcv("file", "tohttps.example.lab", CONTENT["tohttps"], "--ca", "letsencrypt")
    expect(r, "pass", "HTTP_REDIRECT")
    hops = json.dumps(r.finding("HTTP_REDIRECT"))
    assert "https://tohttps.example.lab" in hops, r.explain()
    r = lab.dcv("file", "tohttps.example.lab", CONTENT["tohttps"], "--ca", "alibaba")
    expect(r, "fail", "HTTP_REDIRECT")
    assert r.finding("HTTP_REDIRECT")["severity"] == "error", r.explain()


def test_redirect_to_another_host(lab: Lab) -> None:
    r = lab.dcv("file", "moved.example.lab", CONTENT["moved"], "--ca", "letsencrypt")
    expect(r, "pass", "HTTP_REDIRECT")
    assert "found.example.lab" in json.dumps(r.finding("HTTP_REDIRECT")), r.explain()
    r = lab.dcv("file", "moved.example.lab", CONTENT["moved"], "--ca", "alibaba")
    expect(r, "fail", "HTTP_REDIRECT")


def test_redirect_loop(lab: Lab) -> None:
    r = lab.dcv("file", "loop.example.lab", CONTENT["loop"], "--ca", "letsencrypt")
    expect(r, "fail", "HTTP_REDIRECT")


def test_html_catch_all(lab: Lab) -> None:
    expect(lab.dcv("file", "spa.example.lab", CONTENT["spa"]), "fail", "HTTP_SOFT_404")


def test_forbidden(lab: Lab) -> None:
    expect(lab.dcv("file", "forbidden.example.lab", CONTENT["forbidden"]), "fail", "HTTP_BAD_STATUS")


def test_load_balancer_member_without_the_file(lab: Lab) -> None:
    r = lab.dcv("file", "lb.example.lab", CONTENT["lb"])
    expect(r, "fail", "HTTP_INCONSISTENT")
    assert {o.get("address") for o in http_observations(r)} == {zones.WEB, zones.WEB2}, r.explain()


def test_body_too_large(lab: Lab) -> None:
    r = lab.dcv("file", "huge.example.lab", CONTENT["huge"])
    expect(r, "fail", "HTTP_TOO_LARGE")
    assert r.elapsed < 8, r.explain()


def test_closed_port(lab: Lab) -> None:
    r = lab.dcv("file", "closed.example.lab", CONTENT["closed"])
    expect(r, "fail", "HTTP_REFUSED")


def test_filtered_port(lab: Lab) -> None:
    r = lab.dcv("file", "filtered.example.lab", CONTENT["filtered"], env=lab.env(DCV_TIMEOUT="5"))
    expect(r, "fail", "HTTP_TIMEOUT")
    assert r.elapsed < 5 + 4, r.explain()


def test_ipv6_address_broken(lab: Lab) -> None:
    """v6broken has A 127.53.80.1 (nginx serves the file) and AAAA ::1, where nothing listens."""
    r = lab.dcv("file", "v6broken.example.lab", CONTENT["v6broken"])
    expect(r, "fail", "HTTP_IPV6_BROKEN")


def test_no_address(lab: Lab) -> None:
    expect(lab.dcv("file", "noaddr.example.lab", "CONTENT-X"), "fail", "HTTP_NO_ADDRESS")


def test_private_address_is_never_contacted(lab: Lab) -> None:
    """Without DCV_ALLOW_PRIVATE the lab's 127.53.80.1 is off limits: nginx must not see a request."""
    log = lab.web.daemon.workdir / "access.log"
    lines_before = log.read_bytes().count(b"\n") if log.exists() else 0
    env = lab.env()
    env.pop("DCV_ALLOW_PRIVATE")
    r = lab.dcv("file", zones.PRIVATE_WEB_NAME, CONTENT["found"], env=env)
    expect(r, "fail", "HTTP_PRIVATE_ADDRESS", absent=("HTTP_FILE_FOUND",))
    lines_after = log.read_bytes().count(b"\n") if log.exists() else 0
    assert lines_after == lines_before, "the checker connected to a private address"


def test_names_that_cannot_exist_publicly_are_refused_without_the_lab_switch(lab: Lab) -> None:
    env = lab.env()
    env.pop("DCV_ALLOW_PRIVATE")
    with pytest.raises(AssertionError, match=r"(?s)exit 2.*not end in a top-level domain"):
        lab.dcv("file", "found.example.lab", CONTENT["found"], env=env)  # exit 2, no JSON


def test_tls_handshake_fails(lab: Lab) -> None:
    """Port 443 answers in plain HTTP; port 80 serves the file."""
    r = lab.dcv("file", "tlsbroken.example.lab", CONTENT["tlsbroken"])
    assert "HTTP_TLS_ERROR" in r.codes, r.explain()
    assert "HTTP_CONTENT_MISMATCH" not in r.codes, r.explain()


def test_gzip_capable_server(lab: Lab) -> None:
    """nginx compresses text/plain for a client that asks; the checker must compare the real content."""
    r = lab.dcv("file", "gzip.example.lab", CONTENT["gzip"])
    expect(r, "pass", "HTTP_FILE_FOUND", absent=("HTTP_CONTENT_MISMATCH", "HTTP_CONTENT_FORMAT"))


def test_redirect_missing_slash(lab: Lab) -> None:
    r = lab.dcv("file", "noslash.example.lab", CONTENT["noslash"], "--ca", "letsencrypt")
    expect(r, "fail", "HTTP_REDIRECT")
    assert "well-known" in json.dumps(r.finding("HTTP_REDIRECT")), r.explain()


def test_redirect_to_another_port(lab: Lab) -> None:
    r = lab.dcv("file", "oddport.example.lab", CONTENT["oddport"], "--ca", "letsencrypt")
    expect(r, "fail", "HTTP_REDIRECT")
    assert "8080" in json.dumps(r.finding("HTTP_REDIRECT")), r.explain()
