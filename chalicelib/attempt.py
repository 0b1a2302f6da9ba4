"""What one task attempt reports when it ends: `TaskSucceeded` or `TaskFailed` carrying its
`AttemptResult` (the declared schema of a task's result), and the `Reason` a task failed.

These records sit below both the runner (which builds them) and the engine (which handles
them: `engine/events.py` adds the coordinator's own events beside them), so running one task
does not depend on the coordinator's vocabulary. They serialise to small JSON dicts (SQS
bodies, Lambda destinations) like every event.
"""

from __future__ import annotations

import enum
from typing import Any, ClassVar

import msgspec
from msgspec import Struct, field


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


# ---- a task's result ------------------------------------------------------------------------
# The runner (task function, Fargate worker, local pools) builds an `AttemptResult` when an
# attempt ends; it travels in the TaskSucceeded / TaskFailed event, the transitions store it on
# the task record, and the CLI, the API, the report and the planner read its attributes. It
# holds what the attempt measured and produced, never the engine's own bookkeeping (lost
# workers, escalated resources, earlier attempts, the failed parent: TaskRecord fields).
#
# Wire and storage form: a JSON object (msgspec, `omit_defaults`: a field at its default is left
# out, so a body stays small and its keys are the ones that were set). Decoding ignores unknown
# keys and defaults missing ones, so a result written by an older version (a plain dict with
# keys this one no longer has, or without ones it added) still reads.


class CacheUse(Struct, frozen=True, omit_defaults=True):
    """How the attempt used the dependency cache (cache/stage.py counts it)."""

    hits: int = 0  # input or dependency objects found in the cache
    misses: int = 0  # objects fetched from their origin (the blob store, the dependency's path)
    bytes_from_origin: int = 0
    bytes_from_cache: int = 0
    memo: str = "off"  # memoization: "off", "miss", "hit" (a stored result reused) or "rerun"


class AttemptResult(Struct, frozen=True, omit_defaults=True):
    """One attempt's outcome as the runner measured it. Every field is optional: a failure
    before the command started (staging, launch, a crashed function) knows only a few."""

    exit_code: int | None = None  # the command's exit code (negative: killed by that signal)
    started_at: float | None = None  # epoch seconds, by the runner's clock
    finished_at: float | None = None
    duration_s: float | None = None  # wall time of the command (0.0 for a memoized result)
    peak_rss_mb: float | None = None  # peak resident memory of the task's process tree
    bytes_in: int | None = None  # bytes staged in (inputs and deps)
    bytes_out: int | None = None  # bytes of outputs staged out
    outputs: dict[str, str] = field(default_factory=dict)  # output path -> its content's SHA-256
    log_key: str | None = None  # the blob key of the attempt's stored log
    log_tail: str | None = None  # a failure's account: the runner's one line, then the log's end
    cache: CacheUse | None = None  # None: the attempt ran without the cache
    worker: str | None = None  # the name of what ran it, for a runtime that names its workers (the
    # report's Gantt rows by worker fall back to the placement without it)
    compute_s: float | None = None  # the simulator's own compute time (planner/simulator.py)
    function_mb: int | None = None  # the Lambda size the attempt ran on (task function)
    container_cpu: float | None = None  # the Fargate size the attempt ran on (worker), vCPU
    container_memory_mb: int | None = None
    lambda_error: str | None = None  # Lambda's error type of a crashed task function
    # Set when a result was cut down to fit: a queue body (outputs dropped, then most of the
    # log tail, then all but the timings) or a DynamoDB item (the log tail shortened).
    outputs_omitted: int = 0  # how many output hashes a queue body left out
    result_shed: bool = False
    result_truncated: bool = False
    # Set when a DynamoDB item keeps a slim copy (outputs dropped, the log tail's end): the blob
    # key of the whole result (chalicelib/backends/aws/dynamodb_results.py).
    result_key: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The result as a JSON object: only the fields that are set."""
        data: dict[str, Any] = msgspec.to_builtins(self)
        return data


_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(AttemptResult)


def encode_result(result: AttemptResult) -> bytes:
    return _ENCODER.encode(result)


def decode_result(raw: str | bytes) -> AttemptResult:
    """A stored or sent result; raises ValueError when it is not a result object."""
    try:
        return _DECODER.decode(raw)
    except msgspec.DecodeError as exc:
        raise ValueError(f"not a task result: {exc}") from None


def result_from_dict(data: Any) -> AttemptResult:
    """A result from its JSON object (an event body's); raises ValueError when it is not one."""
    if isinstance(data, AttemptResult):
        return data
    try:
        return msgspec.convert(data, AttemptResult)
    except msgspec.ValidationError as exc:
        raise ValueError(f"not a task result: {exc}") from None


# ---- the events an attempt ends with -----------------------------------------------------------

class Event(Struct, frozen=True):
    """Something the coordinator handles, for one run; `kind` names it on the wire."""

    kind: ClassVar[str] = ""
    run_id: str

    def to_dict(self) -> dict[str, Any]:
        """The event as a JSON object (a result in it: only the fields that are set)."""
        return {"kind": self.kind, **msgspec.to_builtins(self)}


class TaskSucceeded(Event, frozen=True):
    kind: ClassVar[str] = "succeeded"
    task_id: str
    attempt: int
    result: AttemptResult = field(default_factory=AttemptResult)
    cached: bool = False


class TaskFailed(Event, frozen=True):
    kind: ClassVar[str] = "failed"
    task_id: str
    attempt: int
    reason: str
    result: AttemptResult = field(default_factory=AttemptResult)
