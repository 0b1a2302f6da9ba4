"""Least-privilege IAM policies of the app's functions, one per role, from a stage's names.

    python -m chalicelib.backends.aws.iam_policy dev      # rewrites .chalice/policy-dev*.json

Each Chalice-managed function has a role of its own (Chalice names it <app>-<stage>-<function>
when autogen_policy is off) with its own policy file, `.chalice/policy-<stage>-<function>.json`
(the stage's lambda_functions.<function>.iam_policy_file): the API, the coordinator, submit and
the sweeper. `.chalice/policy-<stage>.json`, the stage's default, is the task runner's policy:
what a task function needs until bootstrap gives it the stack's TaskFunctionRole (which grants
the same, infra/stack.yaml DataPlanePolicy).

Each statement names one resource of the stage and only the actions that role's code calls
(ROLE_ACTIONS; tests/e2e/test_cloud_iam.py records the calls each handler really makes on the
emulated cloud and compares them with these, both ways). Names are exact: the bucket's
`{account}` and `{region}` placeholders become the IAM policy variables
${aws:PrincipalAccount} and ${aws:RequestedRegion}, so `updraft-dev`'s bucket pattern cannot
match the bucket of a stage `dev-old` (updraft-dev-old-<account>-<region>); log groups are
named whole. Workflow inputs in other buckets (UPDRAFT_INPUT_BUCKETS: `bucket` or
`bucket/prefix`, comma-separated) are readable by the roles that check inputs at submit and by
the task runners.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from chalicelib.backends.aws.config import AwsConfig

APP_NAME = "updraft"  # app_name in .chalice/config.json
ROLES = ("api_handler", "coordinator", "submit", "sweeper")  # the functions with a policy file each
TASK_RUNNER = "task"  # the stage default: task functions without the stack's role

_TABLE_READ = ["dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query"]
# What each role's code calls, per resource of the stage (None: the resource is not used).
ROLE_ACTIONS: dict[str, dict[str, list[str]]] = {
    # routes: create runs (their task items in batches), read, cancel, resume; inputs checked
    "api_handler": {
        "table": [*_TABLE_READ, "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:BatchWriteItem"],
        "objects": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],  # delete: a half-written run's files
        "bucket": ["s3:ListBucket"],
        "events": ["sqs:SendMessage", "sqs:GetQueueUrl"],
        "inputs": ["s3:GetObject", "s3:ListBucket"],
    },
    # event batches: state transitions, launches (async Invoke, container queue, the service,
    # RunTask), manifests; its trigger receives and deletes (the event source mapping's needs)
    "coordinator": {
        # PutItem: the edge marker a high fan-in child's count writes in its transaction;
        # BatchWriteItem: a resume window resetting a high fan-in child rewrites its edge markers
        "table": [*_TABLE_READ, "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:BatchWriteItem"],
        "objects": ["s3:GetObject", "s3:PutObject"],
        "events": ["sqs:SendMessage", "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes",
                   "sqs:GetQueueUrl"],
        "containers": ["sqs:SendMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"],
        "function": ["lambda:InvokeFunction"],
        "service": ["ecs:DescribeServices", "ecs:UpdateService"],
        "worker_tasks": ["ecs:RunTask"],  # a container attempt bigger than the service's size
        "pass_worker_roles": ["iam:PassRole"],  # RunTask passes the worker's roles
    },
    # an upload under submit/: the same submission as POST /runs; its trigger's queue
    "submit": {
        "table": [*_TABLE_READ, "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:BatchWriteItem"],
        "objects": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
        "bucket": ["s3:ListBucket"],
        "events": ["sqs:SendMessage", "sqs:GetQueueUrl"],
        "submit_queue": ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"],
        "inputs": ["s3:GetObject", "s3:ListBucket"],
    },
    # expired leases, quiet runs (recount, finish), missing manifests, worker scaling
    "sweeper": {
        "table": [*_TABLE_READ, "dynamodb:UpdateItem"],
        "objects": ["s3:GetObject", "s3:PutObject"],
        "events": ["sqs:SendMessage", "sqs:GetQueueUrl"],
        "containers": ["sqs:GetQueueAttributes", "sqs:GetQueueUrl"],
        "service": ["ecs:DescribeServices", "ecs:UpdateService"],
    },
    # claim, renew, read the producers' results; stage in and out; report
    TASK_RUNNER: {
        "table": ["dynamodb:GetItem", "dynamodb:UpdateItem"],
        "objects": ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"],
        "bucket": ["s3:ListBucket"],  # a folder input is listed
        "events": ["sqs:SendMessage", "sqs:GetQueueUrl"],
        "inputs": ["s3:GetObject", "s3:ListBucket"],
    },
}
LOGS = ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"]
XRAY = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]


def _name(value: str) -> str:
    """A resource's name in an ARN; {account}/{region} placeholders become the policy
    variables of the caller's account and the request's region: exact, never a wildcard."""
    name = value.rstrip("/").rsplit("/", 1)[-1]
    return name.replace("{account}", "${aws:PrincipalAccount}").replace("{region}", "${aws:RequestedRegion}")


def _stack_prefix(service: str) -> str:
    """<app>-<stage>-infra from the worker service's name <app>-<stage>-worker."""
    name = _name(service)
    return (name[: -len("-worker")] if name.endswith("-worker") else name) + "-infra"


def input_locations(cfg: AwsConfig) -> list[tuple[str, str]]:
    """(bucket, key prefix) of each UPDRAFT_INPUT_BUCKETS entry ("" prefix: the whole bucket)."""
    found = []
    for entry in cfg.input_buckets.split(","):
        entry = entry.strip().removeprefix("s3://").strip("/")
        if entry:
            bucket, _, prefix = entry.partition("/")
            found.append((bucket, prefix + "/" if prefix else ""))
    return found


def input_arns(cfg: AwsConfig) -> list[str]:
    """The ARNs that grant reading the input locations (bucket for listing, objects under the prefix)."""
    arns: list[str] = []
    for bucket, prefix in input_locations(cfg):
        arns += [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/{prefix}*"]
    return list(dict.fromkeys(arns))


def _resources(cfg: AwsConfig, bucket: str) -> dict[str, list[str]]:
    table = f"arn:aws:dynamodb:*:*:table/{cfg.table}"
    queue = "arn:aws:sqs:*:*:{}"
    found = {
        "table": [table, f"{table}/index/*"],
        "objects": [f"{bucket}/*"],
        "bucket": [bucket],
        "events": [queue.format(_name(cfg.events_queue))],
        "containers": [queue.format(_name(cfg.container_queue))],
        "function": [f"arn:aws:lambda:*:*:function:{cfg.function_for(mb)}" for mb in cfg.sizes.function_mb],
        "service": [f"arn:aws:ecs:*:*:service/{cfg.ecs_cluster}/{cfg.ecs_service}"],
        # RunTask of the worker's task definition (its family is the service's name in the stack)
        "worker_tasks": [f"arn:aws:ecs:*:*:task-definition/{_name(cfg.ecs_service)}:*"],
        # the worker's execution and task roles, which the stack (<app>-<stage>-infra) names
        "pass_worker_roles": [f"arn:aws:iam::*:role/{_stack_prefix(cfg.ecs_service)}-Worker*"],
    }
    if cfg.submit_queue:
        found["submit_queue"] = [queue.format(_name(cfg.submit_queue))]
    return found


SIDS = {"table": "State", "objects": "Objects", "bucket": "Listing", "events": "Events",
        "containers": "ContainerTasks", "function": "TaskFunction", "service": "WorkerService",
        "worker_tasks": "WorkerTasks", "pass_worker_roles": "WorkerRoles", "submit_queue": "SubmitQueue"}


def role_policy(cfg: AwsConfig, role: str, function_prefix: str = "updraft-",
                bucket: str | None = None) -> dict[str, Any]:
    """The policy of one role (ROLES, or TASK_RUNNER). `bucket` defaults to cfg.bucket's name;
    its log groups are those of the functions named `function_prefix`<role> (the task runner:
    every task function's)."""
    arn = f"arn:aws:s3:::{_name(bucket or cfg.bucket)}"
    resources = _resources(cfg, arn)
    statements: list[tuple[str, list[str], list[str]]] = []
    listings: list[dict[str, Any]] = []
    for part, actions in ROLE_ACTIONS[role].items():
        if part == "inputs":
            listings = _input_statements(cfg, actions)
        elif part in resources:
            statements.append((SIDS[part], actions, resources[part]))
    functions = ([cfg.function_for(mb).removeprefix(function_prefix) for mb in cfg.sizes.function_mb]
                 if role == TASK_RUNNER else [role])
    groups = [f"arn:aws:logs:*:*:log-group:/aws/lambda/{function_prefix}{fn}" for fn in functions]
    statements.append(("Logs", LOGS, [g + suffix for g in groups for suffix in ("", ":*")]))
    statements.append(("Traces", XRAY, ["*"]))  # X-Ray actions take no resource
    return {"Version": "2012-10-17", "Statement": [
        {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resources}
        for sid, actions, resources in statements
    ] + listings}


def _input_statements(cfg: AwsConfig, actions: list[str]) -> list[dict[str, Any]]:
    """Reading each input location: its objects under the prefix; listing its bucket, limited
    to the prefix by the s3:prefix condition when there is one."""
    found: list[dict[str, Any]] = []
    for i, (bucket, prefix) in enumerate(input_locations(cfg), start=1):
        if "s3:GetObject" in actions:
            found.append({"Sid": f"Inputs{i}", "Effect": "Allow", "Action": ["s3:GetObject"],
                          "Resource": [f"arn:aws:s3:::{bucket}/{prefix}*"]})
        if "s3:ListBucket" in actions:
            listing: dict[str, Any] = {"Sid": f"Inputs{i}Listing", "Effect": "Allow", "Action": ["s3:ListBucket"],
                                       "Resource": [f"arn:aws:s3:::{bucket}"]}
            if prefix:
                listing["Condition"] = {"StringLike": {"s3:prefix": [f"{prefix}*"]}}
            found.append(listing)
    return found


def stage_env(stage: str, config_path: Path) -> dict[str, str]:
    """The environment a stage's functions get from .chalice/config.json."""
    data = json.loads(config_path.read_text())
    return {**data.get("environment_variables", {}), **data["stages"][stage].get("environment_variables", {})}


def policy_file(stage: str, role: str) -> str:
    """The file name of a role's policy in .chalice/ (the task runner's is the stage default)."""
    return f"policy-{stage}.json" if role == TASK_RUNNER else f"policy-{stage}-{role}.json"


def stage_policies(stage: str, config_path: Path) -> dict[str, dict[str, Any]]:
    """File name -> policy, for every role of the stage, from the names in .chalice/config.json."""
    cfg = AwsConfig.from_env(stage_env(stage, config_path))
    return {policy_file(stage, role): role_policy(cfg, role, f"{APP_NAME}-{stage}-")
            for role in (*ROLES, TASK_RUNNER)}


def main(argv: list[str] | None = None) -> None:
    args = argv if argv is not None else sys.argv[1:]
    chalice_dir = Path(__file__).resolve().parents[3] / ".chalice"
    for stage in args or ["dev", "prod"]:
        for name, policy in stage_policies(stage, chalice_dir / "config.json").items():
            out = chalice_dir / name
            out.write_text(json.dumps(policy, indent=2) + "\n")
            print(f"wrote {out}")


if __name__ == "__main__":
    main()
