"""The part of .chalice/config.json that bootstrap owns, for one stage.

bootstrap writes, under stages.<stage>:
    environment_variables.UPDRAFT_*          resource names (infra/settings.py)
    lambda_functions.task.iam_role_arn       the stack's TaskFunctionRole
    lambda_functions.task.manage_iam_role    false (the role comes from the stack)
    lambda_functions.task.subnet_ids,        private subnets and security group, when the task
        security_group_ids                   function mounts EFS (TaskFunctionInVpc)
    lambda_functions.coordinator.environment_variables   UPDRAFT_PARTIAL_BATCH=0 (infra/settings.py:
                                             safe until postdeploy enables partial batches)
    lambda_functions.<api_handler|submit|coordinator|sweeper>.environment_variables
                                             UPDRAFT_MAX_WORKERS=0 while the stack has no worker
                                             image (infra/settings.py SCALING_FUNCTIONS)
    lambda_functions.task.layers             published tool layers (scripts/deploy)
    updraft_stack                            stack name, region and outputs (Chalice ignores it;
                                             scripts/deploy and scripts/destroy read it)
Every other key (timeouts, memory, policy files, ...) is left as it was. All functions here
are pure: load, change a copy, save.
"""

from __future__ import annotations

import copy
import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from infra import settings
from infra.errors import DeployError
from infra.names import APP_NAME, COORDINATOR_FUNCTION, TASK_FUNCTION

STACK_KEY = "updraft_stack"
VPC_KEYS = ("subnet_ids", "security_group_ids")


def load(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {"version": "2.0", "app_name": APP_NAME, "stages": {}}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise DeployError(f"{path} is not valid JSON ({exc}); fix it before deploying") from None
    if not isinstance(data, dict):
        raise DeployError(f"{path} must hold a JSON object")
    return data


def save(path: Path, config: Mapping[str, Any]) -> None:
    """Atomic write: a crash never leaves a half-written config."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".config-", suffix=".json", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(config, f, indent=2, sort_keys=False)
        f.write("\n")
    os.replace(tmp, path)


def _stage(config: dict[str, Any], stage: str) -> dict[str, Any]:
    stages = config.setdefault("stages", {})
    entry: dict[str, Any] = stages.setdefault(stage, {})
    return entry


def _task(entry: dict[str, Any]) -> dict[str, Any]:
    fns = entry.setdefault("lambda_functions", {})
    task: dict[str, Any] = fns.setdefault(TASK_FUNCTION, {})
    return task


def apply_stack(config: Mapping[str, Any], stage: str, stack: str, region: str,
                outputs: Mapping[str, str], worker_image: bool = True) -> dict[str, Any]:
    """A copy of `config` with the stage's resource settings taken from the stack outputs;
    `worker_image`: whether the stack runs a worker image (if not, nothing scales workers up)."""
    new = copy.deepcopy(dict(config))
    new.setdefault("version", "2.0")
    new.setdefault("app_name", APP_NAME)
    entry = _stage(new, stage)
    entry.setdefault("environment_variables", {}).update(settings.app_environment(outputs))
    task = _task(entry)
    task["iam_role_arn"] = outputs["TaskFunctionRoleArn"]
    task["manage_iam_role"] = False
    if outputs.get("TaskFunctionInVpc") == "true":
        task["subnet_ids"] = outputs["PrivateSubnetIds"].split(",")
        task["security_group_ids"] = [outputs["TaskFunctionSecurityGroupId"]]
    else:
        for key in VPC_KEYS:
            task.pop(key, None)
    _drop_env(task, settings.task_environment_keys())  # postdeploy sets them, with the mount
    coordinator = entry["lambda_functions"].setdefault(COORDINATOR_FUNCTION, {})
    coordinator.setdefault("environment_variables", {}).update(settings.COORDINATOR_UNTIL_POSTDEPLOY)
    _set_no_workers(entry, not worker_image)
    entry[STACK_KEY] = {"name": stack, "region": region, "outputs": dict(sorted(outputs.items()))}
    return new


def _set_no_workers(entry: dict[str, Any], on: bool) -> None:
    functions = entry.setdefault("lambda_functions", {})
    for name in settings.SCALING_FUNCTIONS:
        if on:
            functions.setdefault(name, {}).setdefault("environment_variables", {}).update(settings.NO_WORKERS)
        elif isinstance(functions.get(name), dict):
            _drop_env(functions[name], set(settings.NO_WORKERS))
            if not functions[name]:
                functions.pop(name)


def _drop_env(function: dict[str, Any], names: set[str]) -> None:
    env = function.get("environment_variables", {})
    for name in names:
        env.pop(name, None)
    if "environment_variables" in function and not env:
        function.pop("environment_variables")


def set_layers(config: Mapping[str, Any], stage: str, arns: Sequence[str]) -> dict[str, Any]:
    new = copy.deepcopy(dict(config))
    task = _task(_stage(new, stage))
    if arns:
        task["layers"] = list(arns)
    else:
        task.pop("layers", None)
    return new


def stack_record(config: Mapping[str, Any], stage: str) -> dict[str, Any] | None:
    record = config.get("stages", {}).get(stage, {}).get(STACK_KEY)
    return record if isinstance(record, dict) else None


def remove_stack(config: Mapping[str, Any], stage: str) -> dict[str, Any]:
    """A copy of `config` without what apply_stack/set_layers wrote for the stage."""
    new = copy.deepcopy(dict(config))
    entry = new.get("stages", {}).get(stage)
    if not isinstance(entry, dict):
        return new
    record = entry.pop(STACK_KEY, None)
    written = settings.app_environment(record["outputs"]) if record else {}
    env = entry.get("environment_variables", {})
    for var in written:
        env.pop(var, None)
    if not env:
        entry.pop("environment_variables", None)
    if record:
        _set_no_workers(entry, False)
    functions = entry.get("lambda_functions", {})
    task = functions.get(TASK_FUNCTION)
    if isinstance(task, dict):
        for key in (*VPC_KEYS, "iam_role_arn", "manage_iam_role", "layers"):
            task.pop(key, None)
        _drop_env(task, settings.task_environment_keys())
    coordinator = functions.get(COORDINATOR_FUNCTION)
    if isinstance(coordinator, dict) and record:
        _drop_env(coordinator, set(settings.COORDINATOR_UNTIL_POSTDEPLOY))
    for name in (TASK_FUNCTION, COORDINATOR_FUNCTION):
        if name in functions and not functions[name]:
            functions.pop(name)
    if "lambda_functions" in entry and not functions:
        entry.pop("lambda_functions")
    if not entry:
        new["stages"].pop(stage)
    return new
