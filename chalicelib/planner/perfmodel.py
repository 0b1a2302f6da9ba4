"""How long a task runs on a given size: a per-task-type model learned from history.

The model (deliberately small, so a handful of runs is enough to fit it):

    compute seconds = work / min(vcpus, threads)        work = a + b * bytes_in

`work` is CPU-seconds on one full vCPU; `threads` is how many vCPUs the program can use (1 for
most scientific command-line tools); `vcpus` is what the size gives: a container's vCPUs, or a
function's share of its memory (1 vCPU at 1,769 MB, pro rata). Stage-in/out is not in it: the
caller adds bytes / bandwidth. Peak memory is the largest seen.

Where `work` comes from, per task:
- history of the task's type (`a`, `b` by least squares over finished attempts),
- the task's hints (`runtime_s`, as importers record a trace's measured runtime),
- both: a pseudo-count blend, the hint weighing `prior_weight` samples,
- neither: DEFAULT_RUNTIME_S, and the source says "default" so tables can flag the guess.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping

from msgspec import Struct

from chalicelib.planner.history import Sample
from chalicelib.workflow.model import Task, Workflow

DEFAULT_RUNTIME_S = 30.0
MIN_VCPUS = 1e-3

# Hint names importers use (first match wins): values are floats (Task.hints).
RUNTIME_HINTS = ("runtime_s",)
BYTES_IN_HINTS = ("bytes_in", "input_bytes")
BYTES_OUT_HINTS = ("bytes_out", "output_bytes")
PEAK_MB_HINTS = ("peak_mb", "peak_memory_mb", "memory_peak_mb")
PEAK_BYTES_HINTS = ("memory_bytes", "peak_memory_bytes")
THREADS_HINTS = ("threads", "cores")
AVG_CPU_HINTS = ("avg_cpu", "avg_cpu_percent")  # percent of one core, as WfCommons' avgCPU


SIZE_HINT_PREFIX = "size:"  # hints["size:<path>"] = bytes, on a file's producer (or its consumers)


def file_sizes(workflow: Workflow) -> dict[str, float]:
    """Bytes of every file whose size some task's hints record."""
    sizes: dict[str, float] = {}
    for task in workflow.tasks:
        for key, value in task.hints.items():
            if key.startswith(SIZE_HINT_PREFIX) and value >= 0:
                sizes[key[len(SIZE_HINT_PREFIX):]] = float(value)
    return sizes


def _summed(paths: tuple[str, ...], sizes: Mapping[str, float]) -> float | None:
    known = [sizes[p] for p in paths if p in sizes]
    return sum(known) if known else None


def _hint(task: Task, names: tuple[str, ...]) -> float | None:
    for name in names:
        value = task.hints.get(name)
        if value is not None and value >= 0:
            return float(value)
    return None


def hinted_threads(task: Task) -> float | None:
    threads = _hint(task, THREADS_HINTS)
    if threads is not None and threads > 0:
        return threads
    avg = _hint(task, AVG_CPU_HINTS)
    if avg is not None and avg > 0:
        return max(1.0, round(avg / 100.0, 1))  # 99.99 % of one core -> 1 thread
    return None


def hinted_peak_mb(task: Task) -> float | None:
    peak = _hint(task, PEAK_MB_HINTS)
    if peak is not None:
        return peak
    peak_bytes = _hint(task, PEAK_BYTES_HINTS)
    return None if peak_bytes is None else peak_bytes / 1_048_576


class Demand(Struct, frozen=True):
    """What one task needs, as predicted."""

    work_s: float
    threads: float = 1.0
    peak_mb: float | None = None
    bytes_in: float = 0.0
    bytes_out: float = 0.0
    source: str = "default"

    def compute_s(self, vcpus: float) -> float:
        """Seconds of computation on `vcpus` (a function's share, or a container's vCPUs)."""
        return self.work_s / max(MIN_VCPUS, min(vcpus, self.threads))


class TypeModel(Struct, frozen=True):
    """Fitted model of one task type: work = a + b * bytes_in."""

    a: float
    b: float = 0.0
    samples: int = 0
    peak_mb: float | None = None
    min_memory_mb: float | None = None  # an attempt ran out of memory below this
    bytes_in: float = 0.0  # mean, for tasks that say nothing about their inputs
    bytes_out: float = 0.0
    threads: float = 1.0

    def work(self, bytes_in: float | None) -> float:
        return max(0.0, self.a + self.b * (self.bytes_in if bytes_in is None else bytes_in))


def _least_squares(xs: list[float], ys: list[float]) -> tuple[float, float] | None:
    """(a, b) of y = a + b x, or None when x does not vary enough or the fit is not physical."""
    n = len(xs)
    if n < 3:
        return None
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if mx <= 0 or sxx <= (0.1 * mx) ** 2 * n:  # coefficient of variation under 10 %
        return None
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    a = my - b * mx
    if b < 0 or a < 0:
        return None
    return a, b


def fit_type(samples: Iterable[Sample], threads: float = 1.0) -> TypeModel | None:
    """Fit one type's model from its samples; None when no attempt finished."""
    ok = [s for s in samples if s.ok and s.duration_s >= 0]
    oom = [s.memory_mb for s in samples if not s.ok and s.reason == "OOM"]
    if not ok:
        return None
    works = [s.duration_s * max(MIN_VCPUS, min(s.vcpus if s.vcpus is not None else threads, threads)) for s in ok]
    ins = [float(s.bytes_in) for s in ok]
    fit = _least_squares(ins, works)
    a, b = fit if fit is not None else (statistics.fmean(works), 0.0)
    peaks = [s.peak_rss_mb for s in ok if s.peak_rss_mb is not None]
    return TypeModel(
        a=a, b=b, samples=len(ok), peak_mb=max(peaks) if peaks else None,
        min_memory_mb=float(max(oom)) if oom else None,
        bytes_in=statistics.fmean(ins), bytes_out=statistics.fmean(float(s.bytes_out) for s in ok), threads=threads,
    )


class PerfModel:
    """Predicts each task's Demand from history (per task type) and the task's hints.

    Types are fitted lazily for the thread count of the task asking: a local run of a
    two-thread program used two cores, so its work is twice its duration.
    """

    def __init__(
        self, samples: Iterable[Sample] = (), prior_weight: float = 2.0,
        default_runtime_s: float = DEFAULT_RUNTIME_S,
    ) -> None:
        self.samples: dict[str, list[Sample]] = {}
        for s in samples:
            self.samples.setdefault(s.task_type, []).append(s)
        self.prior_weight = prior_weight
        self.default_runtime_s = default_runtime_s
        self._fits: dict[tuple[str, float], TypeModel | None] = {}

    @classmethod
    def learn(
        cls, samples: Iterable[Sample], prior_weight: float = 2.0, default_runtime_s: float = DEFAULT_RUNTIME_S,
    ) -> PerfModel:
        return cls(samples, prior_weight, default_runtime_s)

    def type_model(self, task_type: str, threads: float = 1.0) -> TypeModel | None:
        key = (task_type, threads)
        if key not in self._fits:
            group = self.samples.get(task_type)
            self._fits[key] = fit_type(group, threads) if group else None
        return self._fits[key]

    def demand(self, task: Task, sizes: Mapping[str, float] | None = None) -> Demand:
        """Predicted demand of `task`; `sizes` (file_sizes of its workflow) gives its bytes."""
        threads = hinted_threads(task) or 1.0
        model = self.type_model(task.task_type, threads)
        bytes_in = _hint(task, BYTES_IN_HINTS)
        bytes_out = _hint(task, BYTES_OUT_HINTS)
        if sizes:
            bytes_in = _summed(task.inputs, sizes) if bytes_in is None else bytes_in
            bytes_out = _summed(task.outputs, sizes) if bytes_out is None else bytes_out
        hint_runtime = _hint(task, RUNTIME_HINTS)
        hint_work = None if hint_runtime is None else hint_runtime * threads
        peak = hinted_peak_mb(task)
        if model is None:
            work, source = (hint_work, "hint") if hint_work is not None else (self.default_runtime_s, "default")
        else:
            learned = model.work(bytes_in)
            if hint_work is None:
                work, source = learned, "history"
            else:
                n, k = model.samples, self.prior_weight
                work, source = (k * hint_work + n * learned) / (k + n), "history+hint"
            known = [p for p in (peak, model.peak_mb, model.min_memory_mb) if p is not None]
            peak = max(known) if known else None
            bytes_in = model.bytes_in if bytes_in is None else bytes_in
            bytes_out = model.bytes_out if bytes_out is None else bytes_out
        return Demand(
            work_s=work, threads=threads, peak_mb=peak,
            bytes_in=bytes_in or 0.0, bytes_out=bytes_out or 0.0, source=source,
        )
