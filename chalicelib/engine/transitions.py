"""Every state change of a task or a run: one named, conditional function each.

Whoever writes state (the coordinator, the task function's and the worker's claim, the
shell's relaunch, the poison-event handler, `resume`) calls one of these, never the store's
generic `update_task` / `update_run`. Each is ONE conditional write; the condition names
the states it moves from and, for a task, the attempt that may make it, so a late or
duplicate event of an old attempt cannot overwrite a newer one (DESIGN.md, Semantics).

When the condition does not hold, a function returns a `Refused` saying why: which
transition, what it needed, and the record as it is now (the store returns it with the
failed write, as cirrus-geo's statedb does with ReturnValuesOnConditionCheckFailure=ALL_OLD).
The caller decides what a refusal means (that is policy, and stays with the coordinator): for
a redelivered event it is the expected no-op. A task that does not exist is refused too
(`current` None). Any other store error (throttling, a lost connection) propagates, so the
handler that can retry (SQS redelivery, the local loop) does.

`TRANSITIONS` is the table of them (from, to, condition, writers): docs/reliability.md shows it
and tests/unit/test_transitions.py checks the functions keep to it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from msgspec import Struct, field
from msgspec.structs import replace

from chalicelib.attempt import AttemptResult
from chalicelib.engine.ports import StateStore
from chalicelib.engine.records import RunRecord, TaskRecord, Try
from chalicelib.engine.states import (
    IN_FLIGHT,
    NOT_STARTED,
    TERMINAL_TASK,
    Reason,
    RunState,
    TaskState,
)
from chalicelib.errors import NotFoundError, StateConflictError

# Added to a function task's timeout for its lease (dispatch and claim): time for the
# function to start, stage out and report before the sweeper calls it lost.
FUNCTION_LEASE_GRACE_S = 30.0


def function_lease_s(timeout_s: float) -> float:
    """The lease of a function-placed attempt whose command may run `timeout_s`."""
    return timeout_s + FUNCTION_LEASE_GRACE_S


class Transition(Struct, frozen=True):
    """One row of the table: a named move between states and who makes it."""

    name: str
    kind: str  # "task" or "run"
    sources: tuple[str, ...]  # the states it moves from
    targets: tuple[str, ...]  # the states it moves to (the source itself: a lease renewal)
    condition: str
    writers: tuple[str, ...]


_LIVE = tuple(s.value for s in TaskState if s not in TERMINAL_TASK)
_IN_FLIGHT = tuple(s.value for s in TaskState if s in IN_FLIGHT)
_NOT_STARTED = tuple(s.value for s in TaskState if s in NOT_STARTED)

TRANSITIONS: dict[str, Transition] = {t.name: t for t in (
    Transition("dispatch", "task", ("READY",), ("DISPATCHED",), "same attempt; sets the dispatch lease",
               ("coordinator (Start, DispatchDue, a parent's completion, a retry)",)),
    Transition("claim", "task", ("DISPATCHED",), ("RUNNING",), "same attempt; one of two deliveries wins",
               ("coordinator (TaskStarted)", "task function", "Fargate worker")),
    Transition("renew", "task", _IN_FLIGHT, _IN_FLIGHT, "same attempt; state unchanged, lease extended",
               ("coordinator (Heartbeat)", "Fargate worker (heartbeat)")),
    Transition("unclaim", "task", ("RUNNING",), ("DISPATCHED",), "same attempt; the claimant gives it back",
               ("Fargate worker (stopping early)",)),
    Transition("relaunch", "task", ("DISPATCHED",), ("READY",), "same attempt; a launch failed, try again later",
               ("shell (retryable launch error)",)),
    Transition("retry", "task", _IN_FLIGHT, ("READY",), "same attempt; the next attempt number is written",
               ("coordinator (TaskFailed, LeaseExpired, retries left)",)),
    Transition("fail", "task", _IN_FLIGHT, ("FAILED",), "same attempt; no retries left",
               ("coordinator (TaskFailed, LeaseExpired)",)),
    Transition("finish", "task", _IN_FLIGHT, ("SUCCEEDED", "CACHED"), "same attempt",
               ("coordinator (TaskSucceeded)",)),
    Transition("upstream_failed", "task", _NOT_STARTED, ("UPSTREAM_FAILED",), "any attempt; an ancestor FAILED",
               ("coordinator",)),
    Transition("cancel_live", "task", _LIVE, ("CANCELLED",), "the state and attempt just read",
               ("coordinator (Cancel)", "coordinator function (poison event)")),
    Transition("ready_children", "task", ("WAITING",), ("READY",),
               "its last parent's completion counted (pending 0)",
               ("store.complete_parents, called by the coordinator",)),
    Transition("reset", "task", tuple(s.value for s in TaskState), ("WAITING", "READY"),
               "unconditional, the run being resumed; next attempt (a WAITING or READY task keeps its own)",
               ("coordinator (Resume)", "resume_run (one call)")),
    Transition("finish_run", "run", ("RUNNING",), ("SUCCEEDED", "FAILED"), "every task terminal",
               ("coordinator", "sweeper (finish_recounted: the same condition, storing the recounted counters)")),
    Transition("cancel_run", "run", ("RUNNING",), ("CANCELLED",), "a user asked", ("coordinator (Cancel)",)),
    Transition("fail_run", "run", ("RUNNING",), ("FAILED",), "an event of the run was dead-lettered",
               ("coordinator function (poison event)",)),
    Transition("reopen_run", "run", tuple(s.value for s in RunState), ("RUNNING",), "not SUCCEEDED",
               ("resume_run (one call: tests, tools)",)),
    Transition("begin_resume", "run", ("FAILED", "CANCELLED", "RUNNING"), ("RUNNING",),
               "the state just read (RUNNING only when its owner is gone); sets the resume token",
               ("resume (API call, local runtime)",)),
    Transition("end_resume", "run", ("RUNNING",), ("RUNNING",), "every task reset; clears the resume token",
               ("coordinator (the last Resume window)",)),
)}


class Bookkeeping(Struct, frozen=True):
    """The engine's own fields a failed attempt's transition writes on the task record (see
    TaskRecord): not part of what the runner reported."""

    lost_workers: int = 0
    resources: dict[str, float] = field(default_factory=dict)
    tries: tuple[Try, ...] = ()

    def changes(self) -> dict[str, Any]:
        return {"lost_workers": self.lost_workers, "resources": self.resources, "tries": self.tries}


class Refused(Struct, frozen=True):
    """A transition whose condition did not hold: what was asked, and what is there now."""

    transition: str
    run_id: str
    task_id: str | None
    expected: tuple[str, ...]
    attempt: int | None
    current: TaskRecord | RunRecord | None

    @property
    def why(self) -> str:
        what = f"task {self.task_id}" if self.task_id is not None else f"run {self.run_id}"
        needs = "/".join(self.expected) + (f" at attempt {self.attempt}" if self.attempt is not None else "")
        if self.current is None:
            return f"{self.transition} {what}: no such {'task' if self.task_id else 'run'} (needs {needs})"
        at = f" at attempt {self.current.attempt}" if isinstance(self.current, TaskRecord) else ""
        return f"{self.transition} {what}: it is {self.current.state.value}{at}, needs {needs}"


# ---- the primitive --------------------------------------------------------------------------------

def _task(
    name: str, store: StateStore, run_id: str, task_id: str, sources: Collection[TaskState],
    attempt: int | None, changes: Mapping[str, Any],
) -> TaskRecord | Refused:
    try:
        return store.update_task(run_id, task_id, sources, attempt, changes)
    except StateConflictError as conflict:
        current = conflict.current if isinstance(conflict.current, TaskRecord) else None
        return Refused(name, run_id, task_id, _names(sources), attempt, current)
    except NotFoundError:
        return Refused(name, run_id, task_id, _names(sources), attempt, None)


def _many(
    name: str, store: StateStore, run_id: str, sources: Collection[TaskState],
    updates: Sequence[tuple[str, int | None, Mapping[str, Any]]],
) -> list[TaskRecord | Refused]:
    """One batched write; a refusal carries no current record (the batched write does not
    read it back: a caller that cares reads the task)."""
    moved = store.update_tasks(run_id, sources, updates)
    return [rec if rec is not None else Refused(name, run_id, task_id, _names(sources), attempt, None)
            for (task_id, attempt, _), rec in zip(updates, moved, strict=True)]


def _run(
    name: str, store: StateStore, run_id: str, sources: Collection[RunState], changes: Mapping[str, Any],
) -> RunRecord | Refused:
    try:
        return store.update_run(run_id, sources, changes)
    except StateConflictError as conflict:
        current = conflict.current if isinstance(conflict.current, RunRecord) else None
        return Refused(name, run_id, None, _names(sources), None, current)


def _names(states: Collection[TaskState] | Collection[RunState]) -> tuple[str, ...]:
    return tuple(sorted(s.value for s in states))


# ---- task transitions -----------------------------------------------------------------------------

def dispatch(
    store: StateStore, run_id: str, attempts: Sequence[tuple[str, int, float]],
) -> list[TaskRecord | Refused]:
    """READY -> DISPATCHED for each (task_id, attempt, lease_expires), in one store call."""
    updates = [(task_id, attempt, {"state": TaskState.DISPATCHED, "lease_expires": lease, "not_before": None})
               for task_id, attempt, lease in attempts]
    return _many("dispatch", store, run_id, [TaskState.READY], updates)


def claim(
    store: StateStore, run_id: str, task_id: str, attempt: int, now: float, lease_s: float,
) -> TaskRecord | Refused:
    """DISPATCHED -> RUNNING: the attempt starts (only one of two deliveries can)."""
    changes = {"state": TaskState.RUNNING, "started_at": now, "lease_expires": now + lease_s}
    return _task("claim", store, run_id, task_id, [TaskState.DISPATCHED], attempt, changes)


def renew(
    store: StateStore, run_id: str, task_id: str, attempt: int, lease_expires: float,
    sources: Collection[TaskState] = IN_FLIGHT,
) -> TaskRecord | Refused:
    """Extend an in-flight attempt's lease (a heartbeat). A claimant renews only what it
    claimed: it passes `sources=[RUNNING]`."""
    if not set(sources) <= IN_FLIGHT:
        raise ValueError(f"renew moves only in-flight tasks, not {_names(sources)}")
    return _task("renew", store, run_id, task_id, sources, attempt, {"lease_expires": lease_expires})


def unclaim(store: StateStore, run_id: str, task_id: str, attempt: int, lease_expires: float) -> TaskRecord | Refused:
    """RUNNING -> DISPATCHED: the claimant gives the attempt back for a redelivery to take."""
    changes = {"state": TaskState.DISPATCHED, "started_at": None, "lease_expires": lease_expires}
    return _task("unclaim", store, run_id, task_id, [TaskState.RUNNING], attempt, changes)


def relaunch(store: StateStore, run_id: str, task_id: str, attempt: int, not_before: float) -> TaskRecord | Refused:
    """DISPATCHED -> READY, same attempt: its launch failed; a DispatchDue dispatches it again."""
    changes = {"state": TaskState.READY, "lease_expires": None, "not_before": not_before}
    return _task("relaunch", store, run_id, task_id, [TaskState.DISPATCHED], attempt, changes)


def retry(
    store: StateStore, rec: TaskRecord, *, reason: str, result: AttemptResult, not_before: float,
    placement: str, max_attempts: int, book: Bookkeeping,
) -> TaskRecord | Refused:
    """In flight -> READY with the next attempt number (fencing off the failed one)."""
    changes = {
        "state": TaskState.READY, "attempt": rec.attempt + 1, "not_before": not_before, "lease_expires": None,
        "reason": reason, "result": result, "placement": placement, "max_attempts": max_attempts,
        **book.changes(),
    }
    return _task("retry", store, rec.run_id, rec.task_id, IN_FLIGHT, rec.attempt, changes)


def fail(
    store: StateStore, run_id: str, task_id: str, attempt: int, *, reason: str, result: AttemptResult, now: float,
    book: Bookkeeping, started_at: float | None = None,
) -> TaskRecord | Refused:
    """In flight -> FAILED: the attempt failed and no retry is left. `now` is when it ended;
    `started_at`, when known, is this attempt's own start (not an earlier attempt's)."""
    changes: dict[str, Any] = {"state": TaskState.FAILED, "finished_at": now, "reason": reason, "result": result,
                               "lease_expires": None, "exit_code": result.exit_code}
    if started_at is not None:
        changes["started_at"] = started_at
    changes.update(book.changes())
    return _task("fail", store, run_id, task_id, IN_FLIGHT, attempt, changes)


def finish(
    store: StateStore, run_id: str, completions: Sequence[tuple[str, int, bool, AttemptResult, float]],
) -> list[TaskRecord | Refused]:
    """In flight -> SUCCEEDED (or CACHED) for each (task_id, attempt, cached, result, now),
    in one store call. The record's bookkeeping (earlier tries...) stays as it is."""
    updates: list[tuple[str, int | None, Mapping[str, Any]]] = []
    for task_id, attempt, cached, result, now in completions:
        changes: dict[str, Any] = {
            "state": TaskState.CACHED if cached else TaskState.SUCCEEDED,
            "finished_at": now if result.finished_at is None else result.finished_at,
            "exit_code": 0 if result.exit_code is None else result.exit_code,
            "result": result, "lease_expires": None, "reason": None,
        }
        if result.started_at is not None:
            changes["started_at"] = result.started_at
        updates.append((task_id, attempt, changes))
    return _many("finish", store, run_id, IN_FLIGHT, updates)


def upstream_failed(
    store: StateStore, run_id: str, task_id: str, failed_parent: str, now: float,
) -> TaskRecord | Refused:
    """Not started -> UPSTREAM_FAILED (whatever its attempt): an ancestor failed."""
    changes = {"state": TaskState.UPSTREAM_FAILED, "reason": Reason.UPSTREAM.value, "finished_at": now,
               "result": None, "failed_parent": failed_parent}
    return _task("upstream_failed", store, run_id, task_id, NOT_STARTED, None, changes)


def cancel_live(store: StateStore, rec: TaskRecord, now: float, log_tail: str | None = None) -> TaskRecord | Refused:
    """A live task -> CANCELLED, if it is still in the state and attempt `rec` shows (a
    coordinator moving it meanwhile wins; the caller reads again if it must)."""
    changes: dict[str, Any] = {"state": TaskState.CANCELLED, "reason": Reason.CANCELLED.value,
                               "finished_at": now, "lease_expires": None}
    if log_tail is not None:
        changes["result"] = replace(rec.result or AttemptResult(), log_tail=log_tail)
    if rec.state in TERMINAL_TASK:
        return Refused("cancel_live", rec.run_id, rec.task_id, _LIVE, rec.attempt, rec)
    return _task("cancel_live", store, rec.run_id, rec.task_id, [rec.state], rec.attempt, changes)


def cancel_all_live(
    store: StateStore, run_id: str, now: float, log_tail: str | None = None, rounds: int = 1,
) -> list[TaskRecord]:
    """`cancel_live` for every live task of a run; returns the records (as they were before)
    of the tasks it cancelled while in flight, which the caller kills. With `rounds` > 1 it
    looks again while tasks are left (a coordinator may move one while it looks)."""
    killed: list[TaskRecord] = []
    live_states = [TaskState(s) for s in _LIVE]
    for _ in range(rounds):
        live = store.list_tasks(run_id, live_states)
        if not live:
            break
        for rec in live:
            if not isinstance(cancel_live(store, rec, now, log_tail), Refused) and rec.state in IN_FLIGHT:
                killed.append(rec)
    return killed


def reset(
    store: StateStore, run_id: str, task_id: str, *, ready: bool, attempt: int, done_parents: Sequence[str],
    pending: int, max_attempts: int,
) -> TaskRecord:
    """Any state -> READY or WAITING with a new attempt, for `resume` (unconditional: the run
    is not RUNNING, or its owner is gone)."""
    state = TaskState.READY if ready else TaskState.WAITING
    return store.reset_task(run_id, task_id, state, attempt, done_parents, pending, max_attempts)


def ready_children(
    store: StateStore, run_id: str, completions: Sequence[tuple[str, Sequence[str]]],
) -> list[TaskRecord]:
    """WAITING -> READY for each child whose last parent this counts; returns the READY children
    (the store's atomic counter: see StateStore.complete_parent)."""
    return store.complete_parents(run_id, completions)


# ---- run transitions ------------------------------------------------------------------------------

def finish_run(store: StateStore, run_id: str, final: RunState, now: float) -> RunRecord | Refused:
    """RUNNING -> SUCCEEDED or FAILED: every task is terminal."""
    if final not in (RunState.SUCCEEDED, RunState.FAILED):
        raise ValueError(f"a run finishes SUCCEEDED or FAILED, not {final.value}")
    return _run("finish_run", store, run_id, [RunState.RUNNING], {"state": final, "finished_at": now})


def cancel_run(store: StateStore, run_id: str, now: float) -> RunRecord | Refused:
    """RUNNING -> CANCELLED."""
    return _run("cancel_run", store, run_id, [RunState.RUNNING], {"state": RunState.CANCELLED, "finished_at": now})


def fail_run(store: StateStore, run: RunRecord, why: str, now: float) -> RunRecord | Refused:
    """RUNNING -> FAILED with the reason kept in the run's options (`failure`)."""
    changes = {"state": RunState.FAILED, "finished_at": now, "options": {**run.options, "failure": why}}
    return _run("fail_run", store, run.run_id, [RunState.RUNNING], changes)


def reopen_run(store: StateStore, run_id: str) -> RunRecord:
    """Any state -> RUNNING, for `resume` (the caller has checked it may)."""
    return store.update_run(run_id, list(RunState), {"state": RunState.RUNNING, "finished_at": None})


RESUMING = "resuming"  # the run's option holding the token of the resume resetting its tasks


def begin_resume(store: StateStore, run: RunRecord, sources: Collection[RunState], token: str) -> RunRecord:
    """`sources` -> RUNNING with the resume's `token` in the run's options (its tasks are reset
    next, a window at a time); StateConflictError when another call moved the run first."""
    options = {**run.options, RESUMING: token}
    return store.update_run(run.run_id, sources, {"state": RunState.RUNNING, "finished_at": None, "options": options})


def end_resume(store: StateStore, run: RunRecord) -> RunRecord | Refused:
    """RUNNING -> RUNNING without the resume's token: every task is reset, the run may go on."""
    options = {k: v for k, v in run.options.items() if k != RESUMING}
    return _run("end_resume", store, run.run_id, [RunState.RUNNING], {"options": options})
