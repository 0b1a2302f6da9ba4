"""What a run's progress display shows, apart from how it is drawn (chalicelib/ui/display.py).

A `Tracker` is fed the run's counts per task state: by the local runtime's loop (`updraft run`,
`updraft resume`, ten times a second) or by `Client.wait` (`updraft watch`, `submit --wait`, at
each poll). From them and a `Source` (the local store, or the API) it makes `Frame`s, the whole
picture at one moment, and it finds each task that failed since the last look, with its reason
and the end of its log, so the display can name it at once rather than at the end of the run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from chalicelib.engine.states import TERMINAL_TASK, TaskState

FAILED = TaskState.FAILED.value
UPSTREAM_FAILED = TaskState.UPSTREAM_FAILED.value
LOG_LINES = 5  # the last lines of a failed task's log the display shows


@dataclass(frozen=True)
class TypeRow:
    """One task type's progress: tasks ended (in any way) of all its tasks."""

    name: str
    done: int
    total: int


@dataclass(frozen=True)
class Frame:
    run_id: str
    state: str  # the run's state (RUNNING until it ends)
    total: int
    counts: Mapping[str, int]  # tasks per task state
    types: tuple[TypeRow, ...]
    elapsed_s: float
    eta_s: float | None  # seconds left, estimated from the rate so far; None before there is one

    @property
    def done(self) -> int:
        return sum(self.counts.get(s.value, 0) for s in TERMINAL_TASK)

    @property
    def percent(self) -> int:
        """Whole per cent of tasks ended; 100 only when every task has."""
        if not self.total:
            return 100
        return 100 if self.done >= self.total else min(99, int(100 * self.done / self.total))


@dataclass(frozen=True)
class Failed:
    """A task that ended FAILED, or UPSTREAM_FAILED (then `parent` names the failed ancestor)."""

    task_id: str
    state: str
    reason: str
    attempt: int = 1
    detail: str = ""  # the runner's one-line account ("exit code 3")
    lines: tuple[str, ...] = ()  # the last lines of its log
    parent: str | None = None


class Source(Protocol):
    """Where a tracker reads what the counts do not say."""

    def task_types(self) -> Mapping[str, str]:
        """Each task's type (task id -> type), read once."""
        ...

    def ended(self) -> Iterable[str]:
        """The ids of the tasks that have ended."""
        ...

    def failed(self, known: Collection[str]) -> list[Failed]:
        """The FAILED and UPSTREAM_FAILED tasks not in `known`."""
        ...


class Display(Protocol):
    wants_types: bool  # whether its frames show per-type rows (reading them costs a query)

    def start(self, run_id: str, total: int, where: str) -> None: ...

    def frame(self, frame: Frame) -> None: ...

    def failed(self, tasks: list[Failed], logs_command: Callable[[str], str]) -> None: ...

    def close(self, frame: Frame) -> None: ...


def split_log(text: str | None, detail: str | None = None) -> tuple[str, tuple[str, ...]]:
    """(the one-line account, the last log lines) of a failed task's log tail, whose first line
    is the runner's account when `detail` is not given separately."""
    lines = [ln.rstrip() for ln in str(text or "").strip().splitlines()]
    head: str
    if detail is None:
        head, lines = (lines[0], lines[1:]) if lines else ("", [])
    else:
        head = detail
        if lines and lines[0].strip() == head.strip():
            lines = lines[1:]
    return head.strip(), tuple(ln for ln in lines if ln.strip())[-LOG_LINES:]


class Estimator:
    """Seconds left, from the rate at which tasks have ended since the tracker first looked
    (tasks already ended then, as on a resume, do not count as speed)."""

    def __init__(self) -> None:
        self.first: tuple[float, int] | None = None

    def __call__(self, now: float, done: int, total: int) -> float | None:
        if self.first is None:
            self.first = (now, done)
            return None
        t0, d0 = self.first
        if done <= d0 or now <= t0:
            return None
        if done >= total:
            return 0.0
        return (total - done) * (now - t0) / (done - d0)


class Tracker:
    """Feeds a display from a run's counts. Call it as the runtime's progress function
    (`tracker(counts)`), or `update(counts, state)` from a poll; `close(state, counts)` at the end
    draws the last frame."""

    def __init__(self, run_id: str, total: int, source: Source, display: Display,
                 logs_command: Callable[[str], str], clock: Callable[[], float] = time.monotonic) -> None:
        self.run_id = run_id
        self.total = total
        self.source = source
        self.display = display
        self.logs_command = logs_command
        self.clock = clock
        self.started = clock()
        self.estimate = Estimator()
        self.known: set[str] = set()  # failed tasks already shown
        self.failures_due = 0.0
        self.types: dict[str, str] | None = None
        self.type_totals: dict[str, int] = {}
        self.type_rows: tuple[TypeRow, ...] = ()
        self.types_due = 0.0
        # at least this long between two reads of per-type counts (a source over the network
        # asks for more); longer when a read costs more (see _refresh_types)
        self.types_every = float(getattr(source, "types_every_s", 1.0))
        self.last_done = -1

    def __call__(self, counts: dict[str, int], _unused: int = 0) -> None:
        self.update(counts)

    def update(self, counts: Mapping[str, int], state: str = "RUNNING", elapsed_s: float | None = None) -> None:
        self._show_failures(counts, final=False)
        self.display.frame(self._frame(counts, state, elapsed_s, final=False))

    def close(self, state: str, counts: Mapping[str, int], elapsed_s: float | None = None) -> Frame:
        self._show_failures(counts, final=True)
        frame = self._frame(counts, state, elapsed_s, final=True)
        self.display.close(frame)
        return frame

    def _show_failures(self, counts: Mapping[str, int], final: bool) -> None:
        """Ask the source for the failed tasks when the counts show more than were shown: at
        once, unless the last look was costly (a run failing task after task in thousands)."""
        if counts.get(FAILED, 0) + counts.get(UPSTREAM_FAILED, 0) <= len(self.known):
            return
        began = self.clock()
        if not final and began < self.failures_due:
            return
        new = [f for f in self.source.failed(self.known) if f.task_id not in self.known]
        self.known.update(f.task_id for f in new)
        self.failures_due = began + 20 * (self.clock() - began)
        if new:
            self.display.failed(new, self.logs_command)

    def _frame(self, counts: Mapping[str, int], state: str, elapsed_s: float | None, final: bool) -> Frame:
        now = self.clock()
        done = sum(counts.get(s.value, 0) for s in TERMINAL_TASK)
        if self.display.wants_types and (final or (done != self.last_done and now >= self.types_due)):
            self._refresh_types(now)
        self.last_done = done
        elapsed = elapsed_s if elapsed_s is not None else now - self.started
        eta = None if final else self.estimate(now, done, self.total)
        return Frame(self.run_id, state, self.total, dict(counts), self.type_rows, elapsed, eta)

    def _refresh_types(self, now: float) -> None:
        """Per-type counts cost a read of every ended task: done at most once a second, and
        for a large run no more often than keeps that read under 5 % of the time."""
        began = self.clock()
        if self.types is None:
            self.types = dict(self.source.task_types())
            for ttype in self.types.values():
                self.type_totals[ttype] = self.type_totals.get(ttype, 0) + 1
        done: dict[str, int] = dict.fromkeys(self.type_totals, 0)
        for task_id in self.source.ended():
            of = self.types.get(task_id)
            if of is not None:
                done[of] += 1
        self.type_rows = tuple(TypeRow(name, done[name], n) for name, n in self.type_totals.items())
        cost = self.clock() - began
        self.types_due = now + max(self.types_every, 20 * cost)


def resume_command(run_id: str, workdir: str | None) -> str:
    """`updraft resume RUN`, with --workdir when the run is not in the default work dir."""
    return f"updraft resume {run_id}" + _workdir_option(workdir)


def logs_command(run_id: str, workdir: str | None = None, api: str | None = None) -> Callable[[str], str]:
    """TASK -> the `updraft logs` command that prints that task's log."""
    where = f" --api {api}" if api else _workdir_option(workdir)
    return lambda task_id: f"updraft logs {run_id} {task_id}{where}"


def _workdir_option(workdir: str | None) -> str:
    import os

    from chalicelib.backends.local.runtime import default_workdir

    if workdir is None or os.path.abspath(workdir) == os.path.abspath(default_workdir()):
        return ""
    return f" --workdir {_quote(workdir)}"


def _quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


def state_words(counts: Mapping[str, Any]) -> list[tuple[str, int]]:
    """(short label, count) per task state with a count, in the order a user reads them."""
    labels = (("RUNNING", "running"), ("DISPATCHED", "starting"), ("SUCCEEDED", "ok"), ("CACHED", "cached"),
              ("FAILED", "failed"), ("UPSTREAM_FAILED", "upstream_failed"), ("CANCELLED", "cancelled"),
              ("READY", "ready"), ("WAITING", "waiting"))
    return [(label, int(counts[state])) for state, label in labels if counts.get(state)]


def clock_text(seconds: float) -> str:
    """1:05 or 2:03:04."""
    s = max(0, int(seconds + 0.5))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
