"""Graph algorithms over a workflow: edges, topological order, cycles, levels, critical path.

Everything is iterative (no recursion): a 100,000-task chain must not hit a recursion limit.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable, Mapping, Sequence

from msgspec import Struct

from chalicelib.workflow.model import Task, Workflow


class Graph(Struct, frozen=True):
    """Distinct task-to-task dependencies, from files (producer -> consumer) and `after`."""

    ids: tuple[str, ...]
    parents: Mapping[str, tuple[str, ...]]
    children: Mapping[str, tuple[str, ...]]
    producers: Mapping[str, str]

    @property
    def edge_count(self) -> int:
        return sum(len(p) for p in self.parents.values())


def producers_of(tasks: Iterable[Task]) -> dict[str, str]:
    """Map each produced file to its (first) producer."""
    producers: dict[str, str] = {}
    for task in tasks:
        for out in task.outputs:
            producers.setdefault(out, task.id)
    return producers


def folder_producer(path: str, producers: Mapping[str, str]) -> str | None:
    """The producer of `path`, else of the nearest folder on its way (a task reading `d/x`
    depends on the task that makes folder `d`)."""
    found = producers.get(path)
    while found is None and "/" in path:
        path = path.rsplit("/", 1)[0]
        found = producers.get(path)
    return found


def build_graph(workflow: Workflow) -> Graph:
    """Build the dependency graph. Unknown `after` ids are skipped (validation reports them)."""
    producers = producers_of(workflow.tasks)
    known = {t.id for t in workflow.tasks}
    parents: dict[str, tuple[str, ...]] = {}
    children: dict[str, list[str]] = {t.id: [] for t in workflow.tasks}
    for task in workflow.tasks:
        seen: dict[str, None] = {}
        for path in task.inputs:
            producer = folder_producer(path, producers)
            if producer is not None and producer != task.id:
                seen[producer] = None
        for dep in task.after:
            if dep in known and dep != task.id:
                seen[dep] = None
        parents[task.id] = tuple(seen)
        for parent in seen:
            children[parent].append(task.id)
    return Graph(
        ids=tuple(t.id for t in workflow.tasks),
        parents=parents,
        children={k: tuple(v) for k, v in children.items()},
        producers=producers,
    )


def topological_order(graph: Graph) -> list[str] | None:
    """Kahn's algorithm in submission order; None if the graph has a cycle."""
    indegree = {tid: len(graph.parents[tid]) for tid in graph.ids}
    queue = deque(tid for tid in graph.ids if indegree[tid] == 0)
    order: list[str] = []
    while queue:
        tid = queue.popleft()
        order.append(tid)
        for child in graph.children[tid]:
            indegree[child] -= 1
            if indegree[child] == 0:
                queue.append(child)
    return order if len(order) == len(graph.ids) else None


def find_cycle(graph: Graph) -> list[str] | None:
    """Return one cycle as a path [a, b, ..., a], or None. Iterative DFS with colours."""
    white, grey, black = 0, 1, 2
    colour = dict.fromkeys(graph.ids, white)
    for root in graph.ids:
        if colour[root] != white:
            continue
        stack: list[tuple[str, int]] = [(root, 0)]
        path: list[str] = [root]
        colour[root] = grey
        while stack:
            node, idx = stack[-1]
            kids = graph.children[node]
            if idx < len(kids):
                stack[-1] = (node, idx + 1)
                child = kids[idx]
                if colour[child] == grey:
                    start = path.index(child)
                    return [*path[start:], child]
                if colour[child] == white:
                    colour[child] = grey
                    stack.append((child, 0))
                    path.append(child)
            else:
                colour[node] = black
                stack.pop()
                path.pop()
    return None


def levels(graph: Graph, order: Sequence[str]) -> dict[str, int]:
    """Level of each task: 0 for roots, else 1 + the deepest parent."""
    level: dict[str, int] = {}
    for tid in order:
        parents = graph.parents[tid]
        level[tid] = 1 + max(level[p] for p in parents) if parents else 0
    return level


def critical_path(
    graph: Graph, order: Sequence[str], weight: Mapping[str, float] | None = None
) -> tuple[float, list[str]]:
    """Longest path by summed weight (1 per task by default): (length, path of task ids)."""
    best: dict[str, float] = {}
    via: dict[str, str | None] = {}
    for tid in order:
        w = 1.0 if weight is None else weight.get(tid, 1.0)
        parents = graph.parents[tid]
        if parents:
            top = max(parents, key=lambda p: best[p])
            best[tid] = best[top] + w
            via[tid] = top
        else:
            best[tid] = w
            via[tid] = None
    if not best:
        return 0.0, []
    end: str | None = max(best, key=lambda t: best[t])
    length = best[end] if end is not None else 0.0
    path: list[str] = []
    while end is not None:
        path.append(end)
        end = via[end]
    path.reverse()
    return length, path


def descendants(graph: Graph, roots: Iterable[str]) -> list[str]:
    """Every task reachable from `roots` (excluding the roots themselves), BFS order."""
    seen: set[str] = set(roots)
    out: list[str] = []
    queue = deque(seen)
    while queue:
        for child in graph.children[queue.popleft()]:
            if child not in seen:
                seen.add(child)
                out.append(child)
                queue.append(child)
    return out


def external_inputs(workflow: Workflow) -> list[str]:
    """Files some task reads that no task produces, plus declared inputs, in first-seen order."""
    produced = producers_of(workflow.tasks)
    seen: dict[str, None] = {f.path: None for f in workflow.inputs}
    for task in workflow.tasks:
        for path in task.inputs:
            if folder_producer(path, produced) is None:
                seen[path] = None
    return list(seen)


class Summary(Struct, frozen=True):
    name: str
    tasks: int
    edges: int
    levels: int
    max_width: int
    critical_path_length: int
    task_types: dict[str, int]
    external_inputs: list[str]

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "tasks": self.tasks,
            "edges": self.edges,
            "levels": self.levels,
            "max_width": self.max_width,
            "critical_path_length": self.critical_path_length,
            "task_types": self.task_types,
            "external_inputs": self.external_inputs,
        }


def summarize(workflow: Workflow) -> Summary:
    """The numbers `updraft show` prints. The workflow must be acyclic (validate first)."""
    graph = build_graph(workflow)
    order = topological_order(graph)
    if order is None:
        raise ValueError("workflow has a cycle; validate it first")
    level = levels(graph, order)
    widths = Counter(level.values())
    length, _ = critical_path(graph, order)
    types = Counter(t.task_type for t in workflow.tasks)
    return Summary(
        name=workflow.name,
        tasks=len(workflow.tasks),
        edges=graph.edge_count,
        levels=(max(level.values()) + 1) if level else 0,
        max_width=max(widths.values()) if widths else 0,
        critical_path_length=int(length),
        task_types=dict(sorted(types.items())),
        external_inputs=external_inputs(workflow),
    )
