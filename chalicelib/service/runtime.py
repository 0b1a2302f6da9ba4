"""The shape of a runtime, what the run service needs of a backend.

The local runtime (chalicelib/backends/local/runtime.py: SQLite, a folder of blobs, process
pools) and the cloud (chalicelib/backends/aws/components.py: DynamoDB, S3, SQS, Lambda,
Fargate) both implement it; each backend assembles one in its composition root
(backends/local/compose.py, backends/aws/components.py). A new backend implements this, the
ports it hands out, and passes tests/contract/.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from msgspec import Struct, field

from chalicelib.engine.ports import BlobStore, StateStore
from chalicelib.engine.records import RunRecord
from chalicelib.engine.spec import SpecCache
from chalicelib.workflow.limits import PlacementLimits
from chalicelib.workflow.model import Workflow


class Request(Struct, frozen=True):
    """A submission read and validated by the runtime: the workflow, where its inputs are
    (a folder locally, an s3:// prefix in the cloud) and the options stored with the run."""

    workflow: Workflow
    data: str | None = None
    source: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    name: str | None = None  # the request's "name": the run's name instead of the workflow's


class Resolved(Struct, frozen=True):
    """A workflow whose every external input has a source the runtime can read, and the
    local files to copy into the run's data before it starts (none in the cloud, whose tasks
    read their inputs from S3)."""

    workflow: Workflow
    staged: Mapping[str, str] = field(default_factory=dict)  # input path -> local file


class Runtime(Protocol):
    """A backend as the run service sees it."""

    @property
    def store(self) -> StateStore: ...

    @property
    def blobs(self) -> BlobStore: ...

    @property
    def specs(self) -> SpecCache: ...

    @property
    def tracks_owner(self) -> bool:
        """Whether `owner` can tell that nobody executes a RUNNING run (locally: the run's
        lock is free), so that `resume` may take over a RUNNING run."""

    def clock(self) -> float:
        """Seconds since the epoch."""

    def function_limits(self) -> PlacementLimits:
        """What the largest function holds: an `auto` task beyond it starts in a container."""

    def read_request(self, body: Any, raw: bytes | None) -> Request:
        """A POST /runs body (JSON `body`, else the `raw` bytes) read, loaded and validated.
        Raises WorkflowError (FormatError) naming every problem, NotFoundError for a workflow
        named by reference that does not exist."""

    def resolve_inputs(self, workflow: Workflow, data: str | None, source: str | None) -> Resolved:
        """Find every external input (and dependency); MissingInputsError names every gap."""

    def stage_inputs(self, run_id: str, staged: Mapping[str, str]) -> None:
        """Copy `Resolved.staged` into the run's data (nothing in the cloud)."""

    def start(self, run_id: str) -> None:
        """Have the run executed: a Start event (cloud), an executor process (local server),
        or nothing (the CLI executes it in the foreground next)."""

    def resume_tasks(self, run_id: str, token: str) -> None:
        """Have a run whose resume began (`lifecycle.begin_resume`) reset its tasks and go on:
        a Resume event (cloud: the coordinator resets them a window at a time, then starts
        it), or every window here and then `start` (local)."""

    def cancel(self, run_id: str) -> RunRecord | None:
        """Cancel a live run: the record once cancelled, or None when cancelling goes on
        asynchronously (the cloud's coordinator does it)."""

    def owner(self, run_id: str) -> int | None:
        """The pid of the live process executing the run, when the runtime knows one."""
