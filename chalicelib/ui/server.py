"""`updraft ui`: the dashboard page and its JSON API on 127.0.0.1 (never another interface).

The API is any transport with `request(method, path, params, body) -> (status, body)`: the
local runtime's LocalApi, or the SDK's signed remote transport (a deployed stack whose API
takes only SigV4-signed requests, which a browser cannot make, is viewed through this proxy).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlsplit

from chalicelib.errors import ConfigError, UpdraftError
from chalicelib.ui.page import page_html

HOST = "127.0.0.1"
MAX_BODY = 16 * 1024 * 1024


class Transport(Protocol):
    def request(self, method: str, path: str, params: Mapping[str, str] | None = None,
                body: Any = None) -> tuple[int, dict[str, Any]]: ...


def make_server(api: Transport, port: int = 0, label: str = "") -> ThreadingHTTPServer:
    """A server bound to 127.0.0.1:port (0: any free port), not yet serving."""

    class Handler(_Handler):
        transport = api
        source = label

    try:
        server = ThreadingHTTPServer((HOST, port), Handler)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {HOST}:{port} ({exc.strerror}); pass another --port") from None
    server.daemon_threads = True
    return server


def serve_in_thread(api: Transport, port: int = 0, label: str = "") -> tuple[ThreadingHTTPServer, str]:
    """Start serving in a daemon thread; returns the server and its base URL (tests, notebooks)."""
    server = make_server(api, port, label)
    threading.Thread(target=server.serve_forever, name="updraft-ui", daemon=True).start()
    return server, f"http://{HOST}:{server.server_address[1]}/"


class _Handler(BaseHTTPRequestHandler):
    transport: Transport
    source: str
    server_version = "updraft-ui"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: the terminal shows the URL, not a line per poll

    def _refused(self, post: bool) -> str | None:
        """Why a request must not reach the API, if it must not.

        The API runs commands (a submitted workflow), so only this machine's own pages may use
        it: the Host must be the loopback address we listen on (a DNS-rebound name is not), a
        POST must come from our own origin, and must be JSON, which a cross-site form cannot
        send without a CORS preflight that this server never grants.
        """
        port = int(self.server.server_address[1])  # type: ignore[index]
        allowed = {f"127.0.0.1:{port}", f"localhost:{port}"}
        if self.headers.get("Host", "") not in allowed:
            return "this server answers only requests addressed to 127.0.0.1"
        if post:
            origin = self.headers.get("Origin")
            if origin is not None and origin.removeprefix("http://") not in allowed:
                return f"cross-site request from {origin} refused"
            ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            if int(self.headers.get("Content-Length") or 0) and ctype != "application/json":
                return "send JSON (Content-Type: application/json)"
        return None

    def do_GET(self) -> None:
        refused = self._refused(post=False)
        if refused:
            self._json(403, {"error": "forbidden", "message": refused})
            return
        url = urlsplit(self.path)
        if url.path in ("/", "/index.html"):
            self._send(200, page_html().encode("utf-8"), "text/html; charset=utf-8")
            return
        if url.path == "/favicon.ico":
            self._send(204, b"", "text/plain")
            return
        self._api("GET", url.path, dict(parse_qsl(url.query)), None)

    def do_POST(self) -> None:
        refused = self._refused(post=True)
        if refused:
            self._json(403, {"error": "forbidden", "message": refused})
            return
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self._json(413, {"error": "too large", "message": f"request bodies are limited to {MAX_BODY} bytes"})
            return
        raw = self.rfile.read(length) if length else b""
        body: Any = None
        if raw.strip():
            try:
                body = json.loads(raw)
            except ValueError as exc:
                self._json(400, {"error": "invalid workflow", "message": f"the body is not valid JSON: {exc}"})
                return
        self._api("POST", url.path, dict(parse_qsl(url.query)), body)

    def _api(self, method: str, path: str, params: dict[str, str], body: Any) -> None:
        try:
            status, reply = self.transport.request(method, path, params, body)
        except UpdraftError as exc:
            status, reply = 502, {"error": type(exc).__name__, "message": str(exc)}
        self._json(status, reply)

    def _json(self, status: int, body: dict[str, Any]) -> None:
        self._send(status, json.dumps(body).encode("utf-8"), "application/json")

    def _send(self, status: int, data: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        if self.source:
            self.send_header("X-Updraft-Source", self.source.encode("ascii", "replace").decode("ascii"))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
