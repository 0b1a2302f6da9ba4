"""Measured runtimes of finished tasks: what the performance model learns from.

A `Sample` is one finished attempt of one task: its type, where it ran and with how much CPU and
memory, how long it took, how many bytes it moved, and its peak memory. Attempts that hit a
limit (TIMEOUT, OOM) are kept too, marked not ok: they say a size was too small.

`HistoryStore` is the port; `JsonlHistoryStore` keeps one JSON line per sample in a file under
the work dir (appends are single writes, so concurrent runs do not interleave lines);
history_dynamodb.DynamoDbHistoryStore keeps them in the deployment's table. One suite
(tests/unit/test_planner_history_stores.py) runs on both.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Collection, Iterable, Sequence
from typing import Any, Protocol

from msgspec import Struct

from chalicelib.engine.records import TaskRecord
from chalicelib.engine.states import Reason, TaskState
from chalicelib.workflow.model import Workflow
from chalicelib.workflow.numbers import MAX_BYTES, MAX_SECONDS, number_problem

_BOUNDS = {"duration_s": MAX_SECONDS, "memory_mb": MAX_BYTES / 2**20, "vcpus": 1e4, "bytes_in": MAX_BYTES,
           "bytes_out": MAX_BYTES, "peak_rss_mb": MAX_BYTES / 2**20}

HISTORY_FILE = "planner-history.jsonl"
LIMIT_REASONS = frozenset({Reason.TIMEOUT.value, Reason.OOM.value})


class Sample(Struct, frozen=True):
    """One finished attempt.

    `env` is "local" (the local runtime: CPU not throttled, `vcpus` None), "function" or
    "container". `vcpus` is the CPU the attempt had: a function's share of its memory, a
    container's vCPUs.
    """

    task_type: str
    env: str
    duration_s: float
    memory_mb: int
    vcpus: float | None = None
    bytes_in: int = 0
    bytes_out: int = 0
    peak_rss_mb: float | None = None
    ok: bool = True
    reason: str | None = None
    workflow: str = ""
    at: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _SAMPLE_FIELDS}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Sample:
        """A sample; ValueError for one whose numbers are not finite or beyond any real run (a
        damaged or edited line: the stores skip it rather than feed NaN or 1e308 to the planner)."""
        for key, high in _BOUNDS.items():
            value = data.get(key)
            if value is not None and number_problem(value, 0.0, high) is not None:
                raise ValueError(f"{key}: {number_problem(value, 0.0, high)}")
        return cls(
            task_type=str(data["task_type"]), env=str(data["env"]), duration_s=float(data["duration_s"]),
            memory_mb=int(data["memory_mb"]),
            vcpus=None if data.get("vcpus") is None else float(data["vcpus"]),
            bytes_in=int(data.get("bytes_in") or 0), bytes_out=int(data.get("bytes_out") or 0),
            peak_rss_mb=None if data.get("peak_rss_mb") is None else float(data["peak_rss_mb"]),
            ok=bool(data.get("ok", True)), reason=data.get("reason"),
            workflow=str(data.get("workflow", "")), at=float(data.get("at", 0.0)),
        )


_SAMPLE_FIELDS = Sample.__struct_fields__


def thin(samples: Sequence[Sample], per_type: int) -> list[Sample]:
    """Every failed sample (each says a size was too small) and at most `per_type` successful
    ones of each task type, evenly spread: a run of 10,000 identical tasks teaches the model no
    more than a few hundred of them do, and the history file stays small."""
    by_type: dict[str, list[Sample]] = {}
    out: list[Sample] = []
    for s in samples:
        if s.ok:
            by_type.setdefault(s.task_type, []).append(s)
        else:
            out.append(s)
    for group in by_type.values():
        step = max(1.0, len(group) / per_type)
        out.extend(group[int(i * step)] for i in range(min(per_type, len(group))))
    return out


class HistoryStore(Protocol):
    def add(self, samples: Sequence[Sample]) -> None:
        """Record samples (at least once; a duplicate only nudges an average)."""

    def samples(self, task_types: Collection[str] | None = None) -> list[Sample]:
        """Stored samples, oldest first, optionally only of `task_types`."""


class MemoryHistoryStore:
    def __init__(self, samples: Iterable[Sample] = ()) -> None:
        self._samples = list(samples)

    def add(self, samples: Sequence[Sample]) -> None:
        self._samples.extend(samples)

    def samples(self, task_types: Collection[str] | None = None) -> list[Sample]:
        return [s for s in self._samples if task_types is None or s.task_type in task_types]


class JsonlHistoryStore:
    """Samples as JSON lines in one file. Unreadable lines (a torn write) are skipped.

    Reading keeps the newest `keep_per_type` samples of each type, so an old file cannot make
    planning slow.
    """

    def __init__(self, path: str, keep_per_type: int = 500) -> None:
        self.path = path
        self.keep_per_type = keep_per_type

    @classmethod
    def in_workdir(cls, workdir: str) -> JsonlHistoryStore:
        return cls(os.path.join(workdir, HISTORY_FILE))

    def add(self, samples: Sequence[Sample]) -> None:
        if not samples:
            return
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        data = "".join(json.dumps(s.to_dict(), separators=(",", ":")) + "\n" for s in samples).encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)

    def samples(self, task_types: Collection[str] | None = None) -> list[Sample]:
        if not os.path.exists(self.path):
            return []
        by_type: dict[str, list[Sample]] = {}
        with open(self.path, encoding="utf-8", errors="replace") as fh:  # a damaged line is skipped below
            for line in fh:
                try:
                    sample = Sample.from_dict(json.loads(line))
                except (ValueError, KeyError, TypeError):
                    continue
                if task_types is None or sample.task_type in task_types:
                    kept = by_type.setdefault(sample.task_type, [])
                    kept.append(sample)
                    if len(kept) > 2 * self.keep_per_type:
                        del kept[: len(kept) - self.keep_per_type]
        out = [s for kept in by_type.values() for s in kept[-self.keep_per_type:]]
        out.sort(key=lambda s: s.at)
        return out


def samples_from_run(
    workflow: Workflow, records: Iterable[TaskRecord], env: str = "local", function_mb_per_vcpu: float = 1769.0,
) -> list[Sample]:
    """Samples from a finished run's task records (SUCCEEDED, and limit failures).

    `env` names where "container" and "function" placements ran: "local" for the local
    runtime (unthrottled CPU), "cloud" for Lambda/Fargate (CPU from the size).
    """
    tasks = workflow.task_map()
    now = time.time()
    out: list[Sample] = []
    for rec in records:
        task = tasks.get(rec.task_id)
        result = rec.result
        if task is None or result is None or result.duration_s is None:
            continue
        ok = rec.state is TaskState.SUCCEEDED
        if not ok and not (rec.state is TaskState.FAILED and rec.reason in LIMIT_REASONS):
            continue
        res = task.resources
        vcpus: float | None = None
        where = "local"
        if env != "local":
            where = rec.placement
            vcpus = res.memory_mb / function_mb_per_vcpu if rec.placement == "function" else res.cpus
        out.append(Sample(
            task_type=task.task_type, env=where, duration_s=result.duration_s,
            memory_mb=res.memory_mb, vcpus=vcpus, bytes_in=result.bytes_in or 0,
            bytes_out=result.bytes_out or 0, peak_rss_mb=result.peak_rss_mb,
            ok=ok, reason=None if ok else rec.reason, workflow=workflow.name,
            at=result.finished_at or rec.finished_at or now,
        ))
    return out
