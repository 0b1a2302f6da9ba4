"""After `chalice deploy`: what Chalice has no setting for, set on what it made.

- the task function: the EFS cache mounted at MOUNT_PATH, /tmp sized to what a
  function-placed task may declare (docs/deploy.md says why this is a post-deploy step), and
  the variable that points the function at the cache (UPDRAFT_CACHE_ROOT) - all three in ONE
  UpdateFunctionConfiguration, so the function never sees a cache root without its mount;
- the coordinator's SQS trigger: ReportBatchItemFailures, so that the events of a batch the
  coordinator reports as failed are redelivered instead of deleted with the batch
  (docs/aws.md, "Deploying"); only then the coordinator's UPDRAFT_PARTIAL_BATCH=1. Until
  then (the Chalice config says 0) any failure fails the whole batch, which SQS redelivers.

Chalice never sends FileSystemConfigs, EphemeralStorage or FunctionResponseTypes on later
deploys, so those stay; it does send the environment, which puts both functions back in their
safe state (no cache root; whole-batch failures) until this step runs again. It is idempotent
and runs after every deploy.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from chalicelib.backends.aws.wiring import TASK_EVENT_AGE_S
from chalicelib.workflow.limits import FUNCTION
from infra import settings
from infra.cfn import error_code
from infra.errors import DeployError
from infra.names import APP_NAME, COORDINATOR_FUNCTION

EPHEMERAL_MB = FUNCTION.max_disk_mb  # the /tmp a function-placed task may declare (validation)


def wanted_config(outputs: Mapping[str, str], ephemeral_mb: int = EPHEMERAL_MB,
                  environment: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The task function's mount, /tmp and environment: `environment` (its current variables)
    with the cache root added when it mounts EFS, removed when it does not."""
    mounts = ([{"Arn": outputs["AccessPointArn"], "LocalMountPath": outputs["MountPath"]}]
              if outputs.get("TaskFunctionInVpc") == "true" else [])
    env = {k: v for k, v in (environment or {}).items() if k not in settings.task_environment_keys()}
    if mounts:
        env.update(settings.task_environment(outputs))
    return {"FileSystemConfigs": mounts, "EphemeralStorage": {"Size": ephemeral_mb},
            "Environment": {"Variables": env}}


def _environment(config: Mapping[str, Any]) -> dict[str, str]:
    return dict(config.get("Environment", {}).get("Variables") or {})


def _wait_settled(client: Any, name: str, sleep: Callable[[float], None], timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        current: dict[str, Any] = client.get_function_configuration(FunctionName=name)
        status = current.get("LastUpdateStatus", "Successful")
        if current.get("State", "Active") != "Pending" and status != "InProgress":
            if status == "Failed":
                raise DeployError(f"{name}: its last update failed: {current.get('LastUpdateStatusReason')}")
            return current
        if time.monotonic() > deadline:
            raise DeployError(f"{name}: still updating after {timeout_s:.0f} s")
        sleep(3.0)


def configure_task_functions(session: Any, outputs: Mapping[str, str], sizes: Mapping[str, int],
                             say: Callable[[str], None] = print, sleep: Callable[[float], None] = time.sleep,
                             timeout_s: float = 600.0) -> bool:
    """Every task function of the stage (`sizes`: app.py's function name -> memory, from
    chalice_config.task_functions): its EFS mount and /tmp; for task-<mb>, also what the stack
    sets on `task` - its log group (with the stack's retention) and its async destinations (no
    Lambda retries; success and failure records to the events queue). Returns whether anything
    changed."""
    base = outputs["TaskFunctionName"]
    changed = False
    for function in sizes:
        suffix = function[len("task"):]  # "" or "-<mb>"
        if suffix:
            changed |= _sized_extras(session, outputs, base + suffix, say)
        changed |= configure_task_function(session, outputs, say, sleep=sleep, timeout_s=timeout_s,
                                           name=base + suffix)
    return changed


def _sized_extras(session: Any, outputs: Mapping[str, str], name: str, say: Callable[[str], None]) -> bool:
    logs = session.client("logs")
    group = f"/aws/lambda/{name}"
    changed = False
    try:
        logs.create_log_group(logGroupName=group)
        changed = True
    except Exception as exc:
        if error_code(exc) != "ResourceAlreadyExistsException":
            raise
    if outputs.get("LogRetentionDays"):
        logs.put_retention_policy(logGroupName=group, retentionInDays=int(outputs["LogRetentionDays"]))
    queue_arn = session.client("sqs").get_queue_attributes(
        QueueUrl=outputs["EventsQueueUrl"], AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    want = {"MaximumRetryAttempts": 0, "MaximumEventAgeInSeconds": ASYNC_EVENT_AGE_S,
            "DestinationConfig": {"OnSuccess": {"Destination": queue_arn}, "OnFailure": {"Destination": queue_arn}}}
    client = session.client("lambda")
    try:
        have = client.get_function_event_invoke_config(FunctionName=name)
    except Exception as exc:
        if error_code(exc) != "ResourceNotFoundException":
            raise
        have = {}
    if any(have.get(k) != v for k, v in want.items()):
        client.put_function_event_invoke_config(FunctionName=name, **want)
        say(f"{name}: no Lambda retries; outcomes to the events queue")
        changed = True
    return changed


ASYNC_EVENT_AGE_S = TASK_EVENT_AGE_S  # as the stack's TaskFunctionInvokeConfig (tests check both)


def configure_task_function(session: Any, outputs: Mapping[str, str], say: Callable[[str], None] = print,
              ephemeral_mb: int = EPHEMERAL_MB, sleep: Callable[[float], None] = time.sleep,
              timeout_s: float = 600.0, name: str | None = None) -> bool:
    """Set the task function's EFS mount and /tmp size; returns whether anything changed."""
    client = session.client("lambda")
    name = name or outputs["TaskFunctionName"]
    try:
        current = _wait_settled(client, name, sleep, timeout_s)
    except Exception as exc:
        if error_code(exc) == "ResourceNotFoundException":
            raise DeployError(f"{name} does not exist: run `chalice deploy` (scripts/deploy does) first") from None
        raise
    want = wanted_config(outputs, ephemeral_mb, _environment(current))
    if want["FileSystemConfigs"]:
        subnets = set(current.get("VpcConfig", {}).get("SubnetIds") or [])
        if subnets != set(outputs["PrivateSubnetIds"].split(",")):
            raise DeployError(f"{name} is not in the stack's private subnets, so it cannot mount EFS; run "
                              "scripts/bootstrap, then `chalice deploy` again (scripts/deploy does both)")
    have = {"FileSystemConfigs": current.get("FileSystemConfigs", []),
            "EphemeralStorage": current.get("EphemeralStorage", {"Size": 512}),
            "Environment": {"Variables": _environment(current)}}
    if have == want:
        say(f"{name}: EFS mount, its cache root and /tmp already set")
        return False
    client.update_function_configuration(FunctionName=name, **want)  # mount and cache root at once
    _wait_settled(client, name, sleep, timeout_s)
    mounted = ", ".join(f"{m['LocalMountPath']} <- {m['Arn']}" for m in want["FileSystemConfigs"]) or "no EFS"
    say(f"{name}: {mounted}; /tmp {ephemeral_mb} MB")
    return True


PARTIAL_BATCHES = "ReportBatchItemFailures"


def enable_partial_batches(session: Any, stage: str, outputs: Mapping[str, str],
                           say: Callable[[str], None] = print, sleep: Callable[[float], None] = time.sleep,
                           timeout_s: float = 600.0) -> bool:
    """ReportBatchItemFailures on the coordinator's events-queue trigger, then the coordinator's
    partial batches (in that order: each state in between is safe); returns whether it changed."""
    client = session.client("lambda")
    name = f"{APP_NAME}-{stage}-{COORDINATOR_FUNCTION}"
    queue_arn = session.client("sqs").get_queue_attributes(
        QueueUrl=outputs["EventsQueueUrl"], AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    mappings = [m for m in client.list_event_source_mappings(FunctionName=name).get("EventSourceMappings", [])
                if m.get("EventSourceArn") == queue_arn]
    if not mappings:
        raise DeployError(f"{name} has no trigger on {queue_arn}: did `chalice deploy` finish?")
    changed = False
    for mapping in mappings:
        if PARTIAL_BATCHES in (mapping.get("FunctionResponseTypes") or []):
            continue
        client.update_event_source_mapping(UUID=mapping["UUID"], FunctionResponseTypes=[PARTIAL_BATCHES])
        changed = True
    say(f"{name}: its events-queue trigger {'now reports' if changed else 'reports'} partial batch failures")
    current = _wait_settled(client, name, sleep, timeout_s)
    env = _environment(current)
    if any(env.get(k) != v for k, v in settings.COORDINATOR_AFTER_POSTDEPLOY.items()):
        env.update(settings.COORDINATOR_AFTER_POSTDEPLOY)
        client.update_function_configuration(FunctionName=name, Environment={"Variables": env})
        _wait_settled(client, name, sleep, timeout_s)
        say(f"{name}: reports failed events one by one ({', '.join(settings.COORDINATOR_AFTER_POSTDEPLOY)})")
        changed = True
    return changed
