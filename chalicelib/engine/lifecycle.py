"""Creating a run from a validated workflow, and resuming one.

Both write through the StateStore only. After `create_run` the caller sends a Start event;
after `begin_resume` a Resume event, whose windows (the coordinator's) call `reset_task` and
end with a Start. `resume_run` is the same resume in one call (small runs, tests).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from msgspec import Struct

from chalicelib.engine import transitions
from chalicelib.engine.placement import initial_placement
from chalicelib.engine.ports import BlobStore, StateStore
from chalicelib.engine.records import RunRecord, TaskRecord
from chalicelib.engine.spec import RunSpec, spec_key
from chalicelib.engine.states import DONE_OK, TERMINAL_RUN, RunState, TaskState
from chalicelib.errors import StateConflictError
from chalicelib.workflow.formats import native
from chalicelib.workflow.limits import FUNCTION, PlacementLimits


def new_run_id(now: float | None = None) -> str:
    """Sortable by time, unique without coordination: 20261121-221800-3f9a1c2b."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now if now is not None else time.time()))
    return f"{stamp}-{os.urandom(4).hex()}"


def task_records(run_id: str, spec: RunSpec, function_limits: PlacementLimits = FUNCTION) -> list[TaskRecord]:
    records = []
    for task in spec.workflow.tasks:
        pending = len(spec.graph.parents[task.id])
        records.append(TaskRecord(
            run_id=run_id, task_id=task.id,
            state=TaskState.READY if pending == 0 else TaskState.WAITING,
            attempt=1, placement=initial_placement(task, function_limits), pending=pending,
            max_attempts=task.retries + 1,
        ))
    return records


def create_run(
    spec: RunSpec, store: StateStore, blobs: BlobStore, now: float,
    options: dict[str, Any] | None = None, run_id: str | None = None,
    function_limits: PlacementLimits = FUNCTION,
) -> RunRecord:
    """Store the spec, then the run and its tasks. The workflow must be validated already.
    `function_limits`: what the largest function holds (`auto` tasks beyond it start in a container)."""
    run_id = run_id or new_run_id(now)
    key = spec_key(run_id)
    blobs.put_bytes(key, native.dump(spec.workflow, indent=None).encode("utf-8"))
    run = RunRecord(
        run_id=run_id, name=spec.workflow.name, state=RunState.RUNNING, created_at=now,
        task_count=len(spec.workflow.tasks), spec_key=key, options=dict(options or {}),
    )
    store.create_run(run, task_records(run_id, spec, function_limits))
    return run


RESUMING = transitions.RESUMING  # the run's option holding the token of the resume resetting its tasks
NOT_OK = [s for s in TaskState if s not in DONE_OK]  # what a resume resets


class Resumed(Struct, frozen=True):
    run: RunRecord
    token: str
    todo: int  # the tasks the resume resets


def begin_resume(run_id: str, store: StateStore, allow_running: bool = False, token: str | None = None) -> Resumed:
    """The part of a resume an API call does, whatever the run's size: the run RUNNING again
    (on condition of the state it was read in) with a new resume token in its options. The
    coordinator then resets its tasks a window at a time (`Resume` events carrying the token,
    `reset_task` for each) and starts it; until then it neither starts tasks nor finishes the
    run. A RUNNING run is resumed only when the caller knows its previous owner is gone."""
    run = store.get_run(run_id)
    if run.state is RunState.SUCCEEDED:
        raise StateConflictError(f"run {run_id} already SUCCEEDED: nothing to resume", run)
    if run.state not in TERMINAL_RUN and not allow_running:
        raise StateConflictError(f"run {run_id} is still RUNNING; cancel it first or wait", run)
    token = token or os.urandom(4).hex()
    run = transitions.begin_resume(store, run, [run.state], token)
    todo = sum(n for state, n in store.counts(run_id).items() if TaskState(state) not in DONE_OK)
    return Resumed(run, token, todo)


def reset_task(store: StateStore, spec: RunSpec, rec: TaskRecord, parent_done: Callable[[str], bool]) -> TaskRecord:
    """A task that did not succeed back to READY (every parent done) or WAITING, its pending
    count from its parents' states, with a fresh retry budget. An attempt that ended (or may
    still be out: DISPATCHED, RUNNING) is fenced off by a new attempt number; a WAITING or
    READY task keeps its own, so resetting a task twice is the same as once."""
    task = spec.tasks[rec.task_id]
    parents = spec.graph.parents[rec.task_id]
    done = [p for p in parents if parent_done(p)]
    pending = len(parents) - len(done)
    attempt = rec.attempt if rec.state in (TaskState.WAITING, TaskState.READY) else rec.attempt + 1
    return transitions.reset(store, rec.run_id, rec.task_id, ready=pending == 0, attempt=attempt,
                             done_parents=done, pending=pending, max_attempts=attempt + task.retries)


def resume_run(run_id: str, spec: RunSpec, store: StateStore, allow_running: bool = False) -> int:
    """Reset every task that did not succeed so the run can go on; returns how many.

    Tasks that SUCCEEDED or were CACHED are kept. Each reset task gets a new attempt number
    (fencing off events of the old one) and a fresh retry budget. A RUNNING run is resumed
    only when the caller knows its previous owner is gone (`allow_running`).
    """
    run = store.get_run(run_id)
    if run.state is RunState.SUCCEEDED:
        return 0
    if run.state not in TERMINAL_RUN and not allow_running:
        raise StateConflictError(f"run {run_id} is still RUNNING; cancel it first or wait", run)
    records = {r.task_id: r for r in store.list_tasks(run_id)}
    ok = {tid for tid, r in records.items() if r.state in DONE_OK}
    reset = 0
    with store.batch():
        for task in spec.workflow.tasks:
            rec = records[task.id]
            if rec.state in DONE_OK:
                continue
            parents = spec.graph.parents[task.id]
            done = [p for p in parents if p in ok]
            pending = len(parents) - len(done)
            attempt = rec.attempt + 1
            transitions.reset(store, run_id, task.id, ready=pending == 0, attempt=attempt, done_parents=done,
                              pending=pending, max_attempts=attempt + task.retries)
            reset += 1
        transitions.reopen_run(store, run_id)
    return reset
