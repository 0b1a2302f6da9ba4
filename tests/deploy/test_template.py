"""infra/stack.yaml on its own: cfn-lint clean, small enough to send inline, nothing billed
by the hour while idle except what the docs name, and the parts moto cannot create
(destinations, bucket rules, Fargate networking, EFS volume) declared as the app needs."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.backends.aws.api import SUBMIT_PREFIX
from chalicelib.backends.aws.config import ENV
from chalicelib.workflow.limits import CONTAINER
from infra import settings
from infra.chalice_config import apply_stack
from infra.names import APP_NAME, MOUNT_PATH, STAGE_PATTERN, TASK_FUNCTION, TEMPLATE, TEMPLATE_BODY_MAX
from tests.deploy import templates


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return templates.load(TEMPLATE)


def props(template: dict[str, Any], logical: str) -> dict[str, Any]:
    found: dict[str, Any] = template["Resources"][logical]["Properties"]
    return found


def test_stack_passes_cfn_lint_with_informational_checks() -> None:
    assert templates.lint(TEMPLATE.read_text()) == []


def test_lint_catches_a_broken_stack() -> None:
    broken = TEMPLATE.read_text().replace("Destination: !GetAtt EventsQueue.Arn", "Destination: !GetAtt EventQueue.Arn")
    broken = broken.replace("Qualifier: $LATEST", "Qualifier: $LATEST\n      Colour: blue")
    found = templates.lint(broken)
    assert any("EventQueue" in f for f in found), found
    assert any("Colour" in f for f in found), found


def test_template_fits_inline_in_create_stack() -> None:
    assert len(TEMPLATE.read_bytes()) < TEMPLATE_BODY_MAX


# ---- idle cost ---------------------------------------------------------------------------
# Billed by the hour whatever the load; each must be listed with its price in docs/deploy.md.
HOURLY = {"AWS::EC2::Instance", "AWS::EC2::NatGateway", "AWS::ElasticLoadBalancingV2::LoadBalancer",
          "AWS::ElasticLoadBalancing::LoadBalancer", "AWS::RDS::DBInstance", "AWS::EC2::EIP",
          "AWS::ElastiCache::CacheCluster", "AWS::EC2::TransitGateway", "AWS::EC2::ClientVpnEndpoint"}


def test_idle_stack_runs_no_compute(template: dict[str, Any]) -> None:
    kinds = {r["Type"] for r in template["Resources"].values()}
    assert kinds & HOURLY == set()
    assert props(template, "WorkerService")["DesiredCount"] == 0
    assert props(template, "Table")["BillingMode"] == "PAY_PER_REQUEST"
    assert props(template, "FileSystem")["ThroughputMode"] == "elastic"  # no provisioned throughput
    assert template["Resources"]["Cluster"]["Properties"]["ClusterSettings"] == [
        {"Name": "containerInsights", "Value": "disabled"}]


def test_the_only_hourly_charge_is_the_sqs_endpoint_and_it_is_optional(template: dict[str, Any]) -> None:
    interface = {k: r for k, r in template["Resources"].items()
                 if r["Type"] == "AWS::EC2::VPCEndpoint" and r["Properties"].get("VpcEndpointType") == "Interface"}
    assert list(interface) == ["SqsInterfaceEndpoint"]
    assert interface["SqsInterfaceEndpoint"]["Condition"] == "FunctionInVpc"
    assert len(interface["SqsInterfaceEndpoint"]["Properties"]["SubnetIds"]) == 1  # one AZ, one hourly charge


# ---- what moto cannot create ---------------------------------------------------------------

def test_task_function_outcomes_go_to_the_events_queue_without_lambda_retries(template: dict[str, Any]) -> None:
    resource = template["Resources"]["TaskFunctionInvokeConfig"]
    assert resource["Condition"] == "FunctionDeployed"
    config = resource["Properties"]
    assert config["FunctionName"] == {"Fn::Sub": "${AppName}-${Stage}-" + TASK_FUNCTION}
    assert config["MaximumRetryAttempts"] == 0
    events = {"Fn::GetAtt": ["EventsQueue", "Arn"]}
    assert config["DestinationConfig"] == {"OnSuccess": {"Destination": events}, "OnFailure": {"Destination": events}}


def test_bucket_sends_submit_uploads_to_the_submit_queue_and_expires_temporary_objects(
        template: dict[str, Any]) -> None:
    bucket = props(template, "Bucket")
    (notice,) = bucket["NotificationConfiguration"]["QueueConfigurations"]
    assert notice["Filter"]["S3Key"]["Rules"] == [{"Name": "prefix", "Value": SUBMIT_PREFIX}]
    assert notice["Event"] == "s3:ObjectCreated:*"
    rules = {r["Id"]: r for r in bucket["LifecycleConfiguration"]["Rules"]}
    assert rules["submit-uploads"]["Prefix"] == SUBMIT_PREFIX
    assert rules["submit-uploads"]["ExpirationInDays"] == {"Ref": "SubmitRetentionDays"}
    assert rules["tmp"]["Prefix"] == "tmp/" and rules["tmp"]["ExpirationInDays"] == {"Ref": "TmpRetentionDays"}
    assert rules["abort-incomplete-multipart-uploads"]["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    assert template["Resources"]["Bucket"]["DependsOn"] == "SubmitQueuePolicy"  # S3 checks it may send


def test_worker_is_fargate_in_public_subnets_with_the_efs_cache(template: dict[str, Any]) -> None:
    task = props(template, "WorkerTaskDefinition")
    assert task["NetworkMode"] == "awsvpc" and task["RequiresCompatibilities"] == ["FARGATE"]
    (volume,) = task["Volumes"]
    efs = volume["EFSVolumeConfiguration"]
    assert efs["AuthorizationConfig"] == {"AccessPointId": {"Ref": "AccessPoint"}, "IAM": "ENABLED"}
    assert efs["TransitEncryption"] == "ENABLED"
    (container,) = task["ContainerDefinitions"]
    assert container["MountPoints"] == [{"SourceVolume": volume["Name"], "ContainerPath": MOUNT_PATH}]
    # the worker's task processes may leave orphans: an init process as PID 1 reaps them
    assert container["LinuxParameters"]["InitProcessEnabled"] is True
    assert {e["Name"] for e in container["Environment"]} <= set(ENV.values())
    assert template["Parameters"]["WorkerEphemeralGiB"]["MaxValue"] * 1024 == CONTAINER.max_disk_mb
    network = props(template, "WorkerService")["NetworkConfiguration"]["AwsvpcConfiguration"]
    assert network["AssignPublicIp"] == "ENABLED"  # reaches ECR and AWS APIs without a NAT gateway
    assert network["Subnets"] == [{"Ref": "PublicSubnetA"}, {"Ref": "PublicSubnetB"}]


def test_workers_run_an_image_pinned_by_digest_and_none_before_one_is_pushed(template: dict[str, Any]) -> None:
    (container,) = props(template, "WorkerTaskDefinition")["ContainerDefinitions"]
    condition, default, given = container["Image"]["Fn::If"]
    assert condition == "DefaultWorkerImage" and given == {"Ref": "WorkerImage"}
    # no mutable :latest: before a push the task definition names a tag nobody pushes
    assert default["Fn::Sub"].endswith("/${WorkerRepository}:no-image-pushed")
    assert template["Parameters"]["WorkerImage"]["Default"] == ""
    assert template["Parameters"]["WorkerImage"]["AllowedPattern"].endswith("@sha256:[0-9a-f]{64}$")
    assert props(template, "WorkerRepository")["ImageTagMutability"] == "IMMUTABLE"
    assert props(template, "WorkerService")["DesiredCount"] == 0  # the coordinator scales it, to the backlog


def test_outputs_cover_what_bootstrap_writes(template: dict[str, Any]) -> None:
    names = set(template["Outputs"])
    assert set(settings.REQUIRED) | set(settings.OPTIONAL) | set(settings.TASK_ONLY_OPTIONAL) <= names
    fake = {name: f"x-{name}" for name in names} | {"TaskFunctionInVpc": "true", "PrivateSubnetIds": "a,b"}
    applied = apply_stack({}, "dev", "stack", "eu-west-1", fake)  # raises KeyError on a missing output
    assert applied["stages"]["dev"]["lambda_functions"][TASK_FUNCTION]["subnet_ids"] == ["a", "b"]
    assert template["Outputs"]["MountPath"]["Value"] == MOUNT_PATH


def test_stage_names_follow_the_same_rule_as_the_scripts(template: dict[str, Any]) -> None:
    assert template["Parameters"]["Stage"]["AllowedPattern"] == STAGE_PATTERN.pattern
    assert template["Parameters"]["AppName"]["AllowedPattern"] == STAGE_PATTERN.pattern
    assert STAGE_PATTERN.match(APP_NAME)


def test_efs_policy_leaves_mounts_to_iam_through_an_access_point_over_tls(template: dict[str, Any]) -> None:
    """Without a file system policy any client reaching a mount target may mount, so the roles'
    elasticfilesystem:AccessPointArn condition would enforce nothing (moto ignores the policy)."""
    statements = {s["Sid"]: s for s in props(template, "FileSystem")["FileSystemPolicy"]["Statement"]}
    allows = [s for s in statements.values() if s["Effect"] == "Allow"]
    account = {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}
    assert [s["Principal"] for s in allows] == [{"AWS": account}]
    assert {a for s in allows for a in s["Action"]} == {"elasticfilesystem:ClientMount",
                                                        "elasticfilesystem:ClientWrite"}
    assert statements["TlsOnly"]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert statements["AccessPointsOnly"]["Condition"] == {"Null": {"elasticfilesystem:AccessPointArn": "true"}}
    assert "elasticfilesystem:ClientRootAccess" in statements["AccessPointsOnly"]["Action"]
    # and the roles that mount it name the access point, which the policy now makes count
    cache = next(s for s in props(template, "DataPlanePolicy")["PolicyDocument"]["Statement"] if s["Sid"] == "Cache")
    assert cache["Condition"] == {"StringEquals": {"elasticfilesystem:AccessPointArn": {
        "Fn::GetAtt": ["AccessPoint", "Arn"]}}}
