"""scripts/destroy STAGE: remove the stage - Chalice's functions and API, then the stack.

    scripts/destroy dev                  refuses while the bucket or the table holds anything
    scripts/destroy dev --delete-data    empties the bucket first and deletes the functions' log
                                         groups; the table goes with the stack
    scripts/destroy dev --yes            no confirmation prompt (scripts, CI)

Order: `chalice delete` first (it removes the functions that use the stack's role, queues
and subnets), then the stack. Lambda releases a VPC function's network interfaces some time
after the function is gone (up to ~40 minutes), so deleting the subnets and security groups
can fail meanwhile; the stack deletion is retried, bounded.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from infra import chalice_config, layers
from infra.cfn import Stacks, error_code
from infra.cli import add_common, run, session
from infra.deploy import ChaliceRunner, aws_env, run_chalice
from infra.errors import DeployError, RefusedError
from infra.names import APP_NAME, CHALICE_CONFIG, stack_name

DELETE_TRIES = 4
RETRY_WAIT_S = 600.0


def _first(read: Callable[[], list[Any]], gone: str) -> list[Any]:
    """What `read` returns; nothing if the resource is already gone (AWS error code `gone`)."""
    try:
        return read()
    except Exception as exc:
        if error_code(exc) != gone:
            raise
        return []


def data_left(sess: Any, outputs: dict[str, str]) -> list[str]:
    """What the stage still stores: a line per non-empty bucket or table."""
    found = []
    bucket, table = outputs.get("BucketName"), outputs.get("TableName")
    if bucket:
        listed = _first(lambda: sess.client("s3").list_objects_v2(Bucket=bucket, MaxKeys=1).get("Contents", []),
                        "NoSuchBucket")
        if listed:
            found.append(f"bucket {bucket} holds objects (e.g. {listed[0]['Key']})")
    if table:
        items = _first(lambda: sess.client("dynamodb").scan(TableName=table, Limit=1).get("Items", []),
                       "ResourceNotFoundException")
        if items:
            found.append(f"table {table} holds runs")
    return found


def empty_bucket(sess: Any, bucket: str, say: Callable[[str], None]) -> int:
    s3 = sess.client("s3")
    removed = 0
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        doomed = [{"Key": v["Key"], "VersionId": v["VersionId"]}
                  for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
        for start in range(0, len(doomed), 1000):
            s3.delete_objects(Bucket=bucket, Delete={"Objects": doomed[start:start + 1000], "Quiet": True})
        removed += len(doomed)
    for page in s3.get_paginator("list_multipart_uploads").paginate(Bucket=bucket):
        for upload in page.get("Uploads", []):
            s3.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
    say(f"bucket {bucket}: deleted {removed} object(s)")
    return removed


def delete_function_logs(sess: Any, stage: str, say: Callable[[str], None]) -> int:
    """The log groups Lambda made for the stage's functions (Chalice does not delete them)."""
    logs = sess.client("logs")
    prefix = f"/aws/lambda/{APP_NAME}-{stage}-"
    names = [g["logGroupName"] for page in logs.get_paginator("describe_log_groups").paginate(
        logGroupNamePrefix=prefix) for g in page.get("logGroups", [])]
    for name in names:
        logs.delete_log_group(logGroupName=name)
    if names:
        say(f"deleted {len(names)} function log group(s) under {prefix}")
    return len(names)


def destroy(stage: str, sess: Any, *, delete_data: bool = False, profile: str | None = None,
            config_path: Path = CHALICE_CONFIG, chalice: ChaliceRunner = run_chalice,
            say: Callable[[str], None] = print, stacks: Stacks | None = None,
            sleep: Callable[[float], None] = time.sleep, ask: Callable[[], None] = lambda: None) -> None:
    """Delete the stage; `ask` confirms (or raises) once it is known that no data would be lost
    without --delete-data."""
    name = stack_name(stage)
    stacks = stacks or Stacks(sess.client("cloudformation"), say=say)
    outputs = stacks.outputs(name) if stacks.status(name) is not None else {}
    left = data_left(sess, outputs)
    if left and not delete_data:
        raise RefusedError(f"stage {stage} still stores data: {'; '.join(left)}. Copy out what you need, then "
                           "run again with --delete-data. Nothing was deleted")
    ask()
    deployed = config_path.parent / "deployed" / f"{stage}.json"
    if deployed.exists():
        say(f"== chalice delete --stage {stage}")
        code = chalice(["delete", "--stage", stage], aws_env(sess, profile))
        if code != 0:
            raise DeployError(f"chalice delete failed (exit {code}); the stack was left in place")
    else:
        say(f"no {deployed}: nothing of Chalice's to delete")
    if delete_data and outputs.get("BucketName"):
        empty_bucket(sess, outputs["BucketName"], say)
    layers.delete_all(sess, stage, say)
    if outputs:
        say(f"== delete stack {name}")
        _delete_stack(stacks, name, say, sleep)
    if delete_data:  # after the stack, which deletes the task function's own log group
        delete_function_logs(sess, stage, say)
    config = chalice_config.load(config_path)
    chalice_config.save(config_path, chalice_config.remove_stack(config, stage))
    say(f"stage {stage} destroyed; {config_path} no longer names its resources")


def _delete_stack(stacks: Stacks, name: str, say: Callable[[str], None], sleep: Callable[[float], None]) -> None:
    for attempt in range(1, DELETE_TRIES + 1):
        try:
            stacks.delete(name)
            return
        except DeployError as exc:
            if attempt == DELETE_TRIES:
                raise
            say(f"{exc}\n  Lambda may still hold network interfaces in the subnets; retrying in "
                f"{RETRY_WAIT_S / 60:.0f} min (attempt {attempt + 1} of {DELETE_TRIES})")
            sleep(RETRY_WAIT_S)


def confirm(stage: str, assume_yes: bool) -> None:
    if assume_yes:
        return
    if not sys.stdin.isatty():
        raise RefusedError("not a terminal: pass --yes to destroy without a prompt")
    typed = input(f"Destroy stage {stage!r} (functions, API, stack)? Type the stage name to go on: ")
    if typed.strip() != stage:
        raise RefusedError("not confirmed; nothing was deleted")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/destroy", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common(parser)
    parser.add_argument("--delete-data", action="store_true", help="also delete the bucket's objects and the runs")
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    parser.add_argument("--config", type=Path, default=CHALICE_CONFIG, help="Chalice config to update")
    args = parser.parse_args(argv)

    def body() -> int:
        sess = session(args.region, args.profile)
        destroy(args.stage, sess, delete_data=args.delete_data, profile=args.profile, config_path=args.config,
                ask=lambda: confirm(args.stage, args.yes))
        return 0

    return run("destroy", body)


if __name__ == "__main__":
    raise SystemExit(main())
