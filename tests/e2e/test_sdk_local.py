"""updraft.Client on the local runtime: real runs in a background executor process."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from chalicelib.errors import MissingInputsError, NotFoundError, StateConflictError, WorkflowError
from tests.e2e.cli import updraft, write_workflow
from updraft import Client, RunStalledError, RunTimeoutError


def wait_for(predicate: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def slow_once(tmp_path: Path, name: str = "slow") -> Path:
    """A task that sleeps the first time (so it can be cancelled or killed) and is quick after."""
    marker = tmp_path / f"{name}.marker"
    return write_workflow(tmp_path / f"{name}.json", [
        {"id": "first", "shell": "echo 1 > one", "outputs": ["one"], "type": "prep"},
        {"id": "sleepy", "shell": f"if [ -e {marker} ]; then echo quick; else echo $$ > {marker}; sleep 60; fi; "
                                  "cat one > two", "inputs": ["one"], "outputs": ["two"], "type": "work"},
        {"id": "last", "command": ["cat", "two"], "inputs": ["two"], "type": "end"},
    ])


def test_submit_returns_at_once_and_wait_follows_to_the_end(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "x.txt").write_text("41\n")
    wf = write_workflow(tmp_path / "wf.json", [
        {"id": "inc", "shell": "sleep 0.5; echo $(( $(cat x.txt) + 1 )) > y.txt; echo said-hello",
         "inputs": ["x.txt"], "outputs": ["y.txt"], "type": "inc"},
        {"id": "show", "command": ["cat", "y.txt"], "inputs": ["y.txt"], "type": "show"},
    ])
    client = Client(workdir=str(tmp_path / "wd"))
    started = time.monotonic()
    run = client.submit(str(wf), data=str(tmp_path / "in"), name="named-by-sdk")
    assert time.monotonic() - started < 10 and run["state"] == "RUNNING" and run["task_count"] == 2
    seen: list[str] = []
    final = client.wait(run["run_id"], timeout=60, on_update=lambda r: seen.append(r["state"]))
    assert final["state"] == "SUCCEEDED" and final["counts"] == {"SUCCEEDED": 2}
    assert final["name"] == "named-by-sdk"
    assert seen[0] == "RUNNING" and seen[-1] == "SUCCEEDED"
    tasks = {t["id"]: t for t in client.tasks(run["run_id"])}
    assert tasks["inc"]["duration_s"] >= 0.5 and tasks["show"]["state"] == "SUCCEEDED"
    assert {t["id"] for t in client.tasks(run["run_id"], state="SUCCEEDED")} == set(tasks)
    assert client.tasks(run["run_id"], state="FAILED") == []
    graph = client.graph(run["run_id"])
    assert {n["id"]: n["parents"] for n in graph["tasks"]} == {"inc": [], "show": ["inc"]}
    assert graph["levels"] == 2 and graph["edges"] == 1
    assert "said-hello" in client.task(run["run_id"], "inc")["log_tail"]
    assert client.get(run["run_id"])["owner_pid"] is None  # the executor is gone
    assert run["run_id"] in [r["run_id"] for r in client.runs()]
    with pytest.raises(StateConflictError, match="already SUCCEEDED"):
        client.resume(run["run_id"])
    with pytest.raises(StateConflictError, match="already SUCCEEDED"):
        client.cancel(run["run_id"])


def test_cancel_stops_a_running_run_and_resume_finishes_it(tmp_path: Path) -> None:
    client = Client(workdir=str(tmp_path / "wd"))
    run_id = client.submit(str(slow_once(tmp_path)))["run_id"]
    wait_for(lambda: client.get(run_id)["counts"].get("RUNNING"))
    with pytest.raises(RunTimeoutError) as late:
        client.wait(run_id, timeout=0.3)
    assert late.value.run["state"] == "RUNNING"
    assert client.cancel(run_id)["state"] == "CANCELLED"
    after = client.get(run_id)
    assert after["state"] == "CANCELLED" and after["counts"].get("SUCCEEDED") == 1
    reply = client.resume(run_id)
    assert reply["state"] == "RUNNING" and reply["reset_tasks"] == 2
    final = client.wait(run_id, timeout=60)
    assert final["state"] == "SUCCEEDED" and final["counts"] == {"SUCCEEDED": 3}
    first = {t["id"]: t["attempts"] for t in client.tasks(run_id)}
    assert first["first"] == 1 and first["sleepy"] == 2  # what succeeded was reused, not re-run


def test_a_killed_executor_is_reported_not_waited_for(tmp_path: Path) -> None:
    client = Client(workdir=str(tmp_path / "wd"))
    run_id = client.submit(str(slow_once(tmp_path)))["run_id"]
    wait_for(lambda: client.get(run_id)["counts"].get("RUNNING"))
    # RUNNING can be recorded a moment before the task's shell has written its marker
    wait_for(lambda: (tmp_path / "slow.marker").exists())
    pid = client.get(run_id)["owner_pid"]
    assert isinstance(pid, int)
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(RunStalledError, match="updraft resume"):
        client.wait(run_id, timeout=30)
    # the task's process group outlived its killed executor: stop it, as an operator would
    task_pid = int((tmp_path / "slow.marker").read_text())
    os.killpg(os.getpgid(task_pid), signal.SIGKILL)
    final = client.wait(client.resume(run_id)["run_id"], timeout=60)
    assert final["state"] == "SUCCEEDED"


def test_rejected_submissions_say_what_is_wrong_and_store_nothing(tmp_path: Path) -> None:
    client = Client(workdir=str(tmp_path / "wd"))
    with pytest.raises(WorkflowError) as bad:
        client.submit({"name": "bad", "tasks": [{"id": "a", "command": ["true"], "outputs": ["/etc/passwd"]},
                                                {"id": "b", "command": ["true"], "after": ["nope"]}]})
    problems = {(p.task_id, p.field) for p in bad.value.problems}
    assert ("a", "outputs") in {(t, f.split("[")[0] if f else f) for t, f in problems}
    assert any(t == "b" for t, _ in problems)
    with pytest.raises(MissingInputsError, match=r"in\.txt"):
        client.submit({"name": "m", "tasks": [{"id": "a", "command": ["cat", "in.txt"], "inputs": ["in.txt"]}]},
                      data=str(tmp_path))
    with pytest.raises(NotFoundError):
        client.submit(str(tmp_path / "no-such-file.json"))
    with pytest.raises(NotFoundError):
        client.get("20990101-000000-00000000")
    assert client.runs() == []


def test_cli_submit_then_watch(tmp_path: Path) -> None:
    # task a sleeps 5 s so that watch starts while the run goes on, even on a loaded machine
    wf = write_workflow(tmp_path / "wf.json", [{"id": "a", "shell": "sleep 5; echo hi > a", "outputs": ["a"]},
                                               {"id": "b", "command": ["false"], "inputs": ["a"]}])
    sub = updraft("submit", str(wf), workdir=tmp_path / "wd", check=True)
    run_id = sub.stdout.split()[1].rstrip(":")
    assert f"updraft watch {run_id}" in sub.stdout
    watch = updraft("watch", run_id, workdir=tmp_path / "wd", timeout=60)
    assert watch.returncode == 1, watch.stderr  # the run FAILED
    assert f"run {run_id}: FAILED" in watch.stdout and "failed=1" in watch.stdout
    assert "RUNNING" in watch.stderr  # progress lines while it ran (not a terminal: one per change)
    again = updraft("submit", str(wf), "--wait", "--json", workdir=tmp_path / "wd", timeout=60)
    assert again.returncode == 1 and '"state": "FAILED"' in again.stdout
