"""A strict local stand-in for the Slack Web API, Socket Mode and ``response_url`` hooks.

It runs on 127.0.0.1 on an ephemeral port (aiohttp) and is stricter than Slack where that helps:

* every Web API call must carry the right bearer token (the bot token; the app token for
  ``apps.connections.open``); a wrong or missing one gets ``invalid_auth`` and is recorded as a violation;
* messages (``chat.postMessage``, ``chat.update``, hook posts) are validated: fallback ``text`` present,
  at most 50 blocks, section text <= 3000, fields <= 10 of <= 2000, header plain_text <= 150, context
  elements <= 10, total block text <= 12,000 (``msg_blocks_too_long``), mrkdwn objects ``verbatim``,
  dcv-bot's posting flags (no link_names, no unfurling, ``parse: none``), and no markup in text except
  ``<@U…>`` mentions (so any escaping slip shows up as a violation);
* failures can be injected per method (``not_in_channel``, ``channel_not_found``, 429 with
  ``Retry-After``, anything) and per channel;
* ``apps.connections.open`` hands out ``ws://127.0.0.1:PORT/link``, a Socket Mode endpoint that sends
  ``hello``, pushes envelopes and records the client's acks;
* ``POST /commands/...`` stands in for ``response_url`` (Slack's are ``https://hooks.slack.com/commands/...``).

Tests assert on :attr:`calls`, :attr:`hooks`, :attr:`acks` and, always, that :attr:`violations` is empty.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Self
from urllib.parse import parse_qsl

from aiohttp import WSMsgType, web

MESSAGE_METHODS = ("chat.postMessage", "chat.update", "chat.postEphemeral")
_ALLOWED_MARKUP = re.compile(r"<@[UW][A-Z0-9]+>")
_ENTITY = re.compile(r"&(amp|lt|gt);")


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    token: str | None
    at: float = field(default_factory=time.monotonic)


@dataclass
class Failure:
    error: str
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    times: int = 1
    channel: str | None = None


class FakeSlack:
    """``async with FakeSlack() as slack: ...`` or ``await start()`` / ``await stop()``."""

    def __init__(
        self, bot_token: str = "xoxb-1-fake-bot-token", app_token: str = "xapp-1-fake-app-token"
    ) -> None:
        self.bot_token = bot_token
        self.app_token = app_token
        self.calls: list[Call] = []
        self.hooks: list[dict[str, Any]] = []
        self.acks: list[dict[str, Any]] = []
        self.ack_times: dict[str, float] = {}
        self.violations: list[str] = []
        self.failures: dict[str, list[Failure]] = {}
        self.not_member: set[str] = set()
        """Channels where the bot is not a member: posting answers ``not_in_channel``."""
        self.invisible: set[str] = set()
        """Private channels and DMs the bot cannot see: posting answers ``channel_not_found``."""
        self.messages: dict[tuple[str, str], dict[str, Any]] = {}
        self.sockets: list[web.WebSocketResponse] = []
        self.socket_connects = 0
        self._ts = itertools.count(1)
        self._hook_ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self._changed = asyncio.Condition()
        self.port = 0

    # --- lifecycle ---------------------------------------------------------------------------------

    def _routes(self) -> list[web.RouteDef]:
        """The endpoints served; subclasses add theirs."""
        return [
            web.post("/api/{method}", self._api),
            web.post("/commands/{team}/{id}/{secret}", self._hook),
            web.get("/link", self._socket),
        ]

    async def start(self) -> Self:
        app = web.Application()
        app.add_routes(self._routes())
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        for ws in list(self.sockets):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> FakeSlack:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    def new_response_url(self) -> str:
        """A fresh ``response_url`` (its secret part is what must never appear in logs)."""
        return f"http://127.0.0.1:{self.port}/commands/T0001/{next(self._hook_ids)}/{uuid.uuid4().hex}"

    # --- failure injection ---------------------------------------------------------------------------

    def fail(
        self,
        method: str,
        error: str,
        *,
        status: int = 200,
        headers: dict[str, str] | None = None,
        times: int = 1,
        channel: str | None = None,
    ) -> None:
        """The next ``times`` calls of ``method`` (optionally only for ``channel``) answer ``error``."""
        self.failures.setdefault(method, []).append(Failure(error, status, headers or {}, times, channel))

    # --- queries -------------------------------------------------------------------------------------

    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    async def wait_for(self, predicate: Any, timeout: float = 10.0) -> None:
        """Wait until ``predicate()`` is true (re-checked whenever the fake records something)."""
        async with asyncio.timeout(timeout):
            async with self._changed:
                await self._changed.wait_for(predicate)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # --- Web API -------------------------------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        raw = await request.read()
        params = self._params(request.content_type, raw)
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else None
        self.calls.append(Call(method, params, token))
        try:
            return self._answer(method, params, token)
        finally:
            await self._notify()

    def _params(self, content_type: str, raw: bytes) -> dict[str, Any]:
        if not raw:
            return {}
        if content_type == "application/json":
            try:
                data = json.loads(raw)
            except ValueError:
                self.violations.append("request body is not JSON")
                return {}
            return data if isinstance(data, dict) else {}
        return dict(parse_qsl(raw.decode("utf-8", "replace")))

    def _answer(self, method: str, params: dict[str, Any], token: str | None) -> web.Response:
        expected = self.app_token if method == "apps.connections.open" else self.bot_token
        if token != expected:
            self.violations.append(f"{method}: wrong or missing bearer token")
            return web.json_response({"ok": False, "error": "invalid_auth"})
        failure = self._take_failure(method, params.get("channel"))
        if failure is not None:
            return web.json_response(
                {"ok": False, "error": failure.error}, status=failure.status, headers=failure.headers
            )
        if method == "auth.test":
            return web.json_response(
                {
                    "ok": True,
                    "url": "https://fake.slack.com/",
                    "team": "Fake",
                    "user": "dcv",
                    "team_id": "T0001",
                    "user_id": "U0BOT",
                    "bot_id": "B0BOT",
                    "is_enterprise_install": False,
                }
            )
        if method == "apps.connections.open":
            return web.json_response({"ok": True, "url": f"ws://127.0.0.1:{self.port}/link"})
        if method in MESSAGE_METHODS:
            return self._message(method, params)
        return web.json_response({"ok": False, "error": "unknown_method"}, status=404)

    def _take_failure(self, method: str, channel: Any) -> Failure | None:
        queue = self.failures.get(method) or []
        for failure in queue:
            if failure.channel is None or failure.channel == channel:
                failure.times -= 1
                if failure.times <= 0:
                    queue.remove(failure)
                return failure
        return None

    def _message(self, method: str, params: dict[str, Any]) -> web.Response:
        channel = params.get("channel")
        if not isinstance(channel, str) or not channel:
            self.violations.append(f"{method}: no channel")
            return web.json_response({"ok": False, "error": "channel_not_found"})
        if channel in self.invisible:
            return web.json_response({"ok": False, "error": "channel_not_found"})
        if channel in self.not_member:
            return web.json_response({"ok": False, "error": "not_in_channel"})
        error = self.validate_message(method, params)
        if error:
            return web.json_response({"ok": False, "error": error})
        if method == "chat.update":
            key = (channel, str(params.get("ts")))
            if key not in self.messages:
                self.violations.append("chat.update of a message that was never posted")
                return web.json_response({"ok": False, "error": "message_not_found"})
            self.messages[key].update(params)
            return web.json_response({"ok": True, "channel": channel, "ts": key[1]})
        ts = f"1700000000.{next(self._ts):06d}"
        self.messages[(channel, ts)] = dict(params)
        return web.json_response({"ok": True, "channel": channel, "ts": ts, "message": {"ts": ts}})

    # --- validation ----------------------------------------------------------------------------------

    def validate_message(self, method: str, params: dict[str, Any]) -> str | None:
        """Record violations; return the error Slack would give (or ``None``)."""
        before = len(self.violations)
        text = params.get("text")
        if not isinstance(text, str) or not text.strip():
            self.violations.append(f"{method}: no fallback text")
        elif len(text) > 40_000:
            self.violations.append(f"{method}: text over 40,000 characters")
        else:
            self._check_markup(method, "text", text)
        if method == "chat.postMessage":
            for flag, value in (
                ("link_names", False),
                ("unfurl_links", False),
                ("unfurl_media", False),
                ("parse", "none"),
            ):
                if params.get(flag) != value:
                    self.violations.append(f"{method}: {flag} should be {value!r}, is {params.get(flag)!r}")
        blocks = params.get("blocks")
        if isinstance(blocks, str):
            try:
                blocks = json.loads(blocks)
            except ValueError:
                self.violations.append(f"{method}: blocks are not JSON")
                return "invalid_blocks"
        if blocks is not None:
            result = self._check_blocks(method, blocks)
            if result:
                return result
        return "invalid_blocks" if len(self.violations) > before else None

    def _check_markup(self, method: str, where: str, text: str) -> None:
        rest = _ALLOWED_MARKUP.sub("", text)
        if "<" in rest or ">" in rest:
            self.violations.append(f"{method}: unescaped < or > in {where}: {rest[:120]!r}")
        if "&" in _ENTITY.sub("", rest):
            self.violations.append(f"{method}: bare & in {where}: {rest[:120]!r}")

    def _text_object(self, method: str, obj: Any, limit: int, where: str, *, plain_only: bool = False) -> int:
        if not isinstance(obj, dict) or obj.get("type") not in ("mrkdwn", "plain_text"):
            self.violations.append(f"{method}: {where} is not a text object")
            return 0
        if plain_only and obj["type"] != "plain_text":
            self.violations.append(f"{method}: {where} must be plain_text")
        text = obj.get("text")
        if not isinstance(text, str) or not text:
            self.violations.append(f"{method}: {where} has empty text")
            return 0
        if len(text) > limit:
            self.violations.append(f"{method}: {where} is {len(text)} characters (limit {limit})")
        if obj["type"] == "mrkdwn" and obj.get("verbatim") is not True:
            self.violations.append(f"{method}: {where} mrkdwn without verbatim")
        self._check_markup(method, where, text)
        return len(text)

    def _check_blocks(self, method: str, blocks: Any) -> str | None:
        if not isinstance(blocks, list) or not blocks:
            self.violations.append(f"{method}: blocks must be a non-empty list")
            return "invalid_blocks"
        if len(blocks) > 50:
            self.violations.append(f"{method}: {len(blocks)} blocks (limit 50)")
            return "invalid_blocks"
        total = 0
        for i, block in enumerate(blocks):
            where = f"block {i}"
            if not isinstance(block, dict):
                self.violations.append(f"{method}: {where} is not an object")
                continue
            if len(str(block.get("block_id", ""))) > 255:
                self.violations.append(f"{method}: {where} block_id over 255")
            kind = block.get("type")
            if kind == "section":
                if "text" not in block and "fields" not in block:
                    self.violations.append(f"{method}: {where} section without text or fields")
                if "text" in block:
                    total += self._text_object(method, block["text"], 3000, where)
                fields = block.get("fields", [])
                if len(fields) > 10:
                    self.violations.append(f"{method}: {where} has {len(fields)} fields (limit 10)")
                for j, f in enumerate(fields):
                    total += self._text_object(method, f, 2000, f"{where} field {j}")
            elif kind == "header":
                total += self._text_object(method, block.get("text"), 150, where, plain_only=True)
            elif kind == "context":
                elements = block.get("elements") or []
                if not 1 <= len(elements) <= 10:
                    self.violations.append(f"{method}: {where} context with {len(elements)} elements")
                for j, e in enumerate(elements):
                    total += self._text_object(method, e, 3000, f"{where} element {j}")
            elif kind == "actions":
                elements = block.get("elements") or []
                if not 1 <= len(elements) <= 25:
                    self.violations.append(f"{method}: {where} actions with {len(elements)} elements")
                for j, e in enumerate(elements):
                    if e.get("type") != "button" or len(str(e.get("action_id", ""))) > 255:
                        self.violations.append(f"{method}: {where} element {j} is not a valid button")
                    total += self._text_object(
                        method, e.get("text"), 75, f"{where} button {j}", plain_only=True
                    )
                    if len(str(e.get("value", ""))) > 2000:
                        self.violations.append(f"{method}: {where} button value over 2000")
            elif kind != "divider":
                self.violations.append(f"{method}: {where} has unknown type {kind!r}")
        if total > 12_000:
            self.violations.append(f"{method}: {total} characters of block text (msg_blocks_too_long)")
            return "msg_blocks_too_long"
        return None

    # --- response_url hooks --------------------------------------------------------------------------

    async def _hook(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            self.violations.append("hook: body is not JSON")
            return web.Response(status=400, text="invalid_payload")
        body["_path"] = request.path
        self.hooks.append(body)
        self.validate_message("response_url", body)
        await self._notify()
        return web.Response(text="ok")

    # --- Socket Mode ---------------------------------------------------------------------------------

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self.sockets.append(ws)
        self.socket_connects += 1
        await ws.send_json({"type": "hello", "num_connections": 1, "connection_info": {"app_id": "A0DCV"}})
        await self._notify()
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    ack = json.loads(msg.data)
                    self.acks.append(ack)
                    self.ack_times[str(ack.get("envelope_id"))] = time.monotonic()
                    await self._notify()
        finally:
            self.sockets.remove(ws)
            await self._notify()
        return ws

    async def push(self, envelope: dict[str, Any]) -> None:
        """Send an envelope to the newest Socket Mode connection."""
        if not self.sockets:
            raise RuntimeError("no Socket Mode connection")
        await self.sockets[-1].send_json(envelope)

    def slash_payload(self, text: str, **overrides: Any) -> dict[str, str]:
        """The fields of a ``/dcv`` slash command, as Slack sends them (form fields over HTTP)."""
        payload = {
            "token": "legacyverificationtoken123",
            "team_id": "T0001",
            "team_domain": "fake",
            "channel_id": "C0001",
            "channel_name": "general",
            "user_id": "U0USER",
            "user_name": "alice",
            "command": "/dcv",
            "text": text,
            "api_app_id": "A0DCV",
            "is_enterprise_install": "false",
            "response_url": self.new_response_url(),
            "trigger_id": f"{next(self._hook_ids)}.{uuid.uuid4().int % 10**12}.{uuid.uuid4().hex}",
        }
        payload.update({k: str(v) for k, v in overrides.items()})
        return payload

    def slash_envelope(self, text: str, **overrides: Any) -> dict[str, Any]:
        return {
            "envelope_id": str(uuid.uuid4()),
            "type": "slash_commands",
            "accepts_response_payload": True,
            "payload": self.slash_payload(text, **overrides),
        }
