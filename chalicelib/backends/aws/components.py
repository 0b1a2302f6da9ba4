"""The cloud runtime's parts, wired from one AwsConfig and built on first use: the AWS
backend's composition root, and the run service's Runtime (chalicelib/service/runtime.py).

A Lambda function only builds what its handler touches: the task function never creates a
coordinator, the API never creates a launcher. `current()` is the per-process instance the
app's handlers share; tests build their own with an injected session and clients.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from functools import cached_property
from typing import Any

from msgspec import Struct, field
from msgspec.structs import replace

from chalicelib.backends.aws.clients import AwsClients
from chalicelib.backends.aws.config import AwsConfig
from chalicelib.backends.aws.dynamodb_state import DynamoStateStore
from chalicelib.backends.aws.launchers import ContainerLauncher, FunctionLauncher, WorkerScaler
from chalicelib.backends.aws.s3_blobs import S3BlobStore
from chalicelib.backends.aws.shell import CloudShell
from chalicelib.backends.aws.sqs_queues import QueueEventSink, SqsQueue
from chalicelib.backends.aws.wiring import TASK_EVENT_AGE_S
from chalicelib.engine.coordinator import Coordinator, CoordinatorConfig
from chalicelib.engine.events import Cancel, Resume, Start
from chalicelib.engine.records import RunRecord
from chalicelib.engine.spec import SpecCache
from chalicelib.service.runtime import Request, Resolved
from chalicelib.workflow.limits import PlacementLimits
from chalicelib.workflow.model import Workflow


class Cloud(Struct, dict=True):  # dict: the cached_property parts
    config: AwsConfig
    clients: AwsClients
    clock: Callable[[], float] = time.time
    coordinator_config: CoordinatorConfig = field(default_factory=CoordinatorConfig)

    @classmethod
    def from_env(cls, session: Any = None, overrides: dict[str, Any] | None = None, **config: Any) -> Cloud:
        cfg = AwsConfig.from_env(**config)
        clients = AwsClients(cfg, session=session, overrides=overrides)
        if cfg.needs_account() or "{region}" in cfg.bucket:
            account = str(clients.client("sts").get_caller_identity()["Account"])
            cfg = cfg.resolved(account, cfg.region or str(clients.session.region_name))
            clients = AwsClients(cfg, session=clients.session, overrides=overrides)
        return cls(cfg, clients)

    @cached_property
    def store(self) -> DynamoStateStore:
        return DynamoStateStore(self.config, self.clients)

    @cached_property
    def blobs(self) -> S3BlobStore:
        return S3BlobStore(self.config, self.clients)

    @cached_property
    def specs(self) -> SpecCache:
        return SpecCache.from_blobs(self.blobs)

    @cached_property
    def events_queue(self) -> SqsQueue:
        return SqsQueue(self.config.events_queue, self.clients)

    @cached_property
    def container_queue(self) -> SqsQueue:
        return SqsQueue(self.config.container_queue, self.clients)

    @cached_property
    def sink(self) -> QueueEventSink:
        return QueueEventSink(self.events_queue, self.clock)

    @cached_property
    def scaler(self) -> WorkerScaler:
        return WorkerScaler(self.config, self.clients, self.container_queue)

    @cached_property
    def coordinator(self) -> Coordinator:
        config = self.coordinator_config
        if not config.function_sizes:  # an out-of-memory retry steps through the deployed sizes
            config = replace(config, function_sizes=self.config.sizes.function_mb)
        if not config.function_queue_s:  # an invoke may wait in Lambda's queue this long (wiring.py)
            config = replace(config, function_queue_s=float(TASK_EVENT_AGE_S))
        return Coordinator(self.store, self.specs, config=config)

    @cached_property
    def shell(self) -> CloudShell:
        launchers = {
            "function": FunctionLauncher(self.config, self.clients, specs=self.specs),
            "container": ContainerLauncher(self.container_queue, self.scaler, self.config, self.clients, self.specs),
        }
        return CloudShell(self.store, self.blobs, self.specs, self.sink, launchers, self.clock)  # type: ignore[arg-type]

    # ---- the run service's Runtime ------------------------------------------------------------

    @property
    def tracks_owner(self) -> bool:
        return False  # a RUNNING run may be live: resume waits for it to end (or be cancelled)

    def function_limits(self) -> PlacementLimits:
        return self.config.sizes.function_limits()

    def read_request(self, body: Any, raw: bytes | None) -> Request:
        from chalicelib.backends.aws.submit import check_body_size, request, request_submission

        check_body_size(raw, self)
        return request(request_submission(body, raw), self)

    def resolve_inputs(self, workflow: Workflow, data: str | None, source: str | None) -> Resolved:
        from chalicelib.backends.aws.submit import resolve_inputs

        return Resolved(resolve_inputs(workflow, data, self, source or "<request>"))

    def stage_inputs(self, run_id: str, staged: Mapping[str, str]) -> None:
        """Nothing to copy: tasks read their inputs from S3."""

    def start(self, run_id: str) -> None:
        self.sink.send([Start(run_id)])

    def resume_tasks(self, run_id: str, token: str) -> None:
        self.sink.send([Resume(run_id, token)])  # the coordinator resets the tasks, then starts it

    def cancel(self, run_id: str) -> RunRecord | None:
        self.sink.send([Cancel(run_id)])
        return None  # the coordinator cancels it when the event arrives

    def owner(self, run_id: str) -> int | None:
        return None


_lock = threading.Lock()
_current: Cloud | None = None


def current() -> Cloud:
    """The process's Cloud, from the environment (built once per warm function)."""
    global _current
    if _current is None:
        with _lock:
            if _current is None:
                _current = Cloud.from_env()
    return _current


def install(cloud: Cloud | None) -> None:
    """Replace the process's Cloud (tests); None rebuilds it from the environment next time."""
    global _current
    with _lock:
        _current = cloud
