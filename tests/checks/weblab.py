"""Real aiohttp web servers on several loopback addresses, for the file checker's tests.

One :class:`WebLab` binds the same HTTP port and the same HTTPS port (self-signed certificate from
trustme) on every address it serves, like a domain's servers all listening on 80 and 443. What each
address answers is set per test with :meth:`WebLab.route`: a handler for ``(address, scheme, path)``,
any of them ``None`` for "any". Every request is recorded (address, scheme, path, headers, SNI), so tests
can assert what reached which server, and canaries can count hits.
"""

from __future__ import annotations

import asyncio
import errno
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import trustme
from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Hit:
    address: str
    scheme: str
    path: str
    host: str | None
    user_agent: str | None
    headers: dict[str, str]
    sni: str | None


@dataclass
class WebLab:
    addresses: list[str]
    http_port: int = 0
    https_port: int = 0
    hits: list[Hit] = field(default_factory=list)
    routes: dict[tuple[str | None, str | None, str | None], Handler] = field(default_factory=dict)
    sni_seen: list[str | None] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    ca: trustme.CA = field(default_factory=trustme.CA)

    def route(
        self, path: str | None, handler: Handler, *, address: str | None = None, scheme: str | None = None
    ) -> None:
        self.routes[(address, scheme, path)] = handler

    def serve(
        self,
        path: str,
        body: bytes | str,
        *,
        address: str | None = None,
        scheme: str | None = None,
        content_type: str = "text/plain",
    ) -> None:
        data = body.encode() if isinstance(body, str) else body

        async def handler(request: web.Request) -> web.StreamResponse:
            return web.Response(body=data, content_type=content_type)

        self.route(path, handler, address=address, scheme=scheme)

    def count(self, *, address: str | None = None, scheme: str | None = None) -> int:
        return sum(
            1
            for h in self.hits
            if (address is None or h.address == address) and (scheme is None or h.scheme == scheme)
        )

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        address = str(sockname[0]) if sockname else "?"
        scheme = "https" if request.secure else "http"
        sslobj = request.transport.get_extra_info("ssl_object") if request.transport else None
        sni = getattr(sslobj, "sni_seen", None) if sslobj is not None else None
        self.hits.append(
            Hit(
                address,
                scheme,
                request.path,
                request.headers.get("Host"),
                request.headers.get("User-Agent"),
                dict(request.headers),
                sni,
            )
        )
        for key in (
            (address, scheme, request.path),
            (address, None, request.path),
            (None, scheme, request.path),
            (None, None, request.path),
            (address, scheme, None),
            (address, None, None),
            (None, scheme, None),
            (None, None, None),
        ):
            handler = self.routes.get(key)
            if handler is not None:
                return await handler(request)
        return web.Response(status=404, text="404 Not Found")

    def _ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ca.issue_cert("*.dcvlab.net", "dcvlab.net").configure_cert(ctx)

        def sni_callback(sslobj: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
            self.sni_seen.append(name)
            sslobj.sni_seen = name  # type: ignore[attr-defined]

        ctx.sni_callback = sni_callback
        return ctx

    async def start(self) -> WebLab:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        for _attempt in range(20):
            runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
            await runner.setup()
            try:
                sslctx = self._ssl_context()
                http_port, https_port = self.http_port, self.https_port
                for address in self.addresses:
                    site = web.TCPSite(runner, address, http_port, reuse_address=False)
                    await site.start()
                    if not http_port:
                        http_port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
                    tls = web.TCPSite(runner, address, https_port, ssl_context=sslctx, reuse_address=False)
                    await tls.start()
                    if not https_port:
                        https_port = tls._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            except OSError as exc:
                await runner.cleanup()
                if exc.errno != errno.EADDRINUSE:
                    raise
                continue
            self.http_port, self.https_port, self._runner = http_port, https_port, runner
            return self
        raise RuntimeError("could not find free ports shared by all addresses")

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


async def drip(
    request: web.Request, *, delay: float = 0.3, forever: bool = True, first: bytes = b"x"
) -> web.StreamResponse:
    """A body sent one byte at a time, forever (or a few bytes): aiohttp's read timeout never fires."""
    response = web.StreamResponse(headers={"Content-Type": "text/plain"})
    await response.prepare(request)
    await response.write(first)
    while forever:
        await asyncio.sleep(delay)
        await response.write(b".")
    return response


async def endless(request: web.Request) -> web.StreamResponse:
    """An endless chunked body sent as fast as possible."""
    response = web.StreamResponse(headers={"Content-Type": "text/plain"})
    await response.prepare(request)
    chunk = b"A" * 65536
    while True:
        await response.write(chunk)
