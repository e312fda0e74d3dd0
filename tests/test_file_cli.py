"""``python -m bot file ...`` end to end: real servers, real DNS, the contract's JSON and exit codes."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from tests.checks.weblab import WebLab
from tests.servers.dnsserver import AuthServer
from tests.servers.fixtures import allocate_loopback
from tests.servers.zones import zone_text

PATH = "/.well-known/pki-validation/fileauth.txt"
TOKEN = "cli-token-5a4b3c"


async def dcv(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": os.getcwd(), **(env or {})},
    )
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@pytest_asyncio.fixture
async def world() -> AsyncIterator[tuple[WebLab, dict[str, str]]]:
    a1, a2, dns_addr = allocate_loopback(3)
    web = await WebLab([a1, a2]).start()
    dns = AuthServer(
        dns_addr,
        0,
        {
            "dcvlab.net.": zone_text(
                "dcvlab.net.",
                {
                    "www": {"A": [a1, a2]},
                    "half": {"A": [a1, a2]},
                    "gone": {"A": a1},
                },
            )
        },
    )
    await dns.start()
    web.serve(PATH, TOKEN, address=a1)
    web.serve(PATH, TOKEN, address=a2)
    env = {
        "DCV_RESOLVERS": f"{dns.address}:{dns.port}",
        "DCV_HTTP_PORT": str(web.http_port),
        "DCV_HTTPS_PORT": str(web.https_port),
        "DCV_ALLOW_PRIVATE": "1",
        "DCV_TIMEOUT": "4",
    }
    yield web, env
    await web.stop()
    await dns.stop()


def parse(out: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(out)
    assert data["schema"] == "dcv.diagnosis/1"
    assert data["method"] == "file"
    return data


async def test_pass_json(world: tuple[WebLab, dict[str, str]]) -> None:
    _, env = world
    code, out, err = await dcv("file", "WWW.dcvlab.net.", TOKEN, "--json", env=env)
    assert code == 0, err
    data = parse(out)
    assert data["verdict"] == "pass"
    assert data["domain"] == "www.dcvlab.net"
    assert data["target"] == f"http://www.dcvlab.net{PATH}"
    # The lab's certificate comes from a private CA: noted for browsers, not fatal for the CA.
    assert [f["code"] for f in data["findings"]] == ["HTTP_CERT_INVALID", "HTTP_FILE_FOUND"]
    assert len(data["observations"]) == 4
    assert all(o["kind"] == "http" for o in data["observations"])


async def test_url_target_and_not_found(world: tuple[WebLab, dict[str, str]]) -> None:
    _, env = world
    code, out, _ = await dcv(
        "file", "http://www.dcvlab.net/.well-known/pki-validation/other.txt", TOKEN, "--json", env=env
    )
    assert code == 1
    data = parse(out)
    assert data["verdict"] == "fail"
    assert "HTTP_NOT_FOUND" in [f["code"] for f in data["findings"]]
    assert all(f["remedy"] for f in data["findings"] if f["severity"] != "info")


async def test_alibaba_rejects_redirect(world: tuple[WebLab, dict[str, str]]) -> None:
    web, env = world
    from aiohttp import web as aioweb

    async def to_https(request: aioweb.Request) -> aioweb.StreamResponse:
        raise aioweb.HTTPMovedPermanently(f"https://www.dcvlab.net:{web.https_port}{PATH}")

    for address in web.addresses:
        web.route(PATH, to_https, address=address, scheme="http")
    code, out, _ = await dcv("file", "www.dcvlab.net", TOKEN, "--ca", "alibaba", "--json", env=env)
    assert code == 1
    redirect = next(f for f in parse(out)["findings"] if f["code"] == "HTTP_REDIRECT")
    assert redirect["severity"] == "error" and "Alibaba Cloud follows no redirects" in redirect["message"]
    code, out, _ = await dcv("file", "www.dcvlab.net", TOKEN, "--ca", "digicert", "--json", env=env)
    assert code == 0


async def test_text_report_has_the_table(world: tuple[WebLab, dict[str, str]]) -> None:
    _, env = world
    code, out, _ = await dcv("file", "www.dcvlab.net", TOKEN, env=env)
    assert code == 0
    header = next(line for line in out.splitlines() if line.startswith("address"))
    for column in ("scheme", "status", "hops", "bytes", "content", "time"):
        assert column in header
    assert "HTTP_FILE_FOUND" in out


async def test_wildcard(world: tuple[WebLab, dict[str, str]]) -> None:
    web, env = world
    code, out, _ = await dcv("file", "*.dcvlab.net", TOKEN, "--json", env=env)
    assert code == 1
    data = parse(out)
    assert [f["code"] for f in data["findings"]] == ["FILE_WILDCARD"]
    assert web.count() == 0


@pytest.mark.parametrize(
    "target",
    [
        "http://www.example.com/index.html",
        "http://user@www.example.com/.well-known/pki-validation/fileauth.txt",
        "http://www.example.com:8080/.well-known/pki-validation/fileauth.txt",
        "http://www.example.com/.well-known/pki-validation/fileauth.txt?x=1",
        "http://www.example.com/.well-known/pki-validation/fileauth.txt#frag",
        "http://www.example.com/.well-known/pki-validation/../secret",
        "http://www.example.com/.well-known/pki-validation%2Ffileauth.txt",
        "http://www.example.com\\.well-known\\pki-validation\\fileauth.txt",
        "gopher://www.example.com/",
        "http://127.0.0.1/.well-known/pki-validation/fileauth.txt",
        "http://2130706433/",
        "http://[::1]/",
        "localhost",
        "",
    ],
)
async def test_input_errors_exit_2(target: str) -> None:
    code, out, err = await dcv("file", target, TOKEN)
    assert code == 2, (out, err)
    assert out == ""
    assert err.startswith("dcv: ") and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["www.example.com", TOKEN, "--path", "/etc/passwd"], "not under"),
        (["www.example.com", TOKEN, "--path", "/.well-known/pki-validation/a/b.txt"], "file name"),
        (["www.example.com", "bad\x07content"], "control character"),
        (["www.example.com", "x" * 5000], "longer than"),
        (["www.example.com", "   "], "empty"),
    ],
)
async def test_path_and_content_errors(args: list[str], fragment: str) -> None:
    code, _, err = await dcv("file", *args)
    assert code == 2
    assert fragment in err
