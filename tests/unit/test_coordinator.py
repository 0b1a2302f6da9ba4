"""The state machine, driven event by event through the real coordinator and SQLite store."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from chalicelib.attempt import AttemptResult
from chalicelib.backends.local.fs_blobs import FsBlobStore
from chalicelib.backends.local.sqlite_state import SqliteStateStore
from chalicelib.engine import events as ev
from chalicelib.engine.backoff import Backoff
from chalicelib.engine.coordinator import Coordinator, CoordinatorConfig, _completions_grouped
from chalicelib.engine.lifecycle import create_run, resume_run
from chalicelib.engine.spec import RunSpec, SpecCache
from chalicelib.engine.states import RunState, TaskState
from chalicelib.workflow.formats import loads


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def now(self) -> float:
        return self.t


class Harness:
    def __init__(self, tmp: Path, tasks: list[dict]) -> None:
        self.store = SqliteStateStore(":memory:")
        self.blobs = FsBlobStore(str(tmp / "blobs"))
        self.clock = FakeClock()
        spec = RunSpec.of(loads(json.dumps({"name": "t", "tasks": tasks})))
        self.run = create_run(spec, self.store, self.blobs, self.clock.now())
        self.rid = self.run.run_id
        self.co = Coordinator(self.store, SpecCache.from_blobs(self.blobs), self.clock,
                              CoordinatorConfig(backoff=Backoff(1.0, 8.0)), random.Random(1))

    def handle(self, *events: ev.Event) -> list:
        return self.co.handle(list(events))

    def start(self) -> list:
        return self.handle(ev.Start(self.rid))

    def ok(self, tid: str, attempt: int = 1) -> list:
        return self.handle(ev.TaskSucceeded(self.rid, tid, attempt, AttemptResult(exit_code=0)))

    def fail(self, tid: str, attempt: int = 1, reason: str = "NONZERO_EXIT") -> list:
        return self.handle(ev.TaskFailed(self.rid, tid, attempt, reason, AttemptResult(exit_code=1)))

    def state(self, tid: str) -> TaskState:
        return self.store.get_task(self.rid, tid).state

    def run_state(self) -> RunState:
        return self.store.get_run(self.rid).state


def launched(instrs: list) -> list[str]:
    return sorted(i.task_id for i in instrs if isinstance(i, ev.Launch))


def T(tid: str, after: tuple[str, ...] = (), **kw: object) -> dict:
    return {"id": tid, "command": ["true"], "after": list(after), **kw}


def test_fan_in_child_dispatched_once_when_last_parent_finishes(tmp_path: Path) -> None:
    h = Harness(tmp_path, [T("a"), T("b"), T("c", ("a", "b"))])
    assert launched(h.start()) == ["a", "b"]
    assert launched(h.ok("a")) == []
    assert h.state("c") is TaskState.WAITING
    assert launched(h.ok("b")) == ["c"]
    assert h.state("c") is TaskState.DISPATCHED
    out = h.ok("c")
    assert ev.RunFinished(h.rid, "SUCCEEDED") in out
    assert h.run_state() is RunState.SUCCEEDED


def test_duplicate_and_late_events_are_no_ops(tmp_path: Path) -> None:
    h = Harness(tmp_path, [T("a"), T("b", ("a",))])
    h.start()
    h.handle(ev.TaskStarted(h.rid, "a", 1, 1000.0, 60))
    assert launched(h.ok("a")) == ["b"]
    # the same completion again, and a started event arriving after completion
    assert launched(h.ok("a")) == []
    h.handle(ev.TaskStarted(h.rid, "a", 1, 1000.0, 60))
    assert h.state("a") is TaskState.SUCCEEDED
    assert h.store.get_task(h.rid, "b").attempt == 1 and h.state("b") is TaskState.DISPATCHED
    # a failure event for a task that already succeeded changes nothing
    h.fail("a")
    assert h.state("a") is TaskState.SUCCEEDED


def test_retry_with_backoff_then_success(tmp_path: Path) -> None:
    h = Harness(tmp_path, [T("a", retries=2)])
    h.start()
    out = h.fail("a")
    sched = [i for i in out if isinstance(i, ev.Schedule)]
    assert len(sched) == 1 and 0.5 <= sched[0].delay_s <= 1.0
    assert sched[0].event == ev.DispatchDue(h.rid, "a", 2)
    rec = h.store.get_task(h.rid, "a")
    assert (rec.state, rec.attempt, rec.reason) == (TaskState.READY, 2, "NONZERO_EXIT")
    # a late failure of attempt 1 is ignored
    h.fail("a", 1)
    assert h.store.get_task(h.rid, "a").attempt == 2
    assert launched(h.handle(sched[0].event)) == ["a"]
    out2 = h.fail("a", 2)
    delay2 = next(i for i in out2 if isinstance(i, ev.Schedule)).delay_s
    assert 1.0 <= delay2 <= 2.0  # exponential
    h.handle(ev.DispatchDue(h.rid, "a", 3))
    h.ok("a", 3)
    assert h.run_state() is RunState.SUCCEEDED


def test_permanent_failure_marks_descendants_and_independent_branch_continues(tmp_path: Path) -> None:
    h = Harness(tmp_path, [T("a"), T("b", ("a",)), T("c", ("b",)), T("x"), T("y", ("x",))])
    h.start()
    h.fail("a")
    assert h.state("a") is TaskState.FAILED
    assert h.state("b") is TaskState.UPSTREAM_FAILED and h.state("c") is TaskState.UPSTREAM_FAILED
    assert h.run_state() is RunState.RUNNING  # x and y still to go
    assert launched(h.ok("x")) == ["y"]
    out = h.ok("y")
    assert ev.RunFinished(h.rid, "FAILED") in out
    assert h.store.counts(h.rid) == {"FAILED": 1, "UPSTREAM_FAILED": 2, "SUCCEEDED": 2}


def test_auto_task_spills_to_container_after_function_timeout(tmp_path: Path) -> None:
    h = Harness(tmp_path, [T("a", placement="auto")])
    h.start()
    assert h.store.get_task(h.rid, "a").placement == "function"
    out = h.fail("a", 1, "TIMEOUT")
    assert [(i.task_id, i.attempt, i.placement) for i in out if isinstance(i, ev.Launch)] == [("a", 2, "container")]


def test_lease_expiry_retries_only_when_lease_really_expired(tmp_path: Path) -> None:
    h = Harness(tmp_path, [T("a", retries=1)])
    h.start()
    h.handle(ev.TaskStarted(h.rid, "a", 1, h.clock.now(), 10.0))
    h.handle(ev.LeaseExpired(h.rid, "a", 1))
    assert h.state("a") is TaskState.RUNNING  # lease not over yet
    h.clock.t += 11
    h.handle(ev.LeaseExpired(h.rid, "a", 1))
    rec = h.store.get_task(h.rid, "a")
    assert (rec.state, rec.attempt, rec.reason) == (TaskState.READY, 2, "LEASE_EXPIRED")
    assert [r.task_id for r in h.store.expired_leases(h.clock.now())] == []


def test_cancel_kills_in_flight_and_cancels_the_rest(tmp_path: Path) -> None:
    h = Harness(tmp_path, [T("a"), T("b", ("a",))])
    h.start()
    out = h.handle(ev.Cancel(h.rid))
    assert [i.task_id for i in out if isinstance(i, ev.Kill)] == ["a"]
    assert h.run_state() is RunState.CANCELLED
    assert h.state("a") is TaskState.CANCELLED and h.state("b") is TaskState.CANCELLED
    assert launched(h.ok("a")) == []  # the killed attempt's late completion is ignored


def test_redelivery_repairs_a_coordinator_that_crashed_mid_propagation(tmp_path: Path) -> None:
    h = Harness(tmp_path, [T("a"), T("b", ("a",)), T("c", ("a",))])
    h.start()
    # crash right after marking 'a' SUCCEEDED, before its children were counted
    h.store.update_task(h.rid, "a", [TaskState.DISPATCHED], 1, {"state": TaskState.SUCCEEDED})
    assert launched(h.ok("a")) == ["b", "c"]  # the redelivered event finishes the job
    # crash after the children became READY but before they were dispatched
    h2 = Harness(tmp_path / "2", [T("a"), T("b", ("a",))])
    h2.start()
    h2.store.update_task(h2.rid, "a", [TaskState.DISPATCHED], 1, {"state": TaskState.SUCCEEDED})
    h2.store.complete_parent(h2.rid, "a", ["b"])
    assert h2.state("b") is TaskState.READY
    assert launched(h2.ok("a")) == ["b"]
    assert launched(h2.ok("a")) == []  # and only once


def test_complete_parent_counts_each_parent_once(tmp_path: Path) -> None:
    h = Harness(tmp_path, [T("a"), T("b"), T("c", ("a", "b"))])
    h.store.complete_parent(h.rid, "a", ["c"])
    h.store.complete_parent(h.rid, "a", ["c"])
    assert h.store.get_task(h.rid, "c").pending == 1 and h.state("c") is TaskState.WAITING


def test_resume_reruns_only_what_did_not_succeed(tmp_path: Path) -> None:
    h = Harness(tmp_path, [T("a"), T("b", ("a",)), T("c", ("b",)), T("x")])
    h.start()
    h.ok("a")
    h.fail("b")
    h.ok("x")
    assert h.run_state() is RunState.FAILED
    spec = h.co.specs.get(h.rid)
    assert resume_run(h.rid, spec, h.store) == 2
    assert h.run_state() is RunState.RUNNING
    assert (h.state("a"), h.state("x")) == (TaskState.SUCCEEDED, TaskState.SUCCEEDED)
    assert h.state("b") is TaskState.READY and h.state("c") is TaskState.WAITING
    assert launched(h.start()) == ["b"]
    h.fail("b", 1)  # a late event from before the resume is fenced off by the attempt number
    assert h.state("b") is TaskState.DISPATCHED
    assert launched(h.ok("b", 2)) == ["c"]
    h.ok("c", 2)
    assert h.run_state() is RunState.SUCCEEDED


def test_resume_refuses_a_running_run(tmp_path: Path) -> None:
    h = Harness(tmp_path, [T("a")])
    from chalicelib.errors import StateConflictError

    with pytest.raises(StateConflictError, match="still RUNNING"):
        resume_run(h.rid, h.co.specs.get(h.rid), h.store)


def test_random_event_storm_ends_consistent(tmp_path: Path) -> None:
    """Duplicates and reordering of every completion: each task ends in one terminal state."""
    rng = random.Random(7)
    tasks = [T(f"t{i}", tuple(f"t{j}" for j in rng.sample(range(i), min(i, 2)))) for i in range(40)]
    h = Harness(tmp_path, tasks)
    pending = [i for i in h.start() if isinstance(i, ev.Launch)]
    seen_launch: dict[str, int] = {}
    while pending:
        rng.shuffle(pending)
        batch = pending[:5]
        pending = pending[5:]
        events: list[ev.Event] = []
        for launch in batch:
            seen_launch[launch.task_id] = seen_launch.get(launch.task_id, 0) + 1
            done = ev.TaskSucceeded(h.rid, launch.task_id, launch.attempt, AttemptResult())
            events += [done, done] if rng.random() < 0.5 else [done]
        rng.shuffle(events)
        pending += [i for i in h.handle(*events) if isinstance(i, ev.Launch)]
    assert set(seen_launch.values()) == {1}
    assert h.store.counts(h.rid) == {"SUCCEEDED": 40}
    assert h.run_state() is RunState.SUCCEEDED


def test_lost_workers_get_bounded_extra_attempts(tmp_path: Path) -> None:
    h = Harness(tmp_path, [T("a")])  # no retries of its own
    h.co.config = CoordinatorConfig(backoff=Backoff(0.0, 0.0), lost_worker_retries=2)
    h.start()
    for attempt in (1, 2):
        h.handle(ev.TaskStarted(h.rid, "a", attempt, h.clock.now(), 5.0))
        h.clock.t += 6
        h.handle(ev.LeaseExpired(h.rid, "a", attempt))
        assert h.state("a") in (TaskState.READY, TaskState.DISPATCHED)
    h.handle(ev.TaskStarted(h.rid, "a", 3, h.clock.now(), 5.0))
    h.clock.t += 6
    out = h.handle(ev.LeaseExpired(h.rid, "a", 3))
    rec = h.store.get_task(h.rid, "a")
    assert (rec.state, rec.reason, rec.attempt) == (TaskState.FAILED, "LEASE_EXPIRED", 3)
    assert ev.RunFinished(h.rid, "FAILED") in out


def test_a_lost_worker_does_not_use_up_the_tasks_own_retries(tmp_path: Path) -> None:
    h = Harness(tmp_path, [T("a", retries=1)])
    h.co.config = CoordinatorConfig(backoff=Backoff(0.0, 0.0))
    h.start()
    h.handle(ev.TaskStarted(h.rid, "a", 1, h.clock.now(), 5.0))
    h.clock.t += 6
    h.handle(ev.LeaseExpired(h.rid, "a", 1))
    h.fail("a", 2)  # a real failure: its one retry is still there
    assert h.store.get_task(h.rid, "a").attempt == 3
    h.ok("a", 3)
    assert h.run_state() is RunState.SUCCEEDED


def test_out_of_memory_spill_retries_bigger_in_a_container(tmp_path: Path) -> None:
    h = Harness(tmp_path, [T("a", placement="auto", retries=1, resources={"memory_mb": 512})])
    h.co.config = CoordinatorConfig(backoff=Backoff(0.0, 0.0))
    h.start()
    out = h.fail("a", 1, "OOM")
    launch = next(i for i in out if isinstance(i, ev.Launch))
    assert (launch.placement, launch.resources) == ("container", {"memory_mb": 1024})
    out = h.fail("a", 2, "OOM")  # its own retry: bigger again
    launch = next(i for i in out if isinstance(i, ev.Launch))
    assert launch.resources == {"memory_mb": 2048}
    h.ok("a", 3)
    assert h.run_state() is RunState.SUCCEEDED


def test_start_dispatches_in_batches_past_tasks_waiting_out_a_backoff(tmp_path: Path) -> None:
    h = Harness(tmp_path, [T(f"t{i:02d}") for i in range(11)])
    h.co.config = CoordinatorConfig(start_batch=4)
    for tid in ("t00", "t01", "t05"):  # READY but due later (as after a failed attempt)
        h.store.update_task(h.rid, tid, [TaskState.READY], 1, {"not_before": h.clock.now() + 60})
    launches: list[str] = []
    due: set[str] = set()
    pending: list[ev.Event] = [ev.Start(h.rid)]
    rounds = 0
    while pending:
        rounds += 1
        out = h.handle(pending.pop())
        launches += launched(out)
        for ins in out:
            if isinstance(ins, ev.Schedule) and isinstance(ins.event, ev.Start):
                assert ins.delay_s == 0.0
                pending.append(ins.event)
            elif isinstance(ins, ev.Schedule):
                due.add(ins.event.task_id)  # type: ignore[attr-defined]
    assert sorted(launches) == [f"t{i:02d}" for i in range(11) if i not in (0, 1, 5)]  # each once
    assert due == {"t00", "t01", "t05"}
    assert rounds == 3  # 8 tasks, 4 a batch, the delayed ones looked past


def test_consecutive_completions_of_one_run_are_handled_as_one_group() -> None:
    def done(run: str, task: str) -> ev.TaskSucceeded:
        return ev.TaskSucceeded(run, task, 1, AttemptResult())

    events = [done("r1", "a"), done("r1", "b"), ev.Start("r1"), done("r1", "c"), done("r2", "d"), done("r1", "e")]
    shape = [[e.task_id for e in item] if isinstance(item, list) else type(item).__name__
             for item in _completions_grouped(events)]
    assert shape == [["a", "b"], "Start", ["c"], ["d"], ["e"]]


def _failed(h: Harness, tid: str, attempt: int, start: float, end: float) -> list:
    result = AttemptResult(exit_code=1, started_at=start, finished_at=end, duration_s=end - start)
    return h.handle(ev.TaskFailed(h.rid, tid, attempt, "NONZERO_EXIT", result))


def test_every_attempt_is_kept_for_the_report_and_a_failure_carries_its_own_times(tmp_path: Path) -> None:
    h = Harness(tmp_path, [T("a", retries=2), T("b", retries=1)])
    h.start()
    h.handle(ev.TaskStarted(h.rid, "a", 1, 1000.0, 60.0))  # only the first attempt reports its start
    _failed(h, "a", 1, 1000.0, 1001.0)
    h.handle(ev.DispatchDue(h.rid, "a", 2))
    _failed(h, "a", 2, 1002.0, 1002.5)
    h.handle(ev.DispatchDue(h.rid, "a", 3))
    h.clock.t = 1010.0  # the coordinator hears of the last failure late
    _failed(h, "a", 3, 1004.0, 1004.2)
    a = h.store.get_task(h.rid, "a")
    assert a.state is TaskState.FAILED
    # the last attempt's own interval, not the first one's start and the coordinator's clock
    assert (a.started_at, a.finished_at) == (1004.0, 1004.2)
    assert [(t.attempt, t.started_at, t.finished_at) for t in a.tries] == [
        (1, 1000.0, 1001.0), (2, 1002.0, 1002.5)]
    _failed(h, "b", 1, 1000.0, 1001.0)
    h.handle(ev.DispatchDue(h.rid, "b", 2))
    h.handle(ev.TaskSucceeded(h.rid, "b", 2, AttemptResult(exit_code=0, started_at=1003.0, finished_at=1004.0)))
    b = h.store.get_task(h.rid, "b")
    assert b.state is TaskState.SUCCEEDED
    assert [(t.attempt, t.reason) for t in b.tries] == [(1, "NONZERO_EXIT")]


class ThrottledReads:
    """Makes the store's `get_task` raise (as a throttled or unreachable DynamoDB does) the
    next `times` calls, then read normally."""

    def __init__(self, store: SqliteStateStore, times: int) -> None:
        self.store, self.left, self.read = store, times, store.get_task

    def __call__(self, run_id: str, task_id: str) -> object:
        if self.left > 0:
            self.left -= 1
            raise RuntimeError("ProvisionedThroughputExceededException: slow down")
        return self.read(run_id, task_id)


def test_a_failure_whose_read_fails_is_not_acknowledged_and_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    h = Harness(tmp_path, [T("a"), T("b", ("a",))])
    h.start()
    monkeypatch.setattr(h.store, "get_task", ThrottledReads(h.store, 1))
    with pytest.raises(RuntimeError, match="slow down"):  # the handler that can retry sees it
        h.fail("a")
    assert h.state("a") is TaskState.DISPATCHED  # nothing half done
    h.fail("a")  # the redelivery
    rec = h.store.get_task(h.rid, "a")
    assert (rec.state, rec.reason) == (TaskState.FAILED, "NONZERO_EXIT")  # not re-labelled LEASE_EXPIRED later
    assert h.state("b") is TaskState.UPSTREAM_FAILED


def test_a_lease_expiry_whose_read_fails_is_redelivered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    h = Harness(tmp_path, [T("a", retries=0)])
    h.start()
    h.clock.t += 10_000
    monkeypatch.setattr(h.store, "get_task", ThrottledReads(h.store, 1))
    with pytest.raises(RuntimeError, match="slow down"):
        h.handle(ev.LeaseExpired(h.rid, "a", 1))
    assert h.state("a") is TaskState.DISPATCHED
    h.handle(ev.LeaseExpired(h.rid, "a", 1))
    assert h.store.get_task(h.rid, "a").attempt == 2  # a lost worker's extra attempt



def test_a_function_attempts_lease_covers_its_wait_in_the_platforms_queue_until_claimed(tmp_path: Path) -> None:
    """Lambda keeps a throttled async invoke up to its max event age: until the attempt is
    claimed its lease is that age + the grace, not its timeout; the claim sets the timeout's."""
    h = Harness(tmp_path, [T("a", placement="function", resources={"timeout_s": 60})])
    h.co.config = CoordinatorConfig(function_queue_s=21_600.0)
    h.start()
    rec = h.store.get_task(h.rid, "a")
    assert rec.state is TaskState.DISPATCHED
    assert rec.lease_expires == h.clock.now() + 21_600.0 + h.co.config.lease_grace_s
    h.clock.t += 3600  # long past timeout + grace: the sweeper's LeaseExpired is a no-op
    h.handle(ev.LeaseExpired(h.rid, "a", 1))
    assert (h.state("a"), h.store.get_task(h.rid, "a").attempt) == (TaskState.DISPATCHED, 1)
    h.handle(ev.TaskStarted(h.rid, "a", 1, h.clock.now(), 90.0))  # claimed: the normal lease
    assert h.store.get_task(h.rid, "a").lease_expires == h.clock.now() + 90.0
    # without a queue (local pools) the dispatch lease is the timeout's, as before
    g = Harness(tmp_path / "local", [T("b", placement="function", resources={"timeout_s": 60})])
    g.start()
    assert g.store.get_task(g.rid, "b").lease_expires == g.clock.now() + 60 + g.co.config.lease_grace_s
