"""From the stack's outputs to the settings the app's adapters read.

The variable names come from chalicelib.backends.aws.config.ENV, never spelled here, so a
renamed setting breaks this module's import-time check (and its test) instead of a deploy.
"""

from __future__ import annotations

from collections.abc import Mapping

from chalicelib.backends.aws.config import ENV

# stack output -> AwsConfig field; every function of the app gets these
REQUIRED: dict[str, str] = {
    "TableName": "table",
    "BucketName": "bucket",
    "EventsQueueUrl": "events_queue",
    "ContainerQueueUrl": "container_queue",
    "TaskFunctionName": "task_function",
    "ClusterName": "ecs_cluster",
    "WorkerServiceName": "ecs_service",
}
# written only once the adapters read them (AwsConfig grows the field)
OPTIONAL: dict[str, str] = {
    "SubmitQueueUrl": "submit_queue",
}
# the task function alone mounts EFS: it gets the mount path, if the adapters take one
TASK_ONLY_OPTIONAL: dict[str, str] = {
    "MountPath": "cache_root",  # the dependency cache on EFS
}

_missing = sorted(field for field in REQUIRED.values() if field not in ENV)
if _missing:  # pragma: no cover - a renamed AwsConfig field; the settings test names it
    raise ImportError(f"chalicelib.backends.aws.config.ENV has no {_missing}: update infra/settings.py")


def _pick(outputs: Mapping[str, str], table: Mapping[str, str]) -> dict[str, str]:
    return {ENV[field]: outputs[key] for key, field in table.items() if field in ENV and key in outputs}


def app_environment(outputs: Mapping[str, str]) -> dict[str, str]:
    """UPDRAFT_* variables for every function of the stage."""
    absent = [key for key in REQUIRED if key not in outputs]
    if absent:
        raise KeyError(f"the stack has no outputs {absent}; is infra/stack.yaml the deployed template?")
    return _pick(outputs, {**REQUIRED, **OPTIONAL})


def task_environment(outputs: Mapping[str, str]) -> dict[str, str]:
    """Extra variables of the task function (the EFS mount)."""
    if outputs.get("TaskFunctionInVpc") != "true":
        return {}
    return _pick(outputs, TASK_ONLY_OPTIONAL)


def unread_outputs() -> list[str]:
    """Optional outputs no adapter reads yet (bootstrap mentions them)."""
    return sorted(k for k, f in {**OPTIONAL, **TASK_ONLY_OPTIONAL}.items() if f not in ENV)
