"""The local runtime's own limits (issue 22): how many tasks run at once is capped with a clear
message and slot processes start only as attempts need them (D14); after Ctrl-C or SIGTERM no
task starts (D13); a task's whole process tree ends with it and counts towards its memory (D9)."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from chalicelib.backends.local import function_pool
from chalicelib.backends.local.runtime import LocalRuntime, RuntimeOptions
from chalicelib.errors import ConfigError
from chalicelib.runner.execute import Attempt
from chalicelib.workflow.formats import load
from tests.e2e.cli import updraft, write_workflow


def test_a_huge_concurrency_is_refused_with_the_limit_and_nothing_written(tmp_path: Path) -> None:
    wf = write_workflow(tmp_path / "wf.json", [{"id": "a", "shell": "true"}])
    done = updraft("run", str(wf), "--concurrency", "100000", workdir=tmp_path / "wd", timeout=60)
    assert done.returncode == 2, done.stderr
    top = function_pool.max_concurrency()
    assert f"1 to {top} tasks at once" in done.stderr and "--concurrency" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "wd").exists()
    with pytest.raises(ConfigError, match="out of range"):
        LocalRuntime(str(tmp_path / "wd2"), RuntimeOptions(concurrency=top + 1))
    with pytest.raises(ConfigError, match="out of range"):
        LocalRuntime(str(tmp_path / "wd2"), RuntimeOptions(concurrency=0))


def test_slots_start_as_attempts_need_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[int] = []
    real = function_pool.FunctionPool._start_slot

    def counted(self: function_pool.FunctionPool, *args: int) -> object:
        slot = real(self, *args)
        started.append(slot.pid)
        return slot

    monkeypatch.setattr(function_pool.FunctionPool, "_start_slot", counted)
    tasks = [{"id": f"t{i}", "shell": "sleep 0.3"} for i in range(3)]
    wf = write_workflow(tmp_path / "wf.json", tasks)
    with LocalRuntime(str(tmp_path / "wd"), RuntimeOptions(concurrency=200)) as rt:
        run = rt.submit(load(str(wf)))
        assert rt.run(run.run_id).state.value == "SUCCEEDED"
    # three tasks at once: the loop spawns the first itself, a slot each the other two
    assert 1 <= len(started) <= 3, f"{len(started)} slot processes started for three tasks"


@pytest.mark.parametrize("program", ["native", "python"])
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_no_task_starts_after_an_interrupt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, program: str, signum: int,
) -> None:
    """Many short tasks queue in the slots; the signal arrives at a set point (the 20th
    completion); every attempt that started, by its spawner's clock, started before it."""
    monkeypatch.setenv("UPDRAFT_SLOT", program)
    starts: list[float] = []
    real_started = Attempt.started

    def started(self: Attempt, pid: int, at: float) -> None:
        starts.append(at)
        real_started(self, pid, at)

    done: list[float] = []  # when the signal was sent and its handler had run
    real_done = function_pool.FunctionPool._done

    def finished(self: function_pool.FunctionPool, *args: Any, **kw: Any) -> None:
        if len(starts) >= 20 and not done:
            os.kill(os.getpid(), signum)  # the handler runs before the next line
            done.append(time.time())
        real_done(self, *args, **kw)

    monkeypatch.setattr(Attempt, "started", started)
    monkeypatch.setattr(function_pool.FunctionPool, "_done", finished)
    wf = write_workflow(tmp_path / "wf.json", [{"id": f"t{i:03}", "command": ["true"]} for i in range(300)])
    with LocalRuntime(str(tmp_path / "wd"), RuntimeOptions(concurrency=2)) as rt:
        run = rt.submit(load(str(wf)))
        assert rt.run(run.run_id).state.value == "CANCELLED"
        counts = rt.store.counts(run.run_id)
    assert done, "the signal was never sent"
    late = sorted(at - done[0] for at in starts if at > done[0])
    assert not late, f"{len(late)} attempt(s) started after the interrupt (by {late[:5]} s); counts {counts}"
    assert counts.get("SUCCEEDED", 0) < 300


def _carrying(run_id: str) -> list[int]:
    """Processes still alive that some task of `run_id` started (they carry its environment)."""
    mark = b"UPDRAFT_RUN_ID=" + run_id.encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            env = Path(f"/proc/{entry}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if mark in env:
            found.append(int(entry))
    return found


@pytest.mark.parametrize("program", ["native", "python"])
def test_what_a_task_detaches_ends_with_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, program: str) -> None:
    """Daemons in a session of their own and double-forked processes (issue 22, D9), left by
    tasks the loop spawns itself (the first) and tasks slots spawn (the others)."""
    monkeypatch.setenv("UPDRAFT_SLOT", program)
    shell = "setsid sleep 98 & (sleep 97 &); (setsid sh -c 'sleep 96 &' &); sleep 0.3; echo done"
    wf = write_workflow(tmp_path / "wf.json", [{"id": f"t{i}", "shell": shell} for i in range(4)])
    with LocalRuntime(str(tmp_path / "wd"), RuntimeOptions(concurrency=2)) as rt:
        run = rt.submit(load(str(wf)))
        assert rt.run(run.run_id).state.value == "SUCCEEDED"
    left = _carrying(run.run_id)
    for pid in left:  # not to outlive the test either
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    assert left == [], f"{len(left)} process(es) the tasks detached outlived the run"


@pytest.mark.parametrize("program", ["native", "python"])
def test_memory_of_what_a_task_detaches_counts_against_its_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, program: str,
) -> None:
    monkeypatch.setenv("UPDRAFT_SLOT", program)
    code = "import time; b = b'x' * (300 << 20); open('hog.ready', 'w').close(); time.sleep(60)"
    hog = f'{sys.executable} -S -c "{code}"'
    shell = f"(setsid {hog} &); while [ ! -e hog.ready ]; do sleep 0.01; done; sleep 0.1"
    tasks = [{"id": f"t{i}", "shell": shell, "resources": {"memory_mb": 128}} for i in range(2)]
    wf = write_workflow(tmp_path / "wf.json", tasks)
    with LocalRuntime(str(tmp_path / "wd"), RuntimeOptions(concurrency=2)) as rt:
        run = rt.submit(load(str(wf)))
        assert rt.run(run.run_id).state.value == "FAILED"
        recs = {t.task_id: t for t in rt.store.list_tasks(run.run_id)}
    assert {t: (r.state.value, r.reason) for t, r in recs.items()} == {t: ("FAILED", "OOM") for t in recs}
    assert _carrying(run.run_id) == []


def test_what_a_task_detaches_with_an_empty_environment_ends_with_the_run(tmp_path: Path) -> None:
    """`env -i` leaves no trace of the attempt in a daemon's environment: the CLI's engine owns
    its process, so every child it did not start is a task's orphan (the loop's own task,
    alone, then two at once: slots)."""
    pids = tmp_path / "pids"
    pids.mkdir()
    shell = f"env -i setsid sleep 95 & echo $! > {pids}/$UPDRAFT_TASK_ID; sleep 0.3"
    tasks = [{"id": "alone", "shell": shell}]
    tasks += [{"id": f"t{i}", "shell": shell, "after": ["alone"]} for i in range(3)]
    wf = write_workflow(tmp_path / "wf.json", tasks)
    done = updraft("run", str(wf), "--json", "--concurrency", "2", workdir=tmp_path / "wd", timeout=120)
    assert done.returncode == 0, done.stderr
    left = [int(p.read_text()) for p in pids.iterdir()]
    assert len(left) == 4
    alive = [p for p in left if Path(f"/proc/{p}").exists()]
    for pid in alive:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    assert alive == [], "daemons with an empty environment outlived the run"


def test_what_a_container_task_detaches_ends_with_it(tmp_path: Path) -> None:
    """The container worker (as the Fargate worker) runs nothing but tasks: every child left
    when a task ends is its orphan, even one with an emptied environment."""
    pids = tmp_path / "pids"
    pids.mkdir()
    shell = (f"env -i setsid sleep 94 & echo $! > {pids}/a; (setsid sleep 93 &); "
             f"(sh -c 'echo $$ > {pids}/b; exec sleep 92' &); sleep 0.3")
    wf = write_workflow(tmp_path / "wf.json", [{"id": "c", "shell": shell, "placement": "container"}])
    with LocalRuntime(str(tmp_path / "wd"), RuntimeOptions(concurrency=2)) as rt:
        run = rt.submit(load(str(wf)))
        assert rt.run(run.run_id).state.value == "SUCCEEDED"
    left = [int(p.read_text()) for p in pids.iterdir()]
    assert len(left) == 2
    alive = [p for p in left if Path(f"/proc/{p}").exists()] + _carrying(run.run_id)
    for pid in alive:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    assert alive == [], "what a container task detached outlived it"
