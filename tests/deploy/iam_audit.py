"""An audit of IAM policy documents: every Allow names the app's own resources.

Rules, per Allow statement:
- no Action wildcard ("*", "s3:*", "s3:Get*"), no NotAction, no NotResource;
- Resource "*" only when every action takes no resource ARN (NO_RESOURCE_ARN, each with why);
- an ARN may end in a wildcard only after the name of one of the app's resources (an
  "anchor": "updraft-dev" in a stage's policy file, a ${...} reference to the stack's own
  resources or parameters in the template), e.g. table/updraft-dev/index/* or ${Bucket.Arn}/*;
- region and account may be "*" only in checked-in Chalice policy files (they cannot know the
  account); the stack's ARNs use ${AWS::Region} and ${AWS::AccountId}.
Resource-based policies (bucket, queue) may Allow only an AWS service, with a source condition.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

# Actions AWS authorizes on "*" only (service authorization reference, read 2026-11-01).
NO_RESOURCE_ARN = {
    # Lambda creates and removes a VPC function's network interfaces with its execution role;
    # Describe* takes no ARN and Lambda checks the others on any resource (as AWS's own
    # AWSLambdaVPCAccessExecutionRole grants them).
    "ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces", "ec2:DeleteNetworkInterface",
    "ec2:AssignPrivateIpAddresses", "ec2:UnassignPrivateIpAddresses",
    "ecr:GetAuthorizationToken",  # account-wide registry login
    "xray:PutTraceSegments", "xray:PutTelemetryRecords",  # X-Ray has no resource types
    "cloudwatch:PutMetricData",  # metrics take no ARN (a namespace condition at most)
}
PLACEHOLDER = "\x00ref\x00"  # what a ${...} reference becomes before the checks
SOURCE_KEYS = {"aws:sourcearn", "aws:sourceaccount"}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _strings(resource: Any, parameters: Mapping[str, Any]) -> Iterator[str]:
    """The strings a (possibly intrinsic) Resource value can take, references as PLACEHOLDER."""
    if isinstance(resource, str):
        yield resource
        return
    if isinstance(resource, list):
        for item in resource:
            yield from _strings(item, parameters)
        return
    if not isinstance(resource, dict) or len(resource) != 1:
        yield f"<unreadable {resource!r}>"
        return
    (fn, arg), = resource.items()
    if fn == "Fn::GetAtt":
        yield PLACEHOLDER  # an attribute (ARN) of one of the stack's own resources
    elif fn == "Ref":
        yield PLACEHOLDER if arg in parameters or not str(arg).startswith("AWS::") else f"<{arg}>"
    elif fn == "Fn::Sub":
        text = arg[0] if isinstance(arg, list) else arg
        yield re.sub(r"\$\{AWS::(Region|AccountId|Partition|URLSuffix)\}", lambda m: m.group(1).lower(),
                     re.sub(r"\$\{(?!AWS::)[^}]+\}", PLACEHOLDER, text))
    elif fn == "Fn::If":
        for branch in arg[1:]:
            if branch != {"Ref": "AWS::NoValue"}:
                yield from _strings(branch, parameters)
    elif fn == "Fn::Join":
        yield arg[0].join(next(iter(_strings(part, parameters)), "") for part in arg[1])
    else:
        yield f"<unreadable {fn}>"


def _resource_problems(text: str, anchors: Iterable[str], any_account: bool) -> list[str]:
    if text == "*":
        return ["Resource '*'"]
    if text.startswith(PLACEHOLDER):
        return []  # the ARN of one of the stack's resources, maybe with a sub-path wildcard
    if not text.startswith("arn:"):
        return [f"not an ARN: {text!r}"]
    found = []
    _, _, _, region, account, rest = [*text.split(":", 5), "", "", "", "", ""][:6]
    if not any_account and "*" in region + account:
        found.append(f"{text!r}: a wildcard region or account")
    if "*" in rest:
        literal = rest[:rest.index("*")]
        if PLACEHOLDER not in literal and not any(anchor in literal for anchor in anchors):
            found.append(f"{text!r}: a wildcard not anchored to one of the app's resources "
                         f"({', '.join(anchors) or 'none'})")
    return found


def statement_problems(statement: Mapping[str, Any], anchors: Iterable[str], any_account: bool = False,
                       parameters: Mapping[str, Any] | None = None) -> list[str]:
    if statement.get("Effect") != "Allow":
        return []
    sid = statement.get("Sid", "<no Sid>")
    found: list[str] = []
    if "NotAction" in statement or "NotResource" in statement:
        found.append(f"{sid}: NotAction/NotResource in an Allow")
    actions = [str(a) for a in _as_list(statement.get("Action", []))]
    found += [f"{sid}: action wildcard {a!r}" for a in actions if "*" in a]
    for resource in _as_list(statement.get("Resource", [])):
        for text in _strings(resource, parameters or {}):
            for problem in _resource_problems(text, list(anchors), any_account):
                if problem == "Resource '*'":
                    scoped = sorted(a for a in actions if a not in NO_RESOURCE_ARN)
                    if scoped:
                        found.append(f"{sid}: Resource '*' for actions that take an ARN: {scoped}")
                else:
                    found.append(f"{sid}: {problem}")
    return found


def policy_problems(document: Mapping[str, Any], anchors: Iterable[str], any_account: bool = False,
                    parameters: Mapping[str, Any] | None = None) -> list[str]:
    anchors = list(anchors)
    return [p for s in _as_list(document.get("Statement", []))
            for p in statement_problems(s, anchors, any_account, parameters)]


def resource_policy_problems(document: Mapping[str, Any]) -> list[str]:
    """A bucket or queue policy may Allow only a service principal, tied to a source."""
    found = []
    for statement in _as_list(document.get("Statement", [])):
        if statement.get("Effect") != "Allow":
            continue
        sid = statement.get("Sid", "<no Sid>")
        principal = statement.get("Principal")
        if not (isinstance(principal, dict) and set(principal) == {"Service"}):
            found.append(f"{sid}: allows {principal!r}, not only an AWS service")
        keys = {k.lower() for cond in statement.get("Condition", {}).values() for k in cond}
        if not keys & SOURCE_KEYS:
            found.append(f"{sid}: no aws:SourceArn / aws:SourceAccount condition")
    return found


def template_policies(template: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(where, identity policy document) for every IAM policy a template declares."""
    for logical, resource in template.get("Resources", {}).items():
        kind, props = resource.get("Type"), resource.get("Properties", {})
        if kind == "AWS::IAM::Role":
            for policy in props.get("Policies", []):
                yield f"{logical}/{policy.get('PolicyName')}", policy["PolicyDocument"]
        elif kind in ("AWS::IAM::ManagedPolicy", "AWS::IAM::Policy"):
            yield logical, props["PolicyDocument"]
        elif kind == "AWS::Serverless::Function" and isinstance(props.get("Policies"), list):
            for i, policy in enumerate(props["Policies"]):
                if isinstance(policy, dict) and "Statement" in policy:
                    yield f"{logical}/Policies[{i}]", policy


def template_resource_policies(template: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for logical, resource in template.get("Resources", {}).items():
        if resource.get("Type") in ("AWS::S3::BucketPolicy", "AWS::SQS::QueuePolicy"):
            yield logical, resource["Properties"]["PolicyDocument"]


# ---- evaluating an identity policy (Allow statements) for one request ------------------------

def _wildcard(pattern: str, text: str) -> bool:
    """IAM's ARN and StringLike matching: * any run of characters, ? one, case-sensitive."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, text, flags=re.DOTALL) is not None


def allows(document: Mapping[str, Any], action: str, resource: str, context: Mapping[str, str]) -> bool:
    """Whether some Allow statement grants `action` on `resource`, with `context` the request's
    condition keys (policy variables ${aws:...} in a Resource are filled in from it; a
    StringLike condition on a key must match its value). Enough for the app's own policies:
    no Deny, no NotAction/NotResource (the audit above refuses those)."""
    def fill(text: str) -> str:
        return re.sub(r"\$\{([^}]+)\}", lambda m: context.get(m.group(1), "\x00unresolved\x00"), text)

    for statement in _as_list(document.get("Statement", [])):
        if statement.get("Effect") != "Allow":
            continue
        if not any(_wildcard(a, action) for a in _as_list(statement.get("Action"))):
            continue
        if not any(_wildcard(fill(str(r)), resource) for r in _as_list(statement.get("Resource"))):
            continue
        like = statement.get("Condition", {}).get("StringLike", {})
        if all(key in context and any(_wildcard(v, context[key]) for v in _as_list(values))
               for key, values in like.items()):
            return True
    return False
