"""The records the state store keeps: one per run, one per task."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import msgspec
from msgspec import Struct, field

from chalicelib.attempt import AttemptResult
from chalicelib.engine.states import RunState, TaskState


class RunRecord(Struct, frozen=True):
    run_id: str
    name: str
    state: RunState
    created_at: float
    task_count: int
    spec_key: str
    finished_at: float | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id, "name": self.name, "state": self.state.value,
            "created_at": self.created_at, "finished_at": self.finished_at,
            "task_count": self.task_count, "spec_key": self.spec_key, "options": self.options,
        }


class Try(Struct, frozen=True, omit_defaults=True):
    """An earlier attempt of a task that failed and was retried, kept for the report (its
    times by the runner's clock when the runner reported them)."""

    attempt: int
    reason: str
    placement: str
    started_at: float | None = None
    finished_at: float | None = None
    duration_s: float | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = msgspec.to_builtins(self)
        return data


class TaskRecord(Struct, frozen=True):
    """Dynamic state of one task. The static spec (command, files) lives in the run's spec.

    `result` is what the runner reported of the latest attempt that ended (None before one
    did). The engine's own bookkeeping is kept beside it, written by the transitions:
    `lost_workers` (attempts whose worker or function vanished: they get extra attempts of
    their own, bounded), `resources` (overrides the engine chose for the next attempt after
    one ran out of memory or disk), `tries` (the earlier attempts, for the report) and
    `failed_parent` (the failed ancestor of an UPSTREAM_FAILED task)."""

    run_id: str
    task_id: str
    state: TaskState
    attempt: int
    placement: str
    pending: int
    max_attempts: int = 1
    lease_expires: float | None = None
    not_before: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    exit_code: int | None = None
    reason: str | None = None
    result: AttemptResult | None = None
    lost_workers: int = 0
    resources: dict[str, float] = field(default_factory=dict)
    tries: tuple[Try, ...] = ()
    failed_parent: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.task_id, "state": self.state.value, "attempts": self.attempt,
            "placement": self.placement, "started_at": self.started_at,
            "finished_at": self.finished_at, "exit_code": self.exit_code, "reason": self.reason,
        }


class TaskPage(Struct, frozen=True):
    """One page of a run's tasks (`StateStore.page_tasks`): the tasks, and the position the
    next page starts after (a task id, passed back as `after`), None when there is no more."""

    tasks: list[TaskRecord]
    after: str | None = None


# The fields of a TaskRecord that `StateStore.update_task` may change.
TASK_MUTABLE = frozenset({
    "state", "attempt", "placement", "lease_expires", "not_before", "started_at",
    "finished_at", "exit_code", "reason", "result", "max_attempts",
    "lost_workers", "resources", "tries", "failed_parent",
})
# The engine's bookkeeping fields: a store keeps an empty one as nothing (no column value, no
# attribute), and reads nothing back as the empty value.
BOOKKEEPING = ("lost_workers", "resources", "tries", "failed_parent")
RUN_MUTABLE = frozenset({"state", "finished_at", "options"})


def check_mutable(kind: str, changes: Iterable[str]) -> None:
    """Raise ValueError naming the fields of `changes` a store may not change on a `kind`
    ("run" or "task") record."""
    bad = set(changes) - (RUN_MUTABLE if kind == "run" else TASK_MUTABLE)
    if bad:
        raise ValueError(f"{kind} fields {sorted(bad)} cannot be changed")


def check_limit(limit: int | None) -> None:
    """Raise ValueError for a negative `limit` (None: no limit)."""
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be 0 or more, not {limit}")


def check_new_tasks(run_id: str, tasks: Iterable[TaskRecord]) -> None:
    """Raise ValueError, before a store writes anything, when a new run's task records repeat
    a task id or belong to another run."""
    seen: set[str] = set()
    repeated: list[str] = []
    strays: list[str] = []
    for t in tasks:
        if t.run_id != run_id:
            strays.append(t.task_id)
        elif t.task_id in seen:
            repeated.append(t.task_id)
        seen.add(t.task_id)
    if repeated:
        raise ValueError(f"run {run_id}: task ids repeated: {sorted(set(repeated))[:10]}")
    if strays:
        raise ValueError(f"run {run_id}: tasks of another run given: {strays[:10]}")


# ---- encoding the structured fields (both stores) ----------------------------------------------

_ENCODER = msgspec.json.Encoder()
_TRIES = msgspec.json.Decoder(tuple[Try, ...])
_RESOURCES = msgspec.json.Decoder(dict[str, float])


def encode_tries(tries: tuple[Try, ...]) -> str:
    return _ENCODER.encode(tries).decode()


def decode_tries(raw: str | bytes) -> tuple[Try, ...]:
    return _TRIES.decode(raw)


def encode_resources(resources: dict[str, float]) -> str:
    return _ENCODER.encode(resources).decode()


def decode_resources(raw: str | bytes) -> dict[str, float]:
    return _RESOURCES.decode(raw)


# Keys the previous version kept inside a task's result dict that are TaskRecord fields now.
_LEGACY_MARKS = tuple(f'"{name}":' for name in BOOKKEEPING)
_LEGACY_MARKS_B = tuple(mark.encode() for mark in _LEGACY_MARKS)


def with_legacy(record: TaskRecord, raw: str | bytes | None) -> TaskRecord:
    """`record` with the bookkeeping its stored result `raw` carries when that result was
    written by the previous version, for each such field the record has empty. Every engine
    write of these fields writes the result too, which ends the previous version's form."""
    old = legacy_bookkeeping(raw) if raw else {}
    fill = {k: v for k, v in old.items() if not getattr(record, k)}
    return msgspec.structs.replace(record, **fill) if fill else record


def legacy_bookkeeping(raw: str | bytes) -> dict[str, Any]:
    """The engine bookkeeping a record written by the previous version kept inside its stored
    result (`lost_workers`, `resources`, `tries`, `failed_parent` keys), as TaskRecord fields;
    {} for a result of this version (a cheap check of the raw JSON first)."""
    if isinstance(raw, str):
        if not any(mark in raw for mark in _LEGACY_MARKS):
            return {}
    elif not any(mark in raw for mark in _LEGACY_MARKS_B):
        return {}
    try:
        old = json.loads(raw)
    except ValueError:
        return {}
    if not isinstance(old, dict):
        return {}
    found: dict[str, Any] = {}
    try:
        if old.get("lost_workers"):
            found["lost_workers"] = int(old["lost_workers"])
        if old.get("resources"):
            found["resources"] = msgspec.convert(old["resources"], dict[str, float])
        if old.get("tries"):
            found["tries"] = msgspec.convert(old["tries"], tuple[Try, ...])
        if old.get("failed_parent"):
            found["failed_parent"] = str(old["failed_parent"])
    except (TypeError, ValueError, msgspec.ValidationError):
        return found  # a malformed old value is dropped, never a record that cannot be read
    return found
