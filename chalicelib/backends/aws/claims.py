"""Claiming an attempt before running it: what makes duplicate deliveries harmless.

SQS and asynchronous Lambda deliver at least once, so the same (run, task, attempt) can
reach two task functions or two workers. Before running anything, each makes the
DISPATCHED -> RUNNING transition itself, one conditional write that only one can win:

    invocation A                       task item                   invocation B (duplicate)
    claim(t, attempt 2) -----------> DISPATCHED -> RUNNING (ok)
    run the command                                         <----- claim(t, attempt 2)
                                     condition fails: RUNNING      returns at once: nothing run
    stage out, send completion ----> RUNNING -> SUCCEEDED (coordinator)

The claim is the same transition the coordinator makes for a TaskStarted event
(`engine.transitions.claim`), so no separate start event is needed. A worker that must stop early un-claims (RUNNING ->
DISPATCHED, same attempt) before returning the message, so the next receiver can claim it.
"""

from __future__ import annotations

import logging

from chalicelib.engine import transitions as tr
from chalicelib.engine.ports import StateStore
from chalicelib.engine.records import TaskRecord
from chalicelib.engine.states import TaskState

log = logging.getLogger("updraft.claims")


def claim(store: StateStore, run_id: str, task_id: str, attempt: int, now: float, lease_s: float) -> TaskRecord | None:
    """Take the attempt (None: another delivery has it, or it is no longer current)."""
    return _moved(tr.claim(store, run_id, task_id, attempt, now, lease_s))


def renew(store: StateStore, run_id: str, task_id: str, attempt: int, now: float, lease_s: float) -> bool:
    """Extend a claimed attempt's lease (a worker's heartbeat); False if it was taken away."""
    return _moved(tr.renew(store, run_id, task_id, attempt, now + lease_s, sources=[TaskState.RUNNING])) is not None


def unclaim(store: StateStore, run_id: str, task_id: str, attempt: int, now: float, lease_s: float) -> bool:
    """Give a claimed attempt back (RUNNING -> DISPATCHED) so a redelivery can take it."""
    return _moved(tr.unclaim(store, run_id, task_id, attempt, now + lease_s)) is not None


def _moved(outcome: TaskRecord | tr.Refused) -> TaskRecord | None:
    if isinstance(outcome, tr.Refused):
        log.info("%s", outcome.why, extra={"run_id": outcome.run_id, "task_id": outcome.task_id})
        return None
    return outcome
