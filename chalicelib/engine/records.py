"""The records the state store keeps: one per run, one per task."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from msgspec import Struct, field

from chalicelib.engine.states import RunState, TaskState


class RunRecord(Struct, frozen=True):
    run_id: str
    name: str
    state: RunState
    created_at: float
    task_count: int
    spec_key: str
    finished_at: float | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id, "name": self.name, "state": self.state.value,
            "created_at": self.created_at, "finished_at": self.finished_at,
            "task_count": self.task_count, "spec_key": self.spec_key, "options": self.options,
        }


class TaskRecord(Struct, frozen=True):
    """Dynamic state of one task. The static spec (command, files) lives in the run's spec."""

    run_id: str
    task_id: str
    state: TaskState
    attempt: int
    placement: str
    pending: int
    max_attempts: int = 1
    lease_expires: float | None = None
    not_before: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    exit_code: int | None = None
    reason: str | None = None
    result: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.task_id, "state": self.state.value, "attempts": self.attempt,
            "placement": self.placement, "started_at": self.started_at,
            "finished_at": self.finished_at, "exit_code": self.exit_code, "reason": self.reason,
        }


class TaskPage(Struct, frozen=True):
    """One page of a run's tasks (`StateStore.page_tasks`): the tasks, and the position the
    next page starts after (a task id, passed back as `after`), None when there is no more."""

    tasks: list[TaskRecord]
    after: str | None = None


# The fields of a TaskRecord that `StateStore.update_task` may change.
TASK_MUTABLE = frozenset({
    "state", "attempt", "placement", "lease_expires", "not_before", "started_at",
    "finished_at", "exit_code", "reason", "result", "max_attempts",
})
RUN_MUTABLE = frozenset({"state", "finished_at", "options"})


def check_mutable(kind: str, changes: Iterable[str]) -> None:
    """Raise ValueError naming the fields of `changes` a store may not change on a `kind`
    ("run" or "task") record."""
    bad = set(changes) - (RUN_MUTABLE if kind == "run" else TASK_MUTABLE)
    if bad:
        raise ValueError(f"{kind} fields {sorted(bad)} cannot be changed")


def check_limit(limit: int | None) -> None:
    """Raise ValueError for a negative `limit` (None: no limit)."""
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be 0 or more, not {limit}")


def check_new_tasks(run_id: str, tasks: Iterable[TaskRecord]) -> None:
    """Raise ValueError, before a store writes anything, when a new run's task records repeat
    a task id or belong to another run."""
    seen: set[str] = set()
    repeated: list[str] = []
    strays: list[str] = []
    for t in tasks:
        if t.run_id != run_id:
            strays.append(t.task_id)
        elif t.task_id in seen:
            repeated.append(t.task_id)
        seen.add(t.task_id)
    if repeated:
        raise ValueError(f"run {run_id}: task ids repeated: {sorted(set(repeated))[:10]}")
    if strays:
        raise ValueError(f"run {run_id}: tasks of another run given: {strays[:10]}")
