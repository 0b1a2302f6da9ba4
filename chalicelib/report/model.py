"""A run as the report and the dashboard see it: plain, frozen values.

Built from the same JSON bodies the API serves (a run, its tasks, its graph), so a report can
be drawn from the local store or from a deployed stack alike. Fields the API does not carry
(bytes moved, peak memory) are simply absent (None) in that case.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import cached_property
from typing import Any

from msgspec import Struct
from msgspec.structs import replace

from chalicelib.engine.states import DONE_OK, NOT_YET_RUNNING, RunState, TaskState

# (StrEnum members: a state's name as the API's bodies carry it is a member of these.)
OK_STATES = DONE_OK


class Try(Struct, frozen=True):
    """An earlier attempt of a task (one that failed and was retried)."""

    attempt: int
    started_at: float | None = None
    finished_at: float | None = None
    duration_s: float | None = None
    reason: str | None = None
    placement: str | None = None


class TaskRow(Struct, frozen=True):
    """One task: what it is (type, resources, parents) and what happened to it."""

    id: str
    type: str
    state: str
    placement: str
    attempts: int = 1
    started_at: float | None = None
    finished_at: float | None = None
    level: int = 0
    parents: tuple[str, ...] = ()
    memory_mb: int = 1024
    cpus: float = 1.0
    duration_s: float | None = None
    bytes_in: int | None = None
    bytes_out: int | None = None
    peak_rss_mb: float | None = None
    reason: str | None = None
    worker: str | None = None
    log_tail: str | None = None
    detail: str | None = None  # the runner's one-line account of a failure
    tries: tuple[Try, ...] = ()  # the attempts before the last, oldest first

    def spans(self) -> list[TaskRow]:
        """One row per attempt that ran, oldest first: the earlier (failed) tries, then this
        one if it started. Each carries its attempt number in `attempts`."""
        out = [replace(self, state=TaskState.FAILED.value, attempts=t.attempt, started_at=t.started_at,
                       finished_at=t.finished_at, duration_s=t.duration_s, reason=t.reason,
                       placement=t.placement or self.placement, tries=(), log_tail=None, detail=None)
               for t in self.tries if t.started_at is not None]
        if self.started_at is not None:
            out.append(self)
        return out

    @property
    def cached(self) -> bool:
        return self.state == TaskState.CACHED

    @property
    def failed(self) -> bool:
        return self.state == TaskState.FAILED

    @property
    def retried(self) -> bool:
        return self.attempts > 1

    @property
    def ran(self) -> bool:
        """It has a start, so it can be drawn on a timeline (running tasks end 'now')."""
        return self.started_at is not None

    def seconds(self) -> float:
        """Time the (last) attempt ran: the runner's measure, else finish minus start."""
        if self.duration_s is not None:
            return max(0.0, self.duration_s)
        if self.started_at is not None and self.finished_at is not None:
            return max(0.0, self.finished_at - self.started_at)
        return 0.0


class RunData(Struct, frozen=True, dict=True):  # dict: the cached_property values
    run_id: str
    name: str
    state: str
    created_at: float
    finished_at: float | None
    tasks: tuple[TaskRow, ...]
    now: float | None = None  # when the data was read (ends the bars of running tasks)

    @cached_property
    def end(self) -> float:
        """The right edge of the timeline: the run's finish, else the last event, else now."""
        if self.finished_at is not None:
            return max(self.finished_at, self._last_event())
        return max(self.now or 0.0, self._last_event(), self.created_at)

    def _last_event(self) -> float:
        spans = self.spans()
        ends = [t.finished_at for t in spans if t.finished_at is not None]
        ends += [t.started_at for t in spans if t.started_at is not None]
        return max(ends, default=self.created_at)

    @property
    def wall_s(self) -> float:
        return max(0.0, self.end - self.created_at)

    def spans(self) -> list[TaskRow]:
        """Every attempt that ran, failed ones included (see TaskRow.spans)."""
        return [span for t in self.tasks for span in t.spans()]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for t in self.tasks:
            out[t.state] = out.get(t.state, 0) + 1
        return out

    @cached_property
    def _index(self) -> dict[str, TaskRow]:
        return {t.id: t for t in self.tasks}

    def by_id(self) -> dict[str, TaskRow]:
        return dict(self._index)

    def ready_at(self, task: TaskRow) -> float | None:
        """When its last parent finished (the run's start for a root): the earliest it could run."""
        if not task.parents:
            return self.created_at
        index = self._index
        ends = [index[p].finished_at for p in task.parents if p in index]
        if any(e is None for e in ends) or not ends:
            return None
        return max(e for e in ends if e is not None)


def from_parts(run: Mapping[str, Any], tasks: Iterable[Mapping[str, Any]], graph: Mapping[str, Any] | None,
               now: float | None = None) -> RunData:
    """RunData from the API's bodies: GET /runs/{id}, its tasks and GET /runs/{id}/graph.

    A task body may carry the runner's result fields (duration_s, bytes_in, bytes_out,
    peak_rss_mb, started_at of a failed attempt that never reported its start); the graph
    gives each task's type, level, parents and resources.
    """
    nodes = {str(n["id"]): n for n in (graph or {}).get("tasks", [])}
    rows = []
    for body in tasks:
        tid = str(body["id"])
        node = nodes.get(tid, {})
        state = str(body.get("state", TaskState.WAITING.value))
        started, finished = _num(body.get("started_at")), _num(body.get("finished_at"))
        if state in NOT_YET_RUNNING:
            started = finished = None  # times of an earlier attempt: this one has not started
        elif state == TaskState.RUNNING:
            finished = None
        rows.append(TaskRow(
            id=tid,
            type=str(node.get("type") or body.get("type") or "task"),
            state=state,
            placement=str(body.get("placement") or node.get("placement") or "function"),
            attempts=int(body.get("attempts") or body.get("attempt") or 1),
            started_at=started,
            finished_at=finished,
            level=int(node.get("level") or 0),
            parents=tuple(str(p) for p in node.get("parents", ())),
            memory_mb=int(node.get("memory_mb") or 1024),
            cpus=float(node.get("cpus") or 1.0),
            duration_s=_num(body.get("duration_s")),
            bytes_in=_int(body.get("bytes_in")),
            bytes_out=_int(body.get("bytes_out")),
            peak_rss_mb=_num(body.get("peak_rss_mb")),
            reason=body.get("reason"),
            worker=body.get("worker"),
            log_tail=body.get("log_tail"),
            detail=body.get("detail"),
            tries=_tries(body.get("tries")),
        ))
    return RunData(
        run_id=str(run["run_id"]), name=str(run.get("name") or ""), state=str(run.get("state", RunState.RUNNING.value)),
        created_at=float(run.get("created_at") or 0.0), finished_at=_num(run.get("finished_at")),
        tasks=tuple(rows), now=now,
    )


def _tries(value: Any) -> tuple[Try, ...]:
    if not isinstance(value, list):
        return ()
    out = []
    for item in value:
        if isinstance(item, Mapping) and isinstance(item.get("attempt"), int):
            out.append(Try(attempt=int(item["attempt"]), started_at=_num(item.get("started_at")),
                           finished_at=_num(item.get("finished_at")), duration_s=_num(item.get("duration_s")),
                           reason=item.get("reason"), placement=item.get("placement")))
    return tuple(sorted(out, key=lambda t: t.attempt))


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
