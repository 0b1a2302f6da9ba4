"""Validation: collect every problem, each with its task id and field, then raise once.

A rejected workflow writes nothing anywhere: callers validate before touching any store.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator

from chalicelib.errors import Problem, WorkflowError
from chalicelib.workflow import limits
from chalicelib.workflow.graph import Graph, build_graph, find_cycle
from chalicelib.workflow.model import Placement, Task, Workflow
from chalicelib.workflow.numbers import MAX_SECONDS, describe, finite, hint_bounds, number_problem

RESERVED_PREFIX = ".updraft"  # the sandbox's own names (runner/sandbox.py)
DEFAULT_MAX_TASKS = 250_000
MAX_ID_LENGTH = 200
MAX_RETRIES = 20
_ID_RE = re.compile(r"^[^\s/\\\x00-\x1f\x7f]+$")
_DRIVE_RE = re.compile(r"^[A-Za-z]:[\\/]")


def task_limit() -> int:
    """Most tasks one workflow may have: UPDRAFT_MAX_TASKS, else DEFAULT_MAX_TASKS."""
    raw = os.environ.get("UPDRAFT_MAX_TASKS", "")
    return int(raw) if raw.isdigit() else DEFAULT_MAX_TASKS


def path_problem(path: str) -> str | None:
    """Why `path` is not a safe relative data path, or None if it is."""
    if not isinstance(path, str) or not path:
        return "path is empty"
    if "\x00" in path:
        return f"path {path!r} contains a NUL byte"
    if path.startswith("/") or _DRIVE_RE.match(path):
        return f"path {path!r} is absolute; use a path relative to the run's data root"
    if "\\" in path:
        return f"path {path!r} contains a backslash; use '/' separators"
    if "." not in path:
        return None  # no '.' or '..' part, and not only slashes: safe (the fast, usual case)
    parts = [part for part in path.split("/") if part not in ("", ".")]  # as PurePosixPath(path).parts
    if ".." in parts:
        return f"path {path!r} contains '..'; paths must stay inside the run's data root"
    if path in (".", "./") or not parts:
        return f"path {path!r} names the data root itself, not a file"
    if parts[0].startswith(RESERVED_PREFIX):
        return (f"path {path!r}: names starting with {RESERVED_PREFIX!r} are the engine's own "
                "(its temp folder and task logs); rename the file")
    return None


def _task_problems(task: Task, sizes: limits.DeployedSizes | None = None,
                   lambda_limits: bool = True) -> Iterator[Problem]:
    tid = task.id
    if not isinstance(tid, str) or not tid:
        yield Problem("task id is empty", None, "id")
        return
    if len(tid) > MAX_ID_LENGTH:
        yield Problem(f"task id is {len(tid)} characters; at most {MAX_ID_LENGTH}", tid[:40] + "…", "id")
    elif not _ID_RE.match(tid):
        yield Problem("task id may not contain whitespace, '/', '\\' or control characters", tid, "id")
    if bool(task.command) == (task.shell is not None):
        yield Problem("give exactly one of 'command' (an argv list) and 'shell' (a string)", tid, "command")
    elif task.command and not all(isinstance(a, str) for a in task.command):
        yield Problem("every argv element must be a string", tid, "command")
    elif any("\x00" in a for a in (*task.command, task.shell or "", *task.env.keys(), *task.env.values())):
        yield Problem("command, shell and env may not contain a NUL byte", tid, "command")
    elif task.shell is not None and not task.shell.strip():
        yield Problem("'shell' is empty", tid, "shell")
    for field_name, paths in (("inputs", task.inputs), ("outputs", task.outputs)):
        for path in paths:
            why = path_problem(path)
            if why:
                yield Problem(why, tid, field_name)
    for dep in task.deps:
        why = path_problem(dep.name) if dep.source else "a dependency needs a source (NAME=SOURCE or SOURCE)"
        if why:
            yield Problem(f"dependency {dep.spelling!r}: {why}", tid, "deps")
    if len(set(task.outputs)) != len(task.outputs):
        yield Problem("an output is listed twice", tid, "outputs")
    for path in set(task.inputs) & set(task.outputs):
        yield Problem(f"{path!r} is both an input and an output of the same task", tid, "inputs")
    yield from _resource_problems(task, sizes, lambda_limits)
    yield from _hint_problems(task)
    if not 0 <= task.retries <= MAX_RETRIES:
        yield Problem(f"retries must be between 0 and {MAX_RETRIES}, got {task.retries}", tid, "retries")


def _resource_problems(task: Task, sizes: limits.DeployedSizes | None = None,
                       lambda_limits: bool = True) -> Iterator[Problem]:
    tid, res = task.id, task.resources
    values = {"memory_mb": res.memory_mb, "cpus": res.cpus, "disk_mb": res.disk_mb, "timeout_s": res.timeout_s}
    bad = [name for name, v in values.items() if finite(v) is None]
    if bad:
        for name in bad:
            yield Problem(f"must be a finite number, got {describe(values[name])} (NaN, Infinity and "
                          "overflowing values are refused)", tid, f"resources.{name}")
        return
    if res.memory_mb <= 0 or res.cpus <= 0 or res.disk_mb <= 0 or res.timeout_s <= 0:
        yield Problem("memory_mb, cpus, disk_mb and timeout_s must all be positive", tid, "resources")
        return
    if res.timeout_s > MAX_SECONDS:
        yield Problem(f"timeout_s {res.timeout_s:g} is more than a year ({MAX_SECONDS:g} s)", tid,
                      "resources.timeout_s")
    if sizes is None:  # the services' own limits
        fn_lim, fn_fix = limits.FUNCTION, "set placement to 'container' or 'auto'"
        ct_lim, ct_fix = limits.CONTAINER, "the largest container cannot run it"
        if not lambda_limits:  # a local run: the task's own placement holds it to Lambda's limits
            fn_fix = ("the task's own placement 'function' holds it to Lambda's limits; set placement to "
                      "'container' or 'auto', or leave placement out to run it locally without them")
        elif "placement" not in task.declared():
            fn_fix += " (a local run without --emulate-lambda is not bound by Lambda's limits)"
    else:  # what the stage deploys
        fn_lim = sizes.function_limits()
        fn_fix = (f"the largest function this stage deploys has {sizes.largest_function_mb:,} MB "
                  f"(UPDRAFT_FUNCTION_SIZES: {', '.join(map(str, sizes.function_mb))}); set placement to "
                  "'container' or 'auto', or deploy a larger size")
        ct_lim = sizes.container_limits()
        ct_fix = (f"the largest container this stage starts has {sizes.container_cpus:g} vCPU / "
                  f"{sizes.container_memory_mb:,} MB")
    if task.placement is Placement.FUNCTION and (sizes is not None or limits.lambda_bound(task, lambda_limits)):
        yield from _over_limits(task, fn_lim, fn_fix)
    else:  # container, auto, local; and function on a local run not bound by Lambda's limits
        yield from _over_limits(task, ct_lim, ct_fix)


def _hint_problems(task: Task) -> Iterator[Problem]:
    """Hints feed the planner, the simulator and replay, which sum and multiply them: each one
    finite and within its bounds (numbers.hint_bounds), or the arithmetic overflows."""
    for name, value in task.hints.items():
        low, high, unit = hint_bounds(str(name))
        why = number_problem(value, low, high, unit)
        if why:
            yield Problem(why, task.id, f"hints.{name}")


def _over_limits(task: Task, lim: limits.PlacementLimits, fix: str) -> Iterator[Problem]:
    res, tid, where = task.resources, task.id, f"{lim.name} limit"
    checks = [
        ("timeout_s", res.timeout_s, lim.max_timeout_s, " s"),
        ("memory_mb", res.memory_mb, lim.max_memory_mb, " MB"),
        ("disk_mb", res.disk_mb, lim.max_disk_mb, " MB"),
        ("cpus", res.cpus, lim.max_cpus, ""),
    ]
    for name, value, limit, unit in checks:
        if limit is not None and value > limit:
            msg = f"{name} {value:g} exceeds the {where} of {limit:g}{unit}; {fix}"
            yield Problem(msg, tid, f"resources.{name}")


def problems(workflow: Workflow, max_tasks: int | None = None,
             sizes: limits.DeployedSizes | None = None, lambda_limits: bool = True) -> list[Problem]:
    """Every problem with the workflow (empty when it is valid); `sizes`: check resources
    against what a cloud stage deploys instead of the services' own limits; `lambda_limits`
    False: a local run that does not emulate Lambda (see limits.py)."""
    found: list[Problem] = []
    if max_tasks is None:
        max_tasks = task_limit()
    if not workflow.tasks:
        found.append(Problem("the workflow has no tasks", None, "tasks"))
        return found
    if len(workflow.tasks) > max_tasks:
        found.append(
            Problem(f"the workflow has {len(workflow.tasks)} tasks; the limit is {max_tasks} "
                    "(raise it with UPDRAFT_MAX_TASKS)", None, "tasks")
        )
        return found
    ids: set[str] = set()
    for task in workflow.tasks:
        if task.id in ids:
            found.append(Problem("duplicate task id", task.id, "id"))
        ids.add(task.id)
        found.extend(_task_problems(task, sizes, lambda_limits))
    producer: dict[str, str] = {}
    for task in workflow.tasks:
        for out in task.outputs:
            first = producer.setdefault(out, task.id)
            if first != task.id:
                found.append(Problem(f"output {out!r} is also produced by task {first!r}", task.id, "outputs"))
        for dep in task.after:
            if dep not in ids:
                found.append(Problem(f"'after' names unknown task {dep!r}", task.id, "after"))
            elif dep == task.id:
                found.append(Problem("a task cannot come after itself", task.id, "after"))
    for inp in workflow.inputs:
        why = path_problem(inp.path)
        if why:
            found.append(Problem(why, None, "inputs"))
        elif inp.path in producer:
            owner = producer[inp.path]
            found.append(Problem(f"external input {inp.path!r} is also produced by task {owner!r}", owner, "outputs"))
    graph = build_graph(workflow)
    cycle = find_cycle(graph)
    if cycle:
        found.append(Problem("dependency cycle: " + " -> ".join(cycle), cycle[0], "after/inputs"))
    else:
        found.extend(_inside_folders(producer, graph))
    if workflow.publish or any(t.publish for t in workflow.tasks):
        from chalicelib.workflow import publish_rules

        found.extend(publish_rules.problems(workflow))
    return found


def _inside_folders(producer: dict[str, str], graph: Graph) -> Iterator[Problem]:
    """Outputs inside a folder that another output names ("d" and "d/x"): then "d" is a
    folder. Its own producer may list files in it (Makeflow's `mydir mydir/1.txt:`), and a
    task that comes after it may add files to it; an unrelated task writing into it would
    race the folder's producer, so that is a problem."""
    ancestors: dict[str, set[str]] = {}
    for out, tid in producer.items():
        parts = out.split("/")
        for i in range(len(parts) - 1, 0, -1):
            folder = "/".join(parts[:i])
            owner = producer.get(folder)
            if owner is None or owner == tid:
                continue
            if tid not in ancestors:
                ancestors[tid] = _ancestors(graph, tid)
            if owner not in ancestors[tid]:
                yield Problem(f"output {out!r} is inside folder {folder!r}, an output of task {owner!r}, "
                              f"which this task does not come after; make {out!r} an output of "
                              f"{owner!r}, or have this task read {folder!r} (or add 'after')",
                              tid, "outputs")
            break


def _ancestors(graph: Graph, tid: str) -> set[str]:
    seen: set[str] = set()
    stack = list(graph.parents.get(tid, ()))
    while stack:
        t = stack.pop()
        if t not in seen:
            seen.add(t)
            stack.extend(graph.parents.get(t, ()))
    return seen


def validate(workflow: Workflow, source: str | None = None, max_tasks: int | None = None,
             sizes: limits.DeployedSizes | None = None, lambda_limits: bool = True) -> Workflow:
    """Return the workflow unchanged, or raise WorkflowError listing every problem. The cloud
    validates with Lambda's limits (or the stage's deployed `sizes`); a local run passes
    `lambda_limits=emulate_lambda`."""
    found = problems(workflow, max_tasks, sizes, lambda_limits)
    if found:
        raise WorkflowError(found, source)
    return workflow
