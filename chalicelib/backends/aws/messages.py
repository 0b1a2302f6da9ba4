"""What travels between the functions: message bodies on the events queue, the task
function's payload and its return value, and the Lambda destination records wrapping them.

Bodies carry ids and a task's result (never a spec). A result can be big: a task's output
hashes travel in it (2,600 outputs of short names: 234 KB), so a body over BODY_BUDGET sheds
first the output hashes (the coordinator stores at most 32 KB of a result anyway, and a task
that reads those files hashes them itself when they are not known), then most of its log
tail, then everything but the timings: every message stays under SQS's 256 KiB.

Events-queue bodies are one of:
- an engine event dict ({"kind": "succeeded", "run_id": ..., ...});
- {"kind": "deferred", "due": <epoch>, "event": {...}}: a timer longer than SQS's 900 s
  delay, re-sent by the coordinator's shell until due;
- a Lambda destination record of the task function ({"requestContext": ..., ...}):
  on success its responsePayload is {"delivered": bool, "event": {...}} - the function sends
  its completion itself and returns it too, so the record is only a backup, ignored when the
  function's own send went through; on failure (crash, timeout, out of memory) it becomes a
  TaskFailed with the reason read from Lambda's error; an invoke Lambda dropped unrun from its
  queue (condition EventAgeExceeded) is a lost function: LEASE_EXPIRED, retried as such.
"""

from __future__ import annotations

import json
from typing import Any

from msgspec import Struct
from msgspec.structs import replace

from chalicelib.attempt import AttemptResult
from chalicelib.engine.events import Event, Launch, TaskFailed, event_from_dict
from chalicelib.engine.states import Reason

BODY_BUDGET = 200 * 1024  # bytes of one events-queue body: SQS takes 256 KiB, with room to spare
LOG_TAIL_KEPT = 8192  # characters of a log tail a body over budget keeps


def _dumps(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"))


def _timings(r: AttemptResult) -> AttemptResult:
    """All a body keeps of a result when nothing else fits: its timings and sizes."""
    return AttemptResult(exit_code=r.exit_code, started_at=r.started_at, finished_at=r.finished_at,
                         duration_s=r.duration_s, log_key=r.log_key, peak_rss_mb=r.peak_rss_mb,
                         bytes_in=r.bytes_in, bytes_out=r.bytes_out, outputs_omitted=r.outputs_omitted,
                         result_shed=True)


def _fitted(event: Event, wrap: Any) -> str:
    """`wrap(event dict)` as JSON, its result shed step by step until it fits BODY_BUDGET."""
    body = _dumps(wrap(event.to_dict()))
    result = getattr(event, "result", None)
    if len(body.encode()) <= BODY_BUDGET or not isinstance(result, AttemptResult):
        return body
    slim = replace(result, outputs={}, outputs_omitted=len(result.outputs)) if result.outputs else result
    for step in (lambda r: r, lambda r: replace(r, log_tail=(r.log_tail or "")[-LOG_TAIL_KEPT:]), _timings):
        slim = step(slim)
        body = _dumps(wrap(replace(event, result=slim).to_dict()))
        if len(body.encode()) <= BODY_BUDGET:
            break
    return body


def event_body(event: Event) -> str:
    return _fitted(event, lambda d: d)


def deferred_body(event: Event, due: float) -> str:
    return _fitted(event, lambda d: {"kind": "deferred", "due": due, "event": d})


def task_payload(launch: Launch) -> dict[str, Any]:
    """What the task function and the worker receive: which attempt of which task to run,
    and the attempt's own resources when a retry was escalated (more memory or disk)."""
    payload: dict[str, Any] = {"run_id": launch.run_id, "task_id": launch.task_id, "attempt": launch.attempt}
    if launch.resources:
        payload["resources"] = dict(launch.resources)
    return payload


def payload_resources(data: Any) -> dict[str, float]:
    """The resource overrides of a task payload ({} when none); raises ValueError if bad."""
    raw = data.get("resources") if isinstance(data, dict) else None
    if not raw:
        return {}
    if not isinstance(raw, dict) or not all(
        k in ("memory_mb", "cpus", "disk_mb", "timeout_s") and isinstance(v, int | float) and not isinstance(v, bool)
        for k, v in raw.items()
    ):
        raise ValueError(f"bad task payload resources {raw!r}: numbers for memory_mb, cpus, disk_mb, timeout_s")
    return {k: float(v) for k, v in raw.items()}


def parse_task_payload(data: Any) -> tuple[str, str, int]:
    """(run_id, task_id, attempt) of a task payload; raises ValueError naming what is wrong."""
    if not isinstance(data, dict):
        raise ValueError("a task payload is a JSON object with run_id, task_id and attempt")
    try:
        run_id, task_id, attempt = data["run_id"], data["task_id"], int(data["attempt"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"bad task payload {data!r}: needs run_id, task_id and attempt ({exc})") from None
    if not isinstance(run_id, str) or not isinstance(task_id, str):
        raise ValueError(f"bad task payload {data!r}: run_id and task_id are strings")
    return run_id, task_id, attempt


def task_result(event: Event | None, delivered: bool) -> dict[str, Any]:
    """The task function's return value (what its OnSuccess destination carries)."""
    # fitted as a queue body is: Lambda's destination record has the same 256 KB limit
    return {"delivered": delivered, "event": json.loads(event_body(event)) if event is not None else None}


class Decoded(Struct, frozen=True):
    """A decoded events-queue body: an event to handle now, one to defer, or nothing."""

    event: Event | None
    due: float | None = None
    note: str = ""


def decode(body: str) -> Decoded:
    """Decode one events-queue body; raises ValueError for anything unreadable."""
    try:
        data = json.loads(body)
    except json.JSONDecodeError as exc:
        raise ValueError(f"message body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError("message body must be a JSON object")
    if "requestContext" in data and "requestPayload" in data:
        return _destination(data)
    if data.get("kind") == "deferred":
        inner = data.get("event")
        if not isinstance(inner, dict):
            raise ValueError("a deferred message needs an 'event' object")
        return Decoded(event_from_dict(inner), due=float(data.get("due", 0.0)))
    return Decoded(event_from_dict(data))


def _destination(data: dict[str, Any]) -> Decoded:
    condition = str(data.get("requestContext", {}).get("condition", ""))
    response = data.get("responsePayload")
    if condition == "Success":
        if not isinstance(response, dict) or response.get("event") is None:
            return Decoded(None, note="the invocation ran nothing (a duplicate delivery)")
        if response.get("delivered"):
            return Decoded(None, note="the function delivered its event itself")
        return Decoded(event_from_dict(response["event"]))
    run_id, task_id, attempt = parse_task_payload(data.get("requestPayload"))
    if condition == "EventAgeExceeded":  # never ran: dropped from Lambda's queue (throttled too long)
        tail = ("the task function never started: Lambda dropped the invoke after it waited "
                "MaximumEventAgeInSeconds in its queue (throttled); retried as a lost function")
        return Decoded(TaskFailed(run_id, task_id, attempt, Reason.LEASE_EXPIRED.value, AttemptResult(log_tail=tail)))
    error = response if isinstance(response, dict) else {}
    etype, message = str(error.get("errorType", "")), str(error.get("errorMessage", response or ""))
    reason = lambda_failure_reason(etype, message)
    tail = f"the task function failed ({condition}): {etype}: {message}".strip()
    field_name = _RAISE.get(reason)
    if field_name is not None:  # what to change: the resource, or past Lambda's own caps the placement
        tail += (f"; raise the task's resources.{field_name}, or set its placement to 'container' or 'auto' "
                 "past Lambda's limits")
    return Decoded(TaskFailed(run_id, task_id, attempt, reason, AttemptResult(log_tail=tail, lambda_error=etype)))


_RAISE = {Reason.TIMEOUT.value: "timeout_s", Reason.OOM.value: "memory_mb", Reason.DISK_QUOTA.value: "disk_mb"}


def lambda_failure_reason(error_type: str, message: str) -> str:
    """Map Lambda's error of a crashed task function to a failure reason (timeouts and
    out-of-memory kills are the ones an `auto` task spills to a container for)."""
    if "Task timed out" in message or error_type in ("Sandbox.Timedout", "Runtime.Timeout"):
        return Reason.TIMEOUT.value
    if error_type == "Runtime.OutOfMemory" or "signal: killed" in message or "MemoryError" in error_type:
        return Reason.OOM.value
    if "No space left on device" in message:
        return Reason.DISK_QUOTA.value
    return Reason.LAUNCH.value
