"""The task function: runs one attempt of a function-placed task.

Invoked asynchronously by the coordinator with {run_id, task_id, attempt}; steps 1-4 are the
claim-run-report path it shares with the Fargate worker (attempts.py):
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
from typing import Any

from msgspec.structs import replace

from chalicelib.backends.aws.attempts import Order, Where, run_attempt
from chalicelib.backends.aws.components import Cloud
from chalicelib.backends.aws.messages import parse_task_payload, payload_resources, task_result
from chalicelib.backends.aws.observability import Observability
from chalicelib.backends.aws.task_env import forbid_reading_this_process
from chalicelib.engine.transitions import function_lease_s
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
    order = Order(run_id, task_id, attempt, payload_resources(payload))
    where = Where(
        placement="function", workroot=os.path.join(cloud.config.workroot, "fn"),
        lease_s=lambda task: function_lease_s(task.resources.timeout_s),
        fit=lambda task: capped(task, remaining_s),
        extra={"function_mb": int(memory_mb)} if memory_mb is not None else {},
        all_orphans=reaps_orphans(), fallback=True,  # the OnSuccess destination carries an unsent completion
    )
    ran = run_attempt(cloud, obs, order, where)
    return task_result(ran.event, ran.delivered)
