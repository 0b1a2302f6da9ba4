"""The planner's fast estimate of a plan: makespan and cost, without the engine.

A DAG walker drives the same `Machine` (pools, latencies, prices) the simulator uses, with the
coordinator's timing: a finished task's event reaches the coordinator after `event_s`, its step
takes `coordinator_s`, and a function launch takes `invoke_s` more. A batching window on the
coordinator's events (`events_batch_window_s`) is counted in full for every event: what a lone
completion waits, an upper bound for a level wide enough to fill batches. With the deployed
window (none) the simulator's makespan is the same up to event-ordering ties on a run without
failures.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from typing import cast

from msgspec import Struct

from chalicelib.planner.costs import ControlPlane, Cost
from chalicelib.planner.machine import Job, Machine, Usage
from chalicelib.planner.perfmodel import Demand, PerfModel, file_sizes
from chalicelib.planner.plans import FUNCTION, Choice
from chalicelib.planner.platform import Platform
from chalicelib.workflow.graph import build_graph
from chalicelib.workflow.model import Task, Workflow


class Problem:
    """A workflow prepared for planning: tasks by index, edges, predicted demands."""

    def __init__(self, workflow: Workflow, perf: PerfModel, platform: Platform) -> None:
        self.workflow = workflow
        self.platform = platform
        self.tasks: list[Task] = list(workflow.tasks)
        self.index = {t.id: i for i, t in enumerate(self.tasks)}
        graph = build_graph(workflow)
        self.children = [[self.index[c] for c in graph.children[t.id]] for t in self.tasks]
        self.nparents = [len(graph.parents[t.id]) for t in self.tasks]
        self.edges = graph.edge_count
        sizes = file_sizes(workflow)
        self.demands: list[Demand] = [perf.demand(t, sizes) for t in self.tasks]
        self.types: list[str] = [t.task_type for t in self.tasks]
        self._jobs: dict[tuple[int, Choice], Job] = {}
        self.runs: dict[tuple[int, Choice], tuple[float, bool]] = {}

    def job(self, i: int, choice: Choice, slowdown: float = 1.0, key: object = None) -> Job:
        if key is None and slowdown == 1.0:
            cached = self._jobs.get((i, choice))
            if cached is None:
                cached = self._jobs[(i, choice)] = self._job(i, choice, 1.0, i)
            return cached
        return self._job(i, choice, slowdown, i if key is None else key)

    def _job(self, i: int, choice: Choice, slowdown: float, key: object) -> Job:
        task = self.tasks[i]
        return Job(
            key=key, placement=choice.placement, memory_mb=choice.memory_mb,
            cpus=choice.cpus, demand=self.demands[i], objects_in=len(task.inputs),
            objects_out=len(task.outputs), timeout_s=task.resources.timeout_s,
            disk_mb=choice.disk_mb or task.resources.disk_mb, slowdown=slowdown,
        )

    def control_plane(self, choices: Sequence[Choice]) -> ControlPlane:
        return ControlPlane.typical(
            tasks=len(self.tasks), edges=self.edges,
            container_tasks=sum(1 for c in choices if c.placement != FUNCTION),
            objects_in=sum(len(t.inputs) for t in self.tasks),
            objects_out=sum(len(t.outputs) for t in self.tasks),
        )


class Estimate(Struct, frozen=True):
    makespan_s: float
    cost: Cost
    usage: Usage
    limit_hits: int  # tasks the model says hit a limit of their slot (the plan is unsafe)


def estimate(problem: Problem, choices: Sequence[Choice]) -> Estimate:
    """Predicted makespan and cost of running every task i on choices[i]."""
    platform = problem.platform
    lat = platform.latencies
    machine = Machine(platform)
    functions, containers = machine.functions, machine.containers
    jobs = [problem.job(i, c) for i, c in enumerate(choices)]
    on_function = [c.placement == FUNCTION for c in choices]
    pending = list(problem.nparents)
    children = problem.children
    after_event = lat.event_s + lat.events_batch_window_s + lat.coordinator_s
    invoke = lat.invoke_s
    heap: list[tuple[float, int, int, int]] = []  # (time, sequence, kind, task)
    seq = 0
    for i, n in enumerate(pending):
        if n == 0:
            seq += 1
            heap.append((lat.coordinator_s + (invoke if on_function[i] else 0.0), seq, _SUBMIT, i))
    heapq.heapify(heap)
    push, pop = heapq.heappush, heapq.heappop
    last = 0.0
    hits = 0
    runs = problem.runs  # (task, choice) -> (seconds from its start, hits a limit): memoised
    while heap:
        t, _, kind, i = pop(heap)
        if kind == _SUBMIT:
            starts = functions.submit(jobs[i], t) if on_function[i] else containers.submit(jobs[i], t)
        elif kind == _BOOTED:
            starts = containers.tick(t)
        else:
            starts = functions.finish(i, t) if on_function[i] else containers.finish(i, t)
            last = t
            for c in children[i]:
                pending[c] -= 1
                if pending[c] == 0:
                    seq += 1
                    push(heap, (t + after_event + (invoke if on_function[c] else 0.0), seq, _SUBMIT, c))
        for start in starts:
            j = cast(int, start.job.key)
            key = (j, choices[j])
            run = runs.get(key)
            if run is None:
                out = machine.outcome(start)
                run = runs[key] = (out.end - start.at, out.reason is not None)
            hits += run[1]
            seq += 1
            push(heap, (start.at + run[0], seq, _END, j))
        if containers.has_timers():
            for tm in containers.timers():
                seq += 1
                push(heap, (tm, seq, _BOOTED, -1))
    makespan = last + after_event if problem.tasks else 0.0
    usage = machine.close(makespan)
    cost = Cost.of(usage.function_cost, usage.container_cost, problem.control_plane(choices), platform.prices)
    return Estimate(makespan, cost, usage, hits)


_SUBMIT, _BOOTED, _END = 0, 1, 2
