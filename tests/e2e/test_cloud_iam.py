"""Each role's policy grants what its code calls, and nothing it does not (issue 23, item 9).

The emulated cloud records the IAM action of every request by the role that made it: the
routes as `api_handler`, the coordinator (with its event source mapping's receives and
deletes), the task function (with its destination records, which Lambda sends with the
function's role), submit, the sweeper, and the worker process. One scenario exercises them
all - a run with function, queued-container and own-size container tasks reading an input
from another bucket, its cached rerun, a cancelled and resumed run, an upload under submit/,
an expired lease and a quiet run for the sweeper - and then, for every role:

- every action it used is in its policy (else a real deploy fails where moto does not);
- every action its policy grants beyond those is in NOT_EXERCISED, with the reason the
  scenario cannot show it (else the policy grants more than the code needs).

The policies are the committed `.chalice/policy-dev-<role>.json` files for the Chalice
functions and the stack's roles (infra/stack.yaml) for the task function and the worker.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from chalicelib.backends.aws.iam_policy import ROLES, TASK_RUNNER, policy_file
from infra.names import CHALICE_CONFIG, TEMPLATE
from tests.deploy import templates
from tests.deploy.reachability import Template, actions_of
from tests.e2e.test_cloud_harness import EmulatedCloud, emulated_cloud
from tests.e2e.test_cloud_runs import upload_inputs

pytestmark = pytest.mark.slow

STAGE = "dev"
PLATFORM = ("logs:", "xray:", "ec2:", "elasticfilesystem:")  # AWS calls these for the compute, or the mount
_ESM = "its trigger's event source mapping (the harness stands in for it)"
NOT_EXERCISED: dict[str, dict[str, str]] = {
    "api_handler": {
        "s3:DeleteObject": "removing a half-written run's files when creating it fails",
    },
    "coordinator": {
        "lambda:InvokeFunction": "the harness's Lambda client records the invokes instead of sending them",
        "iam:PassRole": "checked by ECS when RunTask names the worker's roles: not a request of its own",
        "s3:GetObject": "the run's spec on a cold start (the harness's handlers share one spec cache)",
        "dynamodb:PutItem": "the edge marker of a high fan-in child (TransactWriteItems Put), over 100 parents",
        "dynamodb:BatchWriteItem": "a resume window resetting a high fan-in child's edge markers (over 100 parents)",
    },
    "submit": {
        "s3:DeleteObject": "removing a half-written run's files when creating it fails",
        "dynamodb:BatchGetItem": "the submission path shared with POST /runs (the API's role shows it)",
        "dynamodb:Query": "the submission path shared with POST /runs",
        "dynamodb:UpdateItem": "the submission path shared with POST /runs",
        "sqs:GetQueueUrl": "the events queue's URL, resolved once per process (the harness's is warm)",
        "sqs:ReceiveMessage": _ESM,
        "sqs:DeleteMessage": _ESM,
        "sqs:GetQueueAttributes": _ESM,
    },
    "sweeper": {
        "ecs:UpdateService": "only when the backlog and the service's count differ at a sweep",
        "sqs:GetQueueUrl": "the queues' URLs, resolved once per process (the harness's are warm)",
        "s3:PutObject": "a missing manifest (the coordinator wrote every one here)",
        "dynamodb:BatchGetItem": "writing a missing manifest",
        "dynamodb:GetItem": "writing a missing manifest",
        "dynamodb:UpdateItem": "finishing a run whose counters lagged behind its finished tasks",
    },
    "task": {
        "s3:AbortMultipartUpload": "an output upload in parts that fails",
        "s3:ListBucket": "a folder input (tests/e2e/test_cloud_runs.py::test_folders_are_data_in_the_cloud)",
        "dynamodb:GetItem": "a task whose producer reported output hashes (its memo key)",
        "sqs:GetQueueUrl": "the events queue's URL, resolved once per process (the harness's is warm)",
    },
    "worker": {
        "sqs:ChangeMessageVisibility": "extending or returning a message: a task longer than the visibility",
        "sqs:GetQueueAttributes": "the worker's idle check of the backlog",
        "ecs:UpdateTaskProtection": "scale-in protection, through the Fargate task's own ARN (none here)",
        "ecs:GetTaskProtection": "scale-in protection, through the Fargate task's own ARN (none here)",
        "s3:AbortMultipartUpload": "an output upload in parts that fails",
        "s3:ListBucket": "a folder input",
    },
}


def granted() -> dict[str, set[str]]:
    """role -> the actions its policy allows (platform ones aside)."""
    chalice_dir = CHALICE_CONFIG.parent
    found = {role: actions_of([json.loads((chalice_dir / policy_file(STAGE, role)).read_text())])
             for role in ROLES}
    stack = Template(templates.load(TEMPLATE), {"InputReadArns": "arn:aws:s3:::other-inputs"})
    found["task"] = stack.role_actions("TaskFunctionRole")
    found["worker"] = stack.role_actions("WorkerTaskRole")
    # the task runner's default policy (before bootstrap gives the stack's role) grants the same
    task_default = actions_of([json.loads((chalice_dir / policy_file(STAGE, TASK_RUNNER)).read_text())])
    assert {a for a in task_default if not a.startswith(PLATFORM)} == \
        {a for a in found["task"] if not a.startswith(PLATFORM)}
    return {role: {a for a in actions if not a.startswith(PLATFORM)} for role, actions in found.items()}


class Later:
    """A clock ten days ahead: every lease has run out."""

    def now(self) -> float:
        return time.time() + 10 * 24 * 3600


def run_everything(ec: EmulatedCloud, tmp_path: Path) -> None:
    s3 = ec.cloud.clients.s3
    s3.create_bucket(Bucket="other-inputs")
    s3.put_object(Bucket="other-inputs", Key="lab/x.txt", Body=b"x\n")
    data = upload_inputs(ec, {"a.txt": b"a\n"})
    wf = {"name": "iam", "inputs": [{"path": "x.txt", "source": "s3://other-inputs/lab/x.txt"}], "tasks": [
        {"id": "f", "shell": "cat a.txt x.txt > f.txt", "inputs": ["a.txt", "x.txt"], "outputs": ["f.txt"],
         "placement": "function"},
        {"id": "c", "shell": "cat f.txt > c.txt", "inputs": ["f.txt"], "outputs": ["c.txt"], "placement": "container"},
        {"id": "big", "shell": "cat f.txt > big.txt", "inputs": ["f.txt"], "outputs": ["big.txt"],
         "placement": "container", "resources": {"memory_mb": 8192}},
    ]}
    for _ in range(2):  # the second run is served from the cache
        resp = ec.post("/runs", {"workflow": wf, "data": data})
        assert resp.status_code == 202, resp.json_body
        run_id = resp.json_body["run_id"]
        assert ec.run_until_done(run_id, timeout_s=200)["state"] == "SUCCEEDED"
    for path in ("/runs", f"/runs/{run_id}", f"/runs/{run_id}/tasks", f"/runs/{run_id}/graph",
                 f"/runs/{run_id}/tasks/f"):
        assert ec.get(path).status_code == 200, path
    # cancelled, resumed, cancelled again
    slow = ec.post("/runs", {"workflow": {"name": "slow", "tasks": [
        {"id": "s", "shell": "sleep 30", "placement": "container"}]}}).json_body["run_id"]
    for step in ("cancel", "resume", "cancel"):
        for _ in range(3):
            ec.deliver_batch()
        assert ec.post(f"/runs/{slow}/{step}", {}).status_code == 202, step
    while ec.deliver_batch():
        pass
    # an upload under submit/
    ec.cloud.blobs.put_bytes("submit/up.json", json.dumps(
        {"name": "up", "tasks": [{"id": "u", "command": ["true"], "placement": "function"}]}).encode())
    event = ec.client.events.generate_s3_event(ec.cloud.config.bucket, "submit/up.json")
    event["Records"][0]["s3"]["object"]["sequencer"] = "005B039F73C627CE8B"
    with ec.server.acting_as("submit"):
        out: dict[str, Any] = ec.client.lambda_.invoke("submit", event).payload
    assert out["status"] == 202, out
    assert ec.run_until_done(out["run_id"], timeout_s=100)["state"] == "SUCCEEDED"
    # the sweeper: a function attempt that vanished (its lease expires), a quiet run re-counted
    lost = ec.post("/runs", {"workflow": {"name": "lost", "tasks": [
        {"id": "l", "command": ["true"], "placement": "function", "resources": {"timeout_s": 5}}]}}).json_body["run_id"]
    while ec.deliver_batch():
        pass
    ec.fake_lambda.pending.clear()
    clock = Later()
    ec.cloud.clock = clock.now  # the sweeper's
    ec.cloud.coordinator.clock = clock  # and the coordinator's, which checks the lease again
    assert ec.sweep()["expired"] == 1  # and every RUNNING run is quiet (stuck_run_after_s 0): re-counted
    while ec.deliver_batch():  # the lease expiry retries the task
        pass
    assert ec.cloud.store.get_task(lost, "l").attempt == 2
    ec.sweep()


def test_each_role_is_granted_what_its_code_calls_and_no_more(tmp_path: Path) -> None:
    with emulated_cloud(tmp_path, workers=1, stuck_run_after_s=0.0) as ec:
        run_everything(ec, tmp_path)
        used = {role: {a for a in actions if not a.startswith(PLATFORM)}
                for role, actions in ec.server.by_role.items()}
    allowed = granted()
    assert set(used) == {*ROLES, "task", "worker"}, sorted(used)
    missing = {role: sorted(used[role] - allowed[role]) for role in used if used[role] - allowed[role]}
    assert missing == {}, f"the code calls what the role's policy does not allow: {missing}"
    extra = {role: sorted(allowed[role] - used[role] - set(NOT_EXERCISED.get(role, {})))
             for role in allowed if allowed[role] - used[role] - set(NOT_EXERCISED.get(role, {}))}
    assert extra == {}, f"the role's policy allows what its code never calls: {extra}"
    stale = {role: sorted(set(why) - allowed[role]) for role, why in NOT_EXERCISED.items()
             if set(why) - allowed[role]}
    assert stale == {}, f"NOT_EXERCISED names actions the policy does not grant: {stale}"
