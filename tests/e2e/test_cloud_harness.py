"""An emulated cloud for end-to-end runs: everything between the handlers is production code.

- moto runs as a local server (DynamoDB, S3, SQS, ECS), behind a WSGI layer that counts
  every request by service and operation (the cost figures in docs/benchmarks.md);
- the app's real handlers are called in-process: routes through chalice.test.Client, the
  coordinator with SQS batches built from real messages of the events queue (then deleted,
  as Lambda's event source mapping does), the task function with the payloads of the async
  Invokes the coordinator made (a stand-in Lambda client records them);
- the task function's destinations are emulated: its return value (or its error) goes to
  the events queue wrapped in a destination record, as Lambda would send it;
- the real worker loop (workers/worker.py) runs as a separate process against the same
  server, for container-placed tasks;
- duplicate and out-of-order delivery can be switched on: records are redelivered,
  shuffled and held back; async invocations are delivered twice.

moto cannot run a Lambda handler or a container, hence this harness (DESIGN.md, Testing).
"""

from __future__ import annotations

import importlib
import io
import json
import logging
import math
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from chalicelib.backends.aws.components import Cloud, install
from chalicelib.backends.aws.provision import Provisioned, provision
from chalicelib.engine.states import TERMINAL_RUN, RunState
from tests.contract.awskit import FAKE_ENV, fake_credentials

REPO = Path(__file__).resolve().parents[2]


# Every AWS operation the handlers make, and the IAM action that allows it (S3's HEAD and
# ListObjectsV2 are authorised by GetObject and ListBucket).
IAM_ACTIONS: dict[tuple[str, str], str] = {
    ("dynamodb", op): f"dynamodb:{op}"
    for op in ("GetItem", "BatchGetItem", "Query", "PutItem", "UpdateItem", "BatchWriteItem")
} | {
    ("dynamodb", "TransactWriteItems"): "dynamodb:PutItem",
    ("s3", "GetObject"): "s3:GetObject", ("s3", "HeadObject"): "s3:GetObject",
    ("s3", "PutObject"): "s3:PutObject", ("s3", "UploadPart"): "s3:PutObject",
    ("s3", "CreateMultipartUpload"): "s3:PutObject", ("s3", "CompleteMultipartUpload"): "s3:PutObject",
    ("s3", "ListObjectsV2"): "s3:ListBucket", ("s3", "DeleteObjects"): "s3:DeleteObject",
    ("sqs", "SendMessage"): "sqs:SendMessage", ("sqs", "SendMessageBatch"): "sqs:SendMessage",
    ("sqs", "ReceiveMessage"): "sqs:ReceiveMessage", ("sqs", "ReceiveMessage(empty)"): "sqs:ReceiveMessage",
    ("sqs", "DeleteMessage"): "sqs:DeleteMessage",
    ("sqs", "DeleteMessageBatch"): "sqs:DeleteMessage", ("sqs", "GetQueueUrl"): "sqs:GetQueueUrl",
    ("sqs", "GetQueueAttributes"): "sqs:GetQueueAttributes",
    ("sqs", "ChangeMessageVisibility"): "sqs:ChangeMessageVisibility",
    ("lambda", "Invoke"): "lambda:InvokeFunction",
    ("ecs", "DescribeServices"): "ecs:DescribeServices", ("ecs", "UpdateService"): "ecs:UpdateService",
    ("ecs", "RunTask"): "ecs:RunTask",
}


# ---- a counting moto server ------------------------------------------------------------------

def classify(environ: dict[str, Any]) -> tuple[str, str]:
    """(service, operation) of one AWS request as it reaches the server."""
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    if target:
        prefix, _, op = target.partition(".")
        service = ("dynamodb" if prefix.startswith("DynamoDB") else "sqs" if prefix.startswith("AmazonSQS")
                   else "ecs" if "ContainerService" in prefix else prefix.lower())
        return service, op
    auth = environ.get("HTTP_AUTHORIZATION", "")
    scope = auth.split("Credential=", 1)[1].split(",", 1)[0].split("/") if "Credential=" in auth else []
    service = scope[3] if len(scope) > 3 else "unknown"
    if service != "s3":
        return service, environ.get("REQUEST_METHOD", "?")
    method, query = environ.get("REQUEST_METHOD", "GET"), parse_qs(environ.get("QUERY_STRING", ""), True)
    key = environ.get("PATH_INFO", "/").lstrip("/").partition("/")[2]
    if method == "GET":
        return service, "ListObjectsV2" if not key or "list-type" in query else "GetObject"
    if method == "HEAD":
        return service, "HeadObject" if key else "HeadBucket"
    if method == "PUT":
        return service, "UploadPart" if "partNumber" in query else "PutObject" if key else "CreateBucket"
    if method == "POST":
        return service, ("DeleteObjects" if "delete" in query else "CreateMultipartUpload" if "uploads" in query
                         else "CompleteMultipartUpload")
    return service, "DeleteObject"


class CountingServer:
    """moto's server app in a thread, counting requests (and DynamoDB's capacity units) by
    service, operation and caller. DynamoDB requests are applied one at a time: moto does
    not make concurrent updates of one item atomic; DynamoDB does."""

    def __init__(self) -> None:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
        from werkzeug.serving import make_server

        self.counts: Counter[tuple[str, str]] = Counter()
        self.by_caller: Counter[tuple[str, str, str]] = Counter()
        self.units: Counter[str] = Counter()  # "WRU" / "RRU" estimated from the items moved
        # the IAM actions each role's requests needed: the worker's by its user agent, the
        # in-process handlers' by `role`, which the harness sets around each handler it calls
        # (None: the harness's own calls, not recorded)
        self.role: str | None = None
        self.by_role: dict[str, set[str]] = {}
        self._lock = threading.Lock()
        self._ddb = threading.Lock()
        self._app = DomainDispatcherApplication(create_backend_app)
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._server = make_server("127.0.0.1", 0, self._wsgi, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def _wsgi(self, environ: dict[str, Any], start_response: Any) -> Any:
        service, op = classify(environ)
        worker = "app/updraft-worker" in environ.get("HTTP_USER_AGENT", "")
        caller = "worker" if worker else "functions"
        role = "worker" if worker else self.role
        with self._lock:
            self.counts[(service, op)] += 1
            self.by_caller[(caller, service, op)] += 1
        if role is not None:
            actions = self._actions(environ, service, op)
            with self._lock:
                self.by_role.setdefault(role, set()).update(actions)
        if service == "sqs" and op == "ReceiveMessage":
            out = list(self._app(environ, start_response))
            if b'"Messages"' not in b"".join(out):  # an empty poll: a fixed cost, not a per-task one
                with self._lock:
                    self.counts[(service, op)] -= 1
                    self.by_caller[(caller, service, op)] -= 1
                    self.counts[(service, "ReceiveMessage(empty)")] += 1
                    self.by_caller[(caller, service, "ReceiveMessage(empty)")] += 1
            return out
        if service != "dynamodb":
            return self._app(environ, start_response)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        with self._ddb:
            out = list(self._app(environ, start_response))
        wru, rru = ddb_units(op, body, b"".join(out))
        with self._lock:
            self.units["WRU"] += wru
            self.units["RRU"] += rru
        return out

    @staticmethod
    def _actions(environ: dict[str, Any], service: str, op: str) -> set[str]:
        """The IAM actions one request needs (a transaction: each of its items' own action)."""
        if (service, op) != ("dynamodb", "TransactWriteItems"):
            return {IAM_ACTIONS.get((service, op), f"{service}:{op}")}
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        kinds = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem",
                 "ConditionCheck": "ConditionCheckItem"}
        items = json.loads(body or b"{}").get("TransactItems", [])
        return {f"dynamodb:{kinds[k]}" for item in items for k in item if k in kinds}

    @contextmanager
    def acting_as(self, role: str) -> Iterator[None]:
        """Record the requests made meanwhile (the worker's aside) as `role`'s."""
        before, self.role = self.role, role
        try:
            yield
        finally:
            self.role = before

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join(timeout=5)

    def snapshot(self) -> Counter[tuple[str, str]]:
        with self._lock:
            return Counter(self.counts)


def item_size(item: dict[str, Any]) -> int:
    """DynamoDB's size of an item (attribute names + values), per its documentation."""
    return sum(len(name.encode()) + _value_size(value) for name, value in item.items())


def _value_size(value: dict[str, Any]) -> int:
    (kind, raw), = value.items()
    if kind == "S":
        return len(raw.encode())
    if kind == "N":
        digits = raw.lstrip("-").replace(".", "").lstrip("0") or "0"
        return (len(digits) + 1) // 2 + 1
    if kind == "B":
        return len(raw) * 3 // 4
    if kind in ("SS", "NS", "BS"):
        return sum(_value_size({kind[0]: v}) for v in raw)
    if kind in ("L", "M"):
        inner = raw if kind == "L" else list(raw.values())
        return 3 + sum(1 + _value_size(v) for v in inner)
    return 1


def ddb_units(op: str, request: bytes, response: bytes) -> tuple[float, float]:
    """(write units, read units) one request consumed, from the items it moved."""
    try:
        req = json.loads(request or b"{}")
        resp = json.loads(response or b"{}")
    except ValueError:
        return 0.0, 0.0
    factor = 1.0 if req.get("ConsistentRead") else 0.5
    if op in ("UpdateItem", "PutItem", "DeleteItem"):
        touched = resp.get("Attributes") or resp.get("Item") or {}
        sent = item_size(req.get("ExpressionAttributeValues", {})) + item_size(req.get("Key") or req.get("Item") or {})
        return float(max(1, math.ceil(max(item_size(touched), sent) / 1024))), 0.0
    if op == "BatchWriteItem":
        items = [r.get("PutRequest", {}).get("Item") or r.get("DeleteRequest", {}).get("Key") or {}
                 for reqs in req.get("RequestItems", {}).values() for r in reqs]
        return float(sum(max(1, math.ceil(item_size(i) / 1024)) for i in items)), 0.0
    if op == "TransactWriteItems":
        return 2.0 * len(req.get("TransactItems", [])), 0.0
    if op == "GetItem":
        return 0.0, factor * max(1, math.ceil(item_size(resp.get("Item") or {}) / 4096))
    if op == "BatchGetItem":
        consistent = any(v.get("ConsistentRead") for v in req.get("RequestItems", {}).values())
        items = [i for rows in resp.get("Responses", {}).values() for i in rows]
        return 0.0, (1.0 if consistent else 0.5) * sum(max(1, math.ceil(item_size(i) / 4096)) for i in items)
    if op in ("Query", "Scan"):
        total = sum(item_size(i) for i in resp.get("Items", []))
        return 0.0, factor * max(1, math.ceil(total / 4096))
    return 0.0, 0.0


class RecordingLambda:
    """Stands in for the Lambda client: records async Invokes for the harness to deliver, and
    which function (memory size) each attempt was invoked on."""

    def __init__(self) -> None:
        self.pending: deque[dict[str, Any]] = deque()
        self.invokes = 0
        self.functions: dict[tuple[str, str, int], str] = {}  # (run, task, attempt) -> FunctionName
        self._lock = threading.Lock()

    def invoke(self, FunctionName: str, InvocationType: str, Payload: bytes) -> dict[str, Any]:
        assert InvocationType == "Event", "the coordinator only invokes asynchronously"
        payload = json.loads(Payload)
        with self._lock:
            self.invokes += 1
            self.pending.append(payload)
            self.functions[(payload["run_id"], payload["task_id"], int(payload["attempt"]))] = FunctionName
        return {"StatusCode": 202}


def _moto_fargate_run_task_gap() -> None:
    """moto 5 sums container-level memory to place any task, Fargate too, and fails on a
    container definition without one (the stack's has none: the task-level size is the limit,
    which RunTask overrides). Missing values count as 0 here (emulator only)."""
    from moto.ecs.models import EC2ContainerServiceBackend

    original = EC2ContainerServiceBackend._calculate_task_resource_requirements
    if getattr(original, "updraft_shim", False):
        return

    def requirements(task_definition: Any) -> dict[str, Any]:
        saved = [dict(c) for c in task_definition.container_definitions]
        for c in task_definition.container_definitions:
            for key in ("cpu", "memory"):
                if c.get(key) is None:
                    c[key] = 0
        try:
            return original(task_definition)
        finally:
            task_definition.container_definitions[:] = saved

    requirements.updraft_shim = True  # type: ignore[attr-defined]
    EC2ContainerServiceBackend._calculate_task_resource_requirements = staticmethod(requirements)  # type: ignore[method-assign,assignment]


class Context:
    """A Lambda context with the task function's full 15 minutes."""

    def __init__(self, name: str, seconds: float = 900.0, memory_mb: int = 3008) -> None:
        self.function_name = name
        self.aws_request_id = str(uuid.uuid4())
        self.memory_limit_in_mb = memory_mb
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{name}"
        self._deadline = time.monotonic() + seconds

    def get_remaining_time_in_millis(self) -> int:
        return int((self._deadline - time.monotonic()) * 1000)


@dataclass
class Delivery:
    """How unfaithful delivery is: the rate of duplicates and whether order is kept."""

    duplicate_rate: float = 0.0
    shuffle: bool = False
    hold_back_rate: float = 0.0
    seed: int = 1
    invocations_per_round: int = 1  # async invocations run before each coordinator batch
    # a record the coordinator reported as failed comes back after this long (None: the
    # visibility timeout the harness received it with, 30 s)
    failed_visibility_s: int | None = None


@dataclass
class Tally:
    coordinator_invocations: int = 0
    task_invocations: int = 0
    duplicate_records: int = 0
    duplicate_invocations: int = 0
    destination_records: int = 0
    failed_records: int = 0  # records the coordinator reported as failed (redelivered)
    batches: list[int] = field(default_factory=list)


class EmulatedCloud:
    def __init__(self, workdir: Path, delivery: Delivery | None = None, workers: int = 1, **config: Any) -> None:
        self.workdir = workdir
        self.delivery = delivery or Delivery()
        self.rng = random.Random(self.delivery.seed)
        self.server = CountingServer()
        self.fake_lambda = RecordingLambda()
        self.n_workers = workers
        self.config = {"region": "us-east-1", "table": "updraft-e2e", "bucket": "updraft-e2e",
                       "events_queue": "updraft-e2e-events", "container_queue": "updraft-e2e-containers",
                       "task_function": "updraft-e2e-task", "ecs_cluster": "updraft-e2e",
                       "ecs_service": "updraft-e2e-worker", "task_shards": 8, "counter_shards": 4,
                       "workroot": str(workdir / "sandbox"), "worker_lease_s": 30.0,
                       "cache_root": str(workdir / "efs"),  # the shared volume (EFS) of functions and workers
                       "worker_cpu": 1024, "worker_memory_mb": 4096,  # the worker service's task size
                       **config}
        self.tally = Tally()
        self._held: list[dict[str, Any]] = []
        self._echo: list[dict[str, Any]] = []
        self.workers: list[subprocess.Popen[bytes]] = []
        self.task_workers: list[subprocess.Popen[bytes]] = []  # one per RunTask of a bigger size
        self.run_tasks: dict[str, dict[str, Any]] = {}  # task ARN -> its size override and payload
        self.replace_dead_workers = False  # as the ECS service does; else a dead worker fails the run
        self.replaced_workers = 0
        self._retired: set[int] = set()
        self.cloud: Cloud
        self.made: Provisioned

    # ---- life cycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self.server.start()
        # moto's backends are process-wide: without a reset, a previous harness's resources
        # (the ECS service's desired count, queues, items) leak into this one
        from moto.moto_api._internal.models import moto_api_backend

        moto_api_backend.reset()
        _moto_fargate_run_task_gap()
        self.cloud = Cloud.from_env(env={}, endpoint_url=self.server.url,
                                    overrides={"lambda": self.fake_lambda}, **self.config)
        self.made = provision(self.cloud.config, self.cloud.clients)
        install(self.cloud)
        from chalice.test import Client

        import app as app_module  # the real Chalice app, wired to this cloud

        sizes = self.cloud.config.function_sizes
        if app_module.settings.function_sizes != sizes:
            # app.py declares one task function per deployed size at import, from the stage's
            # settings (as a deploy does): import it again with this cloud's sizes
            before = os.environ.get("UPDRAFT_FUNCTION_SIZES")
            os.environ["UPDRAFT_FUNCTION_SIZES"] = sizes
            try:
                app_module = importlib.reload(app_module)
                self._reloaded_app = True
            finally:
                if before is None:
                    os.environ.pop("UPDRAFT_FUNCTION_SIZES", None)
                else:
                    os.environ["UPDRAFT_FUNCTION_SIZES"] = before
        self.app = app_module.app
        self.client = Client(self.app)
        for _ in range(self.n_workers):
            self.start_worker()

    def worker_env(self) -> dict[str, str]:
        env = {**os.environ, **FAKE_ENV, "PYTHONPATH": str(REPO), "UPDRAFT_AWS_ENDPOINT_URL": self.server.url,
               "AWS_SDK_UA_APP_ID": "updraft-worker"}
        names = {"table": "UPDRAFT_TABLE", "bucket": "UPDRAFT_BUCKET", "events_queue": "UPDRAFT_EVENTS_QUEUE",
                 "container_queue": "UPDRAFT_CONTAINER_QUEUE", "ecs_cluster": "UPDRAFT_ECS_CLUSTER",
                 "ecs_service": "UPDRAFT_ECS_SERVICE", "task_shards": "UPDRAFT_TASK_SHARDS",
                 "counter_shards": "UPDRAFT_COUNTER_SHARDS", "worker_lease_s": "UPDRAFT_WORKER_LEASE_S",
                 "cache_root": "UPDRAFT_CACHE_ROOT", "worker_cpu": "UPDRAFT_WORKER_CPU",
                 "worker_memory_mb": "UPDRAFT_WORKER_MEMORY_MB", "memo_key_object": "UPDRAFT_MEMO_KEY_OBJECT"}
        env.update({var: str(self.config[k]) for k, var in names.items() if k in self.config})
        env["UPDRAFT_WORKROOT"] = str(self.workdir / "worker-sandbox")
        return env

    def start_worker(self) -> subprocess.Popen[bytes]:
        log = open(self.workdir / f"worker-{len(self.workers)}.log", "wb")  # noqa: SIM115 - closed by the OS
        proc = subprocess.Popen([sys.executable, "-m", "workers.worker", "--idle-s", "600", "--poll-wait-s", "1"],
                                cwd=REPO, env=self.worker_env(), stdout=log, stderr=subprocess.STDOUT)
        self.workers.append(proc)
        return proc

    def stop(self) -> None:
        if getattr(self, "_reloaded_app", False):  # back to the app of the process's own settings
            import app as app_module

            importlib.reload(app_module)
        for proc in self.workers + self.task_workers:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.workers + self.task_workers:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        install(None)
        self.server.stop()

    def worker_log(self) -> str:
        logs = [self.workdir / f"worker-{i}.log" for i in range(len(self.workers))]
        logs += [self.workdir / f"task-worker-{i + 1}.log" for i in range(len(self.task_workers))]
        return "\n".join(p.read_text(errors="replace") for p in logs)

    # ---- driving ------------------------------------------------------------------------------

    def post(self, path: str, body: Any) -> Any:
        with self.server.acting_as("api_handler"):
            return self.client.http.post(path, body=json.dumps(body), headers={"content-type": "application/json"})

    def get(self, path: str) -> Any:
        with self.server.acting_as("api_handler"):
            return self.client.http.get(path)

    def deliver_invocation(self) -> bool:
        if not self.fake_lambda.pending:
            return False
        pending = self.fake_lambda.pending
        payload = pending.popleft() if not self.delivery.shuffle else _pop_random(pending, self.rng)
        if self._duplicate(self.tally.duplicate_invocations):
            pending.append(dict(payload))  # Lambda delivers this async event twice
            self.tally.duplicate_invocations += 1
        self.tally.task_invocations += 1
        handler, memory = self.task_handler(payload)
        with self.server.acting_as("task"):  # its destination record is sent with its role too
            try:
                result = self.app.handler_map[handler](payload, Context(handler, memory_mb=memory))
                record = destination_record(payload, "Success", result)
            except Exception as exc:  # a crash: Lambda's OnFailure destination reports it
                record = destination_record(payload, "RetriesExhausted",
                                            {"errorType": type(exc).__name__, "errorMessage": str(exc)})
            self.cloud.clients.sqs.send_message(QueueUrl=self.made.events_queue_url, MessageBody=json.dumps(record))
        self.tally.destination_records += 1
        return True

    def task_handler(self, payload: dict[str, Any]) -> tuple[str, int]:
        """The app's handler (task, task-<mb>) of the function the attempt was invoked on, and
        that function's memory size."""
        cfg = self.cloud.config
        key = (payload["run_id"], payload["task_id"], int(payload["attempt"]))
        name = self.fake_lambda.functions.get(key, cfg.task_function)
        suffix = name[len(cfg.task_function):]
        return "task" + suffix, int(suffix[1:]) if suffix else cfg.task_function_mb

    def start_task_workers(self) -> int:
        """A worker process for each Fargate task the coordinator started of its own size
        (RunTask with UPDRAFT_ONE_TASK), with the environment its overrides give it."""
        # read from moto's backend, not through the server: the harness's own calls are not
        # the handlers' (the montage test checks every operation they make against IAM)
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.ecs.models import ecs_backends

        backend = ecs_backends[DEFAULT_ACCOUNT_ID][str(self.config["region"])]
        started = {arn: task for arn, task in backend.tasks.get(self.cloud.config.ecs_cluster, {}).items()
                   if task.started_by == "updraft" and arn not in self.run_tasks}
        for arn, task in started.items():
            overrides = task.overrides or {}
            (container,) = overrides["containerOverrides"]
            env = {e["name"]: e["value"] for e in container.get("environment", [])}
            self.run_tasks[arn] = {"cpu": overrides.get("cpu"), "memory": overrides.get("memory"),
                                   "payload": json.loads(env["UPDRAFT_ONE_TASK"])}
            log = open(self.workdir / f"task-worker-{len(self.run_tasks)}.log", "wb")  # noqa: SIM115
            self.task_workers.append(subprocess.Popen(
                [sys.executable, "-m", "workers.worker"], cwd=REPO, env={**self.worker_env(), **env},
                stdout=log, stderr=subprocess.STDOUT))
        return len(started)

    def deliver_batch(self) -> bool:
        # Lambda's event source mapping receives and deletes with the coordinator's role
        with self.server.acting_as("coordinator"):
            return self._deliver_batch()

    def _deliver_batch(self) -> bool:
        sqs = self.cloud.clients.sqs
        resp = sqs.receive_message(QueueUrl=self.made.events_queue_url, MaxNumberOfMessages=10, VisibilityTimeout=30,
                                   WaitTimeSeconds=0, MessageSystemAttributeNames=["ApproximateReceiveCount"])
        fresh = [sqs_record(m) for m in resp.get("Messages", [])]
        records, self._echo = fresh + self._echo, []
        records += self._held
        self._held = []
        if self.delivery.shuffle:
            self.rng.shuffle(records)
        if self.delivery.hold_back_rate and len(records) > 1:
            keep = [r for r in records if self.rng.random() >= self.delivery.hold_back_rate] or records[:1]
            self._held = [r for r in records if r not in keep]
            records = keep
        if not records:
            return bool(self._held)
        self.tally.coordinator_invocations += 1
        self.tally.batches.append(len(records))
        out = self._invoke_coordinator(records)
        failed = {f["itemIdentifier"] for f in out["batchItemFailures"]}
        done = [r for r in records if r["messageId"] not in failed]
        self.tally.failed_records += len(records) - len(done)
        if self.delivery.failed_visibility_s is not None:
            for r in records:
                if r["messageId"] in failed and not r.get("_echoed"):
                    sqs.change_message_visibility(QueueUrl=self.made.events_queue_url, ReceiptHandle=r["receiptHandle"],
                                                  VisibilityTimeout=self.delivery.failed_visibility_s)
        to_delete = [r for r in done if not r.get("_echoed")]
        for start in range(0, len(to_delete), 10):
            chunk = to_delete[start:start + 10]
            sqs.delete_message_batch(QueueUrl=self.made.events_queue_url, Entries=[
                {"Id": str(i), "ReceiptHandle": r["receiptHandle"]} for i, r in enumerate(chunk)])
        for r in done:  # redeliver some processed records, as SQS may
            if not r.get("_echoed") and self._duplicate(self.tally.duplicate_records):
                self._echo.append({**r, "_echoed": True})
                self.tally.duplicate_records += 1
        return True

    def _invoke_coordinator(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        """The coordinator function on one SQS batch (in-process here; the artifact test serves it
        from the deploy artifact instead)."""
        return dict(self.client.lambda_.invoke("coordinator", {"Records": records}).payload)

    def _duplicate(self, so_far: int) -> bool:
        """Randomly at the configured rate, and surely once early on when the rate is not 0."""
        rate = self.delivery.duplicate_rate
        return rate > 0 and (so_far == 0 or self.rng.random() < rate)

    def check_workers(self) -> None:
        """A worker that died is replaced (when `replace_dead_workers`), else an error."""
        for index, proc in enumerate(list(self.workers)):
            if index in self._retired or proc.poll() is None:
                continue
            if not self.replace_dead_workers:
                raise AssertionError(f"a worker exited ({proc.returncode}):\n{self.worker_log()[-3000:]}")
            self._retired.add(index)
            self.replaced_workers += 1
            self.start_worker()

    def run_until_done(self, run_id: str, timeout_s: float = 300.0,
                       sweep_every_s: float | None = None) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        next_sweep = time.monotonic() + (sweep_every_s or 0.0)
        idle_since = time.monotonic()
        while time.monotonic() < deadline:
            busy = False
            for _ in range(self.delivery.invocations_per_round):
                busy = self.deliver_invocation() or busy
            busy = self.deliver_batch() or busy
            busy = self.start_task_workers() > 0 or busy
            self.check_workers()
            if sweep_every_s is not None and time.monotonic() >= next_sweep:
                self.sweep()
                next_sweep = time.monotonic() + sweep_every_s
            if busy:
                idle_since = time.monotonic()
                continue
            run = self.cloud.store.get_run(run_id)
            if run.state in TERMINAL_RUN and not self.fake_lambda.pending and not self._echo:
                return dict(self.get(f"/runs/{run_id}").json_body)
            if time.monotonic() - idle_since > 0.2:
                time.sleep(0.05)
        raise AssertionError(f"run {run_id} did not finish in {timeout_s} s: "
                             f"{self.get(f'/runs/{run_id}').json_body}\n{self.worker_log()[-3000:]}")

    def sweep(self) -> dict[str, Any]:
        event = self.client.events.generate_cw_event("aws.events", "Scheduled Event", {}, [], region="us-east-1")
        with self.server.acting_as("sweeper"):
            return dict(self.client.lambda_.invoke("sweeper", event).payload)


def _pop_random(items: deque[dict[str, Any]], rng: random.Random) -> dict[str, Any]:
    index = rng.randrange(len(items))
    items.rotate(-index)
    value = items.popleft()
    items.rotate(index)
    return value


def sqs_record(message: dict[str, Any]) -> dict[str, Any]:
    """An SQS message as Lambda's event source mapping hands it to the function."""
    return {
        "messageId": message["MessageId"], "receiptHandle": message["ReceiptHandle"], "body": message["Body"],
        "attributes": {"ApproximateReceiveCount": message.get("Attributes", {}).get("ApproximateReceiveCount", "1"),
                       "SentTimestamp": str(int(time.time() * 1000)), "SenderId": "harness",
                       "ApproximateFirstReceiveTimestamp": str(int(time.time() * 1000))},
        "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:updraft-e2e-events", "awsRegion": "us-east-1",
    }


def destination_record(payload: dict[str, Any], condition: str, response: Any) -> dict[str, Any]:
    """What Lambda sends to an async invocation's OnSuccess/OnFailure destination."""
    ok = condition == "Success"
    return {
        "version": "1.0", "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
        "requestContext": {"requestId": str(uuid.uuid4()), "condition": condition, "approximateInvokeCount": 1,
                           "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:updraft-e2e-task:$LATEST"},
        "requestPayload": payload,
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST",
                            **({} if ok else {"functionError": "Unhandled"})},
        "responsePayload": response,
    }


@contextmanager
def emulated_cloud(workdir: Path, delivery: Delivery | None = None, **config: Any) -> Iterator[EmulatedCloud]:
    with fake_credentials():
        cloud = EmulatedCloud(workdir, delivery, **config)
        cloud.start()
        try:
            yield cloud
        finally:
            cloud.stop()


def run_state(body: dict[str, Any]) -> RunState:
    return RunState(body["state"])
