"""scripts/deploy STAGE: everything from a clone to a working stage.

    1. scripts/bootstrap STAGE          the stack, and its names in .chalice/config.json;
                                        the memo signing key, once (infra/memo_key.py)
    2. (--push-worker) worker image     docker build workers/Dockerfile, push to the stack's ECR
    3. tool layers                      publish layers/dist/*.zip (layers/build), if any
    4. chalice deploy --stage STAGE     the functions, the API, the queue triggers, the schedule
    5. bootstrap again                  now that the task function exists: its async destinations
    6. what Chalice cannot set          task function: EFS mount, /tmp size; coordinator trigger:
                                        partial batch failures (infra/postdeploy.py)

Before step 1, nothing is uploaded until the checks pass: every module the functions import
is in requirements.txt (infra/preflight.py), requirements.txt installs completely for the
pinned runtime (infra/dependencies.py; the same tree goes into Chalice's layer), and docker
runs when --push-worker asks for it.

    scripts/deploy STAGE --package-only DIR    writes what the deploy would upload, and stops
                                               (infra/package.py); no AWS call

Every step is idempotent: run it again after any change. `chalice deploy` runs through
infra/chalice_cli.py, which pins a runtime Lambda still accepts and installs the
requirements for it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from infra import (
    chalice_config,
    concurrency,
    dependencies,
    layers,
    memo_key,
    package,
    postdeploy,
    preflight,
    worker_image,
)
from infra.bootstrap import bootstrap, build_parser, params_from_args
from infra.chalice_cli import runtime
from infra.cli import run, session
from infra.errors import DeployError
from infra.names import CHALICE_CONFIG, REPO

ChaliceRunner = Callable[[Sequence[str], dict[str, str]], int]


def run_chalice(args: Sequence[str], env: dict[str, str]) -> int:
    """`chalice <args>` in the project, with the runtime pinned (infra/chalice_cli.py)."""
    return subprocess.run([sys.executable, "-m", "infra.chalice_cli", *args], cwd=REPO,
                          env={**os.environ, **env}, check=False).returncode


def aws_env(sess: Any, profile: str | None) -> dict[str, str]:
    """What makes Chalice use the same account and region as the boto3 session."""
    env = {"AWS_DEFAULT_REGION": sess.region_name, "AWS_REGION": sess.region_name}
    if profile:
        env["AWS_PROFILE"] = profile
    return env


def deploy(stage: str, sess: Any, params: dict[str, str], *, profile: str | None = None,
           config_path: Path = CHALICE_CONFIG, layer_dir: Path | None = layers.DIST, push_worker: bool = False,
           chalice: ChaliceRunner = run_chalice, say: Callable[[str], None] = print,
           stacks: Any = None, sleep: Callable[[float], None] = time.sleep,
           allow_replace: bool = False,
           check_concurrency: Callable[[Any, str, Path], None] = concurrency.check) -> dict[str, str]:
    preflight.check()
    preflight.check_tools(push_worker=push_worker)
    dependencies.site_packages(dependencies.REQUIREMENTS, runtime())
    if push_worker:  # the image's `pip install -r workers/requirements.txt`, checked before any upload
        dependencies.site_packages(package.WORKER_REQUIREMENTS, package.worker_python(), provided=())
    check_concurrency(sess, stage, config_path)  # the stage's reservations fit the account (docs/aws.md)
    say(f"== 1/6 stack for stage {stage}")
    outputs = bootstrap(stage, sess, params, config_path, say=say, stacks=stacks, allow_replace=allow_replace)
    memo_key.ensure(sess, outputs, say)  # before any runner can start: it signs memo entries
    say("== 2/6 worker image")
    if push_worker:  # pinned by digest before any function exists that could start a worker
        params = {**params, "WorkerImage": worker_image.push(sess, outputs, say)}
        outputs = bootstrap(stage, sess, params, config_path, say=say, stacks=stacks, allow_replace=allow_replace)
    else:
        say("skipped (--push-worker builds workers/Dockerfile and pushes it)")
    say("== 3/6 tool layers")
    zips = sorted(layer_dir.glob("*.zip")) if layer_dir is not None and layer_dir.is_dir() else []
    if zips:
        arns = layers.publish(sess, stage, zips, outputs["BucketName"], runtime(), say)
        config = chalice_config.load(config_path)
        chalice_config.save(config_path, chalice_config.set_layers(config, stage, arns))
    else:
        say(f"no layer zips in {layer_dir}: function-placed tasks get no Montage/BLAST (layers/build makes them)")
    say(f"== 4/6 chalice deploy --stage {stage}")
    code = chalice(["deploy", "--stage", stage], aws_env(sess, profile))
    if code != 0:
        raise DeployError(f"chalice deploy failed (exit {code}); fix what it said and run scripts/deploy again")
    say("== 5/6 task function destinations")
    outputs = bootstrap(stage, sess, params, config_path, say=say, stacks=stacks)
    say("== 6/6 what Chalice cannot set: task function EFS mount and /tmp, coordinator partial batches")
    sizes = chalice_config.task_functions(chalice_config.load(config_path), stage)
    postdeploy.configure_task_functions(sess, outputs, sizes, say, sleep=sleep)
    postdeploy.enable_partial_batches(sess, stage, outputs, say, sleep=sleep)
    say(f"stage {stage} deployed: API in .chalice/deployed/{stage}.json, uploads under "
        f"s3://{outputs['BucketName']}/submit/ start runs")
    return outputs


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    parser.prog = "scripts/deploy"
    parser.description = __doc__
    parser.add_argument("--push-worker", action="store_true",
                        help="build workers/Dockerfile with docker and push it to the stage's repository")
    parser.add_argument("--layers", type=Path, default=layers.DIST,
                        help=f"folder of layer zips to publish (default {layers.DIST.relative_to(REPO)})")
    parser.add_argument("--no-layers", action="store_true", help="publish no layer")
    parser.add_argument("--package-only", type=Path, metavar="DIR",
                        help="write what the deploy would upload into DIR (a new or empty folder), touch no AWS")
    args = parser.parse_args(argv)

    def body() -> int:
        if args.package_only is not None:
            preflight.check()
            package.package_only(args.stage, args.package_only, layer_dir=None if args.no_layers else args.layers,
                                 config_path=args.config)
            return 0
        sess = session(args.region, args.profile)
        deploy(args.stage, sess, params_from_args(args), profile=args.profile, config_path=args.config,
               layer_dir=None if args.no_layers else args.layers, push_worker=args.push_worker,
               allow_replace=args.allow_replace)
        return 0

    return run("deploy", body)


if __name__ == "__main__":
    raise SystemExit(main())
