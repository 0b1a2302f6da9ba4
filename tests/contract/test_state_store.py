"""StateStore contract: the same behaviours on SQLite and on DynamoDB (moto)."""

from __future__ import annotations

import itertools
import threading
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.attempt import AttemptResult, CacheUse
from chalicelib.backends.aws import ddb_expr as x
from chalicelib.backends.aws.dynamodb_state import DynamoStateStore
from chalicelib.backends.local.sqlite_state import SqliteStateStore
from chalicelib.engine.ports import StateStore
from chalicelib.engine.records import RunRecord, TaskRecord, Try
from chalicelib.engine.states import IN_FLIGHT, RunState, TaskState
from chalicelib.errors import NotFoundError, StateConflictError

W, R, D, RUN = TaskState.WAITING, TaskState.READY, TaskState.DISPATCHED, TaskState.RUNNING


def run_record(run_id: str = "r1", created: float = 100.0, n: int = 0) -> RunRecord:
    return RunRecord(run_id, f"wf-{run_id}", RunState.RUNNING, created, n, f"runs/{run_id}/workflow.json")


def task(run_id: str, tid: str, pending: int = 0, placement: str = "function", max_attempts: int = 1) -> TaskRecord:
    return TaskRecord(run_id, tid, R if pending == 0 else W, 1, placement, pending, max_attempts)


def make_run(store: StateStore, run_id: str, parents: dict[str, list[str]], created: float = 100.0) -> None:
    tasks = [task(run_id, t, len(ps)) for t, ps in parents.items()]
    store.create_run(run_record(run_id, created, len(tasks)), tasks)


def diamond(store: StateStore, run_id: str = "r1") -> None:
    make_run(store, run_id, {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"]})


def test_implements_the_port(store: Any) -> None:
    assert isinstance(store, StateStore)


def test_create_then_read_back(store: StateStore) -> None:
    diamond(store)
    run = store.get_run("r1")
    assert (run.name, run.state, run.task_count) == ("wf-r1", RunState.RUNNING, 4)
    assert run.spec_key == "runs/r1/workflow.json"
    d = store.get_task("r1", "d")
    assert (d.state, d.attempt, d.pending, d.placement, d.max_attempts) == (W, 1, 2, "function", 1)
    assert [t.task_id for t in store.list_tasks("r1")] == ["a", "b", "c", "d"]  # submission order


def test_creating_an_existing_run_is_a_conflict_that_names_it(store: StateStore) -> None:
    diamond(store)
    with pytest.raises(StateConflictError) as err:
        store.create_run(run_record("r1"), [task("r1", "x")])
    assert isinstance(err.value.current, RunRecord) and err.value.current.run_id == "r1"
    assert {t.task_id for t in store.list_tasks("r1")} == {"a", "b", "c", "d"}


def test_unknown_run_and_task_are_not_found(store: StateStore) -> None:
    with pytest.raises(NotFoundError):
        store.get_run("nope")
    diamond(store)
    with pytest.raises(NotFoundError):
        store.get_task("r1", "nope")
    with pytest.raises(NotFoundError):
        store.update_task("r1", "nope", [R], None, {"state": D})


def test_an_unknown_runs_tasks_and_counts_are_not_found_rather_than_empty(store: StateStore) -> None:
    diamond(store)
    for read in (lambda: store.list_tasks("nope"), lambda: store.list_tasks("nope", [R], limit=5),
                 lambda: store.iter_tasks("nope"), lambda: store.counts("nope")):
        with pytest.raises(NotFoundError, match="nope"):
            read()  # iter_tasks raises when called, not at its first record
    assert store.list_tasks("r1", [TaskState.SUCCEEDED]) == []  # a known run with none: empty
    assert list(store.iter_tasks("r1", [TaskState.SUCCEEDED])) == []


def test_runs_are_listed_newest_first_and_by_state(store: StateStore) -> None:
    for i, rid in enumerate(["old", "mid", "new"]):
        make_run(store, rid, {"a": []}, created=100.0 + i)
    store.update_run("mid", [RunState.RUNNING], {"state": RunState.FAILED, "finished_at": 200.0})
    assert [r.run_id for r in store.list_runs()] == ["new", "mid", "old"]
    assert [r.run_id for r in store.list_runs(limit=2)] == ["new", "mid"]
    assert [r.run_id for r in store.list_runs(state=RunState.RUNNING)] == ["new", "old"]
    assert [r.run_id for r in store.list_runs(state=RunState.FAILED)] == ["mid"]


def test_run_update_is_conditional_on_its_state(store: StateStore) -> None:
    diamond(store)
    done = store.update_run("r1", [RunState.RUNNING], {"state": RunState.SUCCEEDED, "finished_at": 5.0,
                                                      "options": {"k": [1, 2]}})
    assert (done.state, done.finished_at, done.options) == (RunState.SUCCEEDED, 5.0, {"k": [1, 2]})
    with pytest.raises(StateConflictError) as err:
        store.update_run("r1", [RunState.RUNNING], {"state": RunState.FAILED})
    assert err.value.current.state is RunState.SUCCEEDED  # type: ignore[union-attr]
    again = store.update_run("r1", list(RunState), {"state": RunState.RUNNING, "finished_at": None})
    assert (again.state, again.finished_at) == (RunState.RUNNING, None)
    with pytest.raises(ValueError):
        store.update_run("r1", [RunState.RUNNING], {"name": "renamed"})


def test_task_transition_is_conditional_on_state_and_attempt(store: StateStore) -> None:
    diamond(store)
    new = store.update_task("r1", "a", [R], 1, {"state": D, "lease_expires": 50.0})
    assert (new.state, new.lease_expires, new.attempt) == (D, 50.0, 1)
    assert store.get_task("r1", "a") == new
    with pytest.raises(StateConflictError) as err:  # duplicate: the state moved on
        store.update_task("r1", "a", [R], 1, {"state": D})
    assert err.value.current == new
    with pytest.raises(StateConflictError):  # wrong attempt
        store.update_task("r1", "a", [D], 2, {"state": RUN})
    assert store.update_task("r1", "a", [D], None, {"state": RUN}).state is RUN  # None: any attempt


def test_a_field_a_task_cannot_change_is_refused_by_name_and_nothing_is_written(store: StateStore) -> None:
    diamond(store)
    with pytest.raises(ValueError, match=r"task fields \['pending'\] cannot be changed"):
        store.update_task("r1", "a", [R], 1, {"state": D, "pending": 0})
    with pytest.raises(ValueError, match=r"task fields \['run_id'\] cannot be changed"):
        store.update_tasks("r1", [R], [("a", 1, {"state": D}), ("b", 1, {"state": D, "run_id": "r2"})])
    assert store.get_task("r1", "a").state is R  # checked before anything was written


def test_a_late_event_of_an_old_attempt_cannot_overwrite_the_new_one(store: StateStore) -> None:
    make_run(store, "r1", {"a": []})
    store.update_task("r1", "a", [R], 1, {"state": D})
    store.update_task("r1", "a", [D], 1, {"state": R, "attempt": 2, "reason": "TIMEOUT"})  # retry
    store.update_task("r1", "a", [R], 2, {"state": D})
    with pytest.raises(StateConflictError) as err:
        store.update_task("r1", "a", IN_FLIGHT, 1, {"state": TaskState.SUCCEEDED})
    assert (err.value.current.state, err.value.current.attempt) == (D, 2)  # type: ignore[union-attr]


def test_task_fields_round_trip_and_none_clears_them(store: StateStore) -> None:
    make_run(store, "r1", {"a": []})
    result = AttemptResult(exit_code=0, duration_s=1.25, log_key="runs/r1/logs/a.1.log", outputs={"o.txt": "ab"},
                           cache=CacheUse(hits=2, memo="miss"), peak_rss_mb=3.5)
    tries = (Try(1, "OOM", "function", started_at=1.0, finished_at=2.0, duration_s=1.0),
             Try(2, "LEASE_EXPIRED", "container"))
    rec = store.update_task("r1", "a", [R], 1, {
        "state": TaskState.SUCCEEDED, "started_at": 10.5, "finished_at": 12.0, "exit_code": 0,
        "result": result, "lease_expires": 99.0, "placement": "container", "max_attempts": 3,
        "lost_workers": 1, "resources": {"memory_mb": 2048.0}, "tries": tries, "failed_parent": "p",
    })
    got = store.get_task("r1", "a")
    assert got == rec and got.result == result and got.placement == "container" and got.max_attempts == 3
    assert (got.lost_workers, got.resources, got.tries, got.failed_parent) == (1, {"memory_mb": 2048.0}, tries, "p")
    cleared = store.update_task("r1", "a", [TaskState.SUCCEEDED], 1, {
        "lease_expires": None, "result": None, "lost_workers": 0, "resources": {}, "tries": (), "failed_parent": None})
    assert cleared.lease_expires is None and store.get_task("r1", "a").lease_expires is None
    assert cleared == store.get_task("r1", "a")
    assert (cleared.result, cleared.lost_workers, cleared.resources, cleared.tries, cleared.failed_parent) == (
        None, 0, {}, (), None)
    with pytest.raises(ValueError):
        store.update_task("r1", "a", [TaskState.SUCCEEDED], 1, {"pending": 0})


def test_the_last_parent_makes_the_child_ready_exactly_once(store: StateStore) -> None:
    diamond(store)
    assert [t.task_id for t in store.complete_parent("r1", "a", ["b", "c"])] == ["b", "c"]
    assert store.complete_parent("r1", "b", ["d"]) == []
    assert store.get_task("r1", "d").state is W
    assert store.complete_parent("r1", "b", ["d"]) == []  # redelivered: not counted twice
    assert store.get_task("r1", "d").pending == 1
    ready = store.complete_parent("r1", "c", ["d"])
    assert [(t.task_id, t.state, t.pending) for t in ready] == [("d", R, 0)]
    assert store.get_task("r1", "d").state is R


def test_a_redelivered_completion_returns_children_still_ready(store: StateStore) -> None:
    diamond(store)
    store.complete_parent("r1", "a", ["b", "c"])
    store.update_task("r1", "b", [R], 1, {"state": D})
    again = store.complete_parent("r1", "a", ["b", "c"])
    assert [t.task_id for t in again] == ["c"]  # b was dispatched meanwhile; c is still READY
    assert store.get_task("r1", "c").pending == 0


def test_unknown_children_are_ignored(store: StateStore) -> None:
    diamond(store)
    assert [t.task_id for t in store.complete_parent("r1", "a", ["ghost", "b"])] == ["b"]


def test_a_child_with_many_parents_counts_each_once(store: StateStore) -> None:
    parents = [f"p{i}" for i in range(70)]  # above the DynamoDB adapter's inline limit
    make_run(store, "r1", {**{p: [] for p in parents}, "merge": parents})
    for p in parents[:-1]:
        assert store.complete_parent("r1", p, ["merge"]) == []
    assert store.complete_parent("r1", parents[0], ["merge"]) == []  # duplicate
    assert store.get_task("r1", "merge").pending == 1
    assert [t.task_id for t in store.complete_parent("r1", parents[-1], ["merge"])] == ["merge"]
    assert store.counts("r1")[R.value] == 71
    assert [t.task_id for t in store.complete_parent("r1", parents[-1], ["merge"])] == ["merge"]


@pytest.mark.parametrize("n_parents", [12, 66])
def test_concurrent_completions_make_the_child_ready_once(store: StateStore, n_parents: int) -> None:
    parents = [f"p{i}" for i in range(n_parents)]
    make_run(store, "r1", {**{p: [] for p in parents}, "merge": parents})
    seen: list[list[str]] = []
    workers = 6
    barrier = threading.Barrier(workers)

    def finish(mine: list[str]) -> None:
        barrier.wait()
        for p in mine:
            seen.append([t.task_id for t in store.complete_parent("r1", p, ["merge"])])
            seen.append([t.task_id for t in store.complete_parent("r1", p, ["merge"])])  # duplicate

    threads = [threading.Thread(target=finish, args=(parents[i::workers],)) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    merge = store.get_task("r1", "merge")
    assert (merge.state, merge.pending) == (R, 0)
    assert any(seen)
    assert store.counts("r1") == {R.value: n_parents + 1}  # WAITING -> READY counted exactly once


def test_counts_follow_every_transition(store: StateStore) -> None:
    diamond(store)
    assert store.counts("r1") == {R.value: 1, W.value: 3}
    with store.batch():
        store.update_task("r1", "a", [R], 1, {"state": D})
        store.update_task("r1", "a", [D], 1, {"state": RUN})
        store.update_task("r1", "a", [RUN], 1, {"state": TaskState.SUCCEEDED})
        store.complete_parent("r1", "a", ["b", "c"])
        assert store.counts("r1") == {TaskState.SUCCEEDED.value: 1, R.value: 2, W.value: 1}
    store.update_task("r1", "b", [R], 1, {"state": TaskState.CANCELLED})
    assert store.counts("r1") == {TaskState.SUCCEEDED.value: 1, R.value: 1, W.value: 1,
                                  TaskState.CANCELLED.value: 1}


def test_tasks_are_listed_by_state(store: StateStore) -> None:
    diamond(store)
    store.complete_parent("r1", "a", ["b", "c"])
    store.update_task("r1", "b", [R], 1, {"state": D})
    assert [t.task_id for t in store.list_tasks("r1", [R])] == ["a", "c"]
    assert [t.task_id for t in store.list_tasks("r1", [W])] == ["d"]
    assert [t.task_id for t in store.list_tasks("r1", [W, D])] == ["b", "d"]
    assert store.list_tasks("r1", [TaskState.FAILED]) == []
    assert [t.task_id for t in store.list_tasks("r1", [W, D], limit=1)] == ["b"]  # the first in submission order
    assert [t.task_id for t in store.list_tasks("r1", limit=3)] == ["a", "b", "c"]


def test_reset_task_restores_a_consistent_waiting_task(store: StateStore) -> None:
    diamond(store)
    store.complete_parent("r1", "a", ["b", "c"])
    store.complete_parent("r1", "b", ["d"])
    store.update_task("r1", "c", [R], 1, {"state": TaskState.FAILED, "reason": "NONZERO_EXIT", "exit_code": 2})
    reset = store.reset_task("r1", "d", W, 2, ["b"], 1, 3)
    assert (reset.state, reset.attempt, reset.pending, reset.max_attempts) == (W, 2, 1, 3)
    assert reset.reason is None and reset.exit_code is None
    assert store.complete_parent("r1", "b", ["d"]) == []  # b stays counted
    assert [t.task_id for t in store.complete_parent("r1", "c", ["d"])] == ["d"]
    c = store.reset_task("r1", "c", R, 2, ["a"], 0, 1)
    assert (c.state, c.attempt, c.reason, c.exit_code) == (R, 2, None, None)
    assert store.counts("r1") == {R.value: 4}


def test_reset_of_a_many_parent_task_keeps_only_the_done_parents(store: StateStore) -> None:
    parents = [f"p{i}" for i in range(66)]
    make_run(store, "r1", {**{p: [] for p in parents}, "merge": parents})
    for p in parents[:10]:
        store.complete_parent("r1", p, ["merge"])
    store.reset_task("r1", "merge", W, 2, parents[:3], 63, 1)
    assert store.complete_parent("r1", parents[1], ["merge"]) == []  # still counted
    store.complete_parent("r1", parents[5], ["merge"])  # no longer counted: counts again
    assert store.get_task("r1", "merge").pending == 62


def test_expired_leases_are_the_in_flight_tasks_past_their_lease(store: StateStore) -> None:
    make_run(store, "r1", {"a": [], "b": [], "c": [], "d": []})
    store.update_task("r1", "a", [R], 1, {"state": D, "lease_expires": 10.0})
    store.update_task("r1", "b", [R], 1, {"state": RUN, "lease_expires": 20.0})
    store.update_task("r1", "c", [R], 1, {"state": D, "lease_expires": 99.0})
    store.update_task("r1", "d", [R], 1, {"state": TaskState.SUCCEEDED, "lease_expires": 1.0})
    assert sorted(t.task_id for t in store.expired_leases(now=30.0)) == ["a", "b"]
    assert store.expired_leases(now=5.0) == []
    assert len(store.expired_leases(now=30.0, limit=1)) == 1
    # across runs; a run that is no longer RUNNING (cancelled while a task was out) is left alone
    make_run(store, "r2", {"e": []})
    store.update_task("r2", "e", [R], 1, {"state": RUN, "lease_expires": 15.0})
    assert sorted((t.run_id, t.task_id) for t in store.expired_leases(now=30.0)) == [
        ("r1", "a"), ("r1", "b"), ("r2", "e")]
    store.update_run("r2", [RunState.RUNNING], {"state": RunState.CANCELLED})
    assert sorted(t.task_id for t in store.expired_leases(now=30.0)) == ["a", "b"]


def test_batch_groups_writes_and_nests(store: StateStore) -> None:
    make_run(store, "r1", {"a": [], "b": []})
    with store.batch():
        with store.batch():
            store.update_task("r1", "a", [R], 1, {"state": D})
        store.update_task("r1", "b", [R], 1, {"state": D})
    assert store.counts("r1") == {D.value: 2}


_RUN_IDS = itertools.count()


# ---- property: any completion order, with duplicates, readies each child exactly once ----------

@st.composite
def dags(draw: st.DrawFn) -> dict[str, list[str]]:
    n = draw(st.integers(min_value=2, max_value=9))
    parents: dict[str, list[str]] = {}
    for i in range(n):
        earlier = [f"t{j}" for j in range(i)]
        parents[f"t{i}"] = sorted(draw(st.sets(st.sampled_from(earlier), max_size=3))) if earlier else []
    return parents


def children_of(graph: dict[str, list[str]]) -> dict[str, list[str]]:
    children: dict[str, list[str]] = {t: [] for t in graph}
    for t, ps in graph.items():
        for p in ps:
            children[p].append(t)
    return children


def assert_counted(store: StateStore, run_id: str, graph: dict[str, list[str]], done: set[str]) -> None:
    """Each task's pending count is its parents not done; READY exactly when none is left."""
    for t, ps in graph.items():
        rec = store.get_task(run_id, t)
        assert rec.pending == len(set(ps) - done)
        assert rec.state is (R if set(ps) <= done else W)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(graph=dags(), data=st.data())
def test_any_completion_order_readies_children_exactly_when_their_parents_are_done(
    store: StateStore, graph: dict[str, list[str]], data: st.DataObject,
) -> None:
    run_id = f"p{next(_RUN_IDS)}"
    make_run(store, run_id, graph)
    children = children_of(graph)
    done: set[str] = set()
    order = data.draw(st.permutations(list(graph)))
    for t in order:
        if not set(graph[t]) <= done:
            continue
        done.add(t)
        repeats = data.draw(st.integers(1, 2))  # a duplicate delivery now and then
        for _ in range(repeats):
            store.complete_parent(run_id, t, children[t])
    assert_counted(store, run_id, graph, done)
    counts = store.counts(run_id)
    assert counts.get(R.value, 0) == sum(1 for t, ps in graph.items() if set(ps) <= done)


def test_a_parent_with_many_children_readies_them_in_order(store: StateStore) -> None:
    children = [f"c{i:03d}" for i in range(650)]  # more than one SQLite statement takes
    make_run(store, "r1", {"root": [], "other": [], **{c: ["root", "other"] for c in children}})
    assert store.complete_parent("r1", "other", children[::2]) == []
    got = store.complete_parent("r1", "root", children)
    assert [t.task_id for t in got] == children[::2]  # the ones whose last parent this was
    again = store.complete_parent("r1", "root", children)  # redelivered: nothing counted twice
    assert [t.task_id for t in again] == children[::2]
    assert store.get_task("r1", children[1]).pending == 1
    assert store.counts("r1")[R.value] == 2 + 325


def test_many_updates_each_stand_alone_and_come_back_in_order(store: StateStore) -> None:
    make_run(store, "r1", {f"t{i}": [] for i in range(6)})
    store.update_task("r1", "t2", [R], 1, {"state": D})  # no longer READY: its update loses
    store.update_task("r1", "t4", [R], 1, {"state": D})
    store.update_task("r1", "t4", [D], 1, {"state": R, "attempt": 2})  # now at attempt 2
    results = AttemptResult(exit_code=0, log_key="k", outputs={"x": "1"})
    got = store.update_tasks("r1", [R], [
        ("t0", 1, {"state": D, "lease_expires": 10.0, "not_before": None}),
        ("t1", 1, {"state": D, "lease_expires": 11.0, "not_before": None}),
        ("t2", 1, {"state": D, "lease_expires": 12.0, "not_before": None}),  # wrong state
        ("t3", 1, {"state": TaskState.SUCCEEDED, "result": results, "exit_code": 0}),  # other fields
        ("t4", 1, {"state": D, "lease_expires": 14.0, "not_before": None}),  # wrong attempt
        ("t5", None, {"state": D}),  # any attempt
        ("nope", 1, {"state": D}),  # no such task
    ])
    assert [r.task_id if r else None for r in got] == ["t0", "t1", None, "t3", None, "t5", None]
    assert [got[0].lease_expires, got[1].lease_expires] == [10.0, 11.0]  # type: ignore[union-attr]
    for rec in got:
        if rec is not None:
            assert store.get_task("r1", rec.task_id) == rec
    assert store.get_task("r1", "t3").result == results
    assert (store.get_task("r1", "t2").state, store.get_task("r1", "t4").attempt) == (D, 2)
    assert store.counts("r1") == {D.value: 4, TaskState.SUCCEEDED.value: 1, R.value: 1}


def test_a_task_named_twice_in_many_updates_sees_the_first_update(store: StateStore) -> None:
    make_run(store, "r1", {"a": [], "b": []})
    got = store.update_tasks("r1", [R, D], [
        ("a", 1, {"state": D, "lease_expires": 5.0}),
        ("a", 1, {"state": D, "lease_expires": 6.0}),  # still DISPATCHED: applies on top
        ("b", 2, {"state": RUN}),  # wrong attempt
    ])
    assert [r.lease_expires if r else None for r in got] == [5.0, 6.0, None]
    assert store.get_task("r1", "a").lease_expires == 6.0


def test_many_updates_beyond_one_statement(store: StateStore) -> None:
    make_run(store, "r1", {f"t{i}": [] for i in range(600)})
    got = store.update_tasks("r1", [R], [(f"t{i}", 1, {"state": D, "lease_expires": float(i)})
                                         for i in range(599, -1, -1)])
    assert [r.lease_expires for r in got if r] == [float(i) for i in range(599, -1, -1)]
    assert store.counts("r1") == {D.value: 600}


def test_tasks_are_iterated_as_listed_a_page_at_a_time(store: StateStore, monkeypatch: pytest.MonkeyPatch) -> None:
    from chalicelib.backends.local import sqlite_state

    monkeypatch.setattr(sqlite_state, "ITER_PAGE", 2)  # pages end inside the run (SQLite)
    make_run(store, "r1", {f"t{i:02d}": [] for i in range(7)})
    make_run(store, "r2", {"x": []}, created=101.0)
    store.update_task("r1", "t03", [R], 1, {"state": D})
    store.update_task("r1", "t05", [R], 1, {"state": D})
    assert [t.task_id for t in store.iter_tasks("r1")] == [f"t{i:02d}" for i in range(7)]
    assert list(store.iter_tasks("r1")) == store.list_tasks("r1")
    assert [t.task_id for t in store.iter_tasks("r1", [D])] == ["t03", "t05"]
    assert [t.task_id for t in store.iter_tasks("r1", [R, D])] == [t.task_id for t in store.list_tasks("r1", [R, D])]
    assert list(store.iter_tasks("r1", [TaskState.FAILED])) == []


# ---- complete_parents: many completions at once, the same outcome as one after another ---------

def test_parents_completed_together_ready_their_child_once(store: StateStore) -> None:
    diamond(store)
    assert [t.task_id for t in store.complete_parents("r1", [("a", ["b", "c"])])] == ["b", "c"]
    ready = store.complete_parents("r1", [("b", ["d"]), ("c", ["d"])])
    assert [(t.task_id, t.state, t.pending) for t in ready] == [("d", R, 0)]
    assert store.counts("r1") == {R.value: 4}
    assert store.complete_parents("r1", []) == []


def test_completions_together_count_each_edge_once(store: StateStore) -> None:
    diamond(store)
    store.complete_parents("r1", [("a", ["b", "c"])])
    assert store.complete_parents("r1", [("b", ["d"]), ("b", ["d"])]) == []  # the same edge twice
    assert store.get_task("r1", "d").pending == 1
    # a redelivered completion beside a new one: d is counted down once, and named once
    assert [t.task_id for t in store.complete_parents("r1", [("b", ["d"]), ("c", ["d"])])] == ["d"]
    assert store.get_task("r1", "d").pending == 0
    assert [t.task_id for t in store.complete_parents("r1", [("c", ["d"]), ("b", ["d"])])] == ["d"]  # still READY


def test_completions_together_answer_in_the_order_children_are_first_named(store: StateStore) -> None:
    make_run(store, "r1", {"p": [], "q": [], "x": ["p"], "y": ["p", "q"], "z": ["q"], "w": ["q"]})
    got = store.complete_parents("r1", [("q", ["w", "y", "z"]), ("p", ["x", "y", "ghost"])])
    assert [t.task_id for t in got] == ["w", "y", "z", "x"]
    assert all(t.state is R and t.pending == 0 for t in got)


def test_many_completions_together_take_more_than_one_statement(store: StateStore) -> None:
    children = [f"c{i:03d}" for i in range(400)]  # 800 edges: more than one SQLite statement takes
    make_run(store, "r1", {"root": [], "other": [], **{c: ["root", "other"] for c in children}})
    got = store.complete_parents("r1", [("other", children), ("root", children)])
    assert [t.task_id for t in got] == children
    assert store.counts("r1")[R.value] == 402
    assert [t.task_id for t in store.complete_parents("r1", [("root", children)])] == children  # redelivered
    assert store.get_task("r1", "c399").pending == 0


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(graph=dags(), data=st.data())
def test_completions_in_batches_ready_children_exactly_when_their_parents_are_done(
    store: StateStore, graph: dict[str, list[str]], data: st.DataObject,
) -> None:
    run_id = f"b{next(_RUN_IDS)}"
    make_run(store, run_id, graph)
    children = children_of(graph)
    done: set[str] = set()
    order = list(data.draw(st.permutations(list(graph))))
    while order:
        size = data.draw(st.integers(1, 4))
        batch = [t for t in order[:size] if set(graph[t]) <= done]  # a batch of tasks that could finish
        order = order[size:]
        if not batch:
            continue
        done.update(batch)
        redelivered = data.draw(st.lists(st.sampled_from(sorted(done)), max_size=2))
        completions = [(t, children[t]) for t in [*batch, *redelivered]]
        got = [t.task_id for t in store.complete_parents(run_id, completions)]
        named = [c for _, cs in completions for c in cs]
        expected = [c for c in dict.fromkeys(named) if set(graph[c]) <= done]  # READY: never dispatched here
        assert got == expected
    assert_counted(store, run_id, graph, done)


# ---- edge cases both adapters must answer alike (found by comparing them call for call) ----


def test_completing_a_parent_of_an_unknown_run_raises_and_leaves_no_trace(store: StateStore) -> None:
    with pytest.raises(NotFoundError):
        store.complete_parent("r1", "a", ["b"])
    with pytest.raises(NotFoundError):
        store.complete_parents("r1", [("a", ["b"])])
    make_run(store, "r1", {"a": [], "b": ["a"]})  # the same id, made afterwards
    assert [t.task_id for t in store.complete_parent("r1", "a", ["b"])] == ["b"]


def test_a_child_named_twice_is_ready_once(store: StateStore) -> None:
    diamond(store)
    assert sorted(t.task_id for t in store.complete_parent("r1", "a", ["b", "b", "c"])) == ["b", "c"]
    assert store.counts("r1") == {"READY": 3, "WAITING": 1}


def test_reset_with_a_parent_named_twice_counts_it_once(store: StateStore) -> None:
    diamond(store)
    rec = store.reset_task("r1", "d", W, 2, ["b", "b"], 1, 1)
    assert rec.pending == 1 and rec.attempt == 2
    assert store.complete_parent("r1", "b", ["d"]) == []  # already counted
    assert [t.task_id for t in store.complete_parent("r1", "c", ["d"])] == ["d"]


def test_no_changes_is_a_conditional_no_op(store: StateStore) -> None:
    make_run(store, "r1", {"a": [], "b": [], "c": []})
    before = store.get_task("r1", "a")
    assert store.update_task("r1", "a", [R], 1, {}) == before
    with pytest.raises(StateConflictError):
        store.update_task("r1", "a", [D], 1, {})
    assert store.update_tasks("r1", [R], [("a", 1, {}), ("b", None, {}), ("c", 2, {})]) == [
        before, store.get_task("r1", "b"), None]
    run = store.get_run("r1")
    assert store.update_run("r1", [RunState.RUNNING], {}) == run
    with pytest.raises(StateConflictError):
        store.update_run("r1", [RunState.FAILED], {})
    assert store.counts("r1") == {"READY": 3}


def test_a_negative_limit_is_refused(store: StateStore) -> None:
    make_run(store, "r1", {"a": []})
    for call in (lambda: store.list_tasks("r1", limit=-1), lambda: store.list_runs(limit=-1),
                 lambda: store.expired_leases(0.0, limit=-1)):
        with pytest.raises(ValueError, match="limit must be 0 or more"):
            call()


def test_a_run_whose_tasks_repeat_an_id_is_refused_before_anything_is_written(store: StateStore) -> None:
    tasks = [task("r1", "a", 0), task("r1", "b", 0), task("r1", "a", 0)]
    with pytest.raises(ValueError, match=r"task ids repeated: \['a'\]"):
        store.create_run(run_record("r1", 100.0, 3), tasks)
    with pytest.raises(ValueError, match="tasks of another run"):
        store.create_run(run_record("r1", 100.0, 1), [task("r2", "a", 0)])
    with pytest.raises(NotFoundError):
        store.get_run("r1")


def test_an_update_returns_the_record_a_read_gives_even_for_a_huge_result(store: StateStore) -> None:
    make_run(store, "r1", {"a": []})
    result = AttemptResult(exit_code=0, log_tail="x" * 40_000)  # past DynamoDB's cap: shortened there
    done = store.update_task("r1", "a", [R], 1, {"state": TaskState.SUCCEEDED, "result": result})
    assert done == store.get_task("r1", "a")
    assert done.result is not None and done.result.exit_code == 0


def _store_raw_result(store: StateStore, run_id: str, task_id: str, raw: str) -> None:
    """Write a task's stored result as the previous version did: its JSON as it is, nothing
    in the fields that version did not have."""
    if isinstance(store, SqliteStateStore):
        store._db.execute("UPDATE tasks SET result=? WHERE run_id=? AND task_id=?", (raw, run_id, task_id))
    elif isinstance(store, DynamoStateStore):
        store._ddb.update_item(TableName=store.table, Key=store._task_key(run_id, task_id),
                               UpdateExpression="SET res = :r", ExpressionAttributeValues={":r": x.text(raw)})
    else:
        raise AssertionError(f"no raw write for {type(store).__name__}")


# A result as the previous version stored it: a plain dict, the engine's bookkeeping inside it,
# and keys this version does not know.
LEGACY_RESULT = (
    '{"exit_code":1,"started_at":10.0,"finished_at":12.5,"duration_s":2.5,"bytes_in":7,"bytes_out":0,'
    '"peak_rss_mb":40.1,"cache":{"hits":1,"misses":2,"bytes_from_origin":3,"bytes_from_cache":4,"memo":"miss"},'
    '"log_key":"runs/r1/logs/a.2.log","log_tail":"exited with code 1","placement":"container","worker":"w1",'
    '"lost_workers":1,"resources":{"memory_mb":4096},"failed_parent":"p0","something_new":{"x":[1]},'
    '"tries":[{"attempt":1,"reason":"LEASE_EXPIRED","placement":"function","started_at":1.0}]}'
)


def test_a_result_written_by_the_previous_version_still_reads(store: StateStore) -> None:
    make_run(store, "r1", {"a": [], "b": []})
    store.update_task("r1", "a", [R], 1, {"state": TaskState.FAILED, "reason": "NONZERO_EXIT", "exit_code": 1})
    _store_raw_result(store, "r1", "a", LEGACY_RESULT)
    rec = store.get_task("r1", "a")
    assert rec.result == AttemptResult(
        exit_code=1, started_at=10.0, finished_at=12.5, duration_s=2.5, bytes_in=7, bytes_out=0, peak_rss_mb=40.1,
        cache=CacheUse(1, 2, 3, 4, "miss"), log_key="runs/r1/logs/a.2.log", log_tail="exited with code 1",
        worker="w1")  # unknown keys ignored, missing ones defaulted
    # the engine's bookkeeping that version kept in the result is the record's own now
    assert (rec.lost_workers, rec.resources, rec.failed_parent) == (1, {"memory_mb": 4096.0}, "p0")
    assert rec.tries == (Try(1, "LEASE_EXPIRED", "function", started_at=1.0),)
    assert [t.task_id for t in store.list_tasks("r1", [TaskState.FAILED])] == ["a"]
    assert next(iter(store.iter_tasks("r1", [TaskState.FAILED]))) == rec
    # an upstream-failed task's result was only its failed parent; an empty one was {}
    store.update_task("r1", "b", [R], 1, {"state": TaskState.UPSTREAM_FAILED})
    _store_raw_result(store, "r1", "b", '{"failed_parent":"a"}')
    b = store.get_task("r1", "b")
    assert (b.result, b.failed_parent, b.lost_workers, b.tries) == (AttemptResult(), "a", 0, ())
    _store_raw_result(store, "r1", "b", "{}")
    assert store.get_task("r1", "b").result == AttemptResult()
    # the next write of that field replaces the old form
    moved = store.update_task("r1", "a", [TaskState.FAILED], 1, {"result": AttemptResult(exit_code=2)})
    assert moved == store.get_task("r1", "a") and moved.result == AttemptResult(exit_code=2)


FINISHED = [RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED]


def test_deleting_a_finished_run_removes_it_and_only_it(store: StateStore) -> None:
    diamond(store, "r1")
    diamond(store, "r2")
    store.complete_parent("r1", "a", ["b", "c"])
    store.update_run("r1", [RunState.RUNNING], {"state": RunState.FAILED, "finished_at": 9.0})
    gone = store.delete_run("r1", FINISHED)
    assert (gone.run_id, gone.state) == ("r1", RunState.FAILED)
    for read in (lambda: store.get_run("r1"), lambda: store.list_tasks("r1"), lambda: store.counts("r1"),
                 lambda: store.get_task("r1", "a")):
        with pytest.raises(NotFoundError):
            read()
    assert [r.run_id for r in store.list_runs()] == ["r2"]
    assert store.counts("r2") == {"READY": 1, "WAITING": 3}  # the other run is untouched
    with pytest.raises(NotFoundError):
        store.delete_run("r1", FINISHED)


def test_a_deleted_run_leaves_no_counts_nor_counted_edges_behind(store: StateStore) -> None:
    parents = {f"p{i}": [] for i in range(70)}  # past DynamoDB's inline fan-in: edge items
    make_run(store, "r1", {**parents, "child": list(parents)})
    for p in list(parents)[:69]:
        store.complete_parent("r1", p, ["child"])
    store.update_run("r1", [RunState.RUNNING], {"state": RunState.CANCELLED})
    store.delete_run("r1", FINISHED)
    make_run(store, "r1", {**parents, "child": list(parents)})  # the same id again, afresh
    assert store.counts("r1") == {"READY": 70, "WAITING": 1}
    assert store.complete_parent("r1", "p0", ["child"]) == []  # p0 counts again: 69 left
    assert store.get_task("r1", "child").pending == 69


def test_a_run_in_a_state_not_expected_is_not_deleted(store: StateStore) -> None:
    diamond(store)
    with pytest.raises(StateConflictError) as err:
        store.delete_run("r1", FINISHED)
    assert err.value.current.state is RunState.RUNNING  # type: ignore[union-attr]
    assert len(store.list_tasks("r1")) == 4 and store.get_run("r1").state is RunState.RUNNING
