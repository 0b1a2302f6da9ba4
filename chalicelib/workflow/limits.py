"""Hard limits of each placement, used by validation and by the local function pool.

Read from the AWS documentation on 2026-11-01 (Lambda quotas; Fargate task sizes).
The local function pool enforces the same numbers so that what runs locally runs on Lambda.
"""

from __future__ import annotations

from msgspec import Struct


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
