"""The part of .chalice/config.json that bootstrap owns, for one stage.

bootstrap writes, under stages.<stage>:
    environment_variables.UPDRAFT_*          resource names (infra/settings.py)
    lambda_functions.task.iam_role_arn       the stack's TaskFunctionRole (this and the keys below
                                             go on every task function: task and task-<mb>, one
                                             per UPDRAFT_FUNCTION_SIZES; task-<mb> also gets
                                             lambda_memory_size <mb> and the task's timeout)
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

from chalicelib.backends.aws.config import ENV, AwsConfig
from chalicelib.errors import ConfigError
from chalicelib.workflow.limits import DeployedSizes
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


def input_read_arns(config: Mapping[str, Any], stage: str) -> list[str]:
    """The S3 ARNs of the stage's UPDRAFT_INPUT_BUCKETS (the stack's InputReadArns: what the
    task runners may read; the Chalice roles' policy files grant the same, iam_policy.py)."""
    from chalicelib.backends.aws.iam_policy import input_arns

    env = {**config.get("environment_variables", {}),
           **config.get("stages", {}).get(stage, {}).get("environment_variables", {})}
    return input_arns(AwsConfig(input_buckets=str(env.get(ENV["input_buckets"]) or "")))


def task_functions(config: Mapping[str, Any], stage: str) -> dict[str, int]:
    """The stage's task functions (app.py names them) and their memory sizes: the size
    UPDRAFT_TASK_FUNCTION_MB is `task`, every other size N of UPDRAFT_FUNCTION_SIZES is task-N.
    The stage's environment_variables override the top-level ones, as in Chalice."""
    env = {**config.get("environment_variables", {}),
           **config.get("stages", {}).get(stage, {}).get("environment_variables", {})}
    sizes_var, task_var = ENV["function_sizes"], ENV["task_function_mb"]
    defaults = AwsConfig()
    try:
        sizes = DeployedSizes.parse(str(env.get(sizes_var) or defaults.function_sizes), sizes_var)
        task_mb = int(env.get(task_var) or defaults.task_function_mb)
    except (ConfigError, ValueError) as exc:
        raise DeployError(f".chalice/config.json, stage {stage!r}: {exc}") from None
    if task_mb not in sizes:
        raise DeployError(f".chalice/config.json, stage {stage!r}: {task_var}={task_mb} is not one of "
                          f"{sizes_var} ({', '.join(map(str, sizes))})")
    return {(TASK_FUNCTION if mb == task_mb else f"{TASK_FUNCTION}-{mb}"): mb for mb in sizes}


def _sized_tasks(config: dict[str, Any], stage: str) -> list[tuple[dict[str, Any], int | None]]:
    """(the config entry, the memory size to write or None for `task`) of each task function."""
    entry = _stage(config, stage)
    fns = entry.setdefault("lambda_functions", {})
    task_timeout = config.get("lambda_functions", {}).get(TASK_FUNCTION, {}).get("lambda_timeout", 900)
    out: list[tuple[dict[str, Any], int | None]] = []
    for name, mb in task_functions(config, stage).items():
        fn = fns.setdefault(name, {})
        if name != TASK_FUNCTION:
            fn["lambda_memory_size"] = mb
            fn.setdefault("lambda_timeout", task_timeout)
        out.append((fn, None if name == TASK_FUNCTION else mb))
    return out


def apply_stack(config: Mapping[str, Any], stage: str, stack: str, region: str,
                outputs: Mapping[str, str], worker_image: bool = True) -> dict[str, Any]:
    """A copy of `config` with the stage's resource settings taken from the stack outputs;
    `worker_image`: whether the stack runs a worker image (if not, nothing scales workers up)."""
    new = copy.deepcopy(dict(config))
    new.setdefault("version", "2.0")
    new.setdefault("app_name", APP_NAME)
    entry = _stage(new, stage)
    entry.setdefault("environment_variables", {}).update(settings.app_environment(outputs))
    for task, _mb in _sized_tasks(new, stage):  # every memory size's function: same role, network
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
    for task, _mb in _sized_tasks(new, stage):
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
    names = task_functions(new, stage)
    for name in names:
        task = functions.get(name)
        if isinstance(task, dict):
            for key in (*VPC_KEYS, "iam_role_arn", "manage_iam_role", "layers"):
                task.pop(key, None)
            if name != TASK_FUNCTION:
                for key in ("lambda_memory_size", "lambda_timeout"):
                    task.pop(key, None)
            _drop_env(task, settings.task_environment_keys())
            if name != TASK_FUNCTION and not task:
                functions.pop(name)
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
