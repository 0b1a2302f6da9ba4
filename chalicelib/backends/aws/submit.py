"""What is cloud-specific about starting a run, from an API request or an upload under
submit/: reading the request (a document, its text, or an s3:// reference), the run-scoping
rule, and finding every external input in S3. The writes (spec to S3, run and tasks to
DynamoDB, a Start event) are the run service's (chalicelib/service/submission.py); a rejected
submission writes nothing and lists every problem.

External inputs are read straight from S3 by the tasks: each one is either declared with an
s3:// source in the workflow, or found under the request's `data` prefix
(s3://bucket/prefix/ + its path). The stored spec names the source of every one of them.

A run reads and writes only its own prefix (runs/<run>/): its outputs' keys are built from
its run id (runner/keys.py) and its paths cannot escape (validation), so the one way to name
another run's data is a source, a `data` prefix or an `s3` spec in the app's bucket. The
run-scoping rule (`scoping_problem`) is applied to each of them *and to every input source
built from the data prefix* (data "s3://<bucket>/" + input "runs/A/workflow.json" names
run A's spec): nothing under the runs/ prefix, nothing under submit/ but an upload's data/
folder (uploaded workflows and their receipts), no '.' or '..' key parts. Refused here, before
anything is read from those keys or written anywhere.
"""

from __future__ import annotations

import gzip
import json
import logging
import traceback
import zlib
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from msgspec import Struct, field
from msgspec.structs import replace

from chalicelib.backends.aws.clients import error_code
from chalicelib.backends.aws.components import Cloud
from chalicelib.engine.records import RunRecord
from chalicelib.errors import (
    FormatError,
    MissingInputsError,
    NotFoundError,
    Problem,
    TooLargeError,
    UpdraftError,
    WorkflowError,
)
from chalicelib.service.runtime import Request
from chalicelib.service.submission import check_envelope
from chalicelib.workflow import formats
from chalicelib.workflow.graph import external_inputs
from chalicelib.workflow.model import InputFile, Workflow
from chalicelib.workflow.validate import validate

log = logging.getLogger("updraft.submit")

# S3 errors that mean the request named something the app cannot read (a 400, not a 500)
UNREADABLE = {"NoSuchBucket", "NoSuchKey", "AccessDenied", "AllAccessDisabled", "InvalidBucketName", "403", "404",
              "InvalidObjectState", "PermanentRedirect", "AuthorizationHeaderMalformed"}

API_MAX_BODY_BYTES = 6 * 1024 * 1024  # what Lambda takes in one request (API Gateway: 10 MB)
REFERENCE_KEY = "s3"  # {"s3": "s3://bucket/key"} names a stored workflow (service/submission.py: the rest)
SUBMIT_PREFIX = "submit/"  # uploads that start runs (api.s3_upload); their inputs in <folder>/data/


class Submission(Struct, frozen=True):
    """A workflow to run: its text (or an s3:// reference to it) and the run's options."""

    text: str | None = None
    uri: str | None = None
    source: str = "<request>"
    fmt: str | None = None
    data: str | None = None  # s3://bucket/prefix/ holding the external inputs
    options: Mapping[str, Any] = field(default_factory=dict)
    upload: bool = False  # `uri` is the upload under submit/ that triggered this submission
    name: str | None = None  # the request's "name": the run's name instead of the workflow's


def request_submission(body: Any, raw: bytes | None = None) -> Submission:
    """A Submission from a POST /runs body.

    The body is a workflow document in any supported format, or an object
    {"workflow": <document or text> | "s3": "s3://bucket/key", "format", "data"}; a non-JSON
    body (a Makeflow file) is taken as the document's text.
    """
    if body is None:
        if not raw:
            raise FormatError([Problem("the request has no body: send a workflow document")], "<request>")
        return Submission(text=_decode(raw, "<request>"))
    if isinstance(body, dict) and (REFERENCE_KEY in body or "workflow" in body):
        check_envelope(body, REFERENCE_KEY)
        fmt, data, name = body.get("format"), body.get("data"), body.get("name")
        if data is not None:
            _check_prefix(data)
        if REFERENCE_KEY in body:
            uri = body[REFERENCE_KEY]
            if not isinstance(uri, str) or not uri.startswith("s3://"):
                raise FormatError([Problem("must be an s3://bucket/key URI", None, "s3")], "<request>")
            return Submission(uri=uri, source=uri, fmt=fmt, data=data, options={"source": uri, "data": data},
                              name=name)
        doc = body["workflow"]
        text = doc if isinstance(doc, str) else json.dumps(doc)
        return Submission(text=text, fmt=fmt, data=data, options={"source": "api", "data": data}, name=name)
    return Submission(text=json.dumps(body), options={"source": "api"})


def _check_prefix(data: str) -> None:
    if not data.startswith("s3://") or not data[len("s3://"):].split("/", 1)[0]:
        raise FormatError([Problem("must be an s3://bucket/prefix/ URI", None, "data")], "<request>")


def _decode(raw: bytes, source: str) -> str:
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise FormatError([Problem(f"starts like gzip but is not a valid gzip stream ({exc})")], source) from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FormatError([Problem(f"not UTF-8 text (byte {exc.start})")], source) from None


def scoping_problem(uri: str, cloud: Cloud) -> str | None:
    """Why a run may not read `uri` (the run-scoping rule), or None when it may.

    In the app's bucket: nothing under the runs/ prefix (another run's data, logs, manifest or
    stored spec, secrets and env values included), nothing under submit/ but an upload's data/
    folder (uploaded workflows and the receipts beside them), no '.' or '..' key parts. Other
    buckets are the caller's own business (the app reads them with its own role)."""
    bucket, _, key = uri[len("s3://"):].partition("/")
    if bucket != cloud.config.bucket:
        return None
    if any(part in (".", "..") for part in key.split("/")):
        return f"{uri}: '.' and '..' are not allowed in keys of the app's bucket"
    if key.startswith(cloud.config.blob_prefix + "runs/"):
        return (f"{uri} is inside the runs/ prefix of the app's bucket: a run may not read another run's "
                "data or stored spec; copy what it needs under another prefix (e.g. inputs/)")
    if key.startswith(SUBMIT_PREFIX) and "/data/" not in key[len(SUBMIT_PREFIX) - 1:]:
        return (f"{uri} is an upload under submit/ of the app's bucket (a workflow or its receipt), not "
                "input data: a run may read only the data/ folders there")
    return None


other_runs_problem = scoping_problem  # the name it had before uploads and data sources were checked


def _check_reads(sub: Submission, workflow: Workflow | None, cloud: Cloud) -> None:
    problems = []
    for field_name, uri in (("s3", None if sub.upload else sub.uri), ("data", sub.data)):
        why = scoping_problem(uri, cloud) if uri else None
        if why:
            problems.append(Problem(why, None, field_name))
    for inp in workflow.inputs if workflow is not None else ():
        why = scoping_problem(inp.source, cloud) if inp.source and inp.source.startswith("s3://") else None
        if why:
            problems.append(Problem(f"input {inp.path!r}: {why}", None, "inputs"))
    if problems:
        raise WorkflowError(problems, sub.source)


def load_workflow(sub: Submission, cloud: Cloud) -> Workflow:
    """Parse and validate (raises WorkflowError listing every problem)."""
    _check_reads(sub, None, cloud)
    text = sub.text
    if text is None:
        assert sub.uri is not None
        try:
            text = _decode(cloud.blobs.get_bytes(sub.uri), sub.source)
        except ValueError as exc:
            raise FormatError([Problem(str(exc), None, "s3")], sub.source) from None
        except NotFoundError:
            raise  # 404, naming the object
        except Exception as exc:
            if error_code(exc) not in UNREADABLE:
                raise  # the service failed, not the request
            raise FormatError([Problem(f"cannot read {sub.uri}: {exc}", None, "s3")], sub.source) from None
    try:
        workflow = formats.loads(text, source=sub.source, fmt=sub.fmt)
        cap = cloud.config.api_max_tasks
        if not sub.upload and len(workflow.tasks) > cap:
            raise too_large(f"the workflow has {len(workflow.tasks):,} tasks; POST /runs takes at most "
                            f"{cap:,} (UPDRAFT_API_MAX_TASKS)", cap, cloud)
        workflow = validate(workflow, sub.source, max_tasks=cloud.config.max_tasks, sizes=cloud.config.sizes)
    except UpdraftError:
        raise
    except Exception as exc:  # an importer tripped on input it should have rejected: still a 400
        where = traceback.extract_tb(exc.__traceback__)[-1]
        # the type and place only: the message may quote the submission (env values, say)
        log.error("an importer failed on a submission instead of rejecting it (a bug to fix): %s at %s:%s",
                  type(exc).__name__, where.filename.rsplit("/", 1)[-1], where.lineno)
        raise FormatError([Problem(f"could not read the workflow: {type(exc).__name__}: {exc}")],
                          sub.source) from None
    _check_reads(sub, workflow, cloud)
    return workflow


def too_large(what: str, limit: int, cloud: Cloud) -> TooLargeError:
    """The 413 of the API path, naming the upload that takes a large workflow instead."""
    return TooLargeError(
        f"{what}, as it must answer within API Gateway's 29 s. Upload the workflow instead: "
        f"aws s3 cp FILE s3://{cloud.config.bucket}/{SUBMIT_PREFIX}NAME/FILE (its inputs first, under "
        f"{SUBMIT_PREFIX}NAME/data/); the run starts from the upload, and NAME/FILE.run.json beside it "
        "gets its run id (docs/aws.md, 'Large workflows')", limit)


def check_body_size(raw: bytes | None, cloud: Cloud) -> None:
    """A POST /runs body above what Lambda takes is refused here (413) when it gets this far."""
    if raw is not None and len(raw) > API_MAX_BODY_BYTES:
        raise too_large(f"the request body is {len(raw):,} bytes; POST /runs takes at most "
                        f"{API_MAX_BODY_BYTES:,}", API_MAX_BODY_BYTES, cloud)


def resolve_inputs(workflow: Workflow, data: str | None, cloud: Cloud, origin: str = "<request>") -> Workflow:
    """The workflow with an s3:// source for each external input; raises MissingInputsError."""
    declared = {f.path: f.source for f in workflow.inputs}
    sources: dict[str, str] = {}
    problems: list[str] = []
    from_prefix: list[str] = []
    for path in external_inputs(workflow):
        source = declared.get(path)
        if source is not None and source.startswith("s3://"):
            sources[path] = source
        elif source is not None:
            problems.append(f"{path} (source {source}: the cloud runtime reads inputs from s3:// URIs only)")
        elif data is not None:
            sources[path] = data.rstrip("/") + "/" + path
            from_prefix.append(path)
        else:
            problems.append(f"{path} (no source: give it an s3:// source, or pass 'data': 's3://bucket/prefix/')")
    _check_sources(sources, from_prefix, cloud, origin)
    listed: set[str] = set()
    if from_prefix and data is not None:
        bucket = data[len("s3://"):].split("/", 1)[0]
        listed = {f"s3://{bucket}/{key}" for key in cloud.blobs.list(data)}
    explicit = [p for p in sources if p not in from_prefix]

    def check(path: str) -> str | None:
        try:
            if cloud.blobs.exists(sources[path]) or _is_folder(cloud, sources[path]):
                return None
            return f"{path} (looked for {sources[path]})"
        except Exception as exc:  # e.g. AccessDenied on another account's bucket
            return f"{path} (cannot read {sources[path]}: {exc})"

    with ThreadPoolExecutor(max_workers=16) as pool:
        problems.extend(p for p in pool.map(check, explicit) if p)
    folders = {uri.rsplit("/", i)[0] for uri in listed for i in range(1, uri.count("/") - 2)}
    for path in from_prefix:
        if sources[path] not in listed and sources[path] not in folders:  # a folder is data too
            problems.append(f"{path} (looked for {sources[path]})")
    if problems:
        raise MissingInputsError(problems, data or "the workflow's declared sources")
    inputs = tuple(InputFile(path, src) for path, src in sources.items())
    return replace(workflow, inputs=inputs)


def _is_folder(cloud: Cloud, uri: str) -> bool:
    """Whether `uri` is a folder: a prefix holding objects (runner/trees.py)."""
    return next(iter(cloud.blobs.list(uri.rstrip("/") + "/")), None) is not None


def _check_sources(sources: Mapping[str, str], from_prefix: list[str], cloud: Cloud, source: str) -> None:
    """The run-scoping rule on every input source, those built from the data prefix included,
    before any of them is probed (a 'missing' answer would tell what exists there)."""
    built = set(from_prefix)
    problems = []
    for path, uri in sources.items():
        why = scoping_problem(uri, cloud)
        if why:
            how = "from the data prefix" if path in built else "its source"
            problems.append(Problem(f"input {path!r} ({how}): {why}", None, "inputs"))
    if problems:
        raise WorkflowError(problems, source)


def submit(sub: Submission, cloud: Cloud, run_id: str | None = None) -> RunRecord:
    """Validate, check inputs, store the run, start it (chalicelib/service/submission.py).
    Writes nothing if any check fails.

    With a `run_id` derived from what is submitted (an upload's bucket, key and version), a
    second submission of the same thing returns the existing run and starts nothing."""
    from chalicelib.service.submission import submit as submit_run

    if run_id is not None:
        existing = _existing(run_id, cloud)
        if existing is not None:
            return existing
    return submit_run(cloud, request(sub, cloud), run_id)


def request(sub: Submission, cloud: Cloud) -> Request:
    """The run service's request: the workflow loaded and validated, with the run's options."""
    return Request(load_workflow(sub, cloud), sub.data, sub.source, dict(sub.options), sub.name)


def _existing(run_id: str, cloud: Cloud) -> RunRecord | None:
    try:
        return cloud.store.get_run(run_id)
    except NotFoundError:
        return None
