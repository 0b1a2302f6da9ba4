"""The workflow model every format is imported into.

Values are frozen: a Workflow is built once (by a format reader), validated, and then only read.
Paths are POSIX, relative to the run's data root, and canonical: every reader's `./x`, `d//x`
and `d/x/` become `x`, `d/x` and `d/x` when a Task or InputFile is made (a task's path with a
trailing `/` is also noted in `Task.folders`: declared a folder, see runner/trees.py), so two spellings of
one file are one path everywhere (the "produced by two tasks" and "both input and output"
checks, the graph, staging); a task's repeated input is one input.
"""

from __future__ import annotations

import enum
import posixpath
from collections.abc import Mapping

from msgspec import Struct, field
from msgspec.structs import force_setattr


def canonical_path(path: str) -> str:
    """`path` without empty and `.` parts and trailing `/`. Paths that are absolute, contain
    `..`, or name nothing are left as they are, for validation to name the problem."""
    if not isinstance(path, str) or not path or path.startswith("/"):
        return path
    if ("//" not in path and not path.startswith("./") and "/./" not in path
            and not path.endswith(("/", "/.")) and path != "."):
        return path  # the common case, checked cheaply
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        return path
    return "/".join(parts)


def _canonical(paths: tuple[str, ...], dedupe: bool) -> tuple[str, ...] | None:
    """The canonical form of `paths`, or None when it is `paths` itself."""
    fixed = tuple(canonical_path(p) for p in paths)
    if dedupe and len(set(fixed)) != len(fixed):
        fixed = tuple(dict.fromkeys(fixed))
    return None if fixed == paths else fixed


class Placement(enum.StrEnum):
    FUNCTION = "function"
    CONTAINER = "container"
    AUTO = "auto"
    LOCAL = "local"  # Makeflow's LOCAL: run on the coordinator's host (container pool locally)


class Resources(Struct, frozen=True):
    memory_mb: int = 1024
    cpus: float = 1.0
    disk_mb: int = 512
    timeout_s: float = 900.0

    def to_dict(self) -> dict[str, float | int]:
        return {
            "memory_mb": self.memory_mb,
            "cpus": self.cpus,
            "disk_mb": self.disk_mb,
            "timeout_s": self.timeout_s,
        }

    def grown(self, overrides: Mapping[str, float]) -> Resources:
        """These resources with some replaced (an escalated retry's bigger memory or disk)."""
        if not overrides:
            return self
        merged = {**self.to_dict(), **overrides}
        return Resources(memory_mb=int(merged["memory_mb"]), cpus=float(merged["cpus"]),
                         disk_mb=int(merged["disk_mb"]), timeout_s=float(merged["timeout_s"]))


class Dep(Struct, frozen=True):
    """An implicit dependency of a task (a tool, a script, a reference database): staged into
    its sandbox at `name` from `source` (a local file or folder), through the cache.

    A format parses each entry once, when the workflow is read (`Dep.parse`); everything after
    (validation, the local runtime's resolution, the runner, the cache) reads the fields. The
    native format writes it back as it was written (`spelling`), so a file read and written
    again is unchanged.
    """

    name: str
    source: str
    named: bool = True  # written NAME=SOURCE; False: SOURCE alone, named by its basename

    @classmethod
    def parse(cls, entry: str) -> Dep:
        """'NAME=SOURCE', or 'SOURCE' named by its basename (a '=' inside a URI, before its
        '://', is not a name's). Never fails: validation names what is wrong with the parts."""
        name, sep, source = entry.partition("=")
        if not sep or "://" in name:
            return cls(posixpath.basename(entry.rstrip("/")), entry, named=False)
        return cls(name, source)

    @property
    def is_uri(self) -> bool:
        """A remote source (s3://...): the local runtime cannot stage it."""
        return "://" in self.source

    @property
    def spelling(self) -> str:
        """The entry as the native format writes it."""
        return f"{self.name}={self.source}" if self.named else self.source

    def __str__(self) -> str:
        return self.spelling


class PublishRule(Struct, frozen=True):
    """Where a finished run's outputs are copied for the user (the native format's `publish`,
    docs/workflow-format.md#publishing-results): the folder `to` (relative to `--outdir`, else
    the workflow file's folder) and which declared outputs (fnmatch patterns; none: the
    task's outputs, or at workflow level the workflow's final outputs)."""

    to: str
    outputs: tuple[str, ...] = ()


class Task(Struct, frozen=True):
    """One command-line task.

    Exactly one of `command` (argv, run without a shell) and `shell` (a string run by
    /bin/sh -c) is set.
    """

    id: str
    command: tuple[str, ...] = ()
    shell: str | None = None
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    after: tuple[str, ...] = ()
    resources: Resources = field(default_factory=Resources)
    placement: Placement = Placement.FUNCTION
    retries: int = 0
    env: Mapping[str, str] = field(default_factory=dict)
    type: str = ""
    deps: tuple[Dep, ...] = ()  # parsed when the workflow is read (Dep.parse)
    hints: Mapping[str, float] = field(default_factory=dict)
    folders: tuple[str, ...] = ()  # inputs and outputs declared as folders (a trailing '/')
    # which of "placement" and the resources' fields the workflow file gave (the task itself or
    # its `defaults`): locally the others are not limits unless Lambda is emulated (limits.py)
    given: frozenset[str] = frozenset()
    publish: tuple[PublishRule, ...] = ()  # copied out when the run succeeds (see PublishRule)

    def declared(self) -> frozenset[str]:
        """`given`, plus every resource whose value is not the default and the placement when it
        is not `function`: what an importer, a plan or a replay set counts as chosen too. The
        native writer writes exactly these, so a stored and re-read spec declares the same."""
        default = Resources().to_dict()
        chosen = {k for k, v in self.resources.to_dict().items() if v != default[k]}
        if self.placement is not Placement.FUNCTION:
            chosen.add("placement")
        return self.given | chosen if chosen else self.given

    def __post_init__(self) -> None:
        # a trailing '/' declares a folder: kept here, as the path itself loses it below
        declared = tuple(canonical_path(p) for p in (*self.inputs, *self.outputs)
                         if isinstance(p, str) and len(p) > 1 and p.endswith("/"))
        if declared:
            force_setattr(self, "folders", tuple(dict.fromkeys((*self.folders, *declared))))
        # inputs: a repeated one is one input; outputs: kept, so a repeat is a validation problem
        if isinstance(self.inputs, tuple) and (fixed := _canonical(self.inputs, dedupe=True)) is not None:
            force_setattr(self, "inputs", fixed)
        if isinstance(self.outputs, tuple) and (fixed := _canonical(self.outputs, dedupe=False)) is not None:
            force_setattr(self, "outputs", fixed)

    @property
    def task_type(self) -> str:
        """The task's type (for reports and the planner): explicit, else the program's name."""
        if self.type:
            return self.type
        if self.command:
            return self.command[0].rsplit("/", 1)[-1]
        if self.shell:
            return self.shell.split(None, 1)[0].rsplit("/", 1)[-1] if self.shell.split() else "sh"
        return "task"


class InputFile(Struct, frozen=True):
    """An external input: its path in the data root and where it comes from.

    `source` is None (look in the run's --data folder), a local path, or an s3:// URI.
    """

    path: str
    source: str | None = None

    def __post_init__(self) -> None:
        if (fixed := canonical_path(self.path)) != self.path:
            force_setattr(self, "path", fixed)


class Workflow(Struct, frozen=True):
    name: str
    tasks: tuple[Task, ...]
    inputs: tuple[InputFile, ...] = ()
    description: str = ""
    base_dir: str | None = None  # folder the workflow file came from (resolves relative sources)
    publish: tuple[PublishRule, ...] = ()  # outputs copied out when the run succeeds (see PublishRule)

    def task_map(self) -> dict[str, Task]:
        return {t.id: t for t in self.tasks}
