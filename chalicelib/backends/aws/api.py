"""The cloud-only entry: uploads under submit/ (the S3 trigger). The REST API's handlers are
the run service's (chalicelib/service/runs.py), which app.py routes onto; the names below
are kept for the callers that import them from here.
"""

from __future__ import annotations

import hashlib
import json
import logging
import posixpath
from typing import Any
from urllib.parse import unquote_plus

from chalicelib.backends.aws.components import Cloud
from chalicelib.backends.aws.submit import SUBMIT_PREFIX, Submission, submit
from chalicelib.errors import NotFoundError, UpdraftError
from chalicelib.service.errors import Reply, error_body
from chalicelib.service.runs import (
    MAX_TASKS_PAGE,
    cancel_run,
    get_run,
    get_tasks,
    int_param,
    list_runs,
    post_run,
    resume,
)

__all__ = ["MAX_TASKS_PAGE", "SUBMIT_PREFIX", "Reply", "cancel_run", "error_body", "get_run", "get_tasks",
           "int_param", "list_runs", "post_run", "resume", "s3_notice_objects", "s3_records", "s3_upload",
           "upload_run_id"]

log = logging.getLogger("updraft.api")

RECEIPT_SUFFIXES = (".error.json", ".run.json")


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
