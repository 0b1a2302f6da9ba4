"""Events the coordinator handles, and the instructions it returns.

Events arrive at least once and in any order; every handler is a no-op on a duplicate or a
late event. They serialise to small JSON dicts (SQS bodies, Lambda destinations). The base
`Event` and what an attempt reports when it ends (`TaskSucceeded`, `TaskFailed`) live in
`chalicelib/attempt.py`, below the runner that builds them; they are re-exported here.
"""

from __future__ import annotations

from typing import Any, ClassVar

from msgspec import Struct, field

from chalicelib.attempt import Event as Event  # re-exported, as are the two below
from chalicelib.attempt import TaskFailed as TaskFailed
from chalicelib.attempt import TaskSucceeded as TaskSucceeded
from chalicelib.attempt import result_from_dict


class Start(Event, frozen=True):
    """Dispatch the run's READY tasks (after submit or resume), a window at a time: a window
    that leaves some behind ends with another Start carrying `after`, the position (a task
    id of the store's page order) the next window starts after. `delayed` is what an older
    Start carried (a count of tasks to skip); it is accepted and no longer needed."""

    kind: ClassVar[str] = "start"
    delayed: int = 0
    after: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        if not self.delayed:  # the usual Start stays {"kind", "run_id"} on the wire
            del data["delayed"]
        if self.after is None:
            del data["after"]
        return data


class TaskStarted(Event, frozen=True):
    kind: ClassVar[str] = "started"
    task_id: str
    attempt: int
    at: float
    lease_s: float


class Heartbeat(Event, frozen=True):
    kind: ClassVar[str] = "heartbeat"
    task_id: str
    attempt: int
    lease_s: float


class LeaseExpired(Event, frozen=True):
    kind: ClassVar[str] = "lease_expired"
    task_id: str
    attempt: int


class DispatchDue(Event, frozen=True):
    """A retry's backoff is over: dispatch this attempt if it is still the current one."""

    kind: ClassVar[str] = "dispatch_due"
    task_id: str
    attempt: int


def _window_dict(data: dict[str, Any]) -> dict[str, Any]:
    """A windowed event's body: `after` only when a window continues (the first has none)."""
    if data.get("after") is None:
        data.pop("after", None)
    return data


class Cancel(Event, frozen=True):
    """Cancel the run, then its live tasks a window at a time: a window that leaves some
    behind ends with another Cancel carrying `after` (where the next window starts)."""

    kind: ClassVar[str] = "cancel"
    after: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return _window_dict(super().to_dict())


class Resume(Event, frozen=True):
    """Reset the tasks of a run being resumed, a window at a time (what did not succeed goes
    back to WAITING or READY with a new attempt); a window that leaves some behind ends with
    another Resume carrying `after`, the last ends the resume and sends a Start. `token` names
    the resume (the run's `options["resuming"]`): a window of another resume, or one arriving
    after its resume ended, does nothing."""

    kind: ClassVar[str] = "resume"
    token: str
    after: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return _window_dict(super().to_dict())


class ReadyChildren(Event, frozen=True):
    """Count `parent_id`'s completion for its children from `offset` on (in the spec's order)
    and dispatch those it readies, a window at a time: what a completion with more children
    than one window leaves to the next hop."""

    kind: ClassVar[str] = "children"
    parent_id: str
    offset: int


EVENT_TYPES: dict[str, type[Event]] = {
    cls.kind: cls
    for cls in (Start, TaskStarted, Heartbeat, TaskSucceeded, TaskFailed, LeaseExpired, DispatchDue, Cancel,
                Resume, ReadyChildren)
}


def event_from_dict(data: dict[str, Any]) -> Event:
    """Parse an event dict; raises ValueError naming what is wrong."""
    if not isinstance(data, dict):
        raise ValueError("event must be a JSON object")
    kind = data.get("kind")
    cls = EVENT_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ValueError(f"unknown event kind {kind!r}; known: {sorted(EVENT_TYPES)}")
    fields = {k: v for k, v in data.items() if k != "kind"}
    try:
        if "result" in fields:
            fields["result"] = result_from_dict(fields["result"])
        return cls(**fields)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"bad {kind} event: {exc}") from exc


# ---- instructions: what the shell around the coordinator must do --------------------------

class Launch(Struct, frozen=True):
    """Run `attempt` of a task on `placement` (it is already DISPATCHED in the store).

    `resources` overrides the spec's resources for this attempt (a retry escalated after the
    task ran out of memory or disk)."""

    run_id: str
    task_id: str
    attempt: int
    placement: str
    resources: dict[str, float] = field(default_factory=dict)


class Schedule(Struct, frozen=True):
    """Deliver `event` to the coordinator after `delay_s` seconds."""

    event: Event
    delay_s: float


class Kill(Struct, frozen=True):
    """Stop the given attempt if it is running (cancel)."""

    run_id: str
    task_id: str
    attempt: int
    placement: str


class RunFinished(Struct, frozen=True):
    run_id: str
    state: str


Instruction = Launch | Schedule | Kill | RunFinished
