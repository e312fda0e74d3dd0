"""The real ``dcv`` command (``python -m bot``) in a subprocess, against loopback DNS servers."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

import pytest

from tests.conftest import DnsWorld, WorldFactory

TOKEN = "cli-token-0123456789"


def env_for(world: DnsWorld, **extra: str) -> dict[str, str]:
    settings = world.settings
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DCV_", "SLACK_"))}
    env.update(
        DCV_RESOLVERS=",".join(f"{r.address}:{r.port}" for r in settings.resolvers),
        DCV_PUBLIC_RESOLVERS=",".join(f"{r.label}={r.address}:{r.port}" for r in settings.public_resolvers),
        DCV_DNS_PORT=str(settings.dns_port),
        DCV_ALLOW_PRIVATE="1",
        DCV_TIMEOUT="5",
    )
    env.update(extra)
    return env


async def dcv(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd="/",  # no .env file from the checkout
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_pass_prints_the_contract_json_and_exits_0(dns_world: WorldFactory) -> None:
    world = await dns_world({"_dnsauth": {"TXT": TOKEN}})
    code, out, err = await dcv("dns", "Example.COM.", TOKEN, "--json", env=env_for(world))
    assert code == 0, err
    data: dict[str, Any] = json.loads(out)
    assert data["schema"] == "dcv.diagnosis/1"
    assert (data["method"], data["domain"], data["target"]) == ("dns", "example.com", "_dnsauth.example.com")
    assert data["verdict"] == "pass" and data["retry_after"] is None
    assert [f["code"] for f in data["findings"]] == ["DNS_RECORD_FOUND"]
    contract_fields = {"kind", "server", "address", "port", "status", "values", "ttl", "serial", "rtt_ms"}
    assert contract_fields | {"error"} <= set(data["observations"][0])
    assert data["checked_at"].endswith("Z") and data["duration_ms"] > 0


async def test_fail_exits_1_with_a_readable_report(dns_world: WorldFactory) -> None:
    world = await dns_world({"_dnsauth": {"TXT": "something-else"}})
    code, out, _ = await dcv("dns", "example.com", TOKEN, env=env_for(world))
    assert code == 1
    assert out.startswith("FAIL")
    assert "ns1.example.com" in out and "serial" in out and "DNS_VALUE_MISMATCH" in out and "fix:" in out


async def test_pending_exits_3(dns_world: WorldFactory) -> None:
    world = await dns_world({"www": {"A": "192.0.2.1"}})
    world.set_records({"www": {"A": "192.0.2.1"}, "_dnsauth": {"TXT": TOKEN}}, serial=2, only=[0])
    world.flush()
    code, out, _ = await dcv("dns", "example.com", TOKEN, "--json", env=env_for(world))
    assert code == 3
    assert json.loads(out)["verdict"] == "pending"


async def test_name_and_type_options(dns_world: WorldFactory) -> None:
    world = await dns_world({"_acme-challenge": {"CNAME": "abc.dcv.digicert.com."}})
    args = ["dns", "example.com", "abc.dcv.digicert.com", "--name", "_acme-challenge", "--type", "cname"]
    code, out, err = await dcv(*args, "--json", env=env_for(world))
    assert code == 0, err
    assert json.loads(out)["target"] == "_acme-challenge.example.com"


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["dns", "exa mple.com", "v"], "not a domain"),
        (["dns", "example.com", ""], "empty"),
        (["dns", "192.0.2.1", "v"], "IP address"),
        (["dns", "example.com", "v", "--type", "MX"], "not supported"),
        (["dns", "example.com", "v", "--ca", "nobody"], "unknown CA"),
        (["dns", "example.com"], "required"),
        (["dns", "printer.local", "v"], "special-use"),
        (["nonsense"], "invalid choice"),
    ],
)
async def test_input_errors_exit_2_with_one_line(args: list[str], reason: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DCV_", "SLACK_"))}
    env["DCV_RESOLVERS"] = "127.0.0.1"
    code, out, err = await dcv(*args, env=env)
    assert code == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1 and reason in err
    assert "Traceback" not in err


async def test_bad_configuration_is_an_input_error() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DCV_", "SLACK_"))}
    env["DCV_TIMEOUT"] = "soon"
    code, _, err = await dcv("dns", "example.com", "v", env=env)
    assert code == 2 and "DCV_TIMEOUT" in err


async def test_faq_prints_the_entries() -> None:
    code, out, _ = await dcv("faq", "propagation")
    assert code == 0 and "When DNS changes take effect" in out and "negative TTL" in out
    code, out, _ = await dcv("faq")
    assert code == 0 and all(key in out for key in ("no-record-value", "file-content-invalid"))
    code, out, err = await dcv("faq", "nonsense")
    assert code == 2 and out == "" and "propagation" in err
