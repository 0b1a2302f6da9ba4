"""The coordinator: one event handler, as the coordinator Lambda runs it.

`Coordinator.handle(events)` reads and writes only through the StateStore's conditional
operations and returns the instructions (launch, schedule, kill, run finished) for the shell
around it to apply: SQS + Lambda + ECS in the cloud, pools and timers locally.

Safe with duplicates, reordering and several instances handling the same run at once:

    coordinator A                     store                      coordinator B
    succeeded(t1, attempt 1) --> t1 RUNNING->SUCCEEDED (ok)
                                                   <-- succeeded(t1, attempt 1) (duplicate)
                                 t1 RUNNING->SUCCEEDED fails: state is SUCCEEDED, same attempt
    complete_parent(t1, [c])  --> c.pending 1->0, c READY          B re-runs complete_parent:
                                                                   (t1, c) already counted, no-op,
    dispatch c: READY->DISPATCHED (ok) -> Launch                   returns c READY; dispatch
                                                                   READY->DISPATCHED fails: no-op

Every step is idempotent, so a coordinator that crashes between two writes is repaired by the
redelivery of the event it was handling (SQS re-delivers an unacknowledged batch).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from msgspec import Struct, field
from msgspec.structs import replace

from chalicelib.attempt import AttemptResult
from chalicelib.engine import events as ev
from chalicelib.engine import transitions as tr
from chalicelib.engine.backoff import Backoff
from chalicelib.engine.lifecycle import NOT_OK, RESUMING, reset_task
from chalicelib.engine.ports import Clock, StateStore, SystemClock
from chalicelib.engine.records import TaskRecord, Try
from chalicelib.engine.sizing import capped_to_largest, next_function_memory
from chalicelib.engine.spec import RunSpec, SpecCache
from chalicelib.engine.states import (
    DONE_OK,
    IN_FLIGHT,
    SPILL_REASONS,
    TERMINAL_TASK,
    Reason,
    RunState,
    TaskState,
)
from chalicelib.errors import NotFoundError
from chalicelib.workflow import limits
from chalicelib.workflow.graph import descendants
from chalicelib.workflow.model import Placement, Task

Instructions = list[ev.Launch | ev.Schedule | ev.Kill | ev.RunFinished]
LIVE = [s for s in TaskState if s not in TERMINAL_TASK]


class CoordinatorConfig(Struct, frozen=True):
    backoff: Backoff = field(default_factory=Backoff)
    lease_grace_s: float = tr.FUNCTION_LEASE_GRACE_S  # added to a function task's timeout for its dispatch lease
    # How long an invoked function attempt may wait in the platform's own queue before it
    # starts (Lambda's async queue under throttling: MaximumEventAgeInSeconds). Until it is
    # claimed, a DISPATCHED function attempt's lease is the longer of this and its timeout, plus
    # the grace: waiting there is not a lost function. 0: it starts at once (local pools).
    function_queue_s: float = 0.0
    container_queue_lease_s: float = 6 * 3600.0  # a container task may wait in the queue this long
    min_schedule_s: float = 0.001  # retries due sooner than this are dispatched at once
    lost_worker_retries: int = 2  # extra attempts when a worker or function vanished (lease expired)
    # The most work one event does (tasks dispatched by a Start, edges counted for a completion's
    # children, tasks cancelled); more is left to a continuation event: one invocation stays well
    # inside the coordinator's 60 s whatever the run's width.
    start_batch: int = 256
    function_sizes: tuple[int, ...] = ()  # deployed task function sizes (MB): OOM retries step through them


class Coordinator:
    def __init__(
        self,
        store: StateStore,
        specs: SpecCache,
        clock: Clock | None = None,
        config: CoordinatorConfig | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.specs = specs
        self.clock = clock or SystemClock()
        self.config = config or CoordinatorConfig()
        self.rng = rng or random.Random()
        self._handlers: dict[type[ev.Event], Callable[[Any, Instructions, set[str]], None]] = {
            ev.Start: self._on_start,
            ev.TaskStarted: self._on_started,
            ev.Heartbeat: self._on_heartbeat,
            ev.TaskFailed: self._on_failed,
            ev.LeaseExpired: self._on_lease_expired,
            ev.DispatchDue: self._on_dispatch_due,
            ev.Cancel: self._on_cancel,
            ev.Resume: self._on_resume,
            ev.ReadyChildren: self._on_ready_children,
        }

    # ---- entry point --------------------------------------------------------------------

    def handle(self, batch: Iterable[ev.Event]) -> Instructions:
        """Apply a batch of events; returns what to launch, schedule, kill or report."""
        out: Instructions = []
        touched: set[str] = set()
        with self.store.batch():
            for item in _completions_grouped(batch):
                if isinstance(item, list):  # completions (in a row: their writes grouped)
                    self._on_succeeded_many(item, out, touched)
                else:
                    self._handlers[type(item)](item, out, touched)
            launched = {i.run_id for i in out if isinstance(i, ev.Launch)}
            for run_id in sorted(touched - launched):  # a run that just launched a task is not done
                self._maybe_finish(run_id, out)
        return out

    # ---- handlers -----------------------------------------------------------------------

    def _on_start(self, e: ev.Start, out: Instructions, touched: set[str]) -> None:
        run = self.store.get_run(e.run_id)
        if run.state is not RunState.RUNNING or RESUMING in run.options:
            return  # a resume's last window starts it
        now = self.clock.now()
        # In windows: the first tasks start at once rather than after every READY task of a wide
        # workflow is dispatched, and one invocation never has to dispatch 100,000 tasks. Each
        # window reads one page of READY tasks after the previous window's position.
        page = self.store.page_tasks(e.run_id, [TaskState.READY], limit=self.config.start_batch, after=e.after)
        due: list[TaskRecord] = []
        for rec in page.tasks:
            if rec.not_before is not None and rec.not_before - now > self.config.min_schedule_s:
                # waiting out a retry's back-off: its own DispatchDue (a repeated one is a no-op)
                out.append(ev.Schedule(ev.DispatchDue(e.run_id, rec.task_id, rec.attempt), rec.not_before - now))
            else:
                due.append(rec)
        self._dispatch_many(e.run_id, due, out)
        if page.after is not None:
            out.append(ev.Schedule(ev.Start(e.run_id, after=page.after), 0.0))
        touched.add(e.run_id)  # a run whose tasks were all cached finishes here

    def _on_started(self, e: ev.TaskStarted, out: Instructions, touched: set[str]) -> None:
        tr.claim(self.store, e.run_id, e.task_id, e.attempt, e.at, e.lease_s)  # refused: a duplicate

    def _on_heartbeat(self, e: ev.Heartbeat, out: Instructions, touched: set[str]) -> None:
        tr.renew(self.store, e.run_id, e.task_id, e.attempt, self.clock.now() + e.lease_s)

    def _on_succeeded_many(self, events: Sequence[ev.TaskSucceeded], out: Instructions, touched: set[str]) -> None:
        """Completions of one run: their state writes in one call, their children counted in
        one call, then the children they readied dispatched in one call."""
        run_id = events[0].run_id
        now = self.clock.now()
        records = tr.finish(self.store, run_id, [(e.task_id, e.attempt, e.cached, e.result, now) for e in events])
        spec = self.specs.get(run_id)
        completions: list[tuple[str, Sequence[str]]] = []
        for e, rec in zip(events, records, strict=True):
            if isinstance(rec, tr.Refused):
                # A redelivered completion of the attempt that won: finish its propagation, which
                # a crashed coordinator may have left half done. Anything else is a stale no-op.
                try:
                    cur = self.store.get_task(run_id, e.task_id)
                except NotFoundError:
                    continue
                if not (cur.state in DONE_OK and cur.attempt == e.attempt):
                    continue
            touched.add(run_id)
            children = spec.graph.children.get(e.task_id, ())
            if children:
                completions.append((e.task_id, children))
        if completions:
            self._count_children(run_id, completions, out)

    def _count_children(self, run_id: str, completions: Sequence[tuple[str, Sequence[str]]],
                        out: Instructions, offset: int = 0) -> None:
        """Count the completions for their children (from `offset` on in each parent's list) and
        dispatch those that become READY, at most `start_batch` edges in this step; the rest of a
        parent's children go to a ReadyChildren continuation (a task with 10,000 children is
        40 small steps, each well inside the coordinator's time)."""
        budget = self.config.start_batch
        now: list[tuple[str, Sequence[str]]] = []
        for parent, children in completions:
            left = children[offset:]
            take = left[:max(0, budget)]
            budget -= len(take)
            if take:
                now.append((parent, take))
            if len(take) < len(left):
                out.append(ev.Schedule(ev.ReadyChildren(run_id, parent, offset + len(take)), 0.0))
        if now:
            self._dispatch_many(run_id, tr.ready_children(self.store, run_id, now), out)

    def _on_ready_children(self, e: ev.ReadyChildren, out: Instructions, touched: set[str]) -> None:
        if self.store.get_run(e.run_id).state is not RunState.RUNNING:
            return  # cancelled or failed meanwhile: nothing more to start
        # (During a resume it goes on: a child reset before this parent succeeded still needs
        # the edge counted; one reset after it has the edge among its done parents already.)
        try:
            parent = self.store.get_task(e.run_id, e.parent_id)
        except NotFoundError:
            return
        if parent.state not in DONE_OK:
            return  # not a completion's continuation (a stale or forged event)
        children = self.specs.get(e.run_id).graph.children.get(e.parent_id, ())
        self._count_children(e.run_id, [(e.parent_id, children)], out, offset=max(0, e.offset))
        touched.add(e.run_id)

    def _on_failed(self, e: ev.TaskFailed, out: Instructions, touched: set[str]) -> None:
        self._fail(e.run_id, e.task_id, e.attempt, e.reason, e.result, out, touched)

    def _on_lease_expired(self, e: ev.LeaseExpired, out: Instructions, touched: set[str]) -> None:
        # Only a task that is not there is a no-op: any other store error propagates, so the
        # event is redelivered rather than acknowledged and lost.
        try:
            rec = self.store.get_task(e.run_id, e.task_id)
        except NotFoundError:
            return
        now = self.clock.now()
        if rec.state not in IN_FLIGHT or rec.attempt != e.attempt:
            return
        if rec.lease_expires is not None and rec.lease_expires > now:
            return  # a heartbeat extended it after the sweeper looked
        result = AttemptResult(log_tail="the task's lease expired: its worker or function stopped reporting")
        self._fail(e.run_id, e.task_id, e.attempt, Reason.LEASE_EXPIRED, result, out, touched)

    def _on_dispatch_due(self, e: ev.DispatchDue, out: Instructions, touched: set[str]) -> None:
        rec = self.store.get_task(e.run_id, e.task_id)
        if rec.state is TaskState.READY and rec.attempt == e.attempt:
            self._dispatch(rec, out)

    def _on_cancel(self, e: ev.Cancel, out: Instructions, touched: set[str]) -> None:
        """The run CANCELLED, then its live tasks a window at a time (each in-flight one
        killed); the window that finds none left reports the run finished."""
        now = self.clock.now()
        if e.after is None:
            run = tr.cancel_run(self.store, e.run_id, now)
            if isinstance(run, tr.Refused) and getattr(run.current, "state", None) is not RunState.CANCELLED:
                return  # finished before the cancel (a redelivered Cancel goes on: its tasks may be left)
        elif self.store.get_run(e.run_id).state is not RunState.CANCELLED:
            return  # resumed since: the rest of its tasks are live again by right
        page = self.store.page_tasks(e.run_id, LIVE, limit=self.config.start_batch, after=e.after)
        for rec in page.tasks:
            done = self._cancel_one(rec, now)
            if done is not None and done.state in IN_FLIGHT:
                out.append(ev.Kill(e.run_id, done.task_id, done.attempt, done.placement))
        if page.after is not None:
            out.append(ev.Schedule(ev.Cancel(e.run_id, after=page.after), 0.0))
        else:
            out.append(ev.RunFinished(e.run_id, RunState.CANCELLED.value))

    def _on_resume(self, e: ev.Resume, out: Instructions, touched: set[str]) -> None:
        """Reset a window of the tasks of a run being resumed (`lifecycle.begin_resume`); the
        window that finds none left ends the resume and starts the run. A window of another
        resume, a duplicate after the end, or one of a run cancelled meanwhile does nothing; a
        duplicate during the resume resets its tasks again, which changes nothing."""
        run = self.store.get_run(e.run_id)
        if run.state is not RunState.RUNNING or run.options.get(RESUMING) != e.token:
            return
        spec = self.specs.get(e.run_id)
        done: dict[str, bool] = {}

        def parent_done(task_id: str) -> bool:
            if task_id not in done:
                try:
                    done[task_id] = self.store.get_task(e.run_id, task_id).state in DONE_OK
                except NotFoundError:
                    done[task_id] = False
            return done[task_id]

        page = self.store.page_tasks(e.run_id, NOT_OK, limit=self.config.start_batch, after=e.after)
        for rec in page.tasks:
            reset_task(self.store, spec, rec, parent_done)
        if page.after is not None:
            out.append(ev.Schedule(ev.Resume(e.run_id, e.token, after=page.after), 0.0))
        elif not isinstance(tr.end_resume(self.store, run), tr.Refused):
            out.append(ev.Schedule(ev.Start(e.run_id), 0.0))

    def _cancel_one(self, rec: TaskRecord, now: float, tries: int = 3) -> TaskRecord | None:
        """Cancel a live task as read, reading it again if it moved meanwhile (a dispatch or a
        claim); returns the record as it was when cancelled, None if it ended by itself."""
        for _ in range(tries):
            if rec.state in TERMINAL_TASK:
                return None
            if not isinstance(tr.cancel_live(self.store, rec, now), tr.Refused):
                return rec
            try:
                rec = self.store.get_task(rec.run_id, rec.task_id)
            except NotFoundError:
                return None
        return None

    # ---- steps --------------------------------------------------------------------------

    def _fail(
        self, run_id: str, task_id: str, attempt: int, reason: str, result: AttemptResult,
        out: Instructions, touched: set[str],
    ) -> None:
        spec = self.specs.get(run_id)
        task = spec.tasks[task_id]
        try:
            rec = self.store.get_task(run_id, task_id)
        except NotFoundError:
            return  # (any other store error propagates: the event is redelivered, not lost)
        if rec.attempt != attempt:
            return  # a late event from an older attempt
        if rec.state is TaskState.FAILED:
            self._mark_upstream_failed(run_id, spec, task_id)  # redelivery: finish propagation
            touched.add(run_id)
            return
        if rec.state not in IN_FLIGHT:
            return
        now = self.clock.now()
        bigger = next_function_memory(self.config.function_sizes, task, rec, reason)
        spill = (reason in SPILL_REASONS and rec.placement == "function" and task.placement is Placement.AUTO
                 and bigger is None)
        # A vanished worker is not the task's fault: it gets extra attempts of its own, bounded so
        # that a task that kills every worker it lands on still ends FAILED.
        lost = reason == Reason.LEASE_EXPIRED and rec.lost_workers < self.config.lost_worker_retries
        escalated = self._escalate(task, rec, reason) if spill or reason in SPILL_REASONS else None
        if bigger is not None:  # the next deployed function size, not a doubling
            escalated = {**(escalated or {}), **bigger}
        elif rec.placement == "function" and not spill:
            escalated = capped_to_largest(self.config.function_sizes, task, escalated)
        # every attempt before the record's current one, for the report (times by the runner's clock)
        started = result.started_at
        if started is None and rec.state is TaskState.RUNNING:
            started = rec.started_at
        this_try = Try(attempt, str(reason), rec.placement, started_at=started, finished_at=result.finished_at,
                       duration_s=result.duration_s)
        book = tr.Bookkeeping(lost_workers=rec.lost_workers + (1 if lost else 0),
                              resources=escalated or rec.resources, tries=rec.tries)
        step = spill or bigger is not None  # our size was wrong: not the task's failure
        if step or lost or attempt < rec.max_attempts:
            failures = attempt - (rec.max_attempts - task.retries - 1)
            delay = 0.0 if step else self.config.backoff.delay(max(1, failures), self.rng)
            new = tr.retry(
                self.store, rec, reason=reason, result=result, not_before=now + delay,
                placement="container" if spill else rec.placement,
                max_attempts=rec.max_attempts + (1 if step or lost else 0),
                book=replace(book, tries=(*rec.tries, this_try)),
            )
            if isinstance(new, tr.Refused):
                return
            if delay > self.config.min_schedule_s:
                out.append(ev.Schedule(ev.DispatchDue(run_id, task_id, attempt + 1), delay))
            else:
                self._dispatch(new, out)
            return
        # this attempt's own start and end (by the runner's clock), not an earlier one's
        ended = now if this_try.finished_at is None else this_try.finished_at
        if isinstance(tr.fail(self.store, run_id, task_id, attempt, reason=reason, result=result, now=ended,
                              started_at=this_try.started_at, book=book), tr.Refused):
            return
        touched.add(run_id)
        self._mark_upstream_failed(run_id, spec, task_id)

    @staticmethod
    def _escalate(task: Task, rec: TaskRecord, reason: str) -> dict[str, float] | None:
        """Bigger memory or disk for the next attempt after running out of it (capped by the
        container's limits); None when there is nothing to grow."""
        current = {**task.resources.to_dict(), **rec.resources}
        grown = dict(current)
        if reason == Reason.OOM:
            grown["memory_mb"] = min(2 * current["memory_mb"], limits.CONTAINER.max_memory_mb)
        elif reason == Reason.DISK_QUOTA:
            grown["disk_mb"] = min(2 * current["disk_mb"], limits.CONTAINER.max_disk_mb)
        return {k: v for k, v in grown.items() if v != task.resources.to_dict()[k]} or None

    def _mark_upstream_failed(self, run_id: str, spec: RunSpec, task_id: str) -> None:
        now = self.clock.now()
        for tid in descendants(spec.graph, [task_id]):
            tr.upstream_failed(self.store, run_id, tid, task_id, now)  # refused: started or done already

    def _dispatch(self, rec: TaskRecord, out: Instructions) -> None:
        self._dispatch_many(rec.run_id, [rec], out)

    def _dispatch_many(self, run_id: str, recs: Sequence[TaskRecord], out: Instructions) -> None:
        """READY -> DISPATCHED for each (one call to the store), and a Launch for each that moved."""
        if not recs:
            return
        tasks = self.specs.get(run_id).tasks
        now = self.clock.now()
        attempts: list[tuple[str, int, float]] = []
        for rec in recs:
            if rec.placement == "function":
                waits = max(tasks[rec.task_id].resources.timeout_s, self.config.function_queue_s)
                lease = waits + self.config.lease_grace_s
            else:
                lease = self.config.container_queue_lease_s
            attempts.append((rec.task_id, rec.attempt, now + lease))
        for rec, moved in zip(recs, tr.dispatch(self.store, run_id, attempts), strict=True):
            if not isinstance(moved, tr.Refused):
                out.append(ev.Launch(rec.run_id, rec.task_id, rec.attempt, rec.placement, dict(rec.resources)))

    def _maybe_finish(self, run_id: str, out: Instructions) -> None:
        counts = self.store.counts(run_id)
        if any(n for state, n in counts.items() if TaskState(state) not in TERMINAL_TASK):
            return
        if RESUMING in self.store.get_run(run_id).options:
            return  # its tasks are being reset: not finished, whatever they were
        counts = self.store.counts(run_id)  # a resume that ended since the first read has reset some
        if any(n for state, n in counts.items() if TaskState(state) not in TERMINAL_TASK):
            return
        bad = sum(n for state, n in counts.items() if TaskState(state) not in DONE_OK)
        final = RunState.FAILED if bad else RunState.SUCCEEDED
        if isinstance(tr.finish_run(self.store, run_id, final, self.clock.now()), tr.Refused):
            return
        out.append(ev.RunFinished(run_id, final.value))


def _completions_grouped(events: Iterable[ev.Event]) -> Iterator[ev.Event | list[ev.TaskSucceeded]]:
    """The events in order, with each run of consecutive completions of one run as a list."""
    group: list[ev.TaskSucceeded] = []
    for event in events:
        if group and not (isinstance(event, ev.TaskSucceeded) and event.run_id == group[0].run_id):
            yield group
            group = []
        if isinstance(event, ev.TaskSucceeded):
            group.append(event)
        else:
            yield event
    if group:
        yield group
