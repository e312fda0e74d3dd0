"""Settings from the environment and ``.env``: the contract's variables, defaults and bad values."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import ServerAddress, load_settings, parse_public_resolvers, parse_resolvers, system_resolvers
from bot.model import InputError


def test_defaults_follow_the_contract(tmp_path: Path) -> None:
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("# comment\nnameserver 192.0.2.53\nnameserver fe80::1%eth0\nsearch example.com\n")
    settings = load_settings({}, dotenv=False)
    assert settings.dns_port == 53 and (settings.http_port, settings.https_port) == (80, 443)
    assert settings.timeout == 10.0 and not settings.allow_private
    assert settings.database_url == "sqlite:///dcv-bot.sqlite3" and settings.port == 3000
    assert (settings.watch_min_interval, settings.watch_ttl) == (60.0, 259200.0)
    labels = [r.label for r in settings.public_resolvers]
    assert "Google" in labels and any("China" in label for label in labels)
    assert system_resolvers(str(resolv)) == (ServerAddress("192.0.2.53", 53), ServerAddress("fe80::1", 53))
    assert system_resolvers(str(tmp_path / "missing")) == ()


def test_every_variable_is_read() -> None:
    settings = load_settings(
        {
            "DCV_RESOLVERS": "127.0.0.53:5353, [::1]:5300",
            "DCV_PUBLIC_RESOLVERS": "Lab=127.0.0.54:5354,127.0.0.55",
            "DCV_DNS_PORT": "5399",
            "DCV_HTTP_PORT": "8080",
            "DCV_HTTPS_PORT": "8443",
            "DCV_ALLOW_PRIVATE": "1",
            "DCV_TIMEOUT": "2.5",
            "DCV_DATABASE_URL": "postgresql://u@127.0.0.1/dcv",
            "SLACK_BOT_TOKEN": "xoxb-1",
            "SLACK_APP_TOKEN": "xapp-1",
            "SLACK_SIGNING_SECRET": "s",
            "SLACK_API_URL": "http://127.0.0.1:9/api/",
            "PORT": "3999",
            "DCV_WATCH_MIN_INTERVAL": "5",
            "DCV_WATCH_TTL": "600",
        },
        dotenv=False,
    )
    assert settings.resolvers == (ServerAddress("127.0.0.53", 5353), ServerAddress("::1", 5300))
    assert settings.public_resolvers == (
        ServerAddress("127.0.0.54", 5354, "Lab"),
        ServerAddress("127.0.0.55", 53, ""),
    )
    assert (settings.dns_port, settings.http_port, settings.https_port, settings.port) == (
        5399,
        8080,
        8443,
        3999,
    )
    assert settings.allow_private and settings.timeout == 2.5
    assert settings.database_url.startswith("postgresql://")
    assert (settings.slack_bot_token, settings.slack_app_token, settings.slack_signing_secret) == (
        "xoxb-1",
        "xapp-1",
        "s",
    )
    assert settings.slack_api_url == "http://127.0.0.1:9/api/"
    assert (settings.watch_min_interval, settings.watch_ttl) == (5.0, 600.0)
    assert "xoxb-1" not in repr(settings)  # tokens never reach logs through a repr


def test_empty_public_resolvers_disables_them() -> None:
    assert load_settings({"DCV_PUBLIC_RESOLVERS": ""}, dotenv=False).public_resolvers == ()


@pytest.mark.parametrize(
    ("env", "reason"),
    [
        ({"DCV_RESOLVERS": "dns.google"}, "not an IP address"),
        ({"DCV_RESOLVERS": "127.0.0.1:99999"}, "invalid port"),
        ({"DCV_PUBLIC_RESOLVERS": "x=not-an-ip"}, "not an IP address"),
        ({"DCV_DNS_PORT": "fifty-three"}, "invalid port"),
        ({"DCV_TIMEOUT": "soon"}, "not a number"),
        ({"DCV_TIMEOUT": "0"}, "greater than 0"),
        ({"PORT": "0"}, "invalid port"),
    ],
)
def test_bad_values_are_one_line_input_errors(env: dict[str, str], reason: str) -> None:
    with pytest.raises(InputError, match=reason):
        load_settings(env, dotenv=False)


def test_dotenv_file_is_read_and_the_environment_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".env").write_text("DCV_TIMEOUT=3\nDCV_DNS_PORT=5300\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DCV_DNS_PORT", "5301")
    settings = load_settings()
    assert settings.timeout == 3.0
    assert settings.dns_port == 5301


def test_parsers_accept_bracketed_ipv6_and_labels() -> None:
    assert parse_resolvers("[2001:db8::53]") == (ServerAddress("2001:db8::53", 53),)
    assert parse_public_resolvers("AliDNS (China)=223.5.5.5")[0].name == "AliDNS (China)"
