"""A local container worker: a separate process that takes launches from its stdin (one JSON
line each: run_id, task_id, attempt), loads the run's spec from the blob store, runs the task
through the runner and writes events as JSON lines to stdout. Like the Fargate worker, it
knows only the blob store and the runner.

SIGUSR1 kills the running task (cancel); SIGTERM kills it and exits.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from typing import Any

from msgspec.structs import replace

from chalicelib.backends.local.fs_blobs import FsBlobStore
from chalicelib.cache.cas import ContentStore
from chalicelib.cache.memo import MemoIndex
from chalicelib.cache.stage import TaskCache
from chalicelib.engine.events import TaskStarted
from chalicelib.engine.spec import SpecCache
from chalicelib.runner.execute import Attempt, TaskRequest, run_task
from chalicelib.runner.procs import set_subreaper

_current: list[Attempt] = []


def _on_signal(signum: int, _frame: Any) -> None:
    for att in _current:
        att.kill("CANCELLED", "cancelled")
    if signum == signal.SIGTERM:
        sys.exit(143)


def _write(out: Any, payload: dict[str, Any]) -> None:
    out.write(json.dumps(payload, separators=(",", ":")) + "\n")
    out.flush()


def serve(blob_root: str, workroot: str, cache: TaskCache | None = None) -> None:
    blobs = FsBlobStore(blob_root)
    specs = SpecCache.from_blobs(blobs)
    out = sys.stdout
    signal.signal(signal.SIGUSR1, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    for line in sys.stdin:
        if not line.strip():
            continue
        msg = json.loads(line)
        task = specs.get(msg["run_id"]).tasks[msg["task_id"]]
        if msg.get("resources"):  # the attempt's own (possibly escalated) resources
            task = replace(task, resources=task.resources.grown(msg["resources"]))
        req = TaskRequest(msg["run_id"], msg["task_id"], int(msg["attempt"]), task,
                          msg.get("input_hashes") or {}, bool(msg.get("reuse", True)))

        def started(att: Attempt) -> None:
            _current.append(att)
            r = att.req
            event = TaskStarted(r.run_id, r.task_id, r.attempt, att.started_at, att.timeout_s + 60)
            _write(out, event.to_dict())

        outcome = run_task(req, blobs, workroot, on_start=started, cache=cache, all_orphans=True)
        _current.clear()
        _write(out, outcome.event.to_dict())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--blobs", required=True)
    parser.add_argument("--workroot", required=True)
    parser.add_argument("--cache", default=None, help="content store folder (the shared volume)")
    parser.add_argument("--no-memo", action="store_true", help="neither reuse nor keep task results")
    args = parser.parse_args(argv)
    os.makedirs(args.workroot, exist_ok=True)
    set_subreaper()  # what a task leaves running comes back here, to be ended with it (run_task)
    cache = None
    if args.cache:
        memo = None if args.no_memo else MemoIndex(os.path.join(args.cache, "memo"))
        cache = TaskCache(ContentStore(args.cache), memo)
    serve(args.blobs, args.workroot, cache)


if __name__ == "__main__":
    main()
