"""Makeflow rules, however they were written (make syntax, JSON, JX), turned into tasks.

A rule is a shell command with the files it reads and makes. Makeflow runs every command
with /bin/sh, so tasks get `shell` (redirections, pipes and `;` keep working). `LOCAL`
(make syntax) and `local_job` (JSON) map to Placement.LOCAL; every other rule is `auto`, so
the engine picks a function or a container from its resources. A rule has no name: its task
id is its first target (cleaned, made unique), or `rule-N` when it makes nothing.

A file renamed for the task (`name -> remote` in make syntax, `task_name` in JSON) is copied
to its remote name in the task's sandbox before the command, and an output moved back from
it after: each task has a private sandbox, so two tasks may both write `out.txt`. A rule
that runs a nested workflow is replaced by that workflow's rules (makeflow_nested.py).
"""

from __future__ import annotations

import math
import posixpath
import shlex
from collections.abc import Mapping
from typing import Any

from msgspec import Struct, field

from chalicelib.errors import Problem, WorkflowError
from chalicelib.workflow.formats.names import IdAllocator, PathError, PathMapper, describe
from chalicelib.workflow.model import Placement, Resources, Task, Workflow

DEFAULT_CATEGORY = "default"


class Rule(Struct):
    """One rule as read; `where` says where it is in the source ("line 12", "rules[3]")."""

    where: str
    command: str
    inputs: list[str]
    outputs: list[str]
    local: bool = False
    category: str = DEFAULT_CATEGORY
    cores: float | None = None
    memory_mb: float | None = None
    disk_mb: float | None = None
    wall_time_s: float | None = None
    env: dict[str, str] = field(default_factory=dict)
    renames: dict[str, str] = field(default_factory=dict)  # file as written -> name in the task
    workflow: str | None = None  # a nested workflow run by this rule
    args: dict[str, Any] | None = None  # JX values for the nested workflow


def _resources(rule: Rule) -> Resources:
    base = Resources()
    return Resources(
        memory_mb=math.ceil(rule.memory_mb) if rule.memory_mb else base.memory_mb,
        cpus=float(rule.cores) if rule.cores else base.cpus,
        disk_mb=math.ceil(rule.disk_mb) if rule.disk_mb else base.disk_mb,
        timeout_s=float(rule.wall_time_s) if rule.wall_time_s else base.timeout_s,
    )


class _Builder:
    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        self.paths = PathMapper()

    def safe(self, raw: str, rule: Rule) -> str | None:
        try:
            return self.paths.map(raw)
        except PathError as exc:
            self.problems.append(Problem(f"{rule.where}: {exc}"))
            return None

    def files(self, raws: list[str], rule: Rule) -> tuple[str, ...]:
        try:
            return tuple(dict.fromkeys(self.paths.map_many(raws)))
        except PathError:  # say which file, and each one
            return tuple(dict.fromkeys(p for p in (self.safe(r, rule) for r in raws) if p))

    def tasks(self, rules: list[Rule], sizes: Mapping[str, float]) -> list[Task]:
        ins = [self.files(r.inputs, r) for r in rules]
        outs = [self.files(r.outputs, r) for r in rules]
        maker: dict[str, Rule] = {}
        for rule, made, read in zip(rules, outs, ins, strict=True):
            for path in made:
                first = maker.setdefault(path, rule)
                if first is not rule:
                    self.problems.append(Problem(
                        f"{rule.where}: target {path!r} is also made by the rule at {first.where}"))
                if path in read:
                    self.problems.append(Problem(
                        f"{rule.where}: {path!r} is both a source and a target of the rule"))
        safe_sizes = {p: v for raw, v in sizes.items() if (p := self.safe_quiet(raw))}
        alloc = IdAllocator()
        tasks: list[Task] = []
        for i, (rule, read, made) in enumerate(zip(rules, ins, outs, strict=True)):
            tid = alloc.take(made[0] if made else f"rule-{i + 1}")
            command = self.renamed(rule) if rule.renames else rule.command
            hints = {f"size:{p}": safe_sizes[p] for p in made if p in safe_sizes}
            hints.update({f"size:{p}": safe_sizes[p] for p in read
                          if p in safe_sizes and p not in maker})
            tasks.append(Task(
                id=tid, shell=command, inputs=read, outputs=made,
                resources=_resources(rule),
                placement=Placement.LOCAL if rule.local else Placement.AUTO,
                env=dict(rule.env),
                type=rule.category if rule.category != DEFAULT_CATEGORY else "",
                hints=hints,
            ))
        return tasks

    def renamed(self, rule: Rule) -> str:
        """The command wrapped to copy inputs to their remote names and outputs back."""
        before: list[str] = []
        after: list[str] = []
        for raw, remote in rule.renames.items():
            path = self.safe_quiet(raw)
            norm = posixpath.normpath(remote)
            if remote.startswith("/") or norm == ".." or norm.startswith("../"):
                self.problems.append(Problem(f"{rule.where}: the remote name {remote!r} of "
                                             f"{raw!r} must be a relative path inside the task"))
                continue
            if path is None or norm == path:
                continue
            if raw in rule.inputs:
                folder = posixpath.dirname(norm)
                before += [f"mkdir -p {shlex.quote(folder)}"] if folder else []
                before.append(f"cp -p -- {shlex.quote(path)} {shlex.quote(norm)}")
            if raw in rule.outputs:
                folder = posixpath.dirname(path)
                after += [f"mkdir -p {shlex.quote(folder)}"] if folder else []
                after.append(f"mv -- {shlex.quote(norm)} {shlex.quote(path)}")
        return " && ".join([*before, f"( {rule.command} )", *after])

    def safe_quiet(self, raw: str) -> str | None:
        try:
            return self.paths.map(raw)
        except PathError:
            return None


def build(
    rules: list[Rule],
    *,
    name: str,
    summary: str,
    source: str | None,
    base_dir: str | None,
    problems: list[Problem],
    notes: list[str],
    sizes: Mapping[str, float] | None = None,
) -> Workflow:
    """The workflow for `rules`, or WorkflowError with every problem (each says where)."""
    from chalicelib.workflow.formats.makeflow_nested import inline

    rules = inline(rules, base_dir, problems, notes)
    builder = _Builder(problems)
    for rule in rules:
        if not rule.command.strip():
            problems.append(Problem(f"{rule.where}: the rule's command is empty"))
    tasks = builder.tasks(rules, sizes or {})
    if not rules:
        problems.append(Problem("the workflow has no rules", None, "rules"))
    if problems:
        raise WorkflowError(problems, source)
    return Workflow(
        name=name, tasks=tuple(tasks), base_dir=base_dir,
        description=describe(summary, [*builder.paths.notes(), *notes]),
    )
