"""WfCommons WfFormat traces, schema versions 1.4 to 1.6 (parsed here; no wfcommons import).

1.5/1.6: `workflow.specification` holds the graph (tasks with parents, children, inputFiles,
outputFiles; files with sizeInBytes) and `workflow.execution` what happened (per task
runtimeInSeconds, command.program/arguments, coreCount, memoryInBytes).
1.4 (and the older `jobs` spelling): `workflow.tasks` holds both, with files inline as
{link: input|output, name, sizeInBytes}, and parents/children name tasks by `name`.

What is kept: the task type (command.program, else category, else the name without its
_ID suffix), the recorded runtime (hints runtime_s), every file's size (hints
"size:<path>" on its producer, or on its consumers for workflow inputs), cores and memory
(resources), and the recorded command. Traces name tools that are rarely installed: run
them with `--replay`.
"""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Mapping
from typing import Any

from msgspec import Struct, field

from chalicelib.errors import Problem, WorkflowError
from chalicelib.workflow import limits
from chalicelib.workflow.formats.names import IdAllocator, PathError, PathMapper, describe
from chalicelib.workflow.model import Placement, Resources, Task, Workflow
from chalicelib.workflow.numbers import MAX_BYTES, MAX_SECONDS, finite, number_problem

NAME = "wfformat"
SUPPORTED_VERSIONS = ("1.4", "1.5", "1.6")
_ID_SUFFIX = re.compile(r"_ID\d+$")
_SHELL_OPS = {">", ">>", "2>", "2>>", "<", "|", "&>", ">&", "2>&1", "&&", ";"}
MIB = 1024 * 1024


def sniff(data: Any) -> bool:
    if not isinstance(data, dict) or not isinstance(data.get("workflow"), dict):
        return False
    wf = data["workflow"]
    return "schemaVersion" in data or any(k in wf for k in ("specification", "tasks", "jobs"))


class _Raw(Struct):
    """One task as read from either layout, before ids and paths are made safe."""

    key: str
    name: str
    parents: list[str]
    inputs: list[str]
    outputs: list[str]
    execution: Mapping[str, Any]
    category: str | None = None
    sizes: dict[str, int] = field(default_factory=dict)


def _str_list(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


class _Importer:
    def __init__(self, data: dict[str, Any], source: str | None) -> None:
        self.data = data
        self.source = source
        self.problems: list[Problem] = []
        self.paths = PathMapper()
        self.version = str(data.get("schemaVersion", ""))
        self.unusable: dict[str, int] = {}  # recorded measure -> tasks whose value could not be used

    def fail(self, message: str, task: str | None = None, fieldname: str | None = None) -> None:
        self.problems.append(Problem(message, task, fieldname))

    def names(self, value: Any, task: str, fieldname: str) -> list[str]:
        """A list of task or file names; anything else is a problem (dropping it silently
        would drop edges or files, and run tasks out of order)."""
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.fail("must be a list of names (strings)", task, fieldname)
            return []
        return value

    def out_of_range(self, raw: Any, high: float, unit: str, task: str | None, fieldname: str) -> bool:
        """True (and a problem naming the task and field) when `raw` is a number that is not
        finite (NaN, Infinity, 1e400, 10**400) or above `high`: a trace that records such a
        value is broken, and the planner and replay would overflow on it."""
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            return False
        why = number_problem(raw, None, high, unit)
        if why is None or (finite(raw) is not None and raw < 0):
            return False
        self.fail(why, task, fieldname)
        return True

    def size(self, raw: Any, task: str | None, fieldname: str) -> int | None:
        """A recorded file size in bytes, or None (not recorded, or negative: left out)."""
        if self.out_of_range(raw, MAX_BYTES, " bytes", task, fieldname):
            return None
        value = _number(raw)
        return int(value) if value is not None and value >= 0 else None

    def measure(self, e: Mapping[str, Any], keys: tuple[str, str], task: str | None = None,
                high: float = MAX_BYTES, unit: str = "") -> float | None:
        """A recorded number (a hint and a resource); one that is there but unusable (not a
        number, negative) is counted for the import's notes and left out; one that is not
        finite or absurdly large is a problem naming the task and field."""
        raw = e.get(keys[0], e.get(keys[1]))
        if self.out_of_range(raw, high, unit, task, keys[0] if keys[0] in e else keys[1]):
            return None
        value = _number(raw)
        if raw is not None and (value is None or value < 0):
            self.unusable[keys[0]] = self.unusable.get(keys[0], 0) + 1
            return None
        return value

    def raw_tasks(self) -> list[_Raw]:
        wf = self.data["workflow"]
        spec = wf.get("specification")
        if isinstance(spec, dict):
            return self.split_layout(spec, wf.get("execution"))
        tasks = wf.get("tasks", wf.get("jobs"))
        if isinstance(tasks, list):
            return self.inline_layout(tasks)
        self.fail("expected workflow.specification.tasks (1.5+) or workflow.tasks (1.4)",
                  None, "workflow")
        return []

    def split_layout(self, spec: dict[str, Any], execution: Any) -> list[_Raw]:
        sizes: dict[str, int] = {}
        for f in spec.get("files") or []:
            if isinstance(f, dict) and isinstance(f.get("id"), str):
                size = self.size(f.get("sizeInBytes"), None, f"files[{f['id']!r}].sizeInBytes")
                if size is not None:
                    sizes[f["id"]] = size
        runs: dict[str, Mapping[str, Any]] = {}
        if isinstance(execution, dict):
            for e in execution.get("tasks") or []:
                if isinstance(e, dict) and isinstance(e.get("id"), str):
                    runs[e["id"]] = e
        out: list[_Raw] = []
        for i, t in enumerate(spec.get("tasks") or []):
            if not isinstance(t, dict) or not isinstance(t.get("id"), str):
                self.fail(f"specification.tasks[{i}] needs a string 'id'", None, "tasks")
                continue
            ins = self.names(t.get("inputFiles"), t["id"], "inputFiles")
            outs = self.names(t.get("outputFiles"), t["id"], "outputFiles")
            parents = self.names(t.get("parents"), t["id"], "parents")
            out.append(_Raw(
                key=t["id"], name=str(t.get("name") or t["id"]), parents=parents,
                inputs=ins, outputs=outs, execution=runs.get(t["id"], {}),
                category=t.get("category") if isinstance(t.get("category"), str) else None,
                sizes={f: sizes[f] for f in ins + outs if f in sizes},
            ))
        return out

    def inline_layout(self, tasks: list[Any]) -> list[_Raw]:
        out: list[_Raw] = []
        for i, t in enumerate(tasks):
            if not isinstance(t, dict) or not isinstance(t.get("name"), str):
                self.fail(f"workflow.tasks[{i}] needs a string 'name'", None, "tasks")
                continue
            ins: list[str] = []
            outs: list[str] = []
            sizes: dict[str, int] = {}
            files = t.get("files") or []
            if not isinstance(files, list):
                self.fail("must be a list of file objects", t["name"], "files")
                files = []
            for j, f in enumerate(files):
                if not isinstance(f, dict) or not isinstance(f.get("name"), str):
                    self.fail(f"files[{j}] needs a string 'name'", t["name"], "files")
                    continue
                (outs if f.get("link") == "output" else ins).append(f["name"])
                size = self.size(f.get("sizeInBytes", f.get("size")), t["name"], f"files[{j}].sizeInBytes")
                if size is not None:
                    sizes[f["name"]] = size
            out.append(_Raw(
                key=t["name"], name=t["name"], parents=self.names(t.get("parents"), t["name"], "parents"),
                inputs=ins, outputs=outs, execution=t,
                category=t.get("category") if isinstance(t.get("category"), str) else None,
                sizes=sizes,
            ))
        return out

    def command(self, raw: _Raw) -> tuple[tuple[str, ...], str | None, str]:
        """(argv, shell, type) from the recorded command."""
        cmd = raw.execution.get("command")
        program = cmd.get("program") if isinstance(cmd, dict) else None
        args = _str_list(cmd.get("arguments")) if isinstance(cmd, dict) else []
        ttype = program if isinstance(program, str) and program else (
            raw.category or _ID_SUFFIX.sub("", raw.name) or "task")
        exe = ttype.rsplit("/", 1)[-1]
        # Makeflow traces record argv[0] among the arguments; Pegasus traces do not.
        argv = args if args and args[0].rsplit("/", 1)[-1] == exe else [ttype, *args]
        if any(a in _SHELL_OPS for a in argv):
            return (), " ".join(a if a in _SHELL_OPS else shlex.quote(a) for a in argv), ttype
        return tuple(argv), None, ttype

    def resources(self, raw: _Raw) -> tuple[Resources, dict[str, float]]:
        e = raw.execution
        hints: dict[str, float] = {}
        runtime = self.measure(e, ("runtimeInSeconds", "runtime"), raw.key, MAX_SECONDS, " s")
        if runtime is not None:
            hints["runtime_s"] = runtime
        cores = self.measure(e, ("coreCount", "cores"), raw.key)
        memory = self.measure(e, ("memoryInBytes", "memory"), raw.key, MAX_BYTES, " bytes")
        base = Resources()
        cpus = min(max(cores, 1.0), limits.CONTAINER.max_cpus) if cores else base.cpus
        memory_mb = base.memory_mb
        if memory is not None and memory > 0:
            hints["memory_bytes"] = memory
            memory_mb = min(max(math.ceil(memory / MIB), limits.FUNCTION_MIN_MEMORY_MB),
                            limits.CONTAINER.max_memory_mb)
        timeout = min(max(base.timeout_s, math.ceil(2 * runtime)), MAX_SECONDS) if runtime else base.timeout_s
        return Resources(memory_mb=memory_mb, cpus=cpus, disk_mb=base.disk_mb,
                         timeout_s=float(timeout)), hints

    def workflow(self, base_dir: str | None) -> Workflow:
        raws = self.raw_tasks()
        alloc = IdAllocator()
        ids: dict[str, str] = {}
        for raw in raws:
            if raw.key in ids:
                self.fail("task id is used twice", raw.key, "id")
            ids[raw.key] = alloc.take(raw.key)
        produced = {f for raw in raws for f in raw.outputs}
        tasks: list[Task] = []
        for raw in raws:
            argv, shell, ttype = self.command(raw)
            resources, hints = self.resources(raw)
            for f, size in raw.sizes.items():
                if f in raw.outputs or f not in produced:
                    hints[f"size:{self.path(f, raw.key)}"] = float(size)
            after = []
            for p in raw.parents:
                if p in ids:
                    after.append(ids[p])
                else:
                    self.fail(f"parent {p!r} is not a task of this trace", raw.key, "parents")
            tasks.append(Task(
                id=ids[raw.key], command=argv, shell=shell,
                inputs=tuple(dict.fromkeys(self.path(f, raw.key) for f in raw.inputs)),
                outputs=tuple(dict.fromkeys(self.path(f, raw.key) for f in raw.outputs)),
                after=tuple(dict.fromkeys(after)), resources=resources,
                placement=Placement.AUTO, type=ttype, hints=hints,
            ))
        if not tasks:
            self.fail("the trace has no tasks", None, "tasks")
        if self.problems:
            raise WorkflowError(self.problems, self.source)
        name = str(self.data.get("name") or "wfcommons-trace")
        version = self.version or "unknown"
        notes = self.paths.notes()
        for key, n in sorted(self.unusable.items()):
            notes.append(f"{n} task(s) recorded a {key} that is not a usable number: the default is used")
        if version not in SUPPORTED_VERSIONS:
            notes.append(f"schemaVersion {version!r} is outside {', '.join(SUPPORTED_VERSIONS)}; "
                         "read with the layout it has")
        summary = (f"imported from WfCommons trace {name!r} (WfFormat {version}); commands are "
                   "the recorded ones: run with --replay unless the tools are installed")
        return Workflow(name=name, tasks=tuple(tasks), base_dir=base_dir,
                        description=describe(summary, notes))

    def path(self, raw: str, task: str) -> str:
        try:
            return self.paths.map(raw)
        except PathError as exc:
            self.fail(str(exc), task, "files")
            return raw


def _number(value: Any) -> float | None:
    return finite(value)


def load(data: Any, base_dir: str | None = None, source: str | None = None) -> Workflow:
    """Import a parsed WfFormat document, or raise WorkflowError naming the trace's tasks."""
    if not isinstance(data, dict) or not isinstance(data.get("workflow"), dict):
        raise WorkflowError([Problem("a WfFormat trace is an object with a 'workflow' object")],
                            source)
    return _Importer(data, source).workflow(base_dir)
