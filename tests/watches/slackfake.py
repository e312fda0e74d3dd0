"""The strict fake Slack API of ``tests/slack/fakeslack.py``, plus what watches need.

Adds the read methods the outbox uses (``chat.getPermalink``, ``conversations.replies`` and
``conversations.history`` with message metadata, all ``GET`` like slack_sdk sends them) and accepts
the two kinds of markup watch messages legitimately contain: ``<!date^...|...>`` timestamps and links
to a ``slack.com`` permalink. Everything else stays as strict as the original.
"""

from __future__ import annotations

import json
import re
from typing import Any

from aiohttp import web

from tests.slack.fakeslack import Call, FakeSlack

_DATE = re.compile(r"<!date\^\d+\^[^|<>]*\|[^<>]*>")
_PERMALINK = re.compile(r"<https://[a-z0-9.-]+\.slack\.com/[^|<>\s]*\|[^<>]*>")


class WatchFakeSlack(FakeSlack):
    def _routes(self) -> list[web.RouteDef]:
        return [*super()._routes(), web.get("/api/{method}", self._api_get)]

    def _check_markup(self, method: str, where: str, text: str) -> None:
        super()._check_markup(method, where, _PERMALINK.sub("", _DATE.sub("", text)))

    def posts(self, *, kind: str | None = None) -> list[dict[str, Any]]:
        """``chat.postMessage`` calls that succeeded (their messages exist), optionally by dedupe-key kind."""
        found = []
        for params in self.messages.values():
            if "metadata" not in params and kind is not None:
                continue
            key = _dedupe_key(params)
            if kind is None or (key is not None and key.split(":")[2:] == [kind]):
                found.append(params)
        return found

    def dedupe_keys(self) -> list[str]:
        return [k for k in (_dedupe_key(p) for p in self.messages.values()) if k]

    async def _api_get(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params = dict(request.query)
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else None
        self.calls.append(Call(method, params, token))
        try:
            if token != self.bot_token:
                self.violations.append(f"{method}: wrong or missing bearer token")
                return web.json_response({"ok": False, "error": "invalid_auth"})
            failure = self._take_failure(method, params.get("channel"))
            if failure is not None:
                return web.json_response(
                    {"ok": False, "error": failure.error}, status=failure.status, headers=failure.headers
                )
            channel = params.get("channel", "")
            if method == "chat.getPermalink":
                ts = params.get("message_ts", "")
                if (channel, ts) not in self.messages:
                    return web.json_response({"ok": False, "error": "message_not_found"})
                link = f"https://fake.slack.com/archives/{channel}/p{ts.replace('.', '')}"
                return web.json_response({"ok": True, "channel": channel, "permalink": link})
            if method in ("conversations.replies", "conversations.history"):
                ts = params.get("ts")
                messages = []
                for (chan, mts), body in sorted(self.messages.items()):
                    if chan != channel:
                        continue
                    in_thread = body.get("thread_ts") == ts or mts == ts
                    if method == "conversations.replies" and not in_thread:
                        continue
                    message = {"ts": mts, "text": body.get("text")}
                    if params.get("include_all_metadata") in ("1", "true", "True") and body.get("metadata"):
                        message["metadata"] = _metadata(body)
                    messages.append(message)
                return web.json_response({"ok": True, "messages": messages, "has_more": False})
            return web.json_response({"ok": False, "error": "unknown_method"}, status=404)
        finally:
            await self._notify()


def _metadata(params: dict[str, Any]) -> dict[str, Any]:
    meta = params.get("metadata")
    if isinstance(meta, str):
        meta = json.loads(meta)
    return meta if isinstance(meta, dict) else {}


def _dedupe_key(params: dict[str, Any]) -> str | None:
    key = (_metadata(params).get("event_payload") or {}).get("dedupe_key")
    return str(key) if key else None
