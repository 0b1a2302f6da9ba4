"""What the charts and the table show, computed without any chart library.

- lanes(): Gantt rows. Tasks of one group (a task type, or a placement's worker slots) are
  packed into the fewest lanes with no overlap, so a row is one slot doing one thing at a time.
- concurrency(): how many tasks ran at each moment, per placement (a step function).
- type_stats(): time and cost per task type.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Sequence

from msgspec import Struct

from chalicelib.report.cost import CostModel
from chalicelib.report.model import OK_STATES, RunData, TaskRow

ROW_MODES = ("type", "worker")


class Lane(Struct, frozen=True):
    group: str
    index: int  # 0-based within its group

    @property
    def label(self) -> str:
        return f"{self.group} #{self.index + 1}"


def group_key(rows: str) -> Callable[[TaskRow], str]:
    """How tasks are grouped into Gantt rows: by task type, or by where they ran."""
    if rows == "type":
        return lambda t: t.type
    if rows == "worker":
        return lambda t: t.worker or t.placement
    raise ValueError(f"rows must be one of {ROW_MODES}, got {rows!r}")


SpanKey = tuple[str, int]  # (task id, attempt)


def span_key(t: TaskRow) -> SpanKey:
    return (t.id, t.attempts)


def lanes(run: RunData, rows: str = "type") -> tuple[list[Lane], dict[SpanKey, int]]:
    """Lanes in display order (groups by first start, then lane index) and each attempt's lane
    (keyed by task id and attempt number: failed attempts that were retried are drawn too).

    Greedy interval partitioning per group: a task takes the lane that freed up earliest, if
    it freed before the task started; else a new lane. That is the fewest lanes possible.
    """
    key = group_key(rows)
    end = run.end
    by_group: dict[str, list[TaskRow]] = {}
    for t in sorted(run.spans(), key=lambda t: (t.started_at, t.id, t.attempts)):
        by_group.setdefault(key(t), []).append(t)
    ordered: list[Lane] = []
    where: dict[SpanKey, int] = {}
    for group, tasks in by_group.items():
        free: list[tuple[float, int]] = []  # (free from, lane index)
        count = 0
        assigned: dict[SpanKey, int] = {}
        for t in tasks:
            start = t.started_at if t.started_at is not None else 0.0
            stop = max(start, t.finished_at if t.finished_at is not None else end)
            if free and free[0][0] <= start:
                _, idx = heapq.heappop(free)
            else:
                idx, count = count, count + 1
            assigned[span_key(t)] = idx
            heapq.heappush(free, (stop, idx))
        base = len(ordered)
        ordered.extend(Lane(group, i) for i in range(count))
        where.update({tid: base + idx for tid, idx in assigned.items()})
    return ordered, where


class Steps(Struct, frozen=True):
    """A step function: value[i] holds from times[i] to times[i + 1]."""

    times: list[float]
    values: dict[str, list[int]]  # one series per placement

    def total(self) -> list[int]:
        series = list(self.values.values())
        return [sum(col) for col in zip(*series, strict=True)] if series else []

    def peak(self) -> int:
        return max(self.total(), default=0)


def concurrency(run: RunData, placements: Sequence[str] | None = None) -> Steps:
    """Attempts running at each moment (seconds since the run was created), per placement."""
    end = run.end
    ran = run.spans()
    names = list(placements) if placements is not None else sorted({t.placement for t in ran})
    deltas: dict[float, dict[str, int]] = {}
    for t in ran:
        start = (t.started_at or 0.0) - run.created_at
        stop = max(start, (t.finished_at if t.finished_at is not None else end) - run.created_at)
        deltas.setdefault(start, {}).setdefault(t.placement, 0)
        deltas[start][t.placement] += 1
        deltas.setdefault(stop, {}).setdefault(t.placement, 0)
        deltas[stop][t.placement] -= 1
    times = [0.0]
    current = dict.fromkeys(names, 0)
    values: dict[str, list[int]] = {n: [0] for n in names}
    for at in sorted(deltas):
        for name, d in deltas[at].items():
            current[name] = current.get(name, 0) + d
        if at == times[-1]:
            for n in names:
                values[n][-1] = current.get(n, 0)
        else:
            times.append(at)
            for n in names:
                values[n].append(current.get(n, 0))
    return Steps(times, values)


class TypeStats(Struct, frozen=True):
    type: str
    tasks: int
    ok: int
    failed: int
    cached: int
    retried: int
    seconds: float  # task-seconds of every attempt (failed ones that were retried included)
    mean_s: float
    max_s: float
    gb_s: float  # memory GB x seconds, the unit functions are billed in
    cost: float | None  # dollars on AWS at the pricing table's rates; None without one
    bytes_in: int
    bytes_out: int
    peak_rss_mb: float | None
    placements: dict[str, int]


def type_stats(run: RunData, costs: CostModel) -> list[TypeStats]:
    """One row per task type, most task-seconds first, plus nothing else: totals are summed by the page."""
    groups: dict[str, list[TaskRow]] = {}
    for t in run.tasks:
        groups.setdefault(t.type, []).append(t)
    out = [_stats(name, tasks, costs) for name, tasks in groups.items()]
    return sorted(out, key=lambda s: (-s.seconds, s.type))


def _stats(name: str, tasks: Iterable[TaskRow], costs: CostModel) -> TypeStats:
    tasks = list(tasks)
    ran = [span for t in tasks if not t.cached for span in t.spans()]
    secs = [t.seconds() for t in ran]
    rss = [t.peak_rss_mb for t in tasks if t.peak_rss_mb is not None]
    placements: dict[str, int] = {}
    for t in tasks:
        placements[t.placement] = placements.get(t.placement, 0) + 1
    priced = [costs.task_cost(t) for t in ran]
    return TypeStats(
        type=name, tasks=len(tasks), ok=sum(t.state in OK_STATES for t in tasks),
        failed=sum(t.failed for t in tasks), cached=sum(t.cached for t in tasks),
        retried=sum(t.retried for t in tasks), seconds=sum(secs),
        mean_s=sum(secs) / len(secs) if secs else 0.0, max_s=max(secs, default=0.0),
        gb_s=sum(t.memory_mb / 1024.0 * t.seconds() for t in ran),
        cost=None if any(c is None for c in priced) else sum(c for c in priced if c is not None),
        bytes_in=sum(t.bytes_in or 0 for t in tasks), bytes_out=sum(t.bytes_out or 0 for t in tasks),
        peak_rss_mb=max(rss) if rss else None, placements=placements,
    )
