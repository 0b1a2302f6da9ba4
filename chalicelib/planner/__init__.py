"""Hybrid placement: prices, a performance model, a planner and an engine-driving simulator.

Entry points (imports are lazy: chalicelib ships to every function, which never plans):

    plan_table(workflow, objective="cost" | "makespan", deadline=S, budget=D) -> str
    make_plan(workflow, ...) -> Plan              the chosen plan
    apply_plan(workflow, plan) -> Workflow        placements and sizes set, ready to run
    simulate(workflow, plan, ...) -> SimResult    the real coordinator on a modelled cloud
    perf_model(workdir=..., history=...) -> PerfModel   learned from finished runs
    record_history(workdir, workflow, records) -> int   after a local run

docs/planner.md explains the models and their limits.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chalicelib.engine.records import TaskRecord
    from chalicelib.planner.perfmodel import PerfModel
    from chalicelib.planner.plans import Plan
    from chalicelib.planner.platform import Platform
    from chalicelib.planner.simulator import SimResult
    from chalicelib.workflow.model import Workflow


def plan_table(
    workflow: Workflow, objective: str | None = None, deadline: float | None = None, budget: float | None = None,
    perf: PerfModel | None = None, platform: Platform | None = None,
) -> str:
    from chalicelib.planner.report import plan_table as table

    return table(workflow, objective, deadline, budget, perf, platform)


def make_plan(
    workflow: Workflow, objective: str | None = None, deadline: float | None = None, budget: float | None = None,
    perf: PerfModel | None = None, platform: Platform | None = None,
) -> Plan:
    from chalicelib.planner.planner import Objective, Planner

    return Planner(workflow, perf, platform).plan(Objective.of(objective, deadline, budget))


def apply_plan(workflow: Workflow, plan: Plan) -> Workflow:
    from chalicelib.planner.plans import apply_plan as apply

    return apply(workflow, plan)


def simulate(
    workflow: Workflow, plan: Plan | None = None, platform: Platform | None = None, perf: PerfModel | None = None,
    noise: float = 0.0, seed: int = 0,
) -> SimResult:
    from chalicelib.planner.simulator import simulate as run

    return run(workflow, plan, platform, perf, noise=noise, seed=seed)


def perf_model(workdir: str | None = None, history: str | None = None) -> PerfModel:
    """The performance model learned from `history` (a JSON-lines file), else the work dir's."""
    from chalicelib.planner.history import JsonlHistoryStore
    from chalicelib.planner.perfmodel import PerfModel

    if history is None and workdir is None:
        return PerfModel()
    store = JsonlHistoryStore(history) if history else JsonlHistoryStore.in_workdir(workdir or ".")
    return PerfModel.learn(store.samples())


def record_history(
    workdir: str, workflow: Workflow, records: Iterable[TaskRecord], env: str = "local", per_type: int = 200,
) -> int:
    """Add a finished run's measured tasks (at most `per_type` of each task type, evenly
    spread) to the work dir's history; returns how many."""
    from chalicelib.planner.history import JsonlHistoryStore, samples_from_run, thin

    samples = thin(samples_from_run(workflow, records, env), per_type)
    JsonlHistoryStore.in_workdir(workdir).add(samples)
    return len(samples)
