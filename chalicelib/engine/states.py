"""Task and run states (DESIGN.md); the typed reasons a task can fail are re-exported from
`chalicelib/attempt.py`."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any, NamedTuple

from chalicelib.attempt import Reason as Reason  # re-exported: what an attempt reports lives below the engine


class TaskState(enum.StrEnum):
    WAITING = "WAITING"
    READY = "READY"
    DISPATCHED = "DISPATCHED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CACHED = "CACHED"
    UPSTREAM_FAILED = "UPSTREAM_FAILED"
    CANCELLED = "CANCELLED"


class RunState(enum.StrEnum):
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


TERMINAL_TASK = frozenset(
    {TaskState.SUCCEEDED, TaskState.FAILED, TaskState.CACHED, TaskState.UPSTREAM_FAILED, TaskState.CANCELLED}
)
DONE_OK = frozenset({TaskState.SUCCEEDED, TaskState.CACHED})
IN_FLIGHT = frozenset({TaskState.DISPATCHED, TaskState.RUNNING})
NOT_STARTED = frozenset({TaskState.WAITING, TaskState.READY})
# Waiting for an attempt to start: start/finish times such a task carries are an earlier attempt's.
NOT_YET_RUNNING = NOT_STARTED | {TaskState.DISPATCHED}
TERMINAL_RUN = frozenset({RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED})
# Reasons a function-placed `auto` task is retried in a container instead (spill).
SPILL_REASONS = frozenset({Reason.TIMEOUT, Reason.OOM, Reason.DISK_QUOTA})


# ---- the one table of state names -------------------------------------------------------------
# Everything that shows or groups states reads it: the CLI, the report, the dashboard (the page
# receives it as JSON: ui/page.py), the SDK. A new state is added to its enum AND here; the tests
# (tests/unit/test_states_table.py) fail when one is missing, and docs/architecture.md lists the
# other places a new state touches.


class StateInfo(NamedTuple):
    """How a state is shown: its colour in charts and on the dashboard, and one line saying
    what it means to a user."""

    colour: str
    meaning: str


# In display order: the order a task moves through them, then the ways it can end.
TASK_STATES: dict[TaskState, StateInfo] = {
    TaskState.WAITING: StateInfo("#d9d9d9", "waits for its parents"),
    TaskState.READY: StateInfo("#fdd49e", "may start: its parents are done"),
    TaskState.DISPATCHED: StateInfo("#9ecae1", "sent to a function or a container, not started yet"),
    TaskState.RUNNING: StateInfo("#3182bd", "running (an attempt claimed it)"),
    TaskState.SUCCEEDED: StateInfo("#31a354", "exited 0 with every declared output"),
    TaskState.CACHED: StateInfo("#a1d99b", "a stored result was reused"),
    TaskState.FAILED: StateInfo("#de2d26", "failed on its last attempt"),
    TaskState.UPSTREAM_FAILED: StateInfo("#fc9272", "not run: a task it depends on failed"),
    TaskState.CANCELLED: StateInfo("#756bb1", "not finished: the run was cancelled or failed"),
}
TASK_STATE_ORDER: tuple[TaskState, ...] = tuple(TASK_STATES)

RUN_STATES: dict[RunState, StateInfo] = {
    RunState.RUNNING: StateInfo("#3182bd", "has tasks that are not finished"),
    RunState.SUCCEEDED: StateInfo("#31a354", "every task succeeded or was cached"),
    RunState.FAILED: StateInfo("#de2d26", "every task finished, and some did not succeed"),
    RunState.CANCELLED: StateInfo("#756bb1", "cancelled by a user"),
}
RUN_STATE_ORDER: tuple[RunState, ...] = tuple(RUN_STATES)


def ordered(counts: Mapping[str, int]) -> list[tuple[str, int]]:
    """(state, count) for each state with a count, in display order."""
    return [(s.value, counts[s.value]) for s in TASK_STATE_ORDER if counts.get(s.value)]


def states_json() -> dict[str, Any]:
    """The table as the dashboard page receives it (ui/page.py): names in display order, the
    groups it needs, and the colours."""
    return {
        "task_states": [s.value for s in TASK_STATE_ORDER],
        "run_states": [s.value for s in RUN_STATE_ORDER],
        "terminal_task": [s.value for s in TASK_STATE_ORDER if s in TERMINAL_TASK],
        "terminal_run": [s.value for s in RUN_STATE_ORDER if s in TERMINAL_RUN],
        "done_ok": [s.value for s in TASK_STATE_ORDER if s in DONE_OK],
        "in_flight": [s.value for s in TASK_STATE_ORDER if s in IN_FLIGHT],
        "not_started": [s.value for s in TASK_STATE_ORDER if s in NOT_STARTED],
        "not_yet_running": [s.value for s in TASK_STATE_ORDER if s in NOT_YET_RUNNING],
        "task_colours": {s.value: i.colour for s, i in TASK_STATES.items()},
        "run_colours": {s.value: i.colour for s, i in RUN_STATES.items()},
    }
