"""`updraft.Client`: one API for the local runtime and a deployed stack.

Both speak the same routes and JSON shapes (the Chalice app's; locally chalicelib.backends.local.api),
so every method is one request plus error mapping. Errors are chalicelib.errors types: an
invalid workflow raises WorkflowError listing every problem, an unknown run NotFoundError, an
operation the run's state forbids StateConflictError.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from chalicelib.engine.states import TERMINAL_RUN
from chalicelib.errors import (
    ConfigError,
    MissingInputsError,
    NotFoundError,
    Problem,
    StateConflictError,
    UpdraftError,
    WorkflowError,
)

TERMINAL = frozenset(s.value for s in TERMINAL_RUN)  # the run states `wait` stops at
Run = dict[str, Any]


class Transport(Protocol):
    @property
    def label(self) -> str: ...

    def request(self, method: str, path: str, params: Mapping[str, str] | None = None,
                body: Any = None) -> tuple[int, dict[str, Any]]: ...


class RunTimeoutError(UpdraftError):
    """wait() gave up; `run` is the last state seen (the run itself goes on)."""

    def __init__(self, message: str, run: Run) -> None:
        self.run = run
        super().__init__(message)


class RunStalledError(UpdraftError):
    """A local run is RUNNING but no process executes it (its executor was killed)."""


class ApiError(UpdraftError):
    def __init__(self, status: int, body: Mapping[str, Any]) -> None:
        self.status = status
        self.body = dict(body)
        super().__init__(f"HTTP {status}: {body.get('message') or body.get('error') or 'error'}")


class Client:
    """Client() is the local runtime's work dir (./.updraft or $UPDRAFT_HOME); Client(url) a
    deployed stack's API, requests signed with SigV4 unless auth='none'."""

    def __init__(self, api: str | None = None, *, workdir: str | None = None, region: str | None = None,
                 auth: str = "iam", session: Any = None, transport: Transport | None = None,
                 concurrency: int | None = None) -> None:
        if transport is not None:
            self.transport = transport
        elif api:
            from updraft.remote import RemoteTransport

            self.transport = RemoteTransport(api, region=region, auth=auth, session=session)
        else:
            from chalicelib.backends.local.api import LocalApi

            self.transport = LocalApi(workdir, concurrency=concurrency)
        self.is_local = bool(getattr(self.transport, "is_local", False))

    def __repr__(self) -> str:
        return f"Client({self.transport.label!r})"

    # ---- calls ----------------------------------------------------------------------------------

    def _call(self, method: str, path: str, params: Mapping[str, Any] | None = None, body: Any = None) -> Any:
        clean = {k: str(v) for k, v in (params or {}).items() if v is not None}
        status, reply = self.transport.request(method, path, clean, body)
        if 200 <= status < 300:
            return reply
        raise _error(status, reply)

    def submit(self, workflow: Any, data: str | None = None, *, format: str | None = None,
               name: str | None = None, wait: bool = False, timeout: float | None = None) -> Run:
        """Start a run of `workflow`: a file path, a workflow document (dict), its text, or a
        chalicelib Workflow. `data` is the inputs' folder locally, an s3://bucket/prefix/ remotely;
        `name` names the run (default: the workflow's name).
        Returns the new run ({"run_id", "state", "task_count", ...}); with wait=True, its end."""
        body = self._submission(workflow, data, format)
        if name is not None:
            body["name"] = name
        run = self._call("POST", "runs", body=body)
        return self.wait(run["run_id"], timeout=timeout) if wait else dict(run)

    def _submission(self, workflow: Any, data: str | None, fmt: str | None) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if isinstance(workflow, str | os.PathLike) and os.path.isfile(workflow):
            path = os.path.abspath(os.fspath(workflow))
            if self.is_local:
                body["file"] = path
            else:
                from chalicelib.workflow.formats import read_text

                body["workflow"] = read_text(path)
        elif isinstance(workflow, dict):
            body["workflow"] = workflow
        elif isinstance(workflow, str) and (workflow.lstrip()[:1] in ("{", "[") or "\n" in workflow):
            body["workflow"] = workflow  # the document's text
        elif isinstance(workflow, str | os.PathLike):
            raise NotFoundError(f"no workflow file {os.fspath(workflow)}")
        else:
            from chalicelib.workflow.formats import native

            body["workflow"] = json.loads(native.dump(workflow, indent=None))
        if fmt:
            body["format"] = fmt
        if data is not None:
            if self.is_local:
                if data.startswith("s3://"):
                    raise ConfigError("the local runtime reads inputs from a folder; s3:// data needs --api")
                body["data"] = os.path.abspath(data)
            else:
                if not data.startswith("s3://"):
                    raise ConfigError(f"a deployed stack reads inputs from S3: pass data='s3://bucket/prefix/', "
                                      f"after uploading them (aws s3 sync {data} s3://BUCKET/PREFIX/)")
                body["data"] = data
        return body

    def get(self, run_id: str) -> Run:
        """The run with its task counts per state and timings."""
        return dict(self._call("GET", f"runs/{run_id}"))

    def runs(self, limit: int = 50, state: str | None = None) -> list[Run]:
        return list(self._call("GET", "runs", {"limit": limit, "state": state})["runs"])

    def tasks(self, run_id: str, state: str | None = None, limit: int = 5000) -> list[dict[str, Any]]:
        """Its tasks (optionally only those in `state`, comma-separated states allowed), at most
        `limit`: the API's pages followed by their "next" token."""
        out: list[dict[str, Any]] = []
        token: str | None = None
        while len(out) < limit:
            params = {"state": state, "limit": min(5000, limit - len(out)), "next": token}
            page = self._call("GET", f"runs/{run_id}/tasks", params)
            out.extend(page["tasks"])
            token = page.get("next")
            if not token:
                break
        return out[:limit]

    def task(self, run_id: str, task_id: str) -> dict[str, Any]:
        """One task with its metrics and the tail of its log."""
        return dict(self._call("GET", f"runs/{run_id}/tasks/{task_id}"))

    def graph(self, run_id: str) -> dict[str, Any]:
        """Every task's type, parents, level and resources."""
        return dict(self._call("GET", f"runs/{run_id}/graph"))

    def cancel(self, run_id: str) -> Run:
        return dict(self._call("POST", f"runs/{run_id}/cancel"))

    def resume(self, run_id: str) -> Run:
        """Re-run what did not succeed, reuse what did."""
        return dict(self._call("POST", f"runs/{run_id}/resume"))

    def wait(self, run_id: str, timeout: float | None = None, poll_s: float | None = None,
             on_update: Callable[[Run], None] | None = None) -> Run:
        """Poll until the run ends; returns its last state. Raises RunTimeoutError after
        `timeout` seconds (None: no limit), RunStalledError if a local run lost its executor."""
        poll = poll_s if poll_s is not None else (0.25 if self.is_local else 2.0)
        deadline = None if timeout is None else time.monotonic() + timeout
        orphan_seen = 0
        while True:
            run = self.get(run_id)
            if on_update is not None:
                on_update(run)
            if run.get("state") in TERMINAL:
                return run
            if "owner_pid" in run and run["owner_pid"] is None:
                orphan_seen += 1  # twice in a row: not a moment between two owners
                if orphan_seen >= 2:
                    raise RunStalledError(f"run {run_id} is RUNNING but no process executes it (it was stopped); "
                                          f"`updraft resume {run_id}` continues it")
            else:
                orphan_seen = 0
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                raise RunTimeoutError(f"run {run_id} is still {run.get('state')} after {timeout:g} s", run)
            pause = poll if deadline is None else max(0.0, min(poll, deadline - now))
            time.sleep(pause)
            if not self.is_local:
                poll = min(poll * 1.5, 10.0)


def _error(status: int, body: Mapping[str, Any]) -> UpdraftError:
    message = str(body.get("message") or body.get("error") or f"HTTP {status}")
    if status == 400 and isinstance(body.get("problems"), list):
        problems = [Problem(str(p.get("message", "")), p.get("task_id"), p.get("field")) for p in body["problems"]]
        return WorkflowError(problems, body.get("source"))
    if status == 400 and isinstance(body.get("missing"), list):
        missing = MissingInputsError([str(m) for m in body["missing"]], "the run's data")
        missing.args = (message,)  # the server's own wording, which names where it looked
        return missing
    if status == 404:
        return NotFoundError(message)
    if status == 409:
        return StateConflictError(message, body)
    if status == 403:
        return ConfigError(f"the API refused the request (HTTP 403): {message}. Check that your AWS credentials "
                           "are allowed execute-api:Invoke on this API and that the URL and region are right")
    return ApiError(status, body)
