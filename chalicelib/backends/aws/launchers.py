"""Starting task attempts in the cloud.

Function placement: an asynchronous Invoke (InvocationType=Event) of the task function of the
smallest deployed memory size that holds the attempt's memory (its task's, or what an
out-of-memory retry escalated it to; AwsConfig.function_for names it), with the attempt's ids.
Lambda queues it and retries nothing (MaximumRetryAttempts=0 in the deployment); the
function's OnFailure destination is the events queue, so a crash, timeout or out-of-memory
kill still reaches the coordinator as a TaskFailed.

Container placement: a message on the container queue, then the worker service is scaled
to the queue's backlog (bounded by max_workers). The scaling is best effort: once the message
is queued the attempt is launched, so a failed UpdateService is logged and retried by the next
launch or the sweeper, never reported as a failed launch. Workers exit when idle and protect
themselves from scale-in while busy. An attempt bigger than the service's task size gets a
Fargate task of its own instead (RunTask with a CPU/memory override; ContainerLauncher).

Kill: a function cannot be stopped once invoked (Lambda has no such API); it runs to its end
and its completion is ignored, because the cancelled attempt is no longer the task's
current one. A queued container message is dropped by the worker that receives it, since
the worker claims the attempt before running it and a cancelled task cannot be claimed.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from chalicelib.backends.aws.clients import AwsClients
from chalicelib.backends.aws.config import AwsConfig
from chalicelib.backends.aws.messages import task_payload
from chalicelib.engine.events import Launch
from chalicelib.engine.ports import MessageQueue
from chalicelib.engine.spec import SpecCache
from chalicelib.errors import UpdraftError
from chalicelib.planner.pricing import fargate_size

log = logging.getLogger("updraft.launchers")


class LaunchError(UpdraftError):
    """Some attempts could not be started; each is listed with the service's error."""

    def __init__(self, failed: list[tuple[Launch, str]]) -> None:
        self.failed = failed
        lines = "; ".join(f"{launch.task_id}#{launch.attempt}: {why}" for launch, why in failed[:5])
        super().__init__(f"{len(failed)} attempt(s) could not be started: {lines}")


class FunctionLauncher:
    def __init__(self, config: AwsConfig, clients: AwsClients, parallelism: int = 16,
                 specs: SpecCache | None = None) -> None:
        self.config = config
        self.function = config.task_function
        self.sizes = config.sizes
        self.clients = clients
        self.parallelism = parallelism
        self.specs = specs  # None: every attempt goes to the function named task_function

    def function_for(self, launch: Launch) -> str:
        """The deployed task function whose memory holds the attempt (LaunchError text if none)."""
        if self.specs is None:
            return self.function
        memory = launch.resources.get("memory_mb")
        if memory is None:
            memory = self.specs.get(launch.run_id).tasks[launch.task_id].resources.memory_mb
        size = self.sizes.function_size_for(memory)
        if size is None:
            raise ValueError(f"no deployed task function holds {memory:g} MB (largest: "
                             f"{self.sizes.largest_function_mb} MB, UPDRAFT_FUNCTION_SIZES)")
        return self.config.function_for(size)

    def _invoke(self, launch: Launch) -> str | None:
        try:
            resp = self.clients.lambda_.invoke(
                FunctionName=self.function_for(launch), InvocationType="Event",
                Payload=json.dumps(task_payload(launch)).encode("utf-8"),
            )
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"
        status = int(resp.get("StatusCode", 202))
        return None if status == 202 else f"Invoke returned status {status}"

    def launch(self, requests: Sequence[Launch]) -> None:
        if not requests:
            return
        if len(requests) == 1:
            errors = [self._invoke(requests[0])]
        else:
            with ThreadPoolExecutor(max_workers=min(self.parallelism, len(requests))) as pool:
                errors = list(pool.map(self._invoke, requests))
        failed = [(launch, err) for launch, err in zip(requests, errors, strict=True) if err is not None]
        if failed:
            raise LaunchError(failed)

    def kill(self, run_id: str, task_id: str, attempt: int) -> None:
        """Functions cannot be stopped; the attempt's late completion is a harmless no-op."""


class WorkerScaler:
    """Keeps the worker service's desired count at the container queue's backlog."""

    def __init__(self, config: AwsConfig, clients: AwsClients, queue: MessageQueue) -> None:
        self.config = config
        self.clients = clients
        self.queue = queue
        self._desired: int | None = None
        self._seen_at = 0.0

    # Another coordinator instance may have changed the count since we last looked: trust our
    # remembered value only this long, so concurrent instances cannot leave it wrong for long.
    REFRESH_S = 30.0

    def current(self) -> int:
        resp = self.clients.ecs.describe_services(cluster=self.config.ecs_cluster, services=[self.config.ecs_service])
        services = resp.get("services", [])
        if not services:
            raise UpdraftError(f"ECS service {self.config.ecs_service!r} not found in cluster "
                               f"{self.config.ecs_cluster!r}; set UPDRAFT_ECS_CLUSTER / UPDRAFT_ECS_SERVICE")
        return int(services[0].get("desiredCount", 0))

    def forget(self) -> None:
        """Forget the remembered count (a scale call failed): the next scale reads it again."""
        self._desired = None

    def scale(self, refresh: bool = False) -> int:
        """Set desired = min(max_workers, backlog); returns it. Calls ECS only on a change."""
        want = min(self.config.max_workers, self.queue.backlog())
        now = time.monotonic()
        if refresh or self._desired is None or now - self._seen_at > self.REFRESH_S:
            self._desired = self.current()
            self._seen_at = now
        if want != self._desired:
            self.clients.ecs.update_service(cluster=self.config.ecs_cluster, service=self.config.ecs_service,
                                            desiredCount=want)
            self._desired = want
        return want


WORKER_CONTAINER = "worker"  # the container's name in the worker task definition (infra/stack.yaml)
ONE_TASK_ENV = "UPDRAFT_ONE_TASK"  # a worker started with this payload runs that attempt, then exits


class ContainerLauncher:
    """Container attempts that fit the worker service's size go to the container queue (warm
    workers take them); bigger ones (a declared size, or an out-of-memory retry) get a Fargate
    task of their own, of the smallest valid CPU/memory pair that holds them: RunTask of the
    worker's task definition with a task-size override (docs/aws.md, Sizes)."""

    def __init__(self, queue: MessageQueue, scaler: WorkerScaler | None, config: AwsConfig | None = None,
                 clients: AwsClients | None = None, specs: SpecCache | None = None) -> None:
        self.queue = queue
        self.scaler = scaler
        self.config = config
        self.clients = clients
        self.specs = specs
        self._service: dict[str, Any] | None = None

    def size_for(self, launch: Launch) -> tuple[float, int] | None:
        """The Fargate (vCPU, MiB) an attempt needs, or None when the worker service's size holds it."""
        if self.config is None or self.specs is None:
            return None
        res = self.specs.get(launch.run_id).tasks[launch.task_id].resources
        cpus = float(launch.resources.get("cpus", res.cpus))
        memory = float(launch.resources.get("memory_mb", res.memory_mb))
        if cpus <= self.config.worker_cpu / 1024 and memory <= self.config.worker_memory_mb:
            return None
        return fargate_size(max(cpus, 0.25), memory)

    def launch(self, requests: Sequence[Launch]) -> None:
        if not requests:
            return
        sized = [(r, self.size_for(r)) for r in requests]
        queued = [r for r, size in sized if size is None]
        if queued:
            self.queue.send([json.dumps(task_payload(r), separators=(",", ":")) for r in queued])
            if self.scaler is not None:
                self._scale()
        failed = [(r, why) for r, size in sized if size is not None
                  for why in [self._run_task(r, size)] if why is not None]
        if failed:
            raise LaunchError(failed)

    def _scale(self) -> None:
        """Scale the worker service to the backlog, best effort: the attempts are queued
        already, so a failed DescribeServices/UpdateService fails none of them. The next launch
        or the sweeper's rescale (every sweep) sets the count again."""
        assert self.scaler is not None
        try:
            self.scaler.scale()
        except Exception as exc:
            self.scaler.forget()
            log.warning("could not scale the worker service; the sweeper retries: %s: %s",
                        type(exc).__name__, exc)

    def _service_task(self) -> dict[str, Any]:
        """The worker service's task definition and network (looked up once)."""
        if self._service is None:
            assert self.config is not None and self.clients is not None
            ecs = self.clients.ecs
            services = ecs.describe_services(cluster=self.config.ecs_cluster,
                                             services=[self.config.ecs_service]).get("services", [])
            if not services:
                raise UpdraftError(f"ECS service {self.config.ecs_service!r} not found in cluster "
                                   f"{self.config.ecs_cluster!r}; set UPDRAFT_ECS_CLUSTER / UPDRAFT_ECS_SERVICE")
            service = services[0]
            self._service = {"taskDefinition": service["taskDefinition"], "container": WORKER_CONTAINER,
                             "networkConfiguration": service.get("networkConfiguration") or {}}
        return self._service

    def _run_task(self, launch: Launch, size: tuple[float, int]) -> str | None:
        assert self.config is not None and self.clients is not None
        vcpus, memory = size
        cpu_units = int(vcpus * 1024)
        if cpu_units > self.config.container_max_cpu or memory > self.config.container_max_memory_mb:
            return (f"no container this stage starts has {vcpus:g} vCPU / {memory} MB (largest: "
                    f"{self.config.container_max_cpu / 1024:g} vCPU / {self.config.container_max_memory_mb} MB)")
        try:
            service = self._service_task()
            env = [{"name": ONE_TASK_ENV, "value": json.dumps(task_payload(launch), separators=(",", ":"))},
                   {"name": "UPDRAFT_WORKER_CPU", "value": str(cpu_units)},
                   {"name": "UPDRAFT_WORKER_MEMORY_MB", "value": str(memory)}]
            kwargs: dict[str, Any] = {}
            if service["networkConfiguration"]:
                kwargs["networkConfiguration"] = service["networkConfiguration"]
            resp = self.clients.ecs.run_task(
                cluster=self.config.ecs_cluster, taskDefinition=service["taskDefinition"], count=1,
                launchType="FARGATE", startedBy="updraft", **kwargs,
                overrides={"cpu": str(cpu_units), "memory": str(memory),
                           "containerOverrides": [{"name": service["container"], "environment": env}]})
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"
        failures = resp.get("failures") or []
        if failures or not resp.get("tasks"):
            why = "; ".join(f"{f.get('reason')} {f.get('detail') or ''}".strip() for f in failures)
            return f"RunTask started nothing: {why or 'no task returned'}"
        return None

    def kill(self, run_id: str, task_id: str, attempt: int) -> None:
        """Nothing to do: the worker that receives the message cannot claim a cancelled task."""
