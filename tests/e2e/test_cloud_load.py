"""The cloud path under load (issue 23, item 5), on the emulated cloud.

- A function attempt's lease starts when it is claimed, not when it is invoked: an async
  invoke waiting in Lambda's own queue (throttled, retried by Lambda until
  MaximumEventAgeInSeconds) is not a lost function. Delayed past the function's timeout but
  within that age, the sweeper leaves it alone; past the age (plus the grace), it is lost.
- An invoke Lambda drops unrun (EventAgeExceeded) is a lost function, retried as one.
- Scaling the worker service is best effort: the attempts are queued before UpdateService is
  called, so a failed scale call fails no task; the sweeper scales again.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from chalicelib.backends.aws.wiring import TASK_EVENT_AGE_S
from chalicelib.engine.states import TaskState
from chalicelib.engine.transitions import FUNCTION_LEASE_GRACE_S
from tests.e2e.test_cloud_harness import EmulatedCloud, destination_record, emulated_cloud
from tests.faults.inject import Fault, always, inject, remove

pytestmark = pytest.mark.slow

TIMEOUT_S = 60
ACCESS_DENIED = Fault("AccessDeniedException", 400, "json", "User is not authorized to perform: ecs:UpdateService")


class OffsetClock:
    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return time.time() + self.offset


def post_one(ec: EmulatedCloud, placement: str) -> str:
    wf = {"name": "load", "tasks": [{"id": "t", "shell": "echo hi > out.txt", "outputs": ["out.txt"],
                                     "placement": placement, "resources": {"timeout_s": TIMEOUT_S}}]}
    resp = ec.post("/runs", wf)
    assert resp.status_code == 202, resp.json_body
    return str(resp.json_body["run_id"])


def drain(ec: EmulatedCloud) -> None:
    while ec.deliver_batch():
        pass


def with_clock(ec: EmulatedCloud) -> OffsetClock:
    clock = OffsetClock()
    ec.cloud.clock = clock.now  # the sweeper's and the task function's clock
    ec.cloud.coordinator.clock = clock
    return clock


def test_an_invoke_waiting_in_lambdas_queue_is_not_lost_until_its_max_age(tmp_path: Path) -> None:
    with emulated_cloud(tmp_path, workers=0) as ec:
        clock = with_clock(ec)
        run_id = post_one(ec, "function")
        drain(ec)  # Start: t#1 dispatched and invoked; the invoke waits (throttled) in Lambda's queue
        assert ec.fake_lambda.pending and ec.cloud.store.get_task(run_id, "t").state is TaskState.DISPATCHED
        # long past the function's timeout (+ grace), within the invoke's max age: not lost
        clock.offset = TIMEOUT_S + FUNCTION_LEASE_GRACE_S + 3600.0
        assert ec.sweep()["expired"] == 0
        drain(ec)
        rec = ec.cloud.store.get_task(run_id, "t")
        assert (rec.state, rec.attempt) == (TaskState.DISPATCHED, 1)
        # it finally runs: the claim gives it the normal lease, and it succeeds as attempt 1
        assert ec.deliver_invocation()
        final = ec.run_until_done(run_id, timeout_s=60)
        assert final["state"] == "SUCCEEDED"
        assert ec.cloud.store.get_task(run_id, "t").attempt == 1


def test_an_invoke_older_than_its_max_age_is_a_lost_function(tmp_path: Path) -> None:
    with emulated_cloud(tmp_path, workers=0) as ec:
        clock = with_clock(ec)
        run_id = post_one(ec, "function")
        drain(ec)
        ec.fake_lambda.pending.clear()  # Lambda dropped it (and its EventAgeExceeded record was lost)
        clock.offset = TASK_EVENT_AGE_S + FUNCTION_LEASE_GRACE_S + 1.0
        assert ec.sweep()["expired"] == 1
        drain(ec)
        rec = ec.cloud.store.get_task(run_id, "t")
        assert rec.attempt == 2 and rec.state in (TaskState.READY, TaskState.DISPATCHED)  # retried as lost
        clock.offset = 0.0
        final = ec.run_until_done(run_id, timeout_s=60)
        assert final["state"] == "SUCCEEDED"


def test_an_invoke_dropped_for_its_age_is_retried_as_a_lost_function(tmp_path: Path) -> None:
    with emulated_cloud(tmp_path, workers=0) as ec:
        run_id = post_one(ec, "function")
        drain(ec)
        payload: dict[str, Any] = ec.fake_lambda.pending.popleft()
        record = destination_record(payload, "EventAgeExceeded", None)  # what Lambda sends OnFailure
        ec.cloud.clients.sqs.send_message(QueueUrl=ec.made.events_queue_url, MessageBody=json.dumps(record))
        drain(ec)
        rec = ec.cloud.store.get_task(run_id, "t")
        assert rec.attempt == 2 and rec.state in (TaskState.READY, TaskState.DISPATCHED), rec
        final = ec.run_until_done(run_id, timeout_s=60)
        assert final["state"] == "SUCCEEDED"


def test_a_failed_scale_call_fails_no_queued_task(tmp_path: Path) -> None:
    with emulated_cloud(tmp_path, workers=0) as ec:
        ecs = ec.cloud.clients.ecs
        fault = inject(ecs, ACCESS_DENIED, always({"UpdateService"}))
        run_id = post_one(ec, "container")
        drain(ec)  # Start: t#1 queued for a worker; scaling the service to 1 fails
        assert fault.injected["UpdateService"] >= 1
        rec = ec.cloud.store.get_task(run_id, "t")
        assert (rec.state, rec.attempt) == (TaskState.DISPATCHED, 1), rec
        attrs = ec.cloud.clients.sqs.get_queue_attributes(QueueUrl=ec.made.container_queue_url,
                                                          AttributeNames=["ApproximateNumberOfMessages"])
        assert attrs["Attributes"]["ApproximateNumberOfMessages"] == "1"
        remove(ecs, fault)
        assert ec.sweep()["workers"] == 1  # the sweeper scales the service to the backlog
        config = ec.cloud.config
        (service,) = ecs.describe_services(cluster=config.ecs_cluster, services=[config.ecs_service])["services"]
        assert service["desiredCount"] == 1
        # a worker (the one the service would start) runs it
        ec.start_worker()
        final = ec.run_until_done(run_id, timeout_s=120)
        assert final["state"] == "SUCCEEDED"
