"""The run API over the local runtime: the Chalice app's routes and response shapes, so the
dashboard page and the SDK work the same against `updraft ui` and a deployed stack.

    GET  /runs                      {"runs": [run + counts]}
    POST /runs                      202 {"run_id", "state", "task_count", "links"}
    GET  /runs/{id}                 run + counts + timings (+ owner_pid: the executing process)
    GET  /runs/{id}/tasks           {"run_id", "count", "truncated", "tasks"}
    GET  /runs/{id}/tasks/{task}    one task with its metrics and log tail (views.py)
    GET  /runs/{id}/graph           the DAG (views.py)
    POST /runs/{id}/cancel          202, or 409 when the run already ended
    POST /runs/{id}/resume          202, or 409 when it SUCCEEDED or is still executing

Errors: {"error", "message"} with 400 (invalid workflow: plus "problems"), 404, 405 or 409.
Each call opens its own LocalRuntime (SQLite connection), so server threads share nothing.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import unquote

from chalicelib.engine.states import TERMINAL_RUN, RunState
from chalicelib.errors import (
    FormatError,
    MissingInputsError,
    NotFoundError,
    Problem,
    StateConflictError,
    UpdraftError,
    WorkflowError,
)
from chalicelib.ui import views

Reply = tuple[int, dict[str, Any]]
MAX_TASKS_PAGE = 5000
TERMINAL = frozenset(s.value for s in TERMINAL_RUN)
_REQUEST_KEYS = {"workflow", "file", "format", "data", "name"}


def error_body(exc: UpdraftError) -> Reply:
    """The Chalice app's error shapes (chalicelib/backends/aws/api.py), for local errors."""
    if isinstance(exc, WorkflowError):
        return 400, {"error": "invalid workflow", "source": exc.source,
                     "problems": [p.to_dict() for p in exc.problems], "message": str(exc)}
    if isinstance(exc, MissingInputsError):
        return 400, {"error": "missing inputs", "missing": exc.missing, "message": str(exc)}
    if isinstance(exc, NotFoundError):
        return 404, {"error": "not found", "message": str(exc)}
    if isinstance(exc, StateConflictError) or type(exc).__name__ == "RunBusyError":
        return 409, {"error": "conflict", "message": str(exc)}
    return 400, {"error": type(exc).__name__, "message": str(exc)}


class LocalApi:
    """`request(method, path, params, body) -> (status, body)`: the transport the SDK and the
    local dashboard server use for a work dir."""

    is_local = True

    def __init__(self, workdir: str | None = None, concurrency: int | None = None) -> None:
        from chalicelib.backends.local.runtime import default_workdir

        self.workdir = os.path.abspath(workdir or default_workdir())
        self.concurrency = concurrency
        self._routes: list[tuple[str, re.Pattern[str], Callable[..., Reply]]] = [
            ("GET", re.compile(r"^/runs$"), self._list_runs),
            ("POST", re.compile(r"^/runs$"), self._submit),
            ("GET", re.compile(r"^/runs/([^/]+)$"), self._get_run),
            ("GET", re.compile(r"^/runs/([^/]+)/tasks$"), self._tasks),
            ("GET", re.compile(r"^/runs/([^/]+)/tasks/([^/]+)$"), self._task),
            ("GET", re.compile(r"^/runs/([^/]+)/graph$"), self._graph),
            ("POST", re.compile(r"^/runs/([^/]+)/cancel$"), self._cancel),
            ("POST", re.compile(r"^/runs/([^/]+)/resume$"), self._resume),
        ]

    @property
    def label(self) -> str:
        return f"local work dir {self.workdir}"

    def request(self, method: str, path: str, params: Mapping[str, str] | None = None,
                body: Any = None) -> Reply:
        path = "/" + path.strip("/")
        allowed = []
        for verb, pattern, handler in self._routes:
            match = pattern.match(path)
            if not match:
                continue
            if verb != method.upper():
                allowed.append(verb)
                continue
            try:
                return handler(*(unquote(g) for g in match.groups()), params=dict(params or {}), body=body)
            except UpdraftError as exc:
                return error_body(exc)
        if allowed:
            return 405, {"error": "method not allowed", "message": f"{method} {path}: use {', '.join(allowed)}"}
        return 404, {"error": "not found", "message": f"no route {method} {path}"}

    @contextmanager
    def _rt(self) -> Iterator[Any]:
        from chalicelib.backends.local.runtime import LocalRuntime

        rt = LocalRuntime(self.workdir)
        try:
            yield rt
        finally:
            rt.close()

    # ---- reads ------------------------------------------------------------------------------

    def _list_runs(self, params: dict[str, str], body: Any) -> Reply:
        from chalicelib.engine.states import RunState

        limit = _int_param(params, "limit", 50, 1, 1000)
        state = params.get("state")
        try:
            wanted = RunState(state.upper()) if state else None
        except ValueError:
            raise UpdraftError(f"state must be one of {[s.value for s in RunState]}, got {state!r}") from None
        with self._rt() as rt:
            runs = rt.store.list_runs(limit=limit, state=wanted)
            return 200, {"runs": [{**r.to_dict(), "counts": rt.store.counts(r.run_id)} for r in runs]}

    def _get_run(self, run_id: str, params: dict[str, str], body: Any) -> Reply:
        with self._rt() as rt:
            run = rt.store.get_run(run_id)
            out = run.to_dict()
            out["counts"] = rt.store.counts(run_id)
            end = run.finished_at if run.finished_at is not None else time.time()
            out["timings"] = {"created_at": run.created_at, "finished_at": run.finished_at,
                              "elapsed_s": round(end - run.created_at, 3)}
            out["owner_pid"] = rt.owner_pid(run_id)
            return 200, out

    def _tasks(self, run_id: str, params: dict[str, str], body: Any) -> Reply:
        from chalicelib.engine.states import TaskState

        raw = params.get("state")
        states = None
        if raw:
            try:
                states = [TaskState(s.strip().upper()) for s in raw.split(",")]
            except ValueError:
                return 400, {"error": "bad state", "message": f"state must be among {[s.value for s in TaskState]}"}
        limit = _int_param(params, "limit", 1000, 1, MAX_TASKS_PAGE)
        with self._rt() as rt:
            rt.store.get_run(run_id)
            tasks = rt.store.list_tasks(run_id, states)
            return 200, {"run_id": run_id, "count": len(tasks), "truncated": len(tasks) > limit,
                         "tasks": [views.task_body(t) for t in tasks[:limit]]}

    def _task(self, run_id: str, task_id: str, params: dict[str, str], body: Any) -> Reply:
        with self._rt() as rt:
            return 200, views.task_detail_body(rt.store.get_task(run_id, task_id), rt.blobs)

    def _graph(self, run_id: str, params: dict[str, str], body: Any) -> Reply:
        with self._rt() as rt:
            rt.store.get_run(run_id)
            return 200, views.graph_body(run_id, rt.specs.get(run_id))

    # ---- writes -----------------------------------------------------------------------------

    def _submit(self, params: dict[str, str], body: Any) -> Reply:
        from chalicelib.ui import executor

        workflow, data, source = _parse_submission(body)
        with self._rt() as rt:
            run = rt.submit(workflow, data, source)
        executor.start(self.workdir, run.run_id, self.concurrency)
        return 202, {"run_id": run.run_id, "state": run.state.value, "task_count": run.task_count,
                     "links": {"self": f"/runs/{run.run_id}", "tasks": f"/runs/{run.run_id}/tasks"}}

    def _cancel(self, run_id: str, params: dict[str, str], body: Any) -> Reply:
        with self._rt() as rt:
            run = rt.store.get_run(run_id)
            if run.state.value in TERMINAL:
                return 409, {"error": "conflict", "message": f"run {run_id} is already {run.state.value}"}
            run = rt.cancel(run_id)
            return 202, {"run_id": run_id, "state": run.state.value}

    def _resume(self, run_id: str, params: dict[str, str], body: Any) -> Reply:
        from chalicelib.engine.lifecycle import resume_run
        from chalicelib.ui import executor

        with self._rt() as rt:
            run = rt.store.get_run(run_id)
            if run.state is RunState.SUCCEEDED:
                return 409, {"error": "conflict", "message": f"run {run_id} already SUCCEEDED: nothing to resume"}
            pid = rt.owner_pid(run_id)
            if pid is not None:
                return 409, {"error": "conflict", "message": f"run {run_id} is being executed by process {pid}"}
            reset = resume_run(run_id, rt.specs.get(run_id), rt.store, allow_running=True)
        executor.start(self.workdir, run_id, self.concurrency)
        return 202, {"run_id": run_id, "state": RunState.RUNNING.value, "reset_tasks": reset}


def _parse_submission(body: Any) -> tuple[Any, str | None, str]:
    """(workflow, data dir, source) from {"workflow": doc | text} or {"file": path}, + format, data."""
    from chalicelib.workflow import formats

    if not isinstance(body, dict) or not ({"workflow", "file"} & set(body)):
        raise FormatError([Problem("send {\"workflow\": <document or text>} or {\"file\": \"path\"}, "
                                   "optionally with \"data\": \"folder\" and \"format\"")], "<request>")
    unknown = sorted(set(body) - _REQUEST_KEYS)
    if unknown:
        raise FormatError([Problem(f"unknown request field(s) {unknown}; known: {sorted(_REQUEST_KEYS)}")],
                          "<request>")
    fmt, data = body.get("format"), body.get("data")
    for key in ("format", "data", "file"):
        if body.get(key) is not None and not isinstance(body[key], str):
            raise FormatError([Problem("must be a string", None, key)], "<request>")
    if data is not None and not os.path.isdir(data):
        raise FormatError([Problem(f"{data} is not a folder on this machine", None, "data")], "<request>")
    if body.get("file") is not None:
        path = os.path.abspath(body["file"])
        if not os.path.isfile(path):
            raise NotFoundError(f"no workflow file {path}")
        return formats.load(path, fmt), data, path
    import json

    doc = body["workflow"]
    text = doc if isinstance(doc, str) else json.dumps(doc)
    return formats.loads(text, source="<request>", fmt=fmt), data, "api"


def _int_param(params: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise UpdraftError(f"{name} must be a whole number, got {raw!r}") from None
    return max(low, min(high, value))
