"""Hard limits of each placement, used by validation and by the local function pool.

Read from the AWS documentation on 2026-11-01 (Lambda quotas; Fargate task sizes).

The cloud validates every `function` task against Lambda's limits. A local run does so only
when asked (`--emulate-lambda`, so that what runs locally runs on Lambda) or for a task whose
own file names `placement: function`; otherwise a local task is bound by the largest
container's limits, and a resource its file does not give (the defaults are Lambda's: 900 s,
1,024 MB, 512 MB of disk) is no limit at all (`local_resources`).
"""

from __future__ import annotations

from msgspec import Struct

from chalicelib.workflow.model import Placement, Resources, Task


class PlacementLimits(Struct, frozen=True):
    name: str
    max_timeout_s: float | None
    max_memory_mb: int
    max_disk_mb: int
    max_cpus: float


# AWS Lambda: 15 min, 10,240 MB memory, 10,240 MB ephemeral /tmp, 6 vCPUs at 10 GB.
FUNCTION = PlacementLimits("function", 900.0, 10_240, 10_240, 6.0)
# ECS Fargate: 16 vCPU / 120 GB, 200 GiB ephemeral storage, no time limit.
CONTAINER = PlacementLimits("container", None, 122_880, 204_800, 16.0)

BY_PLACEMENT = {"function": FUNCTION, "container": CONTAINER}

LOCAL_UNBOUNDED_S = 366 * 86400.0  # "no timeout" for an attempt's deadline arithmetic (finite)


def lambda_bound(task: Task, emulate_lambda: bool) -> bool:
    """Whether a local run holds `task` to Lambda's limits and defaults: when asked, or when
    the task's file names `placement: function` itself."""
    return emulate_lambda or (task.placement is Placement.FUNCTION and "placement" in task.declared())


def local_resources(task: Task, emulate_lambda: bool, machine_mb: int | None = None) -> Resources:
    """The limits a local attempt of `task` runs under: its resources as they are when it is
    Lambda-bound; else those its file gave, and the machine (memory, no timeout, the largest
    container's disk) for the rest."""
    res = task.resources
    if lambda_bound(task, emulate_lambda):
        return res
    given = task.declared()
    return Resources(
        memory_mb=res.memory_mb if "memory_mb" in given else max(res.memory_mb, machine_mb or CONTAINER.max_memory_mb),
        cpus=res.cpus,
        disk_mb=res.disk_mb if "disk_mb" in given else max(res.disk_mb, CONTAINER.max_disk_mb),
        timeout_s=res.timeout_s if "timeout_s" in given else max(res.timeout_s, LOCAL_UNBOUNDED_S),
    )


def machine_memory_mb() -> int | None:
    """This machine's memory in MB (None where it cannot be read)."""
    import os

    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1024 * 1024))
    except (ValueError, OSError, AttributeError):
        return None
