"""A plan: where each task runs and on what size, with its predicted makespan and cost.

`apply_plan` turns a plan into a workflow the engine runs as planned:
- a task planned on a function keeps placement `auto` (or `function` if the user fixed it),
  gets the planned memory, and a container-sized `cpus`, so that when it hits a function limit
  (TIMEOUT, OOM, DISK_QUOTA) the coordinator's spill retries it in a container of that size;
- a task planned on a container gets placement `container` and the planned vCPU and memory.
Tasks the user fixed to `local` are left as they are.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar

from msgspec import Struct, field
from msgspec.structs import replace

from chalicelib.errors import Problem, WorkflowError
from chalicelib.planner.costs import Cost, dollars
from chalicelib.planner.pricing import fargate_size
from chalicelib.workflow import limits
from chalicelib.workflow.model import Placement, Workflow
from chalicelib.workflow.numbers import number_problem

# what a plan file may ask of one task: far above any real size, far below float overflow
_MAX_SIZE = {"memory_mb": 1e7, "cpus": 1e4, "disk_mb": 1e9}

FUNCTION = "function"
CONTAINER = "container"
FUNCTION_TIMEOUT_S = limits.FUNCTION_MAX_TIMEOUT_S


class Choice(Struct, frozen=True, order=True):
    placement: str
    memory_mb: int
    cpus: float = 0.0  # containers only; a function's CPU follows its memory
    disk_mb: int = 0  # 0: the task's own; else raised to hold the bytes it stages

    def label(self) -> str:
        if self.placement == FUNCTION:
            return f"function {self.memory_mb} MB"
        return f"container {self.cpus:g} vCPU/{self.memory_mb / 1024:g} GB"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"placement": self.placement, "memory_mb": self.memory_mb, "cpus": self.cpus}
        if self.disk_mb:
            out["disk_mb"] = self.disk_mb
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Choice:
        placement = str(data["placement"])
        if placement not in (FUNCTION, CONTAINER):
            raise ValueError(f"placement must be {FUNCTION!r} or {CONTAINER!r}, got {placement!r}")
        sizes = {"memory_mb": data["memory_mb"], "cpus": data.get("cpus") or 0.0, "disk_mb": data.get("disk_mb") or 0}
        for name, value in sizes.items():
            why = number_problem(value, 0.0, _MAX_SIZE[name])
            if why:
                raise ValueError(f"{name} {why}")
        return cls(placement, int(sizes["memory_mb"]), float(sizes["cpus"]), int(sizes["disk_mb"]))


class Split(Struct, frozen=True):
    """A task type divided: the `share` of its tasks with the most work on `first`, the rest on
    `rest` (one always-on worker, say, takes what it can and functions take the others)."""

    first: Choice
    rest: Choice
    share: float
    placement: ClassVar[str] = "split"

    def label(self) -> str:
        return f"{self.share:.0%} {self.first.label()}, the rest {self.rest.label()}"

    def to_dict(self) -> dict[str, Any]:
        return {"split": self.share, "first": self.first.to_dict(), "rest": self.rest.to_dict()}


Policy = Choice | Split


def policy_from_dict(data: Mapping[str, Any]) -> Policy:
    if "split" in data:
        return Split(Choice.from_dict(data["first"]), Choice.from_dict(data["rest"]), float(data["split"]))
    return Choice.from_dict(data)


class Plan(Struct, frozen=True):
    name: str
    choices: Mapping[str, Choice]  # task id -> choice
    by_type: Mapping[str, Policy] = field(default_factory=dict)  # the policy of each task type
    makespan_s: float = 0.0  # predicted
    cost: Cost = field(default_factory=Cost)  # predicted
    meets: bool = True  # the objective's constraint (deadline, budget) is met
    note: str = ""

    def summary(self) -> str:
        return f"{self.name}: {self.makespan_s:,.0f} s, {dollars(self.cost.total)}"

    def counts(self) -> dict[str, int]:
        out = {FUNCTION: 0, CONTAINER: 0}
        for c in self.choices.values():
            out[c.placement] += 1
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": "updraft-plan/v1", "name": self.name, "makespan_s": self.makespan_s,
            "cost": self.cost.to_dict(), "meets": self.meets, "note": self.note,
            "by_type": {k: v.to_dict() for k, v in sorted(self.by_type.items())},
            "choices": {k: v.to_dict() for k, v in self.choices.items()},
        }

    def dumps(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "<plan>") -> Plan:
        try:
            cost = data.get("cost") or {}
            return cls(
                name=str(data.get("name", "plan")),
                choices={str(k): Choice.from_dict(v) for k, v in dict(data["choices"]).items()},
                by_type={str(k): policy_from_dict(v) for k, v in dict(data.get("by_type") or {}).items()},
                makespan_s=float(data.get("makespan_s", 0.0)),
                cost=Cost(**{k: float(v) for k, v in cost.items() if k != "total"}),
                meets=bool(data.get("meets", True)), note=str(data.get("note", "")),
            )
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            raise WorkflowError([Problem(f"not a plan: {exc}", field="choices")], source) from exc


def apply_plan(workflow: Workflow, plan: Plan) -> Workflow:
    """The workflow with each planned task's placement and size set (see the module doc).

    Raises WorkflowError naming tasks the plan does not know, or that it puts somewhere the
    user ruled out.
    """
    problems: list[Problem] = []
    tasks = []
    for task in workflow.tasks:
        choice = plan.choices.get(task.id)
        if task.placement is Placement.LOCAL:
            tasks.append(task)
            continue
        if choice is None:
            problems.append(Problem("the plan has no placement for this task", task.id, "placement"))
            continue
        fixed = task.placement in (Placement.FUNCTION, Placement.CONTAINER)
        if fixed and task.placement.value != choice.placement:
            problems.append(Problem(
                f"the plan puts it on a {choice.placement} but the task asks for a {task.placement.value}",
                task.id, "placement"))
            continue
        res = task.resources
        if choice.disk_mb:
            res = replace(res, disk_mb=choice.disk_mb)
        if choice.placement == FUNCTION:
            cpus, _ = fargate_size(max(0.25, min(choice.memory_mb / 1769.0, 4.0)), 0)  # the spill's size
            placement = task.placement if fixed else Placement.AUTO
            resources = replace(res, memory_mb=choice.memory_mb, cpus=min(cpus, 6.0),
                                            timeout_s=min(res.timeout_s, FUNCTION_TIMEOUT_S))
        else:
            placement = Placement.CONTAINER
            resources = replace(res, memory_mb=choice.memory_mb, cpus=choice.cpus)
        # what the plan sets counts as given: a local run enforces it (workflow/limits.py)
        sized = {"placement", "memory_mb", "cpus"} | ({"disk_mb"} if choice.disk_mb else set())
        if choice.placement == FUNCTION:
            sized.add("timeout_s")
        tasks.append(replace(task, placement=placement, resources=resources, given=task.given | sized))
    if problems:
        raise WorkflowError(problems, f"plan {plan.name!r}")
    return replace(workflow, tasks=tuple(tasks))
