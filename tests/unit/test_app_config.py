"""Deployment settings: .chalice/config.json, the IAM policy files, and AwsConfig."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from chalice.config import Config

from chalicelib.backends.aws.config import AwsConfig
from chalicelib.backends.aws.iam_policy import ROLES, TASK_RUNNER, policy_file, stage_env, stage_policies
from chalicelib.errors import ConfigError
from tests.e2e.test_cloud_harness import IAM_ACTIONS, classify

CHALICE = Path(__file__).resolve().parents[2] / ".chalice"
STAGES = ["dev", "prod"]

def allowed_actions(stage: str) -> set[str]:
    """What some role of the stage may do (each role's own: tests/e2e/test_cloud_iam.py)."""
    found: set[str] = set()
    for role in (*ROLES, TASK_RUNNER):
        policy = json.loads((CHALICE / policy_file(stage, role)).read_text())
        found |= {a for st in policy["Statement"] for a in st["Action"]}
    return found


@pytest.mark.parametrize("stage", STAGES)
def test_every_stage_sets_memory_and_timeout_per_function(stage: str) -> None:
    data = json.loads((CHALICE / "config.json").read_text())
    config = Config(chalice_stage=stage, config_from_disk=data)
    timeouts = {fn: config.scope(stage, fn).lambda_timeout for fn in
                ("api_handler", "coordinator", "task", "submit", "sweeper")}
    assert timeouts == {"api_handler": 29, "coordinator": 60, "task": 900, "submit": 900, "sweeper": 300}
    assert config.scope(stage, "task").lambda_memory_size >= 3008
    assert all(config.scope(stage, fn).lambda_memory_size for fn in timeouts)
    for role in ROLES:  # a role and a policy of its own each
        assert config.scope(stage, role).iam_policy_file == policy_file(stage, role)
        assert config.scope(stage, role).autogen_policy is False
    assert config.scope(stage, "task").iam_policy_file == f"policy-{stage}.json"  # until bootstrap's role


@pytest.mark.parametrize("stage", STAGES)
def test_policy_files_are_what_the_generator_writes(stage: str) -> None:
    for name, policy in stage_policies(stage, CHALICE / "config.json").items():
        committed = json.loads((CHALICE / name).read_text())
        assert committed == policy, f"{name}: run python -m chalicelib.backends.aws.iam_policy"


@pytest.mark.parametrize("stage", STAGES)
def test_policies_name_only_the_stages_resources(stage: str) -> None:
    cfg = AwsConfig.from_env(stage_env(stage, CHALICE / "config.json"))
    for role in (*ROLES, TASK_RUNNER):
        policy_names_only_the_stage(stage, json.loads((CHALICE / policy_file(stage, role)).read_text()))
    assert cfg.table == f"updraft-{stage}"


def policy_names_only_the_stage(stage: str, policy: dict[str, Any]) -> None:
    for statement in policy["Statement"]:
        for resource in statement["Resource"]:
            if statement["Sid"] == "Traces":
                assert resource == "*"
                continue
            assert f"updraft-{stage}" in resource, (statement["Sid"], resource)
            assert resource.count("*") <= 3  # partition-wide wildcards only for account/region/suffix
    other = "prod" if stage == "dev" else "dev"
    assert f"updraft-{other}" not in json.dumps(policy)


def test_the_policy_allows_every_operation_the_handlers_make() -> None:
    """The e2e harness checks that every operation a real run makes is in IAM_ACTIONS (and
    tests/e2e/test_cloud_iam.py which role makes it). The worker's role is the stack's."""
    from infra.names import TEMPLATE
    from tests.deploy import templates
    from tests.deploy.reachability import Template

    assert classify({"HTTP_X_AMZ_TARGET": "DynamoDB_20120810.UpdateItem"}) == ("dynamodb", "UpdateItem")
    worker = Template(templates.load(TEMPLATE)).role_actions("WorkerTaskRole")
    for stage in STAGES:
        allowed = allowed_actions(stage) | worker
        missing = {op: action for op, action in IAM_ACTIONS.items() if action not in allowed}
        assert not missing, missing


def test_config_takes_arguments_over_environment_over_defaults() -> None:
    env = {"UPDRAFT_TABLE": "from-env", "UPDRAFT_TASK_SHARDS": "8", "AWS_REGION": "eu-west-1"}
    cfg = AwsConfig.from_env(env, table="explicit")
    assert (cfg.table, cfg.task_shards, cfg.region, cfg.bucket) == ("explicit", 8, "eu-west-1", "updraft-data")
    assert AwsConfig.from_env({}).table == "updraft"


@pytest.mark.parametrize(("var", "value"), [("UPDRAFT_TASK_SHARDS", "many"), ("UPDRAFT_TASK_SHARDS", "0"),
                                            ("UPDRAFT_API_AUTH", "cookies"), ("UPDRAFT_WORKER_LEASE_S", "1")])
def test_bad_settings_name_the_variable(var: str, value: str) -> None:
    with pytest.raises(ConfigError, match="UPDRAFT_"):
        AwsConfig.from_env({var: value})


def test_account_and_region_placeholders_are_filled_in_from_sts() -> None:
    from chalicelib.backends.aws.components import Cloud
    from tests.contract.awskit import mocked_aws

    with mocked_aws():
        cloud = Cloud.from_env(env={"UPDRAFT_BUCKET": "updraft-dev-{account}-{region}", "AWS_REGION": "eu-west-1"})
    assert cloud.config.bucket == "updraft-dev-123456789012-eu-west-1"  # moto's account
    assert cloud.clients.config.bucket == cloud.config.bucket
    plain = AwsConfig.from_env({"UPDRAFT_BUCKET": "mine"})
    assert not plain.needs_account() and plain.resolved("1", "r").bucket == "mine"
