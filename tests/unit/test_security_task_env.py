"""A cloud task runs without the AWS credentials of the function or worker that runs it
(chalicelib/backends/aws/task_env.py), while that process keeps them; the local runtime still
passes the user's own environment through.

Each cloud test runs a real task that writes out its whole environment: through the task
function's handler and the worker loop in-process on moto, and through the real
`python -m workers.worker` process of the emulated cloud. The local one runs `updraft run`.
That a task cannot read them from the environment its worker or function was *started* with
(/proc/$PPID/environ) is tested in test_security_proc_environ.py, which needs two users.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from chalice.test import Client

from chalicelib.backends.aws.components import Cloud, install
from chalicelib.backends.aws.observability import obs
from chalicelib.backends.aws.task_env import CREDENTIAL_VARIABLES, cloud_task_env
from tests.contract.awskit import make_cloud, mocked_aws
from tests.e2e.cli import updraft, write_workflow
from tests.e2e.test_cloud_harness import Context, RecordingLambda, emulated_cloud
from tests.unit.test_app_handlers import Harness
from workers.worker import Worker

# Writes the task's environment as JSON to env.json
DUMP_ENV = ["python3", "-c", "import json, os; json.dump(dict(os.environ), open('env.json', 'w'))"]

# What a Lambda function, a Fargate task or an IRSA pod puts in a process's environment (fake
# values), besides the key variables FAKE_ENV (tests/contract/awskit.py) already sets.
ROLE_ENV = {
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2/credentials/0f1e2d3c-fake",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://127.0.0.1:1/creds",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN": "fake-token",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": "/nonexistent/token",
    "AWS_WEB_IDENTITY_TOKEN_FILE": "/nonexistent/web-identity",
    "AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/updraft-fake",
    "AWS_SECURITY_TOKEN": "testing",
}


@pytest.fixture
def role_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """The handler process's environment carries every kind of credential (a profile too,
    defined in a config file of its own so that the handler's boto3 still works)."""
    for name, value in ROLE_ENV.items():
        monkeypatch.setenv(name, value)
    config = tmp_path / "aws-config"
    config.write_text("[profile updraft-fake]\nregion = us-east-1\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(config))
    monkeypatch.setenv("AWS_PROFILE", "updraft-fake")
    yield


def assert_no_credentials(task_env: dict[str, str]) -> None:
    leaked = sorted(CREDENTIAL_VARIABLES & task_env.keys())
    assert leaked == [], f"the task got {leaked}"
    assert task_env["AWS_EC2_METADATA_DISABLED"] == "true"
    assert task_env.get("AWS_REGION") == "us-east-1"  # not credentials: kept


def assert_handler_keeps_them() -> None:
    held = {name for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                              *ROLE_ENV) if os.environ.get(name)}
    assert held == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", *ROLE_ENV}
    assert "AWS_EC2_METADATA_DISABLED" not in os.environ


# ---- the function -------------------------------------------------------------------------

def test_cloud_task_env_drops_every_credential_variable_and_changes_nothing_else() -> None:
    kept = {"PATH": "/bin", "HOME": "/home/u", "AWS_REGION": "eu-west-1"}
    given = {name: "x" for name in CREDENTIAL_VARIABLES} | kept | {"AWS_EC2_METADATA_DISABLED": "false"}
    before = dict(given)
    env = cloud_task_env(given)
    assert env == kept | {"AWS_EC2_METADATA_DISABLED": "true"}
    assert given == before  # a copy: the caller's mapping is untouched
    expected = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
                "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                "AWS_CONTAINER_AUTHORIZATION_TOKEN", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
                "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN", "AWS_PROFILE", "AWS_SHARED_CREDENTIALS_FILE",
                "AWS_CONFIG_FILE"}
    assert expected <= CREDENTIAL_VARIABLES


def test_cloud_task_env_reads_but_never_changes_this_process_environment(role_env: None) -> None:
    with mocked_aws():
        env = cloud_task_env()
        assert_no_credentials(env)
        assert env["PATH"] == os.environ["PATH"]
        assert_handler_keeps_them()


# ---- the task function's handler, in-process on moto ---------------------------------------

@pytest.fixture
def h(tmp_path: Path, role_env: None) -> Iterator[Harness]:
    lam = RecordingLambda()
    with mocked_aws():
        cloud, _ = make_cloud(overrides={"lambda": lam}, task_shards=2, workroot=str(tmp_path / "wr"))
        install(cloud)
        import app as app_module

        with Client(app_module.app) as client:
            yield Harness(client, cloud, lam)
        install(None)


def test_a_function_task_gets_no_credentials_while_its_handler_keeps_them(h: Harness) -> None:
    run_id = h.submit({"id": "peek", "command": DUMP_ENV, "outputs": ["env.json"], "placement": "function",
                       "env": {"MY_SETTING": "kept"}})
    h.coordinate(h.take())
    out = h.app.handler_map["task"](h.lam.pending.popleft(), Context("task"))
    assert out["event"]["kind"] == "succeeded", out
    task_env = json.loads(h.cloud.blobs.get_bytes(f"runs/{run_id}/data/env.json"))
    assert_no_credentials(task_env)
    assert task_env["MY_SETTING"] == "kept" and task_env["UPDRAFT_TASK_ID"] == "peek"
    assert_handler_keeps_them()  # the function itself still has its credentials...
    h.coordinate(h.take())  # ...and uses them: the completion goes through SQS and DynamoDB
    assert h.cloud.store.get_run(run_id).state.value == "SUCCEEDED"


def test_a_task_may_still_be_given_credentials_explicitly(h: Harness) -> None:
    run_id = h.submit({"id": "mine", "command": DUMP_ENV, "outputs": ["env.json"],
                       "env": {"AWS_PROFILE": "the-users-own"}})
    h.coordinate(h.take())
    assert h.app.handler_map["task"](h.lam.pending.popleft(), Context("task"))["event"]["kind"] == "succeeded"
    task_env = json.loads(h.cloud.blobs.get_bytes(f"runs/{run_id}/data/env.json"))
    assert task_env["AWS_PROFILE"] == "the-users-own"  # the workflow's env wins, as documented


# ---- the worker loop, in-process on moto ------------------------------------------------------

def test_a_container_task_gets_no_credentials_while_its_worker_keeps_them(tmp_path: Path, role_env: None) -> None:
    from chalicelib.engine import events as ev
    from chalicelib.engine.lifecycle import create_run
    from chalicelib.engine.spec import RunSpec
    from chalicelib.workflow.formats import native

    with mocked_aws():
        cloud: Cloud
        cloud, _ = make_cloud(task_shards=2, workroot=str(tmp_path / "wr"), worker_lease_s=3.0)
        spec = RunSpec.of(native.from_data({"name": "w", "tasks": [
            {"id": "peek", "command": DUMP_ENV, "outputs": ["env.json"], "placement": "container"}]}))
        run = create_run(spec, cloud.store, cloud.blobs, cloud.clock())
        cloud.shell.apply(cloud.coordinator.handle([ev.Start(run.run_id)]))  # -> the container queue
        worker = Worker(cloud, obs(), idle_s=1.0, lease_s=3.0, poll_wait_s=0.5)
        assert worker.run() == 0 and worker.tasks_run == 1
        sent = [json.loads(m.body) for m in cloud.events_queue.receive(10, visibility_s=30)]
        assert [e["kind"] for e in sent] == ["succeeded"]  # the worker's own calls still work
        task_env = json.loads(cloud.blobs.get_bytes(f"runs/{run.run_id}/data/env.json"))
        assert_no_credentials(task_env)
        assert_handler_keeps_them()


# ---- the real worker process (python -m workers.worker) on the emulated cloud ----------------

@pytest.mark.slow
def test_the_worker_process_gives_its_tasks_no_credentials(tmp_path: Path) -> None:
    with emulated_cloud(tmp_path, workers=1) as ec:
        resp = ec.post("/runs", {"name": "creds", "tasks": [
            {"id": "box", "command": DUMP_ENV, "outputs": ["env.json"], "placement": "container"}]})
        run_id = resp.json_body["run_id"]
        assert ec.run_until_done(run_id, timeout_s=120)["state"] == "SUCCEEDED"
        assert "AWS_SECRET_ACCESS_KEY" in ec.worker_env()  # the worker was started with credentials
        task_env = json.loads(ec.cloud.blobs.get_bytes(f"runs/{run_id}/data/env.json"))
    assert_no_credentials(task_env)


# ---- the local runtime: unchanged ---------------------------------------------------------

def test_the_local_runtime_passes_the_users_environment_through(tmp_path: Path) -> None:
    users = {"AWS_ACCESS_KEY_ID": "AKIAUSERSOWN", "AWS_SECRET_ACCESS_KEY": "users-own-secret",
             "AWS_SESSION_TOKEN": "users-own-token", "AWS_PROFILE": "users-profile", "MY_SETTING": "mine"}
    dump = [*DUMP_ENV[:2], DUMP_ENV[2].replace("'env.json'", "__import__('sys').argv[1]")]
    wf = write_workflow(tmp_path / "local.json", [
        {"id": "fn", "command": [*dump, "fn.json"], "outputs": ["fn.json"], "placement": "function"},
        {"id": "box", "command": [*dump, "box.json"], "outputs": ["box.json"], "placement": "container"}])
    proc = updraft("run", str(wf), "--json", workdir=tmp_path / "wd", env=users)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    data = tmp_path / "wd" / "blobs" / "runs" / run["run_id"] / "data"
    for out in ("fn.json", "box.json"):
        task_env = json.loads((data / out).read_text())
        assert {k: task_env.get(k) for k in users} == users, out
        assert task_env.get("AWS_EC2_METADATA_DISABLED") == os.environ.get("AWS_EC2_METADATA_DISABLED"), out
