"""The run API's handlers, one body for both backends; app.py and backends/local/api.py route onto
these. Each returns (status, body) or raises an UpdraftError that `errors.error_body` maps.

    POST /runs                    202 {"run_id", "state", "task_count", "links"}
    GET  /runs                    {"runs": [run + counts]}              ?state= &limit= (1-1000)
    GET  /runs/{id}               run + counts + timings + owner_pid (null unless a known process runs it)
    GET  /runs/{id}/tasks         {"run_id", "count", "truncated", "next", "tasks": [task body]}
                                  ?state=A,B &limit= (1-MAX_TASKS_PAGE) &next=<token>
    GET  /runs/{id}/tasks/{task}  one task with its metrics and log tail (views.py)
    GET  /runs/{id}/graph         the DAG (views.py)
    POST /runs/{id}/cancel        202, or 409 when the run already ended
    POST /runs/{id}/resume        202, or 409 when it SUCCEEDED or is still being executed

A page of tasks is one `StateStore.page_tasks` call (it reads about what the page holds, never
the whole run), cut short so that its JSON stays under MAX_PAGE_BYTES (Lambda answers at most
6 MB); "next" is an opaque token for the following page (null on the last one), bound to the
run and the state filter. "count" comes from the run's state counters, not from loading every
task.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Mapping
from typing import Any

from chalicelib.engine.records import RunRecord, TaskRecord
from chalicelib.engine.states import TERMINAL_RUN, RunState, TaskState
from chalicelib.errors import UpdraftError
from chalicelib.service import guards, views
from chalicelib.service.errors import Reply
from chalicelib.service.runtime import Runtime
from chalicelib.service.submission import submit

log = logging.getLogger("updraft.api")

MAX_TASKS_PAGE = 5000
MAX_RUNS_PAGE = 1000
MAX_PAGE_BYTES = 5 * 1024 * 1024  # a page's JSON: under Lambda's 6 MB response, with room to spare


# ---- parameters -------------------------------------------------------------------------------

def int_param(params: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    """A whole-number query parameter, clamped to [low, high]."""
    raw = params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise UpdraftError(f"{name} must be a whole number, got {raw!r}") from None
    return max(low, min(high, value))


def run_state_param(raw: str | None) -> RunState | None:
    if not raw:
        return None
    try:
        return RunState(raw.upper())
    except ValueError:
        raise UpdraftError(f"state must be one of {[s.value for s in RunState]}, got {raw!r}") from None


class BadStateError(UpdraftError):
    """?state= names no task state."""


def task_states_param(raw: str | None) -> list[TaskState] | None:
    if not raw:
        return None
    try:
        return [TaskState(s.strip().upper()) for s in raw.split(",")]
    except ValueError:
        raise BadStateError(f"state must be among {[s.value for s in TaskState]}") from None


# ---- bodies -----------------------------------------------------------------------------------

def run_body(rt: Runtime, run: RunRecord) -> dict[str, Any]:
    """A run with its task counts per state, its timings and its executing process."""
    body = run.to_dict()
    body["counts"] = rt.store.counts(run.run_id)
    end = run.finished_at if run.finished_at is not None else rt.clock()
    body["timings"] = {"created_at": run.created_at, "finished_at": run.finished_at,
                       "elapsed_s": round(end - run.created_at, 3)}
    body["owner_pid"] = rt.owner(run.run_id)
    return body


def listed_run(rt: Runtime, run: RunRecord) -> dict[str, Any]:
    """A run as GET /runs lists it: its record and counts."""
    return {**run.to_dict(), "counts": rt.store.counts(run.run_id)}


class BadPageTokenError(UpdraftError):
    """?next= is not a token this API gave for this run and state filter."""


def page_token(run_id: str, states: list[TaskState] | None, after: str) -> str:
    """The opaque "next" token: where the next page starts, bound to the run and the filter."""
    raw = json.dumps({"v": 1, "run": run_id, "states": _state_names(states), "after": after},
                     separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode("utf-8")).decode("ascii").rstrip("=")


def token_position(token: str, run_id: str, states: list[TaskState] | None) -> str:
    """The position a "next" token names; BadPageTokenError if it is not one of ours for this
    run and state filter."""
    why = "pass the \"next\" of the previous page as it is, with the same state filter, or no next= to start over"
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError):
        raise BadPageTokenError(f"next={token!r} is not a page token: {why}") from None
    if not isinstance(data, dict) or data.get("v") != 1 or not isinstance(data.get("after"), str):
        raise BadPageTokenError(f"next={token!r} is not a page token: {why}")
    if data.get("run") != run_id or data.get("states") != _state_names(states):
        raise BadPageTokenError(f"next= is a token of another run or state filter: {why}")
    return str(data["after"])


def _state_names(states: list[TaskState] | None) -> list[str] | None:
    return None if states is None else sorted({s.value for s in states})


def task_page(
    rt: Runtime, run_id: str, states: list[TaskState] | None, limit: int, token: str | None = None,
    max_bytes: int | None = None,
) -> dict[str, Any]:
    cap = MAX_PAGE_BYTES if max_bytes is None else max_bytes
    counts = rt.store.counts(run_id)  # NotFoundError for an unknown run
    wanted = counts.values() if states is None else (counts.get(s.value, 0) for s in set(states))
    after = token_position(token, run_id, states) if token else None
    try:
        page = rt.store.page_tasks(run_id, states, limit=limit, after=after)
    except ValueError as exc:  # a position the store cannot go on from (the run was re-created?)
        raise BadPageTokenError(f"next= cannot be followed: {exc}; start over without next=") from None
    bodies: list[dict[str, Any]] = []
    size = 1024  # the envelope
    nxt = page.after
    for rec in page.tasks:
        body = views.task_body(rec)
        n = len(json.dumps(body, default=str)) + 2
        if bodies and size + n > cap:  # the rest of the page on the next one
            nxt = bodies[-1]["id"]
            break
        bodies.append(body)
        size += n
    return {"run_id": run_id, "count": sum(wanted), "truncated": nxt is not None,
            "next": None if nxt is None else page_token(run_id, states, nxt), "tasks": bodies}


# ---- routes -----------------------------------------------------------------------------------

def post_run(rt: Runtime, body: Any, raw: bytes | None = None) -> Reply:
    run = submit(rt, rt.read_request(body, raw))
    log.info("run submitted", extra={"run_id": run.run_id})
    return 202, {"run_id": run.run_id, "state": run.state.value, "task_count": run.task_count,
                 "links": {"self": f"/runs/{run.run_id}", "tasks": f"/runs/{run.run_id}/tasks"}}


def list_runs(rt: Runtime, params: Mapping[str, str]) -> Reply:
    state = run_state_param(params.get("state"))
    limit = int_param(params, "limit", 50, 1, MAX_RUNS_PAGE)
    return 200, {"runs": [listed_run(rt, r) for r in rt.store.list_runs(limit=limit, state=state)]}


def get_run(rt: Runtime, run_id: str) -> Reply:
    return 200, run_body(rt, rt.store.get_run(run_id))


def get_tasks(rt: Runtime, run_id: str, params: Mapping[str, str]) -> Reply:
    try:
        states = task_states_param(params.get("state"))
    except BadStateError as exc:
        return 400, {"error": "bad state", "message": str(exc)}
    limit = int_param(params, "limit", 1000, 1, MAX_TASKS_PAGE)
    rt.store.get_run(run_id)
    try:
        return 200, task_page(rt, run_id, states, limit, params.get("next") or None)
    except BadPageTokenError as exc:
        return 400, {"error": "bad page token", "message": str(exc)}


def get_task(rt: Runtime, run_id: str, task_id: str) -> Reply:
    return views.task_reply(rt, run_id, task_id)


def get_graph(rt: Runtime, run_id: str) -> Reply:
    return views.graph_reply(rt, run_id)


def cancel_run(rt: Runtime, run_id: str) -> Reply:
    run = guards.cancellable(rt.store.get_run(run_id))
    done = guards.cancel_live(rt, run.run_id)
    return 202, {"run_id": run_id, "state": done.state.value if done is not None else "CANCELLING"}


def resume(rt: Runtime, run_id: str) -> Reply:
    run = guards.resumable(rt, rt.store.get_run(run_id))
    begun = guards.begin_resume_run(rt, run.run_id)  # O(1): the tasks are reset after the reply (cloud)
    rt.resume_tasks(run_id, begun.token)
    return 202, {"run_id": run_id, "state": RunState.RUNNING.value, "reset_tasks": begun.todo}


# ---- the CLI's calls --------------------------------------------------------------------------

def stop(rt: Runtime, run_id: str) -> RunRecord:
    """`updraft cancel`: cancel a live run; a run that already ended is left as it is."""
    run = rt.store.get_run(run_id)
    if run.state in TERMINAL_RUN:
        return run
    done = guards.cancel_live(rt, run_id)
    return done if done is not None else rt.store.get_run(run_id)


def latest_run_id(rt: Runtime, where: str) -> str:
    from chalicelib.errors import NotFoundError

    runs = rt.store.list_runs(limit=1)
    if not runs:
        raise NotFoundError(f"no runs in {where}; start one with `updraft run FILE`")
    return runs[0].run_id


def snapshot(rt: Runtime, run_id: str) -> tuple[RunRecord, dict[str, int], list[TaskRecord]]:
    """`updraft status`: the run, its counts and every task."""
    run = rt.store.get_run(run_id)
    return run, rt.store.counts(run_id), rt.store.list_tasks(run_id)


def listing(rt: Runtime, limit: int) -> list[dict[str, Any]]:
    """`updraft runs`: what GET /runs lists (limit 0: none)."""
    return [listed_run(rt, r) for r in rt.store.list_runs(limit=limit)] if limit else []

