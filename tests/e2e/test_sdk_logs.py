"""`updraft logs RUN [TASK] --stage/--api`: a deployed run's lines from CloudWatch Logs (moto)."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from typing import Any

import pytest

from chalicelib.cli import main
from tests.contract.awskit import mocked_aws
from updraft.cloudwatch import CloudLogs, default_groups

RUN, OTHER = "20261121-101500-aaaabbbb", "20261121-101501-ccccdddd"


def line(message: str, run_id: str | None = None, task_id: str | None = None, **extra: Any) -> str:
    fields = {"level": "INFO", "message": message, "service": "updraft", **extra}
    if run_id:
        fields["run_id"] = run_id
    if task_id:
        fields["task_id"] = task_id
    return json.dumps(fields)


@pytest.fixture
def logs() -> Iterator[Any]:
    import boto3

    with mocked_aws():
        client = boto3.client("logs", region_name="us-east-1")
        now = int(time.time() * 1000)
        groups = {
            "/aws/lambda/updraft-test-coordinator": [
                (now + 1, line("run started", RUN)), (now + 2, line("dispatched", RUN, "split", attempt=1)),
                (now + 50, line("run finished", RUN, state="SUCCEEDED")), (now + 3, line("other run", OTHER))],
            "/aws/lambda/updraft-test-task": [
                (now + 10, line("task started", RUN, "split", attempt=1)),
                (now + 20, line("task succeeded", RUN, "split", attempt=1)),
                (now + 30, line("task failed", RUN, "work", attempt=1, reason="NONZERO_EXIT")),
                (now + 31, f"REPORT RequestId: {RUN} Duration: 12.3 ms")],
            "/ecs/updraft-test-worker": [(now + 40, line("task succeeded", RUN, "work", attempt=2))],
            "/aws/lambda/updraft-prod-task": [(now + 5, line("another stage", RUN))],
        }
        for group, events in groups.items():
            client.create_log_group(logGroupName=group)
            client.create_log_stream(logGroupName=group, logStreamName="s")
            client.put_log_events(logGroupName=group, logStreamName="s",
                                  logEvents=[{"timestamp": t, "message": m} for t, m in sorted(events)])
        yield client


def run_cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(["logs", *args])
    return code, out.getvalue(), err.getvalue()


def test_a_runs_lines_from_every_function_and_the_workers_in_time_order(logs: Any) -> None:
    code, out, _ = run_cli(RUN, "--stage", "test", "--region", "us-east-1")
    assert code == 0
    lines = out.strip().splitlines()
    order = ["run started", "dispatched task_id=split", "task started task_id=split", "task succeeded task_id=split",
             "task failed task_id=work attempt=1", "REPORT RequestId", "task succeeded task_id=work attempt=2",
             "run finished state=SUCCEEDED"]
    assert [next(i for i, ln in enumerate(lines) if want in ln) for want in order] == list(range(8))
    assert len(lines) == 8  # the run's lines only: not the other run's, not another stage's
    assert "other run" not in out and "another stage" not in out
    sources = [ln.split()[1] for ln in lines]
    assert sources == ["coordinator", "coordinator", "task", "task", "task", "task", "worker", "coordinator"]
    assert "reason=NONZERO_EXIT" in out and f"REPORT RequestId: {RUN}" in out


def test_one_tasks_lines_across_attempts_and_places(logs: Any) -> None:
    code, out, _ = run_cli(RUN, "work", "--stage", "test", "--region", "us-east-1")
    assert code == 0
    lines = out.strip().splitlines()
    assert len(lines) == 2 and "task failed" in lines[0] and "attempt=1" in lines[0]
    assert lines[1].split()[1] == "worker" and "attempt=2" in lines[1]


def test_groups_are_found_by_stage_and_a_missing_stage_is_a_clear_error(logs: Any) -> None:
    found = CloudLogs(stage="test", region="us-east-1").groups()
    assert found == sorted(g for g in default_groups("test") if "submit" not in g and "sweeper" not in g
                           and g != "/aws/lambda/updraft-test")
    code, _, err = run_cli(RUN, "--stage", "nope", "--region", "us-east-1")
    assert code == 2 and "no log groups of stage 'nope'" in err
    code, out, err = run_cli(OTHER, "split", "--log-group", "/aws/lambda/updraft-test-coordinator",
                             "--region", "us-east-1")
    assert code == 0 and out == "" and "no log lines for task split" in err


def test_local_logs_still_need_a_task() -> None:
    code, _, err = run_cli(RUN, "--workdir", "/nonexistent-updraft-workdir")
    assert code == 2 and "name the task" in err


def test_api_url_finds_its_stage_from_chalices_deployed_record(logs: Any, tmp_path: Any,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    url = "https://a1b2c3.execute-api.us-east-1.amazonaws.com/api/"
    deployed = tmp_path / ".chalice" / "deployed"
    deployed.mkdir(parents=True)
    (deployed / "test.json").write_text(json.dumps({"resources": [
        {"name": "rest_api", "resource_type": "rest_api", "rest_api_url": url}]}))
    (deployed / "prod.json").write_text(json.dumps({"resources": [{"name": "rest_api", "rest_api_url": "https://x/"}]}))
    monkeypatch.chdir(tmp_path)
    code, out, _ = run_cli(RUN, "work", "--api", url.rstrip("/"))  # region from the URL, stage from the record
    assert code == 0 and len(out.strip().splitlines()) == 2 and "another stage" not in out
