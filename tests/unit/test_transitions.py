"""The state table and the transitions table cannot drift: every state is shown, every
transition's states are table members, each transition function does exactly what its row
says (on the real SQLite store, from every state), the dashboard page receives the table, and
the docs list every transition."""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from chalicelib.attempt import AttemptResult
from chalicelib.backends.local.sqlite_state import SqliteStateStore
from chalicelib.engine import transitions as tr
from chalicelib.engine.records import RunRecord, TaskRecord
from chalicelib.engine.states import (
    DONE_OK,
    IN_FLIGHT,
    NOT_STARTED,
    NOT_YET_RUNNING,
    RUN_STATE_ORDER,
    RUN_STATES,
    TASK_STATE_ORDER,
    TASK_STATES,
    TERMINAL_RUN,
    TERMINAL_TASK,
    RunState,
    TaskState,
    ordered,
    states_json,
)

REPO = Path(__file__).resolve().parents[2]
TASK_NAMES = {s.value for s in TaskState}
RUN_NAMES = {s.value for s in RunState}


# ---- the state table --------------------------------------------------------------------------

def test_every_state_is_in_the_table_once_in_display_order() -> None:
    assert sorted(TASK_STATE_ORDER) == sorted(TaskState) and len(set(TASK_STATE_ORDER)) == len(TaskState)
    assert sorted(RUN_STATE_ORDER) == sorted(RunState) and len(set(RUN_STATE_ORDER)) == len(RunState)
    for info in [*TASK_STATES.values(), *RUN_STATES.values()]:
        assert re.fullmatch(r"#[0-9a-f]{6}", info.colour) and info.meaning


def test_the_groups_partition_the_states() -> None:
    assert set(TaskState) == NOT_STARTED | IN_FLIGHT | TERMINAL_TASK
    assert not (NOT_STARTED & IN_FLIGHT or IN_FLIGHT & TERMINAL_TASK or NOT_STARTED & TERMINAL_TASK)
    assert DONE_OK <= TERMINAL_TASK and NOT_STARTED < NOT_YET_RUNNING
    assert set(RunState) - {RunState.RUNNING} == TERMINAL_RUN


def test_counts_are_shown_in_display_order() -> None:
    counts = {"CANCELLED": 1, "WAITING": 2, "SUCCEEDED": 3, "RUNNING": 0}
    assert ordered(counts) == [("WAITING", 2), ("SUCCEEDED", 3), ("CANCELLED", 1)]


def test_the_dashboard_page_receives_the_table() -> None:
    from chalicelib.ui.page import PAGE, STATE_TABLE_SLOT, page_html

    page = page_html()
    assert STATE_TABLE_SLOT not in page
    found = re.search(r'<script type="application/json" id="state-table">(.*?)</script>', page, re.S)
    assert found is not None
    assert json.loads(found.group(1)) == states_json()
    assert json.loads(found.group(1))["task_states"] == [s.value for s in TASK_STATE_ORDER]
    # the page's own text names no list of states: it takes them from the table
    script = PAGE.read_text(encoding="utf-8")
    lists = re.findall(r"\[([^\]]*)\]", script)
    assert not [x for x in lists if sum(f'"{name}"' in x for name in TASK_NAMES) > 1]
    # and every state it names by itself is one of the table's
    named = set(re.findall(r'"([A-Z][A-Z_]+)"', script)) - {"GET", "POST", "PUT", "DELETE"}
    assert named and named <= TASK_NAMES | RUN_NAMES


def test_the_chalice_app_serves_the_page_with_the_table() -> None:
    from chalice.test import Client

    import app as app_module

    with Client(app_module.app) as client:
        body = client.http.get("/").body.decode("utf-8")
    assert '"task_states":["WAITING"' in body


# ---- the transitions table --------------------------------------------------------------------

def test_every_transition_moves_between_states_of_the_table() -> None:
    for t in tr.TRANSITIONS.values():
        names = TASK_NAMES if t.kind == "task" else RUN_NAMES
        assert t.kind in ("task", "run")
        assert t.sources and set(t.sources) <= names, t.name
        assert t.targets and set(t.targets) <= names, t.name
        assert t.condition and t.writers, t.name


def test_every_transition_has_its_function_and_every_function_its_row() -> None:
    helpers = {"function_lease_s", "cancel_all_live"}
    functions = {name for name, f in inspect.getmembers(tr, inspect.isfunction)
                 if f.__module__ == tr.__name__ and not name.startswith("_")} - helpers
    assert functions == set(tr.TRANSITIONS)


def test_a_new_state_reaches_something() -> None:
    """Every task state but the first is the target of some transition, and every live state
    the source of one (nothing can be stuck in it)."""
    targets = {s for t in tr.TRANSITIONS.values() if t.kind == "task" for s in t.targets}
    sources = {s for t in tr.TRANSITIONS.values() if t.kind == "task" and set(t.targets) - set(t.sources)
               for s in t.sources}
    assert TASK_NAMES - targets == set()
    assert {s.value for s in TaskState if s not in TERMINAL_TASK} <= sources


def test_the_docs_list_every_transition() -> None:
    text = (REPO / "docs" / "reliability.md").read_text(encoding="utf-8")
    for name in tr.TRANSITIONS:
        assert f"| `{name}` |" in text, f"docs/reliability.md: no row for the {name} transition"


# ---- each function does what its row says, from every state ------------------------------------

RUN = "r1"


def _store_with_task(state: TaskState, attempt: int = 1) -> tuple[SqliteStateStore, TaskRecord]:
    store = SqliteStateStore(":memory:")
    run = RunRecord(run_id=RUN, name="t", state=RunState.RUNNING, created_at=0.0, task_count=1, spec_key="k")
    store.create_run(run, [TaskRecord(run_id=RUN, task_id="a", state=TaskState.READY, attempt=attempt,
                                      placement="function", pending=0)])
    rec = store.update_task(RUN, "a", list(TaskState), None, {"state": state})
    return store, rec


TASK_CALLS: dict[str, Callable[[SqliteStateStore, TaskRecord], TaskRecord | tr.Refused]] = {
    "dispatch": lambda s, r: tr.dispatch(s, RUN, [(r.task_id, r.attempt, 50.0)])[0],
    "claim": lambda s, r: tr.claim(s, RUN, r.task_id, r.attempt, 1.0, 10.0),
    "renew": lambda s, r: tr.renew(s, RUN, r.task_id, r.attempt, 60.0),
    "unclaim": lambda s, r: tr.unclaim(s, RUN, r.task_id, r.attempt, 60.0),
    "relaunch": lambda s, r: tr.relaunch(s, RUN, r.task_id, r.attempt, 5.0),
    "retry": lambda s, r: tr.retry(s, r, reason="NONZERO_EXIT", result=AttemptResult(), not_before=1.0,
                                   placement="function", max_attempts=3, book=tr.Bookkeeping()),
    "fail": lambda s, r: tr.fail(s, RUN, r.task_id, r.attempt, reason="NONZERO_EXIT", result=AttemptResult(),
                                 now=1.0, book=tr.Bookkeeping()),
    "finish": lambda s, r: tr.finish(s, RUN, [(r.task_id, r.attempt, False, AttemptResult(exit_code=0), 1.0)])[0],
    "upstream_failed": lambda s, r: tr.upstream_failed(s, RUN, r.task_id, "p", 1.0),
    "cancel_live": lambda s, r: tr.cancel_live(s, r, 1.0),
    "reset": lambda s, r: tr.reset(s, RUN, r.task_id, ready=True, attempt=r.attempt + 1, done_parents=[],
                                   pending=0, max_attempts=r.attempt + 1),
}


@pytest.mark.parametrize("name", sorted(TASK_CALLS))
@pytest.mark.parametrize("state", list(TaskState))
def test_a_task_transition_moves_exactly_from_its_sources(name: str, state: TaskState) -> None:
    row = tr.TRANSITIONS[name]
    store, rec = _store_with_task(state)
    outcome = TASK_CALLS[name](store, rec)
    now = store.get_task(RUN, "a")
    if state.value in row.sources:
        assert isinstance(outcome, TaskRecord), outcome
        assert now.state.value in row.targets
        if name == "renew":
            assert now.state is state and now.lease_expires == 60.0
    else:
        assert isinstance(outcome, tr.Refused)
        assert now == rec  # nothing written
        if outcome.current is not None:  # (a batched write does not read the record back)
            assert f"it is {state.value} at attempt 1" in outcome.why
        assert outcome.transition == name and name in outcome.why


@pytest.mark.parametrize("name", ["claim", "renew", "unclaim", "relaunch", "fail"])
def test_an_older_attempt_is_refused_and_told_which_is_current(name: str) -> None:
    sources = tr.TRANSITIONS[name].sources
    store, rec = _store_with_task(TaskState(sources[0]), attempt=2)
    outcome = TASK_CALLS[name](store, TaskRecord(**{**_fields(rec), "attempt": 1}))
    assert isinstance(outcome, tr.Refused)
    assert f"at attempt 2, needs {'/'.join(sorted(sources))} at attempt 1" in outcome.why
    assert store.get_task(RUN, "a") == rec


def test_a_task_that_does_not_exist_is_refused() -> None:
    store, _ = _store_with_task(TaskState.DISPATCHED)
    outcome = tr.claim(store, RUN, "ghost", 1, 1.0, 10.0)
    assert isinstance(outcome, tr.Refused) and outcome.current is None
    assert "no such task" in outcome.why


def test_another_store_error_propagates() -> None:
    class Down(SqliteStateStore):
        def update_task(self, *args: object, **kwargs: object) -> TaskRecord:
            raise OSError("disk I/O error")

    store = Down(":memory:")
    with pytest.raises(OSError):
        tr.claim(store, RUN, "a", 1, 1.0, 10.0)


RUN_CALLS: dict[str, Callable[[SqliteStateStore, RunRecord], RunRecord | tr.Refused]] = {
    "finish_run": lambda s, r: tr.finish_run(s, RUN, RunState.SUCCEEDED, 1.0),
    "cancel_run": lambda s, r: tr.cancel_run(s, RUN, 1.0),
    "fail_run": lambda s, r: tr.fail_run(s, r, "poison", 1.0),
    "reopen_run": lambda s, r: tr.reopen_run(s, RUN),
}


@pytest.mark.parametrize("name", sorted(RUN_CALLS))
@pytest.mark.parametrize("state", list(RunState))
def test_a_run_transition_moves_exactly_from_its_sources(name: str, state: RunState) -> None:
    row = tr.TRANSITIONS[name]
    store, _ = _store_with_task(TaskState.SUCCEEDED)
    run = store.update_run(RUN, list(RunState), {"state": state})
    outcome = RUN_CALLS[name](store, run)
    now = store.get_run(RUN)
    if state.value in row.sources:
        assert isinstance(outcome, RunRecord) and now.state.value in row.targets
    else:
        assert isinstance(outcome, tr.Refused) and now == run
        assert f"it is {state.value}, needs RUNNING" in outcome.why


def test_only_a_finished_state_finishes_a_run() -> None:
    store, _ = _store_with_task(TaskState.SUCCEEDED)
    with pytest.raises(ValueError, match="not CANCELLED"):
        tr.finish_run(store, RUN, RunState.CANCELLED, 1.0)


def test_the_function_lease_grace_is_written_once() -> None:
    from chalicelib.engine.coordinator import CoordinatorConfig

    assert CoordinatorConfig().lease_grace_s == tr.FUNCTION_LEASE_GRACE_S
    assert tr.function_lease_s(900) == 900 + tr.FUNCTION_LEASE_GRACE_S
    hits = [p for p in (REPO / "chalicelib").rglob("*.py")
            if re.search(r"timeout_s \+ 30(\.0)?\b|LEASE_GRACE_S = ", p.read_text(encoding="utf-8"))]
    assert [p.name for p in hits] == ["transitions.py"]


def _fields(rec: TaskRecord) -> dict[str, object]:
    return {f: getattr(rec, f) for f in rec.__struct_fields__}
