"""After `chalice deploy`: what Chalice has no setting for, set on what it made.

- the task function: the EFS cache mounted at MOUNT_PATH, and /tmp sized to what a
  function-placed task may declare (docs/deploy.md says why this is a post-deploy step);
- the coordinator's SQS trigger: ReportBatchItemFailures, so that the events of a batch the
  coordinator reports as failed are redelivered instead of deleted with the batch
  (docs/aws.md, "Deploying").

Chalice never sends these fields on later deploys, so they stay; this step is idempotent
anyway and runs after every deploy.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from chalicelib.workflow.limits import FUNCTION
from infra.cfn import error_code
from infra.errors import DeployError
from infra.names import APP_NAME, COORDINATOR_FUNCTION

EPHEMERAL_MB = FUNCTION.max_disk_mb  # the /tmp a function-placed task may declare (validation)


def wanted_config(outputs: Mapping[str, str], ephemeral_mb: int = EPHEMERAL_MB) -> dict[str, Any]:
    mounts = ([{"Arn": outputs["AccessPointArn"], "LocalMountPath": outputs["MountPath"]}]
              if outputs.get("TaskFunctionInVpc") == "true" else [])
    return {"FileSystemConfigs": mounts, "EphemeralStorage": {"Size": ephemeral_mb}}


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


def configure_task_function(session: Any, outputs: Mapping[str, str], say: Callable[[str], None] = print,
              ephemeral_mb: int = EPHEMERAL_MB, sleep: Callable[[float], None] = time.sleep,
              timeout_s: float = 600.0) -> bool:
    """Set the task function's EFS mount and /tmp size; returns whether anything changed."""
    client = session.client("lambda")
    name = outputs["TaskFunctionName"]
    try:
        current = _wait_settled(client, name, sleep, timeout_s)
    except Exception as exc:
        if error_code(exc) == "ResourceNotFoundException":
            raise DeployError(f"{name} does not exist: run `chalice deploy` (scripts/deploy does) first") from None
        raise
    want = wanted_config(outputs, ephemeral_mb)
    if want["FileSystemConfigs"]:
        subnets = set(current.get("VpcConfig", {}).get("SubnetIds") or [])
        if subnets != set(outputs["PrivateSubnetIds"].split(",")):
            raise DeployError(f"{name} is not in the stack's private subnets, so it cannot mount EFS; run "
                              "scripts/bootstrap, then `chalice deploy` again (scripts/deploy does both)")
    have = {"FileSystemConfigs": current.get("FileSystemConfigs", []),
            "EphemeralStorage": current.get("EphemeralStorage", {"Size": 512})}
    if have == want:
        say(f"{name}: EFS mount and /tmp already set")
        return False
    client.update_function_configuration(FunctionName=name, **want)
    _wait_settled(client, name, sleep, timeout_s)
    mounted = ", ".join(f"{m['LocalMountPath']} <- {m['Arn']}" for m in want["FileSystemConfigs"]) or "no EFS"
    say(f"{name}: {mounted}; /tmp {ephemeral_mb} MB")
    return True


PARTIAL_BATCHES = "ReportBatchItemFailures"


def enable_partial_batches(session: Any, stage: str, outputs: Mapping[str, str],
                           say: Callable[[str], None] = print) -> bool:
    """ReportBatchItemFailures on the coordinator's events-queue trigger; returns whether it changed."""
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
    return changed
