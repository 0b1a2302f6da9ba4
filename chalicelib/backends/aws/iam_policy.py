"""Least-privilege IAM policies of the app's functions, from the resource names of a stage.

    python -m chalicelib.backends.aws.iam_policy dev      # rewrites .chalice/policy-dev.json

Each statement names one resource of the stage (its table and indexes, its bucket, its two
queues, its task functions, its worker service) and only the actions the code calls; the
account and region are wildcards so one file serves any account. tests/unit/test_app_policy.py
checks the committed files against this generator and against the calls the handlers make.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from chalicelib.backends.aws.config import AwsConfig

APP_NAME = "updraft"  # app_name in .chalice/config.json
CONTROL_ACTIONS = {
    "table": ["dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query", "dynamodb:PutItem",
              "dynamodb:UpdateItem", "dynamodb:BatchWriteItem", "dynamodb:ConditionCheckItem"],
    "objects": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
    "bucket": ["s3:ListBucket"],
    "events": ["sqs:SendMessage", "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility",
               "sqs:GetQueueAttributes", "sqs:GetQueueUrl"],
    "containers": ["sqs:SendMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"],
    "function": ["lambda:InvokeFunction"],
    "service": ["ecs:DescribeServices", "ecs:UpdateService"],
    "worker_tasks": ["ecs:RunTask"],  # a container attempt bigger than the service's size
    "pass_worker_roles": ["iam:PassRole"],
    "logs": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
    "xray": ["xray:PutTraceSegments", "xray:PutTelemetryRecords"],
}


def _name(value: str) -> str:
    """A resource's name in an ARN; {account}/{region} placeholders match any value."""
    name = value.rstrip("/").rsplit("/", 1)[-1]
    return name.replace("{account}", "*").replace("{region}", "*")


def _stack_prefix(service: str) -> str:
    """<app>-<stage>-infra from the worker service's name <app>-<stage>-worker."""
    name = _name(service)
    return (name[: -len("-worker")] if name.endswith("-worker") else name) + "-infra"


def control_policy(cfg: AwsConfig, function_prefix: str = "updraft-", bucket: str | None = None) -> dict[str, Any]:
    """The policy of the API, coordinator, submit and sweeper functions (and the task
    function when it shares their role). `bucket` defaults to cfg.bucket's name; the log
    groups are those of functions named `function_prefix`*."""
    table = f"arn:aws:dynamodb:*:*:table/{cfg.table}"
    bucket = f"arn:aws:s3:::{_name(bucket or cfg.bucket)}"
    queue = "arn:aws:sqs:*:*:{}"
    statements = [
        ("State", CONTROL_ACTIONS["table"], [table, f"{table}/index/*"]),
        ("Objects", CONTROL_ACTIONS["objects"], [f"{bucket}/*"]),
        ("Listing", CONTROL_ACTIONS["bucket"], [bucket]),
        ("Events", CONTROL_ACTIONS["events"], [queue.format(_name(cfg.events_queue))]),
        ("ContainerTasks", CONTROL_ACTIONS["containers"], [queue.format(_name(cfg.container_queue))]),
        ("TaskFunction", CONTROL_ACTIONS["function"],
         [f"arn:aws:lambda:*:*:function:{cfg.function_for(mb)}" for mb in cfg.sizes.function_mb]),
        ("WorkerService", CONTROL_ACTIONS["service"],
         [f"arn:aws:ecs:*:*:service/{cfg.ecs_cluster}/{cfg.ecs_service}"]),
        # RunTask of the worker's task definition (its family is the service's name in the stack)
        ("WorkerTasks", CONTROL_ACTIONS["worker_tasks"],
         [f"arn:aws:ecs:*:*:task-definition/{_name(cfg.ecs_service)}:*"]),
        # the worker's execution and task roles, which the stack (<app>-<stage>-infra) names
        ("WorkerRoles", CONTROL_ACTIONS["pass_worker_roles"],
         [f"arn:aws:iam::*:role/{_stack_prefix(cfg.ecs_service)}-Worker*"]),
        ("Logs", CONTROL_ACTIONS["logs"], [f"arn:aws:logs:*:*:log-group:/aws/lambda/{function_prefix}*"]),
        ("Traces", CONTROL_ACTIONS["xray"], ["*"]),  # X-Ray actions take no resource
    ]
    if cfg.submit_queue:
        statements.append(("SubmitQueue", ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes",
                                           "sqs:ChangeMessageVisibility"], [queue.format(_name(cfg.submit_queue))]))
    return {"Version": "2012-10-17", "Statement": [
        {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resources}
        for sid, actions, resources in statements
    ]}


def stage_env(stage: str, config_path: Path) -> dict[str, str]:
    """The environment a stage's functions get from .chalice/config.json."""
    data = json.loads(config_path.read_text())
    return {**data.get("environment_variables", {}), **data["stages"][stage].get("environment_variables", {})}


def stage_policy(stage: str, config_path: Path) -> dict[str, Any]:
    """The stage's policy, from the names in .chalice/config.json (placeholders as wildcards)."""
    cfg = AwsConfig.from_env(stage_env(stage, config_path))
    return control_policy(cfg, f"{APP_NAME}-{stage}-")


def main(argv: list[str] | None = None) -> None:
    args = argv if argv is not None else sys.argv[1:]
    chalice_dir = Path(__file__).resolve().parents[3] / ".chalice"
    for stage in args or ["dev", "prod"]:
        out = chalice_dir / f"policy-{stage}.json"
        out.write_text(json.dumps(stage_policy(stage, chalice_dir / "config.json"), indent=2) + "\n")
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
