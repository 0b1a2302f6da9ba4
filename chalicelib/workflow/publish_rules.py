"""Which declared outputs a workflow's `publish` rules select, and where each goes.

A rule is a folder (`to`) and fnmatch patterns (`outputs`, where `*` also crosses `/`) over
declared output paths. A task's rule without patterns takes every output of the task; a
workflow's rule without patterns takes the final outputs (those no task reads). Each selected
output keeps its relative path under `to` (`counts/a.tsv` -> `results/counts/a.tsv`).
The copying itself is chalicelib/outputs/publish.py.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator, Sequence

from chalicelib.errors import Problem
from chalicelib.workflow.model import PublishRule, Task, Workflow


def final_outputs(workflow: Workflow) -> list[str]:
    """Declared outputs no task reads (directly, or inside a folder it reads), in task order."""
    read = {p for t in workflow.tasks for p in t.inputs}
    return [out for t in workflow.tasks for out in t.outputs if not _read(out, read)]


def _read(path: str, read: set[str]) -> bool:
    """Whether a task reads `path` or a folder holding it (O(depth), not O(inputs))."""
    while True:
        if path in read:
            return True
        if "/" not in path:
            return False
        path = path.rsplit("/", 1)[0]


def _matching(rule: PublishRule, outputs: Sequence[str]) -> Iterator[tuple[str, list[str]]]:
    for pattern in rule.outputs:
        bare = pattern.rstrip("/") or pattern
        yield pattern, [o for o in outputs if fnmatch.fnmatchcase(o, bare)]


def _chosen(rule: PublishRule, outputs: Sequence[str], default: Sequence[str]) -> list[str]:
    if not rule.outputs:
        return list(default)
    return list(dict.fromkeys(o for _, hits in _matching(rule, outputs) for o in hits))


def selection(workflow: Workflow, default_to: str | None = None) -> list[tuple[str, str]]:
    """(folder, output path) for every output the rules publish, in rule order, without
    repeats. `default_to`: with no rule anywhere, publish the final outputs there
    (`--outdir` alone)."""
    every = [o for t in workflow.tasks for o in t.outputs]
    final = final_outputs(workflow) if workflow.publish or default_to is not None else []
    picked: list[tuple[str, str]] = []
    for rule in workflow.publish:
        picked += [(rule.to, o) for o in _chosen(rule, every, final)]
    for task in workflow.tasks:
        for rule in task.publish:
            picked += [(rule.to, o) for o in _chosen(rule, task.outputs, task.outputs)]
    if not picked and default_to is not None and not _has_rules(workflow):
        picked = [(default_to, o) for o in final]
    return list(dict.fromkeys(picked))


def _has_rules(workflow: Workflow) -> bool:
    return bool(workflow.publish) or any(t.publish for t in workflow.tasks)


def problems(workflow: Workflow) -> list[Problem]:
    """A pattern that selects none of the outputs it is matched against, a task rule on a task
    without outputs, a workflow rule without patterns when every output is read by a task."""
    found: list[Problem] = []
    every = [o for t in workflow.tasks for o in t.outputs]
    final = final_outputs(workflow) if workflow.publish else []
    for i, rule in enumerate(workflow.publish):
        found += _rule_problems(rule, every, None, _where(workflow.publish, i))
        if not rule.outputs and not final:
            found.append(Problem("publishes the final outputs, and there are none (every output is read by a "
                                 "task): name the outputs to publish in 'outputs'", None, _where(workflow.publish, i)))
    for task in workflow.tasks:
        for i, rule in enumerate(task.publish):
            if not task.outputs:
                found.append(Problem("the task declares no outputs to publish", task.id, _where(task.publish, i)))
            else:
                found += _rule_problems(rule, task.outputs, task, _where(task.publish, i))
    return found


def _rule_problems(rule: PublishRule, outputs: Sequence[str], task: Task | None, where: str) -> list[Problem]:
    found = []
    for pattern, hits in _matching(rule, outputs):
        if not hits:
            whose = "the task's outputs" if task is not None else "any task's outputs"
            shown = ", ".join(outputs[:10]) + (", ..." if len(outputs) > 10 else "")
            found.append(Problem(f"pattern {pattern!r} matches none of {whose} ({shown})",
                                 task.id if task else None, f"{where}.outputs"))
    return found


def _where(rules: Sequence[PublishRule], i: int) -> str:
    return "publish" if len(rules) == 1 else f"publish[{i}]"
