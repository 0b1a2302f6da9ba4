"""The run API over the local runtime: the Chalice app's routes, onto the same run service
(chalicelib/service/runs.py), so the dashboard page and the SDK work the same against
`updraft ui` and a deployed stack. This module only matches routes.

Errors: chalicelib/service/errors.py, plus 404 for an unknown route and 405 for a known one
called with another method. Each call opens its own LocalRuntime (SQLite connection), so
server threads share nothing; a submitted or resumed run is executed by an executor process.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import unquote

from chalicelib.errors import UpdraftError
from chalicelib.service import runs
from chalicelib.service.errors import Reply, error_body
from chalicelib.service.runs import MAX_TASKS_PAGE
from chalicelib.service.runtime import Runtime

__all__ = ["MAX_TASKS_PAGE", "LocalApi", "error_body"]


class LocalApi:
    """`request(method, path, params, body) -> (status, body)`: the transport the SDK and the
    local dashboard server use for a work dir."""

    is_local = True

    def __init__(self, workdir: str | None = None, concurrency: int | None = None) -> None:
        from chalicelib.backends.local.runtime import default_workdir

        self.workdir = os.path.abspath(workdir or default_workdir())
        self.concurrency = concurrency
        self._routes: list[tuple[str, re.Pattern[str], Callable[..., Reply]]] = [
            ("GET", re.compile(r"^/runs$"), lambda rt, params, body: runs.list_runs(rt, params)),
            ("POST", re.compile(r"^/runs$"), lambda rt, params, body: runs.post_run(rt, body)),
            ("GET", re.compile(r"^/runs/([^/]+)$"), lambda rt, run, params, body: runs.get_run(rt, run)),
            ("GET", re.compile(r"^/runs/([^/]+)/tasks$"),
             lambda rt, run, params, body: runs.get_tasks(rt, run, params)),
            ("GET", re.compile(r"^/runs/([^/]+)/tasks/([^/]+)$"),
             lambda rt, run, task, params, body: runs.get_task(rt, run, task)),
            ("GET", re.compile(r"^/runs/([^/]+)/graph$"), lambda rt, run, params, body: runs.get_graph(rt, run)),
            ("POST", re.compile(r"^/runs/([^/]+)/cancel$"), lambda rt, run, params, body: runs.cancel_run(rt, run)),
            ("POST", re.compile(r"^/runs/([^/]+)/resume$"), lambda rt, run, params, body: runs.resume(rt, run)),
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
                with self._rt() as rt:
                    return handler(rt, *(unquote(g) for g in match.groups()), dict(params or {}), body)
            except UpdraftError as exc:
                return error_body(exc)
        if allowed:
            return 405, {"error": "method not allowed", "message": f"{method} {path}: use {', '.join(allowed)}"}
        return 404, {"error": "not found", "message": f"no route {method} {path}"}

    @contextmanager
    def _rt(self) -> Iterator[Runtime]:
        from chalicelib.backends.local.compose import served

        rt = served(self.workdir, self.concurrency)
        try:
            yield rt
        finally:
            rt.close()
