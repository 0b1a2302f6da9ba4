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
    "WorkerCpu": "worker_cpu",  # the worker service's task size (launchers.ContainerLauncher)
    "WorkerMemory": "worker_memory_mb",
    "MemoKeyObject": "memo_key_object",  # only the task functions read it (the bucket policy)
}
# the task function alone mounts EFS: it gets the mount path, if the adapters take one. Never
# through the Chalice config: `chalice deploy` would set it before the mount exists (tasks
# would fail writing to a missing /mnt/updraft). infra/postdeploy.py sets it in the same
# UpdateFunctionConfiguration as the mount, so the two appear together.
TASK_ONLY_OPTIONAL: dict[str, str] = {
    "MountPath": "cache_root",  # the dependency cache on EFS
}
# The coordinator as `chalice deploy` leaves it: its trigger cannot report partial batch
# failures yet (Chalice has no setting for it), so a failure must fail the whole batch, which
# SQS then redelivers. infra/postdeploy.py turns partial batches on once the trigger has
# ReportBatchItemFailures; every `chalice deploy` puts this value back until it runs again.
COORDINATOR_UNTIL_POSTDEPLOY: dict[str, str] = {ENV["partial_batch"]: "0"}
COORDINATOR_AFTER_POSTDEPLOY: dict[str, str] = {ENV["partial_batch"]: "1"}
# Until the stack runs a worker image (WorkerImage, by digest), nothing may scale the worker
# service up: its tasks could only fail to pull. The functions that scale it (the API and
# submit start runs, the coordinator launches, the sweeper rescales) get max_workers 0 at the
# function level, over the stage's value, and lose it once an image is pinned.
SCALING_FUNCTIONS = ("api_handler", "submit", "coordinator", "sweeper")
NO_WORKERS: dict[str, str] = {ENV["max_workers"]: "0"}

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


def task_environment_keys() -> set[str]:
    """The variables task_environment may set (postdeploy owns them on the function)."""
    return {ENV[field] for field in TASK_ONLY_OPTIONAL.values() if field in ENV}


def task_environment(outputs: Mapping[str, str]) -> dict[str, str]:
    """Extra variables of the task function, set with its EFS mount (infra/postdeploy.py)."""
    if outputs.get("TaskFunctionInVpc") != "true":
        return {}
    return _pick(outputs, TASK_ONLY_OPTIONAL)


def unread_outputs() -> list[str]:
    """Optional outputs no adapter reads yet (bootstrap mentions them)."""
    return sorted(k for k, f in {**OPTIONAL, **TASK_ONLY_OPTIONAL}.items() if f not in ENV)
