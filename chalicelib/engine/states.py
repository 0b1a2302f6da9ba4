"""Task and run states (DESIGN.md) and the typed reasons a task can fail."""

from __future__ import annotations

import enum


class TaskState(enum.StrEnum):
    WAITING = "WAITING"
    READY = "READY"
    DISPATCHED = "DISPATCHED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CACHED = "CACHED"
    UPSTREAM_FAILED = "UPSTREAM_FAILED"
    CANCELLED = "CANCELLED"


class RunState(enum.StrEnum):
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


class Reason(enum.StrEnum):
    """Why a task failed. Each maps to an explanation a user can act on."""

    NONZERO_EXIT = "NONZERO_EXIT"
    MISSING_OUTPUT = "MISSING_OUTPUT"
    TIMEOUT = "TIMEOUT"
    OOM = "OOM"
    DISK_QUOTA = "DISK_QUOTA"
    STAGE_IN = "STAGE_IN"
    STAGE_OUT = "STAGE_OUT"
    LAUNCH = "LAUNCH"
    LEASE_EXPIRED = "LEASE_EXPIRED"
    UNSAFE_OUTPUT = "UNSAFE_OUTPUT"
    CANCELLED = "CANCELLED"
    UPSTREAM = "UPSTREAM"


TERMINAL_TASK = frozenset(
    {TaskState.SUCCEEDED, TaskState.FAILED, TaskState.CACHED, TaskState.UPSTREAM_FAILED, TaskState.CANCELLED}
)
DONE_OK = frozenset({TaskState.SUCCEEDED, TaskState.CACHED})
IN_FLIGHT = frozenset({TaskState.DISPATCHED, TaskState.RUNNING})
NOT_STARTED = frozenset({TaskState.WAITING, TaskState.READY})
TERMINAL_RUN = frozenset({RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED})
# Reasons a function-placed `auto` task is retried in a container instead (spill).
SPILL_REASONS = frozenset({Reason.TIMEOUT, Reason.OOM, Reason.DISK_QUOTA})
