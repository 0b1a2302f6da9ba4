"""A discrete-event simulation of a run on the modelled cloud, driving the real engine.

The coordinator is chalicelib.engine's `Coordinator`, over a `SqliteStateStore(":memory:")` and
an in-memory blob store, on a simulated `Clock`. Its instructions go to the modelled machine
(machine.py): launches become function invocations or container-queue messages that the pools
start after their latencies; each started attempt reports TaskStarted, then TaskSucceeded or
TaskFailed (TIMEOUT, OOM, DISK_QUOTA when the model says it outgrows its slot) back to the
coordinator after the event latency. Retries, backoff, spills of `auto` tasks to containers,
upstream failures and the sweeper's lease expiry are the engine's own, so the simulation shows
what Updraft would do, not what a plan hopes for.

Cost is the machine's (function GB-s, requests, Fargate worker lifetimes) plus the control plane
counted from the coordinator's actual store calls and messages.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, cast

from msgspec import Struct, field
from msgspec.structs import replace

from chalicelib.attempt import AttemptResult
from chalicelib.backends.local.sqlite_state import SqliteStateStore
from chalicelib.engine import events as ev
from chalicelib.engine.coordinator import Coordinator, CoordinatorConfig
from chalicelib.engine.lifecycle import create_run
from chalicelib.engine.records import RunRecord, TaskPage, TaskRecord
from chalicelib.engine.spec import RunSpec, SpecCache
from chalicelib.engine.states import IN_FLIGHT, TERMINAL_TASK, RunState, TaskState
from chalicelib.errors import ConfigError, NotFoundError
from chalicelib.planner.costs import ControlPlane, Cost, dollars
from chalicelib.planner.estimate import Problem
from chalicelib.planner.machine import EventHeap, Machine, Start, Usage
from chalicelib.planner.perfmodel import PerfModel
from chalicelib.planner.plans import Choice, Plan, apply_plan
from chalicelib.planner.platform import Platform
from chalicelib.workflow.limits import DeployedSizes
from chalicelib.workflow.model import Workflow

RUN_ID = "sim"
STALE = "STALE"  # a container message whose attempt is no longer current: dropped unrun
LIST_ITEM_BYTES = 300  # a task item as the coordinator reads it (for read units of a query)


class SimClock:
    """The Clock port on simulated time."""

    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> float:
        return self.t


class MemoryBlobStore:
    """The BlobStore port in a dict (the run's spec is all the coordinator stores)."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}

    def put_bytes(self, key: str, data: bytes) -> None:
        self.data[key] = bytes(data)

    def get_bytes(self, key: str) -> bytes:
        try:
            return self.data[key]
        except KeyError:
            raise NotFoundError(f"no blob {key!r}") from None

    def put_file(self, key: str, path: str, move: bool = False) -> int:
        with open(path, "rb") as fh:
            self.data[key] = fh.read()
        return len(self.data[key])

    def get_file(self, key: str, dest: str) -> int:
        data = self.get_bytes(key)
        with open(dest, "wb") as fh:
            fh.write(data)
        return len(data)

    def exists(self, key: str) -> bool:
        return key in self.data

    def size(self, key: str) -> int:
        return len(self.get_bytes(key))

    def list(self, prefix: str) -> Iterator[str]:
        return iter(sorted(k for k in self.data if k.startswith(prefix)))

    def delete_prefix(self, prefix: str) -> int:
        doomed = [k for k in self.data if k.startswith(prefix)]
        for k in doomed:
            del self.data[k]
        return len(doomed)


class CountingStore:
    """A StateStore that counts what the same calls would cost on DynamoDB (on-demand units)."""

    def __init__(self, inner: SqliteStateStore) -> None:
        self.inner = inner
        self.write_units = 0.0
        self.read_units = 0.0

    def create_run(self, run: RunRecord, tasks: Sequence[TaskRecord]) -> None:
        self.write_units += 1 + len(tasks)
        self.inner.create_run(run, tasks)

    def get_run(self, run_id: str) -> RunRecord:
        self.read_units += 1
        return self.inner.get_run(run_id)

    def list_runs(self, limit: int = 50, state: RunState | None = None) -> list[RunRecord]:
        return self.inner.list_runs(limit, state)

    def update_run(self, run_id: str, expect: Collection[RunState], changes: Mapping[str, Any]) -> RunRecord:
        self.write_units += 1
        return self.inner.update_run(run_id, expect, changes)

    def delete_run(self, run_id: str, expect: Collection[RunState]) -> RunRecord:
        self.write_units += 1 + self.inner.get_run(run_id).task_count
        return self.inner.delete_run(run_id, expect)

    def get_task(self, run_id: str, task_id: str) -> TaskRecord:
        self.read_units += 1
        return self.inner.get_task(run_id, task_id)

    def list_tasks(
        self, run_id: str, states: Collection[TaskState] | None = None, limit: int | None = None,
    ) -> list[TaskRecord]:
        out = self.inner.list_tasks(run_id, states, limit)
        self.read_units += max(1, math.ceil(len(out) * LIST_ITEM_BYTES / 4096))
        return out

    def iter_tasks(self, run_id: str, states: Collection[TaskState] | None = None) -> Iterator[TaskRecord]:
        return iter(self.list_tasks(run_id, states))

    def page_tasks(
        self, run_id: str, states: Collection[TaskState] | None = None, limit: int = 256,
        after: str | None = None,
    ) -> TaskPage:
        page = self.inner.page_tasks(run_id, states, limit, after)
        self.read_units += max(1, math.ceil(len(page.tasks) * LIST_ITEM_BYTES / 4096))
        return page

    def update_task(
        self, run_id: str, task_id: str, expect_states: Collection[TaskState], expect_attempt: int | None,
        changes: Mapping[str, Any],
    ) -> TaskRecord:
        self.write_units += 1  # a conditional write that loses still consumes its unit
        return self.inner.update_task(run_id, task_id, expect_states, expect_attempt, changes)

    def update_tasks(
        self, run_id: str, expect_states: Collection[TaskState],
        updates: Sequence[tuple[str, int | None, Mapping[str, Any]]],
    ) -> list[TaskRecord | None]:
        self.write_units += len(updates)  # one conditional write each on DynamoDB
        return self.inner.update_tasks(run_id, expect_states, updates)

    def complete_parent(self, run_id: str, parent_id: str, child_ids: Sequence[str]) -> list[TaskRecord]:
        self.write_units += len(child_ids)
        return self.inner.complete_parent(run_id, parent_id, child_ids)

    def complete_parents(self, run_id: str, completions: Sequence[tuple[str, Sequence[str]]]) -> list[TaskRecord]:
        self.write_units += sum(len(children) for _, children in completions)
        return self.inner.complete_parents(run_id, completions)

    def reset_task(
        self, run_id: str, task_id: str, state: TaskState, attempt: int, done_parents: Sequence[str],
        pending: int, max_attempts: int,
    ) -> TaskRecord:
        self.write_units += 1
        return self.inner.reset_task(run_id, task_id, state, attempt, done_parents, pending, max_attempts)

    def counts(self, run_id: str) -> dict[str, int]:
        self.read_units += 1
        return self.inner.counts(run_id)

    def expired_leases(self, now: float, limit: int = 500) -> list[TaskRecord]:
        out = self.inner.expired_leases(now, limit)
        self.read_units += max(1, math.ceil(len(out) * LIST_ITEM_BYTES / 4096))
        return out

    def batch(self) -> AbstractContextManager[None]:
        return self.inner.batch()


class SimResult(Struct, frozen=True):
    workflow: str
    plan: str
    state: str
    makespan_s: float
    cost: Cost
    usage: Usage
    control: ControlPlane
    tasks: int
    attempts: int
    spills: int
    failed: int
    events: int
    wall_s: float
    finished: Mapping[str, float] = field(default_factory=dict)  # task id -> finish time (keep_tasks)

    def summary(self) -> str:
        u = self.usage
        return "\n".join([
            f"simulated {self.workflow!r} ({self.tasks} tasks) with plan {self.plan!r}: run {self.state}",
            f"  makespan {self.makespan_s:,.1f} s   cost {dollars(self.cost.total)}  "
            f"(functions {dollars(self.cost.functions)}, containers {dollars(self.cost.containers)}, "
            f"control plane {dollars(self.cost.control)})",
            f"  {u.invocations} invocations ({u.cold_starts} cold), {u.workers_started} workers started "
            f"({u.worker_s:,.0f} worker-s); {self.attempts} attempts, {self.spills} spilled to containers, "
            f"{self.failed} not successful",
            f"  {self.events} events in {self.wall_s:.2f} s of wall time",
        ])

    def to_dict(self) -> dict[str, Any]:
        return {
            "workflow": self.workflow, "plan": self.plan, "state": self.state, "makespan_s": self.makespan_s,
            "cost": self.cost.to_dict(), "tasks": self.tasks, "attempts": self.attempts, "spills": self.spills,
            "failed": self.failed, "invocations": self.usage.invocations, "cold_starts": self.usage.cold_starts,
            "workers_started": self.usage.workers_started, "worker_s": self.usage.worker_s,
            "events": self.events, "wall_s": self.wall_s,
        }


class _Deliver(Struct, frozen=True):
    events: tuple[ev.Event, ...]


class _Submit(Struct, frozen=True):
    launch: ev.Launch


class _End(Struct, frozen=True):
    start: Start
    reason: str | None
    compute_s: float


class _Tick:
    pass


class _Flush(Struct, frozen=True):
    """The coordinator's batching window closes: Lambda invokes it with what it gathered."""

    window: int  # which window; a window emptied early by a full batch is not flushed again


class _Sweep:
    pass


MAX_NOISE = 3.0  # exp(5 sigma) is already a 3-million-fold slowdown


class Simulation:
    """One simulated run. `run()` returns its SimResult."""

    def __init__(
        self, workflow: Workflow, plan: Plan | None = None, platform: Platform | None = None,
        perf: PerfModel | None = None, noise: float = 0.0, seed: int = 0, sweeper_s: float = 60.0,
        config: CoordinatorConfig | None = None, keep_tasks: bool = False,
    ) -> None:
        self.source = workflow
        self.plan_name = plan.name if plan is not None else "as declared"
        self.workflow = apply_plan(workflow, plan) if plan is not None else workflow
        self.platform = platform or Platform()
        self.problem = Problem(self.workflow, perf or PerfModel(), self.platform)
        if not 0.0 <= noise <= MAX_NOISE:  # NaN fails too
            raise ConfigError(f"noise is the sigma of a log-normal slowdown: between 0 and {MAX_NOISE:g}, "
                              f"got {noise!r} (--noise)")
        rng = random.Random(seed)
        self.slowdown = [math.exp(rng.gauss(0.0, noise)) if noise > 0 else 1.0 for _ in self.problem.tasks]
        self.clock = SimClock()
        self.store = CountingStore(SqliteStateStore(":memory:"))
        self.blobs = MemoryBlobStore()
        spec = RunSpec.of(self.workflow)

        def unknown(run_id: str) -> RunSpec:
            raise NotFoundError(f"no run {run_id!r} in this simulation")

        self.specs = SpecCache(unknown)
        self.specs.put(RUN_ID, spec)
        config = config or CoordinatorConfig()
        if not config.function_sizes:  # out-of-memory retries step through the deployed sizes
            config = replace(config, function_sizes=self.platform.function_sizes)
        self.coordinator = Coordinator(self.store, self.specs, self.clock, config, random.Random(seed))
        self.machine = Machine(self.platform)
        self.heap = EventHeap()
        self.sweeper_s = sweeper_s
        self.keep_tasks = keep_tasks
        self.sqs_requests = 0.0
        self.s3_puts = 1.0  # the spec
        self.s3_gets = 0.0
        self.events = 0
        self.attempts = 0
        self.spills = 0
        self.first_placement: dict[str, str] = {}
        self.finished_at: float | None = None
        self.final_state = RunState.RUNNING.value
        self.gathering: list[ev.Event] = []  # events the event source mapping holds in its window
        self.window = 0
        self.coordinator_calls = 0

    # ---- the event loop ---------------------------------------------------------------------

    def run(self) -> SimResult:
        wall = time.perf_counter()
        largest = DeployedSizes(self.platform.function_sizes).function_limits()
        create_run(self.specs.get(RUN_ID), self.store, self.blobs, now=0.0, run_id=RUN_ID, function_limits=largest)
        self.heap.push(0.0, _Deliver((ev.Start(RUN_ID),)))
        if self.sweeper_s > 0:
            self.heap.push(self.sweeper_s, _Sweep())
        limit = 200 * (len(self.problem.tasks) + 10)
        steps = 0
        while len(self.heap) and self.finished_at is None:
            steps += 1
            if steps > limit:
                raise RuntimeError(f"simulation did not finish after {limit} steps (a bug: please report it)")
            t, item = self.heap.pop()
            self.clock.t = t
            if isinstance(item, _Deliver):
                batch = list(item.events)
                while self.heap.peek_time() == t and isinstance(self.heap.peek(), _Deliver):
                    batch.extend(self.heap.pop()[1].events)  # type: ignore[attr-defined]
                self._arrive(batch, t)
            elif isinstance(item, _Flush):
                if item.window == self.window:
                    batch, self.gathering = self.gathering, []
                    self.window += 1
                    self._invoke_coordinator(batch, t)
            elif isinstance(item, _Submit):
                self._started(self.machine.submit(self._job(item.launch), t))
            elif isinstance(item, _End):
                self._ended(item, t)
            elif isinstance(item, _Tick):
                self._started(self.machine.tick(t))
            elif isinstance(item, _Sweep):
                self._sweep(t)
            for tm in self.machine.timers():
                self.heap.push(tm, _Tick())
        return self._result(time.perf_counter() - wall)

    def _arrive(self, batch: list[ev.Event], t: float) -> None:
        """Events reach the coordinator's queue. As the event source mapping does: with no
        batching window, the poller hands over what it received (up to the batch size per
        invocation); with a window, it gathers until the batch is full or the window, opened
        by the first event, has passed."""
        lat = self.platform.latencies
        if lat.events_batch_window_s <= 0:
            self._invoke_coordinator(batch, t)
            return
        if not self.gathering:
            self.heap.push(t + lat.events_batch_window_s, _Flush(self.window))
        self.gathering.extend(batch)
        size = max(1, lat.events_batch_size)
        if len(self.gathering) >= size:
            full = len(self.gathering) - len(self.gathering) % size
            batch, self.gathering = self.gathering[:full], self.gathering[full:]
            if not self.gathering:
                self.window += 1  # its timer is void; the next event opens a new window
            self._invoke_coordinator(batch, t)

    def _invoke_coordinator(self, batch: list[ev.Event], t: float) -> None:
        if not batch:
            return
        size = max(1, self.platform.latencies.events_batch_size)
        for i in range(0, len(batch), size):
            self.coordinator_calls += 1
            self._handle(batch[i:i + size], t)

    def _handle(self, batch: list[ev.Event], t: float) -> None:
        self.events += len(batch)
        self.sqs_requests += 3 * len(batch)  # send, receive, delete
        out = self.coordinator.handle(batch)
        done = t + self.platform.latencies.coordinator_s
        for ins in out:
            if isinstance(ins, ev.Launch):
                self.attempts += 1
                first = self.first_placement.setdefault(ins.task_id, ins.placement)
                self.spills += first == "function" and ins.placement != "function"
                if ins.placement == "function":
                    self.heap.push(done + self.platform.latencies.invoke_s, _Submit(ins))
                else:
                    self.sqs_requests += 3  # the container queue's message
                    self.heap.push(done, _Submit(ins))
            elif isinstance(ins, ev.Schedule):
                self.heap.push(done + ins.delay_s, _Deliver((ins.event,)))
            elif isinstance(ins, ev.RunFinished):
                self.finished_at = done
                self.final_state = ins.state

    def _job(self, launch: ev.Launch) -> Any:
        i = self.problem.index[launch.task_id]
        res = self.problem.tasks[i].resources
        memory = int(launch.resources.get("memory_mb", res.memory_mb))
        if launch.placement == "function":  # the deployed function that holds it, as in the cloud
            memory = self.platform.function_size_for(memory)
        choice = Choice(launch.placement, memory, res.cpus, res.disk_mb)
        return self.problem.job(i, choice, self.slowdown[i], key=(launch.task_id, launch.attempt))

    def _started(self, starts: list[Start]) -> None:
        lat = self.platform.latencies
        for start in starts:
            task_id, attempt = cast(tuple[str, int], start.job.key)
            if start.job.placement != "function" and not self._claim(task_id, attempt):
                self.heap.push(start.at, _End(start, STALE, 0.0))  # the worker drops the message
                continue
            started = ev.TaskStarted(RUN_ID, task_id, attempt, start.at, start.job.timeout_s + 60.0)
            self.heap.push(start.at + lat.event_s, _Deliver((started,)))
            out = self.machine.outcome(start)
            self.heap.push(out.end, _End(start, out.reason, out.compute_s))

    def _claim(self, task_id: str, attempt: int) -> bool:
        """A container worker claims the attempt before running it (a conditional write); a
        message of an attempt that is no longer current is dropped."""
        self.store.write_units += 1
        rec = self.store.inner.get_task(RUN_ID, task_id)
        return rec.attempt == attempt and rec.state in IN_FLIGHT

    def _ended(self, item: _End, t: float) -> None:
        start = item.start
        job = start.job
        task_id, attempt = cast(tuple[str, int], job.key)
        self._started(self.machine.finish(job.key, t))
        if item.reason == STALE:
            return
        self.s3_gets += job.objects_in
        demand = job.demand
        result = AttemptResult(
            exit_code=0 if item.reason is None else None, started_at=start.at, finished_at=t,
            duration_s=round(t - start.at, 6), bytes_in=int(demand.bytes_in), peak_rss_mb=demand.peak_mb,
            bytes_out=int(demand.bytes_out) if item.reason is None else 0,
            compute_s=item.compute_s if self.keep_tasks else None,
        )
        event: ev.Event
        if item.reason is None:
            self.s3_puts += job.objects_out + 1  # outputs and the log
            event = ev.TaskSucceeded(RUN_ID, task_id, attempt, result)
        else:
            self.s3_puts += 1
            slot = f"{start.memory_mb} MB, {start.vcpus:g} vCPU"
            result = replace(result, log_tail=f"simulated {item.reason} on a {job.placement} ({slot})")
            event = ev.TaskFailed(RUN_ID, task_id, attempt, item.reason, result)
        self.heap.push(t + self.platform.latencies.event_s, _Deliver((event,)))

    def _sweep(self, t: float) -> None:
        expired = self.store.expired_leases(t)
        if expired:
            events = tuple(ev.LeaseExpired(r.run_id, r.task_id, r.attempt) for r in expired)
            self.heap.push(t, _Deliver(events))
        self.heap.push(self._next_sweep(t, bool(expired)), _Sweep())

    def _next_sweep(self, t: float, found: bool) -> float:
        """When the next sweep is due. Sweeps that could find nothing (no lease ends and no
        other event happens before them) are skipped, and counted as the empty reads they
        would have been: a task that runs for weeks would otherwise take a step per minute of
        simulated time and never reach the end of the step budget."""
        due = t + self.sweeper_s
        upcoming = self.heap.peek_time()
        if found or upcoming is None or upcoming <= due:
            return due
        leases = [r.lease_expires for r in self.store.inner.list_tasks(RUN_ID) if r.lease_expires is not None]
        horizon = min([upcoming, *leases])
        if horizon <= due:
            return due
        skipped = math.ceil((horizon - t) / self.sweeper_s) - 1
        self.store.read_units += skipped  # each would have been one empty query
        return t + (skipped + 1) * self.sweeper_s

    def _result(self, wall_s: float) -> SimResult:
        end = self.finished_at if self.finished_at is not None else self.clock.t
        usage = self.machine.close(end)
        records = self.store.inner.list_tasks(RUN_ID)
        control = ControlPlane(
            write_units=self.store.write_units, read_units=self.store.read_units,
            sqs_requests=self.sqs_requests, s3_puts=self.s3_puts, s3_gets=self.s3_gets,
        )
        cost = Cost.of(usage.function_cost, usage.container_cost, control, self.platform.prices)
        failed = sum(1 for r in records if r.state not in (TaskState.SUCCEEDED, TaskState.CACHED))
        finished = {r.task_id: r.finished_at for r in records
                    if self.keep_tasks and r.state in TERMINAL_TASK and r.finished_at is not None}
        return SimResult(
            workflow=self.source.name, plan=self.plan_name, state=self.final_state, makespan_s=end, cost=cost,
            usage=usage, control=control, tasks=len(records), attempts=self.attempts, spills=self.spills,
            failed=failed, events=self.events, wall_s=wall_s, finished=finished,
        )


def simulate(
    workflow: Workflow, plan: Plan | None = None, platform: Platform | None = None, perf: PerfModel | None = None,
    noise: float = 0.0, seed: int = 0, keep_tasks: bool = False, config: CoordinatorConfig | None = None,
) -> SimResult:
    """Simulate `workflow` run as `plan` places it (as declared when None); see the module doc."""
    return Simulation(workflow, plan, platform, perf, noise=noise, seed=seed, keep_tasks=keep_tasks,
                      config=config).run()
