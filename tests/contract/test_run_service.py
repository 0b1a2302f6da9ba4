"""The run API's contract, run on both backends through their own routers: the local server's
(chalicelib/backends/local/api.py over SQLite and a folder) and the Chalice app's (app.py through
chalice.test.Client, over moto's DynamoDB, S3 and SQS). Both route onto one run service
(chalicelib/service/); a body, a status or a guard that differs between them fails here.

Runs are started but not executed: the local server's executor process is replaced by a
recorder, and nothing consumes the cloud's events queue. So a submitted run stays RUNNING with
its first task READY, and the tests set other states through the store.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from chalicelib.attempt import AttemptResult
from chalicelib.engine.states import RunState, TaskState
from chalicelib.errors import (
    MissingInputsError,
    NotFoundError,
    Problem,
    RunBusyError,
    StateConflictError,
    UpdraftError,
    WorkflowError,
)
from chalicelib.service import runs as service_runs
from chalicelib.service.errors import error_body
from chalicelib.service.views import task_body

ECHO = {"id": "a", "command": ["sh", "-c", "echo hi > a.txt"], "outputs": ["a.txt"]}
CAT = {"id": "b", "command": ["cat", "a.txt"], "inputs": ["a.txt"]}
WF = {"name": "contract", "tasks": [ECHO, CAT]}
RUN_KEYS = {"run_id", "name", "state", "created_at", "finished_at", "task_count", "spec_key", "options"}


class Backend:
    """One backend as a client sees it, plus its store for setting states."""

    name: str
    store: Any

    def call(self, method: str, path: str, params: dict[str, Any] | None = None,
             body: Any = None) -> tuple[int, dict[str, Any]]:
        raise NotImplementedError

    def started(self) -> list[str]:
        """The runs started since the last call (each time the service had one executed)."""
        raise NotImplementedError

    def busy(self, run_id: str) -> contextlib.AbstractContextManager[None]:
        """While inside, the run is being executed."""
        raise NotImplementedError


class LocalBackend(Backend):
    name = "local"

    def __init__(self, workdir: str, monkeypatch: pytest.MonkeyPatch) -> None:
        from chalicelib.backends.local import executor
        from chalicelib.backends.local.api import LocalApi
        from chalicelib.backends.local.runtime import LocalRuntime

        self._started: list[str] = []
        monkeypatch.setattr(executor, "start", lambda wd, run_id, *a, **k: self._started.append(run_id) or 0)
        self.api = LocalApi(workdir)
        self.rt = LocalRuntime(workdir)
        self.store = self.rt.store

    def call(self, method: str, path: str, params: dict[str, Any] | None = None,
             body: Any = None) -> tuple[int, dict[str, Any]]:
        status, reply = self.api.request(method, path, {k: str(v) for k, v in (params or {}).items()}, body)
        return status, json.loads(json.dumps(reply))  # what goes over the wire

    def started(self) -> list[str]:
        out, self._started[:] = list(self._started), []
        return out

    def busy(self, run_id: str) -> contextlib.AbstractContextManager[None]:
        return self.rt.owning(run_id)  # the lock an executing process holds


class CloudBackend(Backend):
    name = "cloud"

    def __init__(self, client: Any, cloud: Any) -> None:
        self.client = client
        self.cloud = cloud
        self.store = cloud.store

    def call(self, method: str, path: str, params: dict[str, Any] | None = None,
             body: Any = None) -> tuple[int, dict[str, Any]]:
        url = path + (f"?{urlencode(params)}" if params else "")
        if method == "GET":
            resp = self.client.http.get(url)
        else:
            data = json.dumps(body) if body is not None else None
            resp = self.client.http.post(url, body=data, headers={"content-type": "application/json"})
        return resp.status_code, resp.json_body

    def started(self) -> list[str]:
        """The Starts queued, and those a resume's windows end with (the coordinator handles its
        Resume events, as the coordinator function would)."""
        from chalicelib.engine import events as ev

        msgs = self.cloud.events_queue.receive(10, visibility_s=30)
        self.cloud.events_queue.delete(msgs)
        todo = [ev.event_from_dict(json.loads(m.body)) for m in msgs]
        out: list[str] = []
        while todo:
            event = todo.pop(0)
            if isinstance(event, ev.Start):
                out.append(event.run_id)
            elif isinstance(event, ev.Resume):
                todo += [i.event for i in self.cloud.coordinator.handle([event]) if isinstance(i, ev.Schedule)]
        return out

    def busy(self, run_id: str) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()  # a RUNNING run may be live: the coordinator executes it


@pytest.fixture(params=["local", "cloud"])
def backend(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Backend]:
    if request.param == "local":
        local = LocalBackend(str(tmp_path / "wd"), monkeypatch)
        yield local
        local.rt.close()
        return
    from chalice.test import Client

    from chalicelib.backends.aws.components import install
    from tests.contract.awskit import make_cloud, mocked_aws

    with mocked_aws():
        cloud, _ = make_cloud(task_shards=4)
        install(cloud)
        import app as app_module

        try:
            with Client(app_module.app) as client:
                yield CloudBackend(client, cloud)
        finally:
            install(None)


def submit(backend: Backend, workflow: dict[str, Any] = WF, **fields: Any) -> str:
    status, body = backend.call("POST", "/runs", body={"workflow": workflow, **fields})
    assert status == 202, body
    return str(body["run_id"])


def finish(backend: Backend, run_id: str, state: RunState) -> None:
    backend.store.update_run(run_id, [RunState.RUNNING], {"state": state, "finished_at": 2e9})


# ---- submit -----------------------------------------------------------------------------------

def test_submit_answers_202_with_the_run_and_starts_it(backend: Backend) -> None:
    status, body = backend.call("POST", "/runs", body={"workflow": WF})
    assert status == 202, body
    run_id = body["run_id"]
    assert body == {"run_id": run_id, "state": "RUNNING", "task_count": 2,
                    "links": {"self": f"/runs/{run_id}", "tasks": f"/runs/{run_id}/tasks"}}
    assert backend.started() == [run_id]


def test_name_in_the_request_names_the_run(backend: Backend) -> None:
    run_id = submit(backend, name="renamed")
    assert backend.call("GET", f"/runs/{run_id}")[1]["name"] == "renamed"
    assert backend.call("GET", f"/runs/{run_id}/graph")[1]["name"] == "renamed"
    status, body = backend.call("POST", "/runs", body={"workflow": WF, "name": 7})
    assert status == 400 and body["problems"][0]["field"] == "name", body


def test_an_unknown_request_field_is_a_400_listing_the_known_ones(backend: Backend) -> None:
    status, body = backend.call("POST", "/runs", body={"workflow": WF, "nmae": "x"})
    assert status == 400 and body["error"] == "invalid workflow", body
    assert "'nmae'" in body["message"] and "'name'" in body["message"] and "'format'" in body["message"]


def test_an_invalid_workflow_is_a_400_with_every_problem_and_stores_nothing(backend: Backend) -> None:
    bad = {"tasks": [{"id": "a"}, {"id": "a", "command": ["true"]}]}
    status, body = backend.call("POST", "/runs", body={"workflow": bad})
    assert status == 400, body
    assert set(body) == {"error", "source", "problems", "message"} and body["error"] == "invalid workflow"
    assert len(body["problems"]) >= 2 and all(set(p) == {"task_id", "field", "message"} for p in body["problems"])
    assert backend.call("GET", "/runs")[1] == {"runs": []}
    assert backend.started() == []


def test_missing_inputs_are_a_400_listing_them(backend: Backend) -> None:
    status, body = backend.call("POST", "/runs", body={"workflow": {"tasks": [CAT]}})
    assert status == 400 and body["error"] == "missing inputs", body
    assert len(body["missing"]) == 1 and body["missing"][0].startswith("a.txt")
    assert backend.call("GET", "/runs")[1] == {"runs": []}


# ---- reads ------------------------------------------------------------------------------------

def test_get_run_is_the_record_with_counts_timings_and_owner(backend: Backend) -> None:
    run_id = submit(backend)
    status, body = backend.call("GET", f"/runs/{run_id}")
    assert status == 200
    assert set(body) == RUN_KEYS | {"counts", "timings", "owner_pid"}
    assert body["counts"] == {"READY": 1, "WAITING": 1} and body["owner_pid"] is None
    assert set(body["timings"]) == {"created_at", "finished_at", "elapsed_s"} and body["timings"]["elapsed_s"] >= 0


def test_get_runs_lists_each_run_with_its_counts(backend: Backend) -> None:
    """Drifted before: the cloud listed runs without counts."""
    ids = [submit(backend) for _ in range(2)]
    finish(backend, ids[0], RunState.FAILED)
    status, body = backend.call("GET", "/runs")
    assert status == 200 and set(body) == {"runs"}
    assert {r["run_id"] for r in body["runs"]} == set(ids)
    for run in body["runs"]:
        assert set(run) == RUN_KEYS | {"counts"}
        assert run["counts"] == backend.call("GET", f"/runs/{run['run_id']}")[1]["counts"]
    assert [r["run_id"] for r in backend.call("GET", "/runs", {"state": "failed"})[1]["runs"]] == [ids[0]]
    assert len(backend.call("GET", "/runs", {"limit": 1})[1]["runs"]) == 1


def test_a_task_in_a_listing_is_the_same_body_on_both(backend: Backend) -> None:
    """Drifted before: the cloud listed `to_dict()`, without what the runner measured."""
    run_id = submit(backend)
    result = AttemptResult(duration_s=1.5, bytes_in=3, bytes_out=7, peak_rss_mb=12.0, worker="w1")
    backend.store.update_task(run_id, "a", [TaskState.READY], 1,
                              {"state": TaskState.SUCCEEDED, "exit_code": 0, "finished_at": 2e9, "result": result})
    status, body = backend.call("GET", f"/runs/{run_id}/tasks")
    assert status == 200 and set(body) == {"run_id", "count", "truncated", "next", "tasks"}
    tasks = {t["id"]: t for t in body["tasks"]}
    assert tasks["a"] == json.loads(json.dumps(task_body(backend.store.get_task(run_id, "a"))))
    assert tasks["a"]["duration_s"] == 1.5 and tasks["a"]["worker"] == "w1"
    assert set(tasks["b"]) == {"id", "state", "attempts", "placement", "started_at", "finished_at", "exit_code",
                               "reason"}
    detail = backend.call("GET", f"/runs/{run_id}/tasks/a")[1]
    assert {k: detail[k] for k in tasks["a"]} == tasks["a"]  # the detail adds to the listed body


def test_tasks_come_a_page_at_a_time_with_the_total_count(backend: Backend) -> None:
    run_id = submit(backend)
    page = backend.call("GET", f"/runs/{run_id}/tasks", {"limit": 1})[1]
    assert (page["count"], page["truncated"], [t["id"] for t in page["tasks"]]) == (2, True, ["a"])
    both = backend.call("GET", f"/runs/{run_id}/tasks", {"state": "READY,waiting"})[1]
    assert (both["count"], both["truncated"], [t["id"] for t in both["tasks"]]) == (2, False, ["a", "b"])
    ready = backend.call("GET", f"/runs/{run_id}/tasks", {"state": "ready"})[1]
    assert (ready["count"], [(t["id"], t["state"]) for t in ready["tasks"]]) == (1, [("a", "READY")])
    assert backend.call("GET", f"/runs/{run_id}/tasks", {"limit": 0})[1]["tasks"][0]["id"] == "a"  # clamped to 1


def test_a_page_reads_at_most_its_limit(backend: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before, both loaded every task of the run to return one page."""
    run_id = submit(backend)
    asked: list[int | None] = []
    real = type(backend.store).page_tasks

    def spy(store: Any, rid: str, states: Any = None, limit: int = 256, after: str | None = None) -> Any:
        asked.append(limit)
        return real(store, rid, states, limit, after)

    monkeypatch.setattr(type(backend.store), "page_tasks", spy)
    assert len(backend.call("GET", f"/runs/{run_id}/tasks", {"limit": 1})[1]["tasks"]) == 1
    assert asked == [1]


@pytest.mark.parametrize(("path", "params", "error"), [
    ("/runs", {"state": "sleepy"}, "UpdraftError"),
    ("/runs", {"limit": "many"}, "UpdraftError"),
    ("/runs/{run}/tasks", {"state": "NAPPING"}, "bad state"),
    ("/runs/{run}/tasks", {"limit": "1.5"}, "UpdraftError"),
])
def test_bad_parameters_are_a_400_naming_them(backend: Backend, path: str, params: dict[str, str],
                                              error: str) -> None:
    run_id = submit(backend)
    status, body = backend.call("GET", path.format(run=run_id), params)
    assert status == 400 and body["error"] == error and set(body) == {"error", "message"}, body
    name = "state" if "state" in params else "limit"
    assert name in body["message"]


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/runs/nope"), ("GET", "/runs/nope/tasks"), ("GET", "/runs/nope/graph"),
    ("GET", "/runs/nope/tasks/a"), ("POST", "/runs/nope/cancel"), ("POST", "/runs/nope/resume"),
])
def test_an_unknown_run_is_a_404_naming_it(backend: Backend, method: str, path: str) -> None:
    status, body = backend.call(method, path)
    assert status == 404 and body["error"] == "not found" and "nope" in body["message"], body


def test_an_unknown_task_is_a_404_naming_it(backend: Backend) -> None:
    run_id = submit(backend)
    status, body = backend.call("GET", f"/runs/{run_id}/tasks/zz")
    assert status == 404 and "zz" in body["message"], body


# ---- pages of tasks: an opaque "next" token, each task once, a byte cap ------------------------

WIDE = {"name": "wide", "tasks": [{"id": f"t{i:02d}", "command": ["true"]} for i in range(23)]
        + [{"id": "last", "command": ["true"], "after": ["t00"]}]}


def pages(backend: Backend, run_id: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    token = None
    for _ in range(100):
        query = {**params, **({"next": token} if token else {})}
        status, body = backend.call("GET", f"/runs/{run_id}/tasks", query)
        assert status == 200, body
        out.append(body)
        token = body["next"]
        assert body["truncated"] is (token is not None)
        if token is None:
            return out
    raise AssertionError("the pages never ended")


def ids(bodies: list[dict[str, Any]]) -> list[str]:
    return [t["id"] for b in bodies for t in b["tasks"]]


def test_next_tokens_walk_every_task_once(backend: Backend) -> None:
    run_id = submit(backend, WIDE)
    walked = pages(backend, run_id, {"limit": 5})
    assert sorted(ids(walked)) == sorted(t["id"] for t in WIDE["tasks"]) and len(walked) == 5
    assert all(b["count"] == 24 for b in walked)
    ready = pages(backend, run_id, {"limit": 4, "state": "ready"})
    assert sorted(ids(ready)) == [f"t{i:02d}" for i in range(23)]
    assert pages(backend, run_id, {"state": "waiting"})[0]["tasks"][0]["id"] == "last"


def test_a_token_of_another_run_or_filter_or_none_of_ours_is_a_400(backend: Backend) -> None:
    run_id, other = submit(backend, WIDE), submit(backend, WIDE)
    token = backend.call("GET", f"/runs/{run_id}/tasks", {"limit": 3})[1]["next"]
    for rid, params in ((other, {"next": token}), (run_id, {"next": token, "state": "READY"}),
                        (run_id, {"next": "not-a-token"}), (run_id, {"next": "e30"})):
        status, body = backend.call("GET", f"/runs/{rid}/tasks", params)
        assert status == 400 and body["error"] == "bad page token", body
        assert "next" in body["message"]


def test_a_page_stops_short_of_its_byte_cap(backend: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    run_id = submit(backend, WIDE)
    one = len(str(backend.call("GET", f"/runs/{run_id}/tasks", {"limit": 1})[1]["tasks"][0]))
    monkeypatch.setattr(service_runs, "MAX_PAGE_BYTES", 1024 + 3 * one)  # room for about three tasks
    walked = pages(backend, run_id, {"limit": 1000})
    assert sorted(ids(walked)) == sorted(t["id"] for t in WIDE["tasks"])
    assert len(walked) > 5 and max(len(b["tasks"]) for b in walked) <= 3


# ---- cancel and resume ------------------------------------------------------------------------

def test_cancel_a_live_run_then_an_ended_one(backend: Backend) -> None:
    run_id = submit(backend)
    status, body = backend.call("POST", f"/runs/{run_id}/cancel")
    assert status == 202 and set(body) == {"run_id", "state"}, body
    assert body["state"] in ("CANCELLED", "CANCELLING")  # at once locally; by the coordinator in the cloud
    done = submit(backend)
    finish(backend, done, RunState.SUCCEEDED)
    status, body = backend.call("POST", f"/runs/{done}/cancel")
    assert status == 409 and body == {"error": "conflict", "message": f"run {done} is already SUCCEEDED"}


def test_resume_is_refused_for_a_succeeded_run_and_one_being_executed(backend: Backend) -> None:
    run_id = submit(backend)
    backend.started()
    with backend.busy(run_id):
        status, body = backend.call("POST", f"/runs/{run_id}/resume")
    assert status == 409 and body["error"] == "conflict" and run_id in body["message"], body
    finish(backend, run_id, RunState.SUCCEEDED)
    status, body = backend.call("POST", f"/runs/{run_id}/resume")
    assert status == 409 and "SUCCEEDED" in body["message"], body
    assert backend.started() == []


def test_resume_resets_what_did_not_succeed_and_starts_the_run(backend: Backend) -> None:
    run_id = submit(backend)
    store = backend.store
    store.update_task(run_id, "a", [TaskState.READY], 1, {"state": TaskState.FAILED, "reason": "NONZERO_EXIT"})
    store.update_task(run_id, "b", [TaskState.WAITING], 1, {"state": TaskState.UPSTREAM_FAILED})
    finish(backend, run_id, RunState.FAILED)
    backend.started()
    status, body = backend.call("POST", f"/runs/{run_id}/resume")
    assert status == 202 and body == {"run_id": run_id, "state": "RUNNING", "reset_tasks": 2}, body
    assert backend.started() == [run_id]
    assert backend.call("GET", f"/runs/{run_id}")[1]["counts"] == {"READY": 1, "WAITING": 1}


# ---- errors -----------------------------------------------------------------------------------

class NamedLikeBusyError(UpdraftError):
    """Not a RunBusyError, whatever its name says."""


NamedLikeBusyError.__name__ = "RunBusyError"


@pytest.mark.parametrize(("exc", "status", "error"), [
    (WorkflowError([Problem("bad", "a", "command")], "wf.json"), 400, "invalid workflow"),
    (MissingInputsError(["x.txt"], "data/"), 400, "missing inputs"),
    (NotFoundError("no run r1"), 404, "not found"),
    (StateConflictError("lost"), 409, "conflict"),
    (RunBusyError("run r1 is being executed by process 7"), 409, "conflict"),
    (type("SubBusyError", (RunBusyError,), {})("busy"), 409, "conflict"),
    (NamedLikeBusyError("by name only"), 400, "RunBusyError"),
    (UpdraftError("limit must be a whole number"), 400, "UpdraftError"),
])
def test_error_bodies_go_by_type(exc: UpdraftError, status: int, error: str) -> None:
    code, body = error_body(exc)
    assert (code, body["error"], body["message"]) == (status, error, str(exc))
