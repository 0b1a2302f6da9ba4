"""scripts/bootstrap STAGE: create or update the stage's stack, then write its outputs into
.chalice/config.json for that stage (infra/chalice_config.py says which keys).

    scripts/bootstrap dev
    scripts/bootstrap prod --region eu-west-1 --param WorkerCpu=2048 --param WorkerMemory=8192
    scripts/bootstrap dev --no-efs          # task function outside the VPC: no hourly charge

Idempotent: run it again to apply a changed template or parameter; an unchanged stack is
left alone. Parameters not given keep the value they had (the template's default at first).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from infra import chalice_config, fargate, settings, warm_throughput, worker_image
from infra.cfn import Stacks, error_code
from infra.cli import add_common, run, session
from infra.errors import DeployError
from infra.names import APP_NAME, CHALICE_CONFIG, TASK_FUNCTION, TEMPLATE, TEMPLATE_BODY_MAX, function_name, stack_name


def template_body(path: Path = TEMPLATE) -> str:
    body = path.read_text(encoding="utf-8")
    size = len(body.encode("utf-8"))
    if size > TEMPLATE_BODY_MAX:
        raise DeployError(f"{path} is {size} bytes; CloudFormation takes at most {TEMPLATE_BODY_MAX} inline")
    return body


def function_exists(sess: Any, name: str) -> bool:
    try:
        sess.client("lambda").get_function(FunctionName=name)
    except Exception as exc:
        if error_code(exc) == "ResourceNotFoundException":
            return False
        raise
    return True


ECS_SERVICE = "ecs.amazonaws.com"
ROLE_SETTLE_S = 15.0  # IAM is eventually consistent: ECS may not see a brand-new role at once


def ensure_ecs_service_linked_role(sess: Any, say: Callable[[str], None] = print,
                                   sleep: Callable[[float], None] = time.sleep) -> bool:
    """Create AWSServiceRoleForECS if the account has none yet; returns whether it did.

    ECS creates it on an account's first cluster, but the stack's cluster and service are
    created in parallel with it: on a fresh account the service fails to assume a role that
    does not exist yet. Created here, before the stack, that race cannot happen.
    """
    iam = sess.client("iam")
    prefix = f"/aws-service-role/{ECS_SERVICE}/"
    if iam.list_roles(PathPrefix=prefix).get("Roles"):
        return False
    try:
        iam.create_service_linked_role(AWSServiceName=ECS_SERVICE)
    except Exception as exc:  # created meanwhile (by ECS, or another bootstrap)
        if error_code(exc) in ("InvalidInput", "EntityAlreadyExists") and iam.list_roles(PathPrefix=prefix)["Roles"]:
            return False
        raise
    say(f"created the ECS service-linked role (first use of ECS in this account); waiting {ROLE_SETTLE_S:.0f} s "
        "for IAM to propagate it")
    sleep(ROLE_SETTLE_S)
    return True


def bootstrap(stage: str, sess: Any, params: Mapping[str, str] | None = None,
              config_path: Path = CHALICE_CONFIG, say: Callable[[str], None] = print,
              stacks: Stacks | None = None, allow_replace: bool = False) -> dict[str, str]:
    """Create/update the stack and write the stage's settings; returns the stack's outputs."""
    name = stack_name(stage)
    wanted = {"Stage": stage, "AppName": APP_NAME, **(params or {})}
    stacks = stacks or Stacks(sess.client("cloudformation"), say=say, allow_replace=allow_replace)
    previous = {p["ParameterKey"]: p["ParameterValue"] for p in (stacks.describe(name) or {}).get("Parameters", [])}
    fargate.check_params(wanted, previous)  # one line now rather than a rolled-back update
    if wanted.get("WorkerImage"):
        worker_image.check_pinned(wanted["WorkerImage"])
    # the task runners read the inputs the stage's policies allow (UPDRAFT_INPUT_BUCKETS)
    stage_config = chalice_config.load(config_path)
    inputs = chalice_config.input_read_arns(stage_config, stage)
    wanted.setdefault("InputReadArns", ",".join(inputs))
    # the table takes the stage's advertised completion rate from its first second
    rate = warm_throughput.stage_rate(stage_config, stage)
    if warm_throughput.PARAMETER not in wanted:
        wanted[warm_throughput.PARAMETER] = warm_throughput.stack_value(rate, previous)
        if rate is not None and int(wanted[warm_throughput.PARAMETER]) > warm_throughput.warm_write_units(rate):
            say(f"  note: the table keeps its warm throughput of {wanted[warm_throughput.PARAMETER]} write units/s "
                f"({warm_throughput.SETTING}={rate} needs less; warm throughput cannot be lowered)")
    ensure_ecs_service_linked_role(sess, say, stacks.sleep)
    if "TaskFunctionDeployed" not in wanted:
        # the task function's async destinations need the function: present after `chalice deploy`
        deployed = function_exists(sess, function_name(stage, TASK_FUNCTION))
        wanted["TaskFunctionDeployed"] = "true" if deployed else "false"
    outputs = stacks.ensure(name, template_body(), wanted, {"updraft:app": APP_NAME, "updraft:stage": stage})
    has_image = bool(wanted.get("WorkerImage", previous.get("WorkerImage")))
    config = chalice_config.load(config_path)
    chalice_config.save(config_path, chalice_config.apply_stack(config, stage, name, sess.region_name, outputs,
                                                                worker_image=has_image))
    say(f"{config_path}: stage {stage!r} now names the stack's resources")
    if not has_image:
        say("  note: no worker image yet: nothing starts workers (UPDRAFT_MAX_WORKERS=0) and container-placed "
            f"tasks wait until `scripts/deploy {stage} --push-worker` (or --worker-image REPOSITORY@sha256:...)")
    for key in settings.unread_outputs():
        say(f"  note: output {key} is not written: chalicelib.backends.aws.config has no setting for it yet")
    return outputs


def parse_params(pairs: list[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise DeployError(f"--param takes Key=Value, got {pair!r}")
        params[key] = value
    return params


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="scripts/bootstrap", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common(parser)
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                        help="a stack parameter (infra/stack.yaml lists them); repeatable")
    parser.add_argument("--worker-image", metavar="REPOSITORY@sha256:DIGEST",
                        help="run this image, by digest (scripts/deploy --push-worker sets it for you)")
    parser.add_argument("--no-efs", action="store_true",
                        help="keep the task function outside the VPC (no EFS mount, no hourly endpoint charge)")
    parser.add_argument("--config", type=Path, default=CHALICE_CONFIG, help="Chalice config to write")
    parser.add_argument("--allow-replace", action="store_true",
                        help="go ahead with an update that replaces the table, bucket, file system or a queue")
    return parser


def params_from_args(args: argparse.Namespace) -> dict[str, str]:
    params = parse_params(args.param)
    if args.worker_image:
        params["WorkerImage"] = args.worker_image
    if args.no_efs:
        params["TaskFunctionInVpc"] = "false"
    return params


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def body() -> int:
        outputs = bootstrap(args.stage, session(args.region, args.profile), params_from_args(args), args.config,
                            allow_replace=args.allow_replace)
        print(f"table {outputs['TableName']}, bucket {outputs['BucketName']}; next: chalice deploy --stage "
              f"{args.stage} (or scripts/deploy {args.stage}, which does both)")
        return 0

    return run("bootstrap", body)


if __name__ == "__main__":
    raise SystemExit(main())
