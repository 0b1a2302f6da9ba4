"""The workflow model every format is imported into.

Values are frozen: a Workflow is built once (by a format reader), validated, and then only read.
Paths are POSIX, relative to the run's data root.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

from msgspec import Struct, field


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
    deps: tuple[str, ...] = ()
    hints: Mapping[str, float] = field(default_factory=dict)
    # which of "placement" and the resources' fields the workflow file gave (the task itself or
    # its `defaults`): locally the others are not limits unless Lambda is emulated (limits.py)
    given: frozenset[str] = frozenset()

    def declared(self) -> frozenset[str]:
        """`given`, plus every resource whose value is not the default and the placement when it
        is not `function`: what an importer, a plan or a replay set counts as chosen too. The
        native writer writes exactly these, so a stored and re-read spec declares the same."""
        default = Resources().to_dict()
        chosen = {k for k, v in self.resources.to_dict().items() if v != default[k]}
        if self.placement is not Placement.FUNCTION:
            chosen.add("placement")
        return self.given | chosen if chosen else self.given

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


class Workflow(Struct, frozen=True):
    name: str
    tasks: tuple[Task, ...]
    inputs: tuple[InputFile, ...] = ()
    description: str = ""
    base_dir: str | None = None  # folder the workflow file came from (resolves relative sources)

    def task_map(self) -> dict[str, Task]:
        return {t.id: t for t in self.tasks}
