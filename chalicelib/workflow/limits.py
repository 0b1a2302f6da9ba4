"""Hard limits of each placement, used by validation and by the local function pool, and the
sizes a cloud stage actually deploys.

Read from the AWS documentation on 2026-11-01 (Lambda quotas; Fargate task sizes).

The cloud validates every `function` task against Lambda's limits. A local run does so only
when asked (`--emulate-lambda`, so that what runs locally runs on Lambda) or for a task whose
own file names `placement: function`; otherwise a local task is bound by the largest
container's limits, and a resource its file does not give (the defaults are Lambda's: 900 s,
1,024 MB, 512 MB of disk) is no limit at all (`local_resources`).

A cloud stage deploys a few task functions of fixed memory sizes (`DeployedSizes`, from
UPDRAFT_FUNCTION_SIZES; docs/aws.md "Sizes"), and starts containers of any valid Fargate pair up
to a largest one: what a function-placed task may declare is what its largest deployed size
holds, not what Lambda could be configured to.
"""

from __future__ import annotations

from collections.abc import Sequence

from msgspec import Struct

from chalicelib.errors import ConfigError
from chalicelib.workflow.model import Placement, Resources, Task


class PlacementLimits(Struct, frozen=True):
    name: str
    max_timeout_s: float | None
    max_memory_mb: int
    max_disk_mb: int
    max_cpus: float


# AWS Lambda: 15 min, 10,240 MB memory, 10,240 MB ephemeral /tmp, 6 vCPUs at 10 GB.
FUNCTION_MAX_TIMEOUT_S = 900.0
FUNCTION = PlacementLimits("function", FUNCTION_MAX_TIMEOUT_S, 10_240, 10_240, 6.0)
# ECS Fargate: 16 vCPU / 120 GB, 200 GiB ephemeral storage, no time limit.
CONTAINER = PlacementLimits("container", None, 122_880, 204_800, 16.0)
# The least memory a Lambda function can have (importers and replays round up to it).
FUNCTION_MIN_MEMORY_MB = 128

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

LAMBDA_MIN_MB = 128
LAMBDA_MB_PER_VCPU = 1769.0  # Lambda gives one vCPU per 1,769 MB (up to 6 at 10,240 MB)
DEFAULT_FUNCTION_SIZES = (512, 1769, 3008, 10_240)


class DeployedSizes(Struct, frozen=True):
    """The task function sizes a stage deploys (MB, ascending) and its largest container."""

    function_mb: tuple[int, ...] = DEFAULT_FUNCTION_SIZES
    container_cpus: float = CONTAINER.max_cpus
    container_memory_mb: int = CONTAINER.max_memory_mb

    @classmethod
    def parse(cls, text: str, setting: str = "UPDRAFT_FUNCTION_SIZES") -> tuple[int, ...]:
        """'512,1769,3008' -> (512, 1769, 3008); ConfigError naming `setting` when bad."""
        try:
            sizes = tuple(sorted({int(part) for part in text.replace(" ", "").split(",") if part}))
        except ValueError:
            raise ConfigError(f"{setting}={text!r} must be memory sizes in MB separated by commas, "
                              "e.g. 512,1769,3008,10240") from None
        return cls.checked(sizes, setting)

    @staticmethod
    def checked(sizes: Sequence[int], setting: str = "UPDRAFT_FUNCTION_SIZES") -> tuple[int, ...]:
        if not sizes:
            raise ConfigError(f"{setting} lists no function size; give at least one, e.g. 3008")
        bad = [s for s in sizes if not LAMBDA_MIN_MB <= s <= FUNCTION.max_memory_mb]
        if bad:
            raise ConfigError(f"{setting}: {', '.join(map(str, bad))} MB is not a Lambda memory size "
                              f"({LAMBDA_MIN_MB} to {FUNCTION.max_memory_mb} MB)")
        return tuple(sorted(set(sizes)))

    @property
    def largest_function_mb(self) -> int:
        return self.function_mb[-1]

    def function_size_for(self, memory_mb: float) -> int | None:
        """The smallest deployed size that holds `memory_mb`; None when none does."""
        return next((s for s in self.function_mb if s >= memory_mb), None)

    def next_function_size(self, current_mb: float) -> int | None:
        """The next deployed size above `current_mb` (an out-of-memory retry); None at the top."""
        return next((s for s in self.function_mb if s > current_mb), None)

    def function_limits(self) -> PlacementLimits:
        top = self.largest_function_mb
        return PlacementLimits("function", FUNCTION.max_timeout_s, top, FUNCTION.max_disk_mb,
                               min(FUNCTION.max_cpus, round(top / LAMBDA_MB_PER_VCPU, 2)))

    def container_limits(self) -> PlacementLimits:
        return PlacementLimits("container", None, self.container_memory_mb, CONTAINER.max_disk_mb,
                               self.container_cpus)

    def describe(self) -> str:
        return (f"function sizes {', '.join(f'{s:,}' for s in self.function_mb)} MB; containers up to "
                f"{self.container_cpus:g} vCPU / {self.container_memory_mb:,} MB")
