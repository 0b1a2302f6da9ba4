from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from infra.bootstrap import bootstrap
from infra.cfn import Stacks
from tests.contract.awskit import mocked_aws
from tests.deploy.moto_gaps import DeletingClient, fill_ecs_gaps, fill_efs_gaps, fill_lambda_gaps

REGION = "us-east-1"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """moto with fake credentials; yields a boto3 session in REGION."""
    import boto3.session

    fill_efs_gaps(monkeypatch)
    fill_ecs_gaps(monkeypatch)
    fill_lambda_gaps(monkeypatch)
    with mocked_aws():
        yield boto3.session.Session(region_name=REGION)


@pytest.fixture
def said() -> list[str]:
    return []


@pytest.fixture
def stacks(aws: Any, said: list[str]) -> Stacks:
    """Stack operations that never sleep (moto finishes every operation at once)."""
    return Stacks(DeletingClient(aws.client("cloudformation")), say=said.append, sleep=lambda s: None, poll_s=0)


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    return tmp_path / ".chalice" / "config.json"


def quiet_stacks(session: Any) -> Stacks:
    return Stacks(DeletingClient(session.client("cloudformation")), say=lambda line: None, sleep=lambda s: None,
                  poll_s=0)


def run_bootstrap(session: Any, stacks: Stacks, config_path: Path, stage: str, **params: str) -> dict[str, str]:
    return bootstrap(stage, session, params, config_path, say=lambda line: None, stacks=stacks)


@contextmanager
def bootstrapped(config_path: Path, stage: str) -> Iterator[tuple[Any, dict[str, str]]]:
    """A stage bootstrapped in moto, for module-scoped fixtures: (session, outputs)."""
    import boto3.session

    with pytest.MonkeyPatch.context() as patch, mocked_aws():
        fill_efs_gaps(patch)
        fill_ecs_gaps(patch)
        fill_lambda_gaps(patch)
        session = boto3.session.Session(region_name=REGION)
        yield session, run_bootstrap(session, quiet_stacks(session), config_path, stage)
