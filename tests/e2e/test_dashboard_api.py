"""The dashboard's local server: the page, the JSON API over the local runtime, `updraft ui`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chalicelib.backends.local.api import LocalApi
from chalicelib.ui.server import serve_in_thread
from tests.e2e.cli import REPO, write_workflow


def call(base: str, method: str, path: str, body: Any = None, raw: bytes | None = None) -> tuple[int, Any]:
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(base + path, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:  # 127.0.0.1 only
            text = resp.read().decode()
            return resp.status, json.loads(text) if resp.headers.get_content_type() == "application/json" else text
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read().decode())


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    server, base = serve_in_thread(LocalApi(str(tmp_path / "wd")), 0, "test")
    try:
        yield base
    finally:
        server.shutdown()
        server.server_close()


def wait_state(base: str, run_id: str, states: tuple[str, ...], timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _, run = call(base, "GET", f"runs/{run_id}")
        if run["state"] in states:
            return dict(run)
        time.sleep(0.1)
    raise AssertionError(f"run {run_id} not in {states}")


def test_page_and_api_over_the_local_runtime(served: str, tmp_path: Path) -> None:
    assert served.startswith("http://127.0.0.1:")
    status, page = call(served, "GET", "")
    assert status == 200 and "<title>Updraft</title>" in page and "runs?limit=" in page
    assert call(served, "GET", "runs") == (200, {"runs": []})
    wf = write_workflow(tmp_path / "wf.json", [
        {"id": "a", "shell": "echo from-a; echo 1 > a", "outputs": ["a"], "type": "first"},
        {"id": "b", "shell": "echo oops >&2; exit 3", "inputs": ["a"], "type": "second"}])
    status, made = call(served, "POST", "runs", {"file": str(wf)})
    assert status == 202 and made["task_count"] == 2 and made["links"]["tasks"] == f"/runs/{made['run_id']}/tasks"
    run_id = made["run_id"]
    final = wait_state(served, run_id, ("SUCCEEDED", "FAILED"))
    assert final["state"] == "FAILED" and final["counts"] == {"SUCCEEDED": 1, "FAILED": 1}
    assert final["timings"]["elapsed_s"] > 0
    status, listed = call(served, "GET", "runs?limit=5")
    assert [r["run_id"] for r in listed["runs"]] == [run_id] and listed["runs"][0]["counts"]["FAILED"] == 1
    status, tasks = call(served, "GET", f"runs/{run_id}/tasks?state=FAILED")
    assert status == 200 and [t["id"] for t in tasks["tasks"]] == ["b"]
    assert tasks["tasks"][0]["reason"] == "NONZERO_EXIT"
    status, graph = call(served, "GET", f"runs/{run_id}/graph")
    assert {n["id"]: (n["type"], n["level"], n["parents"]) for n in graph["tasks"]} == {
        "a": ("first", 0, []), "b": ("second", 1, ["a"])}
    status, task = call(served, "GET", f"runs/{run_id}/tasks/b")
    assert status == 200 and "oops" in task["log_tail"] and task["detail"] == "the command exited with code 3"
    assert "from-a" in call(served, "GET", f"runs/{run_id}/tasks/a")[1]["log_tail"]
    # resume re-runs what failed (it fails again), cancel of a finished run is a conflict
    status, resumed = call(served, "POST", f"runs/{run_id}/resume")
    assert status == 202 and resumed["reset_tasks"] == 1
    assert wait_state(served, run_id, ("FAILED",))["counts"] == {"SUCCEEDED": 1, "FAILED": 1}
    status, conflict = call(served, "POST", f"runs/{run_id}/cancel")
    assert status == 409 and "already FAILED" in conflict["message"]


def test_errors_have_the_api_shapes(served: str, tmp_path: Path) -> None:
    status, body = call(served, "GET", "runs/20990101-000000-00000000")
    assert status == 404 and body["error"] == "not found"
    assert call(served, "GET", "runs/x/tasks/y/z")[0] == 404
    status, body = call(served, "GET", "runs/20990101-000000-00000000/cancel")
    assert status == 405 and "POST" in body["message"]
    status, body = call(served, "POST", "runs", raw=b"{not json")
    assert status == 400 and "not valid JSON" in body["message"]
    status, body = call(served, "POST", "runs", {"workflow": {"name": "w", "tasks": [{"id": "a"}]}})
    assert status == 400 and body["error"] == "invalid workflow" and body["problems"][0]["task_id"] == "a"
    status, body = call(served, "POST", "runs", {"workflow": {"name": "w", "tasks": []}, "colour": "red"})
    assert status == 400 and "colour" in body["message"]
    assert call(served, "GET", "runs?state=SLEEPING")[0] == 400
    assert call(served, "GET", "runs")[1] == {"runs": []}  # nothing was stored by the rejected ones


def test_updraft_ui_serves_on_loopback_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "chalicelib.cli", "ui", "--port", "0", "--workdir",
                             str(tmp_path / "wd")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, cwd=REPO)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "http://127.0.0.1:" in line, (line, proc.stderr.read() if proc.poll() is not None else "")
        url = line.split("http://", 1)[1].split()[0]
        status, page = call("http://" + url, "GET", "")
        assert status == 200 and "Updraft" in page
        assert call("http://" + url, "GET", "runs") == (200, {"runs": []})
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0


def test_only_this_machines_own_pages_can_use_the_api(served: str) -> None:
    import http.client

    port = int(served.rsplit(":", 1)[1].strip("/"))

    def raw(method: str, headers: dict[str, str], body: bytes = b"") -> tuple[int, str]:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request(method, "/runs", body=body or None, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read().decode()

    doc = json.dumps({"workflow": {"name": "x", "tasks": [{"id": "a", "command": ["true"]}]}}).encode()
    # a page of another site posting a JSON-looking form (no CORS preflight for text/plain)
    status, body = raw("POST", {"Host": f"127.0.0.1:{port}", "Origin": "http://evil.example",
                                "Content-Type": "text/plain"}, doc)
    assert status == 403 and "cross-site" in body
    status, body = raw("POST", {"Host": f"127.0.0.1:{port}", "Content-Type": "text/plain"}, doc)
    assert status == 403 and "JSON" in body
    # a DNS-rebound name pointing at 127.0.0.1
    status, body = raw("GET", {"Host": f"evil.example:{port}"})
    assert status == 403 and "127.0.0.1" in body
    # the page itself (same origin, JSON) is served
    status, _ = raw("POST", {"Host": f"localhost:{port}", "Origin": f"http://localhost:{port}",
                             "Content-Type": "application/json"}, b'{"workflow": {"name": "x", "tasks": []}}')
    assert status == 400  # reached the API: an empty workflow is invalid
    assert call(served, "GET", "runs") == (200, {"runs": []})
