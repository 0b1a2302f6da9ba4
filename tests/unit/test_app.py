"""The Chalice app's routes and S3 trigger, through chalice.test.Client, on moto."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from chalice.test import Client

from chalicelib.backends.aws.components import Cloud, install
from chalicelib.engine.events import Schedule, Start, event_from_dict
from chalicelib.engine.states import RunState, TaskState
from tests.contract.awskit import make_cloud, mocked_aws


@dataclass
class App:
    client: Client
    cloud: Cloud

    def post(self, path: str, body: Any = None, raw: str | None = None, ctype: str = "application/json") -> Any:
        data = raw if raw is not None else json.dumps(body)
        return self.client.http.post(path, body=data, headers={"content-type": ctype})

    def events(self) -> list[dict[str, Any]]:
        """Take every message off the events queue."""
        msgs = self.cloud.events_queue.receive(10, visibility_s=30)
        self.cloud.events_queue.delete(msgs)
        return [json.loads(m.body) for m in msgs]

    def stored_objects(self) -> list[str]:
        return list(self.cloud.blobs.list("runs/"))


@pytest.fixture
def app() -> Iterator[App]:
    with mocked_aws():
        cloud, _ = make_cloud(task_shards=4)
        install(cloud)
        import app as app_module

        with Client(app_module.app) as client:
            yield App(client, cloud)
        install(None)


def wf(*tasks: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"name": "t", "tasks": list(tasks), **top}


ECHO = {"id": "a", "command": ["sh", "-c", "echo hi > a.txt"], "outputs": ["a.txt"]}
CAT = {"id": "b", "command": ["cat", "a.txt"], "inputs": ["a.txt"]}


# ---- POST /runs --------------------------------------------------------------------------------

def test_post_runs_accepts_a_workflow_and_starts_it(app: App) -> None:
    resp = app.post("/runs", wf(ECHO, CAT))
    assert resp.status_code == 202
    run_id = resp.json_body["run_id"]
    assert resp.json_body["task_count"] == 2 and resp.json_body["links"]["self"] == f"/runs/{run_id}"
    assert app.cloud.store.get_run(run_id).state is RunState.RUNNING
    assert app.cloud.blobs.exists(f"runs/{run_id}/workflow.json")
    assert app.events() == [{"kind": "start", "run_id": run_id}]


def test_post_runs_accepts_other_formats_as_text(app: App) -> None:
    resp = app.post("/runs", raw="out.txt:\n\techo hi > out.txt\n", ctype="text/plain")
    assert resp.status_code == 202, resp.json_body
    assert resp.json_body["task_count"] == 1


def test_post_runs_accepts_a_reference_to_a_workflow_in_s3(app: App) -> None:
    app.cloud.blobs.put_bytes("uploads/wf.json", json.dumps(wf(ECHO)).encode())
    resp = app.post("/runs", {"s3": f"s3://{app.cloud.config.bucket}/uploads/wf.json"})
    assert resp.status_code == 202, resp.json_body
    missing = app.post("/runs", {"s3": f"s3://{app.cloud.config.bucket}/uploads/none.json"})
    assert missing.status_code == 404 and "none.json" in missing.json_body["message"]


def test_an_invalid_workflow_gets_every_problem_and_stores_nothing(app: App) -> None:
    bad = wf({"id": "a", "command": "not-a-list"},
             {"id": "b", "command": ["x"], "outputs": ["/abs"], "resources": {"memory_mb": 999999}},
             {"id": "c", "command": ["x"], "after": ["ghost"]})
    resp = app.post("/runs", bad)
    assert resp.status_code == 400
    body = resp.json_body
    assert body["error"] == "invalid workflow"
    where = {(p["task_id"], p["field"]) for p in body["problems"]}
    assert ("a", "command") in where
    resp2 = app.post("/runs", wf({"id": "b", "command": ["x"], "outputs": ["/abs"], "resources": {"memory_mb": 999999}},
                                 {"id": "c", "command": ["x"], "after": ["ghost"]}))
    fields = {(p["task_id"], p["field"]) for p in resp2.json_body["problems"]}
    assert {("b", "outputs"), ("b", "resources.memory_mb"), ("c", "after")} <= fields
    assert app.cloud.store.list_runs() == [] and app.stored_objects() == [] and app.events() == []


def test_a_body_that_is_not_json_is_a_bad_request(app: App) -> None:
    resp = app.post("/runs", raw='{"tasks": [', ctype="application/json")
    assert resp.status_code == 400 and "not valid JSON" in resp.json_body["message"]
    assert app.post("/runs", {"workflow": wf(ECHO), "bogus": 1}).status_code == 400
    assert app.post("/runs", {"s3": "http://not-s3"}).status_code == 400
    assert app.post("/runs", {"workflow": wf(ECHO), "data": "/local/dir"}).status_code == 400


def test_missing_inputs_are_listed_and_nothing_is_stored(app: App) -> None:
    resp = app.post("/runs", {"workflow": wf({"id": "b", "command": ["cat", "in.txt"], "inputs": ["in.txt"]})})
    assert resp.status_code == 400 and resp.json_body["error"] == "missing inputs"
    assert any("in.txt" in m for m in resp.json_body["missing"])
    bucket = app.cloud.config.bucket
    resp = app.post("/runs", {"workflow": wf({"id": "b", "command": ["cat", "in.txt"], "inputs": ["in.txt"]}),
                              "data": f"s3://{bucket}/inputs/"})
    assert resp.status_code == 400
    assert app.cloud.store.list_runs() == [] and app.stored_objects() == []


def test_inputs_under_the_data_prefix_are_found_and_recorded_in_the_spec(app: App) -> None:
    bucket = app.cloud.config.bucket
    app.cloud.blobs.put_bytes("inputs/in.txt", b"x")
    resp = app.post("/runs", {"workflow": wf({"id": "b", "command": ["cat", "in.txt"], "inputs": ["in.txt"]}),
                              "data": f"s3://{bucket}/inputs/"})
    assert resp.status_code == 202, resp.json_body
    spec = json.loads(app.cloud.blobs.get_bytes(f"runs/{resp.json_body['run_id']}/workflow.json"))
    assert spec["inputs"] == [{"path": "in.txt", "source": f"s3://{bucket}/inputs/in.txt"}]


# ---- reading runs ---------------------------------------------------------------------------

def test_get_runs_lists_newest_first_with_state_filter_and_limit(app: App) -> None:
    ids = [app.post("/runs", wf(ECHO)).json_body["run_id"] for _ in range(3)]
    app.cloud.store.update_run(ids[0], [RunState.RUNNING], {"state": RunState.FAILED, "finished_at": 1e10})
    listed = app.client.http.get("/runs").json_body["runs"]
    assert {r["run_id"] for r in listed} == set(ids)
    assert [r["run_id"] for r in app.client.http.get("/runs?state=failed").json_body["runs"]] == [ids[0]]
    assert len(app.client.http.get("/runs?limit=1").json_body["runs"]) == 1
    assert app.client.http.get("/runs?state=sleepy").status_code == 400
    assert app.client.http.get("/runs?limit=many").status_code == 400


def test_get_run_has_state_counts_and_timings(app: App) -> None:
    run_id = app.post("/runs", wf(ECHO, CAT)).json_body["run_id"]
    body = app.client.http.get(f"/runs/{run_id}").json_body
    assert body["state"] == "RUNNING" and body["counts"] == {"READY": 1, "WAITING": 1}
    assert body["timings"]["created_at"] > 0 and body["timings"]["elapsed_s"] >= 0
    missing = app.client.http.get("/runs/nope")
    assert missing.status_code == 404 and "nope" in missing.json_body["message"]


def test_get_tasks_filters_by_state(app: App) -> None:
    run_id = app.post("/runs", wf(ECHO, CAT)).json_body["run_id"]
    all_tasks = app.client.http.get(f"/runs/{run_id}/tasks").json_body
    assert [t["id"] for t in all_tasks["tasks"]] == ["a", "b"] and not all_tasks["truncated"]
    ready = app.client.http.get(f"/runs/{run_id}/tasks?state=ready").json_body["tasks"]
    assert [(t["id"], t["state"]) for t in ready] == [("a", "READY")]
    both = app.client.http.get(f"/runs/{run_id}/tasks?state=READY,WAITING&limit=1").json_body
    assert both["count"] == 2 and both["truncated"] and len(both["tasks"]) == 1
    assert app.client.http.get(f"/runs/{run_id}/tasks?state=NAPPING").status_code == 400
    assert app.client.http.get("/runs/nope/tasks").status_code == 404


# ---- cancel and resume ----------------------------------------------------------------------

def test_cancel_queues_a_cancel_event(app: App) -> None:
    run_id = app.post("/runs", wf(ECHO)).json_body["run_id"]
    app.events()
    resp = app.client.http.post(f"/runs/{run_id}/cancel")
    assert resp.status_code == 202 and resp.json_body["state"] == "CANCELLING"
    assert app.events() == [{"kind": "cancel", "run_id": run_id}]
    app.cloud.store.update_run(run_id, [RunState.RUNNING], {"state": RunState.CANCELLED})
    assert app.client.http.post(f"/runs/{run_id}/cancel").status_code == 409
    assert app.client.http.post("/runs/nope/cancel").status_code == 404


def test_resume_resets_what_did_not_succeed_and_restarts(app: App) -> None:
    run_id = app.post("/runs", wf(ECHO, CAT)).json_body["run_id"]
    assert app.client.http.post(f"/runs/{run_id}/resume").status_code == 409  # still RUNNING
    store = app.cloud.store
    store.update_task(run_id, "a", [TaskState.READY], 1, {"state": TaskState.FAILED, "reason": "NONZERO_EXIT"})
    store.update_task(run_id, "b", [TaskState.WAITING], 1, {"state": TaskState.UPSTREAM_FAILED})
    store.update_run(run_id, [RunState.RUNNING], {"state": RunState.FAILED, "finished_at": 1e10})
    app.events()
    resp = app.client.http.post(f"/runs/{run_id}/resume")
    assert resp.status_code == 202 and resp.json_body["reset_tasks"] == 2
    assert store.get_run(run_id).state is RunState.RUNNING  # at once: `wait` never sees the old FAILED
    assert store.get_task(run_id, "a").state is TaskState.FAILED  # the call resets nothing itself...
    (resume,) = app.events()
    assert resume == {"kind": "resume", "run_id": run_id, "token": store.get_run(run_id).options["resuming"]}
    out = app.cloud.coordinator.handle([event_from_dict(resume)])  # ...the coordinator does, in windows
    a = store.get_task(run_id, "a")
    assert (a.state, a.attempt, a.reason) == (TaskState.READY, 2, None)
    assert out == [Schedule(Start(run_id), 0.0)]  # the last window starts the run
    store.update_run(run_id, [RunState.RUNNING], {"state": RunState.SUCCEEDED})
    assert app.client.http.post(f"/runs/{run_id}/resume").status_code == 409
    assert app.client.http.post("/runs/nope/resume").status_code == 404


def test_resume_windows_reset_a_high_fan_in_child_on_dynamodb(app: App) -> None:
    """120 parents (the child's edges are items of their own), one of which failed: the resume's
    window rewrites the child's edge markers, and the rerun parent's success readies it."""
    from msgspec.structs import replace

    from chalicelib.attempt import AttemptResult
    from chalicelib.engine import events as ev

    parents = [{"id": f"p{i:03d}", "command": ["true"]} for i in range(120)]
    child = {"id": "c", "command": ["true"], "after": [p["id"] for p in parents]}
    run_id = app.post("/runs", wf(*parents, child)).json_body["run_id"]
    app.events()
    co = app.cloud.coordinator
    co.config = replace(co.config, start_batch=50)  # the Start in windows too
    store = app.cloud.store
    todo: list[ev.Event] = [ev.Start(run_id)]
    while todo:
        todo = [i.event for i in co.handle([todo.pop(0)]) if isinstance(i, ev.Schedule)] + todo
    co.handle([ev.TaskSucceeded(run_id, p["id"], 1, AttemptResult(exit_code=0)) for p in parents[:119]])
    co.handle([ev.TaskFailed(run_id, "p119", 1, "NONZERO_EXIT", AttemptResult(exit_code=1))])
    assert store.get_run(run_id).state is RunState.FAILED
    assert store.get_task(run_id, "c").state is TaskState.UPSTREAM_FAILED
    assert app.client.http.post(f"/runs/{run_id}/resume").json_body["reset_tasks"] == 2
    todo = [ev.event_from_dict(app.events()[0])]
    while not isinstance(todo[0], ev.Start):
        todo = [i.event for i in co.handle(todo) if isinstance(i, ev.Schedule)]
    c = store.get_task(run_id, "c")
    assert (c.state, c.pending, c.attempt) == (TaskState.WAITING, 1, 2)
    assert [i.task_id for i in co.handle(todo) if isinstance(i, ev.Launch)] == ["p119"]
    out = co.handle([ev.TaskSucceeded(run_id, "p119", 2, AttemptResult(exit_code=0))])
    assert [i.task_id for i in out if isinstance(i, ev.Launch)] == ["c"]  # its edges counted exactly once


# ---- S3 trigger ---------------------------------------------------------------------------------

def upload(app: App, key: str, data: bytes) -> Any:
    bucket = app.cloud.config.bucket
    app.cloud.blobs.put_bytes(key, data)
    return app.client.lambda_.invoke("submit", app.client.events.generate_s3_event(bucket, key)).payload


def test_an_upload_under_submit_starts_a_run_and_says_so_beside_it(app: App) -> None:
    app.cloud.blobs.put_bytes("submit/job/data/in.txt", b"hello")
    out = upload(app, "submit/job/workflow.json",
                 json.dumps(wf({"id": "b", "command": ["cat", "in.txt"], "inputs": ["in.txt"]})).encode())
    assert out["status"] == 202, out
    receipt = json.loads(app.cloud.blobs.get_bytes("submit/job/workflow.json.run.json"))
    assert receipt["run_id"] == out["run_id"] and receipt["manifest"].endswith(f"runs/{out['run_id']}/manifest.json")
    assert app.cloud.store.get_run(out["run_id"]).options["source"].endswith("submit/job/workflow.json")


def test_an_invalid_upload_gets_an_error_object_beside_it(app: App) -> None:
    out = upload(app, "submit/bad.json", json.dumps(wf({"id": "a", "command": "oops"})).encode())
    assert out["status"] == 400
    error = json.loads(app.cloud.blobs.get_bytes("submit/bad.json.error.json"))
    assert error["error"] == "invalid workflow" and error["problems"][0]["task_id"] == "a"
    garbage = upload(app, "submit/garbage.json", b"\x00\x01 not a workflow")
    assert garbage["status"] == 400 and app.cloud.blobs.exists("submit/garbage.json.error.json")
    assert app.cloud.store.list_runs() == []


def test_receipts_inputs_and_other_prefixes_are_ignored(app: App) -> None:
    for key in ("submit/x.json.error.json", "submit/x.json.run.json", "submit/job/data/in.txt", "other/wf.json"):
        assert upload(app, key, b"{}")["status"] == 204
    assert app.cloud.store.list_runs() == []


def test_uploads_can_arrive_through_the_submit_queue(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    import app as app_module

    monkeypatch.setenv("UPDRAFT_SUBMIT_QUEUE", "updraft-submit")
    try:
        importlib.reload(app_module)
        app.cloud.blobs.put_bytes("submit/q.json", json.dumps(wf(ECHO)).encode())
        notice = {"Records": [{"eventName": "ObjectCreated:Put", "s3": {
            "bucket": {"name": app.cloud.config.bucket}, "object": {"key": "submit/q.json"}}}]}
        with Client(app_module.app) as client:
            event = client.events.generate_sqs_event([json.dumps(notice), json.dumps({"Event": "s3:TestEvent"})],
                                                     queue_name="updraft-submit")
            out = client.lambda_.invoke("submit", event).payload
        assert [s["status"] for s in out["submitted"]] == [202]
        assert app.cloud.store.get_run(out["submitted"][0]["run_id"]).task_count == 1
    finally:
        monkeypatch.delenv("UPDRAFT_SUBMIT_QUEUE")
        importlib.reload(app_module)


# ---- run scoping (issue 22, D12) and idempotent uploads --------------------------------------

def run_with_secret(app: App) -> str:
    app.cloud.blobs.put_bytes("private/s.txt", b"secret")
    resp = app.post("/runs", {"workflow": wf({"id": "a", "command": ["cat", "s.txt"], "inputs": ["s.txt"],
                                               "env": {"TOKEN": "t0ken"}}),
                              "data": f"s3://{app.cloud.config.bucket}/private/"})
    assert resp.status_code == 202, resp.json_body
    app.cloud.blobs.put_bytes(f"runs/{resp.json_body['run_id']}/data/s.txt", b"secret")  # as its tasks would
    app.events()
    return str(resp.json_body["run_id"])


def test_inputs_built_from_the_data_prefix_are_scoped_like_declared_ones(app: App) -> None:
    """data "s3://<bucket>/" + input "runs/A/..." named run A's data and stored spec: the data
    prefix was checked, the sources built from it were not."""
    run_a = run_with_secret(app)
    bucket = app.cloud.config.bucket
    stolen = [f"runs/{run_a}/data/s.txt", f"runs/{run_a}/workflow.json"]
    before = app.stored_objects()
    resp = app.post("/runs", {"workflow": wf({"id": "b", "command": ["cat", *stolen], "inputs": stolen}),
                              "data": f"s3://{bucket}/"})
    assert resp.status_code == 400, resp.json_body
    assert sorted(p["message"].split("'")[1] for p in resp.json_body["problems"]) == sorted(stolen)
    assert "t0ken" not in json.dumps(resp.json_body)
    assert app.stored_objects() == before and app.events() == [] and len(app.cloud.store.list_runs()) == 1


@pytest.mark.parametrize("where", ["submit/job/workflow.json", "submit/job/workflow.json.run.json",
                                   "submit/x.json.error.json"])
def test_uploads_and_receipts_under_submit_are_not_input_data(app: App, where: str) -> None:
    bucket = app.cloud.config.bucket
    app.cloud.blobs.put_bytes(where, b"{}")
    declared = app.post("/runs", wf({"id": "b", "command": ["cat", "i"], "inputs": ["i"]},
                                    inputs=[{"path": "i", "source": f"s3://{bucket}/{where}"}]))
    from_prefix = app.post("/runs", {"workflow": wf({"id": "b", "command": ["cat", where], "inputs": [where]}),
                                     "data": f"s3://{bucket}/"})
    spec = app.post("/runs", {"s3": f"s3://{bucket}/{where}"})
    for resp in (declared, from_prefix, spec):
        assert resp.status_code == 400 and "submit/" in json.dumps(resp.json_body), resp.json_body
    assert app.cloud.store.list_runs() == []


def test_an_uploads_data_folder_is_input_data(app: App) -> None:
    bucket = app.cloud.config.bucket
    app.cloud.blobs.put_bytes("submit/job/data/in.txt", b"hello")
    resp = app.post("/runs", {"workflow": wf({"id": "b", "command": ["cat", "in.txt"], "inputs": ["in.txt"]}),
                              "data": f"s3://{bucket}/submit/job/data/"})
    assert resp.status_code == 202, resp.json_body


def s3_event(app: App, key: str, sequencer: str = "005B039F73C627CE8B", version: str | None = None) -> Any:
    event = app.client.events.generate_s3_event(app.cloud.config.bucket, key)
    obj = event["Records"][0]["s3"]["object"]
    obj["sequencer"] = sequencer
    if version is not None:
        obj["versionId"] = version
    return event


def test_a_redelivered_upload_notification_starts_one_run(app: App) -> None:
    app.cloud.blobs.put_bytes("submit/once.json", json.dumps(wf(ECHO)).encode())
    event = s3_event(app, "submit/once.json")
    first = app.client.lambda_.invoke("submit", event).payload
    second = app.client.lambda_.invoke("submit", event).payload
    assert first["status"] == 202 and second["status"] == 200 and second["duplicate"] is True, (first, second)
    assert second["run_id"] == first["run_id"]
    assert [r.run_id for r in app.cloud.store.list_runs()] == [first["run_id"]]
    assert app.events() == [{"kind": "start", "run_id": first["run_id"]}]  # one Start: the redelivery sent none


def test_a_new_upload_of_the_same_key_is_a_new_run(app: App) -> None:
    app.cloud.blobs.put_bytes("submit/again.json", json.dumps(wf(ECHO)).encode())
    first = app.client.lambda_.invoke("submit", s3_event(app, "submit/again.json", "0001")).payload
    again = app.client.lambda_.invoke("submit", s3_event(app, "submit/again.json", "0002")).payload
    versioned = app.client.lambda_.invoke("submit", s3_event(app, "submit/again.json", "0002", "v2")).payload
    assert first["status"] == again["status"] == versioned["status"] == 202
    assert len({first["run_id"], again["run_id"], versioned["run_id"]}) == 3


def test_a_redelivered_notice_on_the_submit_queue_starts_one_run(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    import app as app_module

    monkeypatch.setenv("UPDRAFT_SUBMIT_QUEUE", "updraft-submit")
    try:
        importlib.reload(app_module)
        app.cloud.blobs.put_bytes("submit/q.json", json.dumps(wf(ECHO)).encode())
        notice = json.dumps({"Records": [{"eventName": "ObjectCreated:Put", "s3": {
            "bucket": {"name": app.cloud.config.bucket}, "object": {"key": "submit/q.json", "sequencer": "0A"}}}]})
        with Client(app_module.app) as client:
            outs = [client.lambda_.invoke("submit", client.events.generate_sqs_event(
                [notice], queue_name="updraft-submit")).payload for _ in range(2)]
        assert [s["status"] for out in outs for s in out["submitted"]] == [202, 200]
        assert len(app.cloud.store.list_runs()) == 1
    finally:
        monkeypatch.delenv("UPDRAFT_SUBMIT_QUEUE")
        importlib.reload(app_module)


def test_a_concurrent_duplicate_that_loses_the_race_keeps_the_winners_run(app: App) -> None:
    """Two deliveries both past the existence check: the second create_run loses the
    conditional write and returns the first run; nothing of it is deleted."""
    from chalicelib.backends.aws.api import upload_run_id
    from chalicelib.backends.aws.submit import Submission, submit

    bucket = app.cloud.config.bucket
    app.cloud.blobs.put_bytes("submit/race.json", json.dumps(wf(ECHO)).encode())
    uri = f"s3://{bucket}/submit/race.json"
    run_id = upload_run_id(bucket, "submit/race.json", "07")
    sub = Submission(uri=uri, source=uri, options={"source": uri}, upload=True)
    first = submit(sub, app.cloud, run_id)
    from chalicelib.backends.aws import submit as submit_module

    real = submit_module._existing
    submit_module._existing = lambda run_id, cloud: None  # type: ignore[assignment]  # both past the check
    try:
        second = submit(sub, app.cloud, run_id)
    finally:
        submit_module._existing = real
    assert second.run_id == first.run_id
    assert app.cloud.blobs.exists(f"runs/{run_id}/workflow.json")
    assert len(app.cloud.store.list_runs()) == 1


def test_an_upload_obeys_the_same_scoping_rule(app: App) -> None:
    run_a = run_with_secret(app)
    bucket = app.cloud.config.bucket
    app.cloud.blobs.put_bytes("submit/other/workflow.json", b"{}")
    sources = {"s.txt": f"s3://{bucket}/runs/{run_a}/data/s.txt", "spec.json": f"s3://{bucket}/runs/{run_a}/workflow.json",
               "theirs.json": f"s3://{bucket}/submit/other/workflow.json"}
    thief = wf({"id": "b", "command": ["cat", *sources], "inputs": list(sources)},
               inputs=[{"path": p, "source": s} for p, s in sources.items()])
    out = upload(app, "submit/thief.json", json.dumps(thief).encode())
    assert out["status"] == 400, out
    error = json.loads(app.cloud.blobs.get_bytes("submit/thief.json.error.json"))
    assert len(error["problems"]) == 3 and "t0ken" not in json.dumps(error)
    assert len(app.cloud.store.list_runs()) == 1
