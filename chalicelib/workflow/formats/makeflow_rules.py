"""Makeflow rules, however they were written (make syntax, JSON, JX), turned into tasks.

A rule is a shell command with the files it reads and makes. Makeflow runs every command
with /bin/sh, so tasks get `shell` (redirections, pipes and `;` keep working). `LOCAL`
(make syntax) and `local_job` (JSON) map to Placement.LOCAL; every other rule is `auto`, so
the engine picks a function or a container from its resources. A rule has no name: its task
id is its first target (cleaned, made unique), or `rule-N` when it makes nothing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

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
            hints = {f"size:{p}": safe_sizes[p] for p in made if p in safe_sizes}
            hints.update({f"size:{p}": safe_sizes[p] for p in read
                          if p in safe_sizes and p not in maker})
            tasks.append(Task(
                id=tid, shell=rule.command, inputs=read, outputs=made,
                resources=_resources(rule),
                placement=Placement.LOCAL if rule.local else Placement.AUTO,
                env=dict(rule.env),
                type=rule.category if rule.category != DEFAULT_CATEGORY else "",
                hints=hints,
            ))
        return tasks

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
