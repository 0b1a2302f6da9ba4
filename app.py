"""Updraft on AWS: the Chalice app. Wiring only - each handler parses its event, calls
chalicelib (the run service for the routes, chalicelib.backends.aws for the triggers), and
returns. docs/aws.md describes what each one does.

    POST /runs, GET /runs, GET /runs/{id}, GET /runs/{id}/tasks,
    POST /runs/{id}/cancel, POST /runs/{id}/resume          (IAM auth by default)
    submit       S3 upload under submit/ starts a run (directly, or via UPDRAFT_SUBMIT_QUEUE)
    coordinator  SQS batches of events -> state transitions, launches
    task, task-<mb>  run one function-placed task attempt (async Invoke), one function per
                 deployed memory size (UPDRAFT_FUNCTION_SIZES)
    sweeper      expired leases, quiet runs, missing manifests, worker scaling
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from chalice import Chalice, IAMAuthorizer, Rate, Response

from chalicelib.backends.aws import api
from chalicelib.backends.aws.components import current
from chalicelib.backends.aws.config import AwsConfig
from chalicelib.backends.aws.coordinator_function import handle_batch
from chalicelib.backends.aws.observability import obs
from chalicelib.backends.aws.sweeper import sweep
from chalicelib.backends.aws.task_function import handle_task
from chalicelib.backends.aws.wiring import EVENTS_BATCH_SIZE, EVENTS_BATCH_WINDOW_S, SUBMIT_MAX_CONCURRENCY
from chalicelib.errors import FormatError, Problem, UpdraftError
from chalicelib.service import runs
from chalicelib.service.errors import Reply, error_body

app = Chalice(app_name="updraft", configure_logs=False)  # Powertools formats the "updraft" logger
settings = AwsConfig.from_env()  # resource names for the triggers below (deploy and cold start)
auth = IAMAuthorizer() if settings.api_auth == "iam" else None
TEXT_TYPES = ["application/json", "text/plain", "application/octet-stream", "application/x-makeflow"]


@app.middleware("all")
def observe(event: Any, get_response: Callable[[Any], Any]) -> Any:
    with obs().invocation(type(event).__name__):
        return get_response(event)


def _reply(call: Callable[[], Reply]) -> Response:
    try:
        status, body = call()
    except UpdraftError as exc:
        status, body = error_body(exc)
    return Response(body=body, status_code=status, headers={"Content-Type": "application/json"})


def _request() -> Any:
    request = app.current_request
    assert request is not None  # set by Chalice for every HTTP invocation
    return request


def _params() -> dict[str, str]:
    return dict(_request().query_params or {})


@app.route("/runs", methods=["POST"], authorizer=auth, content_types=TEXT_TYPES)
def post_runs() -> Response:
    request = _request()
    raw = request.raw_body or b""
    raw = raw.encode("utf-8") if isinstance(raw, str) else bytes(raw)
    body: Any = None
    if "json" in (request.headers.get("content-type") or "application/json"):
        try:
            body = json.loads(raw) if raw.strip() else None
        except (ValueError, RecursionError) as exc:
            why = exc if isinstance(exc, ValueError) else "nested too deeply"
            problem = FormatError([Problem(f"the body is not valid JSON: {why}")], "<request>")
            return _reply(lambda: error_body(problem))
    return _reply(lambda: runs.post_run(current(), body, raw))


@app.route("/runs", methods=["GET"], authorizer=auth)
def get_runs() -> Response:
    return _reply(lambda: runs.list_runs(current(), _params()))


@app.route("/runs/{run_id}", methods=["GET"], authorizer=auth)
def get_run(run_id: str) -> Response:
    return _reply(lambda: runs.get_run(current(), run_id))


@app.route("/runs/{run_id}/tasks", methods=["GET"], authorizer=auth)
def get_tasks(run_id: str) -> Response:
    return _reply(lambda: runs.get_tasks(current(), run_id, _params()))


@app.route("/runs/{run_id}/cancel", methods=["POST"], authorizer=auth)
def cancel_run(run_id: str) -> Response:
    return _reply(lambda: runs.cancel_run(current(), run_id))


@app.route("/runs/{run_id}/resume", methods=["POST"], authorizer=auth)
def resume_run(run_id: str) -> Response:
    return _reply(lambda: runs.resume(current(), run_id))


if settings.submit_queue:  # S3 notifies a queue (infra/stack.yaml): no bucket <-> function cycle

    @app.on_sqs_message(queue=settings.submit_queue_name, batch_size=1, name="submit",
                        maximum_concurrency=SUBMIT_MAX_CONCURRENCY)
    def on_upload_notice(event: Any) -> dict[str, Any]:
        replies = [api.s3_upload(current(), bucket, key, version)
                   for record in event for bucket, key, version in api.s3_notice_objects(record.body)]
        return {"submitted": [{"status": status, **body} for status, body in replies]}

else:

    @app.on_s3_event(bucket=settings.bucket, prefix=api.SUBMIT_PREFIX, events=["s3:ObjectCreated:*"], name="submit")
    def on_upload(event: Any) -> dict[str, Any]:
        records = api.s3_records(event.to_dict())
        version = records[0][2] if records else None  # the versionId or sequencer: redeliveries are no-ops
        status, body = api.s3_upload(current(), event.bucket, event.key, version)
        return {"status": status, **body}


# No batching window: it would hold every hop of a chain for a batch that never fills (wiring.py).
# At most events_concurrency coordinators at once, within the coordinator's reserved concurrency
# (.chalice/config.json): a burst of tasks cannot starve it, nor it the table (docs/aws.md).
@app.on_sqs_message(queue=settings.events_queue_name, batch_size=EVENTS_BATCH_SIZE,
                    maximum_batching_window_in_seconds=EVENTS_BATCH_WINDOW_S,
                    maximum_concurrency=settings.events_concurrency, name="coordinator")
def coordinator(event: Any) -> dict[str, Any]:
    return handle_batch(event.to_dict(), current())


def _run_task(event: Any, context: Any) -> dict[str, Any]:
    remaining = context.get_remaining_time_in_millis() / 1000.0 if context is not None else None
    memory = int(context.memory_limit_in_mb) if getattr(context, "memory_limit_in_mb", None) else None
    return handle_task(event, current(), obs(), remaining, memory)


@app.lambda_function(name="task")  # the size UPDRAFT_TASK_FUNCTION_MB (.chalice/config.json sets its memory)
def task(event: Any, context: Any) -> dict[str, Any]:
    return _run_task(event, context)


def _sized_task(mb: int) -> Callable[[Any, Any], dict[str, Any]]:
    def handler(event: Any, context: Any) -> dict[str, Any]:
        return _run_task(event, context)

    handler.__name__ = handler.__qualname__ = f"task_{mb}"  # Chalice's handler string: app.task_<mb>
    return handler


# One task function per other deployed size, task-<mb> (docs/aws.md, Sizes; bootstrap sets each
# one's memory, role and network in .chalice/config.json from UPDRAFT_FUNCTION_SIZES).
for _mb in settings.sizes.function_mb:
    if _mb != settings.task_function_mb:
        globals()[f"task_{_mb}"] = app.lambda_function(name=f"task-{_mb}")(_sized_task(_mb))


@app.schedule(Rate(settings.sweep_minutes, unit=Rate.MINUTES), name="sweeper")
def sweeper(event: Any) -> dict[str, object]:
    return sweep(current()).to_dict()


# ---- dashboard (chalicelib/ui, docs/observability.md) ------------------------------------------
# GET / serves the static dashboard page; it holds no data, so it needs no auth. The page reads
# the routes above and these two, which are authorized like every other data route.

@app.route("/", methods=["GET"])
def dashboard() -> Response:
    from chalicelib.ui.page import page_html

    return Response(body=page_html(), status_code=200, headers={"Content-Type": "text/html; charset=utf-8"})


@app.route("/runs/{run_id}/graph", methods=["GET"], authorizer=auth)
def get_graph(run_id: str) -> Response:
    return _reply(lambda: runs.get_graph(current(), run_id))


@app.route("/runs/{run_id}/tasks/{task_id}", methods=["GET"], authorizer=auth)
def get_task(run_id: str, task_id: str) -> Response:
    return _reply(lambda: runs.get_task(current(), run_id, task_id))
