"""The app's event handlers - coordinator, task function, sweeper - and the shell they share,
through chalice.test.Client on moto (Lambda replaced by a recorder of async Invokes)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from chalice.test import Client
from msgspec.structs import replace

from chalicelib.attempt import AttemptResult
from chalicelib.backends.aws.components import Cloud, install
from chalicelib.backends.aws.messages import deferred_body, event_body, lambda_failure_reason, task_result
from chalicelib.engine import events as ev
from chalicelib.engine.states import Reason, RunState, TaskState
from tests.contract.awskit import make_cloud, mocked_aws
from tests.e2e.test_cloud_harness import Context, RecordingLambda, destination_record, sqs_record


class FailingLambda:
    def __init__(self, code: str) -> None:
        self.code = code

    def invoke(self, **_: Any) -> dict[str, Any]:
        from botocore.exceptions import ClientError

        raise ClientError({"Error": {"Code": self.code, "Message": "no"}}, "Invoke")


@dataclass
class Harness:
    client: Client
    cloud: Cloud
    lam: RecordingLambda

    def submit(self, *tasks: dict[str, Any]) -> str:
        resp = self.client.http.post("/runs", body=json.dumps({"name": "h", "tasks": list(tasks)}),
                                     headers={"content-type": "application/json"})
        assert resp.status_code == 202, resp.json_body
        return str(resp.json_body["run_id"])

    def take(self, queue: Any = None) -> list[str]:
        queue = queue or self.cloud.events_queue
        msgs = queue.receive(10, visibility_s=30)
        queue.delete(msgs)
        return [m.body for m in msgs]

    def coordinate(self, bodies: list[str]) -> dict[str, Any]:
        records = [sqs_record({"MessageId": f"m{i}", "ReceiptHandle": f"r{i}", "Body": b})
                   for i, b in enumerate(bodies)]
        return dict(self.client.lambda_.invoke("coordinator", {"Records": records}).payload)

    def task(self, payload: dict[str, Any]) -> dict[str, Any]:
        return dict(self.app.handler_map["task"](payload, Context("task")))

    @property
    def app(self) -> Any:
        import app as app_module

        return app_module.app


@pytest.fixture
def h(tmp_path: Any) -> Iterator[Harness]:
    lam = RecordingLambda()
    with mocked_aws():
        cloud, _ = make_cloud(overrides={"lambda": lam}, task_shards=2, workroot=str(tmp_path))
        install(cloud)
        import app as app_module

        with Client(app_module.app) as client:
            yield Harness(client, cloud, lam)
        install(None)


ECHO = {"id": "a", "shell": "echo hello > a.txt", "outputs": ["a.txt"]}
CAT = {"id": "b", "command": ["cat", "a.txt"], "inputs": ["a.txt"], "placement": "container"}


# ---- coordinator -------------------------------------------------------------------------------

def test_the_coordinator_dispatches_functions_and_containers(h: Harness) -> None:
    run_id = h.submit(ECHO, {**CAT, "id": "c", "inputs": [], "command": ["true"]})
    out = h.coordinate(h.take())
    assert out == {"batchItemFailures": []}
    assert list(h.lam.pending) == [{"run_id": run_id, "task_id": "a", "attempt": 1}]
    assert [json.loads(b) for b in h.take(h.cloud.container_queue)] == [{"run_id": run_id, "task_id": "c",
                                                                        "attempt": 1}]
    assert h.cloud.store.get_task(run_id, "a").state is TaskState.DISPATCHED
    assert h.cloud.scaler.current() == 1  # the worker service follows the container backlog


def test_unreadable_records_are_reported_and_the_rest_processed(h: Harness) -> None:
    run_id = h.submit(ECHO)
    start = h.take()[0]
    out = h.coordinate(["not json", start, json.dumps({"kind": "martian", "run_id": run_id})])
    assert sorted(f["itemIdentifier"] for f in out["batchItemFailures"]) == ["m0", "m2"]
    assert h.cloud.store.get_task(run_id, "a").state is TaskState.DISPATCHED


def test_an_event_that_fails_is_isolated_from_its_batch(h: Harness) -> None:
    run_id = h.submit(ECHO)
    start = h.take()[0]
    ghost = event_body(ev.TaskSucceeded("no-such-run", "x", 1))
    out = h.coordinate([start, ghost])
    assert out["batchItemFailures"] == [{"itemIdentifier": "m1"}]
    assert h.cloud.store.get_task(run_id, "a").state is TaskState.DISPATCHED


def test_a_failure_whose_read_keeps_failing_is_a_batch_item_failure(h: Harness, monkeypatch: Any) -> None:
    """A store error other than not-found reaches the handler: the event is reported failed
    (SQS redelivers it) instead of acknowledged and lost, and its redelivery fails the task
    with its own reason (not LEASE_EXPIRED when the lease later runs out)."""
    from botocore.exceptions import ClientError

    run_id = h.submit(ECHO)
    h.coordinate(h.take())
    read = h.cloud.store.get_task
    throttled = {"left": 2}  # the batch, then the event alone

    def get_task(rid: str, tid: str) -> Any:
        if throttled["left"] > 0:
            throttled["left"] -= 1
            raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow"}},
                              "GetItem")
        return read(rid, tid)

    monkeypatch.setattr(h.cloud.store, "get_task", get_task)
    failed = event_body(ev.TaskFailed(run_id, "a", 1, Reason.NONZERO_EXIT.value, AttemptResult(exit_code=3)))
    assert h.coordinate([failed]) == {"batchItemFailures": [{"itemIdentifier": "m0"}]}
    assert h.cloud.store.get_task(run_id, "a").state is TaskState.DISPATCHED
    assert h.coordinate([failed]) == {"batchItemFailures": []}  # SQS's redelivery
    rec = h.cloud.store.get_task(run_id, "a")
    assert (rec.state, rec.reason, rec.exit_code) == (TaskState.FAILED, "NONZERO_EXIT", 3)


def test_a_timer_not_yet_due_goes_back_on_the_queue(h: Harness) -> None:
    run_id = h.submit(ECHO)
    h.take()
    due = h.cloud.clock() + 3600
    out = h.coordinate([deferred_body(ev.Start(run_id), due)])
    assert out["batchItemFailures"] == []
    assert h.cloud.store.get_task(run_id, "a").state is TaskState.READY  # not started yet
    assert h.cloud.events_queue.backlog() == 1  # re-deferred (SQS delays at most 900 s)


def test_long_schedules_travel_as_deferred_messages(h: Harness) -> None:
    h.cloud.sink.send([ev.Start("r")], delay_s=2000)
    h.cloud.sink.send([ev.Start("r")], delay_s=0)
    bodies = [json.loads(b) for b in h.take()]
    assert bodies == [{"kind": "start", "run_id": "r"}]  # the other is delayed 900 s on the queue
    assert h.cloud.events_queue.backlog() == 1


def test_destination_records_are_acted_on_only_when_needed(h: Harness) -> None:
    run_id = h.submit(ECHO, CAT)
    h.coordinate(h.take())
    payload = h.lam.pending.popleft()
    done = ev.TaskSucceeded(run_id, "a", 1, AttemptResult(exit_code=0))
    h.cloud.store.update_task(run_id, "a", [TaskState.DISPATCHED], 1, {"state": TaskState.RUNNING})
    delivered = destination_record(payload, "Success", task_result(done, delivered=True))
    h.coordinate([json.dumps(delivered)])
    assert h.cloud.store.get_task(run_id, "a").state is TaskState.RUNNING  # a backup copy: ignored
    undelivered = destination_record(payload, "Success", task_result(done, delivered=False))
    h.coordinate([json.dumps(undelivered)])
    assert h.cloud.store.get_task(run_id, "a").state is TaskState.SUCCEEDED
    assert h.cloud.store.get_task(run_id, "b").state is TaskState.DISPATCHED


def test_a_crashed_task_function_becomes_a_typed_failure(h: Harness) -> None:
    run_id = h.submit({**ECHO, "placement": "auto", "resources": {"timeout_s": 60}})
    h.coordinate(h.take())
    payload = h.lam.pending.popleft()
    crash = destination_record(payload, "RetriesExhausted", {
        "errorType": "Sandbox.Timedout", "errorMessage": "2026-11-21T10:00:00Z Task timed out after 60.00 seconds"})
    h.coordinate([json.dumps(crash)])
    rec = h.cloud.store.get_task(run_id, "a")
    # an `auto` task that timed out as a function is retried in a container (spill)
    assert (rec.state, rec.attempt, rec.placement, rec.reason) == (TaskState.DISPATCHED, 2, "container", "TIMEOUT")
    assert "raise the task's resources.timeout_s" in rec.result.log_tail  # the field to raise
    assert h.take(h.cloud.container_queue)


@pytest.mark.parametrize(("etype", "message", "reason"), [
    ("Sandbox.Timedout", "Task timed out after 900.00 seconds", Reason.TIMEOUT),
    ("Runtime.ExitError", "RequestId: x Error: Runtime exited with error: signal: killed", Reason.OOM),
    ("Runtime.OutOfMemory", "", Reason.OOM),
    ("OSError", "[Errno 28] No space left on device", Reason.DISK_QUOTA),
    ("KeyError", "'task'", Reason.LAUNCH),
])
def test_lambda_errors_map_to_failure_reasons(etype: str, message: str, reason: Reason) -> None:
    assert lambda_failure_reason(etype, message) == reason.value


def test_a_finished_run_gets_its_manifest(h: Harness) -> None:
    run_id = h.submit(ECHO)
    h.coordinate(h.take())
    h.task(h.lam.pending.popleft())
    h.coordinate(h.take())
    assert h.cloud.store.get_run(run_id).state is RunState.SUCCEEDED
    manifest = json.loads(h.cloud.blobs.get_bytes(f"runs/{run_id}/manifest.json"))
    assert manifest["state"] == "SUCCEEDED" and manifest["counts"] == {"SUCCEEDED": 1}
    assert manifest["outputs"] == [{"path": "a.txt", "key": f"runs/{run_id}/data/a.txt", "produced": True,
                                    "uri": f"s3://{h.cloud.config.bucket}/runs/{run_id}/data/a.txt"}]
    assert manifest["tasks"][0]["id"] == "a" and manifest["tasks"][0]["duration_s"] >= 0


# ---- task function ---------------------------------------------------------------------------

def test_the_task_function_runs_reports_and_returns_its_event(h: Harness) -> None:
    run_id = h.submit(ECHO)
    h.coordinate(h.take())
    payload = h.lam.pending.popleft()
    out = h.task(payload)
    assert out["delivered"] is True and out["event"]["kind"] == "succeeded"
    assert h.cloud.blobs.get_bytes(f"runs/{run_id}/data/a.txt") == b"hello\n"
    sent = [json.loads(b) for b in h.take()]
    assert [e["kind"] for e in sent] == ["succeeded"] and sent[0]["attempt"] == 1
    assert h.cloud.store.get_task(run_id, "a").state is TaskState.RUNNING  # claimed; coordinator finishes it


def test_a_duplicate_invocation_runs_nothing(h: Harness, tmp_path: Any) -> None:
    marker = tmp_path / "ran.log"
    run_id = h.submit({"id": "a", "shell": f"echo x >> {marker}"})
    h.coordinate(h.take())
    payload = h.lam.pending.popleft()
    assert h.task(payload)["event"] is not None
    assert h.task(payload) == {"delivered": False, "event": None}  # the same async event again
    assert marker.read_text() == "x\n"
    h.coordinate(h.take())
    assert h.task(payload) == {"delivered": False, "event": None}  # late: the task is finished
    assert h.cloud.store.get_run(run_id).state is RunState.SUCCEEDED


def test_a_failing_command_is_reported_as_a_failure(h: Harness) -> None:
    run_id = h.submit({"id": "a", "shell": "echo boom >&2; exit 3"})
    h.coordinate(h.take())
    out = h.task(h.lam.pending.popleft())
    assert out["event"]["kind"] == "failed" and out["event"]["reason"] == "NONZERO_EXIT"
    assert "boom" in out["event"]["result"]["log_tail"]
    h.coordinate(h.take())
    rec = h.cloud.store.get_task(run_id, "a")
    assert (rec.state, rec.exit_code, rec.reason) == (TaskState.FAILED, 3, "NONZERO_EXIT")
    assert h.cloud.store.get_run(run_id).state is RunState.FAILED


def test_the_task_timeout_is_capped_by_the_invocation_time_left(h: Harness) -> None:
    run_id = h.submit({"id": "a", "command": ["sleep", "30"], "resources": {"timeout_s": 600}})
    h.coordinate(h.take())
    handler = h.app.handler_map["task"]
    out = handler(h.lam.pending.popleft(), Context("task", seconds=21.5))  # 1.5 s left after the margin
    assert out["event"]["reason"] == "TIMEOUT"
    assert h.cloud.store.get_task(run_id, "a").state is TaskState.RUNNING


def test_a_bad_payload_is_an_error(h: Harness) -> None:
    with pytest.raises(ValueError, match="run_id"):
        h.task({"task_id": "a"})


# ---- launch failures ---------------------------------------------------------------------------

def test_a_permanent_launch_error_fails_the_attempt_with_the_reason(h: Harness) -> None:
    run_id = h.submit(ECHO)
    h.cloud.clients._clients["lambda"] = FailingLambda("ResourceNotFoundException")
    h.coordinate(h.take())
    h.coordinate(h.take())
    rec = h.cloud.store.get_task(run_id, "a")
    assert (rec.state, rec.reason) == (TaskState.FAILED, "LAUNCH")
    assert "ResourceNotFoundException" in rec.result.log_tail


def test_a_throttled_launch_is_retried_later(h: Harness) -> None:
    run_id = h.submit(ECHO)
    h.cloud.clients._clients["lambda"] = FailingLambda("TooManyRequestsException")
    h.coordinate(h.take())
    rec = h.cloud.store.get_task(run_id, "a")
    assert (rec.state, rec.attempt) == (TaskState.READY, 1)  # same attempt, back to READY
    assert h.cloud.events_queue.backlog() == 1  # its DispatchDue, delayed a few seconds


# ---- sweeper -----------------------------------------------------------------------------------

def sweep(h: Harness) -> dict[str, Any]:
    event = h.client.events.generate_cw_event("aws.events", "Scheduled Event", {}, [], region="us-east-1")
    return dict(h.client.lambda_.invoke("sweeper", event).payload)


def test_the_sweeper_expires_leases(h: Harness) -> None:
    run_id = h.submit(ECHO)
    h.take()
    h.cloud.store.update_task(run_id, "a", [TaskState.READY], 1, {"state": TaskState.DISPATCHED, "lease_expires": 1.0})
    report = sweep(h)
    assert report["expired"] == 1 and report["workers"] == 0
    assert [json.loads(b) for b in h.take()] == [{"kind": "lease_expired", "run_id": run_id, "task_id": "a",
                                                  "attempt": 1}]


def test_the_sweeper_finishes_a_run_whose_counters_lagged(h: Harness) -> None:
    run_id = h.submit(ECHO)
    h.take()
    store = h.cloud.store
    store.update_task(run_id, "a", [TaskState.READY], 1, {"state": TaskState.SUCCEEDED})
    # a coordinator crashed after the transition and before its counter write:
    store._count(run_id, TaskState.SUCCEEDED, TaskState.READY)
    store.flush()
    assert store.counts(run_id) == {"READY": 1}
    h.cloud.coordinator.handle([ev.Start(run_id)])
    assert store.get_run(run_id).state is RunState.RUNNING  # the counters say a task is left
    h.cloud.config = replace(h.cloud.config, stuck_run_after_s=0.0)
    report = sweep(h)
    assert report["finished"] == [run_id]
    assert store.get_run(run_id).state is RunState.SUCCEEDED
    assert store.counts(run_id) == {"SUCCEEDED": 1}
    assert h.cloud.blobs.exists(f"runs/{run_id}/manifest.json")


def test_the_sweeper_sends_a_stalled_resume_again_and_never_finishes_it(h: Harness) -> None:
    run_id = h.submit(ECHO)
    h.take()
    store = h.cloud.store
    store.update_task(run_id, "a", [TaskState.READY], 1, {"state": TaskState.FAILED, "reason": "NONZERO_EXIT"})
    store.update_run(run_id, [RunState.RUNNING], {"state": RunState.FAILED, "finished_at": 1e10})
    assert h.client.http.post(f"/runs/{run_id}/resume").status_code == 202
    token = store.get_run(run_id).options["resuming"]
    resume = {"kind": "resume", "run_id": run_id, "token": token}
    assert [json.loads(b) for b in h.take()] == [resume]  # ...and then lost
    h.cloud.config = replace(h.cloud.config, stuck_run_after_s=0.0)
    report = sweep(h)  # every task is terminal, but the run is being resumed: not finished
    assert report["restarted"] == [run_id] and report["finished"] == []
    assert store.get_run(run_id).state is RunState.RUNNING
    again = h.take()
    assert [json.loads(b) for b in again] == [resume]
    assert h.coordinate(again) == {"batchItemFailures": []}  # the coordinator function resets `a`, starts the run
    a = store.get_task(run_id, "a")
    assert a.attempt == 2 and a.state is not TaskState.FAILED
    assert "resuming" not in store.get_run(run_id).options


def test_the_sweeper_writes_missing_manifests(h: Harness) -> None:
    run_id = h.submit(ECHO)
    h.cloud.store.update_run(run_id, [RunState.RUNNING], {"state": RunState.CANCELLED, "finished_at": 1e10})
    report = sweep(h)
    assert report["manifests"] == [run_id]
    assert json.loads(h.cloud.blobs.get_bytes(f"runs/{run_id}/manifest.json"))["state"] == "CANCELLED"


def test_without_partial_batch_responses_a_failure_fails_the_batch(h: Harness) -> None:
    from chalicelib.backends.aws.coordinator_function import BatchFailedError

    h.cloud.config = replace(h.cloud.config, partial_batch=0)
    run_id = h.submit(ECHO)
    with pytest.raises(BatchFailedError):
        h.coordinate([h.take()[0], "not json"])
    assert h.cloud.store.get_task(run_id, "a").state is TaskState.DISPATCHED  # the good one was applied


def test_an_escalated_retry_runs_with_the_resources_its_launch_carries(h: Harness) -> None:
    from chalicelib.backends.aws.messages import task_payload

    run_id = h.submit({"id": "a", "command": ["sleep", "5"], "resources": {"timeout_s": 60}})
    h.coordinate(h.take())
    h.lam.pending.clear()
    launch = ev.Launch(run_id, "a", 1, "function", {"timeout_s": 1.0, "memory_mb": 2048})
    payload = task_payload(launch)
    assert payload["resources"] == {"timeout_s": 1.0, "memory_mb": 2048}
    out = h.task(payload)  # the override, not the spec's 60 s, bounds the attempt
    assert out["event"]["reason"] == "TIMEOUT"
    with pytest.raises(ValueError, match="resources"):
        h.task({**payload, "resources": {"memory_mb": "lots"}})


def test_a_completion_with_thousands_of_output_hashes_still_fits_one_sqs_message() -> None:
    from chalicelib.backends.aws.messages import BODY_BUDGET, decode

    outputs = {f"chunks/part-{i:05d}.fa": f"{i:064x}" for i in range(5000)}  # ~450 KB of hashes
    done = ev.TaskSucceeded("r1", "split", 2, AttemptResult(exit_code=0, duration_s=3.5, outputs=outputs,
                                                             log_tail="ok\n"))
    small = ev.TaskSucceeded("r1", "merge", 1, AttemptResult(exit_code=0, outputs={"total": "f" * 64}))
    assert decode(event_body(small)).event == small  # a body that fits travels whole
    for body in (event_body(done), deferred_body(done, 1e9), json.dumps(task_result(done, True))):
        assert len(body.encode()) <= BODY_BUDGET < 256 * 1024
    got = decode(event_body(done)).event
    assert isinstance(got, ev.TaskSucceeded) and (got.run_id, got.task_id, got.attempt) == ("r1", "split", 2)
    assert got.result == AttemptResult(exit_code=0, duration_s=3.5, log_tail="ok\n", outputs_omitted=5000)
    deferred = decode(deferred_body(done, 1e9))
    assert deferred.due == 1e9 and deferred.event == got
    huge_tail = ev.TaskFailed("r1", "t", 1, "NONZERO_EXIT", AttemptResult(exit_code=1, log_tail="x" * 400_000))
    shed = decode(event_body(huge_tail)).event
    assert isinstance(shed, ev.TaskFailed) and shed.reason == "NONZERO_EXIT"
    assert shed.result.log_tail == "x" * 8192 and shed.result.exit_code == 1
