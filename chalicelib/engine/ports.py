"""The ports the engine and runner talk through. Adapters live in chalicelib/backends/*.

Every adapter of a port passes the same contract suite (tests/contract/).
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol, runtime_checkable

from msgspec import Struct

from chalicelib.engine.events import Event, Launch
from chalicelib.engine.records import RunRecord, TaskPage, TaskRecord, check_mutable
from chalicelib.engine.states import RunState, TaskState
from chalicelib.errors import NotFoundError, StateConflictError


@runtime_checkable
class StateStore(Protocol):
    """Run and task records with atomic, conditional transitions.

    Every write that changes a task is conditional on its current state and attempt, so a
    duplicate or late event cannot overwrite newer state. Losing the condition raises
    StateConflictError carrying the current record. Empty `changes` make a write a conditional
    no-op (the record, or the conflict); a negative `limit` raises ValueError.
    """

    def create_run(self, run: RunRecord, tasks: Sequence[TaskRecord]) -> None:
        """Store a new run and all its tasks. Raises StateConflictError if the run exists, and
        ValueError, before writing anything, if the tasks repeat an id (`check_new_tasks`)."""

    def get_run(self, run_id: str) -> RunRecord:
        """Raises NotFoundError."""

    def list_runs(self, limit: int = 50, state: RunState | None = None) -> list[RunRecord]:
        """Newest first."""

    def update_run(self, run_id: str, expect: Collection[RunState], changes: Mapping[str, Any]) -> RunRecord:
        """Apply `changes` if the run's state is in `expect`; returns the new record."""

    def delete_run(self, run_id: str, expect: Collection[RunState]) -> RunRecord:
        """Delete the run, its tasks, counters and edges if the run's state is in `expect`;
        returns the record as it was. NotFoundError for an unknown run, StateConflictError
        (with the current record) when its state is not in `expect`. A delete that stops
        half-way leaves the run readable, so the same call again finishes it."""

    def get_task(self, run_id: str, task_id: str) -> TaskRecord:
        """Raises NotFoundError."""

    def list_tasks(
        self, run_id: str, states: Collection[TaskState] | None = None, limit: int | None = None,
    ) -> list[TaskRecord]:
        """Tasks of a run, optionally only those in `states`: all of them in submission order,
        or with a `limit` the first `limit` in the store's page order (`page_tasks`, so a store
        reads only those). Raises NotFoundError for an unknown run (as `iter_tasks` and
        `counts` do)."""

    def iter_tasks(self, run_id: str, states: Collection[TaskState] | None = None) -> Iterator[TaskRecord]:
        """What `list_tasks` returns, in the same order, built a page at a time where the store
        can: a finished run's 100,000 records are not all in memory at once. Do not write to the
        run while iterating."""

    def page_tasks(
        self, run_id: str, states: Collection[TaskState] | None = None, limit: int = 256,
        after: str | None = None,
    ) -> TaskPage:
        """Up to `limit` tasks of a run (only those in `states` if given) that come after task
        `after` in the store's page order, and where the next page starts (`TaskPage.after`,
        None at the end). Reads only what the page needs, never the whole run: a store may
        return fewer than `limit` tasks (even none) with a next position when the page had to
        look through too many tasks of other states. Every task of the run that stays in
        `states` while it is paged through comes exactly once. The page order is fixed per
        store: submission order (SQLite), task id order (DynamoDB, its key order). Raises
        NotFoundError for an unknown run and ValueError for a `limit` under 1 or an `after`
        that is no position of this run (a stale or foreign page token)."""

    def update_task(
        self,
        run_id: str,
        task_id: str,
        expect_states: Collection[TaskState],
        expect_attempt: int | None,
        changes: Mapping[str, Any],
    ) -> TaskRecord:
        """Apply `changes` if state is in `expect_states` and attempt matches (None: any)."""

    def update_tasks(
        self,
        run_id: str,
        expect_states: Collection[TaskState],
        updates: Sequence[tuple[str, int | None, Mapping[str, Any]]],
    ) -> list[TaskRecord | None]:
        """`update_task` for several tasks of a run: each (task_id, expect_attempt, changes) in
        order, each on its own (not all or nothing). Returns, in the same order, the new record,
        or None where the condition did not hold or there is no such task (no error: the
        caller looks if it cares)."""

    def complete_parent(self, run_id: str, parent_id: str, child_ids: Sequence[str]) -> list[TaskRecord]:
        """Count `parent_id` as finished for each child, at most once per (parent, child).

        The decrement that brings a WAITING child's pending count to zero makes it READY.
        Returns the children that are READY now (made READY by this call or earlier), so a
        redelivered completion re-dispatches a child a crashed coordinator left READY; a child
        named twice is one edge and comes back once. Raises NotFoundError for an unknown run.
        """

    def complete_parents(self, run_id: str, completions: Sequence[tuple[str, Sequence[str]]]) -> list[TaskRecord]:
        """`complete_parent` for each (parent_id, child_ids), as few writes as the backend
        allows: the same counts and states as the calls one after another. Returns each child
        READY now once, in the order the children are first named."""

    def reset_task(
        self, run_id: str, task_id: str, state: TaskState, attempt: int, done_parents: Sequence[str],
        pending: int, max_attempts: int,
    ) -> TaskRecord:
        """Unconditionally reset a task for `resume` (the run is not RUNNING then); a parent
        named twice in `done_parents` is one done edge."""

    def counts(self, run_id: str) -> dict[str, int]:
        """Number of tasks in each state."""

    def expired_leases(self, now: float, limit: int = 500) -> list[TaskRecord]:
        """In-flight tasks (DISPATCHED/RUNNING) whose lease ran out, across the RUNNING runs
        (a finished or cancelled run's leftovers are not re-driven), at most `limit`."""

    def batch(self) -> AbstractContextManager[None]:
        """Group the writes of one coordinator step (one transaction where the backend can)."""


def update_each(
    store: StateStore, run_id: str, expect_states: Collection[TaskState],
    updates: Sequence[tuple[str, int | None, Mapping[str, Any]]],
) -> list[TaskRecord | None]:
    """`StateStore.update_tasks` as one `update_task` per task, for stores without a write of
    many rows that lets some fail. Every update's fields are checked before any is written."""
    for _, _, changes in updates:
        check_mutable("task", changes)
    out: list[TaskRecord | None] = []
    for task_id, attempt, changes in updates:
        try:
            out.append(store.update_task(run_id, task_id, expect_states, attempt, changes))
        except (StateConflictError, NotFoundError):
            out.append(None)
    return out


def complete_each(
    store: StateStore, run_id: str, completions: Sequence[tuple[str, Sequence[str]]],
) -> list[TaskRecord]:
    """`StateStore.complete_parents` as one `complete_parent` per parent, for stores without a
    write of many edges at once."""
    ready: dict[str, TaskRecord] = {}
    for parent_id, child_ids in completions:
        for rec in store.complete_parent(run_id, parent_id, child_ids):
            ready[rec.task_id] = rec  # the latest read of it
    order = first_named(completions)
    return sorted(ready.values(), key=lambda rec: order[rec.task_id])


def first_named(completions: Sequence[tuple[str, Sequence[str]]]) -> dict[str, int]:
    """Each child's place in `complete_parents`' answer: where it is first named."""
    order: dict[str, int] = {}
    for _, child_ids in completions:
        for child in child_ids:
            order.setdefault(child, len(order))
    return order


@runtime_checkable
class BlobStore(Protocol):
    """Files by key (run data, logs, specs). Keys are '/'-separated, never absolute; every
    adapter checks them with `engine/blob_keys.py` (ValueError for one that leaves the store)."""

    def put_bytes(self, key: str, data: bytes) -> None: ...

    def get_bytes(self, key: str) -> bytes:
        """Raises NotFoundError."""

    def put_file(self, key: str, path: str, move: bool = False) -> int:
        """Store a local file; with move=True the adapter may consume `path`. Returns bytes."""

    def get_file(self, key: str, dest: str) -> int:
        """Write the object to local path `dest` (parents created), never leaving a partly
        written `dest` in sight. Returns bytes. Raises NotFoundError."""

    def exists(self, key: str) -> bool: ...

    def size(self, key: str) -> int:
        """Raises NotFoundError."""

    def list(self, prefix: str) -> Iterator[str]:
        """The keys starting with `prefix` (a plain string prefix: "runs/a" also gives
        "runs/ab/..."), sorted. A prefix that leaves the store ("../", "/x") raises ValueError."""

    def delete_prefix(self, prefix: str) -> int:
        """Delete what `list(prefix)` gives; returns how many. Only the store's own keys: a URI
        raises ValueError."""


class Launcher(Protocol):
    """Starts task attempts on one kind of compute (function pool / container pool)."""

    def launch(self, requests: Sequence[Launch]) -> None: ...

    def kill(self, run_id: str, task_id: str, attempt: int) -> None: ...


class EventSink(Protocol):
    """Where events for the coordinator go (an in-memory queue locally, SQS in the cloud)."""

    def send(self, events: Sequence[Event], delay_s: float = 0.0) -> None: ...


class QueueMessage(Struct, frozen=True):
    """A received message: its body, the handle to ack/extend/release it, and how many times
    it has been received (1 on first delivery)."""

    body: str
    receipt: str
    receive_count: int = 1
    message_id: str = ""


@runtime_checkable
class MessageQueue(Protocol):
    """An at-least-once queue with visibility timeouts (SQS in the cloud, memory locally).

    A received message is invisible for `visibility_s`; it comes back unless deleted. After
    the queue's maximum receive count it moves to the dead-letter queue instead.
    """

    def send(self, bodies: Sequence[str], delay_s: float = 0.0) -> None: ...

    def receive(
        self, max_messages: int = 1, wait_s: float = 0.0, visibility_s: float | None = None
    ) -> list[QueueMessage]:
        """Up to `max_messages`, waiting at most `wait_s` for the first one."""

    def delete(self, messages: Sequence[QueueMessage]) -> None:
        """Acknowledge. Deleting, extending or releasing a message this holder no longer has
        (deleted already, or received by another since) does nothing."""

    def extend(self, message: QueueMessage, visibility_s: float) -> None:
        """Keep a message invisible for `visibility_s` more seconds (a worker's heartbeat)."""

    def release(self, message: QueueMessage) -> None:
        """Make a message visible again now (a worker that stops without finishing)."""

    def backlog(self) -> int:
        """Messages waiting or in flight (approximate), for scaling workers."""


class Clock(Protocol):
    def now(self) -> float: ...


class SystemClock:
    def now(self) -> float:
        return time.time()
