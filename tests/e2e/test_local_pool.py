"""The local function pool: slot processes, prepared attempts waiting for a slot, reused sandboxes."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chalicelib.backends.local import function_pool
from chalicelib.backends.local.fs_blobs import FsBlobStore
from chalicelib.backends.local.runtime import LocalRuntime, RuntimeOptions
from chalicelib.workflow.formats import load
from tests.cpus import allowed
from tests.e2e.cli import REPO, run_json, status, write_workflow

SLOT_PROGRAMS = ("native", "python")  # UPDRAFT_SLOT: the built C slot (the default) or slot.py


def _peak_concurrency(log: Path) -> int:
    events = sorted((int(t), kind) for kind, t in (line.split() for line in log.read_text().splitlines()))
    running = peak = 0
    for _, kind in events:  # at a tie an end sorts before a start ("e" < "s")
        running += 1 if kind == "s" else -1
        peak = max(peak, running)
    return peak


def test_no_more_tasks_run_at_once_than_the_concurrency(tmp_path: Path) -> None:
    log = tmp_path / "spans.log"
    # each task appends its start and end (ns) to a shared log outside the sandboxes
    shell = f'echo "s $(date +%s%N)" >> {log}; sleep 0.15; echo "e $(date +%s%N)" >> {log}'
    wf = write_workflow(tmp_path / "wf.json", [{"id": f"t{i}", "shell": shell} for i in range(12)])
    code, result = run_json(wf, tmp_path / "wd", "--concurrency", "3")
    assert code == 0, result
    assert len(log.read_text().splitlines()) == 24
    assert _peak_concurrency(log) == 3  # all slots used, never more


def test_a_task_that_removes_or_fills_its_sandbox_does_not_affect_the_next(tmp_path: Path) -> None:
    tasks = [
        {"id": "wreck", "shell": 'rm -rf "$TMPDIR"; echo junk > left-behind'},
        *({"id": f"use{i}", "after": ["wreck"], "outputs": [f"o{i}"],
           "shell": f'test -d "$TMPDIR" && test ! -e left-behind && echo ok > "$TMPDIR/x" && mv "$TMPDIR/x" o{i}'}
          for i in range(4)),
    ]
    wf = write_workflow(tmp_path / "wf.json", tasks)
    code, result = run_json(wf, tmp_path / "wd", "--concurrency", "1")
    assert code == 0, result
    assert result["counts"] == {"SUCCEEDED": 5}


def _children(parent: int) -> dict[int, bytes]:
    """{pid: cmdline} of the processes whose parent is `parent`."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == parent:
            found[int(entry)] = cmdline
    return found


def _is_slot(cmdline: bytes, program: str) -> bool:
    return (b"updraft-slot-" if program == "native" else b"chalicelib.backends.local.slot") in cmdline


def _busy_slot(parent: int, program: str) -> int | None:
    """A slot process of `parent` that is running a task (has a child)."""
    for pid, cmdline in _children(parent).items():
        if _is_slot(cmdline, program) and _children(pid):
            return pid
    return None


@pytest.mark.parametrize("program", SLOT_PROGRAMS)
def test_a_killed_slot_process_is_replaced_and_its_tasks_run_again(tmp_path: Path, program: str) -> None:
    probe = "sleep 0.4; grep Cpus_allowed_list /proc/self/status"
    wf = write_workflow(tmp_path / "wf.json", [{"id": f"t{i}", "shell": probe} for i in range(6)])
    env = {**os.environ, "PYTHONPATH": str(REPO), "UPDRAFT_SLOT": program}
    proc = subprocess.Popen([sys.executable, "-m", "chalicelib.cli", "run", str(wf), "--json", "--workdir",
                             str(tmp_path / "wd"), "--concurrency", "2"], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    busy = None
    while busy is None and time.monotonic() < deadline:
        time.sleep(0.05)
        busy = _busy_slot(proc.pid, program)
    assert busy is not None, "no slot process ran a task"
    os.kill(busy, signal.SIGKILL)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["counts"] == {"SUCCEEDED": 6}
    tasks = status(result["run_id"], tmp_path / "wd")["tasks"]
    assert sum(t["attempts"] for t in tasks) >= 7  # the lost task ran again (an extra attempt)
    logs = tmp_path / "wd" / "blobs" / "runs" / result["run_id"] / "logs"
    for t in tasks:  # the replacement slot was started by the pinned loop: its tasks get every CPU too
        cpus = (logs / f"{t['id']}.{t['attempts']}.log").read_text()
        assert allowed(cpus) == set(os.sched_getaffinity(0)), t


@pytest.mark.parametrize("program", SLOT_PROGRAMS)
def test_after_the_engine_is_killed_its_slots_start_nothing_more(tmp_path: Path, program: str) -> None:
    log = tmp_path / "started.log"
    shell = f'echo "$UPDRAFT_TASK_ID" >> {log}; sleep 0.5'
    wf = write_workflow(tmp_path / "wf.json", [{"id": f"t{i}", "shell": shell} for i in range(8)])
    env = {**os.environ, "PYTHONPATH": str(REPO), "UPDRAFT_SLOT": program}
    proc = subprocess.Popen([sys.executable, "-m", "chalicelib.cli", "run", str(wf), "--json", "--workdir",
                             str(tmp_path / "wd"), "--concurrency", "2"], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while _busy_slot(proc.pid, program) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    slots = [pid for pid, cmd in _children(proc.pid).items() if _is_slot(cmd, program)]
    assert slots, "no slot process found"
    os.kill(proc.pid, signal.SIGKILL)  # slots keep jobs queued in their pipes
    proc.wait()
    started = len(log.read_text().splitlines())
    time.sleep(1.5)  # three task lengths: a slot that kept going would have started more
    assert len(log.read_text().splitlines()) == started
    for pid in slots:  # and the slots are gone once their running task ended
        assert not Path(f"/proc/{pid}").exists() or b"zombie" in Path(f"/proc/{pid}/status").read_bytes().lower()


def test_a_slot_program_that_dies_before_its_first_report_gives_way_to_the_python_slot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # a broken build: every slot dies at once. Without slots only the loop's own spawn (one
    # task at a time) would run anything; with the Python slot taking over, two run at once.
    monkeypatch.setattr(function_pool, "slot_command", lambda: ["/bin/false"])
    log = tmp_path / "spans.log"
    shell = f'echo "s $(date +%s%N)" >> {log}; sleep 0.3; echo "e $(date +%s%N)" >> {log}'
    wf = write_workflow(tmp_path / "wf.json", [{"id": f"t{i}", "shell": shell} for i in range(6)])
    with LocalRuntime(str(tmp_path / "wd"), RuntimeOptions(concurrency=2)) as rt:
        run = rt.submit(load(str(wf)))
        assert rt.run(run.run_id).state.value == "SUCCEEDED"
    assert _peak_concurrency(log) == 2


def test_a_filled_sandbox_is_emptied_off_the_loop_and_then_reused(tmp_path: Path) -> None:
    selector = selectors.DefaultSelector()
    pool = function_pool.FunctionPool(FsBlobStore(str(tmp_path / "blobs")), str(tmp_path / "work"), 1, selector,
                                      lambda event: None)
    try:
        box = pool._sandbox()
        root = Path(box.root)
        (root / "deep" / "er").mkdir(parents=True)
        (root / "deep" / "er" / "left.txt").write_text("from the last task")
        (Path(box.tmp_path) / "scratch").write_text("x")
        pool._release(box)  # not measured clean: emptied by the cleaner thread
        deadline = time.monotonic() + 10
        while not pool._cleared and time.monotonic() < deadline:
            time.sleep(0.01)
        assert pool._cleared, "the sandbox was not emptied"
        assert sorted(p.name for p in root.iterdir()) == [".updraft-tmp"]
        assert not list(Path(box.tmp_path).iterdir())
        assert pool._sandbox() is box  # nothing in the free list: the emptied one comes back
    finally:
        pool.kill_all()
        selector.close()


def test_every_task_and_what_it_starts_gets_every_cpu_while_the_loop_keeps_one(tmp_path: Path) -> None:
    """The loop and the slots keep to a CPU each (runner/affinity.py); tasks the loop, a slot or
    a container worker spawns, and their own children, have the engine's whole CPU set: the
    spawner widens a task as soon as it has started, the loop widens what the task started
    before that at its first limit sample (the probes wait for it)."""
    spans = set(os.sched_getaffinity(0))
    probe = ("sleep 0.5; grep Cpus_allowed_list /proc/self/status > {p}mine; "
             "sh -c 'grep Cpus_allowed_list /proc/self/status' > {p}child; "
             "echo $PPID > {p}parent; grep Cpus_allowed_list /proc/$PPID/status >> {p}parent")
    files = ("mine", "child", "parent")
    tasks = [{"id": "first", "shell": probe.format(p=""), "outputs": list(files)}]  # alone: the loop spawns it
    tasks += [{"id": f"t{i}", "shell": probe.format(p=f"t{i}-"), "after": ["first"],
               "outputs": [f"t{i}-{f}" for f in files], "placement": "container" if i == 3 else "function"}
              for i in range(4)]
    wf = write_workflow(tmp_path / "wf.json", tasks)
    code, result = run_json(wf, tmp_path / "wd")
    assert code == 0, result
    data = tmp_path / "wd" / "blobs" / "runs" / result["run_id"] / "data"

    def read(name: str) -> tuple[str, set[int]]:
        """(first line, CPUs listed on the last line)"""
        lines = (data / name).read_text().splitlines()
        return lines[0], allowed(lines[-1])

    _, loop_cpus = read("parent")
    if len(spans) > 1 and os.environ.get("UPDRAFT_PIN", "1") != "0":
        assert len(loop_cpus) == 1  # the first task's parent is the loop itself: one CPU
    parents = set()
    for prefix in ["", *(f"t{i}-" for i in range(4))]:
        assert read(f"{prefix}mine")[1] == spans, prefix
        assert read(f"{prefix}child")[1] == spans, prefix
        parents.add(read(f"{prefix}parent")[0])
    assert len(parents) >= 2  # not every task was spawned by the loop (slots keep to a CPU each too)



def test_slots_queue_more_attempts_while_tasks_are_short_and_none_when_they_are_long(tmp_path: Path) -> None:
    pool = function_pool.FunctionPool(FsBlobStore(str(tmp_path / "blobs")), str(tmp_path / "sandbox"), 2,
                                      selectors.DefaultSelector(), lambda _event: None)
    try:
        assert pool.per_slot == 1  # nothing measured yet: the running attempt only
        for _ in range(30):
            pool._learn(0.001)
        assert pool.per_slot == 1 + pool.queued_max  # 1 ms tasks: six queued cover 6 ms
        for _ in range(30):
            pool._learn(0.02)
        assert pool.per_slot == 1 + pool.queued_min  # 20 ms tasks: two queued
        for _ in range(60):
            pool._learn(0.5)
        assert pool.per_slot == 1  # long tasks: none waits behind another in a slot
    finally:
        pool.kill_all()


def test_a_task_waiting_out_its_retry_backoff_leaves_its_place_to_ready_tasks(tmp_path: Path) -> None:
    """Four independent 1 s tasks on 2 places, `a` failing once: while `a` waits out its
    backoff (0.3-0.6 s here), `c` and `d` take both places; none waits behind another in a slot."""
    from chalicelib.engine.backoff import Backoff
    from chalicelib.engine.coordinator import CoordinatorConfig

    marker = tmp_path / "a-failed-once"
    tasks = [{"id": "a", "shell": f"sleep 1; if [ -e {marker} ]; then exit 0; fi; touch {marker}; exit 1",
              "retries": 1}]
    tasks += [{"id": tid, "shell": "sleep 1"} for tid in ("b", "c", "d")]
    wf = load(str(write_workflow(tmp_path / "wf.json", tasks)))
    opts = RuntimeOptions(concurrency=2, container_workers=1,
                          coordinator=CoordinatorConfig(backoff=Backoff(base_s=0.6, cap_s=0.6)))
    with LocalRuntime(str(tmp_path / "wd"), opts) as rt:
        run = rt.submit(wf)
        assert rt.run(run.run_id).state.value == "SUCCEEDED"
        recs = {r.task_id: r for r in rt.store.iter_tasks(run.run_id)}
    assert recs["a"].attempt == 2
    second_try = recs["a"].started_at
    assert second_try is not None
    # c and d start when a's first try and b end, before a's second try (today d waited behind c)
    for tid in ("c", "d"):
        started = recs[tid].started_at
        assert started is not None and started < second_try, (tid, started, second_try)
