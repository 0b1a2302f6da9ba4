"""Which AWS endpoints each compute of a stage can reach, read from the CloudFormation template.

A compute is something in the stage's VPC that calls AWS APIs: a Lambda function whose
Chalice config (as bootstrap writes it from the stack's outputs) gives it subnets, and every
ECS service's Fargate task. What it calls comes from its IAM roles: every allowed action's
service is an endpoint it must reach (the Fargate execution role's too: the agent pulls the
image and ships logs through the task's network interface). Actions AWS performs outside the
function's network (Lambda managing its interfaces and shipping its logs) need no route.

For each (compute, endpoint) the rules of AWS networking, as the VPC applies them:
- an interface endpoint of that service with private DNS in the VPC takes over the service's
  public name for every subnet of the VPC: its security group must admit TCP 443 from the
  compute's group (or a CIDR holding the compute's subnets), and the compute's group must
  allow 443 out to it;
- otherwise a gateway endpoint (S3, DynamoDB) on the route table of each of the compute's
  subnets, or a default route to a NAT gateway, or to an internet gateway when the compute has
  a public IP (a Lambda function never has one); the group must allow 443 out to anywhere;
- EFS (elasticfilesystem:Client*): NFS (2049) out to the mount targets, admitted by their
  group, with a mount target in the Availability Zone of each of the compute's subnets.

Only the template is read: conditions are evaluated for given parameter values, and
references stay logical ids (`Ref: PrivateSubnetA` is the subnet "PrivateSubnetA").
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HTTPS, NFS = 443, 2049
ANYWHERE = "0.0.0.0/0"

# Actions AWS itself performs for a Lambda function, outside the function's network.
LAMBDA_PLATFORM = re.compile(r"^(logs:|xray:|ec2:(Create|Describe|Delete)NetworkInterfaces?$|"
                             r"ec2:(Assign|Unassign)PrivateIpAddresses$)")


def endpoints_of(action: str, kind: str) -> set[str]:
    """The endpoints (VPC endpoint service suffixes; "efs-nfs" for NFS) an action needs."""
    if kind == "lambda" and LAMBDA_PLATFORM.match(action):
        return set()
    service, _, name = action.partition(":")
    if service == "elasticfilesystem" and name.startswith("Client"):
        return {"efs-nfs"}
    if service == "ecr":  # the registry API, then the layers, which ECR serves from S3
        return {"ecr.api"} if name == "GetAuthorizationToken" else {"ecr.dkr", "s3"}
    return {service}


@dataclass
class Compute:
    name: str
    kind: str  # "lambda" | "fargate"
    subnets: list[str]
    groups: list[str]
    public_ip: bool
    actions: set[str] = field(default_factory=set)

    def endpoints(self) -> set[str]:
        return {e for a in self.actions for e in endpoints_of(a, self.kind)}


@dataclass
class Rule:
    port_from: int
    port_to: int
    protocol: str
    cidr: str | None = None
    group: str | None = None

    def admits(self, port: int) -> bool:
        if self.protocol in ("-1", "all"):
            return True
        return self.protocol in ("tcp", "6") and self.port_from <= port <= self.port_to


class Template:
    """A template with its conditions evaluated for `params` (defaults for the rest)."""

    def __init__(self, template: Mapping[str, Any], params: Mapping[str, str] | None = None,
                 region: str = "us-east-1") -> None:
        self.raw = template
        self.region = region
        self.params = {k: str(v.get("Default", "")) for k, v in template.get("Parameters", {}).items()}
        self.params.update(params or {})
        self.conditions: dict[str, bool] = {}
        for name in template.get("Conditions", {}):
            self.condition(name)
        self.resources = {k: r for k, r in template["Resources"].items()
                          if "Condition" not in r or self.conditions[r["Condition"]]}

    # ---- intrinsic functions ----------------------------------------------------------------

    def condition(self, name: str) -> bool:
        if name not in self.conditions:
            self.conditions[name] = bool(self.value(self.raw["Conditions"][name]))
        return self.conditions[name]

    def value(self, node: Any) -> Any:
        """Parameters and conditions resolved; a resource reference becomes its logical id."""
        if isinstance(node, list):
            return [v for v in (self.value(n) for n in node) if v is not None]
        if not isinstance(node, dict):
            return node
        if len(node) != 1:
            return {k: self.value(v) for k, v in node.items()}
        (fn, arg), = node.items()
        if fn == "Ref":
            if arg == "AWS::NoValue":
                return None
            if arg == "AWS::Region":
                return self.region
            return self.params.get(arg, arg)
        if fn == "Fn::GetAtt":
            return arg[0] if isinstance(arg, list) else str(arg).split(".")[0]
        if fn == "Fn::If":
            return self.value(arg[1] if self.condition(arg[0]) else arg[2])
        if fn == "Fn::Equals":
            left, right = (self.value(a) for a in arg)
            return str(left) == str(right)
        if fn == "Fn::Not":
            return not self.value(arg[0])
        if fn == "Fn::And":
            return all(self.value(a) for a in arg)
        if fn == "Fn::Or":
            return any(self.value(a) for a in arg)
        if fn == "Condition":
            return self.condition(arg)
        if fn == "Fn::Join":
            return str(arg[0]).join(str(v) for v in self._flat(self.value(arg[1])))
        if fn == "Fn::Select":
            return self.value(arg[1])[int(arg[0])] if isinstance(self.value(arg[1]), list) else f"az{arg[0]}"
        if fn == "Fn::GetAZs":
            return ["az0", "az1", "az2"]
        if fn == "Fn::Sub":
            text = arg[0] if isinstance(arg, list) else arg
            return re.sub(r"\$\{([^}!]+)\}", lambda m: str(self.value({"Ref": m.group(1)})), text)
        return {fn: self.value(arg)}

    @staticmethod
    def _flat(value: Any) -> list[Any]:
        return value if isinstance(value, list) else [value]

    def props(self, logical: str) -> dict[str, Any]:
        found: dict[str, Any] = self.value(self.resources[logical].get("Properties", {}))
        return found

    def of_type(self, kind: str) -> Iterator[tuple[str, dict[str, Any]]]:
        for logical, resource in self.resources.items():
            if resource["Type"] == kind:
                yield logical, self.props(logical)

    def outputs(self) -> dict[str, str]:
        """Every output's value, references as logical ids (what bootstrap would receive)."""
        found = {}
        for key, output in self.raw.get("Outputs", {}).items():
            if "Condition" in output and not self.conditions[output["Condition"]]:
                continue
            found[key] = str(self.value(output["Value"]))
        return found

    # ---- IAM -----------------------------------------------------------------------------------

    def role_actions(self, role: str) -> set[str]:
        """Every action an Allow statement of the role's inline, managed or attached policies names."""
        documents = [p["PolicyDocument"] for p in self.props(role).get("Policies", [])]
        for arn in self.props(role).get("ManagedPolicyArns", []):
            if arn in self.resources:
                documents.append(self.props(arn)["PolicyDocument"])
        for _, policy in self.of_type("AWS::IAM::Policy"):
            if role in policy.get("Roles", []):
                documents.append(policy["PolicyDocument"])
        return actions_of(documents)

    # ---- network -------------------------------------------------------------------------------

    def rules(self, group: str, direction: str) -> list[Rule]:
        key = "SecurityGroupIngress" if direction == "in" else "SecurityGroupEgress"
        entries = list(self.props(group).get(key, []))
        standalone = "AWS::EC2::SecurityGroupIngress" if direction == "in" else "AWS::EC2::SecurityGroupEgress"
        entries += [p for _, p in self.of_type(standalone) if p.get("GroupId") == group]
        if direction == "out" and not self.props(group).get("SecurityGroupEgress") and not any(
                p.get("GroupId") == group for _, p in self.of_type(standalone)):
            entries = [{"IpProtocol": "-1", "CidrIp": ANYWHERE}]  # AWS's default egress rule
        peer = "SourceSecurityGroupId" if direction == "in" else "DestinationSecurityGroupId"
        return [Rule(int(e.get("FromPort", -1)), int(e.get("ToPort", -1)), str(e.get("IpProtocol")),
                     e.get("CidrIp"), e.get(peer)) for e in entries]

    def subnet_cidr(self, subnet: str) -> str:
        return str(self.props(subnet)["CidrBlock"])

    def subnet_az(self, subnet: str) -> str:
        return str(self.props(subnet)["AvailabilityZone"])

    def route_table(self, subnet: str) -> str | None:
        for _, assoc in self.of_type("AWS::EC2::SubnetRouteTableAssociation"):
            if assoc["SubnetId"] == subnet:
                return str(assoc["RouteTableId"])
        return None  # the VPC's main route table: nothing but the local route here

    def default_route(self, table: str | None) -> dict[str, Any] | None:
        for _, route in self.of_type("AWS::EC2::Route"):
            if route["RouteTableId"] == table and route.get("DestinationCidrBlock") == ANYWHERE:
                return route
        return None


def actions_of(documents: list[Any]) -> set[str]:
    found: set[str] = set()
    for document in documents:
        statements = document.get("Statement", [])
        for statement in statements if isinstance(statements, list) else [statements]:
            if statement.get("Effect") == "Allow":
                action = statement.get("Action", [])
                found.update(action if isinstance(action, list) else [action])
    return found


def _within(inner: str, outer: str) -> bool:
    return ipaddress.ip_network(inner).subnet_of(ipaddress.ip_network(outer))  # type: ignore[arg-type]


# ---- the computes -------------------------------------------------------------------------------

def fargate_computes(t: Template) -> list[Compute]:
    found = []
    for logical, service in t.of_type("AWS::ECS::Service"):
        vpc = service["NetworkConfiguration"]["AwsvpcConfiguration"]
        task = t.props(service["TaskDefinition"])
        actions: set[str] = set()
        for key in ("TaskRoleArn", "ExecutionRoleArn"):
            if task.get(key) in t.resources:
                actions |= t.role_actions(task[key])
        found.append(Compute(logical, "fargate", list(vpc["Subnets"]), list(vpc.get("SecurityGroups", [])),
                             vpc.get("AssignPublicIp") == "ENABLED", actions))
    return found


def lambda_computes(t: Template, chalice: Mapping[str, Any], stage: str, policy_dir: Path) -> list[Compute]:
    """The stage's functions that bootstrap's Chalice config puts in subnets.

    `chalice` is the project's .chalice/config.json; the stack's part of it is what
    infra.chalice_config.apply_stack writes from this template's outputs (as logical ids).
    """
    from infra.chalice_config import apply_stack

    config = apply_stack(chalice, stage, "stack", t.region, t.outputs())
    entry = config["stages"][stage]
    found = []
    for name, fn in entry.get("lambda_functions", {}).items():
        subnets = fn.get("subnet_ids") or entry.get("subnet_ids") or config.get("subnet_ids")
        if not subnets:
            continue
        groups = fn.get("security_group_ids") or entry.get("security_group_ids") or []
        role = fn.get("iam_role_arn")
        if role in t.resources:
            actions = t.role_actions(role)
        else:  # a Chalice-made role with the stage's policy file
            policy = fn.get("iam_policy_file") or entry.get("iam_policy_file") or f"policy-{stage}.json"
            actions = actions_of([json.loads((policy_dir / policy).read_text())])
        found.append(Compute(f"function {name}", "lambda", list(subnets), list(groups), False, actions))
    return found


# ---- the checks ----------------------------------------------------------------------------------

def _egress_to(t: Template, c: Compute, port: int, cidr: str, group: str | None = None) -> bool:
    """Some group of `c` lets `port` out to `cidr` (or to the security group `group`)."""
    return any(r.admits(port) and bool((r.cidr and _within(cidr, r.cidr)) or (group and r.group == group))
               for g in c.groups for r in t.rules(g, "out"))


def _ingress_from(t: Template, groups: list[str], c: Compute, port: int) -> bool:
    """Some group of `groups` admits `port` from every subnet of `c` (by its group or a CIDR)."""
    return all(any(r.admits(port) and bool(r.group in c.groups or (r.cidr and _within(t.subnet_cidr(s), r.cidr)))
                   for g in groups for r in t.rules(g, "in")) for s in c.subnets)


def interface_endpoints(t: Template) -> dict[str, dict[str, Any]]:
    """Service suffix -> properties of each interface endpoint with private DNS."""
    found = {}
    for _, ep in t.of_type("AWS::EC2::VPCEndpoint"):
        if ep.get("VpcEndpointType") == "Interface" and ep.get("PrivateDnsEnabled"):
            found[str(ep["ServiceName"]).split(f"com.amazonaws.{t.region}.", 1)[-1]] = ep
    return found


def gateway_endpoints(t: Template) -> dict[str, set[str]]:
    """Service suffix -> the route tables it is on."""
    found: dict[str, set[str]] = {}
    for _, ep in t.of_type("AWS::EC2::VPCEndpoint"):
        if ep.get("VpcEndpointType") == "Gateway":
            service = str(ep["ServiceName"]).split(f"com.amazonaws.{t.region}.", 1)[-1]
            found.setdefault(service, set()).update(ep.get("RouteTableIds", []))
    return found


def problems(t: Template, c: Compute) -> list[str]:
    """Why `c` cannot reach an endpoint it uses ([] when it reaches all)."""
    found = []
    private_dns, gateways = interface_endpoints(t), gateway_endpoints(t)
    for endpoint in sorted(c.endpoints()):
        where = f"{c.name} -> {endpoint}"
        if endpoint == "efs-nfs":
            targets = [p for _, p in t.of_type("AWS::EFS::MountTarget")]
            groups = [g for p in targets for g in p.get("SecurityGroups", [])]
            if not targets or not all(any(_egress_to(t, c, NFS, t.subnet_cidr(p["SubnetId"]), g)
                                          for g in p.get("SecurityGroups", [])) for p in targets):
                found.append(f"{where}: its security groups allow no NFS (2049) out to the mount targets")
            if not _ingress_from(t, groups, c, NFS):
                found.append(f"{where}: the mount targets' security groups admit no NFS from it")
            azs = {t.subnet_az(p["SubnetId"]) for p in targets}
            for subnet in c.subnets:
                if t.subnet_az(subnet) not in azs:
                    found.append(f"{where}: no mount target in the Availability Zone of {subnet}")
            continue
        if endpoint in private_dns:  # the service's public name resolves to this endpoint
            ep = private_dns[endpoint]
            if not _ingress_from(t, list(ep.get("SecurityGroupIds", [])), c, HTTPS):
                found.append(f"{where}: the interface endpoint (private DNS) admits no HTTPS from its "
                             f"security groups {c.groups} or subnets {c.subnets}")
            if not any(_egress_to(t, c, HTTPS, t.subnet_cidr(s), g)
                       for s in ep.get("SubnetIds", []) for g in ep.get("SecurityGroupIds", [])):
                found.append(f"{where}: its security groups allow no HTTPS out to the interface endpoint")
            continue
        if not _egress_to(t, c, HTTPS, ANYWHERE):
            found.append(f"{where}: its security groups allow no HTTPS out to the service's public addresses")
        for subnet in c.subnets:
            table = t.route_table(subnet)
            if table is not None and table in gateways.get(endpoint, set()):
                continue
            route = t.default_route(table)
            if route and route.get("NatGatewayId"):
                continue
            if route and route.get("GatewayId") and c.public_ip:
                continue
            why = ("a default route to an internet gateway, but no public IP" if route and route.get("GatewayId")
                   else "no default route")
            found.append(f"{where}: subnet {subnet} has no endpoint for it and {why}")
    return found
