"""Every compute of a stage that calls AWS APIs reaches every endpoint it uses (issue 21, B3).

The computes and what they call are read from infra/stack.yaml and the Chalice config
bootstrap writes from it (tests/deploy/reachability.py says how); the network rules are
AWS's. Checked for both network layouts: the task function in the VPC (with the SQS
interface endpoint, whose private DNS every subnet of the VPC resolves to) and outside it.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from infra.names import CHALICE_CONFIG, TEMPLATE
from tests.deploy import templates
from tests.deploy.reachability import Compute, Template, fargate_computes, lambda_computes, problems

STAGE = "dev"


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    return templates.load(TEMPLATE)


def computes(t: Template) -> list[Compute]:
    chalice = json.loads(CHALICE_CONFIG.read_text())
    return lambda_computes(t, chalice, STAGE, CHALICE_CONFIG.parent) + fargate_computes(t)


def all_problems(raw: dict[str, Any], **params: str) -> list[str]:
    t = Template(raw, params)
    return [p for c in computes(t) for p in problems(t, c)]


@pytest.mark.parametrize("in_vpc", ["true", "false"])
def test_every_compute_reaches_every_endpoint_it_uses(raw: dict[str, Any], in_vpc: str) -> None:
    assert all_problems(raw, TaskFunctionInVpc=in_vpc) == []


def test_the_computes_and_their_endpoints_come_from_the_stack_and_its_roles(raw: dict[str, Any]) -> None:
    found = {c.name: c for c in computes(Template(raw, {"TaskFunctionInVpc": "true"}))}
    assert set(found) == {"function task", "WorkerService"}
    task, worker = found["function task"], found["WorkerService"]
    assert task.subnets == ["PrivateSubnetA", "PrivateSubnetB"] and task.groups == ["TaskFunctionSecurityGroup"]
    assert task.endpoints() == {"dynamodb", "s3", "sqs", "efs-nfs"}  # logs and ENIs: Lambda's own network
    assert worker.public_ip and worker.subnets == ["PublicSubnetA", "PublicSubnetB"]
    # the task role (the worker's code) and the execution role (image pull, logs through the task's ENI)
    assert worker.endpoints() == {"dynamodb", "s3", "sqs", "ecs", "efs-nfs", "ecr.api", "ecr.dkr", "logs"}
    outside = {c.name for c in computes(Template(raw, {"TaskFunctionInVpc": "false"}))}
    assert outside == {"WorkerService"}


# ---- the check finds what is wrong ------------------------------------------------------------

def edited(raw: dict[str, Any], edit: Any) -> dict[str, Any]:
    copied = copy.deepcopy(raw)
    edit(copied["Resources"])
    return copied


def test_b3_an_endpoint_admitting_only_the_task_function_cuts_the_workers_off_sqs(raw: dict[str, Any]) -> None:
    def before_the_fix(resources: dict[str, Any]) -> None:
        ingress = resources["EndpointSecurityGroup"]["Properties"]["SecurityGroupIngress"]
        ingress[:] = [r for r in ingress if r.get("SourceSecurityGroupId") == {"Ref": "TaskFunctionSecurityGroup"}]

    found = all_problems(edited(raw, before_the_fix), TaskFunctionInVpc="true")
    assert found and all(p.startswith("WorkerService -> sqs: the interface endpoint") for p in found), found
    assert all_problems(edited(raw, before_the_fix), TaskFunctionInVpc="false") == []  # no endpoint, no DNS


def test_a_function_in_private_subnets_needs_a_gateway_endpoint_not_an_internet_route(raw: dict[str, Any]) -> None:
    def s3_on_public_only(resources: dict[str, Any]) -> None:
        resources["S3GatewayEndpoint"]["Properties"]["RouteTableIds"] = [{"Ref": "PublicRouteTable"}]
        resources["PrivateDefaultRoute"] = copy.deepcopy(resources["PublicDefaultRoute"])
        resources["PrivateDefaultRoute"]["Properties"]["RouteTableId"] = {"Ref": "PrivateRouteTable"}

    found = all_problems(edited(raw, s3_on_public_only), TaskFunctionInVpc="true")
    # an internet route is of no use to a function: Lambda gives its interfaces no public IP
    assert found == [f"function task -> s3: subnet {s} has no endpoint for it and a default route to an "
                     "internet gateway, but no public IP" for s in ("PrivateSubnetA", "PrivateSubnetB")]


def test_efs_needs_nfs_both_ways_and_a_mount_target_per_zone(raw: dict[str, Any]) -> None:
    def break_efs(resources: dict[str, Any]) -> None:
        ingress = resources["EfsSecurityGroup"]["Properties"]["SecurityGroupIngress"]
        ingress[:] = [r for r in ingress if r["SourceSecurityGroupId"] != {"Ref": "WorkerSecurityGroup"}]
        del resources["MountTargetB"]

    found = all_problems(edited(raw, break_efs), TaskFunctionInVpc="false")
    assert "WorkerService -> efs-nfs: the mount targets' security groups admit no NFS from it" in found
    assert "WorkerService -> efs-nfs: no mount target in the Availability Zone of PublicSubnetB" in found


def test_a_worker_without_a_public_ip_has_no_way_out(raw: dict[str, Any]) -> None:
    def no_public_ip(resources: dict[str, Any]) -> None:
        network = resources["WorkerService"]["Properties"]["NetworkConfiguration"]["AwsvpcConfiguration"]
        network["AssignPublicIp"] = "DISABLED"

    found = all_problems(edited(raw, no_public_ip), TaskFunctionInVpc="false")
    broken = {p.split(":")[0] for p in found}
    # S3 and DynamoDB still have their gateway endpoints; the rest needed the internet gateway
    assert broken == {f"WorkerService -> {e}" for e in ("ecr.api", "ecr.dkr", "ecs", "logs", "sqs")}
