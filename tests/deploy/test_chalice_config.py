"""bootstrap's edits of .chalice/config.json: its own keys only, and destroy takes back
exactly what bootstrap wrote."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from infra import chalice_config
from infra.errors import DeployError

OUTPUTS = {
    "TableName": "updraft-dev", "BucketName": "updraft-dev-1-eu-west-1",
    "EventsQueueUrl": "https://sqs/1/updraft-dev-events", "ContainerQueueUrl": "https://sqs/1/updraft-dev-containers",
    "SubmitQueueUrl": "https://sqs/1/updraft-dev-submit", "TaskFunctionName": "updraft-dev-task",
    "ClusterName": "updraft-dev", "WorkerServiceName": "updraft-dev-worker",
    "TaskFunctionRoleArn": "arn:aws:iam::1:role/task", "TaskFunctionInVpc": "true",
    "PrivateSubnetIds": "subnet-a,subnet-b", "TaskFunctionSecurityGroupId": "sg-1", "MountPath": "/mnt/updraft",
    "AccessPointArn": "arn:aws:elasticfilesystem:eu-west-1:1:access-point/fsap-1",
}
THEIRS: dict[str, Any] = {
    "version": "2.0", "app_name": "updraft", "automatic_layer": True,
    "lambda_functions": {"task": {"lambda_timeout": 900}},
    "stages": {"dev": {"api_gateway_stage": "api", "iam_policy_file": "policy-dev.json",
                       "environment_variables": {"UPDRAFT_TABLE": "old", "POWERTOOLS_LOG_LEVEL": "DEBUG"},
                       "lambda_functions": {"coordinator": {"lambda_timeout": 60}}},
               "prod": {"api_gateway_stage": "api"}},
}


def test_apply_writes_the_stack_settings_and_keeps_the_rest() -> None:
    applied = chalice_config.apply_stack(THEIRS, "dev", "updraft-dev-infra", "eu-west-1", OUTPUTS)
    dev = applied["stages"]["dev"]
    assert dev["environment_variables"]["UPDRAFT_TABLE"] == "updraft-dev"  # the stack's name wins
    assert dev["environment_variables"]["POWERTOOLS_LOG_LEVEL"] == "DEBUG"
    assert dev["environment_variables"]["UPDRAFT_BUCKET"] == OUTPUTS["BucketName"]
    # until postdeploy gives its trigger ReportBatchItemFailures, a failure fails the whole batch
    assert dev["lambda_functions"]["coordinator"] == {"lambda_timeout": 60,
                                                      "environment_variables": {"UPDRAFT_PARTIAL_BATCH": "0"}}
    # no UPDRAFT_CACHE_ROOT: postdeploy sets it with the mount, never `chalice deploy` before it
    assert dev["lambda_functions"]["task"] == {
        "iam_role_arn": "arn:aws:iam::1:role/task", "manage_iam_role": False,
        "subnet_ids": ["subnet-a", "subnet-b"], "security_group_ids": ["sg-1"]}
    assert dev[chalice_config.STACK_KEY]["outputs"]["AccessPointArn"] == OUTPUTS["AccessPointArn"]
    assert applied["stages"]["prod"] == THEIRS["stages"]["prod"]
    assert applied["lambda_functions"] == THEIRS["lambda_functions"]
    assert THEIRS["stages"]["dev"]["environment_variables"]["UPDRAFT_TABLE"] == "old"  # input untouched


def test_leaving_the_vpc_drops_the_network_settings() -> None:
    inside = chalice_config.apply_stack(THEIRS, "dev", "s", "eu-west-1", OUTPUTS)
    outside = chalice_config.apply_stack(inside, "dev", "s", "eu-west-1", {**OUTPUTS, "TaskFunctionInVpc": "false"})
    task = outside["stages"]["dev"]["lambda_functions"]["task"]
    assert "subnet_ids" not in task and "security_group_ids" not in task


def test_remove_takes_back_what_bootstrap_and_layers_wrote() -> None:
    before = copy.deepcopy(THEIRS)
    before["stages"]["dev"]["environment_variables"].pop("UPDRAFT_TABLE")  # bootstrap overwrote it
    applied = chalice_config.apply_stack(before, "dev", "s", "eu-west-1", OUTPUTS)
    layer = "arn:aws:lambda:eu-west-1:1:layer:montage:3"
    layered = chalice_config.set_layers(applied, "dev", [layer])
    assert layered["stages"]["dev"]["lambda_functions"]["task"]["layers"] == [layer]
    assert chalice_config.remove_stack(layered, "dev") == before


def test_a_new_stage_in_a_missing_config_is_removed_whole(tmp_path: Path) -> None:
    path = tmp_path / ".chalice" / "config.json"
    config = chalice_config.load(path)
    applied = chalice_config.apply_stack(config, "ci", "s", "eu-west-1", OUTPUTS)
    chalice_config.save(path, applied)
    assert json.loads(path.read_text())["app_name"] == "updraft"
    assert chalice_config.remove_stack(applied, "ci")["stages"] == {}


def test_an_unreadable_config_is_reported_not_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text("{ not json")
    with pytest.raises(DeployError, match="not valid JSON"):
        chalice_config.load(path)
    assert path.read_text() == "{ not json"


def test_a_cache_root_an_older_bootstrap_wrote_is_taken_out() -> None:
    older = copy.deepcopy(THEIRS)
    older["stages"]["dev"]["lambda_functions"]["task"] = {"environment_variables": {
        "UPDRAFT_CACHE_ROOT": "/mnt/updraft", "MINE": "1"}}
    applied = chalice_config.apply_stack(older, "dev", "s", "eu-west-1", OUTPUTS)
    assert applied["stages"]["dev"]["lambda_functions"]["task"]["environment_variables"] == {"MINE": "1"}


def test_without_a_worker_image_nothing_scales_workers_up() -> None:
    none = chalice_config.apply_stack(THEIRS, "dev", "s", "eu-west-1", OUTPUTS, worker_image=False)
    functions = none["stages"]["dev"]["lambda_functions"]
    for name in ("api_handler", "submit", "coordinator", "sweeper"):  # function level: over the stage's value
        assert functions[name]["environment_variables"]["UPDRAFT_MAX_WORKERS"] == "0", name
    assert "UPDRAFT_MAX_WORKERS" not in functions["task"].get("environment_variables", {})
    assert functions["coordinator"]["lambda_timeout"] == 60  # the rest kept
    pinned = chalice_config.apply_stack(none, "dev", "s", "eu-west-1", OUTPUTS, worker_image=True)
    assert "UPDRAFT_MAX_WORKERS" not in json.dumps(pinned)
    assert pinned == chalice_config.apply_stack(THEIRS, "dev", "s", "eu-west-1", OUTPUTS)
    before = copy.deepcopy(THEIRS)
    before["stages"]["dev"]["environment_variables"].pop("UPDRAFT_TABLE")
    assert chalice_config.remove_stack(chalice_config.apply_stack(
        before, "dev", "s", "eu-west-1", OUTPUTS, worker_image=False), "dev") == before
