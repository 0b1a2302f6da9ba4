"""Where a task runs when the workflow leaves it to Updraft (`placement: auto`).

Hard limits first: a task that cannot fit a function goes to a container. The planner
(chalicelib/planner) can refine the choice; without one, functions are preferred.
"""

from __future__ import annotations

from chalicelib.workflow import limits
from chalicelib.workflow.model import Placement, Task


def fits_function(task: Task, lim: limits.PlacementLimits = limits.FUNCTION) -> bool:
    """Whether a function can hold the task: Lambda's limits, or a stage's largest deployed size."""
    res = task.resources
    return (
        (lim.max_timeout_s is None or res.timeout_s <= lim.max_timeout_s)
        and res.memory_mb <= lim.max_memory_mb
        and res.disk_mb <= lim.max_disk_mb
        and res.cpus <= lim.max_cpus
    )


def initial_placement(task: Task, lim: limits.PlacementLimits = limits.FUNCTION) -> str:
    """The placement of a task's first attempt: 'function' or 'container'; `lim` is what the
    largest function can hold (a cloud stage's deployed sizes)."""
    if task.placement is Placement.FUNCTION:
        return "function"
    if task.placement in (Placement.CONTAINER, Placement.LOCAL):
        return "container"
    return "function" if fits_function(task, lim) else "container"
