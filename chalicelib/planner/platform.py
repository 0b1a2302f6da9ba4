"""The modelled cloud: latencies, concurrency and worker policy the planner and simulator share.

Each latency follows the deployed settings (the coordinator's event source mapping, from
chalicelib/backends/aws/wiring.py as app.py deploys it) or a published measurement; the table
with the sources is in docs/planner.md ("Latencies and where they come from"). Function sizes
are the ones a stage deploys (UPDRAFT_FUNCTION_SIZES). Override them per experiment.
"""

from __future__ import annotations

from msgspec import Struct, field

from chalicelib.backends.aws.wiring import EVENTS_BATCH_SIZE, EVENTS_BATCH_WINDOW_S
from chalicelib.errors import ConfigError
from chalicelib.planner.pricing import PRICES, PriceTable
from chalicelib.workflow.limits import DEFAULT_FUNCTION_SIZES, DeployedSizes

MIB = 1_048_576


class Latencies(Struct, frozen=True):
    function_cold_s: float = 1.0  # new execution environment + INIT (billed since 2025-08-01)
    function_warm_s: float = 0.01  # a warm environment takes the invocation
    function_idle_ttl_s: float = 600.0  # how long an idle environment stays warm
    invoke_s: float = 0.05  # coordinator's async Invoke until the service queues it
    container_start_s: float = 40.0  # Fargate RunTask to RUNNING (image pull; billed)
    container_poll_s: float = 0.05  # an idle worker's SQS long poll picks the message up
    event_s: float = 0.05  # a completion event's trip to the coordinator (SQS)
    coordinator_s: float = 0.01  # one coordinator step (a batch of events)
    # The deployed event source mapping of the coordinator (app.py via backends/aws/wiring.py):
    # Lambda gathers up to `events_batch_size` events for at most `events_batch_window_s`.
    events_batch_size: int = EVENTS_BATCH_SIZE
    events_batch_window_s: float = float(EVENTS_BATCH_WINDOW_S)
    s3_mb_per_s: float = 80.0  # MiB/s between S3 and one function or container
    s3_request_s: float = 0.02  # per object staged in or out

    def transfer_s(self, bytes_moved: float, objects: int) -> float:
        return bytes_moved / (self.s3_mb_per_s * MIB) + objects * self.s3_request_s


class FixedWorkers(Struct, frozen=True):
    """Always-on container workers (a pre-started pool, like the paper's one t2.micro worker).

    Every container task runs on one of them whatever its declared size; they are billed from
    the start of the run to its end.
    """

    count: int = 1
    cpus: float = 0.25
    memory_mb: int = 512


class Platform(Struct, frozen=True):
    """Where the run happens. Without `fixed_workers`, container tasks get elastic Fargate
    workers sized to the task, started on demand (up to `max_workers` alive), reused while warm
    and stopped after `worker_keepalive_s` idle (or when the run ends)."""

    latencies: Latencies = field(default_factory=Latencies)
    function_concurrency: int = 1000
    max_workers: int = 100
    worker_keepalive_s: float = 60.0
    fixed_workers: FixedWorkers | None = None
    arch: str = "x86_64"
    prices: PriceTable = PRICES
    # the task function sizes the stage deploys (MB, ascending): plans choose among these only
    function_sizes: tuple[int, ...] = DEFAULT_FUNCTION_SIZES

    def __post_init__(self) -> None:
        DeployedSizes.checked(self.function_sizes, "function_sizes")
        if tuple(sorted(set(self.function_sizes))) != tuple(self.function_sizes):
            raise ConfigError(f"function_sizes must be ascending without repeats, got {self.function_sizes}")

    def function_size_for(self, memory_mb: float) -> int:
        """The smallest deployed size of at least `memory_mb`, else the largest."""
        return next((s for s in self.function_sizes if s >= memory_mb), self.function_sizes[-1])

    def describe(self) -> str:
        lat = self.latencies
        if self.fixed_workers is not None:
            fw = self.fixed_workers
            workers = f"{fw.count} always-on worker(s) of {fw.cpus:g} vCPU / {fw.memory_mb} MB"
        else:
            workers = (f"elastic Fargate workers (at most {self.max_workers}, start {lat.container_start_s:g} s, "
                       f"keep-alive {self.worker_keepalive_s:g} s)")
        return (f"functions: {', '.join(map(str, self.function_sizes))} MB, concurrency "
                f"{self.function_concurrency}, cold start {lat.function_cold_s:g} s; "
                f"containers: {workers}; S3 {lat.s3_mb_per_s:g} MiB/s; {self.arch}; "
                f"prices {self.prices.region} read {self.prices.read_on}")
