"""Container tasks longer than SQS's 12 h visibility cap, on moto, with an injected clock.

The clock the worker, the state table's leases and moto's SQS visibility all read is one fake
clock the test moves forward by hours; the task itself is a real process that waits for a file.
moto enforces the cap the way SQS does (ChangeMessageVisibility past 12 h is refused), and a
message whose visibility ran out is delivered again - on the fake clock.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import moto.sqs.models
import pytest
from msgspec.structs import replace

from chalicelib.backends.aws.components import Cloud
from chalicelib.backends.aws.messages import decode
from chalicelib.backends.aws.observability import obs
from chalicelib.backends.aws.sweeper import sweep
from chalicelib.engine import events as ev
from chalicelib.engine.coordinator import Coordinator
from chalicelib.engine.states import TaskState
from chalicelib.workflow.formats import native
from tests.contract.awskit import make_cloud, mocked_aws
from workers.heartbeat import PROTECTION_MINUTES, ScaleInProtection
from workers.worker import Worker

pytestmark = pytest.mark.slow

HOUR = 3600.0
LEASE_S = 1800.0  # a long lease: fewer beats to simulate (the park comes at 12 h - 2 leases)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_900_000_000.0

    def __call__(self) -> float:
        return self.now


class AsClock:
    """The coordinator's Clock port on the fake clock."""

    def __init__(self, fake: FakeClock) -> None:
        self.fake = fake

    def now(self) -> float:
        return self.fake.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    # moto's SQS times visibility (and the 12 h cap) with this; long polls keep real time
    monkeypatch.setattr(moto.sqs.models, "unix_time_millis", lambda: fake.now * 1000.0)
    return fake


@pytest.fixture
def cloud(tmp_path: Path, clock: FakeClock) -> Iterator[Cloud]:
    with mocked_aws():
        cloud, _ = make_cloud(task_shards=2, workroot=str(tmp_path / "work"), worker_lease_s=LEASE_S)
        cloud.clock = clock
        cloud.coordinator = Coordinator(cloud.store, cloud.specs, clock=AsClock(clock),  # type: ignore[misc]
                                        config=replace(cloud.coordinator_config,
                                                       function_sizes=cloud.config.sizes.function_mb))
        yield cloud


def start_long_task(cloud: Cloud, release: Path) -> str:
    from chalicelib.engine.lifecycle import create_run
    from chalicelib.engine.spec import RunSpec

    task = {"id": "long", "placement": "container", "retries": 2, "outputs": ["out.txt"],
            "shell": f"while [ ! -e {release} ]; do sleep 0.05; done; echo done > out.txt"}
    spec = RunSpec.of(native.from_data({"name": "long", "tasks": [task]}))
    run = create_run(spec, cloud.store, cloud.blobs, cloud.clock())
    cloud.shell.apply(cloud.coordinator.handle([ev.Start(run.run_id)]))  # -> container queue
    return run.run_id


class Recorder:
    """UpdateTaskProtection as ECS would take it (moto does not emulate that call)."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.calls: list[tuple[float, bool, Any]] = []

    def __call__(self, **kwargs: Any) -> None:
        self.calls.append((self.clock.now, kwargs["protectionEnabled"], kwargs.get("expiresInMinutes")))


def worker(cloud: Cloud, protection: Recorder | None = None) -> Worker:
    w = Worker(cloud, obs(), idle_s=30.0, lease_s=LEASE_S, poll_wait_s=0.2, beat_every_s=0.02)
    if protection is not None:
        w._protection = ScaleInProtection(cloud, task_arn="arn:aws:ecs:us-east-1:123456789012:task/c/1",
                                          call=protection)
    return w


def wait_for(check: Any, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


def live_hours(cloud: Cloud, w: Worker, clock: FakeClock, hours: float, step_s: float = LEASE_S / 3) -> None:
    """Move the clock `hours` forward one beat interval at a time, waiting for a beat after each."""
    end = clock.now + hours * HOUR
    while clock.now < end:
        clock.now += step_s
        hb = w._heartbeat
        assert hb is not None
        wait_for(lambda hb=hb, seen=hb.beats: hb.beats > seen + 1)  # a whole beat ran at this time


def events(cloud: Cloud) -> list[ev.Event]:
    msgs = cloud.events_queue.receive(10, visibility_s=30)
    cloud.events_queue.delete(msgs)
    return [e for e in (decode(m.body).event for m in msgs) if e is not None]


def test_a_13_hour_task_keeps_its_lease_and_protection_and_is_never_redelivered(
        cloud: Cloud, clock: FakeClock, tmp_path: Path) -> None:
    release = tmp_path / "release"
    run_id = start_long_task(cloud, release)
    protection = Recorder(clock)
    w = worker(cloud, protection)
    thread = threading.Thread(target=w.run, daemon=True)
    thread.start()
    wait_for(lambda: w._heartbeat is not None)  # claimed, and beating
    started = clock.now
    other = worker(cloud)  # a second worker polling the same queue all along
    for _ in range(13):
        live_hours(cloud, w, clock, 1.0)
        assert other.queue.receive(1, wait_s=0) == []  # not visible again, ever
        rec = cloud.store.get_task(run_id, "long")
        assert (rec.state, rec.attempt) == (TaskState.RUNNING, 1)
        assert rec.lease_expires is not None and rec.lease_expires > clock.now  # renewed
    assert cloud.container_queue.backlog() == 0  # parked: deleted before the 12 h cap
    assert sweep(cloud).expired == 0
    on = [(t, minutes) for t, enabled, minutes in protection.calls if enabled]
    assert on[0] == (started, PROTECTION_MINUTES)
    assert len(on) >= 13 and all(b - a <= HOUR + LEASE_S for (a, _), (b, _) in itertools.pairwise(on))
    assert on[-1][0] + PROTECTION_MINUTES * 60 > clock.now  # protected right now
    release.touch()
    wait_for(lambda: w.tasks_run == 1)
    w.stopping.set()
    thread.join(timeout=10)
    assert [type(e).__name__ for e in events(cloud)] == ["TaskSucceeded"]
    assert protection.calls[-1][1] is False  # unprotected once idle
    assert cloud.container_queue.backlog() == 0


class Dead:
    """What a worker that died has left of the cloud: nothing it can reach."""

    def __getattr__(self, name: str) -> Any:
        raise ConnectionError("the worker is dead")


def test_a_worker_lost_at_13_hours_is_noticed_by_the_sweeper_and_the_task_relaunched(
        cloud: Cloud, clock: FakeClock, tmp_path: Path) -> None:
    release = tmp_path / "release"
    run_id = start_long_task(cloud, release)
    w = worker(cloud)
    thread = threading.Thread(target=w.run, daemon=True)
    thread.start()
    wait_for(lambda: w._heartbeat is not None)  # claimed, and beating
    live_hours(cloud, w, clock, 13.0)
    # the worker dies: no more beats, no completion, no hand-back; its task process goes too
    assert w._heartbeat is not None
    w._heartbeat.stop()
    w.stopping.set()
    w.cloud, w.queue = Dead(), Dead()  # type: ignore[assignment]
    assert w._attempt is not None
    w._attempt.kill("cancelled", "the worker died")
    thread.join(timeout=10)
    assert cloud.store.get_task(run_id, "long").state is TaskState.RUNNING  # nobody said otherwise
    assert cloud.container_queue.backlog() == 0  # and no message will come back by itself
    clock.now += LEASE_S + 1  # the lease runs out
    assert sweep(cloud).expired == 1
    cloud.shell.apply(cloud.coordinator.handle(events(cloud)))  # LeaseExpired -> retry
    relaunched: list[Any] = []
    for _ in range(60):  # the retry's backoff, on the fake clock
        relaunched = cloud.container_queue.receive(1, wait_s=0)
        if relaunched:
            break
        clock.now += 60
        cloud.shell.apply(cloud.coordinator.handle(events(cloud)))
    (msg,) = relaunched
    assert json.loads(msg.body)["attempt"] == 2
    cloud.container_queue.release(msg)
    clock.now += 1  # (moto: visible once its clock is past the release)
    release.touch()
    second = Worker(cloud, obs(), idle_s=0.5, lease_s=LEASE_S, poll_wait_s=0.2, beat_every_s=0.02)
    second.run()
    assert second.tasks_run == 1
    done = events(cloud)
    assert [(type(e).__name__, e.attempt) for e in done] == [("TaskSucceeded", 2)]  # type: ignore[attr-defined]


def test_sigterm_after_the_12_hour_mark_sends_the_parked_message_again(
        cloud: Cloud, clock: FakeClock, tmp_path: Path) -> None:
    run_id = start_long_task(cloud, tmp_path / "release")
    w = worker(cloud)
    thread = threading.Thread(target=w.run, daemon=True)
    thread.start()
    wait_for(lambda: w._heartbeat is not None)
    live_hours(cloud, w, clock, 12.5)
    assert cloud.container_queue.backlog() == 0  # parked
    w.stop()  # what the SIGTERM handler does
    thread.join(timeout=10)
    rec = cloud.store.get_task(run_id, "long")
    assert (rec.state, rec.attempt) == (TaskState.DISPATCHED, 1)  # un-claimed, same attempt
    (msg,) = cloud.container_queue.receive(1, wait_s=0)  # a continuation, visible at once
    assert json.loads(msg.body) == {"run_id": run_id, "task_id": "long", "attempt": 1}
