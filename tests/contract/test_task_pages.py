"""StateStore.page_tasks, on every store: pages of a run's tasks that read only what they need,
each task once across pages, resumable from the position a page ends at."""

from __future__ import annotations

from collections.abc import Collection

import pytest

from chalicelib.engine.ports import StateStore
from chalicelib.engine.records import RunRecord, TaskRecord
from chalicelib.engine.states import RunState, TaskState
from chalicelib.errors import NotFoundError

R, W, D = TaskState.READY, TaskState.WAITING, TaskState.DISPATCHED


def wide_run(store: StateStore, n: int, run_id: str = "r1") -> list[str]:
    """n tasks, ids submitted in an order that is not their sorted order; every third READY."""
    ids = [f"t{(i * 7919) % n:05d}" for i in range(n)]
    tasks = [TaskRecord(run_id, tid, R if i % 3 == 0 else W, 1, "function", 0 if i % 3 == 0 else 1)
             for i, tid in enumerate(ids)]
    store.create_run(RunRecord(run_id, run_id, RunState.RUNNING, 100.0, n, f"runs/{run_id}/workflow.json"), tasks)
    return ids


def all_pages(store: StateStore, run_id: str, states: Collection[TaskState] | None, limit: int) -> list[list[str]]:
    pages: list[list[str]] = []
    after: str | None = None
    while True:
        page = store.page_tasks(run_id, states, limit, after)
        assert len(page.tasks) <= limit
        pages.append([t.task_id for t in page.tasks])
        if page.after is None:
            return pages
        assert page.after != after, "a page must move on"
        after = page.after


def test_pages_hold_every_task_once_in_a_fixed_order(store: StateStore) -> None:
    ids = wide_run(store, 100)
    pages = all_pages(store, "r1", None, 7)
    flat = [tid for page in pages for tid in page]
    assert sorted(flat) == sorted(ids) and len(flat) == len(set(flat))
    assert all(len(p) == 7 for p in pages[:-1]) and 1 <= len(pages[-1]) <= 7
    assert [tid for p in all_pages(store, "r1", None, 50) for tid in p] == flat  # the same order, any page size
    assert [t.task_id for t in store.list_tasks("r1", limit=10)] == flat[:10]  # a limited list is the first page


def test_a_state_filter_pages_only_those_tasks(store: StateStore) -> None:
    ids = wide_run(store, 90)
    ready = {tid for i, tid in enumerate(ids) if i % 3 == 0}
    flat = [tid for p in all_pages(store, "r1", [R], 4) for tid in p]
    assert sorted(flat) == sorted(ready)
    assert [t.task_id for t in store.list_tasks("r1", [R], limit=5)] == flat[:5]
    assert all_pages(store, "r1", [TaskState.FAILED], 10) == [[]]


def test_writes_between_pages_neither_lose_nor_repeat_a_task_that_stays_in_the_states(store: StateStore) -> None:
    ids = wide_run(store, 60)
    seen: list[str] = []
    page = store.page_tasks("r1", [R, D], 5)
    while True:
        seen.extend(t.task_id for t in page.tasks)
        for t in page.tasks:  # READY -> DISPATCHED: still in the states paged
            if t.state is R:
                store.update_task("r1", t.task_id, [R], 1, {"state": D})
        if page.after is None:
            break
        page = store.page_tasks("r1", [R, D], 5, page.after)
    assert sorted(seen) == sorted(tid for i, tid in enumerate(ids) if i % 3 == 0)


def test_dispatching_a_page_of_ready_tasks_moves_the_next_page_on(store: StateStore) -> None:
    """What the coordinator's Start does: READY pages, each after the last, until none is left."""
    wide_run(store, 45)
    done: list[str] = []
    after: str | None = None
    for _ in range(20):
        page = store.page_tasks("r1", [R], 4, after)
        for t in page.tasks:
            store.update_task("r1", t.task_id, [R], 1, {"state": D})
        done.extend(t.task_id for t in page.tasks)
        if page.after is None:
            break
        after = page.after
    assert len(done) == 15 == len(set(done))
    assert store.list_tasks("r1", [R]) == []


def test_bad_page_requests_are_refused(store: StateStore) -> None:
    wide_run(store, 5)
    with pytest.raises(NotFoundError, match="nope"):
        store.page_tasks("nope")
    with pytest.raises(ValueError, match="limit"):
        store.page_tasks("r1", limit=0)
    assert store.page_tasks("r1", limit=5).after is None  # exactly one full page: no next one
    last = store.page_tasks("r1", limit=4)
    assert last.after is not None and len(store.page_tasks("r1", None, 4, last.after).tasks) == 1


def test_runs_page_apart(store: StateStore) -> None:
    wide_run(store, 12, "r1")
    wide_run(store, 8, "r2")
    assert sum(len(p) for p in all_pages(store, "r2", None, 3)) == 8
    assert {t.run_id for t in store.page_tasks("r1", limit=100).tasks} == {"r1"}
