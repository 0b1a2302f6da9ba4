"""A finished run's manifest: its state, where its outputs are, and a line per task.

Written to runs/<run>/manifest.json when the run finishes (and by the sweeper for a finished
run that has none), so S3-triggered runs report back where they were submitted.
"""

from __future__ import annotations

import json
from typing import Any

from chalicelib.engine.ports import BlobStore, StateStore
from chalicelib.engine.spec import RunSpec
from chalicelib.engine.states import DONE_OK
from chalicelib.runner.keys import data_key


def manifest_key(run_id: str) -> str:
    return f"runs/{run_id}/manifest.json"


def final_outputs(spec: RunSpec) -> list[str]:
    """Files some task produces and no task reads: the workflow's results."""
    consumed = {path for task in spec.workflow.tasks for path in task.inputs}
    return [path for task in spec.workflow.tasks for path in task.outputs if path not in consumed]


def build_manifest(run_id: str, store: StateStore, spec: RunSpec, uri_of: Any = None) -> dict[str, Any]:
    run = store.get_run(run_id)
    records = store.list_tasks(run_id)
    ok = {r.task_id for r in records if r.state in DONE_OK}
    producers = spec.graph.producers
    outputs = []
    for path in final_outputs(spec):
        key = data_key(run_id, path)
        outputs.append({"path": path, "key": key, "uri": uri_of(key) if uri_of else key,
                        "produced": producers.get(path) in ok})
    tasks = []
    for rec in records:
        line = rec.to_dict()
        line["duration_s"] = rec.result.duration_s if rec.result is not None else None
        if rec.result is not None and rec.result.log_key:
            line["log_key"] = rec.result.log_key
        tasks.append(line)
    counts: dict[str, int] = {}
    for rec in records:
        counts[rec.state.value] = counts.get(rec.state.value, 0) + 1
    duration = (run.finished_at - run.created_at) if run.finished_at is not None else None
    return {
        "run_id": run_id, "name": run.name, "state": run.state.value, "created_at": run.created_at,
        "finished_at": run.finished_at, "duration_s": duration, "task_count": run.task_count,
        "counts": counts, "outputs": outputs, "tasks": tasks, "options": run.options,
    }


def write_manifest(run_id: str, store: StateStore, blobs: BlobStore, spec: RunSpec) -> dict[str, Any]:
    uri_of = getattr(blobs, "uri", None)
    manifest = build_manifest(run_id, store, spec, uri_of)
    blobs.put_bytes(manifest_key(run_id), json.dumps(manifest, indent=1).encode("utf-8"))
    return manifest
