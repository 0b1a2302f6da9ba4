"""The Fargate worker loop on moto: claim, heartbeat, cancel, SIGTERM hand-back, idle exit."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chalicelib.backends.aws.components import Cloud
from chalicelib.backends.aws.observability import obs
from chalicelib.engine import events as ev
from chalicelib.engine.states import RunState, TaskState
from chalicelib.workflow.formats import native
from tests.contract.awskit import make_cloud, mocked_aws
from workers.worker import Worker


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[Cloud]:
    with mocked_aws():
        cloud, _ = make_cloud(task_shards=2, workroot=str(tmp_path), worker_lease_s=3.0)
        yield cloud


def start_container_task(cloud: Cloud, task: dict[str, Any]) -> str:
    from chalicelib.engine.lifecycle import create_run
    from chalicelib.engine.spec import RunSpec

    spec = RunSpec.of(native.from_data({"name": "w", "tasks": [{**task, "placement": "container"}]}))
    run = create_run(spec, cloud.store, cloud.blobs, cloud.clock())
    cloud.shell.apply(cloud.coordinator.handle([ev.Start(run.run_id)]))  # -> container queue
    return run.run_id


def events(cloud: Cloud) -> list[dict[str, Any]]:
    msgs = cloud.events_queue.receive(10, visibility_s=30)
    cloud.events_queue.delete(msgs)
    return [json.loads(m.body) for m in msgs]


def worker(cloud: Cloud, idle_s: float = 30.0) -> Worker:
    return Worker(cloud, obs(), idle_s=idle_s, lease_s=3.0, poll_wait_s=0.5)


def in_thread(w: Worker) -> threading.Thread:
    thread = threading.Thread(target=w.run, daemon=True)
    thread.start()
    return thread


def wait_for(check: Any, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def test_a_worker_runs_a_task_reports_it_and_deletes_the_message(cloud: Cloud) -> None:
    run_id = start_container_task(cloud, {"id": "a", "shell": "echo hi > a.txt", "outputs": ["a.txt"]})
    w = worker(cloud, idle_s=1.0)
    assert w.run() == 0  # runs the task, then exits when idle
    assert w.tasks_run == 1
    assert [e["kind"] for e in events(cloud)] == ["succeeded"]
    assert cloud.blobs.get_bytes(f"runs/{run_id}/data/a.txt") == b"hi\n"
    assert cloud.container_queue.backlog() == 0
    assert cloud.store.get_task(run_id, "a").state is TaskState.RUNNING  # the coordinator finishes it


def test_the_heartbeat_keeps_the_lease_and_the_message(cloud: Cloud) -> None:
    run_id = start_container_task(cloud, {"id": "a", "command": ["sleep", "4"]})
    w = worker(cloud)
    thread = in_thread(w)
    wait_for(lambda: cloud.store.get_task(run_id, "a").state is TaskState.RUNNING)
    first = cloud.store.get_task(run_id, "a").lease_expires
    time.sleep(2.5)  # past a 3 s lease without heartbeats... but they come every second
    assert cloud.store.get_task(run_id, "a").lease_expires > first  # type: ignore[operator]
    assert cloud.container_queue.receive(1) == []  # still invisible
    wait_for(lambda: w.tasks_run == 1)
    w.stopping.set()
    thread.join(timeout=10)
    assert [e["kind"] for e in events(cloud)] == ["succeeded"]


def test_a_cancelled_task_is_killed_at_the_next_heartbeat(cloud: Cloud) -> None:
    run_id = start_container_task(cloud, {"id": "a", "command": ["sleep", "30"]})
    w = worker(cloud)
    thread = in_thread(w)
    wait_for(lambda: cloud.store.get_task(run_id, "a").state is TaskState.RUNNING)
    started = time.monotonic()
    cloud.coordinator.handle([ev.Cancel(run_id)])
    wait_for(lambda: w.tasks_run == 1, timeout_s=10)
    assert time.monotonic() - started < 5  # not the 30 s the command wanted
    w.stopping.set()
    thread.join(timeout=10)
    assert cloud.store.get_task(run_id, "a").state is TaskState.CANCELLED
    assert cloud.store.get_run(run_id).state is RunState.CANCELLED


def test_sigterm_hands_a_running_task_back(cloud: Cloud) -> None:
    run_id = start_container_task(cloud, {"id": "a", "command": ["sleep", "30"]})
    w = worker(cloud)
    thread = in_thread(w)
    wait_for(lambda: cloud.store.get_task(run_id, "a").state is TaskState.RUNNING)
    w.stop()  # what the SIGTERM handler does
    thread.join(timeout=10)
    assert not thread.is_alive()
    rec = cloud.store.get_task(run_id, "a")
    assert (rec.state, rec.attempt) == (TaskState.DISPATCHED, 1)  # un-claimed, same attempt
    assert events(cloud) == []  # nothing reported
    again = cloud.container_queue.receive(1, wait_s=1)
    assert [json.loads(m.body)["task_id"] for m in again] == ["a"]  # visible again at once


def test_a_duplicate_message_is_dropped_without_running(cloud: Cloud, tmp_path: Path) -> None:
    marker = tmp_path / "ran.log"
    run_id = start_container_task(cloud, {"id": "a", "shell": f"echo x >> {marker}"})
    body = json.dumps({"run_id": run_id, "task_id": "a", "attempt": 1})
    cloud.container_queue.send([body])  # SQS delivered the launch twice
    w = worker(cloud, idle_s=1.0)
    w.run()
    assert marker.read_text() == "x\n"
    assert w.tasks_run == 1 and cloud.container_queue.backlog() == 0


def test_an_idle_worker_exits(cloud: Cloud) -> None:
    started = time.monotonic()
    assert worker(cloud, idle_s=0.5).run() == 0
    assert time.monotonic() - started < 5


def test_a_worker_applies_the_resources_of_an_escalated_retry(cloud: Cloud) -> None:
    run_id = start_container_task(cloud, {"id": "a", "command": ["sleep", "5"], "resources": {"timeout_s": 60}})
    cloud.container_queue.delete(cloud.container_queue.receive(10, visibility_s=30))
    cloud.container_queue.send([json.dumps({"run_id": run_id, "task_id": "a", "attempt": 1,
                                            "resources": {"timeout_s": 1.0}})])
    started = time.monotonic()
    worker(cloud, idle_s=0.5).run()
    assert time.monotonic() - started < 4
    assert [(e["kind"], e.get("reason")) for e in events(cloud)] == [("failed", "TIMEOUT")]
