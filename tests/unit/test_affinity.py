"""runner/affinity.py: the loop is kept on one CPU, what it starts gets every CPU."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chalicelib.runner import affinity
from chalicelib.runner.procs import children
from chalicelib.runner.spawn import reap_process, spawn

ALL = frozenset(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else frozenset()
needs_pinning = pytest.mark.skipif(not affinity.available(), reason="needs Linux with 2+ CPUs allowed")
ENV = [os.fsencode(f"{k}={v}") for k, v in os.environ.items()]


@pytest.fixture()
def procs(tmp_path: Path) -> Iterator[list[int]]:
    """Pids to kill (with their process groups) after the test."""
    started: list[int] = []
    yield started
    for pid in started:
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue
        reap_process(pid)


def _start(tmp_path: Path, script: str, procs: list[int]) -> int:
    pid = spawn("/bin/sh", ["sh", "-c", script], ENV, str(tmp_path), str(tmp_path / "log"))
    procs.append(pid)
    return pid


@needs_pinning
def test_the_loop_is_pinned_to_one_cpu_and_lets_go_for_a_moment_every_hold_s() -> None:
    pin = affinity.LoopPin(hold_s=0.05, free_s=0.01)
    with pin:
        pin.tick(0.0)
        mask = os.sched_getaffinity(0)
        assert len(mask) == 1 and mask <= ALL
        pin.tick(0.01)  # within hold_s: stays
        assert os.sched_getaffinity(0) == mask
        pin.tick(0.06)  # free for free_s
        assert os.sched_getaffinity(0) == ALL
        pin.tick(0.065)
        assert os.sched_getaffinity(0) == ALL
        pin.tick(0.071)  # pinned again, wherever the thread runs now
        assert len(os.sched_getaffinity(0)) == 1
    assert os.sched_getaffinity(0) == ALL  # restored on the way out


@needs_pinning
def test_a_child_of_the_pinned_loop_gets_every_cpu_back(tmp_path: Path, procs: list[int]) -> None:
    with affinity.LoopPin() as pin:
        pin.tick(time.monotonic())
        pid = _start(tmp_path, "sleep 30", procs)
        assert len(os.sched_getaffinity(pid)) == 1  # inherited: what `release` is for
        assert affinity.release(pid)
        assert os.sched_getaffinity(pid) == ALL


@needs_pinning
def test_what_a_task_started_before_its_release_is_widened_by_release_tree(tmp_path: Path, procs: list[int]) -> None:
    with affinity.LoopPin() as pin:
        pin.tick(time.monotonic())
        pid = _start(tmp_path, "sleep 30 & sleep 30 & wait", procs)
        deadline = time.monotonic() + 10
        while len(kids := children(pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(kids) == 2 and all(len(os.sched_getaffinity(k)) == 1 for k in kids)
        affinity.release_tree(pid)
        assert [os.sched_getaffinity(p) for p in (pid, *kids)] == [ALL] * 3


def test_without_a_pinned_loop_release_changes_nothing(tmp_path: Path, procs: list[int]) -> None:
    pid = _start(tmp_path, "sleep 30", procs)
    assert not affinity.release(pid)
    with affinity.LoopPin() as pin:  # entered but never ticked: a pin only once ticked
        assert os.sched_getaffinity(0) == ALL or not pin.active


def test_updraft_pin_0_turns_pinning_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UPDRAFT_PIN", "0")
    with affinity.LoopPin() as pin:
        pin.tick(0.0)
        assert not pin.active and not pin.pinned
        if ALL:
            assert os.sched_getaffinity(0) == ALL
