"""Throttling and transient errors from DynamoDB, S3, SQS and Lambda (emulated cloud).

What clients.py gives every client: botocore's `standard` retry mode with
`max_attempts: 5`, which botocore counts as *retries*: 6 attempts in all, truncated binary
exponential backoff with full jitter between them (rand(0, 1) x min(2^(n-1), 20) s), and a
per-client retry quota (500 units, 5 per throttled retry, refunded by successes) that stops
retrying under a sustained outage instead of piling up. Checked here:

- each service's throttling error is retried with jittered, growing delays and the
  operation succeeds; the write is applied once (no lost or doubled update);
- a persistent error surfaces as the service's error after 6 attempts, never silently;
- through the app's handlers: random throttling of every service the functions call, and
  Lambda refusing async invokes, still end the run SUCCEEDED with every effect once; a
  DynamoDB outage longer than the retry budget fails the coordinator's batch items, which SQS
  redelivers, and the run still ends correct.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError

from chalicelib.backends.aws.clients import AwsClients
from chalicelib.backends.aws.launchers import FunctionLauncher, LaunchError
from chalicelib.backends.aws.wiring import TASK_EVENT_AGE_S
from chalicelib.engine import events as ev
from chalicelib.engine.lifecycle import create_run
from chalicelib.engine.spec import RunSpec
from chalicelib.engine.states import TaskState
from chalicelib.workflow.formats import native
from tests.e2e.test_cloud_harness import Delivery, EmulatedCloud, emulated_cloud
from tests.e2e.test_cloud_runs import effects_by_task, upload_inputs
from tests.faults.inject import (
    DYNAMODB_THROTTLING,
    DYNAMODB_THROUGHPUT,
    LAMBDA_TOO_MANY,
    S3_SLOWDOWN,
    SERVICE_UNAVAILABLE,
    SQS_THROTTLING,
    AppliedThenLost,
    Fault,
    _Raw,
    always,
    at_rate,
    fake_sleeps,
    first_attempts,
    for_next,
    inject,
    remove,
)
from tests.faults.invariants import check_invariants

pytestmark = pytest.mark.slow

ATTEMPTS = 6  # max_attempts 5 in clients.py = 5 retries


@pytest.fixture(scope="module")
def ec(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatedCloud]:
    with emulated_cloud(tmp_path_factory.mktemp("throttle"), workers=0) as cloud:
        yield cloud


def one_task_run(ec: EmulatedCloud) -> str:
    spec = RunSpec.of(native.from_data({"name": "t", "tasks": [{"id": "a", "command": ["true"]}]}))
    return create_run(spec, ec.cloud.store, ec.cloud.blobs, ec.cloud.clock()).run_id


def lambda_client(ec: EmulatedCloud) -> Any:
    """A real Lambda client configured by clients.py; moto's server cannot run the function,
    so an accepted async Invoke (202) is answered here."""
    client = AwsClients(ec.cloud.config).client("lambda")

    def accepted(request: Any, **_: Any) -> AWSResponse:
        return AWSResponse(request.url, 202, {"Content-Type": "application/json"}, _Raw(b""))

    client.meta.events.register("before-send.lambda.Invoke", accepted)
    return client


# Each case: the client (by service), the operation, its throttling error, and an action
# going through the adapter, returning a check that the effect happened exactly once.
Case = tuple[str, str, Fault, Callable[[EmulatedCloud], Callable[[], None]]]


def dynamodb_update(ec: EmulatedCloud) -> Callable[[], None]:
    run_id = one_task_run(ec)
    ec.cloud.store.update_task(run_id, "a", [TaskState.READY], 1, {"state": TaskState.DISPATCHED,
                                                                  "lease_expires": 1e12})

    def check() -> None:
        rec = ec.cloud.store.get_task(run_id, "a")
        assert (rec.state, rec.attempt) == (TaskState.DISPATCHED, 1)
        assert ec.cloud.store.counts(run_id) == {"DISPATCHED": 1}  # counted once
    return check


def s3_put(ec: EmulatedCloud) -> Callable[[], None]:
    ec.cloud.blobs.put_bytes("faults/obj", b"payload")
    return lambda: None if ec.cloud.blobs.get_bytes("faults/obj") == b"payload" else pytest.fail("lost")


def s3_get(ec: EmulatedCloud) -> Callable[[], None]:
    data = ec.cloud.blobs.get_bytes("faults/obj")
    return lambda: None if data == b"payload" else pytest.fail("wrong object")


def sqs_send(ec: EmulatedCloud) -> Callable[[], None]:
    queue = ec.cloud.events_queue
    queue.delete(queue.receive(10))
    queue.send(['{"probe": 1}'])

    def check() -> None:
        got = queue.receive(10, visibility_s=0)
        assert [m.body for m in got] == ['{"probe": 1}']  # sent once, not once per attempt
        queue.delete(got)
    return check


def lambda_invoke(ec: EmulatedCloud) -> Callable[[], None]:
    client = client_for(ec, "lambda")
    sent: list[bytes] = []
    client.meta.events.register("before-send.lambda.Invoke", lambda request, **_: sent.append(request.body))
    clients = AwsClients(ec.cloud.config, overrides={"lambda": client})
    FunctionLauncher(ec.cloud.config, clients).launch([ev.Launch("r", "t", 1, "function")])
    return lambda: None if len(sent) == 4 and len(set(sent)) == 1 else pytest.fail(f"{len(sent)} invokes")


CASES: list[Case] = [
    ("dynamodb", "UpdateItem", DYNAMODB_THROUGHPUT, dynamodb_update),
    ("dynamodb", "UpdateItem", DYNAMODB_THROTTLING, dynamodb_update),
    ("s3", "PutObject", S3_SLOWDOWN, s3_put),
    ("s3", "GetObject", S3_SLOWDOWN, s3_get),
    ("sqs", "SendMessage", SQS_THROTTLING, sqs_send),
    ("lambda", "Invoke", LAMBDA_TOO_MANY, lambda_invoke),
    ("dynamodb", "UpdateItem", SERVICE_UNAVAILABLE, dynamodb_update),
]


LAMBDA: dict[str, Any] = {}


def client_for(ec: EmulatedCloud, service: str) -> Any:
    if service == "lambda":
        if "lambda" not in LAMBDA:
            LAMBDA["lambda"] = lambda_client(ec)
        return LAMBDA["lambda"]
    return ec.cloud.clients.client(service)


def test_the_clients_use_standard_retries_with_six_attempts(ec: EmulatedCloud) -> None:
    for service in ("dynamodb", "s3", "sqs", "lambda", "ecs"):
        retries = AwsClients(ec.cloud.config).client(service).meta.config.retries
        assert retries == {"mode": "standard", "total_max_attempts": ATTEMPTS}, (service, retries)


@pytest.mark.parametrize(("service", "operation", "fault", "action"), CASES,
                         ids=[f"{c[1]}-{c[2].code}" for c in CASES])
def test_a_throttled_operation_succeeds_after_backing_off(
    ec: EmulatedCloud, service: str, operation: str, fault: Fault, action: Callable[[EmulatedCloud], Any]
) -> None:
    if operation == "GetObject":
        ec.cloud.blobs.put_bytes("faults/obj", b"payload")
    client = client_for(ec, service)
    with fake_sleeps() as delays:
        injector = inject(client, fault, first_attempts(3), operation)
        try:
            check = action(ec)
        finally:
            remove(client, injector, operation)
    # the DynamoDB update is two requests: the task's transition and its counter shard's
    requests = 2 if service == "dynamodb" else 1
    assert injector.injected[operation] == 3 * requests
    assert injector.seen[operation] == 4 * requests  # three refusals, then the request went through
    check()
    assert len(delays) == 3 * requests
    for n, delay in enumerate(delays):  # rand(0, 1) x 2^(n-1): growing caps, jittered below them
        assert 0 <= delay <= 2 ** (n % 3), delays
    assert len(set(delays)) == len(delays)  # jitter: no two alike


@pytest.mark.parametrize(("service", "operation", "fault", "action"), CASES[:6],
                         ids=[f"{c[1]}-{c[2].code}" for c in CASES[:6]])
def test_a_persistent_error_surfaces_after_six_attempts(
    ec: EmulatedCloud, service: str, operation: str, fault: Fault, action: Callable[[EmulatedCloud], Any]
) -> None:
    if operation == "GetObject":
        ec.cloud.blobs.put_bytes("faults/obj", b"payload")
    client = client_for(ec, service)
    with fake_sleeps() as delays:
        injector = inject(client, fault, always({operation}), operation)
        try:
            if service == "lambda":  # the launcher reports each attempt it could not start
                with pytest.raises(LaunchError, match=fault.code):
                    action(ec)
            else:
                with pytest.raises(ClientError) as caught:
                    action(ec)
                assert caught.value.response["Error"]["Code"] in (fault.code, str(fault.status))
        finally:
            remove(client, injector, operation)
    assert injector.seen[operation] == ATTEMPTS
    assert len(delays) == ATTEMPTS - 1 and max(delays) <= 16


# ---- whole runs through the app's handlers ----------------------------------------------------

def mixed_workflow(effects: Path) -> dict[str, Any]:
    mark = 'echo "$UPDRAFT_TASK_ID $UPDRAFT_ATTEMPT" >> "$EFFECTS"; '
    tasks: list[dict[str, Any]] = [
        {"id": f"g{i}", "shell": mark + f"read s < seed.txt; echo $((s + {i})) > g{i}.txt",
         "inputs": ["seed.txt"], "outputs": [f"g{i}.txt"], "placement": "function"} for i in range(6)]
    tasks.append({"id": "sum", "shell": mark + "cat g*.txt | paste -sd+ - | bc > sum.txt",
                  "inputs": [f"g{i}.txt" for i in range(6)], "outputs": ["sum.txt"], "placement": "container"})
    tasks.append({"id": "report", "shell": mark + 'echo "sum=$(cat sum.txt)" > report.txt',
                  "inputs": ["sum.txt"], "outputs": ["report.txt"], "placement": "function"})
    return {"name": "throttled", "defaults": {"env": {"EFFECTS": str(effects)}, "resources": {"timeout_s": 60}},
            "tasks": tasks}


class ThrottlingLambda:
    """The harness's Lambda stand-in, refusing some async invokes the way boto3 reports it
    once its own retries are spent (TooManyRequestsException)."""

    def __init__(self, inner: Any, refuse: Callable[[], bool]) -> None:
        self.inner, self.refuse, self.refused = inner, refuse, 0

    def invoke(self, **kwargs: Any) -> dict[str, Any]:
        if self.refuse():
            self.refused += 1
            raise ClientError({"Error": {"Code": "TooManyRequestsException", "Message": "Rate exceeded"},
                               "ResponseMetadata": {"HTTPStatusCode": 429}}, "Invoke")
        return dict(self.inner.invoke(**kwargs))


def check_run(ec: EmulatedCloud, run_id: str, effects: Path) -> None:
    final = ec.get(f"/runs/{run_id}").json_body
    assert final["state"] == "SUCCEEDED", final
    assert ec.cloud.blobs.get_bytes(f"runs/{run_id}/data/report.txt").strip() == b"sum=33"  # 3+..+8
    assert effects_by_task(effects) == {t: ["1"] for t in [*(f"g{i}" for i in range(6)), "sum", "report"]}
    assert check_invariants(ec.cloud.store, ec.cloud.blobs, run_id, ec.cloud.specs.get(run_id)) == []


def test_a_run_succeeds_under_random_throttling_of_every_service(tmp_path: Path) -> None:
    effects = tmp_path / "effects.log"
    effects.touch()
    with emulated_cloud(tmp_path, Delivery(failed_visibility_s=0)) as ec, fake_sleeps() as delays:
        data = upload_inputs(ec, {"seed.txt": b"3\n"})
        clients = ec.cloud.clients
        injectors = {
            "dynamodb": inject(clients.dynamodb, DYNAMODB_THROUGHPUT, at_rate(0.15, 1, max_per_request=2)),
            "s3": inject(clients.s3, S3_SLOWDOWN, at_rate(0.15, 2, max_per_request=2)),
            "sqs": inject(clients.sqs, SQS_THROTTLING, at_rate(0.15, 3, max_per_request=2)),
        }
        refusals = iter([True, False, True, True] + [False] * 1000)
        lam = ThrottlingLambda(ec.fake_lambda, lambda: next(refusals))
        ec.cloud.clients._clients["lambda"] = lam
        ec.cloud.shell.relaunch_delay_s = (0.0, 0.5)
        resp = ec.post("/runs", {"workflow": mixed_workflow(effects), "data": data})
        assert resp.status_code == 202, resp.json_body
        run_id = resp.json_body["run_id"]
        ec.run_until_done(run_id, timeout_s=180)
        check_run(ec, run_id, effects)
        assert all(sum(inj.injected.values()) > 0 for inj in injectors.values()), injectors
    assert lam.refused == 3 and delays


def test_a_dynamodb_outage_longer_than_the_retries_is_redelivered_not_lost(tmp_path: Path) -> None:
    effects = tmp_path / "effects.log"
    effects.touch()
    with emulated_cloud(tmp_path, Delivery(failed_visibility_s=0)) as ec, fake_sleeps():
        data = upload_inputs(ec, {"seed.txt": b"3\n"})
        resp = ec.post("/runs", {"workflow": mixed_workflow(effects), "data": data})
        run_id = resp.json_body["run_id"]
        assert ec.deliver_batch()  # Start: six function tasks launched
        while ec.fake_lambda.pending:
            ec.deliver_invocation()  # they run; their completions wait on the events queue
        # every UpdateItem the coordinator makes fails for more than two batches' retry budgets
        outage = inject(ec.cloud.clients.dynamodb, DYNAMODB_THROUGHPUT, for_next(3 * ATTEMPTS, {"UpdateItem"}))
        while outage.injected["UpdateItem"] < 3 * ATTEMPTS:
            ec.deliver_batch()
        assert ec.tally.failed_records > 0  # reported back, so SQS delivers them again
        assert ec.cloud.store.get_task(run_id, "sum").state is TaskState.WAITING
        ec.run_until_done(run_id, timeout_s=120)
        check_run(ec, run_id, effects)
        assert json.loads(ec.cloud.blobs.get_bytes(f"runs/{run_id}/manifest.json"))["state"] == "SUCCEEDED"


# ---- ambiguous writes: applied, but the response was lost -----------------------------------------

class OffsetClock:
    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return time.time() + self.offset


@pytest.mark.parametrize("lost_write", ["DISPATCHED", "SUCCEEDED"])
def test_a_write_applied_but_unacknowledged_is_neither_lost_nor_doubled(tmp_path: Path, lost_write: str) -> None:
    """The coordinator's READY -> DISPATCHED (or RUNNING -> SUCCEEDED) write reaches the table
    but its response is lost; botocore retries it and the retry loses its condition. A lost
    dispatch launches nothing: the dispatch lease runs out and the sweeper retries the task. A
    lost completion is recognised as already applied and its children are dispatched. Either
    way the counters lag, and the sweeper re-counts the quiet run and finishes it."""
    effects = tmp_path / "effects.log"
    effects.touch()
    mark = 'echo "$UPDRAFT_TASK_ID $UPDRAFT_ATTEMPT" >> "$EFFECTS"; '
    with emulated_cloud(tmp_path, workers=0, memoize=0) as ec, fake_sleeps():
        clock = OffsetClock()
        ec.cloud.clock = clock.now
        ec.cloud.coordinator.clock = clock
        resp = ec.post("/runs", {"name": "ambiguous", "defaults": {"env": {"EFFECTS": str(effects)},
                                                                    "resources": {"timeout_s": 60}}, "tasks": [
            {"id": "t", "shell": mark + "echo t > t.txt", "outputs": ["t.txt"], "placement": "function"},
            {"id": "u", "shell": mark + "cat t.txt > u.txt", "inputs": ["t.txt"], "outputs": ["u.txt"],
             "placement": "function"}]})
        run_id = resp.json_body["run_id"]
        lost = AppliedThenLost(lambda op, attempt: attempt == 1 and not lost.applied, f'"{lost_write}"'.encode())
        ec.cloud.clients.dynamodb.meta.events.register_first("before-send.dynamodb.UpdateItem", lost)
        if lost_write == "DISPATCHED":
            assert ec.deliver_batch() and lost.applied  # Start: t's dispatch went through, unacknowledged
            assert not ec.fake_lambda.pending  # so nothing was launched
            assert ec.cloud.store.get_task(run_id, "t").state is TaskState.DISPATCHED
        # later, for the sweeper: the dispatch lease (an invoke may wait in Lambda's queue up to
        # its max event age, + 30 s: docs/aws.md, Concurrency) has run out, and the run's
        # counters have been quiet for longer than stuck_run_after_s
        clock.offset = TASK_EVENT_AGE_S + 3600.0
        final = ec.run_until_done(run_id, timeout_s=60, sweep_every_s=0.5)
        assert lost.applied
        assert final["state"] == "SUCCEEDED" and final["counts"] == {"SUCCEEDED": 2}
        expected_t = ["2"] if lost_write == "DISPATCHED" else ["1"]  # a lost dispatch costs an attempt
        assert effects_by_task(effects) == {"t": expected_t, "u": ["1"]}
        spec = ec.cloud.specs.get(run_id)
        assert check_invariants(ec.cloud.store, ec.cloud.blobs, run_id, spec) == []
