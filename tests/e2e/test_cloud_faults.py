"""Faults on the emulated cloud, through the app's real handlers and the real worker process:

- a worker killed with SIGKILL mid-task: its lease runs out, the sweeper retries the task,
  the run succeeds; a task that kills its worker every time ends FAILED with LEASE_EXPIRED
  after the coordinator's extra attempts for lost workers, never hanging;
- a completion of an old attempt arriving after a retry started (and after it finished) is
  ignored: the record, the outputs and the children are those of the current attempt;
- poison events (unreadable, naming an unknown run, or failing every time for a known run)
  go to the events dead-letter queue after the queue's receive limit, readable there, and a
  run they name is failed with the reason instead of staying RUNNING.

After each: the invariants of tests/faults/invariants.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from chalicelib.backends.aws.coordinator_function import DEAD_LETTER_AFTER
from chalicelib.backends.aws.messages import event_body
from chalicelib.backends.aws.provision import EVENTS_MAX_RECEIVES, MAX_RECEIVES
from chalicelib.engine import events as ev
from chalicelib.engine.states import TaskState
from tests.e2e.test_cloud_harness import REPO, Delivery, EmulatedCloud, emulated_cloud
from tests.e2e.test_cloud_runs import effects_by_task
from tests.faults.invariants import check_invariants

pytestmark = pytest.mark.slow

MARK = 'echo "$UPDRAFT_TASK_ID $UPDRAFT_ATTEMPT" >> "$EFFECTS"; '


def invariants(ec: EmulatedCloud, run_id: str) -> list[str]:
    return check_invariants(ec.cloud.store, ec.cloud.blobs, run_id, ec.cloud.specs.get(run_id))


def submit(ec: EmulatedCloud, tasks: list[dict[str, Any]], effects: Path, **defaults: Any) -> str:
    wf = {"name": "faults", "defaults": {"env": {"EFFECTS": str(effects)}, **defaults}, "tasks": tasks}
    resp = ec.post("/runs", wf)
    assert resp.status_code == 202, resp.json_body
    return str(resp.json_body["run_id"])


def tasks_of(ec: EmulatedCloud, run_id: str) -> dict[str, dict[str, Any]]:
    return {t["id"]: t for t in ec.get(f"/runs/{run_id}/tasks").json_body["tasks"]}


# ---- killed workers -----------------------------------------------------------------------------

def kill_when(path: Path, pids: list[int], timeout_s: float = 60.0) -> threading.Thread:
    """SIGKILL the container (worker and task) once the task has written its pid to `path`."""

    def watch() -> None:
        deadline = time.monotonic() + timeout_s
        while not path.exists() or not path.read_text().strip():
            if time.monotonic() > deadline:
                return
            time.sleep(0.02)
        for pid in [*pids, int(path.read_text().split()[0])]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_a_worker_killed_mid_task_is_retried_and_the_run_succeeds(tmp_path: Path) -> None:
    effects, started = tmp_path / "effects.log", tmp_path / "started"
    effects.touch()
    slow = (MARK + f'if [ "$UPDRAFT_ATTEMPT" = 1 ]; then echo $$ > {started}; sleep 60; fi; '
            'echo "made by attempt $UPDRAFT_ATTEMPT" > out.txt')
    with emulated_cloud(tmp_path, worker_lease_s=3.0) as ec:
        ec.replace_dead_workers = True
        victim = ec.workers[0]
        run_id = submit(ec, [
            {"id": "slow", "shell": slow, "outputs": ["out.txt"], "placement": "container"},
            {"id": "after", "shell": MARK + "cat out.txt > copy.txt", "inputs": ["out.txt"],
             "outputs": ["copy.txt"], "placement": "function"},
        ], effects)
        watcher = kill_when(started, [victim.pid])
        t0 = time.monotonic()
        final = ec.run_until_done(run_id, timeout_s=90, sweep_every_s=1.0)
        watcher.join(timeout=1)
        assert victim.poll() == -signal.SIGKILL and ec.replaced_workers >= 1
        assert final["state"] == "SUCCEEDED", (final, ec.worker_log()[-3000:])
        assert time.monotonic() - t0 < 60  # not the 60 s the killed attempt would have slept
        tasks = tasks_of(ec, run_id)
        assert tasks["slow"]["attempts"] == 2 and tasks["after"]["attempts"] == 1
        assert effects_by_task(effects) == {"slow": ["1", "2"], "after": ["1"]}
        assert ec.cloud.blobs.get_bytes(f"runs/{run_id}/data/copy.txt") == b"made by attempt 2\n"
        assert invariants(ec, run_id) == []


def test_a_task_that_kills_its_worker_every_time_ends_failed_lease_expired(tmp_path: Path) -> None:
    effects = tmp_path / "effects.log"
    effects.touch()
    with emulated_cloud(tmp_path, worker_lease_s=3.0) as ec:
        ec.replace_dead_workers = True
        run_id = submit(ec, [
            {"id": "assassin", "shell": MARK + "kill -9 $PPID", "placement": "container"},
            {"id": "child", "command": ["true"], "after": ["assassin"], "placement": "function"},
            {"id": "bystander", "shell": MARK + "echo fine > f.txt", "outputs": ["f.txt"],
             "placement": "function"},
        ], effects)
        t0 = time.monotonic()
        final = ec.run_until_done(run_id, timeout_s=120, sweep_every_s=1.0)
        assert time.monotonic() - t0 < 100
        assert final["state"] == "FAILED"
        assert final["counts"] == {"FAILED": 1, "UPSTREAM_FAILED": 1, "SUCCEEDED": 1}
        assassin = ec.cloud.store.get_task(run_id, "assassin")
        lost_worker_attempts = ec.cloud.coordinator_config.lost_worker_retries
        assert assassin.reason == "LEASE_EXPIRED" and assassin.attempt == 1 + lost_worker_attempts
        assert "lease expired" in assassin.result.log_tail
        assert ec.replaced_workers == 1 + lost_worker_attempts  # each attempt killed a worker
        assert effects_by_task(effects) == {"assassin": ["1", "2", "3"], "bystander": ["1"]}
        assert invariants(ec, run_id) == []


# ---- a late completion of an old attempt --------------------------------------------------------

class OffsetClock:
    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return time.time() + self.offset


def take_events(ec: EmulatedCloud) -> list[str]:
    sqs = ec.cloud.clients.sqs
    bodies: list[str] = []
    while True:
        got = sqs.receive_message(QueueUrl=ec.made.events_queue_url, MaxNumberOfMessages=10,
                                  VisibilityTimeout=30).get("Messages", [])
        if not got:
            return bodies
        for m in got:
            bodies.append(m["Body"])
            sqs.delete_message(QueueUrl=ec.made.events_queue_url, ReceiptHandle=m["ReceiptHandle"])


def put_events(ec: EmulatedCloud, bodies: list[str]) -> None:
    for body in bodies:
        ec.cloud.clients.sqs.send_message(QueueUrl=ec.made.events_queue_url, MessageBody=body)


def test_a_late_completion_of_an_old_attempt_is_ignored(tmp_path: Path) -> None:
    effects = tmp_path / "effects.log"
    effects.touch()
    # no memoization: attempt 2 would reuse attempt 1's result, and this test tells them apart
    with emulated_cloud(tmp_path, workers=0, memoize=0) as ec:
        clock = OffsetClock()
        ec.cloud.clock = clock.now  # the sweeper's and the task function's clock
        ec.cloud.coordinator.clock = clock
        run_id = submit(ec, [
            {"id": "t", "shell": MARK + 'echo "attempt $UPDRAFT_ATTEMPT" > out.txt', "outputs": ["out.txt"]},
            {"id": "u", "shell": MARK + "cat out.txt > seen.txt", "inputs": ["out.txt"], "outputs": ["seen.txt"]},
        ], effects, placement="function", resources={"timeout_s": 60})
        assert ec.deliver_batch()  # Start: t#1 invoked
        assert ec.deliver_invocation()  # t#1 runs and reports... but its completion is delayed
        late = take_events(ec)
        kinds = [json.loads(b).get("kind") or json.loads(b)["requestContext"]["condition"] for b in late]
        assert sorted(kinds) == ["Success", "succeeded"]  # its own send and its destination record
        # as if its function had vanished: the lease runs out, the sweeper retries t (attempt 2)
        clock.offset = 3600.0
        assert ec.sweep()["expired"] == 1
        assert ec.deliver_batch()
        assert ec.cloud.store.get_task(run_id, "t").attempt == 2
        # attempt 1's completion arrives now, and a copy of its destination record whose own
        # send had failed (the coordinator acts on those): both are stale
        record = json.loads(next(b for b in late if "requestContext" in b))
        record["responsePayload"]["delivered"] = False
        put_events(ec, [*late, json.dumps(record)])
        while ec.deliver_batch():
            pass
        rec = ec.cloud.store.get_task(run_id, "t")  # attempt 2 waits out its backoff, or is launched
        assert rec.state in (TaskState.READY, TaskState.DISPATCHED) and rec.attempt == 2
        assert ec.cloud.store.get_task(run_id, "u").state is TaskState.WAITING  # not dispatched by it
        final = ec.run_until_done(run_id, timeout_s=60)
        assert final["state"] == "SUCCEEDED"
        put_events(ec, late)  # and once more after the run finished
        while ec.deliver_batch():
            pass
        assert ec.get(f"/runs/{run_id}").json_body["state"] == "SUCCEEDED"
        assert ec.cloud.store.get_task(run_id, "t").attempt == 2
        assert ec.cloud.blobs.get_bytes(f"runs/{run_id}/data/seen.txt") == b"attempt 2\n"
        assert effects_by_task(effects) == {"t": ["1", "2"], "u": ["1"]}
        assert invariants(ec, run_id) == []  # the recorded output hash is attempt 2's


# ---- poison events ------------------------------------------------------------------------------

def dead_letters(ec: EmulatedCloud) -> list[dict[str, Any]]:
    """What an operator sees: `aws sqs receive-message --queue-url <events DLQ>
    --attribute-names All --visibility-timeout 0 --max-number-of-messages 10`."""
    sqs = ec.cloud.clients.sqs
    got = sqs.receive_message(QueueUrl=ec.made.events_dlq_url, MaxNumberOfMessages=10, VisibilityTimeout=0,
                              MessageSystemAttributeNames=["All"]).get("Messages", [])
    return [{"body": m["Body"], "receives": int(m["Attributes"]["ApproximateReceiveCount"])} for m in got]


def test_the_coordinator_knows_the_events_queues_receive_limit() -> None:
    stack = (REPO / "infra" / "stack.yaml").read_text()
    assert DEAD_LETTER_AFTER == EVENTS_MAX_RECEIVES
    events = stack.split("  EventsQueue:", 1)[1].split("\n\n", 1)[0]
    assert f"maxReceiveCount: {EVENTS_MAX_RECEIVES}" in events
    # the other queues' (container, submit) redrive keep MAX_RECEIVES
    assert "maxReceiveCount" not in stack.replace(f"maxReceiveCount: {EVENTS_MAX_RECEIVES}", "").replace(
        f"maxReceiveCount: {MAX_RECEIVES}", "")


def test_poison_events_go_to_the_dead_letter_queue_and_their_run_is_failed(tmp_path: Path) -> None:
    effects = tmp_path / "effects.log"
    effects.touch()
    with emulated_cloud(tmp_path, Delivery(failed_visibility_s=0), worker_lease_s=3.0) as ec:
        victim = submit(ec, [
            {"id": "long", "shell": MARK + "sleep 60", "placement": "container"},
            {"id": "next", "command": ["true"], "after": ["long"], "placement": "function"},
        ], effects)
        healthy = submit(ec, [{"id": "h", "shell": MARK + "echo ok > h.txt", "outputs": ["h.txt"],
                               "placement": "function"}], effects)
        while ec.cloud.store.get_task(victim, "long").state is not TaskState.RUNNING:  # the worker has it
            ec.deliver_batch()
            ec.deliver_invocation()
            time.sleep(0.05)
        poison = {
            "not json": "{not json",
            "unknown run": event_body(ev.TaskSucceeded("20260101-000000-00000000", "x", 1)),
            "unreadable, names a run": json.dumps({"kind": "martian", "run_id": victim}),
            "fails every time": event_body(ev.TaskFailed(victim, "no-such-task", 1, "NONZERO_EXIT")),
        }
        put_events(ec, list(poison.values()))
        t0 = time.monotonic()
        while len(dead_letters(ec)) < len(poison) and time.monotonic() - t0 < 60:
            ec.deliver_batch()
            ec.deliver_invocation()
        letters = dead_letters(ec)
        assert sorted(d["body"] for d in letters) == sorted(poison.values())  # readable, as sent
        assert all(d["receives"] >= EVENTS_MAX_RECEIVES for d in letters)
        run = ec.get(f"/runs/{victim}").json_body
        assert run["state"] == "FAILED"
        assert "dead-letter queue" in run["options"]["failure"]
        tasks = {t.task_id: t for t in ec.cloud.store.list_tasks(victim)}
        assert {t: r.state for t, r in tasks.items()} == {"long": TaskState.CANCELLED, "next": TaskState.CANCELLED}
        assert "dead-letter queue" in tasks["long"].result.log_tail
        manifest = json.loads(ec.cloud.blobs.get_bytes(f"runs/{victim}/manifest.json"))
        assert manifest["state"] == "FAILED" and manifest["options"]["failure"] == run["options"]["failure"]
        # the worker's next heartbeat finds the attempt cancelled and kills the task, long before
        # its 60 s, then deletes the message
        deadline = time.monotonic() + 20
        while ec.cloud.container_queue.backlog() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert ec.cloud.container_queue.backlog() == 0
        assert ec.run_until_done(healthy, timeout_s=60)["state"] == "SUCCEEDED"  # others unaffected
        assert invariants(ec, victim) == [] and invariants(ec, healthy) == []
