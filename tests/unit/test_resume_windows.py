"""A resume in windows: the API call only moves the run to RUNNING with a resume token
(`begin_resume`); the coordinator resets its tasks at most one window (256) per `Resume`
event, each window sending the next, and the last one starts the run. Duplicated, stale or
foreign windows change nothing; meanwhile the run neither starts tasks nor finishes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from chalicelib.attempt import AttemptResult
from chalicelib.engine import events as ev
from chalicelib.engine.coordinator import CoordinatorConfig
from chalicelib.engine.lifecycle import begin_resume, resume_run
from chalicelib.engine.states import RunState, TaskState
from chalicelib.errors import StateConflictError
from tests.unit.test_coordinator import Harness, T, launched
from tests.unit.test_coordinator_windows import drain

N = 1000
WINDOW = CoordinatorConfig().start_batch


def failed_run(tmp: Path) -> Harness:
    """`a` succeeded, f0000..f0999 (its children) FAILED, g0000..g0999 (one per f) UPSTREAM_FAILED."""
    tasks = [T("a"), *(T(f"f{i:04d}", ("a",)) for i in range(N)), *(T(f"g{i:04d}", (f"f{i:04d}",)) for i in range(N))]
    h = Harness(tmp, tasks)
    h.start()
    drain(h, h.ok("a"), WINDOW)
    h.co.handle([ev.TaskFailed(h.rid, f"f{i:04d}", 1, "NONZERO_EXIT", AttemptResult(exit_code=1)) for i in range(N)])
    assert h.run_state() is RunState.FAILED
    assert h.store.counts(h.rid) == {"SUCCEEDED": 1, "FAILED": N, "UPSTREAM_FAILED": N}
    return h


def snapshot(h: Harness) -> dict[str, tuple[Any, ...]]:
    return {r.task_id: (r.state, r.attempt, r.pending, r.max_attempts) for r in h.store.list_tasks(h.rid)}


def resume_windows(h: Harness) -> Callable[[], int]:
    """Count the task resets each coordinator step makes (reset_task calls)."""
    calls = [0]
    real = h.store.reset_task

    def counting(*args: Any, **kw: Any) -> Any:
        calls[0] += 1
        return real(*args, **kw)

    h.store.reset_task = counting  # type: ignore[method-assign]

    def take() -> int:
        n, calls[0] = calls[0], 0
        return n
    return take


def resumes(out: list) -> list[ev.Event]:
    return [i.event for i in out if isinstance(i, ev.Schedule) and isinstance(i.event, ev.Resume | ev.Start)]


def test_a_resume_of_2000_unfinished_tasks_resets_a_window_per_step_and_ends_as_resume_run(tmp_path: Path) -> None:
    h = failed_run(tmp_path / "w")
    resets = resume_windows(h)
    begun = begin_resume(h.rid, h.store)
    assert resets() == 0 and begun.todo == 2 * N  # the API call resets nothing
    assert h.run_state() is RunState.RUNNING  # what `wait` sees at once: not the old FAILED
    pending, steps, windows = [ev.Resume(h.rid, begun.token)], 0, []
    start: list[ev.Event] = []
    while pending:
        event = pending.pop(0)
        windows.append(event)
        out = h.handle(event)
        steps += 1
        assert resets() <= WINDOW  # each step bounded
        assert launched(out) == [] and not any(isinstance(i, ev.RunFinished) for i in out)
        nxt = resumes(out)
        assert len(nxt) == 1
        if isinstance(nxt[0], ev.Start):
            start = nxt
        else:
            pending += nxt
        assert h.run_state() is RunState.RUNNING
    assert steps in (-(-2 * N // WINDOW), -(-2 * N // WINDOW) + 1)
    assert start == [ev.Start(h.rid)] and "resuming" not in h.store.get_run(h.rid).options

    ref = failed_run(tmp_path / "r")
    assert resume_run(ref.rid, ref.co.specs.get(ref.rid), ref.store) == 2 * N
    assert snapshot(h) == snapshot(ref)  # the same states, attempts, pending counts and budgets
    assert h.store.counts(h.rid) == ref.store.counts(ref.rid) == {"SUCCEEDED": 1, "READY": N, "WAITING": N}

    for late in windows:  # every window again, after the resume ended: nothing happens
        assert h.handle(late) == []
    assert snapshot(h) == snapshot(ref)
    launches, _, _ = drain(h, h.handle(*start), WINDOW)
    assert sorted(launches) == [f"f{i:04d}" for i in range(N)]  # each once, at attempt 2
    assert {r.attempt for r in h.store.list_tasks(h.rid, [TaskState.DISPATCHED])} == {2}
    assert h.handle(windows[-1]) == [] and h.store.counts(h.rid)[TaskState.DISPATCHED.value] == N


def test_duplicate_reordered_and_foreign_windows_change_nothing(tmp_path: Path) -> None:
    h = failed_run(tmp_path / "w")
    begun = begin_resume(h.rid, h.store)
    first = ev.Resume(h.rid, begun.token)
    (second,) = resumes(h.handle(first))
    before = snapshot(h)
    assert resumes(h.handle(first)) == [second]  # a duplicate of the first window: the same resets
    assert snapshot(h) == before
    assert h.handle(ev.Resume(h.rid, "another")) == []  # a window of some other resume
    assert h.handle(ev.Resume(h.rid, "another", after="f0500")) == []
    assert snapshot(h) == before
    third = resumes(h.handle(second))
    assert resumes(h.handle(second)) == third  # the second again, after it was handled
    todo = third
    while todo and not isinstance(todo[0], ev.Start):
        todo = resumes(h.handle(todo[0]))
    ref = failed_run(tmp_path / "r")
    resume_run(ref.rid, ref.co.specs.get(ref.rid), ref.store)
    assert snapshot(h) == snapshot(ref)


def test_a_run_being_resumed_neither_finishes_nor_starts_tasks(tmp_path: Path) -> None:
    h = failed_run(tmp_path)
    begun = begin_resume(h.rid, h.store)
    # a redelivered failure of the old attempt touches the run while every task is still terminal
    out = h.fail("f0000")
    assert not any(isinstance(i, ev.RunFinished) for i in out) and h.run_state() is RunState.RUNNING
    assert h.start() == []  # a stray Start: the resume's last window starts the run
    assert launched(h.handle(ev.ReadyChildren(h.rid, "a", 0))) == []  # its children are not WAITING
    with pytest.raises(StateConflictError, match="still RUNNING"):
        begin_resume(h.rid, h.store)  # a second resume meanwhile: 409
    todo: list[ev.Event] = [ev.Resume(h.rid, begun.token)]
    while not isinstance(todo[0], ev.Start):
        todo = resumes(h.handle(todo[0]))
    assert len(launched(h.handle(*todo))) == WINDOW


def test_a_cancel_during_a_resume_stops_it_and_a_later_resume_goes_on(tmp_path: Path) -> None:
    h = failed_run(tmp_path)
    begun = begin_resume(h.rid, h.store)
    (nxt,) = resumes(h.handle(ev.Resume(h.rid, begun.token)))
    drain(h, h.handle(ev.Cancel(h.rid)), 0)
    assert h.run_state() is RunState.CANCELLED
    assert h.handle(nxt) == []  # the cancelled resume's next window: nothing
    again = begin_resume(h.rid, h.store)
    assert again.token != begun.token
    todo: list[ev.Event] = [ev.Resume(h.rid, again.token)]
    while not isinstance(todo[0], ev.Start):
        todo = resumes(h.handle(todo[0]))
    assert h.store.counts(h.rid) == {"SUCCEEDED": 1, "READY": N, "WAITING": N}


def test_a_resume_refuses_a_succeeded_run_and_a_running_one_unless_its_owner_is_gone(tmp_path: Path) -> None:
    h = Harness(tmp_path, [T("a"), T("b", ("a",))])
    h.start()
    with pytest.raises(StateConflictError, match="still RUNNING"):
        begin_resume(h.rid, h.store)
    begun = begin_resume(h.rid, h.store, allow_running=True)  # the local runtime: nobody executes it
    todo: list[ev.Event] = [ev.Resume(h.rid, begun.token)]
    while not isinstance(todo[0], ev.Start):
        todo = resumes(h.handle(todo[0]))
    assert h.store.get_task(h.rid, "a").attempt == 2  # the DISPATCHED attempt fenced off
    assert launched(h.handle(*todo)) == ["a"]
    h.ok("a", 2)
    h.ok("b")
    with pytest.raises(StateConflictError, match="already SUCCEEDED"):
        begin_resume(h.rid, h.store)


def test_the_resume_event_survives_the_wire() -> None:
    for e in (ev.Resume("r", "t0"), ev.Resume("r", "t0", after="f0255")):
        assert ev.event_from_dict(e.to_dict()) == e
    assert ev.Resume("r", "t0").to_dict() == {"kind": "resume", "run_id": "r", "token": "t0"}


def test_a_parent_that_succeeds_during_the_resume_readies_every_child(tmp_path: Path) -> None:
    """A cancelled run whose task `p` was still out: the resume resets `p`'s children (first in
    the page order) before `p`'s success arrives. Its ReadyChildren continuations still count
    the edges, so no child is left WAITING; a child they dispatch before its window comes is
    reset by that window (the launched attempt fenced off: its claim is refused) and started
    again at its new attempt, once."""
    h = Harness(tmp_path, [*(T(f"c{i}", ("p",)) for i in range(10)), T("p"), T("x")])
    h.co.config = CoordinatorConfig(start_batch=4)
    drain(h, h.start(), 4)
    h.fail("x")
    assert h.state("p") is TaskState.DISPATCHED
    h.co.config = CoordinatorConfig(start_batch=1)
    h.handle(ev.Cancel(h.rid))  # the run CANCELLED, its first task (c0) too; p's Kill never came
    assert h.run_state() is RunState.CANCELLED and h.state("p") is TaskState.DISPATCHED
    h.co.config = CoordinatorConfig(start_batch=8)
    begun = begin_resume(h.rid, h.store)
    (nxt,) = resumes(h.handle(ev.Resume(h.rid, begun.token)))  # c0..c7 reset: WAITING for p
    h.co.config = CoordinatorConfig(start_batch=4)  # p's completion counts c0..c3, then a continuation
    everything = drain(h, h.ok("p"), 4)[2]  # p's success, from before the cancel
    while not isinstance(nxt, ev.Start):
        (nxt,) = resumes(h.handle(nxt))
    everything += drain(h, h.handle(nxt), 4)[2]
    tasks = {r.task_id: r for r in h.store.list_tasks(h.rid)}
    assert h.store.counts(h.rid) == {"DISPATCHED": 11, "SUCCEEDED": 1}
    current = [(i.task_id, i.attempt) for i in everything
               if isinstance(i, ev.Launch) and i.attempt == tasks[i.task_id].attempt]
    assert sorted(current) == sorted((t, r.attempt) for t, r in tasks.items() if t != "p")  # each once
