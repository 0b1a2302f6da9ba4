"""The stack, created by scripts/bootstrap's code in moto's CloudFormation, is what the
adapters expect: names, keys, queues, ECS service; and the config bootstrap writes drives
the real adapters against it.

moto does not create AWS::SQS::QueuePolicy, AWS::S3::BucketPolicy or
AWS::Lambda::EventInvokeConfig, and its CloudFormation ignores the bucket's
NotificationConfiguration and LifecycleConfiguration, the task definition's network mode and
EFS volume, and the service's network configuration: those are checked from the template
(here and in test_template.py), and the notification is applied through the S3 API to check
that an upload under submit/ reaches the submit queue.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import pytest

from chalicelib.backends.aws.components import Cloud
from chalicelib.backends.aws.config import ENV
from chalicelib.backends.aws.dynamodb_state import TABLE_KEYS
from chalicelib.backends.aws.provision import (
    CONTAINER_VISIBILITY_S,
    EVENTS_MAX_RECEIVES,
    EVENTS_VISIBILITY_S,
    MAX_RECEIVES,
)
from infra.names import TEMPLATE, stack_name
from tests.deploy import templates
from tests.deploy.conftest import bootstrapped

STAGE = "ci"


def stage_env(config_path: Path) -> dict[str, str]:
    config = json.loads(config_path.read_text())
    env: dict[str, str] = config["stages"][STAGE]["environment_variables"]
    return env


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, dict[str, str], Path]]:
    """One stack shared by the read-only checks (creating it takes seconds in moto)."""
    config_path = tmp_path_factory.mktemp("chalice") / "config.json"
    with bootstrapped(config_path, STAGE) as (session, outputs):
        yield session, outputs, config_path


@pytest.fixture
def shared(deployed: tuple[Any, dict[str, str], Path]) -> Any:
    return deployed[0]


@pytest.fixture
def outputs(deployed: tuple[Any, dict[str, str], Path]) -> dict[str, str]:
    return deployed[1]


@pytest.fixture
def shared_config(deployed: tuple[Any, dict[str, str], Path]) -> Path:
    return deployed[2]


def test_stack_creates_every_resource_moto_supports(shared: Any, outputs: dict[str, str]) -> None:
    cfn = shared.client("cloudformation")
    stack = cfn.describe_stacks(StackName=stack_name(STAGE))["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    created = {r["LogicalResourceId"]: r for r in cfn.list_stack_resources(StackName=stack_name(STAGE))
               ["StackResourceSummaries"]}
    for logical in ("Table", "Bucket", "EventsQueue", "EventsDeadLetterQueue", "ContainerQueue",
                    "ContainerDeadLetterQueue", "SubmitQueue", "SubmitDeadLetterQueue", "FileSystem", "AccessPoint",
                    "MountTargetA", "MountTargetB", "Cluster", "WorkerTaskDefinition", "WorkerService",
                    "TaskFunctionRole", "WorkerTaskRole", "WorkerExecutionRole", "SqsInterfaceEndpoint"):
        assert created[logical]["ResourceStatus"] == "CREATE_COMPLETE", logical
    assert "TaskFunctionInvokeConfig" not in created  # the function does not exist yet
    assert outputs["TaskFunctionName"] == f"updraft-{STAGE}-task"
    assert outputs["TableName"] == f"updraft-{STAGE}"
    assert outputs["BucketName"] == f"updraft-{STAGE}-123456789012-us-east-1"


def test_written_environment_names_real_resources_through_the_adapters(
        shared: Any, outputs: dict[str, str], shared_config: Path) -> None:
    env = stage_env(shared_config)
    assert set(env) <= set(ENV.values())
    cloud = Cloud.from_env(session=shared, env={**env, "AWS_REGION": "us-east-1"})
    # DynamoDB: the run index the API lists from exists under the adapter's name
    assert cloud.store.list_runs() == []
    # S3: a blob round-trips through the stage's bucket
    cloud.blobs.put_bytes("runs/r1/workflow.json", b"{}")
    assert cloud.blobs.get_bytes("runs/r1/workflow.json") == b"{}"
    # SQS: both queues by the URLs the stack returned
    cloud.events_queue.send(["hello"])
    assert [m.body for m in cloud.events_queue.receive(1, wait_s=0)] == ["hello"]
    assert cloud.container_queue.backlog() == 0
    # ECS: the scaler finds the worker service, idle at zero tasks
    assert cloud.scaler.current() == 0
    assert cloud.config.task_function == outputs["TaskFunctionName"]


def test_table_keys_and_indexes_are_the_adapters(shared: Any, outputs: dict[str, str]) -> None:
    table = shared.client("dynamodb").describe_table(TableName=outputs["TableName"])["Table"]
    assert table["KeySchema"] == TABLE_KEYS["KeySchema"]
    assert sorted(table["AttributeDefinitions"], key=str) == sorted(TABLE_KEYS["AttributeDefinitions"], key=str)
    indexes = {i["IndexName"]: (i["KeySchema"], i["Projection"]) for i in table["GlobalSecondaryIndexes"]}
    assert indexes == {i["IndexName"]: (i["KeySchema"], i["Projection"]) for i in TABLE_KEYS["GlobalSecondaryIndexes"]}
    assert table["BillingModeSummary"]["BillingMode"] == TABLE_KEYS["BillingMode"] == "PAY_PER_REQUEST"


@pytest.mark.parametrize(("queue", "dlq", "visibility", "receives"), [
    ("EventsQueueUrl", "EventsDeadLetterQueueUrl", EVENTS_VISIBILITY_S, EVENTS_MAX_RECEIVES),
    ("ContainerQueueUrl", "ContainerDeadLetterQueueUrl", CONTAINER_VISIBILITY_S, MAX_RECEIVES),
    ("SubmitQueueUrl", "SubmitDeadLetterQueueUrl", None, MAX_RECEIVES),
])
def test_queues_redrive_to_their_dead_letter_queues(shared: Any, outputs: dict[str, str], queue: str, dlq: str,
                                                    visibility: int | None, receives: int) -> None:
    sqs = shared.client("sqs")
    attrs = sqs.get_queue_attributes(QueueUrl=outputs[queue], AttributeNames=["All"])["Attributes"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=outputs[dlq], AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = json.loads(attrs["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"] == dlq_arn
    assert int(redrive["maxReceiveCount"]) == receives
    if visibility is not None:
        assert int(attrs["VisibilityTimeout"]) == visibility


def test_worker_task_definition_runs_the_stack_image_with_the_adapters_settings(
        shared: Any, outputs: dict[str, str]) -> None:
    ecs = shared.client("ecs")
    container = ecs.describe_task_definition(taskDefinition=outputs["WorkerTaskDefinitionArn"])[
        "taskDefinition"]["containerDefinitions"][0]
    assert container["image"] == outputs["WorkerRepositoryUri"] + ":no-image-pushed"  # none pushed yet
    env = {e["name"]: e["value"] for e in container["environment"]}
    assert set(env) <= set(ENV.values())
    assert env[ENV["table"]] == outputs["TableName"]
    assert env[ENV["container_queue"]] == outputs["ContainerQueueUrl"]
    assert env[ENV["ecs_service"]] == outputs["WorkerServiceName"]
    assert container["mountPoints"] == [{"sourceVolume": "cache", "containerPath": outputs["MountPath"]}]
    assert container["linuxParameters"]["initProcessEnabled"] is True  # PID 1 reaps orphaned task processes
    service = ecs.describe_services(cluster=outputs["ClusterName"], services=[outputs["WorkerServiceName"]])
    assert service["services"][0]["desiredCount"] == 0


def test_efs_access_point_and_mount_targets_serve_the_private_subnets(shared: Any, outputs: dict[str, str]) -> None:
    efs = shared.client("efs")
    point = efs.describe_access_points(FileSystemId=outputs["FileSystemId"])["AccessPoints"][0]
    assert point["AccessPointArn"] == outputs["AccessPointArn"]
    assert point["RootDirectory"]["Path"] == "/updraft"
    targets = efs.describe_mount_targets(FileSystemId=outputs["FileSystemId"])["MountTargets"]
    assert sorted(t["SubnetId"] for t in targets) == sorted(outputs["PrivateSubnetIds"].split(","))


def test_upload_under_submit_reaches_the_submit_queue(shared: Any, outputs: dict[str, str]) -> None:
    template = templates.load(TEMPLATE)
    (declared,) = template["Resources"]["Bucket"]["Properties"]["NotificationConfiguration"]["QueueConfigurations"]
    assert declared["Queue"] == {"Fn::GetAtt": ["SubmitQueue", "Arn"]}
    sqs, s3 = shared.client("sqs"), shared.client("s3")
    queue_arn = sqs.get_queue_attributes(QueueUrl=outputs["SubmitQueueUrl"], AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    rules = [{"Name": r["Name"], "Value": r["Value"]} for r in declared["Filter"]["S3Key"]["Rules"]]
    s3.put_bucket_notification_configuration(Bucket=outputs["BucketName"], NotificationConfiguration={
        "QueueConfigurations": [{"QueueArn": queue_arn, "Events": [declared["Event"]],
                                 "Filter": {"Key": {"FilterRules": rules}}}]})
    sqs.purge_queue(QueueUrl=outputs["SubmitQueueUrl"])  # the s3:TestEvent
    s3.put_object(Bucket=outputs["BucketName"], Key="runs/r1/data/out.txt", Body=b"x")
    s3.put_object(Bucket=outputs["BucketName"], Key="submit/mosaic/workflow.json", Body=b"{}")
    got = sqs.receive_message(QueueUrl=outputs["SubmitQueueUrl"], MaxNumberOfMessages=10).get("Messages", [])
    keys = [unquote_plus(r["s3"]["object"]["key"]) for m in got for r in json.loads(m["Body"])["Records"]]
    assert keys == ["submit/mosaic/workflow.json"]
