"""Secrets given to tasks as environment variables stay out of everything Updraft writes
besides the run's spec: the logs of the API, coordinator, task function, sweeper and worker,
the metrics, the task and run records, the manifest, task logs, and every API reply.

A run on the emulated cloud whose tasks use secrets (function and container placement, one
that fails and is retried, one whose parent failed), then a scan of all of it. The stored spec
(runs/<run>/workflow.json) must hold the values - it is how a task gets them - and the scan
finds them there, which shows the scan would find them anywhere else.

Also: a task does not get the credentials of the function or worker running it (task_env.py;
the other placements and the local runtime in test_security_task_env.py).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from chalicelib.backends.aws.observability import obs
from tests.e2e.test_cloud_harness import EmulatedCloud, emulated_cloud

pytestmark = pytest.mark.slow

SECRETS = {
    "UPDRAFT_SECRET_TOKEN": "tok-8f3a9c1e5d7b",
    "DB_PASSWORD": "pw-61c0ffee42",
    "STRIPE_API_KEY": "sk-live-77aa11bb",
    "GITHUB_TOKEN": "ghp-0a1b2c3d4e5f",
    "SIGNING_SECRET": "sec-9e8d7c6b5a",
}
CHECK = 'echo -n "$UPDRAFT_SECRET_TOKEN$DB_PASSWORD$STRIPE_API_KEY$GITHUB_TOKEN$SIGNING_SECRET" | sha256sum > '
EXPECTED = hashlib.sha256("".join(SECRETS.values()).encode()).hexdigest()


class Captured(logging.Handler):
    """Every record of the `updraft` loggers, formatted by Powertools as it would be shipped."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []
        self.setFormatter(obs().logger.registered_formatter)

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def captured() -> Iterator[Captured]:
    handler = Captured()
    root = logging.getLogger("updraft")
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)


def secret_run(ec: EmulatedCloud) -> str:
    wf = {"name": "secrets", "defaults": {"env": SECRETS, "resources": {"timeout_s": 60}}, "tasks": [
        {"id": "fn", "shell": CHECK + "fn.txt", "outputs": ["fn.txt"], "placement": "function"},
        {"id": "box", "shell": CHECK + "box.txt", "outputs": ["box.txt"], "placement": "container"},
        {"id": "fails", "shell": 'test -n "$DB_PASSWORD" && echo "connection refused" >&2 && exit 3',
         "placement": "function", "retries": 1},
        {"id": "child", "command": ["true"], "after": ["fails"], "placement": "function"},
    ]}
    resp = ec.post("/runs", wf)
    assert resp.status_code == 202, resp.json_body
    return str(resp.json_body["run_id"])


def everything_stored(ec: EmulatedCloud, run_id: str) -> dict[str, str]:
    """Where a secret could end up, by name (the spec separately)."""
    cloud = ec.cloud
    found: dict[str, str] = {}
    items = cloud.clients.dynamodb.scan(TableName=cloud.config.table)["Items"]
    found["dynamodb items"] = json.dumps(items)
    for key in cloud.blobs.list(""):
        found[f"s3 {key}"] = cloud.blobs.get_bytes(key).decode("utf-8", "replace")
    replies = [f"/runs/{run_id}", f"/runs/{run_id}/tasks", f"/runs/{run_id}/graph", "/runs",
               *(f"/runs/{run_id}/tasks/{t}" for t in ("fn", "box", "fails", "child"))]
    for path in replies:
        found[f"GET {path}"] = json.dumps(ec.get(path).json_body)
    for name, url in (("events dlq", ec.made.events_dlq_url), ("container dlq", ec.made.container_dlq_url)):
        msgs = cloud.clients.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        found[name] = json.dumps(msgs)
    found["worker log"] = ec.worker_log()
    return found


def test_secrets_in_task_env_appear_nowhere_but_the_spec(tmp_path: Path, captured: Captured,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    with emulated_cloud(tmp_path) as ec:
        run_id = secret_run(ec)
        final = ec.run_until_done(run_id, timeout_s=120)
        assert final["counts"] == {"SUCCEEDED": 2, "FAILED": 1, "UPSTREAM_FAILED": 1}, final
        for out in ("fn.txt", "box.txt"):  # the tasks did get every secret
            assert ec.cloud.blobs.get_bytes(f"runs/{run_id}/data/{out}").split()[0].decode() == EXPECTED
        stored = everything_stored(ec, run_id)
    printed = capsys.readouterr()
    stored["function logs"] = "\n".join(captured.lines)
    stored["stdout (logs, metrics)"] = printed.out
    stored["stderr"] = printed.err
    spec = stored.pop(f"s3 runs/{run_id}/workflow.json")
    assert all(value in spec for value in SECRETS.values())  # the scan sees them where they are
    assert len(captured.lines) >= 5 and "task failed: NONZERO_EXIT" in stored["function logs"]
    assert "connection refused" in stored[f"GET /runs/{run_id}/tasks/fails"]  # logs are kept...
    leaks = {(where, name) for where, text in stored.items() for name, value in SECRETS.items() if value in text}
    assert leaks == set(), f"secrets found outside the spec: {sorted(leaks)}"  # ...secrets are not


def test_a_task_does_not_get_the_credentials_of_its_function(tmp_path: Path) -> None:
    creds = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"]
    dump = " ".join(f'"${{{name}:-unset}}"' for name in creds)
    with emulated_cloud(tmp_path, workers=0) as ec:
        resp = ec.post("/runs", {"name": "creds", "tasks": [
            {"id": "peek", "shell": f"printf '%s\\n' {dump} > seen.txt", "outputs": ["seen.txt"],
             "placement": "function"}]})
        run_id = resp.json_body["run_id"]
        assert ec.run_until_done(run_id, timeout_s=60)["state"] == "SUCCEEDED"
        seen = ec.cloud.blobs.get_bytes(f"runs/{run_id}/data/seen.txt").decode().split()
    assert seen == ["unset"] * len(creds), seen
