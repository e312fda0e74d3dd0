"""The web half of the lab: nginx on 127.53.80.1 and .2, ports 80 and 443 (self-signed certificate).

One ``server`` block per scenario host (``<host>.example.lab``, addresses in :mod:`zones`), each
serving ``/.well-known/pki-validation/fileauth.txt`` its own way. Expected contents are in
:data:`CONTENT`; a test passes ``CONTENT[host]`` to ``dcv file`` and looks at the diagnosis.
"""

from __future__ import annotations

import socket
from pathlib import Path

from . import zones
from .procs import Daemon, program, run, wait_for

FILE_PATH = "/.well-known/pki-validation/fileauth.txt"

# What the CA's console would tell the user to publish, per host.
CONTENT: dict[str, str] = {
    "found": "CONTENT-FOUND-7f3a",
    "missing": "CONTENT-MISSING",
    "wrong": "CONTENT-WRONG-expected",
    "bom": "CONTENT-BOM-91c2",
    "crlf": "3b9f0c2d1e\nsectigo.com",
    "spaces": "CONTENT-SPACES-5e",
    "tohttps": "CONTENT-TOHTTPS-11",
    "moved": "CONTENT-FOUND-7f3a",
    "loop": "CONTENT-LOOP",
    "spa": "CONTENT-SPA",
    "forbidden": "CONTENT-FORBIDDEN",
    "drip": "CONTENT-DRIP",
    "slowbody": "CONTENT-SLOWBODY",
    "huge": "CONTENT-HUGE",
    "lb": "CONTENT-LB-33",
    "closed": "CONTENT-CLOSED",
    "v6broken": "CONTENT-V6BROKEN",
    "tlsbroken": "CONTENT-TLSBROKEN",
    "gzip": "CONTENT-GZIP-" + "abc" * 40,
    "noslash": "CONTENT-FOUND-7f3a",
    "oddport": "CONTENT-FOUND-7f3a",
    "filtered": "CONTENT-FILTERED",
}

# What the server really has in the file, byte for byte (hosts not listed have no file).
SERVED: dict[str, bytes] = {
    "found": b"CONTENT-FOUND-7f3a",
    "wrong": b"CONTENT-WRONG-served-instead",
    "bom": b"\xef\xbb\xbfCONTENT-BOM-91c2",
    "crlf": b"3b9f0c2d1e\r\nsectigo.com\r\n",
    "spaces": b"  CONTENT-SPACES-5e \n\n",
    "tohttps": b"CONTENT-TOHTTPS-11",
    "lb": b"CONTENT-LB-33",
    "v6broken": b"CONTENT-V6BROKEN",
    "tlsbroken": b"CONTENT-TLSBROKEN",
    "gzip": b"CONTENT-GZIP-" + b"abc" * 40,
    "drip": b"CONTENT-DRIP" + b"." * 200,
    "slowbody": b"CONTENT-SLOWBODY" + b"." * 1000,
}

SPA_PAGE = (
    "<!doctype html><html><head><title>Shop</title></head>"
    "<body><div id=app>Loading...</div><script src=/app.js></script></body></html>"
)
HUGE_SIZE = 64 * 1024 * 1024  # a sparse file: an "endless" body for a checker that must cap its read


class WebLab:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.daemon = Daemon("nginx", [], root / "nginx")

    def start(self) -> None:
        try:
            self._write()
            self.daemon.start()
            for address in (zones.WEB, zones.WEB2, zones.WEB3):
                for port in (80, 443):
                    wait_for(
                        lambda a=address, p=port: self.daemon.check_alive() or _connects(a, p),
                        timeout=10,
                        what=f"nginx on {address}:{port}",
                    )
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        self.daemon.stop()

    def _write(self) -> None:
        workdir = self.daemon.workdir
        workdir.mkdir(parents=True, exist_ok=True)
        # nginx workers run as "nobody": they must be able to read the docroots
        for path in (self.root, workdir):
            path.chmod(0o755)
        for sub in ("tmp", "www"):
            (workdir / sub).mkdir(exist_ok=True)
        key, cert = workdir / "key.pem", workdir / "cert.pem"
        run(
            [
                "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=example.lab",
                "-addext", "subjectAltName=DNS:example.lab,DNS:*.example.lab",
            ]
        )  # fmt: skip
        www = workdir / "www"
        for host, body in SERVED.items():
            target = www / host / FILE_PATH.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(body)
        huge = www / "huge" / FILE_PATH.lstrip("/")
        huge.parent.mkdir(parents=True, exist_ok=True)
        with open(huge, "wb") as f:
            f.truncate(HUGE_SIZE)
        (www / "missing").mkdir(exist_ok=True)
        (workdir / "nginx.conf").write_text(self._config(workdir, www, key, cert))
        self.daemon.argv = [program("nginx"), "-c", str(workdir / "nginx.conf"), "-p", str(workdir)]

    def _config(self, workdir: Path, www: Path, key: Path, cert: Path) -> str:
        def listen(*addresses: str, default: bool = False) -> str:
            flag = " default_server" if default else ""
            return "".join(f"    listen {a}:80{flag};\n    listen {a}:443 ssl{flag};\n" for a in addresses)

        web1 = listen(zones.WEB)
        static = ""
        # drip: everything, status line included, at one byte a second; slowbody: the status line,
        # headers and the first bytes at once, then the rest of the body at one byte a second
        throttle = {"drip": 0, "slowbody": 300}
        hosts = (
            "found",
            "missing",
            "wrong",
            "bom",
            "crlf",
            "spaces",
            "drip",
            "slowbody",
            "huge",
            "v6broken",
            "gzip",
        )
        for host in hosts:
            extra = ""
            if host == "gzip":
                # compressed only for a client that sends Accept-Encoding: gzip (aiohttp does by default)
                extra = "    gzip on;\n    gzip_min_length 1;\n    gzip_types text/plain;\n"
            if host in throttle:
                extra = f"    limit_rate 1;\n    limit_rate_after {throttle[host]};\n    sendfile off;\n"
            static += f"""
server {{
{web1}    server_name {host}.example.lab;
    root {www}/{host};
{extra}}}
"""
        return f"""worker_processes 1;
daemon off;
pid {workdir}/nginx.pid;
error_log {workdir}/error.log info;
events {{ worker_connections 256; }}
http {{
    log_format lab '$remote_addr $server_addr:$server_port $host "$request" $status $body_bytes_sent';
    access_log {workdir}/access.log lab;
    client_body_temp_path {workdir}/tmp/body;
    proxy_temp_path {workdir}/tmp/proxy;
    fastcgi_temp_path {workdir}/tmp/fastcgi;
    uwsgi_temp_path {workdir}/tmp/uwsgi;
    scgi_temp_path {workdir}/tmp/scgi;
    types {{ text/plain txt; text/html html; }}
    default_type application/octet-stream;
    server_tokens off;
    keepalive_timeout 0;
    ssl_certificate {cert};
    ssl_certificate_key {key};

    # unknown Host: 404, as nginx's stock default site would
    server {{
{listen(zones.WEB, zones.WEB2, default=True)}        server_name _;
        return 404;
    }}
{static}
    # http redirects to https, which serves the file
    server {{
        listen {zones.WEB}:80;
        server_name tohttps.example.lab;
        return 301 https://$host$request_uri;
    }}
    server {{
        listen {zones.WEB}:443 ssl;
        server_name tohttps.example.lab;
        root {www}/tohttps;
    }}
    # the file moved to another host (which serves it)
    server {{
{web1}        server_name moved.example.lab;
        return 302 http://found.example.lab$request_uri;
    }}
    # a redirect to itself, forever
    server {{
{web1}        server_name loop.example.lab;
        return 301 http://loop.example.lab$request_uri;
    }}
    # a redirect written without the slash after the host: http://HOST.well-known/...
    server {{
{web1}        server_name noslash.example.lab;
        return 301 http://found.example.lab.well-known/pki-validation/fileauth.txt;
    }}
    # a redirect to a port a CA will not use
    server {{
{web1}        server_name oddport.example.lab;
        return 302 http://found.example.lab:8080$request_uri;
    }}
    # port 443 speaks plain HTTP: every TLS handshake fails; port 80 serves the file
    server {{
        listen {zones.WEB3}:80;
        listen {zones.WEB3}:443;
        server_name tlsbroken.example.lab;
        root {www}/tlsbroken;
    }}
    # a single-page application: every path is the same HTML page, status 200
    server {{
{web1}        server_name spa.example.lab;
        location / {{
            types {{ }}
            default_type text/html;
            return 200 '{SPA_PAGE}';
        }}
    }}
    server {{
{web1}        server_name forbidden.example.lab;
        return 403;
    }}
    # a load balancer whose second member lacks the file
    server {{
        listen {zones.WEB}:80;
        listen {zones.WEB}:443 ssl;
        server_name lb.example.lab;
        root {www}/lb;
    }}
    server {{
        listen {zones.WEB2}:80;
        listen {zones.WEB2}:443 ssl;
        server_name lb.example.lab;
        return 404;
    }}
}}
"""


def _connects(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=0.5):
            return True
    except OSError:
        return False
