"""The `updraft plan` table: the chosen plan per task type, next to all-function and
all-container plans under the same objective."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from msgspec import Struct

from chalicelib.planner.costs import dollars
from chalicelib.planner.perfmodel import PerfModel
from chalicelib.planner.planner import CONTAINER, FUNCTION, Objective, Planner
from chalicelib.planner.plans import Plan
from chalicelib.planner.platform import Platform
from chalicelib.workflow.model import Workflow


class PlanSet(Struct, frozen=True):
    objective: Objective
    chosen: Plan
    all_function: Plan
    all_container: Plan

    def plans(self) -> list[Plan]:
        return [self.chosen, self.all_function, self.all_container]


def plan_set(planner: Planner, objective: Objective) -> PlanSet:
    return PlanSet(
        objective,
        planner.plan(objective, name="chosen"),
        planner.plan(objective, kinds=(FUNCTION,), name="all-function"),
        planner.plan(objective, kinds=(CONTAINER,), name="all-container"),
    )


def _type_label(planner: Planner, plan: Plan, type_name: str) -> str:
    tasks = [planner.problem.tasks[i].id for i in planner.members[type_name]]
    labels = Counter(plan.choices[t].label() for t in tasks)
    (top, _), *rest = labels.most_common()
    return top + "".join(f" (+{n} {label})" for label, n in rest)


def _mean_run(planner: Planner, plan: Plan, type_name: str) -> float:
    members = planner.members[type_name]
    return sum(planner.run_s(i, plan.choices[planner.problem.tasks[i].id]) for i in members) / len(members)


def render(planner: Planner, plans: PlanSet) -> str:
    wf = planner.workflow
    sources = Counter(d.source for d in planner.problem.demands)
    lines = [
        f"plan for {wf.name!r}: {len(wf.tasks)} tasks of {len(planner.type_names)} types; "
        f"objective: {plans.objective.label()}",
        f"runtimes from: {', '.join(f'{src} {n}' for src, n in sorted(sources.items()))}",
        planner.platform.describe(),
        "",
    ]
    rows: list[tuple[str, ...]] = [
        ("task type", "tasks", "chosen placement", "predicted run", "all-function", "all-container")]
    for name in planner.type_names:
        rows.append((
            name, str(len(planner.members[name])), _type_label(planner, plans.chosen, name),
            f"{_mean_run(planner, plans.chosen, name):,.1f} s",
            _type_label(planner, plans.all_function, name), _type_label(planner, plans.all_container, name),
        ))
    lines += _table(rows, right={1, 3})
    lines.append("")
    rows = [("plan", "makespan", "cost", "functions", "containers", "meets", "note")]
    for p in plans.plans():
        counts = p.counts()
        rows.append((
            p.name, f"{p.makespan_s:,.0f} s", dollars(p.cost.total), str(counts[FUNCTION]), str(counts[CONTAINER]),
            "yes" if p.meets else "NO", p.note,
        ))
    lines += _table(rows, right={1, 2, 3, 4})
    return "\n".join(line.rstrip() for line in lines) + "\n"


def _table(rows: Sequence[tuple[str, ...]], right: set[int]) -> list[str]:
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    out = []
    for r in rows:
        cells = [v.rjust(widths[c]) if c in right else v.ljust(widths[c]) for c, v in enumerate(r)]
        out.append("  ".join(cells))
    return out


def plan_table(
    workflow: Workflow, objective: str | None = None, deadline: float | None = None, budget: float | None = None,
    perf: PerfModel | None = None, platform: Platform | None = None,
) -> str:
    """The table `updraft plan` prints."""
    planner = Planner(workflow, perf, platform)
    return render(planner, plan_set(planner, Objective.of(objective, deadline, budget)))
