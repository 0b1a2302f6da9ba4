"""Submitting a run, one path for every way in: POST /runs on either backend, an upload
under submit/ (cloud), `updraft run` and the SDK.

Order matters: the runtime reads and validates the request, every external input is found,
and only then is anything written (inputs staged, spec and records stored, the run started).
A rejected submission writes nothing and lists every problem; a submission that fails while
writing removes what it wrote.

A POST /runs envelope is {"workflow": <document or text>, "format", "data", "name"} plus the
runtime's way to name a stored workflow: "file" (a path, local) or "s3" (an s3:// URI,
cloud). "name" names the run (and its spec) instead of the workflow's own name.
"""

from __future__ import annotations

from typing import Any

from msgspec.structs import replace

from chalicelib.engine.lifecycle import create_run, new_run_id
from chalicelib.engine.records import RunRecord
from chalicelib.engine.spec import RunSpec
from chalicelib.errors import FormatError, Problem, StateConflictError
from chalicelib.service.runtime import Request, Runtime

REQUEST_KEYS = frozenset({"workflow", "format", "data", "name"})
STRING_KEYS = ("format", "data", "name")


def check_envelope(body: dict[str, Any], reference_key: str) -> None:
    """Refuse unknown fields and non-string values in a POST /runs envelope; `reference_key`
    is the runtime's own ("file" or "s3")."""
    known = REQUEST_KEYS | {reference_key}
    unknown = sorted(set(body) - known)
    if unknown:
        raise FormatError([Problem(f"unknown request field(s) {unknown}; known: {sorted(known)}")], "<request>")
    for key in STRING_KEYS:
        if body.get(key) is not None and not isinstance(body[key], str):
            raise FormatError([Problem("must be a string", None, key)], "<request>")
    if body.get("name") is not None and not body["name"].strip():
        raise FormatError([Problem("must not be empty", None, "name")], "<request>")


def submit(rt: Runtime, request: Request, run_id: str | None = None) -> RunRecord:
    """Resolve inputs, store the run, start it. Writes nothing if any check fails.

    With a `run_id` chosen by the caller (an upload's, derived from what was uploaded), a
    concurrent submission of the same thing that stored it first wins: its run is returned
    and nothing of it is removed."""
    workflow = request.workflow
    if request.name:
        workflow = replace(workflow, name=request.name)
    resolved = rt.resolve_inputs(workflow, request.data, request.source)
    spec = RunSpec.of(resolved.workflow)
    now = rt.clock()
    run_id = run_id or new_run_id(now)
    try:
        rt.stage_inputs(run_id, resolved.staged)
        run = create_run(spec, rt.store, rt.blobs, now, dict(request.options), run_id,
                         function_limits=rt.function_limits())
    except StateConflictError as exc:
        if isinstance(exc.current, RunRecord):
            return exc.current  # a concurrent delivery of the same submission won: its run stands
        raise
    except BaseException:
        rt.blobs.delete_prefix(f"runs/{run_id}/")
        raise
    rt.specs.put(run_id, spec)
    rt.start(run_id)
    return run
