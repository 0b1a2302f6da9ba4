"""One attempt of a task in the cloud, claimed, run and reported: the one path the task
function (Lambda, task_function.py) and the Fargate worker (workers/worker.py) share. Each
caller keeps only what is its own: the task function its Lambda event and remaining time, the
worker its queue polling, message visibility, heartbeat and scale-in protection.

    claim    DISPATCHED -> RUNNING, conditional on the attempt (claims.py): a duplicate
             delivery, or an attempt cancelled or retried meanwhile, stops here, having run
             nothing
    run      runner.run_task with the run's input sources and known hashes, the cache, and an
             environment without the caller's AWS credentials (task_env.py)
    hand back  when the caller stopped the attempt (the worker's SIGTERM): RUNNING -> DISPATCHED
             (unclaim), nothing reported, so another worker runs it
    report   the attempt's metrics, then its completion sent to the events queue
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from msgspec import Struct, field
from msgspec.structs import replace

from chalicelib.attempt import TaskFailed, TaskSucceeded
from chalicelib.backends.aws.cache import input_hashes, task_cache
from chalicelib.backends.aws.claims import claim, unclaim
from chalicelib.backends.aws.components import Cloud
from chalicelib.backends.aws.observability import Observability
from chalicelib.backends.aws.task_env import cloud_task_env
from chalicelib.engine.spec import RunSpec
from chalicelib.runner.execute import Attempt, TaskRequest, run_task
from chalicelib.workflow.model import Task


class Order(Struct, frozen=True):
    """The attempt a delivery asks for (a Lambda payload, a container message), with the
    resources an escalated retry overrides."""

    run_id: str
    task_id: str
    attempt: int
    resources: Mapping[str, float] = field(default_factory=dict)


class Where(Struct, frozen=True):
    """Where and how the caller runs attempts.

    `lease_s` gives the lease a claim takes for the task about to run (the function's deadline,
    or the worker's heartbeat period); `fit` adjusts the task first (the function caps its
    timeout to the invocation's remaining time); `extra` sets fields of the attempt's
    AttemptResult (the size it ran at: `function_mb`, or `container_cpu` and
    `container_memory_mb`); `all_orphans`: the process runs nothing but tasks (runner.run_task); `fallback`: the
    completion has another way to the coordinator when the send fails (the function's
    OnSuccess destination), so a failed send is logged rather than raised."""

    placement: str
    workroot: str
    lease_s: Callable[[Task], float]
    fit: Callable[[Task], Task] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    all_orphans: bool = False
    fallback: bool = False


class Ran(Struct, frozen=True):
    """What became of the attempt: not claimed (`event` None, nothing ran), handed back
    (`handed_back`, nothing reported), or finished with `event`, `delivered` when it was sent."""

    event: TaskSucceeded | TaskFailed | None = None
    delivered: bool = False
    handed_back: bool = False

    @property
    def claimed(self) -> bool:
        return self.event is not None or self.handed_back


def run_attempt(
    cloud: Cloud, obs: Observability, order: Order, where: Where,
    while_running: Callable[[], AbstractContextManager[Any]] | None = None,
    on_start: Callable[[Attempt], None] | None = None,
    stopped: Callable[[], bool] | None = None,
) -> Ran:
    """Claim, run and report one attempt. `while_running` is entered once the attempt is
    claimed and left when it has ended (the worker's heartbeat and scale-in protection);
    `on_start` is called when the process runs; `stopped()` True after the run: the caller
    stopped it, and the attempt is handed back instead of reported."""
    obs.bind(run_id=order.run_id, task_id=order.task_id, attempt=order.attempt)
    spec = cloud.specs.get(order.run_id)
    task = with_resources(spec.tasks[order.task_id], order.resources)
    if where.fit is not None:
        task = where.fit(task)
    store = cloud.store
    if claim(store, order.run_id, order.task_id, order.attempt, cloud.clock(), where.lease_s(task)) is None:
        obs.logger.info("attempt already claimed or no longer current: nothing to run")
        return Ran()
    obs.count("TasksStarted")
    with (while_running or nullcontext)():
        request = TaskRequest(order.run_id, order.task_id, order.attempt, task,
                              input_hashes(store, spec, order.run_id, task))
        outcome = run_task(request, cloud.blobs, where.workroot, input_sources(spec), on_start=on_start,
                           cache=task_cache(cloud.config),
                           base_env=cloud_task_env(),  # the task gets none of the caller's credentials
                           all_orphans=where.all_orphans)
    if stopped is not None and stopped():
        queued_lease = cloud.coordinator_config.container_queue_lease_s
        unclaim(store, order.run_id, order.task_id, order.attempt, cloud.clock(), queued_lease)
        obs.logger.info("stopped: the attempt is handed back")
        return Ran(handed_back=True)
    event = outcome.event
    if where.extra:
        event = replace(event, result=replace(event.result, **where.extra))
    record_outcome(obs, event, task.task_type, where.placement)
    return Ran(event, report(cloud, obs, event, where.fallback))


def report(cloud: Cloud, obs: Observability, event: TaskSucceeded | TaskFailed, fallback: bool) -> bool:
    """Send the completion to the events queue; False when that failed and `fallback` carries
    it instead (otherwise the error propagates to the caller, which leaves its delivery
    unacknowledged)."""
    try:
        cloud.sink.send([event])
        return True
    except Exception:
        if not fallback:
            raise
        obs.logger.exception("could not send the completion; the destination record carries it")
        return False


def input_sources(spec: RunSpec) -> dict[str, str]:
    """Where each external input is read from (s3:// URIs fixed at submit time)."""
    return {f.path: f.source for f in spec.workflow.inputs if f.source}


def with_resources(task: Task, overrides: Mapping[str, float]) -> Task:
    """The task with an escalated retry's resources (the coordinator sends them in the payload)."""
    return replace(task, resources=task.resources.grown(overrides)) if overrides else task


def record_outcome(obs: Observability, event: TaskSucceeded | TaskFailed, task_type: str = "",
                   placement: str = "") -> None:
    """Metrics of one finished attempt: outcome and duration by task type and placement, and
    the bytes the cache saved fetching."""
    duration = event.result.duration_s
    outcome = "cached" if getattr(event, "cached", False) else ("succeeded" if isinstance(event, TaskSucceeded)
                                                                 else "failed")
    if duration is not None:
        obs.seconds("TaskDuration", float(duration))
        if task_type:
            obs.seconds("TaskDurationByType", float(duration), TaskType=task_type, Placement=placement)
    obs.count("TasksByOutcome", 1, Outcome=outcome, Placement=placement or "unknown")
    saved = event.result.cache.bytes_from_cache if event.result.cache is not None else 0
    if saved:
        obs.bytes("CacheBytesSaved", float(saved), Placement=placement or "unknown")
    if isinstance(event, TaskSucceeded):
        obs.count("TasksSucceeded")
        obs.logger.info("task succeeded", extra={"duration_s": duration})
    else:
        obs.count("TasksFailed")
        obs.logger.info("task failed: %s", event.reason, extra={"duration_s": duration})
