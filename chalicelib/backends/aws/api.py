"""What the REST API and the S3 trigger do; app.py only maps HTTP and events onto these.

Every function returns (status, body). Errors a user can fix become 4xx with a body that
says what is wrong: 400 with every validation problem, 404 for an unknown run, 409 for an
operation the run's state does not allow.
"""

from __future__ import annotations

import hashlib
import json
import logging
import posixpath
from typing import Any
from urllib.parse import unquote_plus

from chalicelib.backends.aws.components import Cloud
from chalicelib.backends.aws.submit import SUBMIT_PREFIX, Submission, request_submission, submit
from chalicelib.engine.events import Cancel, Start
from chalicelib.engine.lifecycle import resume_run
from chalicelib.engine.states import TERMINAL_RUN, RunState, TaskState
from chalicelib.errors import MissingInputsError, NotFoundError, StateConflictError, UpdraftError, WorkflowError

log = logging.getLogger("updraft.api")

Reply = tuple[int, dict[str, Any]]
MAX_TASKS_PAGE = 5000
RECEIPT_SUFFIXES = (".error.json", ".run.json")


def error_body(exc: UpdraftError) -> Reply:
    if isinstance(exc, WorkflowError):
        return 400, {"error": "invalid workflow", "source": exc.source,
                     "problems": [p.to_dict() for p in exc.problems], "message": str(exc)}
    if isinstance(exc, MissingInputsError):
        return 400, {"error": "missing inputs", "missing": exc.missing, "message": str(exc)}
    if isinstance(exc, NotFoundError):
        return 404, {"error": "not found", "message": str(exc)}
    if isinstance(exc, StateConflictError):
        return 409, {"error": "conflict", "message": str(exc)}
    return 400, {"error": type(exc).__name__, "message": str(exc)}


def post_run(cloud: Cloud, body: Any, raw: bytes | None) -> Reply:
    run = submit(request_submission(body, raw), cloud)
    log.info("run submitted", extra={"run_id": run.run_id})
    return 202, {"run_id": run.run_id, "state": run.state.value, "task_count": run.task_count,
                 "links": {"self": f"/runs/{run.run_id}", "tasks": f"/runs/{run.run_id}/tasks"}}


def list_runs(cloud: Cloud, params: dict[str, str]) -> Reply:
    state = _run_state(params.get("state"))
    limit = _int_param(params, "limit", 50, 1, 1000)
    runs = cloud.store.list_runs(limit=limit, state=state)
    return 200, {"runs": [r.to_dict() for r in runs]}


def get_run(cloud: Cloud, run_id: str) -> Reply:
    run = cloud.store.get_run(run_id)
    body = run.to_dict()
    body["counts"] = cloud.store.counts(run_id)
    end = run.finished_at if run.finished_at is not None else cloud.clock()
    body["timings"] = {"created_at": run.created_at, "finished_at": run.finished_at,
                       "elapsed_s": round(end - run.created_at, 3)}
    return 200, body


def get_tasks(cloud: Cloud, run_id: str, params: dict[str, str]) -> Reply:
    cloud.store.get_run(run_id)
    raw = params.get("state")
    states = None
    if raw:
        try:
            states = [TaskState(s.strip().upper()) for s in raw.split(",")]
        except ValueError:
            return 400, {"error": "bad state", "message": f"state must be among {[s.value for s in TaskState]}"}
    limit = _int_param(params, "limit", 1000, 1, MAX_TASKS_PAGE)
    tasks = cloud.store.list_tasks(run_id, states)
    return 200, {"run_id": run_id, "count": len(tasks), "truncated": len(tasks) > limit,
                 "tasks": [t.to_dict() for t in tasks[:limit]]}


def cancel_run(cloud: Cloud, run_id: str) -> Reply:
    run = cloud.store.get_run(run_id)
    if run.state in TERMINAL_RUN:
        return 409, {"error": "conflict", "message": f"run {run_id} is already {run.state.value}"}
    cloud.sink.send([Cancel(run_id)])
    return 202, {"run_id": run_id, "state": "CANCELLING"}


def resume(cloud: Cloud, run_id: str) -> Reply:
    run = cloud.store.get_run(run_id)
    if run.state is RunState.SUCCEEDED:
        return 409, {"error": "conflict", "message": f"run {run_id} already SUCCEEDED: nothing to resume"}
    reset = resume_run(run_id, cloud.specs.get(run_id), cloud.store)
    cloud.sink.send([Start(run_id)])
    return 202, {"run_id": run_id, "state": RunState.RUNNING.value, "reset_tasks": reset}


def _run_state(raw: str | None) -> RunState | None:
    if not raw:
        return None
    try:
        return RunState(raw.upper())
    except ValueError:
        raise UpdraftError(f"state must be one of {[s.value for s in RunState]}, got {raw!r}") from None


def _int_param(params: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise UpdraftError(f"{name} must be a whole number, got {raw!r}") from None
    return max(low, min(high, value))


# ---- S3 trigger ------------------------------------------------------------------------------

def upload_run_id(bucket: str, key: str, version: str) -> str:
    """The run id of one upload: the same for every delivery of its notification."""
    digest = hashlib.sha256(f"{bucket}\n{key}\n{version}".encode()).hexdigest()
    return f"upload-{digest[:24]}"


def s3_upload(cloud: Cloud, bucket: str, key: str, version: str | None = None) -> Reply:
    """A workflow uploaded under submit/ starts a run; the outcome is written next to it.

    <key>.run.json gets the run id and where its manifest will be; an invalid upload gets
    <key>.error.json with every problem. Those receipts are ignored when they trigger us, and
    so are input files under a data/ folder: inputs go to submit/<name>/data/<path>, uploaded
    before the workflow file submit/<name>/<file>.

    S3 and SQS deliver a notification at least once. `version` (the object's versionId, else
    the event's sequencer, which S3 gives every event and which differs for every PUT of a
    key) names the upload: its run id is derived from bucket, key and version, so a second
    delivery finds the run and is a no-op (200, "duplicate": true). Without one (a hand-made
    event) every delivery starts a run.
    """
    if (not key.startswith(SUBMIT_PREFIX) or key.endswith(RECEIPT_SUFFIXES) or key.endswith("/")
            or "/data/" in key[len(SUBMIT_PREFIX) - 1:]):
        return 204, {}  # not a workflow: a receipt of ours, a folder, or an input file
    uri = f"s3://{bucket}/{key}"
    data = posixpath.dirname(uri) + "/data/"
    has_data = any(True for _ in cloud.blobs.list(data))
    run_id = upload_run_id(bucket, key, version) if version else None
    if run_id is not None:
        existing = _known_run(cloud, run_id)
        if existing is not None:
            log.info("redelivered upload %s: run %s already exists", uri, run_id)
            return 200, {"run_id": run_id, "upload": uri, "state": existing, "duplicate": True}
    sub = Submission(uri=uri, source=uri, data=data if has_data else None,
                     options={"source": uri, "data": data if has_data else None}, upload=True)
    try:
        run = submit(sub, cloud, run_id)
    except UpdraftError as exc:
        status, body = error_body(exc)
        _put_json(cloud, bucket, key + ".error.json", {**body, "upload": uri})
        log.warning("rejected upload %s: %s", uri, body.get("error"))
        return status, body
    body = {"run_id": run.run_id, "upload": uri, "state": run.state.value,
            "manifest": cloud.blobs.uri(f"runs/{run.run_id}/manifest.json")}
    _put_json(cloud, bucket, key + ".run.json", body)
    return 202, body


def _known_run(cloud: Cloud, run_id: str) -> str | None:
    """The state of run `run_id` if it exists."""
    try:
        return cloud.store.get_run(run_id).state.value
    except NotFoundError:
        return None


def s3_records(data: Any) -> list[tuple[str, str, str | None]]:
    """(bucket, key, version) of each object an S3 event announces as created; version is
    the versionId, else the sequencer, else None."""
    objects = []
    for record in data.get("Records", []) if isinstance(data, dict) else []:
        if not str(record.get("eventName", "")).startswith("ObjectCreated"):
            continue
        s3 = record.get("s3", {})
        obj = s3["object"]
        version = obj.get("versionId") or obj.get("sequencer") or None
        objects.append((s3["bucket"]["name"], unquote_plus(obj["key"]), str(version) if version else None))
    return objects  # s3:TestEvent and other notices announce nothing


def s3_notice_objects(body: str) -> list[tuple[str, str, str | None]]:
    """(bucket, key, version) of each object an S3 event notification (an SQS body) announces."""
    return s3_records(json.loads(body))


def _put_json(cloud: Cloud, bucket: str, key: str, body: dict[str, Any]) -> None:
    cloud.blobs.put_bytes(f"s3://{bucket}/{key}", json.dumps(body, indent=1).encode("utf-8"))
