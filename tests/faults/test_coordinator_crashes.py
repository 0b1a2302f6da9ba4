"""The coordinator crashing between any two of its writes, duplicate and reordered delivery:
the run still ends correct, with every task's effects applied once."""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chalicelib.attempt import AttemptResult
from chalicelib.backends.local.fs_blobs import FsBlobStore
from chalicelib.backends.local.sqlite_state import SqliteStateStore
from chalicelib.engine import events as ev
from chalicelib.engine.backoff import Backoff
from chalicelib.engine.coordinator import Coordinator, CoordinatorConfig
from chalicelib.engine.lifecycle import create_run
from chalicelib.engine.ports import complete_each, update_each
from chalicelib.engine.spec import RunSpec, SpecCache
from chalicelib.runner.keys import data_key
from chalicelib.workflow.formats import loads
from tests.faults.invariants import check_invariants


class Crash(Exception):
    pass


class CrashingStore(SqliteStateStore):
    """Every write commits on its own (like DynamoDB), and write number `crash_at` raises."""

    def __init__(self, path: str, crash_at: int) -> None:
        super().__init__(path)
        self.crash_at = crash_at
        self.writes = 0

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:  # type: ignore[override]
        yield

    def _write(self) -> None:
        self.writes += 1
        if self.writes == self.crash_at:
            raise Crash(f"crash before write {self.writes}")

    def update_task(self, *a: Any, **k: Any):  # type: ignore[no-untyped-def]
        self._write()
        return super().update_task(*a, **k)

    def update_tasks(self, run_id, expect_states, updates):  # type: ignore[no-untyped-def]
        return update_each(self, run_id, expect_states, updates)  # one write each: a crash can fall between any two

    def complete_parent(self, *a: Any, **k: Any):  # type: ignore[no-untyped-def]
        self._write()
        return super().complete_parent(*a, **k)

    def complete_parents(self, run_id, completions):  # type: ignore[no-untyped-def]
        return complete_each(self, run_id, completions)  # one write each: a crash can fall between any two

    def update_run(self, *a: Any, **k: Any):  # type: ignore[no-untyped-def]
        self._write()
        return super().update_run(*a, **k)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def now(self) -> float:
        return self.t


TASKS = [
    {"id": "a", "command": ["gen"], "outputs": ["a.out"]},
    {"id": "b", "command": ["f"], "inputs": ["a.out"], "outputs": ["b.out"]},
    {"id": "c", "command": ["f"], "inputs": ["a.out"], "outputs": ["c.out"]},
    {"id": "d", "command": ["join"], "inputs": ["b.out", "c.out"], "outputs": ["d.out"]},
    {"id": "e", "command": ["solo"], "outputs": ["e.out"]},
]


def drive(tmp: Path, crash_at: int, seed: int) -> tuple[SqliteStateStore, FsBlobStore, str, RunSpec, Counter[str]]:
    """Run the workflow with instantly finishing tasks, redelivering any batch that crashed,
    duplicating and reordering events, and sweeping leases when nothing else is left."""
    rng = random.Random(seed)
    store = CrashingStore(str(tmp / "state.db"), crash_at)
    blobs = FsBlobStore(str(tmp / "blobs"))
    clock = Clock()
    spec = RunSpec.of(loads(json.dumps({"name": "crashy", "tasks": TASKS})))
    run = create_run(spec, store, blobs, clock.now())
    co = Coordinator(store, SpecCache.from_blobs(blobs), clock, CoordinatorConfig(backoff=Backoff(0, 0)), rng)
    queue: list[ev.Event] = [ev.Start(run.run_id)]
    executed: Counter[str] = Counter()
    for _ in range(10_000):
        if not queue:
            if store.get_run(run.run_id).state.value != "RUNNING":
                break
            clock.t += 10_000  # nothing left to deliver: the sweeper finds expired leases
            queue = [ev.LeaseExpired(run.run_id, r.task_id, r.attempt) for r in store.expired_leases(clock.now())]
            queue.append(ev.Start(run.run_id))  # and READY tasks nobody dispatched
            continue
        rng.shuffle(queue)
        batch, queue = queue[:3], queue[3:]
        try:
            out = co.handle(batch)
        except Crash:
            queue.extend(batch)  # the batch was not acknowledged: SQS delivers it again
            continue
        for ins in out:
            if isinstance(ins, ev.Launch):
                executed[ins.task_id] += 1
                for path in spec.tasks[ins.task_id].outputs:
                    blobs.put_bytes(data_key(run.run_id, path), f"{ins.task_id}".encode())
                outputs = {p: hashlib.sha256(ins.task_id.encode()).hexdigest()
                           for p in spec.tasks[ins.task_id].outputs}
                done = ev.TaskSucceeded(run.run_id, ins.task_id, ins.attempt, AttemptResult(outputs=outputs))
                queue.extend([done, done] if rng.random() < 0.3 else [done])
            elif isinstance(ins, ev.Schedule):
                queue.append(ins.event)
    return store, blobs, run.run_id, spec, executed


@pytest.mark.parametrize("crash_at", range(1, 19))
def test_a_crash_before_any_write_leaves_the_run_recoverable(tmp_path: Path, crash_at: int) -> None:
    store, blobs, run_id, spec, executed = drive(tmp_path, crash_at, seed=crash_at)
    assert isinstance(store, CrashingStore) and store.writes >= crash_at, "the crash never happened"
    assert check_invariants(store, blobs, run_id, spec) == []
    assert store.get_run(run_id).state.value == "SUCCEEDED"
    assert executed == Counter({t: 1 for t in spec.tasks}), "a task's effects ran twice or never"
