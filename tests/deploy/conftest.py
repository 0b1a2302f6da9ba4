from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infra.cfn import Stacks
from tests.contract.awskit import mocked_aws
from tests.deploy.moto_gaps import DeletingClient, fill_efs_gaps, fill_lambda_gaps

REGION = "us-east-1"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """moto with fake credentials; yields a boto3 session in REGION."""
    import boto3.session

    fill_efs_gaps(monkeypatch)
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
