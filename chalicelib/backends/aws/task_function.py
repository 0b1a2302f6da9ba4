"""The task function: runs one attempt of a function-placed task.

Invoked asynchronously by the coordinator with {run_id, task_id, attempt}:
  1. load the run's spec (cached while the function is warm);
  2. claim the attempt (claims.py) - a duplicate delivery stops here, having run nothing;
  3. run it through the runner, with the timeout capped to the invocation's remaining time
     so that a too-long task fails as TIMEOUT (and spills to a container if `auto`) instead
     of being killed by Lambda mid-stage-out, and in an environment without the function's
     AWS credentials (task_env.py) - and, from the first invocation on, with this process
     non-dumpable, so the task cannot read those credentials from /proc/$PPID/environ either;
  4. send the completion to the events queue and return it as well: the OnSuccess
     destination carries the return value, marked delivered=True when step 4's send went
     through, so the coordinator only acts on it if our own send failed.
A crash or a Lambda timeout raises out of here: the OnFailure destination turns it into a
TaskFailed (messages.py).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from msgspec.structs import replace

from chalicelib.backends.aws.cache import input_hashes, task_cache
from chalicelib.backends.aws.claims import claim
from chalicelib.backends.aws.components import Cloud
from chalicelib.backends.aws.messages import parse_task_payload, payload_resources, task_result
from chalicelib.backends.aws.observability import Observability
from chalicelib.backends.aws.task_env import cloud_task_env, forbid_reading_this_process
from chalicelib.engine.events import TaskFailed, TaskSucceeded
from chalicelib.engine.spec import RunSpec
from chalicelib.engine.transitions import function_lease_s
from chalicelib.runner import TaskRequest, run_task
from chalicelib.runner.procs import set_subreaper
from chalicelib.workflow.model import Task

REPORT_MARGIN_S = 20.0  # kept back from the invocation's time to stage out and report

_unreadable = False  # set once this process has been made non-dumpable
_reaper: bool | None = None  # whether this process reaps its tasks' orphans (see reaps_orphans)


def forbid_reading_once() -> None:
    """Make the function's process non-dumpable, before its first task (task_env.py): the
    environment Lambda started it with holds the role's keys. Also means no core dumps and no
    same-user ptrace of the function's process."""
    global _unreadable
    if not _unreadable:
        forbid_reading_this_process()
        _unreadable = True


def reaps_orphans() -> bool:
    """In Lambda (the runtime process runs nothing but our tasks), once: become the child
    subreaper of the tasks, so that what one leaves running (setsid, a double fork) comes
    back here and is killed and reaped when it ends, not frozen with the function and thawed
    into the next invocation (runner/procs.py). Elsewhere (tests calling the handler in a
    process of their own) False: only what carries the attempt's environment is swept."""
    global _reaper
    if _reaper is None:
        _reaper = "AWS_LAMBDA_RUNTIME_API" in os.environ and set_subreaper()
    return _reaper


def input_sources(spec: RunSpec) -> dict[str, str]:
    """Where each external input is read from (s3:// URIs fixed at submit time)."""
    return {f.path: f.source for f in spec.workflow.inputs if f.source}


def with_resources(task: Task, overrides: Mapping[str, float]) -> Task:
    """The task with an escalated retry's resources (the coordinator sends them in the payload)."""
    return replace(task, resources=task.resources.grown(overrides)) if overrides else task


def capped(task: Task, remaining_s: float | None) -> Task:
    if remaining_s is None:
        return task
    budget = max(1.0, remaining_s - REPORT_MARGIN_S)
    if task.resources.timeout_s <= budget:
        return task
    return replace(task, resources=replace(task.resources, timeout_s=budget))


def handle_task(payload: Any, cloud: Cloud, obs: Observability, remaining_s: float | None = None,
                memory_mb: int | None = None) -> dict[str, Any]:
    """Run one attempt; `memory_mb`: the invoked function's memory size (Lambda's context), kept
    on the attempt's result as `function_mb` so a run shows which size each task ran on."""
    forbid_reading_once()
    run_id, task_id, attempt = parse_task_payload(payload)
    overrides = payload_resources(payload)
    obs.bind(run_id=run_id, task_id=task_id, attempt=attempt)
    spec = cloud.specs.get(run_id)
    task = capped(with_resources(spec.tasks[task_id], overrides), remaining_s)
    now = cloud.clock()
    if claim(cloud.store, run_id, task_id, attempt, now, function_lease_s(task.resources.timeout_s)) is None:
        obs.logger.info("attempt already claimed or no longer current: nothing to run")
        return task_result(None, delivered=False)
    obs.count("TasksStarted")
    workroot = os.path.join(cloud.config.workroot, "fn")
    request = TaskRequest(run_id, task_id, attempt, task, input_hashes(cloud.store, spec, run_id, task))
    outcome = run_task(request, cloud.blobs, workroot, input_sources(spec), cache=task_cache(cloud.config),
                       base_env=cloud_task_env(),  # the task gets none of this function's credentials
                       all_orphans=reaps_orphans())
    event = outcome.event
    if memory_mb is not None:
        event = replace(event, result=replace(event.result, function_mb=int(memory_mb)))
    record_outcome(obs, event, task.task_type, "function")
    try:
        cloud.sink.send([event])
        delivered = True
    except Exception:
        obs.logger.exception("could not send the completion; the destination record carries it")
        delivered = False
    return task_result(event, delivered)


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
