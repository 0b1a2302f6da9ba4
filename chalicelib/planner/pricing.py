"""Prices and limits the planner and the simulator use: one table, each figure dated.

Region us-east-1 (US East, N. Virginia), on-demand, no free tier, no Savings Plans.
Read on READ_ON from stored copies of the AWS pricing and quota pages (aws.amazon.com/lambda/pricing,
/fargate/pricing, /dynamodb/pricing/on-demand, /sqs/pricing, /s3/pricing; the Lambda developer
guide's quotas and Invoke pages; the ECS guide's task size table) and third-party summaries that
quote them. Prices change: update a figure together with its `read_on`, and run
tests/unit/test_pricing.py (it pins the worked examples AWS publishes).

The hard limits here agree with chalicelib/workflow/limits.py (validation and the local function
pool enforce those); a test keeps the two in step.
"""

from __future__ import annotations

import math

from msgspec import Struct, field

REGION = "us-east-1"
READ_ON = "2026-11-21"
GB = 1024.0  # MB per GB: AWS bills memory in GiB and calls it GB
ARCHS = ("x86_64", "arm64")


def _by_arch(arch: str, x86: float, arm: float) -> float:
    if arch == "x86_64":
        return x86
    if arch == "arm64":
        return arm
    raise ValueError(f"unknown architecture {arch!r}; known: {', '.join(ARCHS)}")


class LambdaPrices(Struct, frozen=True):
    """AWS Lambda on-demand functions (read 2026-11-21)."""

    per_gb_s_x86_64: float = 0.0000166667
    per_gb_s_arm64: float = 0.0000133334
    per_request: float = 0.20 / 1_000_000
    ephemeral_per_gb_s: float = 0.0000000309  # /tmp above the free 512 MB
    free_tmp_mb: int = 512
    billing_granularity_s: float = 0.001  # 1 ms
    init_billed: bool = True  # INIT (cold start) billed for every runtime since 2025-08-01
    # limits
    max_timeout_s: float = 900.0
    min_memory_mb: int = 128
    max_memory_mb: int = 10_240
    max_tmp_mb: int = 10_240
    async_payload_bytes: int = 1_048_576  # asynchronous Invoke payload: 1 MB (sync: 6 MB)
    mb_per_vcpu: float = 1769.0  # CPU share grows with memory: 1 vCPU at 1,769 MB ...
    max_vcpus: float = 6.0  # ... up to 6 vCPUs (at 10,240 MB; the model's share there is 5.8)
    default_concurrency: int = 1000  # account-level concurrent executions (a soft quota)
    read_on: str = READ_ON

    def vcpus(self, memory_mb: float) -> float:
        """The CPU share a function of `memory_mb` gets (proportional to memory)."""
        return min(self.max_vcpus, memory_mb / self.mb_per_vcpu)

    def invocation_cost(self, memory_mb: float, billed_s: float, arch: str = "x86_64", tmp_mb: float = 512) -> float:
        """One invocation: request + duration (GB-s) + /tmp above 512 MB; `billed_s` includes INIT."""
        billed = math.ceil(max(0.0, billed_s) / self.billing_granularity_s) * self.billing_granularity_s
        gb = memory_mb / GB
        extra_tmp_gb = max(0.0, tmp_mb - self.free_tmp_mb) / GB
        return self.per_request + billed * (gb * self.per_gb_s(arch) + extra_tmp_gb * self.ephemeral_per_gb_s)

    def per_gb_s(self, arch: str = "x86_64") -> float:
        return _by_arch(arch, self.per_gb_s_x86_64, self.per_gb_s_arm64)


# Fargate task sizes: vCPU -> valid memory sizes (MB). ECS task size table.
FARGATE_SIZES: dict[float, tuple[int, ...]] = {
    0.25: (512, 1024, 2048),
    0.5: tuple(range(1024, 4097, 1024)),
    1.0: tuple(range(2048, 8193, 1024)),
    2.0: tuple(range(4096, 16385, 1024)),
    4.0: tuple(range(8192, 30721, 1024)),
    8.0: tuple(range(16384, 61441, 4096)),
    16.0: tuple(range(32768, 122881, 8192)),
}


class FargatePrices(Struct, frozen=True):
    """AWS Fargate for ECS, Linux, on-demand (read 2026-11-21)."""

    per_vcpu_hour_x86_64: float = 0.04048
    per_vcpu_hour_arm64: float = 0.03238
    per_gb_hour_x86_64: float = 0.004445
    per_gb_hour_arm64: float = 0.00356
    ephemeral_per_gb_hour: float = 0.000111  # above the free 20 GB
    free_ephemeral_gb: float = 20.0
    max_ephemeral_gb: float = 200.0
    minimum_s: float = 60.0  # Linux tasks: per-second billing, 1-minute minimum
    typical_start_s: float = 40.0  # RunTask to RUNNING incl. image pull; 30-60 s is typical
    read_on: str = READ_ON

    def rate_per_s(self, vcpus: float, memory_mb: float, arch: str = "x86_64", disk_gb: float = 20.0) -> float:
        extra_gb = max(0.0, disk_gb - self.free_ephemeral_gb)
        per_vcpu = _by_arch(arch, self.per_vcpu_hour_x86_64, self.per_vcpu_hour_arm64)
        per_gb = _by_arch(arch, self.per_gb_hour_x86_64, self.per_gb_hour_arm64)
        hourly = (vcpus * per_vcpu + memory_mb / GB * per_gb
                  + extra_gb * self.ephemeral_per_gb_hour)
        return hourly / 3600.0

    def task_cost(self, vcpus: float, memory_mb: float, seconds: float, arch: str = "x86_64",
                  disk_gb: float = 20.0) -> float:
        """A Fargate task that lived `seconds` (billed from image pull to stop, at least a minute)."""
        billed = max(self.minimum_s, math.ceil(max(0.0, seconds)))
        return billed * self.rate_per_s(vcpus, memory_mb, arch, disk_gb)


def fargate_size(cpus: float, memory_mb: float) -> tuple[float, int]:
    """The smallest valid Fargate (vCPU, memory MB) with at least `cpus` and `memory_mb`.

    Raises ValueError when no Fargate size is that large (16 vCPU / 120 GB).
    """
    for vcpu, sizes in FARGATE_SIZES.items():
        if vcpu + 1e-9 < cpus:
            continue
        for mem in sizes:
            if mem >= memory_mb:
                return vcpu, mem
    raise ValueError(f"no Fargate size has {cpus} vCPU and {memory_mb:.0f} MB (largest: 16 vCPU, 120 GB)")


def fargate_pairs() -> list[tuple[float, int]]:
    """Every valid Fargate (vCPU, memory MB) pair."""
    return [(vcpu, mem) for vcpu, sizes in FARGATE_SIZES.items() for mem in sizes]


class DynamoDbPrices(Struct, frozen=True):
    """DynamoDB on-demand, Standard table class (read 2026-11-21; halved in November 2024)."""

    per_write_unit: float = 0.625 / 1_000_000  # one WRU: a write of up to 1 KB
    per_read_unit: float = 0.125 / 1_000_000  # one RRU: a strongly consistent read of up to 4 KB
    per_gb_month: float = 0.25
    read_on: str = READ_ON


class SqsPrices(Struct, frozen=True):
    """SQS (read 2026-11-21). Every 64 KB chunk of a request counts as one request."""

    per_request_standard: float = 0.40 / 1_000_000
    per_request_fifo: float = 0.50 / 1_000_000
    chunk_bytes: int = 65_536
    max_message_bytes: int = 262_144
    read_on: str = READ_ON


class S3Prices(Struct, frozen=True):
    """S3 Standard (read 2026-11-21). Transfer between S3 and Lambda/Fargate in one region is free."""

    per_put: float = 0.005 / 1000  # PUT, COPY, POST, LIST
    per_get: float = 0.0004 / 1000  # GET, SELECT
    per_gb_month: float = 0.023  # first 50 TB
    transfer_in_region_per_gb: float = 0.0
    transfer_out_internet_per_gb: float = 0.09  # first 10 TB / month
    read_on: str = READ_ON


class PriceTable(Struct, frozen=True):
    region: str = REGION
    read_on: str = READ_ON
    functions: LambdaPrices = field(default_factory=LambdaPrices)
    containers: FargatePrices = field(default_factory=FargatePrices)
    dynamodb: DynamoDbPrices = field(default_factory=DynamoDbPrices)
    sqs: SqsPrices = field(default_factory=SqsPrices)
    s3: S3Prices = field(default_factory=S3Prices)


PRICES = PriceTable()
