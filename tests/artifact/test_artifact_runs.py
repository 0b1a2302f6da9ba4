"""The deploy artifact runs on a Lambda-like runtime, end to end.

`scripts/deploy dev --package-only` writes the artifact; it is unpacked read-only, and every
function (API, submit, coordinator, task, sweeper) runs in its own `python3.12 -I -S` process
that sees only the function package, its layers and a boto3-only runtime folder, with
Lambda's environment variables, its configured memory (RLIMIT_AS) and timeout, and its own
temporary folder (tests/artifact/lambda_like.py, lambda_bootstrap.py). The emulated cloud of
tests/e2e/test_cloud_harness.py (moto as a server) serves them; the coordinator's async
Invokes of the task function reach the server, which hands them to the harness. The worker
runs from the artifact's image build context in a virtual environment made only from
workers/requirements.txt.

So a requirement missing from requirements.txt, or one installed for the wrong Python
(issue 21, B1 and B2), fails here: the function cannot import, or fails at its first event.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from chalicelib.backends.aws.config import ENV
from tests.artifact.lambda_like import (
    FunctionError,
    FunctionProcess,
    Unavailable,
    Unpacked,
    build_artifact,
    lambda_runtime_dir,
    pyenv_python,
    tree_state,
    worker_venv,
)
from tests.e2e.test_cloud_harness import Delivery, EmulatedCloud, destination_record, sqs_record
from tests.e2e.test_cloud_runs import effects_by_task, layered_workflow, upload_inputs

FUNCTIONS = ("APIHandler", "Submit", "Coordinator", "Task", "Sweeper")


@dataclass
class Runtime:
    artifact: Path
    unpacked: Unpacked
    runtime_dir: Path
    python: Path
    worker_python: Path
    build_s: float


@pytest.fixture(scope="session")
def lambda_runtime(tmp_path_factory: pytest.TempPathFactory) -> Runtime:
    """Built once per session; the slow parts are cached under ~/.cache/updraft."""
    try:
        python = pyenv_python("3.12")
        pyenv_python("3.11")
    except Unavailable as exc:
        pytest.skip(str(exc))
    root = tmp_path_factory.mktemp("artifact")
    build_s = build_artifact(root / "artifact")
    return Runtime(root / "artifact", Unpacked.of(root / "artifact", root / "unpacked"), lambda_runtime_dir(),
                   python, worker_venv() / "bin" / "python", build_s)


class Reply:
    """What the harness reads of an API response (chalice.test's shape)."""

    def __init__(self, response: dict[str, Any]) -> None:
        self.status_code = int(response["statusCode"])
        self.body = response.get("body") or ""
        self.json_body = json.loads(self.body) if self.body else None


class ArtifactCloud(EmulatedCloud):
    """The emulated cloud with the functions served by the artifact's processes."""

    def __init__(self, workdir: Path, runtime: Runtime, delivery: Delivery | None = None,
                 tool_dirs: tuple[str, ...] = (), **config: Any) -> None:
        super().__init__(workdir, delivery, **config)
        self.runtime = runtime
        self.tool_dirs = tool_dirs  # what the task functions' tool layers would put on PATH
        self.functions: dict[str, FunctionProcess] = {}

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        super().start()  # moto server, provisioned resources, the worker; the in-process app routes only
        original = self.server._server.app

        def lambda_endpoint(environ: dict[str, Any], start_response: Any) -> Any:
            """Lambda's Invoke API on the server: async invocations go to the harness's queue."""
            path = environ.get("PATH_INFO", "")
            if path.startswith("/2015-03-31/functions/") and path.endswith("/invocations"):
                assert environ.get("HTTP_X_AMZ_INVOCATION_TYPE") == "Event", "the coordinator only invokes async"
                length = int(environ.get("CONTENT_LENGTH") or 0)
                payload = json.loads(environ["wsgi.input"].read(length))
                name = path[len("/2015-03-31/functions/"):-len("/invocations")]
                with self.fake_lambda._lock:
                    self.fake_lambda.invokes += 1
                    self.fake_lambda.pending.append(payload)
                    self.fake_lambda.functions[(payload["run_id"], payload["task_id"], int(payload["attempt"]))] = name
                start_response("202 Accepted", [("Content-Type", "application/json"), ("Content-Length", "0")])
                return [b""]
            return original(environ, start_response)

        self.server._server.app = lambda_endpoint
        names = {k: v for k, v in self.config.items() if k in ENV and k not in ("workroot", "cache_root")}
        env = {ENV[k]: str(v) for k, v in names.items()}
        env.update({"UPDRAFT_AWS_ENDPOINT_URL": self.server.url, "UPDRAFT_SUBMIT_QUEUE": self.config["submit_queue"],
                    "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                    "AWS_SESSION_TOKEN": "testing"})
        # the task function of every deployed memory size: Task (task) and Task<mb> (task-<mb>)
        sized = sorted(k for k in self.runtime.unpacked.functions if k.startswith("Task") and k[4:].isdigit())
        assert sized, "the artifact has no task function of another memory size (app.py, task-<mb>)"
        for logical_id in (*FUNCTIONS, *sized):
            extra = {"UPDRAFT_CACHE_ROOT": self.config["cache_root"]} if logical_id.startswith("Task") else {}
            if extra and self.tool_dirs:
                # On Lambda the task function's tool layers unpack under /opt and PATH ends with
                # /opt/bin (layers/README.md). Here the host's Debian tool folder stands in for the
                # layer, in the layer's place: last, after the artifact's opt/bin (the layer itself
                # running from its unpacked zip is tests/deploy/test_layers.py's). Where Debian puts
                # them in /usr/bin, already on the base PATH, this adds nothing but says where they are.
                extra["PATH"] = ":".join([f"/usr/local/bin:/usr/bin:/bin:{self.runtime.unpacked.opt}/bin",
                                          *self.tool_dirs])
            self.functions[logical_id] = FunctionProcess(logical_id, self.runtime.unpacked, self.runtime.runtime_dir,
                                                         self.runtime.python, {**env, **extra},
                                                         self.workdir / "functions")

    def start_worker(self) -> subprocess.Popen[bytes]:
        """The worker as its image runs it: the build context as /app, the clean venv's Python."""
        context = self.runtime.artifact / "worker"
        env = {k: v for k, v in self.worker_env().items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        env["PYTHONPATH"] = str(context)
        env["PATH"] = "/usr/local/bin:/usr/bin:/bin"
        log = open(self.workdir / f"worker-{len(self.workers)}.log", "wb")  # noqa: SIM115 - closed by the OS
        proc = subprocess.Popen([str(self.runtime.worker_python), "-m", "workers.worker", "--idle-s", "600",
                                 "--poll-wait-s", "1"], cwd=context, env=env, stdout=log,
                                stderr=subprocess.STDOUT)
        self.workers.append(proc)
        return proc

    def stop(self) -> None:
        for fn in self.functions.values():
            fn.close()
        super().stop()

    def function_logs(self) -> str:
        """Per function, its last error lines (else its last lines): what the assertion shows."""
        out = []
        for name, fn in self.functions.items():
            lines = fn.log().splitlines()
            errors = [line[-800:] for line in lines if "Error" in line or "Traceback" in line][-3:]
            out.append(f"--- {name}\n" + "\n".join(errors or lines[-5:]))
        return "\n".join(out)

    # ---- the harness's deliveries, through the artifact -----------------------------------------

    def _api(self, method: str, path: str, body: bytes | None = None) -> Reply:
        from chalice.local import LambdaEventConverter, RouteMatcher

        converter = LambdaEventConverter(RouteMatcher(list(self.app.routes)))
        event = converter.create_lambda_event(method, path, {"content-type": "application/json",
                                                             "host": "api.example"}, body)
        if isinstance(event.get("body"), bytes):  # API Gateway hands the function a string
            event["body"] = event["body"].decode("utf-8")
        return Reply(self.functions["APIHandler"].invoke(event))

    def post(self, path: str, body: Any) -> Reply:  # type: ignore[override]
        return self._api("POST", path, json.dumps(body).encode())

    def get(self, path: str) -> Reply:  # type: ignore[override]
        return self._api("GET", path)

    def deliver_invocation(self) -> bool:
        if not self.fake_lambda.pending:
            return False
        pending = self.fake_lambda.pending
        payload = pending.popleft()
        if self._duplicate(self.tally.duplicate_invocations):
            pending.append(dict(payload))  # Lambda delivers this async event twice
            self.tally.duplicate_invocations += 1
        self.tally.task_invocations += 1
        try:
            handler, _ = self.task_handler(payload)  # task or task-<mb>: the function it was invoked on
            function = self.functions["Task" + handler[len("task-"):]]
            record = destination_record(payload, "Success", function.invoke(payload))
        except FunctionError as exc:
            record = destination_record(payload, "RetriesExhausted", {"errorType": exc.error["errorType"],
                                                                      "errorMessage": exc.error["errorMessage"]})
        self.cloud.clients.sqs.send_message(QueueUrl=self.made.events_queue_url, MessageBody=json.dumps(record))
        self.tally.destination_records += 1
        return True

    def _invoke_coordinator(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        return dict(self.functions["Coordinator"].invoke({"Records": records}))

    def sweep(self) -> dict[str, Any]:
        event = self.client.events.generate_cw_event("aws.events", "Scheduled Event", {}, [], region="us-east-1")
        return dict(self.functions["Sweeper"].invoke(event))

    def submit_upload(self, key: str) -> dict[str, Any]:
        """S3 -> submit queue -> the submit function, as the stack wires it (one record a batch)."""
        notice = {"Records": [{"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": self.config["bucket"]},
                                                                       "object": {"key": key}}}]}
        record = {**sqs_record({"MessageId": "m-" + key, "ReceiptHandle": "r", "Body": json.dumps(notice)}),
                  "eventSourceARN": f"arn:aws:sqs:us-east-1:123456789012:{self.config['submit_queue']}"}
        return dict(self.functions["Submit"].invoke({"Records": [record]}))


@contextmanager
def running_cloud(tmp_path: Path, runtime: Runtime, delivery: Delivery,
                  tool_dirs: tuple[str, ...] = ()) -> Iterator[ArtifactCloud]:
    from tests.contract.awskit import fake_credentials

    with fake_credentials():
        cloud = ArtifactCloud(tmp_path / "cloud", runtime, delivery, tool_dirs, submit_queue="updraft-e2e-submit")
        try:
            cloud.start()
            yield cloud
        finally:
            cloud.stop()


@pytest.fixture
def artifact_cloud(tmp_path: Path, lambda_runtime: Runtime) -> Iterator[ArtifactCloud]:
    with running_cloud(tmp_path, lambda_runtime, Delivery(duplicate_rate=0.5, shuffle=True, seed=7)) as cloud:
        yield cloud


def test_each_function_of_the_artifact_starts_on_a_bare_python312(lambda_runtime: Runtime, tmp_path: Path) -> None:
    """Every handler imports in `python3.12 -I -S` with only the package, the layer and boto3."""
    env = {"UPDRAFT_REGION": "us-east-1"}
    for logical_id in FUNCTIONS:
        fn = FunctionProcess(logical_id, lambda_runtime.unpacked, lambda_runtime.runtime_dir, lambda_runtime.python,
                             env, tmp_path)
        try:
            outside = [p for p in fn.sys_path if not p.startswith((str(lambda_runtime.unpacked.root),
                                                                   str(lambda_runtime.runtime_dir)))]
            assert all("site-packages" not in p for p in outside), outside  # the standard library only
            assert fn.init_ms > 0
        finally:
            fn.close()


def test_a_layered_dag_runs_on_the_artifact_with_mixed_placements_and_duplicates(
        artifact_cloud: ArtifactCloud, tmp_path: Path) -> None:
    ec = artifact_cloud
    before = tree_state(ec.runtime.unpacked.root)
    effects = tmp_path / "effects.log"
    effects.touch()
    data = upload_inputs(ec, {"seed.txt": b"3\n"})
    resp = ec.post("/runs", {"workflow": layered_workflow(effects), "data": data})
    assert resp.status_code == 202, (resp.json_body, ec.function_logs())
    run_id = resp.json_body["run_id"]
    final = ec.run_until_done(run_id, timeout_s=240, sweep_every_s=5.0)
    assert final["state"] == "SUCCEEDED", (final, ec.worker_log()[-2000:], ec.function_logs())
    assert final["counts"] == {"SUCCEEDED": 8}
    assert ec.cloud.blobs.get_bytes(f"runs/{run_id}/data/total.txt").strip() == b"50"
    assert ec.cloud.blobs.get_bytes(f"runs/{run_id}/data/report.txt").strip() == b"total=50"
    assert ec.tally.duplicate_records > 0 and ec.tally.duplicate_invocations > 0
    assert effects_by_task(effects) == {t: ["1"] for t in
                                        ["gen0", "gen1", "gen2", "sq0", "sq1", "sq2", "sum", "report"]}
    manifest = json.loads(ec.cloud.blobs.get_bytes(f"runs/{run_id}/manifest.json"))
    placements = {t["id"]: t["placement"] for t in manifest["tasks"]}
    assert placements["sum"] == "container" and placements["report"] == "function"
    task_functions = {k: f.invocations for k, f in ec.functions.items() if k.startswith("Task")}
    assert sum(task_functions.values()) >= 5 and ec.functions["Coordinator"].invocations >= 1, task_functions
    # each attempt ran on the artifact's function of the size that holds it (memory_mb 1024: 1,769 MB)
    assert task_functions["Task1769"] >= 5, task_functions
    # the artifact's sweeper on the finished run: a run done within sweep_every_s had no sweep
    # during it (the pre-existing assertion flaked on fast runs)
    ec.sweep()
    assert ec.functions["Sweeper"].invocations >= 1
    assert "task succeeded" in ec.worker_log()

    # the same DAG uploaded under submit/: the submit function of the artifact starts it
    effects2 = tmp_path / "effects2.log"
    effects2.touch()
    s3 = ec.cloud.clients.s3
    s3.put_object(Bucket=ec.config["bucket"], Key="submit/layered/data/seed.txt", Body=b"4\n")
    s3.put_object(Bucket=ec.config["bucket"], Key="submit/layered/workflow.json",
                  Body=json.dumps(layered_workflow(effects2)).encode())
    (submitted,) = ec.submit_upload("submit/layered/workflow.json")["submitted"]
    assert submitted["status"] == 202, submitted
    final2 = ec.run_until_done(submitted["run_id"], timeout_s=240)
    assert final2["state"] == "SUCCEEDED", (final2, ec.function_logs())
    # 4+0, 4+1, 4+2 squared and summed: 16 + 25 + 36
    assert ec.cloud.blobs.get_bytes(f"runs/{submitted['run_id']}/data/total.txt").strip() == b"77"

    assert tree_state(ec.runtime.unpacked.root) == before  # the functions wrote nothing into the package
    for fn in ec.functions.values():
        assert fn.proc.poll() is None, f"{fn.logical_id} died:\n{fn.log()[-2000:]}"
        assert "Traceback" not in fn.log(), fn.log()[-3000:]


@pytest.mark.tools
def test_the_small_montage_mosaic_runs_on_the_artifact_with_mixed_placements(
        lambda_runtime: Runtime, tmp_path: Path) -> None:
    """The small Montage (4 tiles, 21 tasks, tests/e2e/test_cloud_montage.py) with every other
    task a function served by the artifact's task functions, the rest in the worker."""
    from examples.montage import dag, generate
    from examples.toolcheck import install_hint, missing_tools
    from tests.e2e.test_cloud_montage import mixed, upload_dir

    missing = missing_tools(generate.GENERATOR_TOOLS + generate.WORKFLOW_TOOLS)
    if missing:
        pytest.skip(f"Montage tools missing ({', '.join(missing)}): install them with {install_hint(missing)}")
    tool_dirs = tuple(sorted({os.path.dirname(str(shutil.which(t))) for t in generate.WORKFLOW_TOOLS}))
    summary = generate.generate(str(tmp_path / "gen"), degrees=0.2, seed=1)  # the smallest mosaic in the tests
    workflow = mixed(json.loads(Path(str(summary["workflow"])).read_text()))
    delivery = Delivery(duplicate_rate=0.25, shuffle=True, seed=3)
    with running_cloud(tmp_path, lambda_runtime, delivery, tool_dirs) as ec:
        data = upload_dir(ec, Path(str(summary["data"])), "inputs/montage/")
        resp = ec.post("/runs", {"workflow": workflow, "data": data})
        assert resp.status_code == 202, (resp.json_body, ec.function_logs())
        run_id = resp.json_body["run_id"]
        final = ec.run_until_done(run_id, timeout_s=280, sweep_every_s=5.0)
        assert final["state"] == "SUCCEEDED", (final, ec.worker_log()[-2000:], ec.function_logs())
        assert final["counts"] == {"SUCCEEDED": 21}
        png = ec.cloud.blobs.get_bytes(f"runs/{run_id}/data/{dag.PNG}")
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        assert struct.unpack(">II", png[16:24]) == (360 // dag.SHRINK_FACTOR, 360 // dag.SHRINK_FACTOR)
        assert ec.cloud.blobs.size(f"runs/{run_id}/data/{dag.MOSAIC}") > 360 * 360 * 4
        # the listing from the in-process app: the artifact's API handler, under RLIMIT_AS at its
        # 512 MB, sometimes cannot start the listing's reader threads ("can't start new thread":
        # each thread reserves address space that Lambda's memory limit does not count)
        tasks = EmulatedCloud.get(ec, f"/runs/{run_id}/tasks").json_body["tasks"]
        assert {t["placement"] for t in tasks} == {"function", "container"}
        assert all(t["attempts"] == 1 for t in tasks)  # duplicates never cost a retry
        assert ec.tally.duplicate_records > 0 and ec.tally.duplicate_invocations > 0
        task_functions = {k: f.invocations for k, f in ec.functions.items() if k.startswith("Task")}
        functions = sum(t["placement"] == "function" for t in tasks)
        assert sum(task_functions.values()) >= functions, task_functions  # each function task ran there
        assert "task succeeded" in ec.worker_log()
        for fn in ec.functions.values():
            assert fn.proc.poll() is None, f"{fn.logical_id} died:\n{fn.log()[-2000:]}"
            assert "Traceback" not in fn.log(), fn.log()[-3000:]


def test_a_function_over_its_time_limit_is_stopped(lambda_runtime: Runtime, tmp_path: Path) -> None:
    """The configured timeout is enforced: the sweeper, given 2 s and an AWS endpoint that
    accepts connections but never answers, is cut off."""
    import socket

    rt = lambda_runtime
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    unpacked = Unpacked(rt.unpacked.root, rt.unpacked.task_root, rt.unpacked.opt,
                        {"Sweeper": {**rt.unpacked.functions["Sweeper"], "Timeout": 2}})
    url = f"http://127.0.0.1:{silent.getsockname()[1]}"
    fn = FunctionProcess("Sweeper", unpacked, rt.runtime_dir, rt.python,
                         {"UPDRAFT_REGION": "us-east-1", "UPDRAFT_AWS_ENDPOINT_URL": url,
                          "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}, tmp_path)
    try:
        started = time.monotonic()
        with pytest.raises(FunctionError, match=r"timed out after 2\.00 seconds"):
            fn.invoke({"version": "0", "id": "e1", "detail-type": "Scheduled Event", "source": "aws.events",
                       "account": "123456789012", "time": "2026-12-07T00:00:00Z", "region": "us-east-1",
                       "resources": [], "detail": {}})
        assert time.monotonic() - started < 20
    finally:
        fn.close()
        silent.close()


def test_a_requirement_missing_from_the_layer_fails_the_function_at_import(
        lambda_runtime: Runtime, tmp_path: Path) -> None:
    """The check this test file relies on: without msgspec in the layer, no handler imports."""
    opt = tmp_path / "opt"
    shutil.copytree(lambda_runtime.unpacked.opt, opt)
    for path in opt.rglob("msgspec*"):
        if path.exists():
            (shutil.rmtree if path.is_dir() else os.remove)(path)
    unpacked = Unpacked(lambda_runtime.unpacked.root, lambda_runtime.unpacked.task_root, opt,
                        lambda_runtime.unpacked.functions)
    with pytest.raises(FunctionError, match="ModuleNotFoundError: No module named 'msgspec'"):
        FunctionProcess("Task", unpacked, lambda_runtime.runtime_dir, lambda_runtime.python,
                        {"UPDRAFT_REGION": "us-east-1"}, tmp_path / "work")


def test_the_runtime_applies_the_configured_memory(lambda_runtime: Runtime, tmp_path: Path) -> None:
    """The Lambda-like runtime itself: a handler allocating past its MemorySize is stopped
    (RLIMIT_AS), below it is not - so the limits the artifact's functions ran under are real."""
    task_root = tmp_path / "task"
    task_root.mkdir()
    (task_root / "hog.py").write_text("def handler(event, context):\n"
                                      "    return len(bytearray(event['mb'] * 1024 * 1024))\n")
    rt = lambda_runtime
    unpacked = Unpacked(tmp_path, task_root, rt.unpacked.opt, {"Hog": {
        "Handler": "hog.handler", "Runtime": "python3.12", "MemorySize": 128, "Timeout": 10}})
    fn = FunctionProcess("Hog", unpacked, rt.runtime_dir, rt.python, {}, tmp_path / "work")
    try:
        assert fn.invoke({"mb": 32}) == 32 * 1024 * 1024
        with pytest.raises(FunctionError, match=r"Runtime\.OutOfMemory"):
            fn.invoke({"mb": 256})
    finally:
        fn.close()
