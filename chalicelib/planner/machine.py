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
import math
from collections import deque
from collections.abc import Hashable
from typing import NamedTuple

from msgspec import Struct

from chalicelib.planner.perfmodel import Demand
from chalicelib.planner.platform import Platform
from chalicelib.planner.pricing import fargate_size


class Job(Struct, frozen=True):
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


class Start(NamedTuple):
    """A job got its slot: its own code begins at `at` with `vcpus` and `memory_mb`.

    (A NamedTuple rather than a dataclass: the estimator makes a million of them per plan.)
    """

    job: Job
    at: float
    vcpus: float
    memory_mb: int
    cold: bool = False


class Outcome(Struct, frozen=True):
    end: float
    reason: str | None  # None: success; else TIMEOUT, OOM or DISK_QUOTA
    compute_s: float
    transfer_s: float


class Usage(Struct):
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
        self._rates: dict[tuple[int, int], float] = {}  # (memory, /tmp) -> dollars per billed second
        lat, prices = platform.latencies, platform.prices.functions
        self._cold, self._warm, self._ttl = lat.function_cold_s, lat.function_warm_s, lat.function_idle_ttl_s
        self._init = lat.function_cold_s if prices.init_billed else 0.0
        self._limit = platform.function_concurrency
        self._mb_per_vcpu, self._max_vcpus = prices.mb_per_vcpu, prices.max_vcpus

    def submit(self, job: Job, t: float) -> list[Start]:
        if self.running < self._limit:
            return [self._start(job, t)]
        self.queue.append(job)
        return []

    def _start(self, job: Job, t: float) -> Start:
        free = self.idle.get(job.memory_mb)
        cold = True
        if free:
            if free[-1] + self._ttl >= t:
                free.pop()
                cold = False
            else:
                free.clear()  # the newest is expired, so all are
        self.running += 1
        vcpus = min(self._max_vcpus, job.memory_mb / self._mb_per_vcpu)
        start = Start(job, t + (self._cold if cold else self._warm), vcpus, job.memory_mb, cold)
        self.started[job.key] = start
        self.usage.invocations += 1
        self.usage.cold_starts += cold
        return start

    def _rate(self, memory_mb: int, disk_mb: int) -> float:
        key = (memory_mb, disk_mb)
        rate = self._rates.get(key)
        if rate is None:
            prices = self.platform.prices.functions
            tmp_mb = min(disk_mb, prices.max_tmp_mb)
            per_s = prices.invocation_cost(memory_mb, 1.0, self.platform.arch, tmp_mb) - prices.per_request
            rate = self._rates[key] = per_s
        return rate

    def finish(self, key: Hashable, t: float) -> list[Start]:
        start = self.started.pop(key)
        billed = math.ceil(((t - start.at) + (self._init if start.cold else 0.0)) * 1000.0) / 1000.0  # 1 ms
        usage = self.usage
        usage.function_cost += self.platform.prices.functions.per_request + billed * self._rate(
            start.memory_mb, start.job.disk_mb)
        usage.function_gb_s += billed * start.memory_mb / 1024.0
        self.running -= 1
        free = self.idle.get(start.memory_mb)
        if free is None:
            free = self.idle[start.memory_mb] = []
        free.append(t)
        if self.queue:
            return [self._start(self.queue.popleft(), t)]
        return []


class _Worker(Struct, eq=False):
    size: tuple[float, int]  # (vCPU, memory MB)
    born: float  # RunTask time: billing starts
    ready_at: float
    busy: bool = False
    idle_since: float | None = None
    stopped: float | None = None


Size = tuple[float, int]


class ContainerPool:
    """Fargate workers fed by one queue.

    Elastic (default): a worker has the size of the task that made it start (rounded to a
    valid Fargate size) and takes only tasks of that size, oldest first; the pool starts one
    when queued tasks of a size outnumber its booting workers, up to `max_workers` alive
    (stopping an idle worker of another size to make room); idle workers stop after the
    keep-alive. Fixed (`platform.fixed_workers`): pre-started always-on workers take any task.
    """

    def __init__(self, platform: Platform, usage: Usage) -> None:
        self.platform = platform
        self.usage = usage
        self.fixed = platform.fixed_workers
        self.queues: dict[Size, deque[Job]] = {}
        self.idle: dict[Size, list[_Worker]] = {}  # booted and idle, most recently idle last
        self.booting: dict[Size, int] = {}
        self.workers: list[_Worker] = []  # alive
        self.by_job: dict[Hashable, _Worker] = {}
        self._expiry: list[tuple[float, int, _Worker]] = []  # (idle_since + keep-alive, tiebreak, worker)
        self._seq = itertools.count()
        self._timers: list[float] = []
        self._sizes: dict[tuple[float, int], Size] = {}
        if self.fixed is not None:
            size = (self.fixed.cpus, self.fixed.memory_mb)
            for _ in range(self.fixed.count):
                w = _Worker(size, 0.0, 0.0, idle_since=0.0)
                self.workers.append(w)
                self.idle.setdefault(size, []).append(w)

    def size_of(self, job: Job) -> Size:
        if self.fixed is not None:
            return self.fixed.cpus, self.fixed.memory_mb
        key = (job.cpus, job.memory_mb)
        size = self._sizes.get(key)
        if size is None:
            size = self._sizes[key] = fargate_size(max(job.cpus, 0.25), job.memory_mb)
        return size

    def _expire(self, t: float) -> None:
        heap = self._expiry
        while heap and heap[0][0] <= t:
            at, _, w = heapq.heappop(heap)
            if w.stopped is None and not w.busy and w.idle_since is not None and w.idle_since + self.keep <= t:
                self._stop(w, at)

    @property
    def keep(self) -> float:
        return self.platform.worker_keepalive_s

    def _stop(self, w: _Worker, t: float) -> None:
        w.stopped = t
        self.workers.remove(w)
        idle = self.idle.get(w.size)
        if idle is not None and w in idle:
            idle.remove(w)
        lifetime = t - w.born
        self.usage.worker_s += lifetime
        self.usage.container_cost += self.platform.prices.containers.task_cost(
            w.size[0], w.size[1], lifetime, self.platform.arch)

    def _assign(self, w: _Worker, job: Job, t: float) -> Start:
        w.busy = True
        w.idle_since = None
        self.by_job[job.key] = w
        return Start(job, max(t, w.ready_at) + self.platform.latencies.container_poll_s, w.size[0], w.size[1])

    def _set_idle(self, w: _Worker, t: float) -> Start | None:
        """`w` is free at t: it takes the oldest queued task of its size, or waits."""
        queue = self.queues.get(w.size)
        if queue:
            return self._assign(w, queue.popleft(), t)
        w.busy = False
        w.idle_since = t
        self.idle.setdefault(w.size, []).append(w)
        if self.fixed is None:
            heapq.heappush(self._expiry, (t + self.keep, next(self._seq), w))
        return None

    def submit(self, job: Job, t: float) -> list[Start]:
        self._expire(t)
        size = self.size_of(job)
        idle = self.idle.get(size)
        if idle:
            return [self._assign(idle.pop(), job, t)]
        self.queues.setdefault(size, deque()).append(job)
        if self.fixed is None:
            self._scale(size, t)
        return []

    def _scale(self, size: Size, t: float) -> None:
        queued = len(self.queues.get(size, ()))
        while queued > self.booting.get(size, 0):
            if len(self.workers) >= self.platform.max_workers:
                spare = [w for ws in self.idle.values() for w in ws if w.size != size]
                if not spare:
                    return
                self._stop(min(spare, key=lambda w: w.idle_since or 0.0), t)  # room for the backlog's size
            ready = t + self.platform.latencies.container_start_s
            self.workers.append(_Worker(size, t, ready))
            self.booting[size] = self.booting.get(size, 0) + 1
            self.usage.workers_started += 1
            self._timers.append(ready)

    def tick(self, t: float) -> list[Start]:
        """Workers that finished booting take queued tasks."""
        self._expire(t)
        out = []
        for w in self.workers:
            if not w.busy and w.idle_since is None and w.ready_at <= t:
                self.booting[w.size] -= 1
                start = self._set_idle(w, w.ready_at)
                if start is not None:
                    out.append(start)
        return out

    def finish(self, key: Hashable, t: float) -> list[Start]:
        self._expire(t)
        w = self.by_job.pop(key)
        start = self._set_idle(w, t)
        if start is not None:
            return [start]
        if self.fixed is None and len(self.workers) >= self.platform.max_workers:
            for size, queue in self.queues.items():  # tasks of another size may wait for a slot
                if queue and size != w.size:
                    self._scale(size, t)
        return []

    def timers(self) -> list[float]:
        out, self._timers = self._timers, []
        return out

    def has_timers(self) -> bool:
        return bool(self._timers)

    def close(self, t: float) -> None:
        """The run ended at `t`: the service scales to zero; bill every worker."""
        self._expire(t)
        for w in list(self.workers):
            self._stop(w, max(t, w.born))


class Machine:
    """Functions + containers under one platform; outcomes of started jobs."""

    def __init__(self, platform: Platform, usage: Usage | None = None) -> None:
        self.platform = platform
        self.usage = usage if usage is not None else Usage()
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

    def peek(self) -> object:
        return self._heap[0][2]

    def __len__(self) -> int:
        return len(self._heap)
