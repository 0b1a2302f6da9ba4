"""What the three deploy commands share: the AWS session, and one clear line per error."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from infra.cfn import error_message
from infra.errors import DeployError


def add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("stage", help="Chalice stage, e.g. dev or prod")
    parser.add_argument("--region", help="AWS region (default: the profile's or AWS_DEFAULT_REGION)")
    parser.add_argument("--profile", help="AWS named profile (default: the usual credential chain)")


def session(region: str | None, profile: str | None) -> Any:
    import boto3.session

    sess = boto3.session.Session(region_name=region, profile_name=profile)
    if not sess.region_name:
        raise DeployError("no AWS region: pass --region, set AWS_DEFAULT_REGION, or give the profile a region")
    return sess


def run(prog: str, body: Callable[[], int]) -> int:
    """Runs a command; a DeployError or an AWS error becomes one line on stderr and an exit code."""
    try:
        return body()
    except DeployError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; a CloudFormation operation already started goes on in AWS", file=sys.stderr)
        return 130
    except Exception as exc:
        name = type(exc).__name__
        if name in ("NoCredentialsError", "PartialCredentialsError", "ProfileNotFound", "NoRegionError"):
            print(f"{prog}: {exc} (configure credentials: docs/deploy.md, Prerequisites)", file=sys.stderr)
            return 1
        if name == "ClientError":
            print(f"{prog}: AWS refused: {error_message(exc)}", file=sys.stderr)
            return 1
        raise
