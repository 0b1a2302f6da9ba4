"""The local dashboard server answers every bad body with a 4xx, over a raw socket (issue 22,
D10): non-finite numbers, bodies nested 100,000 deep, missing, negative and invalid
Content-Length, and a body that never arrives (answered after the read timeout, not a thread
held forever). Before, several of these dropped the connection or hung."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chalicelib.backends.local.api import LocalApi
from chalicelib.ui.server import serve_in_thread

TIMEOUT_S = 0.5  # the server's read timeout in these tests
CLIENT_WAIT_S = 30.0  # how long the client waits for an answer before calling it a hang


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, int]]:
    server, _ = serve_in_thread(LocalApi(str(tmp_path / "wd")), 0, "test", timeout_s=TIMEOUT_S)
    try:
        yield "127.0.0.1", int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def exchange(where: tuple[str, int], head: str, body: bytes = b"", close_write: bool = False) -> tuple[int, Any]:
    """Send a raw request; (status, JSON body) of the answer. Raises if the server drops the
    connection without answering or does not answer within CLIENT_WAIT_S."""
    with socket.create_connection(where, timeout=CLIENT_WAIT_S) as sock:
        sock.sendall(head.encode("latin-1") + b"\r\n" + body)
        if close_write:
            sock.shutdown(socket.SHUT_WR)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    data = b"".join(chunks)
    assert data.startswith(b"HTTP/1."), f"no answer: the connection was dropped ({data[:80]!r})"
    status = int(data.split(b" ", 2)[1])
    payload = data.split(b"\r\n\r\n", 1)[1]
    return status, json.loads(payload) if payload else None


def post(where: tuple[str, int], body: bytes, length: str | None = None, extra: str = "") -> str:
    port = where[1]
    lines = ["POST /runs HTTP/1.1", f"Host: 127.0.0.1:{port}", "Content-Type: application/json",
             "Connection: close"]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    if extra:
        lines.append(extra)
    return "\r\n".join(lines) + "\r\n"


def test_non_finite_numbers_in_a_body_are_a_400_naming_task_and_field(served: tuple[str, int]) -> None:
    for number in ("NaN", "Infinity", "1e400", "1" + "0" * 400):
        body = ('{"workflow": {"tasks": [{"id": "a", "shell": "true", "resources": {"memory_mb": '
                + number + '}}]}}').encode()
        status, reply = exchange(served, post(served, body, str(len(body))), body)
        assert status == 400, (number, reply)
        assert [(p["task_id"], p["field"]) for p in reply["problems"]] == [("a", "resources.memory_mb")], reply


def test_a_hint_of_infinity_is_a_400(served: tuple[str, int]) -> None:
    body = b'{"workflow": {"tasks": [{"id": "a", "shell": "true", "hints": {"runtime_s": Infinity}}]}}'
    status, reply = exchange(served, post(served, body, str(len(body))), body)
    assert status == 400 and reply["problems"][0]["field"] == "hints.runtime_s", reply


@pytest.mark.parametrize("body", [b"[" * 100_000, b'{"workflow": ' * 50_000, b"[" * 500 + b"]" * 500,
                                  b"9" * 5000, b"{not json"])
def test_deep_or_broken_json_is_a_400(served: tuple[str, int], body: bytes) -> None:
    status, reply = exchange(served, post(served, body, str(len(body))), body)
    assert status == 400, reply
    assert reply["message"]


@pytest.mark.parametrize("length", ["-1", "abc", "1e3", " 12x", "+5", "99999999999999999999"])
def test_an_invalid_content_length_is_a_4xx_at_once(served: tuple[str, int], length: str) -> None:
    status, reply = exchange(served, post(served, b"{}", length), b"{}")
    assert status in (400, 413), reply
    assert "Content-Length" in reply["message"] or "limited" in reply["message"]


def test_a_chunked_body_without_length_is_411(served: tuple[str, int]) -> None:
    status, reply = exchange(served, post(served, b"", None, "Transfer-Encoding: chunked"), b"2\r\n{}\r\n0\r\n\r\n")
    assert status == 411, reply


def test_no_content_length_means_no_body(served: tuple[str, int]) -> None:
    status, reply = exchange(served, post(served, b"", None))
    assert status == 400 and "send" in reply["message"], reply


def test_a_body_that_never_arrives_is_answered_after_the_timeout(served: tuple[str, int]) -> None:
    """Content-Length 1000, 10 bytes sent, then silence: 408 after the server's read timeout,
    and the server still answers others meanwhile and after."""
    answers: list[tuple[int, Any]] = []
    slow = threading.Thread(target=lambda: answers.append(exchange(served, post(served, b"", "1000"),
                                                                   b'{"workflow"')))
    slow.start()
    assert exchange(served, post(served, b"", None))[0] == 400
    slow.join(CLIENT_WAIT_S + 5)
    assert not slow.is_alive(), "the server held the connection"
    assert answers and answers[0][0] == 408, answers


def test_a_body_cut_short_is_a_400(served: tuple[str, int]) -> None:
    status, reply = exchange(served, post(served, b"", "100"), b'{"a": 1}', close_write=True)
    assert status in (400, 408), reply
