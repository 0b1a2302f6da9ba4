"""JSON bodies of the two read-only routes the dashboard adds to the run API:

    GET /runs/{id}/graph            every task's type, parents, level and resources (static)
    GET /runs/{id}/tasks/{task}     one task's record, its runner metrics and its log tail

Pure functions of the ports, shared by the local server and the Chalice app.
"""

from __future__ import annotations

from typing import Any

from chalicelib.engine.ports import BlobStore
from chalicelib.engine.records import TaskRecord
from chalicelib.engine.spec import RunSpec
from chalicelib.runner.keys import log_key
from chalicelib.runner.log_read import tail_bytes
from chalicelib.workflow.graph import levels, topological_order

LOG_TAIL_BYTES = 16 * 1024


def graph_body(run_id: str, spec: RunSpec) -> dict[str, Any]:
    order = topological_order(spec.graph) or list(spec.graph.ids)
    level = levels(spec.graph, order)
    tasks = []
    for task in spec.workflow.tasks:
        tasks.append({
            "id": task.id, "type": task.task_type, "parents": list(spec.graph.parents.get(task.id, ())),
            "level": level.get(task.id, 0), "placement": task.placement.value,
            "memory_mb": task.resources.memory_mb, "cpus": task.resources.cpus,
            "timeout_s": task.resources.timeout_s, "retries": task.retries,
        })
    return {"run_id": run_id, "name": spec.workflow.name, "levels": max(level.values(), default=-1) + 1,
            "edges": spec.graph.edge_count, "tasks": tasks}


def task_body(rec: TaskRecord) -> dict[str, Any]:
    """The record's public fields plus what the runner measured of its last attempt (each key
    only when known) and the earlier attempts (`tries`)."""
    body = rec.to_dict()
    result = rec.result
    if result is not None:
        metrics = {"duration_s": result.duration_s, "bytes_in": result.bytes_in, "bytes_out": result.bytes_out,
                   "peak_rss_mb": result.peak_rss_mb, "worker": result.worker}
        body.update((key, value) for key, value in metrics.items() if value is not None)
        if body.get("started_at") is None and result.started_at is not None:
            body["started_at"] = result.started_at  # a failure that came before its start event
    if rec.tries:
        body["tries"] = [t.to_dict() for t in rec.tries]
    if rec.failed_parent is not None:  # UPSTREAM_FAILED: the failed task it depends on
        body["failed_parent"] = rec.failed_parent
    return body


def log_text(rec: TaskRecord, blobs: BlobStore, max_bytes: int = LOG_TAIL_BYTES) -> str | None:
    """The end of the task's latest stored log, else the tail its result carries, else None."""
    result = rec.result
    keys = [result.log_key] if result is not None and result.log_key else []
    keys += [log_key(rec.run_id, rec.task_id, a) for a in range(rec.attempt, 0, -1)]
    for key in dict.fromkeys(keys):
        try:
            if blobs.exists(key):
                return tail_bytes(blobs, key, max_bytes).decode("utf-8", "replace")
        except Exception:  # noqa: S112 - an unreadable log must not hide the task
            continue
    tail = result.log_tail if result is not None else None
    return tail or None


def task_detail_body(rec: TaskRecord, blobs: BlobStore) -> dict[str, Any]:
    body = task_body(rec)
    body["run_id"] = rec.run_id
    body["log_tail"] = log_text(rec, blobs)
    tail = rec.result.log_tail if rec.result is not None else None
    if rec.reason and tail and tail.strip():
        body["detail"] = tail.strip().splitlines()[0]  # the runner's one-line account of the failure
    if rec.failed_parent is not None:
        body["failed_parent"] = rec.failed_parent
    return body


def graph_reply(parts: Any, run_id: str) -> tuple[int, dict[str, Any]]:
    """GET /runs/{id}/graph for anything with `store` and `specs` (the Chalice app's Cloud)."""
    parts.store.get_run(run_id)  # NotFoundError -> 404
    return 200, graph_body(run_id, parts.specs.get(run_id))


def task_reply(parts: Any, run_id: str, task_id: str) -> tuple[int, dict[str, Any]]:
    """GET /runs/{id}/tasks/{task} for anything with `store` and `blobs`."""
    return 200, task_detail_body(parts.store.get_task(run_id, task_id), parts.blobs)
