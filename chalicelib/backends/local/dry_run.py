"""`updraft run --dry-run`: what a run of this workflow would do, without doing any of it.

For each task in topological order: "cached" when the work dir's memo index holds a result
for exactly this command, these input contents, deps and tool (the key the runner computes:
cache/memo.py) and the store still holds its objects; else "run", with why. And where it
would start (function or container). Nothing is written: no run record, no work dir, no
cache entry, no memo key file; a work dir that does not exist is simply an empty cache.

A prediction, not a promise: a task downstream of one that runs is "run" (its inputs are
not known until then), though an identical output could still make it a memo hit; a cached
result whose object is damaged (checked by hash only when used) runs after all.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from msgspec import Struct

from chalicelib.cache.hashing import TREE_PREFIX, file_sha256, parse_manifest, tree_hash, tree_manifest
from chalicelib.cache.memo import MEMO_KEY_VAR, MemoIndex, image_id, memo_key, usable_record
from chalicelib.cache.stage import dep_hashes
from chalicelib.engine.placement import initial_placement
from chalicelib.engine.records import TaskRecord
from chalicelib.engine.spec import RunSpec
from chalicelib.engine.states import DONE_OK
from chalicelib.workflow.graph import build_graph, topological_order
from chalicelib.workflow.limits import FUNCTION
from chalicelib.workflow.model import Task, Workflow

CACHED, RUN, KEPT = "cached", "run", "kept"


class Step(Struct, frozen=True):
    task_id: str
    task_type: str
    verdict: str  # CACHED | RUN | KEPT (a resume keeps what succeeded)
    placement: str  # function | container
    why: str

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.task_id, "type": self.task_type, "verdict": self.verdict,
                "placement": self.placement, "why": self.why}


class ReadOnlyCache:
    """The work dir's memo index and content store, read without creating anything."""

    def __init__(self, cache_root: str) -> None:
        self.objects = os.path.join(cache_root, "objects")  # ContentStore's layout: objects/ab/abcd...
        memo_root = os.path.join(cache_root, "memo")
        self.memo: MemoIndex | None = None
        # MemoIndex creates its folder and key file when missing: only open one that exists
        if os.path.isdir(memo_root) and (os.environ.get(MEMO_KEY_VAR) or os.path.isfile(memo_root + ".key")):
            self.memo = MemoIndex(memo_root)

    def _object(self, sha: str) -> str:
        return os.path.join(self.objects, sha[:2], sha)

    def holds(self, outputs: Mapping[str, str]) -> bool:
        """Whether every object of a memoized result is in the store (folders: the manifest and
        every file of it)."""
        for sha in outputs.values():
            if sha.startswith(TREE_PREFIX):
                manifest = self._object(sha[len(TREE_PREFIX):])
                try:
                    with open(manifest, "rb") as fh:
                        members = parse_manifest(fh.read())
                except (OSError, ValueError):
                    return False
                if not all(os.path.isfile(self._object(m)) for m in members.values()):
                    return False
            elif not os.path.isfile(self._object(sha)):
                return False
        return True

    def lookup(self, key: str, outputs: tuple[str, ...]) -> dict[str, str] | None:
        if self.memo is None:
            return None
        hit = self.memo.get(key)
        if hit is None or not usable_record(hit, outputs) or not self.holds(hit["outputs"]):
            return None
        return dict(hit["outputs"])


def _content_hash(local: str) -> str:
    return tree_hash(tree_manifest(local)) if os.path.isdir(local) else file_sha256(local)


def predict(
    workflow: Workflow, sources: Mapping[str, str], cache_root: str, memoize: bool = True,
    reuse: Any = None,
) -> list[Step]:
    """One Step per task, in topological order. `sources`: each external input's local file
    or folder (backends/local/runtime.py: input_sources); `reuse(task)`: False for a task
    --rerun names; `workflow` with its deps resolved (resolve_deps)."""
    graph = build_graph(workflow)
    order = topological_order(graph) or [t.id for t in workflow.tasks]
    by_id = {t.id: t for t in workflow.tasks}
    known = {path: _content_hash(local) for path, local in sources.items()}
    cache = ReadOnlyCache(cache_root) if memoize else None
    steps: list[Step] = []
    for tid in order:
        task = by_id[tid]
        verdict, why = _verdict(task, known, cache, reuse)
        steps.append(Step(tid, task.task_type, verdict, initial_placement(task, FUNCTION), why))
    return steps


def _verdict(task: Task, known: dict[str, str], cache: ReadOnlyCache | None, reuse: Any) -> tuple[str, str]:
    if cache is None:
        return RUN, "--no-cache"
    if not task.outputs:
        return RUN, "no outputs to reuse"
    if reuse is not None and not reuse(task):
        return RUN, "--rerun"
    unknown = [p for p in task.inputs if p not in known]
    if unknown:
        return RUN, f"input {unknown[0]} is made by a task that runs"
    key = memo_key(task, {p: known[p] for p in task.inputs}, dep_hashes(task.deps), image_id(task))
    outputs = cache.lookup(key, task.outputs)
    if outputs is None:
        return RUN, "no cached result for this command, these inputs and tools"
    known.update(outputs)
    return CACHED, "memo hit"


def in_place(spec: RunSpec, records: Mapping[str, TaskRecord]) -> list[Step]:
    """What resuming a run in place does, in topological order: it keeps the tasks that
    succeeded (or were cached) and runs the others again (a memoized result may still stand in)."""
    order = topological_order(spec.graph) or [t.id for t in spec.workflow.tasks]
    steps = []
    for tid in order:
        rec = records[tid]
        kept = rec.state in DONE_OK
        steps.append(Step(tid, spec.tasks[tid].task_type, KEPT if kept else RUN, rec.placement,
                          f"{rec.state.value}" + ("" if kept else f", attempt {rec.attempt}")))
    return steps


def summary(steps: Sequence[Step]) -> dict[str, int]:
    """How many steps of each verdict ("kept" only for a resume, which has some)."""
    out = {v: sum(s.verdict == v for s in steps) for v in (KEPT, CACHED, RUN)}
    return {k: n for k, n in out.items() if n or k != KEPT}


def table(steps: Sequence[Step], what: str) -> list[str]:
    """The dry run as lines of text: `what` (the file or the run), the counts, one row a task."""
    counts = summary(steps)
    said = ", ".join(f"{n} {'to run' if k == RUN else k}" for k, n in counts.items())
    lines = [f"{what}: {len(steps)} tasks: {said} (dry run: nothing was run or written)",
             f"  {'task':<32} {'would':<7} {'placement':<10} why"]
    lines += [f"  {s.task_id[:32]:<32} {s.verdict:<7} {s.placement:<10} {s.why}" for s in steps]
    return lines
