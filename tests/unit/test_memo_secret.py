"""The cloud's memo signing key: an object of the stage's bucket that only the runners read."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from chalicelib.backends.aws.cache import task_cache
from chalicelib.backends.aws.config import AwsConfig
from chalicelib.backends.aws.memo_secret import read_memo_secret
from tests.contract.awskit import make_cloud, mocked_aws
from tests.deploy.templates import load

REPO = Path(__file__).resolve().parents[2]
SECRET = b"0123456789abcdef" * 4


@pytest.fixture
def config(tmp_path: Path) -> Any:
    with mocked_aws():
        cloud, _ = make_cloud(workroot=str(tmp_path / "work"), cache_root=str(tmp_path / "efs"),
                              memo_key_object="keys/memo-key")
        yield cloud.config, cloud


def test_the_runners_sign_memo_entries_with_the_key_object(config: Any, tmp_path: Path) -> None:
    cfg, cloud = config
    cloud.clients.s3.put_object(Bucket=cfg.bucket, Key="keys/memo-key", Body=SECRET + b"\n")
    assert read_memo_secret(cfg, cloud.clients) == SECRET
    memo = task_cache(cfg).memo
    assert memo is not None and memo.secret == SECRET
    assert not (tmp_path / "efs" / "memo.key").exists()  # no key file on the shared volume


def test_an_unreadable_or_short_key_object_turns_memoization_off_and_says_why(
        config: Any, caplog: pytest.LogCaptureFixture) -> None:
    cfg, cloud = config
    with caplog.at_level(logging.ERROR, logger="updraft.cache"):
        assert task_cache(cfg).memo is None  # never a weaker key in its place
    assert "run scripts/deploy" in caplog.text and "keys/memo-key" in caplog.text
    cloud.clients.s3.put_object(Bucket=cfg.bucket, Key="keys/memo-key", Body=b"short")
    assert read_memo_secret(cfg, cloud.clients) is None


def test_a_stage_without_a_key_object_keeps_the_old_behaviour(tmp_path: Path) -> None:
    cfg = AwsConfig.from_env({}, region="us-east-1", workroot=str(tmp_path / "w"), cache_root=str(tmp_path / "e"))
    memo = task_cache(cfg).memo
    assert memo is not None and (tmp_path / "e" / "memo.key").exists()


def test_the_bucket_policy_lets_only_the_runners_read_the_key_and_neither_write_it() -> None:
    template = load(REPO / "infra" / "stack.yaml")
    resources = template["Resources"]
    statements = {s["Sid"]: s for s in resources["BucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]}
    runners = [{"Fn::GetAtt": ["TaskFunctionRole", "Arn"]}, {"Fn::GetAtt": ["WorkerTaskRole", "Arn"]}]
    read = statements["MemoKeyReadersOnly"]
    assert (read["Effect"], read["Principal"], read["Action"]) == ("Deny", "*", "s3:GetObject")
    assert read["Condition"] == {"ArnNotEquals": {"aws:PrincipalArn": runners}}
    write = statements["MemoKeyNotWrittenByRunners"]
    assert write["Effect"] == "Deny" and set(write["Action"]) == {"s3:PutObject", "s3:DeleteObject"}
    assert write["Condition"] == {"ArnEquals": {"aws:PrincipalArn": runners}}
    key = template["Outputs"]["MemoKeyObject"]["Value"]
    for s in (read, write):
        prefix = s["Resource"]["Fn::Sub"].removeprefix("${Bucket.Arn}/").removesuffix("*")
        assert key.startswith(prefix) and prefix  # the statements cover the key object
    worker_env = {e["Name"]: e["Value"] for e in
                  resources["WorkerTaskDefinition"]["Properties"]["ContainerDefinitions"][0]["Environment"]}
    assert worker_env["UPDRAFT_MEMO_KEY_OBJECT"] == key and "UPDRAFT_MEMO_KEY" not in worker_env
