"""Settings of the AWS runtime: resource names, shard counts, worker timings, and limits.

Explicit arguments beat environment variables (all prefixed `UPDRAFT_`), which beat the
defaults below. Nothing else in `backends/aws` reads the environment.

Hard limits of the services, read from the AWS documentation on 2026-11-01:
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from msgspec import Struct
from msgspec.structs import fields, replace

from chalicelib.backends.aws.wiring import EVENTS_MAX_CONCURRENCY
from chalicelib.errors import ConfigError
from chalicelib.planner.pricing import FARGATE_SIZES
from chalicelib.workflow.limits import DEFAULT_FUNCTION_SIZES, DeployedSizes

# ---- service limits (AWS documentation, read 2026-11-01) ----------------------------------
SQS_MAX_DELAY_S = 900  # DelaySeconds of one message
SQS_MAX_BATCH = 10  # entries of one SendMessageBatch / DeleteMessageBatch
SQS_MAX_WAIT_S = 20  # long-poll wait of one ReceiveMessage
SQS_MAX_VISIBILITY_S = 43_200  # 12 h, from the time the message was received
DYNAMODB_MAX_BATCH_WRITE = 25  # items of one BatchWriteItem
DYNAMODB_MAX_BATCH_GET = 100  # keys of one BatchGetItem
S3_MAX_DELETE = 1000  # keys of one DeleteObjects
LAMBDA_MAX_ASYNC_PAYLOAD = 256 * 1024  # bytes of an InvocationType=Event payload

# ---- environment variables ---------------------------------------------------------------
ENV_PREFIX = "UPDRAFT_"
ENV = {
    "region": "UPDRAFT_REGION",
    "endpoint_url": "UPDRAFT_AWS_ENDPOINT_URL",
    "table": "UPDRAFT_TABLE",
    "bucket": "UPDRAFT_BUCKET",
    "blob_prefix": "UPDRAFT_BLOB_PREFIX",
    "events_queue": "UPDRAFT_EVENTS_QUEUE",
    "container_queue": "UPDRAFT_CONTAINER_QUEUE",
    "task_function": "UPDRAFT_TASK_FUNCTION",
    "ecs_cluster": "UPDRAFT_ECS_CLUSTER",
    "ecs_service": "UPDRAFT_ECS_SERVICE",
    "max_workers": "UPDRAFT_MAX_WORKERS",
    "task_shards": "UPDRAFT_TASK_SHARDS",
    "counter_shards": "UPDRAFT_COUNTER_SHARDS",
    "worker_idle_s": "UPDRAFT_WORKER_IDLE_S",
    "worker_lease_s": "UPDRAFT_WORKER_LEASE_S",
    "workroot": "UPDRAFT_WORKROOT",
    "cache_root": "UPDRAFT_CACHE_ROOT",
    "memoize": "UPDRAFT_MEMOIZE",
    "cache_budget_mb": "UPDRAFT_CACHE_BUDGET_MB",
    "memo_key_object": "UPDRAFT_MEMO_KEY_OBJECT",
    "multipart_threshold_mb": "UPDRAFT_MULTIPART_THRESHOLD_MB",
    "stuck_run_after_s": "UPDRAFT_STUCK_RUN_AFTER_S",
    "max_tasks": "UPDRAFT_MAX_TASKS",
    "api_max_tasks": "UPDRAFT_API_MAX_TASKS",
    "api_auth": "UPDRAFT_API_AUTH",
    "sweep_minutes": "UPDRAFT_SWEEP_MINUTES",
    "submit_queue": "UPDRAFT_SUBMIT_QUEUE",
    "partial_batch": "UPDRAFT_PARTIAL_BATCH",
    "function_sizes": "UPDRAFT_FUNCTION_SIZES",
    "task_function_mb": "UPDRAFT_TASK_FUNCTION_MB",
    "worker_cpu": "UPDRAFT_WORKER_CPU",
    "worker_memory_mb": "UPDRAFT_WORKER_MEMORY_MB",
    "container_max_cpu": "UPDRAFT_CONTAINER_MAX_CPU",
    "container_max_memory_mb": "UPDRAFT_CONTAINER_MAX_MEMORY_MB",
    "events_concurrency": "UPDRAFT_EVENTS_CONCURRENCY",
    "input_buckets": "UPDRAFT_INPUT_BUCKETS",
}


NAME_FIELDS = ("table", "bucket", "events_queue", "container_queue", "submit_queue", "task_function",
               "ecs_cluster", "ecs_service")


class AwsConfig(Struct, frozen=True):
    """Names of the app's resources and the knobs of its adapters.

    Queue settings take a name or a full queue URL (names are resolved once per process).
    """

    region: str | None = None  # None: the session's default region
    endpoint_url: str | None = None  # an emulator's URL (tests); None for AWS itself
    table: str = "updraft"
    bucket: str = "updraft-data"
    blob_prefix: str = ""  # prepended to every blob key, e.g. "updraft/"
    events_queue: str = "updraft-events"
    container_queue: str = "updraft-container-tasks"
    task_function: str = "updraft-dev-task"
    ecs_cluster: str = "updraft"
    ecs_service: str = "updraft-worker"
    max_workers: int = 10  # upper bound of the worker service's desired count
    task_shards: int = 32  # partitions a run's task items are spread over (dynamodb_state)
    counter_shards: int = 4  # partitions a run's state counters are spread over
    worker_idle_s: float = 300.0  # a worker exits after this long without a message
    worker_lease_s: float = 180.0  # a container task's lease; heartbeats renew it at 1/3
    workroot: str = "/tmp/updraft"  # sandboxes of the task function and the worker
    cache_root: str = ""  # the shared volume of the dependency cache (EFS mount); "" = workroot/cache only
    memoize: int = 1  # 1: reuse results of tasks whose inputs, command and tools are unchanged
    # the instance's own cache tier (/tmp, the worker's disk) is evicted to this many MB minus the
    # task's declared disk before each task; 0 = the size of that filesystem (cache/budget.py)
    cache_budget_mb: int = 0
    # the bucket's object holding the memo signing key, read once by a task runner (its role
    # alone may: the bucket policy); "" = UPDRAFT_MEMO_KEY, else a key file (cache/memo.py)
    memo_key_object: str = ""
    multipart_threshold_mb: int = 64  # files above this are uploaded in parts
    stuck_run_after_s: float = 900.0  # sweeper re-counts a run whose counters are this quiet
    max_tasks: int = 250_000  # largest workflow accepted
    api_max_tasks: int = 20_000  # largest POST /runs (29 s to answer); larger ones are uploaded under submit/
    api_auth: str = "iam"  # "iam" (SigV4-signed requests only) or "none" (behind your own auth)
    sweep_minutes: int = 2  # how often the sweeper runs
    submit_queue: str = ""  # uploads under submit/ notify this queue; "" = a direct S3 trigger
    # 1: the coordinator's event source mapping has ReportBatchItemFailures and failed events are
    # reported one by one; 0: any failure fails the whole batch (safe without that setting)
    partial_batch: int = 1
    # Task functions deployed, one per memory size (MB): the size `task_function_mb` is the
    # function named `task_function`, every other size N is `task_function`-N (app.py).
    function_sizes: str = ",".join(map(str, DEFAULT_FUNCTION_SIZES))
    task_function_mb: int = 3008
    # The worker service's task size (CPU units, MiB): container tasks that fit it go to the
    # queue; bigger ones get a task of their own (RunTask with a size override, launchers.py),
    # up to container_max_cpu / container_max_memory_mb.
    worker_cpu: int = 1024
    worker_memory_mb: int = 4096
    container_max_cpu: int = 16384
    container_max_memory_mb: int = 122_880
    # Coordinators the events trigger runs at once (its MaximumConcurrency, read by app.py at
    # deploy); the stage reserves at least this much concurrency for the coordinator.
    events_concurrency: int = EVENTS_MAX_CONCURRENCY
    # Buckets (or bucket/prefix) of workflow inputs outside the stage's bucket, comma-separated:
    # the policies (iam_policy.py; the stack's InputReadArns) let the API, submit and the task
    # runners read them. Not read at run time: a deploy setting.
    input_buckets: str = ""

    @property
    def sizes(self) -> DeployedSizes:
        return DeployedSizes(DeployedSizes.parse(self.function_sizes), self.container_max_cpu / 1024,
                             self.container_max_memory_mb)

    def function_for(self, memory_mb: int) -> str:
        """The name of the deployed task function of `memory_mb` (one of `sizes`)."""
        return self.task_function if memory_mb == self.task_function_mb else f"{self.task_function}-{memory_mb}"

    def needs_account(self) -> bool:
        return any("{account}" in str(getattr(self, f)) for f in NAME_FIELDS)

    def resolved(self, account: str, region: str) -> AwsConfig:
        """Names with their {account} and {region} placeholders filled in (a stack names its
        bucket <app>-<stage>-<account>-<region>, which a static config file cannot know)."""
        names: dict[str, Any] = {
            f: str(getattr(self, f)).replace("{account}", account).replace("{region}", region)
            for f in NAME_FIELDS
        }
        return replace(self, **names)

    @property
    def events_queue_name(self) -> str:
        return self.events_queue.rstrip("/").rsplit("/", 1)[-1]

    @property
    def submit_queue_name(self) -> str:
        return self.submit_queue.rstrip("/").rsplit("/", 1)[-1]

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> AwsConfig:
        """Defaults, then `UPDRAFT_*` variables from `env` (default os.environ), then overrides."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        types = {f.name: f.type for f in fields(cls)}
        for name, var in ENV.items():
            raw = env.get(var)
            if raw is None or raw == "":
                continue
            values[name] = _convert(name, var, raw, types[name])
        if "region" not in values:
            region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
            if region:
                values["region"] = region
        cfg = replace(cls(), **values)
        cfg = replace(cfg, **{k: v for k, v in overrides.items() if v is not None})
        cfg.check()
        return cfg

    def check(self) -> None:
        if self.task_shards < 1 or self.counter_shards < 1:
            raise ConfigError("UPDRAFT_TASK_SHARDS and UPDRAFT_COUNTER_SHARDS must be at least 1")
        if self.cache_budget_mb < 0:
            raise ConfigError("UPDRAFT_CACHE_BUDGET_MB must be 0 (the disk's size) or more")
        if self.max_workers < 0:
            raise ConfigError("UPDRAFT_MAX_WORKERS must be 0 or more")
        if self.api_auth not in ("iam", "none"):
            raise ConfigError(f"UPDRAFT_API_AUTH must be 'iam' or 'none', got {self.api_auth!r}")
        if not 2 <= self.events_concurrency <= 1000:
            raise ConfigError(f"UPDRAFT_EVENTS_CONCURRENCY={self.events_concurrency}: an SQS trigger's "
                              "MaximumConcurrency is 2 to 1000")
        if self.worker_lease_s < 3:
            raise ConfigError("UPDRAFT_WORKER_LEASE_S must be at least 3 seconds")
        sizes = DeployedSizes.parse(self.function_sizes)
        if self.task_function_mb not in sizes:
            raise ConfigError(f"UPDRAFT_TASK_FUNCTION_MB={self.task_function_mb} is not one of "
                              f"UPDRAFT_FUNCTION_SIZES ({self.function_sizes}): the function named "
                              f"{self.task_function!r} must be one of the deployed sizes")
        for cpu, mem, what in ((self.worker_cpu, self.worker_memory_mb, "UPDRAFT_WORKER_CPU/_MEMORY_MB"),
                               (self.container_max_cpu, self.container_max_memory_mb,
                                "UPDRAFT_CONTAINER_MAX_CPU/_MEMORY_MB")):
            if mem not in FARGATE_SIZES.get(cpu / 1024, ()):
                raise ConfigError(f"{what}: Fargate does not run {cpu} CPU units with {mem} MiB "
                                  "(docs/aws.md, Sizes)")


def _convert(name: str, var: str, raw: str, kind: object) -> Any:
    try:
        if kind is int:
            return int(raw)
        if kind is float:
            return float(raw)
    except ValueError:
        raise ConfigError(f"{var}={raw!r} is not a number; set it to one (setting {name!r})") from None
    return raw
