"""Every compute of a stage that calls AWS APIs reaches every endpoint it uses (issue 21, B3).

The computes and what they call are read from infra/stack.yaml and the Chalice config
bootstrap writes from it (tests/deploy/reachability.py says how); the network rules are
AWS's. Checked for both network layouts: the task function in the VPC (with the SQS
interface endpoint, whose private DNS every subnet of the VPC resolves to) and outside it.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
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
    sized = {f"function task-{mb}" for mb in (512, 1769, 10240)}  # the other memory sizes (docs/aws.md, Sizes)
    assert set(found) == {"function task", "WorkerService", *sized}
    task, worker = found["function task"], found["WorkerService"]
    for name in sized:
        assert (found[name].subnets, found[name].groups) == (task.subnets, task.groups)
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
    functions = ("task", "task-512", "task-1769", "task-10240")
    assert sorted(found) == sorted(f"function {f} -> s3: subnet {s} has no endpoint for it and a default route "
                                   "to an internet gateway, but no public IP"
                                   for f in functions for s in ("PrivateSubnetA", "PrivateSubnetB"))


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


# ---- cross-check with what the code calls ---------------------------------------------------

class RecordedInvokes:
    """A Lambda client that only records the coordinator's async invocations of the task function."""

    def __init__(self) -> None:
        self.payloads: list[dict[str, Any]] = []

    def invoke(self, **kwargs: Any) -> dict[str, Any]:
        self.payloads.append(json.loads(kwargs["Payload"]))
        return {"StatusCode": 202}


def test_the_services_the_code_calls_are_among_those_each_compute_reaches(raw: dict[str, Any],
                                                                        tmp_path: Path) -> None:
    """The task function's handler and the worker loop, run on moto: every service they call
    is one the stack's roles gave that compute, so it is one the checks above proved reachable."""
    import boto3.session

    from chalicelib.backends.aws.observability import obs
    from chalicelib.backends.aws.task_function import handle_task
    from chalicelib.engine import events as ev
    from chalicelib.engine.lifecycle import create_run
    from chalicelib.engine.spec import RunSpec
    from chalicelib.workflow.formats import native
    from tests.contract.awskit import make_cloud, mocked_aws
    from workers.worker import Worker

    called: set[str] = set()
    with mocked_aws():
        session = boto3.session.Session(region_name="us-east-1")
        session.events.register("before-call", lambda model, **kw: called.add(model.service_model.endpoint_prefix))
        invokes = RecordedInvokes()
        cloud, _ = make_cloud(session=session, overrides={"lambda": invokes}, task_shards=2,
                              workroot=str(tmp_path), worker_lease_s=3.0)
        spec = RunSpec.of(native.from_data({"name": "w", "tasks": [
            {"id": "f", "shell": "echo f > f.txt", "outputs": ["f.txt"], "placement": "function"},
            {"id": "c", "shell": "echo c > c.txt", "outputs": ["c.txt"], "placement": "container"}]}))
        run = create_run(spec, cloud.store, cloud.blobs, cloud.clock())
        cloud.shell.apply(cloud.coordinator.handle([ev.Start(run.run_id)]))
        (payload,) = invokes.payloads
        called.clear()
        assert handle_task(payload, cloud, obs())["event"]["kind"] == "succeeded"
        by_task_function = set(called)
        called.clear()
        assert Worker(cloud, obs(), idle_s=1.0, lease_s=3.0, poll_wait_s=0.5).run() == 0
        by_worker = set(called)
    found = {c.name: c for c in computes(Template(raw, {"TaskFunctionInVpc": "true"}))}
    assert {"dynamodb", "s3", "sqs"} <= by_task_function <= found["function task"].endpoints()
    assert {"dynamodb", "s3", "sqs"} <= by_worker <= found["WorkerService"].endpoints()


def test_the_function_in_the_vpc_never_needs_sts(raw: dict[str, Any]) -> None:
    """The adapters call STS GetCallerIdentity (no IAM permission, so no role shows it) only to
    fill an {account} placeholder; the task function in the VPC has no route to STS, so the
    names bootstrap writes for it must have none."""
    from chalicelib.backends.aws.config import AwsConfig
    from infra.chalice_config import apply_stack

    t = Template(raw, {"TaskFunctionInVpc": "true"})
    outputs = t.outputs() | {"BucketName": "updraft-dev-123456789012-us-east-1"}  # as CloudFormation fills it
    config = apply_stack(json.loads(CHALICE_CONFIG.read_text()), STAGE, "stack", t.region, outputs)
    env = {**config.get("environment_variables", {}), **config["stages"][STAGE]["environment_variables"]}
    cfg = AwsConfig.from_env(env)
    assert not cfg.needs_account() and "{region}" not in cfg.bucket
    assert "sts" not in {e for c in computes(t) if c.kind == "lambda" for e in c.endpoints()}
