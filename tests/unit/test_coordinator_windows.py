"""Bounded work per coordinator step: a completion readying 10,000 children, a Start of
10,000 READY tasks and a cancel of a wide run each do at most one window (256 tasks) and
leave the rest to a continuation event, which the shell delivers as it delivers any event."""

from __future__ import annotations

from pathlib import Path

import pytest

from chalicelib.engine import events as ev
from chalicelib.engine.coordinator import CoordinatorConfig
from chalicelib.engine.states import RunState, TaskState
from tests.unit.test_coordinator import Harness, T, launched

WIDE = 10_000
WINDOW = CoordinatorConfig().start_batch


def continuations(out: list) -> list[ev.Event]:
    return [i.event for i in out if isinstance(i, ev.Schedule) and i.delay_s == 0.0
            and isinstance(i.event, ev.ReadyChildren | ev.Start | ev.Cancel)]


def drain(h: Harness, first: list, limit: int) -> tuple[list[str], int, list]:
    """Deliver the continuations of `first` until none is left; every step's launches,
    and how many steps."""
    launches, steps, out = launched(first), 1, first
    pending = continuations(first)
    everything = list(first)
    while pending:
        out = h.handle(pending.pop(0))
        assert len(launched(out)) <= limit and len(continuations(out)) <= 1
        launches += launched(out)
        pending += continuations(out)
        everything += out
        steps += 1
    return launches, steps, everything


@pytest.fixture(scope="module")
def wide(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    return [T("root"), *(T(f"c{i:05d}", ("root",)) for i in range(WIDE))]


def test_a_task_with_10000_children_readies_them_a_window_per_step(tmp_path: Path, wide: list[dict]) -> None:
    h = Harness(tmp_path, wide)
    assert launched(h.start()) == ["root"]
    out = h.ok("root")  # one pure step
    assert len(launched(out)) == WINDOW
    assert continuations(out) == [ev.ReadyChildren(h.rid, "root", WINDOW)]
    assert h.store.counts(h.rid)[TaskState.WAITING.value] == WIDE - WINDOW  # the rest not even counted yet
    launches, steps, _ = drain(h, out, WINDOW)
    assert sorted(launches) == [f"c{i:05d}" for i in range(WIDE)]  # each child once
    assert steps == -(-WIDE // WINDOW)


def test_a_redelivered_completion_goes_on_from_its_first_window(tmp_path: Path) -> None:
    h = Harness(tmp_path, [T("root"), *(T(f"c{i}", ("root",)) for i in range(10))])
    h.co.config = CoordinatorConfig(start_batch=4)
    h.start()
    first = h.ok("root")
    assert launched(first) == ["c0", "c1", "c2", "c3"]
    again = h.ok("root")  # the same completion redelivered (the continuation may have been lost)
    assert launched(again) == [] and continuations(again) == [ev.ReadyChildren(h.rid, "root", 4)]
    launches, _, _ = drain(h, again, 4)
    assert sorted(launches) == sorted(f"c{i}" for i in range(4, 10))
    assert drain(h, h.handle(ev.ReadyChildren(h.rid, "root", 4)), 4)[0] == []  # a duplicate: no-op


def test_a_continuation_for_a_parent_that_did_not_finish_or_a_stopped_run_does_nothing(tmp_path: Path) -> None:
    h = Harness(tmp_path, [T("root"), *(T(f"c{i}", ("root",)) for i in range(10))])
    h.start()
    assert h.handle(ev.ReadyChildren(h.rid, "root", 0)) == []  # root is still DISPATCHED
    h.co.config = CoordinatorConfig(start_batch=4)
    out = h.ok("root")
    cancelled = drain(h, h.handle(ev.Cancel(h.rid)), 0)[2]
    assert h.run_state() is RunState.CANCELLED and ev.RunFinished(h.rid, "CANCELLED") in cancelled
    assert launched(h.handle(*continuations(out))) == []


def test_start_of_10000_ready_tasks_dispatches_a_window_per_step(tmp_path: Path) -> None:
    h = Harness(tmp_path, [T(f"t{i:05d}") for i in range(WIDE)])
    out = h.start()
    assert len(launched(out)) == WINDOW
    (more,) = continuations(out)
    assert isinstance(more, ev.Start) and more.after is not None
    launches, _, _ = drain(h, out, WINDOW)
    assert sorted(launches) == [f"t{i:05d}" for i in range(WIDE)]


def test_cancel_of_a_wide_run_goes_a_window_at_a_time_and_reports_the_end_once(tmp_path: Path) -> None:
    n = 1000
    h = Harness(tmp_path, [T(f"t{i:04d}") for i in range(n)])
    h.co.config = CoordinatorConfig(start_batch=300)
    drain(h, h.start(), 300)  # every task DISPATCHED
    h.co.config = CoordinatorConfig(start_batch=128)
    first = h.handle(ev.Cancel(h.rid))
    assert h.run_state() is RunState.CANCELLED
    assert len([i for i in first if isinstance(i, ev.Kill)]) == 128
    assert not any(isinstance(i, ev.RunFinished) for i in first)  # not done yet
    _, steps, everything = drain(h, first, 0)
    kills = [i.task_id for i in everything if isinstance(i, ev.Kill)]
    assert sorted(kills) == [f"t{i:04d}" for i in range(n)]  # each in-flight task killed once
    assert [i for i in everything if isinstance(i, ev.RunFinished)] == [ev.RunFinished(h.rid, "CANCELLED")]
    assert h.store.counts(h.rid) == {TaskState.CANCELLED.value: n}
    assert steps == -(-n // 128) or steps == -(-n // 128) + 1  # the last window may find none left


def test_the_continuation_events_survive_the_wire() -> None:
    for e in (ev.Start("r", after="t1"), ev.Cancel("r", after="x y"), ev.ReadyChildren("r", "p", 256),
              ev.Start("r"), ev.Cancel("r")):
        assert ev.event_from_dict(e.to_dict()) == e
    assert ev.Start("r").to_dict() == {"kind": "start", "run_id": "r"}
    assert ev.Cancel("r").to_dict() == {"kind": "cancel", "run_id": "r"}
    assert ev.event_from_dict({"kind": "start", "run_id": "r", "delayed": 3}) == ev.Start("r", 3)  # an older Start
