"""scripts/bootstrap's behaviour in moto: idempotent, keeps the rest of the Chalice config,
follows the EFS switch, and asks for the task function's destinations once it exists."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

from infra import chalice_config
from infra.cfn import Stacks
from infra.names import stack_name
from tests.deploy import conftest

STAGE = "ci"


def run_bootstrap(aws: Any, stacks: Stacks, config_path: Path, **params: str) -> dict[str, str]:
    return conftest.run_bootstrap(aws, stacks, config_path, STAGE, **params)


def test_bootstrap_again_changes_nothing(aws: Any, stacks: Stacks, config_path: Path) -> None:
    outputs = run_bootstrap(aws, stacks, config_path)
    before = config_path.read_text()
    again = run_bootstrap(aws, stacks, config_path)
    assert again == outputs
    assert config_path.read_text() == before
    assert aws.client("cloudformation").describe_stacks(StackName=stack_name(STAGE))["Stacks"][0][
        "StackStatus"] in ("CREATE_COMPLETE", "UPDATE_COMPLETE")


def test_bootstrap_keeps_other_settings_of_the_config(aws: Any, stacks: Stacks, config_path: Path) -> None:
    config_path.parent.mkdir(parents=True)
    config_path.write_text(json.dumps({"version": "2.0", "app_name": "updraft", "stages": {STAGE: {
        "api_gateway_stage": "api", "environment_variables": {"UPDRAFT_API_AUTH": "iam"},
        "lambda_functions": {"task": {"lambda_timeout": 900}, "coordinator": {"lambda_timeout": 60}}}}}))
    run_bootstrap(aws, stacks, config_path)
    entry = json.loads(config_path.read_text())["stages"][STAGE]
    assert entry["api_gateway_stage"] == "api"
    assert entry["environment_variables"]["UPDRAFT_API_AUTH"] == "iam"
    assert entry["lambda_functions"]["coordinator"]["lambda_timeout"] == 60
    task = entry["lambda_functions"]["task"]
    assert task["lambda_timeout"] == 900
    assert task["manage_iam_role"] is False and task["iam_role_arn"].startswith("arn:aws:iam::")
    assert len(task["subnet_ids"]) == 2 and len(task["security_group_ids"]) == 1
    record = chalice_config.stack_record(json.loads(config_path.read_text()), STAGE)
    assert record is not None and record["outputs"]["AccessPointArn"].startswith("arn:aws:elasticfilesystem:")


def test_without_efs_the_task_function_stays_out_of_the_vpc(aws: Any, stacks: Stacks, config_path: Path) -> None:
    outputs = run_bootstrap(aws, stacks, config_path, TaskFunctionInVpc="false")
    assert outputs["TaskFunctionInVpc"] == "false"
    created = {r["LogicalResourceId"] for r in aws.client("cloudformation").list_stack_resources(
        StackName=stack_name(STAGE))["StackResourceSummaries"]}
    assert "SqsInterfaceEndpoint" not in created and "TaskFunctionVpcPolicy" not in created
    task = json.loads(config_path.read_text())["stages"][STAGE]["lambda_functions"]["task"]
    assert "subnet_ids" not in task and "security_group_ids" not in task


def test_destinations_are_requested_once_the_task_function_exists(aws: Any, stacks: Stacks, config_path: Path) -> None:
    def deployed_param() -> str:
        params = aws.client("cloudformation").describe_stacks(StackName=stack_name(STAGE))["Stacks"][0]["Parameters"]
        return {p["ParameterKey"]: p["ParameterValue"] for p in params}["TaskFunctionDeployed"]

    outputs = run_bootstrap(aws, stacks, config_path)
    assert deployed_param() == "false"
    aws.client("lambda").create_function(  # what `chalice deploy` does
        FunctionName=outputs["TaskFunctionName"], Runtime="python3.11", Handler="app.task",
        Role=outputs["TaskFunctionRoleArn"], Code={"ZipFile": b"PK\x05\x06" + b"\x00" * 18})
    run_bootstrap(aws, stacks, config_path)
    assert deployed_param() == "true"


def test_a_fresh_account_gets_the_ecs_service_linked_role_before_the_stack(aws: Any, stacks: Stacks,
                                                                           config_path: Path) -> None:
    iam = aws.client("iam")
    prefix = "/aws-service-role/ecs.amazonaws.com/"
    assert iam.list_roles(PathPrefix=prefix)["Roles"] == []  # moto starts as a fresh account
    order: list[str] = []
    create = iam.create_service_linked_role

    def recording_create(**kwargs: Any) -> Any:
        order.append(f"role, stack {'absent' if stacks.status(stack_name(STAGE)) is None else 'present'}")
        return create(**kwargs)

    real_client = aws.client

    def client(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "iam":
            iam.create_service_linked_role = recording_create  # type: ignore[method-assign]
            return iam
        return real_client(name, *args, **kwargs)

    aws.client = client
    try:
        run_bootstrap(aws, stacks, config_path)
        run_bootstrap(aws, stacks, config_path)
    finally:
        aws.client = real_client
    assert order == ["role, stack absent"]  # once, and before the stack's ECS service exists
    (role,) = iam.list_roles(PathPrefix=prefix)["Roles"]
    assert "ecs.amazonaws.com" in json.dumps(role["AssumeRolePolicyDocument"])


def test_an_account_with_the_role_is_left_alone(aws: Any, stacks: Stacks, config_path: Path) -> None:
    from infra.bootstrap import ensure_ecs_service_linked_role

    aws.client("iam").create_service_linked_role(AWSServiceName="ecs.amazonaws.com")
    said: list[str] = []
    assert ensure_ecs_service_linked_role(aws, said.append, sleep=lambda s: None) is False
    assert said == []


def test_the_stages_input_buckets_become_the_task_runners_reads(aws: Any, stacks: Stacks, config_path: Path) -> None:
    """UPDRAFT_INPUT_BUCKETS in the stage's Chalice config: the Chalice roles' policy files
    grant reading them (iam_policy.py), and bootstrap passes the same ARNs as InputReadArns,
    so the task function and the worker can read them too."""
    config_path.parent.mkdir(parents=True)
    config_path.write_text(json.dumps({"version": "2.0", "app_name": "updraft", "stages": {STAGE: {
        "environment_variables": {"UPDRAFT_INPUT_BUCKETS": "lab-inputs/shared"}}}}))
    run_bootstrap(aws, stacks, config_path)
    cfn = aws.client("cloudformation")
    params = {p["ParameterKey"]: p["ParameterValue"]
              for p in cfn.describe_stacks(StackName=stack_name(STAGE))["Stacks"][0]["Parameters"]}
    value = params["InputReadArns"]  # moto answers a CommaDelimitedList as a Python list's repr
    arns = ast.literal_eval(value) if value.startswith("[") else value.split(",")
    assert arns == ["arn:aws:s3:::lab-inputs", "arn:aws:s3:::lab-inputs/shared/*"]
    created = {r["LogicalResourceId"] for r in cfn.list_stack_resources(
        StackName=stack_name(STAGE))["StackResourceSummaries"]}
    assert "ExternalInputsPolicy" in created
