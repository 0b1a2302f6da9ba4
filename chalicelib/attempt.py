"""What one task attempt reports when it ends: `TaskSucceeded` or `TaskFailed`, and the
`Reason` a task failed.

These records sit below both the runner (which builds them) and the engine (which handles
them: `engine/events.py` adds the coordinator's own events beside them), so running one task
does not depend on the coordinator's vocabulary. They serialise to small JSON dicts (SQS
bodies, Lambda destinations) like every event.
"""

from __future__ import annotations

import enum
from typing import Any, ClassVar

from msgspec import Struct, field
from msgspec.structs import asdict


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


class Event(Struct, frozen=True):
    """Something the coordinator handles, for one run; `kind` names it on the wire."""

    kind: ClassVar[str] = ""
    run_id: str

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **asdict(self)}


class TaskSucceeded(Event, frozen=True):
    kind: ClassVar[str] = "succeeded"
    task_id: str
    attempt: int
    result: dict[str, Any] = field(default_factory=dict)
    cached: bool = False


class TaskFailed(Event, frozen=True):
    kind: ClassVar[str] = "failed"
    task_id: str
    attempt: int
    reason: str
    result: dict[str, Any] = field(default_factory=dict)
