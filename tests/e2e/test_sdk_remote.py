"""updraft.Client against the real Chalice app, in-process on the emulated cloud (moto).

An adapter mounted on the client's requests session plays API Gateway with IAM auth: it
recomputes each request's SigV4 signature from the caller's credentials (refusing a missing
or wrong one with 403, as API Gateway does), strips the stage, and hands the request to the app
through chalice.test.Client. The coordinator and the task function run in the same process
(tests/e2e/test_cloud_harness.py): a run really goes from submitted to SUCCEEDED.
"""

from __future__ import annotations

import hmac
import io
import json
import re
from collections.abc import Iterator
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from requests.adapters import BaseAdapter

from chalicelib.errors import ConfigError, NotFoundError, StateConflictError, WorkflowError
from tests.e2e.test_cloud_harness import EmulatedCloud, emulated_cloud
from updraft import Client
from updraft.remote import RemoteTransport

URL = "https://a1b2c3d4e5.execute-api.us-east-1.amazonaws.com/api"
AUTH_RE = re.compile(r"^AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([a-z0-9-]+)/execute-api/aws4_request, "
                     r"SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})$")


def verify_sigv4(request: requests.PreparedRequest, region: str) -> str | None:
    """None if the request is signed right for the caller's credentials, else why not."""
    import botocore.session
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest

    match = AUTH_RE.match(request.headers.get("Authorization", ""))
    if not match:
        return "Missing Authentication Token"
    key_id, _date, scope_region, signed, signature = match.groups()
    creds = botocore.session.get_session().get_credentials()
    if key_id != creds.access_key or scope_region != region:
        return "The security token included in the request is invalid"
    names = signed.split(";")
    headers = {name: request.headers[name] for name in names if name != "host" and name in request.headers}
    aws = AWSRequest(method=request.method, url=request.url, data=request.body or b"", headers=headers)
    aws.context["timestamp"] = request.headers["X-Amz-Date"]
    signer = SigV4Auth(creds, "execute-api", region)
    if signer.signed_headers(signer.headers_to_sign(aws)) != signed:
        return "signed headers do not match the request"
    expected = signer.signature(signer.string_to_sign(aws, signer.canonical_request(aws)), aws)
    if not hmac.compare_digest(expected, signature):
        return "The request signature we calculated does not match the signature you provided"
    return None


class ApiGateway(BaseAdapter):
    """requests -> (SigV4 check) -> the Chalice app in-process."""

    def __init__(self, ec: EmulatedCloud, region: str = "us-east-1") -> None:
        super().__init__()
        self.ec = ec
        self.region = region
        self.seen: list[tuple[str, str]] = []

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        url = urlsplit(request.url or "")
        path = url.path[len("/api"):] or "/"
        self.seen.append((request.method or "", path))
        refused = verify_sigv4(request, self.region)
        if refused is not None:
            return _response(request, 403, {"message": refused}, {"Content-Type": "application/json"})
        target = path + (f"?{url.query}" if url.query else "")
        body = request.body if isinstance(request.body, bytes) else (request.body or "").encode()
        reply = self.ec.client.http.request(request.method or "GET", target, headers=dict(request.headers), body=body)
        return _response(request, reply.status_code, reply.body, dict(reply.headers))

    def close(self) -> None:
        pass


def _response(request: requests.PreparedRequest, status: int, body: Any, headers: dict[str, str]) -> requests.Response:
    resp = requests.Response()
    resp.status_code = status
    resp.headers.update(headers)
    data = _encode(body)
    resp.raw = io.BytesIO(data)
    resp.request = request
    resp.url = request.url or ""
    return resp


def _encode(body: Any) -> bytes:
    if isinstance(body, bytes):
        return body
    return body.encode() if isinstance(body, str) else json.dumps(body).encode()


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[tuple[EmulatedCloud, ApiGateway]]:
    with emulated_cloud(tmp_path, workers=0) as ec:
        yield ec, ApiGateway(ec)


def client_for(gateway: ApiGateway, auth: str = "iam") -> Client:
    http = requests.Session()
    http.mount("https://", gateway)
    return Client(transport=RemoteTransport(URL, auth=auth, http=http))


def drive(ec: EmulatedCloud, rounds: int = 200) -> None:
    """Deliver pending task invocations and coordinator batches until nothing is left."""
    for _ in range(rounds):
        busy = ec.deliver_invocation()
        busy = ec.deliver_batch() or busy
        if not busy:
            return


def workflow() -> dict[str, Any]:
    return {"name": "remote", "tasks": [
        {"id": "double", "shell": "echo doubling; echo $(( $(cat n.txt) * 2 )) > d.txt", "inputs": ["n.txt"],
         "outputs": ["d.txt"], "type": "double"},
        {"id": "show", "command": ["cat", "d.txt"], "inputs": ["d.txt"], "type": "show"}]}


def test_submit_wait_tasks_graph_and_log_through_signed_requests(cloud: tuple[EmulatedCloud, ApiGateway]) -> None:
    ec, gateway = cloud
    client = client_for(gateway)
    ec.cloud.blobs.put_bytes("inputs/n.txt", b"21\n")
    data = f"s3://{ec.cloud.config.bucket}/inputs/"
    run = client.submit(workflow(), data=data)
    assert run["state"] == "RUNNING" and run["task_count"] == 2
    final = client.wait(run["run_id"], timeout=120, poll_s=0, on_update=lambda _run: drive(ec))
    assert final["state"] == "SUCCEEDED" and final["counts"] == {"SUCCEEDED": 2}
    assert ec.cloud.blobs.get_bytes(f"runs/{run['run_id']}/data/d.txt").strip() == b"42"
    assert {t["id"]: t["state"] for t in client.tasks(run["run_id"])} == {"double": "SUCCEEDED", "show": "SUCCEEDED"}
    graph = client.graph(run["run_id"])
    assert {n["id"]: n["parents"] for n in graph["tasks"]} == {"double": [], "show": ["double"]}
    assert "doubling" in (client.task(run["run_id"], "double")["log_tail"] or "")
    assert run["run_id"] in [r["run_id"] for r in client.runs()]
    with pytest.raises(StateConflictError, match="already SUCCEEDED"):
        client.cancel(run["run_id"])
    with pytest.raises(NotFoundError):
        client.get("20990101-000000-00000000")
    with pytest.raises(WorkflowError) as bad:
        client.submit({"name": "bad", "tasks": [{"id": "x", "command": ["true"], "inputs": ["../up"]}]})
    assert bad.value.problems and bad.value.problems[0].task_id == "x"
    with pytest.raises(ConfigError, match="s3://"):
        client.submit(workflow(), data="/a/local/folder")
    # every request was signed and checked; the page itself is served at GET /
    assert ("POST", "/runs") in gateway.seen and ("GET", f"/runs/{run['run_id']}/graph") in gateway.seen
    page = ec.get("/")
    assert page.status_code == 200 and "<title>Updraft</title>" in page.body.decode()


def test_the_dashboard_proxy_signs_what_the_browser_cannot(cloud: tuple[EmulatedCloud, ApiGateway]) -> None:
    """`updraft ui --api URL`: the page on 127.0.0.1, each API call forwarded with SigV4."""
    import urllib.request

    from chalicelib.ui.server import serve_in_thread

    ec, gateway = cloud
    ec.cloud.blobs.put_bytes("inputs/n.txt", b"1\n")
    run_id = client_for(gateway).submit(workflow(), data=f"s3://{ec.cloud.config.bucket}/inputs/")["run_id"]
    http = requests.Session()
    http.mount("https://", gateway)
    server, base = serve_in_thread(RemoteTransport(URL, http=http), 0, URL)
    try:
        with urllib.request.urlopen(base + f"runs/{run_id}/graph", timeout=30) as resp:  # 127.0.0.1 only
            graph = json.loads(resp.read())
            assert resp.headers["X-Updraft-Source"] == URL
        assert [n["id"] for n in graph["tasks"]] == ["double", "show"]
        with urllib.request.urlopen(base, timeout=30) as resp:
            assert "<title>Updraft</title>" in resp.read().decode()
    finally:
        server.shutdown()
        server.server_close()
    assert ("GET", f"/runs/{run_id}/graph") in gateway.seen  # it reached the app, signed and checked


def test_cancel_then_resume_a_deployed_run(cloud: tuple[EmulatedCloud, ApiGateway]) -> None:
    ec, gateway = cloud
    client = client_for(gateway)
    ec.cloud.blobs.put_bytes("inputs/n.txt", b"5\n")
    run_id = client.submit(workflow(), data=f"s3://{ec.cloud.config.bucket}/inputs/")["run_id"]
    assert client.cancel(run_id)["state"] == "CANCELLING"
    final = client.wait(run_id, timeout=60, poll_s=0, on_update=lambda _run: drive(ec))
    assert final["state"] == "CANCELLED"
    assert client.resume(run_id)["state"] == "RUNNING"
    final = client.wait(run_id, timeout=120, poll_s=0, on_update=lambda _run: drive(ec))
    assert final["state"] == "SUCCEEDED"


def test_unsigned_and_badly_signed_requests_are_refused(cloud: tuple[EmulatedCloud, ApiGateway]) -> None:
    import botocore.session

    _ec, gateway = cloud
    with pytest.raises(ConfigError, match=r"HTTP 403.*Missing Authentication Token"):
        client_for(gateway, auth="none").runs()
    real = botocore.session.get_session().get_credentials()
    signed_wrong = client_for(gateway)
    transport = signed_wrong.transport
    assert isinstance(transport, RemoteTransport)
    transport._session = _FixedCredentials(real.access_key, "not-the-secret", real.token)
    with pytest.raises(ConfigError, match="signature we calculated does not match"):
        signed_wrong.runs()
    assert isinstance(client_for(gateway).runs(), list)  # the same request, signed right, goes through


class _FixedCredentials:
    """A botocore-session stand-in whose credentials are wrong on purpose."""

    def __init__(self, key: str, secret: str, token: str | None) -> None:
        from botocore.credentials import Credentials

        self.creds = Credentials(key, secret, token)

    def get_credentials(self) -> Any:
        return self.creds

    def get_config_variable(self, name: str) -> Any:
        return None


def test_cli_submit_watch_and_report_against_the_api(cloud: tuple[EmulatedCloud, ApiGateway], tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from chalicelib.cli import main

    ec, gateway = cloud
    http = requests.Session()
    http.mount("https://", gateway)
    monkeypatch.setattr(RemoteTransport, "http", property(lambda self: http))
    ec.cloud.blobs.put_bytes("inputs/n.txt", b"4\n")
    wf = tmp_path / "wf.json"
    wf.write_text(json.dumps(workflow()))
    out = io.StringIO()
    with redirect_stdout(out):
        code = main(["submit", str(wf), "--api", URL, "--data", f"s3://{ec.cloud.config.bucket}/inputs/", "--json"])
    assert code == 0, out.getvalue()
    run_id = json.loads(out.getvalue())["run_id"]
    with redirect_stdout(io.StringIO()):
        assert main(["watch", run_id, "--api", URL, "--timeout", "0.1"]) == 1  # still RUNNING: gives up, says so
    drive(ec)
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["watch", run_id, "--api", URL, "--json"]) == 0
    assert json.loads(out.getvalue())["state"] == "SUCCEEDED"
    with redirect_stdout(io.StringIO()):
        assert main(["report", run_id, "--api", URL, "--out", str(tmp_path / "rep")]) == 0
    html = (tmp_path / "rep" / "report.html").read_text()
    assert run_id in html and "<td>double</td>" in html
