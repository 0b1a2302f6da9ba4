"""The modelled compute: function and container pools, task outcomes, and what they cost.

Both the planner's fast estimator and the engine-driving simulator run tasks through this one
`Machine`, so their timings agree by construction; they differ only in who decides what is
launched when (a DAG walker vs. the real coordinator).

Time is the caller's: every method takes the current simulated time, and the caller must call
them in non-decreasing time order. A pool that needs to act later (a worker finishes booting)
asks for it through `timers()`; the caller calls `tick(t)` then.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass, field

from chalicelib.planner.perfmodel import Demand
from chalicelib.planner.platform import Platform
from chalicelib.planner.pricing import fargate_size


@dataclass(frozen=True)
class Job:
    """One attempt to run, as the pools see it."""

    key: Hashable
    placement: str  # "function" | "container"
    memory_mb: int
    cpus: float
    demand: Demand
    objects_in: int = 0
    objects_out: int = 0
    timeout_s: float = 900.0
    disk_mb: int = 512
    slowdown: float = 1.0  # the simulator's noise: true runtime / predicted


@dataclass(frozen=True)
class Start:
    """A job got its slot: its own code begins at `at` with `vcpus` and `memory_mb`."""

    job: Job
    at: float
    vcpus: float
    memory_mb: int
    cold: bool = False


@dataclass(frozen=True)
class Outcome:
    end: float
    reason: str | None  # None: success; else TIMEOUT, OOM or DISK_QUOTA
    compute_s: float
    transfer_s: float


@dataclass
class Usage:
    """What the run consumed, and its price."""

    function_cost: float = 0.0
    container_cost: float = 0.0
    invocations: int = 0
    cold_starts: int = 0
    function_gb_s: float = 0.0
    workers_started: int = 0
    worker_s: float = 0.0

    @property
    def compute_cost(self) -> float:
        return self.function_cost + self.container_cost


class FunctionPool:
    """Lambda: up to `concurrency` at once (more wait, FIFO); warm environments reused per size."""

    def __init__(self, platform: Platform, usage: Usage) -> None:
        self.platform = platform
        self.usage = usage
        self.running = 0
        self.queue: deque[Job] = deque()
        self.idle: dict[int, list[float]] = {}  # memory size -> free-since times, oldest first
        self.started: dict[Hashable, Start] = {}

    def submit(self, job: Job, t: float) -> list[Start]:
        if self.running < self.platform.function_concurrency:
            return [self._start(job, t)]
        self.queue.append(job)
        return []

    def _start(self, job: Job, t: float) -> Start:
        lat = self.platform.latencies
        free = self.idle.get(job.memory_mb)
        cold = True
        if free and free[-1] + lat.function_idle_ttl_s >= t:
            free.pop()
            cold = False
        elif free:
            free.clear()  # the newest is expired, so all are
        self.running += 1
        start = Start(job, t + (lat.function_cold_s if cold else lat.function_warm_s),
                      self.platform.prices.functions.vcpus(job.memory_mb), job.memory_mb, cold)
        self.started[job.key] = start
        self.usage.invocations += 1
        self.usage.cold_starts += int(cold)
        return start

    def finish(self, key: Hashable, t: float) -> list[Start]:
        start = self.started.pop(key)
        prices = self.platform.prices.functions
        init = self.platform.latencies.function_cold_s if (start.cold and prices.init_billed) else 0.0
        billed = max(0.0, t - start.at) + init
        self.usage.function_cost += prices.invocation_cost(
            start.memory_mb, billed, self.platform.arch, tmp_mb=min(start.job.disk_mb, prices.max_tmp_mb))
        self.usage.function_gb_s += billed * start.memory_mb / 1024.0
        self.running -= 1
        self.idle.setdefault(start.memory_mb, []).append(t)
        if self.queue:
            return [self._start(self.queue.popleft(), t)]
        return []


@dataclass
class _Worker:
    wid: int
    cpus: float
    memory_mb: int
    born: float  # RunTask time: billing starts
    ready_at: float
    busy: Hashable | None = None
    idle_since: float | None = None
    stopped: float | None = None


class ContainerPool:
    """Fargate workers fed by one FIFO queue.

    Elastic (default): a worker has the size of the task that made it start (rounded to a
    valid Fargate size) and takes only tasks of that size; the pool starts one when queued
    tasks of a size outnumber its booting workers, up to `max_workers` alive; idle workers stop
    after the keep-alive. Fixed (`platform.fixed_workers`): pre-started always-on workers take
    any task.
    """

    def __init__(self, platform: Platform, usage: Usage) -> None:
        self.platform = platform
        self.usage = usage
        self.queue: deque[tuple[Job, tuple[float, int]]] = deque()
        self.workers: list[_Worker] = []
        self.by_job: dict[Hashable, _Worker] = {}
        self._timers: list[float] = []
        self._ids = itertools.count()
        fixed = platform.fixed_workers
        if fixed is not None:
            for _ in range(fixed.count):
                self.workers.append(_Worker(next(self._ids), fixed.cpus, fixed.memory_mb, 0.0, 0.0, idle_since=0.0))

    def size_of(self, job: Job) -> tuple[float, int]:
        fixed = self.platform.fixed_workers
        if fixed is not None:
            return fixed.cpus, fixed.memory_mb
        return fargate_size(max(job.cpus, 0.25), job.memory_mb)

    def _alive(self) -> list[_Worker]:
        return [w for w in self.workers if w.stopped is None]

    def _expire(self, t: float) -> None:
        if self.platform.fixed_workers is not None:
            return
        keep = self.platform.worker_keepalive_s
        expired = False
        for w in self.workers:
            if w.stopped is None and w.busy is None and w.idle_since is not None and w.idle_since + keep <= t:
                self._stop(w, w.idle_since + keep)
                expired = True
        if expired:
            self.workers = self._alive()

    def _stop(self, w: _Worker, t: float) -> None:
        w.stopped = t
        lifetime = t - w.born
        self.usage.worker_s += lifetime
        self.usage.container_cost += self.platform.prices.containers.task_cost(
            w.cpus, w.memory_mb, lifetime, self.platform.arch)

    def _assign(self, w: _Worker, job: Job, t: float) -> Start:
        w.busy = job.key
        w.idle_since = None
        self.by_job[job.key] = w
        return Start(job, max(t, w.ready_at) + self.platform.latencies.container_poll_s, w.cpus, w.memory_mb)

    def _take_queued(self, w: _Worker, t: float) -> Start | None:
        for i, (job, size) in enumerate(self.queue):
            if self.platform.fixed_workers is not None or size == (w.cpus, w.memory_mb):
                del self.queue[i]
                return self._assign(w, job, t)
        return None

    def submit(self, job: Job, t: float) -> list[Start]:
        self._expire(t)
        size = self.size_of(job)
        fixed = self.platform.fixed_workers is not None
        for w in self.workers:
            if (w.stopped is None and w.busy is None and w.ready_at <= t
                    and (fixed or (w.cpus, w.memory_mb) == size)):
                return [self._assign(w, job, t)]
        self.queue.append((job, size))
        if not fixed:
            self._scale(size, t)
        return []

    def _scale(self, size: tuple[float, int], t: float) -> None:
        booting = sum(1 for w in self._alive() if w.ready_at > t and w.busy is None and (w.cpus, w.memory_mb) == size)
        queued = sum(1 for _, s in self.queue if s == size)
        while queued > booting:
            alive = self._alive()
            if len(alive) >= self.platform.max_workers:
                spare = [w for w in alive if w.busy is None and w.ready_at <= t and (w.cpus, w.memory_mb) != size]
                if not spare:
                    return
                self._stop(spare[0], t)  # make room for the size the backlog needs
            ready = t + self.platform.latencies.container_start_s
            self.workers.append(_Worker(next(self._ids), size[0], size[1], t, ready))
            self.usage.workers_started += 1
            self._timers.append(ready)
            booting += 1

    def tick(self, t: float) -> list[Start]:
        """Booted workers take queued tasks."""
        self._expire(t)
        out = []
        for w in self._alive():
            if w.busy is None and w.ready_at <= t and w.idle_since is None:
                w.idle_since = w.ready_at
                start = self._take_queued(w, t)
                if start is not None:
                    out.append(start)
        return out

    def finish(self, key: Hashable, t: float) -> list[Start]:
        w = self.by_job.pop(key)
        w.busy = None
        w.idle_since = t
        start = self._take_queued(w, t)
        if start is None and self.queue and self.platform.fixed_workers is None:
            # queued tasks of another size: this worker's slot may be what they wait for
            self._expire(t)
            self._scale(self.queue[0][1], t)
        return [start] if start is not None else []

    def timers(self) -> list[float]:
        out, self._timers = self._timers, []
        return out

    def close(self, t: float) -> None:
        """The run ended at `t`: the service scales to zero; bill every worker."""
        self._expire(t)
        for w in self.workers:
            if w.stopped is None:
                self._stop(w, max(t, w.born))


@dataclass
class Machine:
    """Functions + containers under one platform; outcomes of started jobs."""

    platform: Platform
    usage: Usage = field(default_factory=Usage)

    def __post_init__(self) -> None:
        self.functions = FunctionPool(self.platform, self.usage)
        self.containers = ContainerPool(self.platform, self.usage)
        self._placement: dict[Hashable, str] = {}

    def submit(self, job: Job, t: float) -> list[Start]:
        self._placement[job.key] = job.placement
        pool = self.functions if job.placement == "function" else self.containers
        return pool.submit(job, t)

    def finish(self, key: Hashable, t: float) -> list[Start]:
        placement = self._placement.pop(key)
        pool = self.functions if placement == "function" else self.containers
        return pool.finish(key, t)

    def tick(self, t: float) -> list[Start]:
        return self.containers.tick(t)

    def timers(self) -> list[float]:
        return self.containers.timers()

    def outcome(self, start: Start) -> Outcome:
        """When the started job ends, and whether it hits a limit of its slot."""
        job, lat = start.job, self.platform.latencies
        demand = job.demand
        t_in = lat.transfer_s(demand.bytes_in, job.objects_in)
        t_out = lat.transfer_s(demand.bytes_out, job.objects_out)
        compute = demand.compute_s(start.vcpus) * job.slowdown
        limit = job.timeout_s
        disk_mb = job.disk_mb
        if job.placement == "function":
            limit = min(limit, self.platform.prices.functions.max_timeout_s)
            disk_mb = min(disk_mb, self.platform.prices.functions.max_tmp_mb)
        if demand.peak_mb is not None and demand.peak_mb > start.memory_mb:
            return Outcome(start.at + min(limit, t_in + compute / 2), "OOM", compute, t_in)
        if (demand.bytes_in + demand.bytes_out) / 1_048_576 > disk_mb:
            return Outcome(start.at + min(limit, t_in), "DISK_QUOTA", 0.0, t_in)
        if t_in + compute + t_out > limit:
            return Outcome(start.at + limit, "TIMEOUT", compute, t_in + t_out)
        return Outcome(start.at + t_in + compute + t_out, None, compute, t_in + t_out)

    def close(self, t: float) -> Usage:
        self.containers.close(t)
        return self.usage


class EventHeap:
    """A time-ordered queue with FIFO ties (insertion order)."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, object]] = []
        self._seq = itertools.count()

    def push(self, t: float, item: object) -> None:
        heapq.heappush(self._heap, (t, next(self._seq), item))

    def pop(self) -> tuple[float, object]:
        t, _, item = heapq.heappop(self._heap)
        return t, item

    def peek_time(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    def __len__(self) -> int:
        return len(self._heap)
