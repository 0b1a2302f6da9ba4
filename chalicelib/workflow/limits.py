"""Hard limits of each placement, used by validation and by the local function pool, and the
sizes a cloud stage actually deploys.

Read from the AWS documentation on 2026-11-01 (Lambda quotas; Fargate task sizes).
The local function pool enforces the same numbers so that what runs locally runs on Lambda.

A cloud stage deploys a few task functions of fixed memory sizes (`DeployedSizes`, from
UPDRAFT_FUNCTION_SIZES; docs/aws.md "Sizes"), and starts containers of any valid Fargate pair up
to a largest one: what a function-placed task may declare is what its largest deployed size
holds, not what Lambda could be configured to.
"""

from __future__ import annotations

from collections.abc import Sequence

from msgspec import Struct

from chalicelib.errors import ConfigError


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
