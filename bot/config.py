"""Settings from the environment (or a ``.env`` file in the working directory).

The variables and their defaults are part of the contract (``shared/design/contract.md``). Network
code receives a :class:`Settings` (or values taken from it) as arguments, never reads the environment
itself, so tests point it at loopback servers.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from bot.model import InputError

DEFAULT_PUBLIC_RESOLVERS = (
    "Google=8.8.8.8,Cloudflare=1.1.1.1,Quad9=9.9.9.9,"
    "AliDNS (China)=223.5.5.5,DNSPod (China)=119.29.29.29,114DNS (China)=114.114.114.114"
)
DEFAULT_SLACK_API_URL = "https://slack.com/api/"


@dataclass(frozen=True, slots=True)
class ServerAddress:
    """A DNS server to ask: an IP address and a port, with a label for reports."""

    address: str
    port: int = 53
    label: str = ""

    @property
    def name(self) -> str:
        return self.label or self.address

    def __str__(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{host}:{self.port}" if self.port != 53 else self.address


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything configurable about dcv-bot. Build with :func:`load_settings`."""

    resolvers: tuple[ServerAddress, ...] = ()
    public_resolvers: tuple[ServerAddress, ...] = ()
    dns_port: int = 53
    http_port: int = 80
    https_port: int = 443
    allow_private: bool = False
    timeout: float = 10.0
    """Overall deadline of one check, in seconds."""
    database_url: str = "sqlite:///dcv-bot.sqlite3"
    slack_bot_token: str | None = field(default=None, repr=False)
    slack_app_token: str | None = field(default=None, repr=False)
    slack_signing_secret: str | None = field(default=None, repr=False)
    slack_api_url: str = DEFAULT_SLACK_API_URL
    port: int = 3000
    watch_min_interval: float = 60.0
    watch_ttl: float = 259200.0
    max_concurrent_queries: int = 32
    """Upper bound on DNS queries in flight during one check."""
    dns_query_timeout: float = 2.0
    """Per-query timeout in seconds (a query is retried once over UDP within the check deadline)."""

    def with_overrides(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]


def _parse_server(text: str, default_port: int, label: str = "") -> ServerAddress:
    text = text.strip()
    host, port = text, default_port
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest.startswith(":"):
            port = _parse_port(rest[1:], text)
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
        port = _parse_port(port_text, text)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise InputError(f"resolver {text!r} is not an IP address (use ip or ip:port)") from None
    return ServerAddress(host, port, label)


def _parse_port(text: str, whole: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise InputError(f"{whole!r} has an invalid port")
    return int(text)


def parse_resolvers(text: str, default_port: int = 53) -> tuple[ServerAddress, ...]:
    """Parse ``ip[:port],...`` (IPv6 as ``[addr]:port``)."""
    return tuple(_parse_server(item, default_port) for item in text.split(",") if item.strip())


def parse_public_resolvers(text: str) -> tuple[ServerAddress, ...]:
    """Parse ``label=ip[:port],...``; a bare ``ip`` is labelled by its address."""
    servers = []
    for item in text.split(","):
        if not item.strip():
            continue
        label, sep, addr = item.partition("=")
        if not sep:
            label, addr = "", label
        servers.append(_parse_server(addr, 53, label.strip()))
    return tuple(servers)


def system_resolvers(path: str = "/etc/resolv.conf") -> tuple[ServerAddress, ...]:
    """The nameservers of resolv.conf; empty when there is none."""
    servers = []
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return ()
    for line in lines:
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "nameserver":
            address = parts[1].split("%")[0]
            try:
                ipaddress.ip_address(address)
            except ValueError:
                continue
            servers.append(ServerAddress(address, 53))
    return tuple(servers)


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def _number(env: Mapping[str, str], name: str, default: float, *, minimum: float = 0.0) -> float:
    raw = env.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError:
        raise InputError(f"{name}={raw!r} is not a number") from None
    if value <= minimum:
        raise InputError(f"{name} must be greater than {minimum:g}")
    return value


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or not raw.strip():
        return default
    return _parse_port(raw.strip(), f"{name}={raw}")


def load_settings(env: Mapping[str, str] | None = None, *, dotenv: bool = True) -> Settings:
    """Read settings from ``env`` (default: ``os.environ`` plus ``./.env``, the environment winning).

    Raises :class:`InputError` with a one-line reason for a malformed value.
    """
    if env is None:
        merged: dict[str, str] = {}
        if dotenv and Path(".env").is_file():
            from dotenv import dotenv_values

            merged.update({k: v for k, v in dotenv_values(".env").items() if v is not None})
        merged.update(os.environ)
        env = merged
    resolvers_text = env.get("DCV_RESOLVERS", "").strip()
    resolvers = parse_resolvers(resolvers_text) if resolvers_text else system_resolvers()
    public_text = env.get("DCV_PUBLIC_RESOLVERS")
    public = parse_public_resolvers(DEFAULT_PUBLIC_RESOLVERS if public_text is None else public_text)
    return Settings(
        resolvers=resolvers,
        public_resolvers=public,
        dns_port=_port(env, "DCV_DNS_PORT", 53),
        http_port=_port(env, "DCV_HTTP_PORT", 80),
        https_port=_port(env, "DCV_HTTPS_PORT", 443),
        allow_private=_flag(env.get("DCV_ALLOW_PRIVATE")),
        timeout=_number(env, "DCV_TIMEOUT", 10.0),
        database_url=env.get("DCV_DATABASE_URL", "").strip() or "sqlite:///dcv-bot.sqlite3",
        slack_bot_token=env.get("SLACK_BOT_TOKEN") or None,
        slack_app_token=env.get("SLACK_APP_TOKEN") or None,
        slack_signing_secret=env.get("SLACK_SIGNING_SECRET") or None,
        slack_api_url=env.get("SLACK_API_URL", "").strip() or DEFAULT_SLACK_API_URL,
        port=_port(env, "PORT", 3000),
        watch_min_interval=_number(env, "DCV_WATCH_MIN_INTERVAL", 60.0),
        watch_ttl=_number(env, "DCV_WATCH_TTL", 259200.0),
    )
