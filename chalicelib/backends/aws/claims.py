"""Claiming an attempt before running it: what makes duplicate deliveries harmless.

SQS and asynchronous Lambda deliver at least once, so the same (run, task, attempt) can
reach two task functions or two workers. Before running anything, each makes the
DISPATCHED -> RUNNING transition itself, one conditional write that only one can win:

    invocation A                       task item                   invocation B (duplicate)
    claim(t, attempt 2) -----------> DISPATCHED -> RUNNING (ok)
    run the command                                         <----- claim(t, attempt 2)
                                     condition fails: RUNNING      returns at once: nothing run
    stage out, send completion ----> RUNNING -> SUCCEEDED (coordinator)

The claim is the same transition the coordinator makes for a TaskStarted event, so no
separate start event is needed. A worker that must stop early un-claims (RUNNING ->
DISPATCHED, same attempt) before returning the message, so the next receiver can claim it.
"""

from __future__ import annotations

from chalicelib.engine.records import TaskRecord
from chalicelib.engine.states import TaskState
from chalicelib.errors import NotFoundError, StateConflictError
from chalicelib.ports import StateStore


def claim(store: StateStore, run_id: str, task_id: str, attempt: int, now: float, lease_s: float) -> TaskRecord | None:
    """Take the attempt (None: another delivery has it, or it is no longer current)."""
    changes = {"state": TaskState.RUNNING, "started_at": now, "lease_expires": now + lease_s}
    try:
        return store.update_task(run_id, task_id, [TaskState.DISPATCHED], attempt, changes)
    except (StateConflictError, NotFoundError):
        return None


def renew(store: StateStore, run_id: str, task_id: str, attempt: int, now: float, lease_s: float) -> bool:
    """Extend a claimed attempt's lease (a worker's heartbeat); False if it was taken away."""
    try:
        store.update_task(run_id, task_id, [TaskState.RUNNING], attempt, {"lease_expires": now + lease_s})
    except (StateConflictError, NotFoundError):
        return False
    return True


def unclaim(store: StateStore, run_id: str, task_id: str, attempt: int, now: float, lease_s: float) -> bool:
    """Give a claimed attempt back (RUNNING -> DISPATCHED) so a redelivery can take it."""
    changes = {"state": TaskState.DISPATCHED, "started_at": None, "lease_expires": now + lease_s}
    try:
        store.update_task(run_id, task_id, [TaskState.RUNNING], attempt, changes)
    except (StateConflictError, NotFoundError):
        return False
    return True
