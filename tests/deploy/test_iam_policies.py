"""The IAM policies grant only the app's own resources: the stack's roles and managed
policies, its bucket and queue policies, and the Chalice policy file of every stage."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from infra.names import APP_NAME, CHALICE_CONFIG, TEMPLATE
from tests.deploy import templates
from tests.deploy.iam_audit import (
    policy_problems,
    resource_policy_problems,
    template_policies,
    template_resource_policies,
)

CHALICE_DIR = CHALICE_CONFIG.parent


def allow(action: Any, resource: Any, **extra: Any) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": [{"Sid": "S", "Effect": "Allow", "Action": action,
                                                    "Resource": resource, **extra}]}


@pytest.mark.parametrize(("document", "why"), [
    (allow("dynamodb:PutItem", "*"), "Resource '*' for actions that take an ARN"),
    (allow(["ec2:DescribeNetworkInterfaces", "sqs:SendMessage"], "*"), "['sqs:SendMessage']"),
    (allow("sqs:*", "arn:aws:sqs:us-east-1:123456789012:updraft-dev-events"), "action wildcard"),
    (allow("*", "arn:aws:sqs:us-east-1:123456789012:updraft-dev-events"), "action wildcard"),
    (allow("sqs:SendMessage", "arn:aws:sqs:*:*:*"), "not anchored"),
    (allow("s3:GetObject", "arn:aws:s3:::*/*"), "not anchored"),
    (allow("lambda:InvokeFunction", "arn:aws:lambda:*:*:function:updraft-prod-task"), "wildcard region"),
    (allow("s3:GetObject", {"Fn::Sub": "arn:${AWS::Partition}:s3:::*"}), "not anchored"),
    (allow("s3:GetObject", "updraft-dev-bucket"), "not an ARN"),
    ({"Statement": [{"Sid": "S", "Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}]}, "NotAction"),
])
def test_audit_flags_broad_grants(document: dict[str, Any], why: str) -> None:
    problems = policy_problems(document, anchors=["updraft-dev"])
    assert problems and any(why in p for p in problems), problems


@pytest.mark.parametrize("document", [
    allow(["ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces"], "*"),
    allow("dynamodb:Query", ["arn:aws:dynamodb:us-east-1:123456789012:table/updraft-dev",
                             "arn:aws:dynamodb:us-east-1:123456789012:table/updraft-dev/index/*"]),
    allow("s3:GetObject", {"Fn::Sub": "${Bucket.Arn}/*"}),
    allow("sqs:SendMessage", {"Fn::GetAtt": ["EventsQueue", "Arn"]}),
    {"Statement": [{"Effect": "Deny", "Action": "s3:*", "Resource": "*", "Principal": "*"}]},
])
def test_audit_accepts_grants_on_named_resources(document: dict[str, Any]) -> None:
    assert policy_problems(document, anchors=["updraft-dev"]) == []


def test_stack_policies_grant_only_the_stacks_resources() -> None:
    template = templates.load(TEMPLATE)
    found = list(template_policies(template))
    assert len(found) >= 6  # the roles of the task function and the worker, their shared policy, ...
    problems = [f"{where}: {p}" for where, doc in found
                for p in policy_problems(doc, anchors=[], parameters=template["Parameters"])]
    assert problems == []


def test_stack_resource_policies_admit_only_aws_services_from_our_resources() -> None:
    template = templates.load(TEMPLATE)
    found = list(template_resource_policies(template))
    assert {where for where, _ in found} == {"BucketPolicy", "SubmitQueuePolicy"}
    assert [f"{w}: {p}" for w, doc in found for p in resource_policy_problems(doc)] == []


def chalice_stages() -> dict[str, Any]:
    if not CHALICE_CONFIG.exists():
        return {}
    stages: dict[str, Any] = json.loads(CHALICE_CONFIG.read_text()).get("stages", {})
    return stages


@pytest.mark.parametrize("stage", sorted(chalice_stages()) or [pytest.param("none", marks=pytest.mark.skip(
    reason=".chalice/config.json has no stages yet"))])
def test_each_chalice_stage_uses_an_audited_policy_file(stage: str) -> None:
    config = json.loads(CHALICE_CONFIG.read_text())
    entry = config["stages"][stage]
    autogen = entry.get("autogen_policy", config.get("autogen_policy", True))
    assert autogen is False, f"stage {stage}: autogen_policy lets Chalice grant '*' on whatever the code calls"
    policy_file = entry.get("iam_policy_file") or config.get("iam_policy_file") or f"policy-{stage}.json"
    path: Path = CHALICE_DIR / policy_file
    assert path.exists(), f"stage {stage}: {path} is missing"
    document = json.loads(path.read_text())
    assert policy_problems(document, anchors=[f"{APP_NAME}-{stage}"], any_account=True) == []


# ---- exact names, inputs in other buckets (issue 23, item 9) -----------------------------------

ACCOUNT, REGION = "123456789012", "us-east-1"
CONTEXT = {"aws:PrincipalAccount": ACCOUNT, "aws:RequestedRegion": REGION}


def committed(stage: str, role: str) -> dict[str, Any]:
    from chalicelib.backends.aws.iam_policy import policy_file

    document: dict[str, Any] = json.loads((CHALICE_DIR / policy_file(stage, role)).read_text())
    return document


@pytest.mark.parametrize("role", ["api_handler", "coordinator", "submit", "sweeper", "task"])
def test_a_stages_bucket_pattern_matches_its_own_bucket_only(role: str) -> None:
    from tests.deploy.iam_audit import allows

    own = f"arn:aws:s3:::updraft-dev-{ACCOUNT}-{REGION}/runs/r/x"
    policy = committed("dev", role)
    assert allows(policy, "s3:GetObject", own, CONTEXT)
    # the buckets of stages whose names start with "dev-" (stage names allow hyphens), another
    # account's, another region's
    for other in (f"updraft-dev-old-{ACCOUNT}-{REGION}", f"updraft-dev-{ACCOUNT[:-1]}9-{REGION}",
                  f"updraft-dev-{ACCOUNT}-eu-west-1", f"updraft-dev-x-{ACCOUNT}-{REGION}"):
        assert not allows(policy, "s3:GetObject", f"arn:aws:s3:::{other}/runs/r/x", CONTEXT), (role, other)


@pytest.mark.parametrize("role", ["api_handler", "coordinator", "submit", "sweeper", "task"])
def test_log_groups_are_the_functions_own(role: str) -> None:
    from tests.deploy.iam_audit import allows

    policy = committed("dev", role)
    mine = "task-512" if role == "task" else role
    stream = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/updraft-dev-{mine}:log-stream:s"
    assert allows(policy, "logs:PutLogEvents", stream, CONTEXT)
    other = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/updraft-dev-old-{mine}:log-stream:s"
    assert not allows(policy, "logs:PutLogEvents", other, CONTEXT)


def test_inputs_in_other_buckets_are_readable_where_they_are_read() -> None:
    """UPDRAFT_INPUT_BUCKETS: the API and submit check inputs at submit, the task runners read
    them; the coordinator and the sweeper never do. Before, every role was limited to the
    stage's bucket, so inputs elsewhere were reported missing."""
    from chalicelib.backends.aws.config import AwsConfig
    from chalicelib.backends.aws.iam_policy import ROLES, TASK_RUNNER, role_policy, stage_env
    from infra.chalice_config import input_read_arns
    from tests.deploy.iam_audit import allows

    env = {**stage_env("dev", CHALICE_CONFIG), "UPDRAFT_INPUT_BUCKETS": "lab-inputs/shared, s3://public-genomes"}
    cfg = AwsConfig.from_env(env)
    reads = {"api_handler", "submit", TASK_RUNNER}
    for role in (*ROLES, TASK_RUNNER):
        policy = role_policy(cfg, role, "updraft-dev-")
        assert policy_problems(policy, anchors=["updraft-dev", "lab-inputs", "public-genomes"], any_account=True) == []
        ok = role in reads
        assert allows(policy, "s3:GetObject", "arn:aws:s3:::lab-inputs/shared/a.txt", CONTEXT) is ok, role
        assert allows(policy, "s3:GetObject", "arn:aws:s3:::public-genomes/hg38/x.fa", CONTEXT) is ok, role
        assert allows(policy, "s3:ListBucket", "arn:aws:s3:::lab-inputs", {**CONTEXT, "s3:prefix": "shared/"}) is ok
        # outside the prefix: neither read nor listed
        assert not allows(policy, "s3:GetObject", "arn:aws:s3:::lab-inputs/private/a.txt", CONTEXT)
        assert not allows(policy, "s3:ListBucket", "arn:aws:s3:::lab-inputs", {**CONTEXT, "s3:prefix": "private/"})
        assert not allows(policy, "s3:PutObject", "arn:aws:s3:::lab-inputs/shared/a.txt", CONTEXT)
    # the stack's task runners (InputReadArns, which bootstrap fills from the same setting)
    config = {"stages": {"dev": {"environment_variables": env}}}
    assert input_read_arns(config, "dev") == ["arn:aws:s3:::lab-inputs", "arn:aws:s3:::lab-inputs/shared/*",
                                              "arn:aws:s3:::public-genomes", "arn:aws:s3:::public-genomes/*"]
