"""Killed workers on the local runtime: retried, or FAILED with the reason, never hanging."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from chalicelib.backends.local.runtime import LocalRuntime
from chalicelib.workflow.formats import load
from tests.e2e.cli import REPO, run_json, status, write_workflow
from tests.faults.invariants import check_invariants


def invariants(workdir: Path, run_id: str) -> list[str]:
    rt = LocalRuntime(str(workdir))
    try:
        return check_invariants(rt.store, rt.blobs, run_id, rt.specs.get(run_id))
    finally:
        rt.close()


def container_workers() -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmd = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if b"chalicelib.backends.local.container_worker" in cmd:
                pids.append(int(entry))
    return pids


def test_a_killed_container_worker_is_replaced_and_its_task_retried(tmp_path: Path) -> None:
    started = tmp_path / "started"
    wf = write_workflow(tmp_path / "k.json", [
        {"id": "slow", "shell": f"touch {started}; sleep 1; echo done > out", "outputs": ["out"],
         "placement": "container"},
        {"id": "after", "command": ["cat", "out"], "inputs": ["out"]},
    ])
    wd = tmp_path / "wd"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    before = set(container_workers())
    proc = subprocess.Popen([sys.executable, "-m", "chalicelib.cli", "run", str(wf), "--workdir", str(wd), "--json"],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not started.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    victims = set(container_workers()) - before
    assert victims, "no container worker was running"
    for pid in victims:
        os.kill(pid, signal.SIGKILL)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    run_id = json.loads(out.strip().splitlines()[-1])["run_id"]
    slow = next(t for t in status(run_id, wd)["tasks"] if t["id"] == "slow")
    assert slow["state"] == "SUCCEEDED" and slow["attempts"] == 2
    assert invariants(wd, run_id) == []


def test_a_task_that_kills_every_worker_ends_failed_not_hanging(tmp_path: Path) -> None:
    wf = write_workflow(tmp_path / "assassin.json", [
        {"id": "assassin", "shell": "kill -9 $PPID; sleep 5", "placement": "container"},
        {"id": "child", "command": ["true"], "after": ["assassin"]},
        {"id": "bystander", "shell": "echo fine > f", "outputs": ["f"]},
    ])
    t0 = time.monotonic()
    code, out = run_json(wf, tmp_path / "wd")
    assert time.monotonic() - t0 < 60
    assert code == 1 and out["counts"] == {"FAILED": 1, "UPSTREAM_FAILED": 1, "SUCCEEDED": 1}
    task = next(t for t in status(out["run_id"], tmp_path / "wd")["tasks"] if t["id"] == "assassin")
    assert task["reason"] == "LEASE_EXPIRED" and task["attempts"] == 3
    assert invariants(tmp_path / "wd", out["run_id"]) == []


def test_a_store_error_handling_a_failure_stops_the_run_loudly_and_resume_finishes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The coordinator propagates a store error other than not-found: the local runtime stops
    with that error rather than losing the failure (which would leave the task in flight with
    nothing running, and later re-label it LEASE_EXPIRED), and `resume` records the failure
    with its own reason."""
    wf = write_workflow(tmp_path / "wf.json", [
        {"id": "bad", "shell": "exit 3"},
        {"id": "child", "command": ["true"], "after": ["bad"]},
    ])
    wd = str(tmp_path / "wd")
    with LocalRuntime(wd) as rt:
        run_id = rt.submit(load(str(wf))).run_id
        read, broken = rt.store.get_task, {"left": 1}

        def get_task(rid: str, tid: str) -> Any:
            if broken["left"]:
                broken["left"] -= 1
                raise OSError("disk I/O error")
            return read(rid, tid)

        monkeypatch.setattr(rt.store, "get_task", get_task)
        with pytest.raises(OSError, match="disk I/O error"):
            rt.run(run_id)
        assert rt.store.get_run(run_id).state.value == "RUNNING"  # nothing recorded half way
    with LocalRuntime(wd) as rt:
        assert rt.resume(run_id).state.value == "FAILED"
        bad = rt.store.get_task(run_id, "bad")
        assert (bad.state.value, bad.reason) == ("FAILED", "NONZERO_EXIT")
        assert rt.store.get_task(run_id, "child").state.value == "UPSTREAM_FAILED"
    assert invariants(tmp_path / "wd", run_id) == []
