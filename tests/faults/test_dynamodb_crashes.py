"""The coordinator crashing before each of its DynamoDB writes in turn (moto), with the batch
redelivered, duplicated and reordered, and the real sweeper repairing what a crash left
behind (expired leases, counters that lag, READY tasks nobody dispatched).

The crash is injected at the lowest level: a proxy of the DynamoDB client raises before write
number k (UpdateItem, PutItem, BatchWriteItem, TransactWriteItems - the counter flushes
included). Every k up to the last write of an undisturbed run is tried. After each run:
the invariants (tests/faults/invariants.py), a SUCCEEDED run, and every task's effects
applied once: no (task, attempt) is executed twice and exactly one attempt of each task
produced the outputs its record describes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from chalicelib.attempt import AttemptResult
from chalicelib.backends.aws.components import Cloud
from chalicelib.backends.aws.sweeper import sweep
from chalicelib.engine import events as ev
from chalicelib.engine.backoff import Backoff
from chalicelib.engine.coordinator import Coordinator, CoordinatorConfig
from chalicelib.engine.lifecycle import create_run
from chalicelib.engine.spec import RunSpec, SpecCache
from chalicelib.engine.states import Reason, RunState
from chalicelib.runner.keys import data_key
from chalicelib.workflow.formats import loads
from tests.contract.awskit import make_cloud, mocked_aws
from tests.faults.invariants import check_invariants

WRITES = frozenset({"update_item", "put_item", "batch_write_item", "transact_write_items", "delete_item"})


class Crash(Exception):
    """The coordinator (or the sweeper) died here."""


class CrashingDynamo:
    """A DynamoDB client whose write number `crash_at` raises before reaching the table."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.crash_at: int | None = None
        self.writes = 0
        self.crashed = False

    def arm(self, crash_at: int | None) -> None:
        self.crash_at, self.writes, self.crashed = crash_at, 0, False

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if name not in WRITES:
            return attr

        def write(*args: Any, **kwargs: Any) -> Any:
            self.writes += 1
            if self.writes == self.crash_at:
                self.crashed = True
                raise Crash(f"crash before DynamoDB write {self.writes} ({name})")
            return attr(*args, **kwargs)

        return write


class Clock:
    def __init__(self) -> None:
        self.t = time.time()

    def now(self) -> float:
        return self.t


class ListSink:
    """The sweeper's events, kept for the test's own delivery loop."""

    def __init__(self) -> None:
        self.sent: list[ev.Event] = []

    def send(self, events: Any, delay_s: float = 0.0) -> None:
        self.sent.extend(events)


TASKS = [
    {"id": "a", "command": ["gen"], "outputs": ["a.out"]},
    {"id": "b", "command": ["f"], "inputs": ["a.out"], "outputs": ["b.out"]},
    {"id": "c", "command": ["f"], "inputs": ["a.out"], "outputs": ["c.out"], "placement": "container"},
    {"id": "d", "command": ["join"], "inputs": ["b.out", "c.out"], "outputs": ["d.out"]},
    {"id": "e", "command": ["flaky"], "outputs": ["e.out"], "retries": 2},  # fails its first execution
]


def content(task_id: str, attempt: int) -> bytes:
    return f"{task_id}#{attempt}".encode()


@pytest.fixture(scope="module")
def cloud() -> Iterator[tuple[Cloud, CrashingDynamo]]:
    with mocked_aws():
        cloud, _ = make_cloud(task_shards=4, counter_shards=2)
        proxy = CrashingDynamo(cloud.clients.dynamodb)
        cloud.clients._clients["dynamodb"] = proxy
        cloud.__dict__["sink"] = ListSink()  # the sweeper's sends: see drive()
        yield cloud, proxy


def drive(cloud: Cloud, proxy: CrashingDynamo, crash_at: int | None, seed: int) -> tuple[str, RunSpec, Counter[Any]]:
    """Run the workflow with instantly finishing tasks. A crashed batch is redelivered; events
    are duplicated and reordered; when nothing is left to deliver, time jumps and the sweeper
    runs (it may crash too: it simply runs again at its next schedule)."""
    rng = random.Random(seed)
    clock = Clock()
    spec = RunSpec.of(loads(json.dumps({"name": "crashy", "tasks": TASKS})))
    run = create_run(spec, cloud.store, cloud.blobs, clock.now())
    co = Coordinator(cloud.store, SpecCache.from_blobs(cloud.blobs), clock,
                     CoordinatorConfig(backoff=Backoff(0, 0)), rng)
    sink = cloud.__dict__["sink"]
    assert isinstance(sink, ListSink)
    sink.sent.clear()
    proxy.arm(crash_at)
    queue: list[ev.Event] = [ev.Start(run.run_id)]
    executed: Counter[Any] = Counter()
    for _ in range(2_000):
        if not queue:
            if cloud.store.get_run(run.run_id).state is not RunState.RUNNING:
                break
            clock.t += 10_000  # leases expire and the run looks quiet to the sweeper
            with contextlib.suppress(Crash):
                sweep(cloud, now=clock.now())
            queue, sink.sent[:] = [e for e in sink.sent if e.run_id == run.run_id], []
            continue
        rng.shuffle(queue)
        batch, queue = queue[:3], queue[3:]
        try:
            out = co.handle(batch)
        except Crash:
            queue.extend(batch)  # not acknowledged: SQS delivers the batch again
            continue
        for ins in out:
            if isinstance(ins, ev.Launch):
                queue.extend(execute(cloud, spec, run.run_id, ins, executed, rng))
            elif isinstance(ins, ev.Schedule):
                queue.append(ins.event)
    else:
        raise AssertionError("the run never finished")
    return run.run_id, spec, executed


def execute(cloud: Cloud, spec: RunSpec, run_id: str, ins: ev.Launch, executed: Counter[Any],
            rng: random.Random) -> list[ev.Event]:
    """What a task function or worker would do: run the attempt once, stage out, report."""
    executed[(ins.task_id, ins.attempt)] += 1
    if ins.task_id == "e" and sum(n for (t, _), n in executed.items() if t == "e") == 1:
        done: ev.Event = ev.TaskFailed(run_id, "e", ins.attempt, Reason.NONZERO_EXIT.value, AttemptResult(exit_code=1))
    else:
        outputs = {}
        for path in spec.tasks[ins.task_id].outputs:
            cloud.blobs.put_bytes(data_key(run_id, path), content(ins.task_id, ins.attempt))
            outputs[path] = hashlib.sha256(content(ins.task_id, ins.attempt)).hexdigest()
        done = ev.TaskSucceeded(run_id, ins.task_id, ins.attempt, AttemptResult(outputs=outputs))
    return [done, done] if rng.random() < 0.3 else [done]


def writes_of_a_clean_run(cloud: Cloud, proxy: CrashingDynamo, seed: int) -> int:
    drive(cloud, proxy, None, seed)
    return proxy.writes


def check_run(cloud: Cloud, run_id: str, spec: RunSpec, executed: Counter[Any]) -> None:
    assert check_invariants(cloud.store, cloud.blobs, run_id, spec) == []
    assert cloud.store.get_run(run_id).state is RunState.SUCCEEDED
    assert all(n == 1 for n in executed.values()), f"an attempt was executed twice: {executed}"
    for rec in cloud.store.list_tasks(run_id):
        # the effects that count are those of the attempt the record names, and only those
        for path in spec.tasks[rec.task_id].outputs:
            assert cloud.blobs.get_bytes(data_key(run_id, path)) == content(rec.task_id, rec.attempt)
        assert (rec.task_id, rec.attempt) in executed


def test_an_undisturbed_run_on_dynamodb_succeeds(cloud: tuple[Cloud, CrashingDynamo]) -> None:
    c, proxy = cloud
    run_id, spec, executed = drive(c, proxy, None, seed=0)
    check_run(c, run_id, spec, executed)
    assert proxy.writes > 20 and not proxy.crashed


# One shuffling seed, so that a crashed run makes the same writes as a clean one up to the
# crash: every write of the clean run is a crash point (the last test keeps that true).
SEED = 3
CLEAN_WRITES = 28
CRASH_POINTS = range(1, CLEAN_WRITES + 1)


@pytest.mark.parametrize("crash_at", CRASH_POINTS)
def test_a_crash_before_any_dynamodb_write_leaves_the_run_recoverable(
    cloud: tuple[Cloud, CrashingDynamo], crash_at: int
) -> None:
    c, proxy = cloud
    run_id, spec, executed = drive(c, proxy, crash_at, seed=SEED)
    assert proxy.crashed, f"the run made only {proxy.writes} writes: the crash never happened"
    check_run(c, run_id, spec, executed)


def test_the_crash_points_are_every_write_of_a_clean_run(cloud: tuple[Cloud, CrashingDynamo]) -> None:
    c, proxy = cloud
    assert writes_of_a_clean_run(c, proxy, SEED) == CLEAN_WRITES, "the engine's writes changed: update CLEAN_WRITES"
