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
MAX_DEPTH = 100  # nesting of a request body (a workflow document needs about six levels)
BODY_TIMEOUT_S = 30.0  # a client that stops sending frees its thread after this long


class Transport(Protocol):
    def request(self, method: str, path: str, params: Mapping[str, str] | None = None,
                body: Any = None) -> tuple[int, dict[str, Any]]: ...


def make_server(api: Transport, port: int = 0, label: str = "",
                timeout_s: float = BODY_TIMEOUT_S) -> ThreadingHTTPServer:
    """A server bound to 127.0.0.1:port (0: any free port), not yet serving. A connection
    that sends nothing for `timeout_s` (headers or body) is answered and closed."""

    class Handler(_Handler):
        transport = api
        source = label
        timeout = timeout_s

    try:
        server = ThreadingHTTPServer((HOST, port), Handler)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {HOST}:{port} ({exc.strerror}); pass another --port") from None
    server.daemon_threads = True
    return server


def serve_in_thread(api: Transport, port: int = 0, label: str = "",
                    timeout_s: float = BODY_TIMEOUT_S) -> tuple[ThreadingHTTPServer, str]:
    """Start serving in a daemon thread; returns the server and its base URL (tests, notebooks)."""
    server = make_server(api, port, label, timeout_s)
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
            if self.headers.get("Content-Length", "0").strip() not in ("", "0") and ctype != "application/json":
                return "send JSON (Content-Type: application/json)"
        return None

    def _body(self) -> tuple[Any, tuple[int, dict[str, Any]] | None]:
        """(parsed JSON body or None, None), or (None, the 4xx reply) for a body that is not
        acceptable. Reads at most MAX_BODY bytes, each wait bounded by the handler's timeout."""
        raw_length = self.headers.get("Content-Length")
        if raw_length is None:
            if self.headers.get("Transfer-Encoding"):
                return None, (411, {"error": "length required",
                                    "message": "send the body with a Content-Length (chunked bodies are not read)"})
            return None, None  # no body: nothing to read, nothing to wait for
        text = raw_length.strip()
        if not text.isascii() or not text.isdigit():
            return None, (400, {"error": "bad request",
                                "message": f"Content-Length must be a whole number of bytes, got {raw_length[:40]!r}"})
        length = int(text[:12]) if len(text) <= 12 else MAX_BODY + 1
        if length > MAX_BODY:
            return None, (413, {"error": "too large", "message": f"request bodies are limited to {MAX_BODY} bytes"})
        try:
            raw = self.rfile.read(length) if length else b""
        except TimeoutError:
            return None, (408, {"error": "request timeout",
                                "message": f"the body did not arrive within {self.timeout} s"})
        if len(raw) < length:
            return None, (400, {"error": "bad request",
                                "message": f"the body ended after {len(raw)} of {length} bytes"})
        if not raw.strip():
            return None, None
        try:
            body = json.loads(raw)
        except RecursionError:
            return None, (400, {"error": "invalid workflow", "message": _too_deep()})
        except ValueError as exc:
            return None, (400, {"error": "invalid workflow", "message": f"the body is not valid JSON: {exc}"})
        if _depth_over(body, MAX_DEPTH):
            return None, (400, {"error": "invalid workflow", "message": _too_deep()})
        return body, None

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
        body, bad = self._body()
        if bad is not None:
            self.close_connection = True  # what is left of the body is not read
            self._json(*bad)
            return
        self._api("POST", url.path, dict(parse_qsl(url.query)), body)

    def _api(self, method: str, path: str, params: dict[str, str], body: Any) -> None:
        try:
            status, reply = self.transport.request(method, path, params, body)
        except UpdraftError as exc:
            status, reply = 502, {"error": type(exc).__name__, "message": str(exc)}
        except RecursionError:
            status, reply = 400, {"error": "invalid workflow", "message": _too_deep()}
        except Exception as exc:  # a bug, but the client gets an answer rather than a dropped connection
            status, reply = 500, {"error": "internal error",
                                  "message": f"{type(exc).__name__} (a bug: please report it)"}
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


def _too_deep() -> str:
    return f"the body is nested more than {MAX_DEPTH} levels deep; a workflow needs far fewer"


def _depth_over(value: Any, limit: int) -> bool:
    """True when `value` nests lists and objects deeper than `limit` (walked without recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > limit:
                return True
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False
