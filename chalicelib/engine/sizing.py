"""Which function size an out-of-memory retry moves to.

A cloud stage deploys task functions of a few memory sizes (CoordinatorConfig.function_sizes,
from UPDRAFT_FUNCTION_SIZES); an attempt runs on the smallest that holds its memory. After an
out-of-memory kill on a function, the next attempt asks for the next deployed size up; past the
largest, an `auto` task spills to a container (coordinator.py) and a `function` task keeps its
size until its retries run out. Without deployed sizes (local runs, the simulator's default)
memory doubles as before (Coordinator._escalate).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from chalicelib.engine.records import TaskRecord
from chalicelib.engine.states import Reason
from chalicelib.workflow.model import Task


def next_function_memory(sizes: Sequence[int], task: Task, rec: TaskRecord, reason: str) -> dict[str, Any] | None:
    """{"memory_mb": the next deployed size} after an OOM on a function; None when the attempt
    did not run out of memory on a function, no sizes are deployed, or it ran on the largest."""
    if not sizes or reason != Reason.OOM or rec.placement != "function":
        return None
    grown = rec.resources
    current = float(grown.get("memory_mb", task.resources.memory_mb))
    ran_on = next((s for s in sorted(sizes) if s >= current), None)
    if ran_on is None:
        return None
    bigger = next((s for s in sorted(sizes) if s > ran_on), None)
    return None if bigger is None else {"memory_mb": float(bigger)}


def capped_to_largest(sizes: Sequence[int], task: Task, escalated: dict[str, Any] | None) -> dict[str, Any] | None:
    """A retry that stays on a function cannot ask for more memory than the largest deployed
    size (no function would take it): the doubled memory is capped there."""
    if not sizes or not escalated or escalated.get("memory_mb", 0) <= max(sizes):
        return escalated
    capped = {**escalated, "memory_mb": float(max(sizes))}
    if capped["memory_mb"] == task.resources.memory_mb:
        del capped["memory_mb"]
    return capped or None
