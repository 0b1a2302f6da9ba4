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
