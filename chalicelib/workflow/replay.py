"""Replay a recorded workflow: every task sleeps its runtime and writes its outputs.

Traces (WfCommons) and workflows whose tools are not installed (HyperFlow Montage, Makeflow
BLAST) still exercise the whole engine this way: the replayed workflow has the same ids,
files, edges, placements and types, and goes through the normal runner, stores and state
machine. Each command is `python -m chalicelib.runner.replay_task --sleep S --write N PATH...`
(argv, no shell) when `launcher="module"`, which works wherever chalicelib is importable
(a Lambda or Fargate image). The default, `launcher="file"`, runs the same file as
`python -I -S .../chalicelib/runner/replay_task.py`: no site packages and no package
imports, about five times quicker to start, which is what keeps a 1,000-task replay short.
Both name this machine's Python (`python`), so build the replay where it will run.

- Runtime: hints["runtime_s"] (WfCommons records it), else `default_runtime_s`; times
  `time_scale`.
- Sizes: hints["size:<path>"], else DEFAULT_SIZE_BYTES (unscaled); times `size_scale`.
- Files no task makes (workflow inputs) are written by one extra first task, `replay-inputs`,
  at their recorded sizes, so replay needs no data folder.
- Scales left as None are chosen so a replay is quick: time so that the estimated run at
  parallelism 2 (max of total work / 2 and the critical path) lasts TARGET_SECONDS; size so
  that everything written totals at most TARGET_BYTES. Neither is ever above 1.
"""

from __future__ import annotations

import math
import os
import sys

from msgspec import Struct
from msgspec.structs import replace

from chalicelib.errors import ConfigError
from chalicelib.workflow.formats.names import IdAllocator
from chalicelib.workflow.graph import (
    build_graph,
    critical_path,
    external_inputs,
    topological_order,
)
from chalicelib.workflow.limits import FUNCTION, FUNCTION_MIN_MEMORY_MB
from chalicelib.workflow.model import Placement, Resources, Task, Workflow
from chalicelib.workflow.numbers import MAX_BYTES, MAX_SECONDS, finite

MODULE = "chalicelib.runner.replay_task"
DEFAULT_RUNTIME_S = 1.0
DEFAULT_SIZE_BYTES = 1024
TARGET_SECONDS = 3.0
TARGET_BYTES = 32 * 1024 * 1024
PARALLELISM = 2
INPUTS_TASK = "replay-inputs"
INPUTS_TYPE = "replay-inputs"


class ReplayScales(Struct, frozen=True):
    """The scales a replay uses and the numbers they were chosen from."""

    time_scale: float
    size_scale: float
    work_s: float  # recorded (or default) runtimes, summed
    critical_path_s: float
    recorded_bytes: float  # every output and workflow input, at recorded size

    @property
    def estimated_s(self) -> float:
        """Sleep time of the replay at PARALLELISM, before per-task overhead."""
        return max(self.work_s / PARALLELISM, self.critical_path_s) * self.time_scale


def runtime_of(task: Task, default_runtime_s: float = DEFAULT_RUNTIME_S) -> float:
    value = finite(task.hints.get("runtime_s"))
    return value if value is not None and value >= 0 else default_runtime_s


def recorded_sizes(workflow: Workflow) -> dict[str, float]:
    """Recorded size of every file some task hints at ("size:<path>")."""
    sizes: dict[str, float] = {}
    for task in workflow.tasks:
        for key, value in task.hints.items():
            size = finite(value)
            if key.startswith("size:") and size is not None and size >= 0:
                sizes.setdefault(key[len("size:"):], size)
    return sizes


def choose_scales(
    workflow: Workflow,
    time_scale: float | None = None,
    size_scale: float | None = None,
    default_runtime_s: float = DEFAULT_RUNTIME_S,
) -> ReplayScales:
    """Fill in scales left as None (see the module docstring); check given ones."""
    for name, value in (("time_scale", time_scale), ("size_scale", size_scale)):
        if value is not None and not (math.isfinite(value) and value >= 0):
            raise ConfigError(f"{name} must be a number >= 0, got {value!r} "
                              f"(--{name.replace('_', '-')})")
    graph = build_graph(workflow)
    order = topological_order(graph) or list(graph.ids)
    runtimes = {t.id: runtime_of(t, default_runtime_s) for t in workflow.tasks}
    work = sum(runtimes.values())
    cp, _ = critical_path(graph, order, runtimes)
    sizes = recorded_sizes(workflow)
    files = {p for t in workflow.tasks for p in t.outputs} | set(external_inputs(workflow))
    total_bytes = sum(sizes.get(p, DEFAULT_SIZE_BYTES) for p in files)
    estimate = max(work / PARALLELISM, cp)
    if time_scale is None:
        time_scale = min(1.0, TARGET_SECONDS / estimate) if estimate > 0 else 1.0
    if size_scale is None:
        size_scale = min(1.0, TARGET_BYTES / total_bytes) if total_bytes > 0 else 1.0
    return ReplayScales(time_scale, size_scale, work, cp, total_bytes)


def task_file() -> str:
    """Path of replay_task.py, found without importing chalicelib.runner (heavy)."""
    import chalicelib

    return os.path.join(os.path.dirname(os.path.abspath(chalicelib.__file__)), "runner",
                        "replay_task.py")


def launch_argv(python: str, launcher: str) -> list[str]:
    if launcher == "module":
        return [python, "-m", MODULE]
    if launcher == "file":
        return [python, "-I", "-S", task_file()]
    raise ConfigError(f"launcher must be 'file' or 'module', got {launcher!r}")


def _argv(head: list[str], sleep_s: float, writes: list[tuple[int, str]]) -> tuple[str, ...]:
    argv = [*head, "--sleep", f"{sleep_s:.6g}"]
    for size, path in writes:
        argv += ["--write", str(size), path]
    return tuple(argv)


def _resources(task: Task, sleep_s: float, written: int) -> Resources:
    res = task.resources
    timeout = max(60.0, 4 * sleep_s + 60.0)
    if task.placement is Placement.FUNCTION and FUNCTION.max_timeout_s is not None:
        timeout = min(timeout, FUNCTION.max_timeout_s)
    return Resources(
        memory_mb=max(res.memory_mb, FUNCTION_MIN_MEMORY_MB),
        cpus=res.cpus,
        disk_mb=max(res.disk_mb, math.ceil(written / (1024 * 1024)) + 64),
        timeout_s=timeout,
    )


def to_replay(
    workflow: Workflow,
    time_scale: float | None = None,
    size_scale: float | None = None,
    default_runtime_s: float = DEFAULT_RUNTIME_S,
    python: str = sys.executable,
    launcher: str = "file",
) -> Workflow:
    """The replay of `workflow` (see the module docstring). Task ids, files and edges are
    kept; types are kept (the original task_type); env and shell commands are dropped."""
    head = launch_argv(python, launcher)
    scales = choose_scales(workflow, time_scale, size_scale, default_runtime_s)
    sizes = recorded_sizes(workflow)

    def scaled(path: str) -> int:
        recorded = sizes.get(path)
        if recorded is None:
            return DEFAULT_SIZE_BYTES
        size = recorded * scales.size_scale
        if not size <= MAX_BYTES:  # also NaN and infinity
            raise ConfigError(f"replay would write {path!r} at {size:.4g} bytes ({recorded:.4g} recorded x size "
                              f"scale {scales.size_scale:.4g}); at most {MAX_BYTES:.4g}: lower --size-scale")
        return round(size)

    def sleep_of(task: Task) -> float:
        runtime = runtime_of(task, default_runtime_s)
        sleep_s = runtime * scales.time_scale
        if not sleep_s <= MAX_SECONDS:  # also NaN and infinity
            raise ConfigError(f"replay would make task {task.id!r} sleep {sleep_s:.4g} s ({runtime:.4g} s recorded "
                              f"x time scale {scales.time_scale:.4g}); at most a year: lower --time-scale")
        return sleep_s

    tasks: list[Task] = []
    alloc = IdAllocator()
    alloc.taken.update(t.id for t in workflow.tasks)
    inputs = external_inputs(workflow)
    if inputs:
        writes = [(scaled(p), p) for p in inputs]
        maker = Task(id=alloc.take(INPUTS_TASK), outputs=tuple(inputs),
                     placement=Placement.AUTO, type=INPUTS_TYPE, hints={"runtime_s": 0.0})
        tasks.append(replace(maker, command=_argv(head, 0.0, writes),
                             resources=_resources(maker, 0.0, sum(s for s, _ in writes))))
    for task in workflow.tasks:
        sleep_s = sleep_of(task)
        writes = [(scaled(p), p) for p in task.outputs]
        tasks.append(replace(
            task, command=_argv(head, sleep_s, writes), shell=None, env={},
            type=task.task_type, resources=_resources(task, sleep_s, sum(s for s, _ in writes)),
        ))
    note = (f"replay: time scale {scales.time_scale:.4g}, size scale {scales.size_scale:.4g} "
            f"(about {scales.estimated_s:.1f} s of sleep at parallelism {PARALLELISM})")
    description = f"{workflow.description}\n{note}" if workflow.description else note
    return Workflow(name=workflow.name, tasks=tuple(tasks), inputs=(),
                    description=description, base_dir=workflow.base_dir)
