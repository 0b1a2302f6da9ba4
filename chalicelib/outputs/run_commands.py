"""`updraft runs rm RUN...` and `updraft runs gc`: the CLI side of deleting runs (the work is
service/cleanup.py and backends/local/run_removal.py)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from chalicelib.errors import ConfigError
from chalicelib.service.cleanup import Removed, select_for_gc

LATEST = "latest"


def check_action_options(args: argparse.Namespace) -> None:
    """The options of `runs`, `runs rm` and `runs gc` each take only their own."""
    if args.action == "gc" and args.runs:  # (`updraft runs X` is refused by the parser: rm or gc)
        raise ConfigError(f"`updraft runs gc` takes no run ids ({' '.join(args.runs)}): it chooses by "
                          "--keep/--older-than; to delete named runs: updraft runs rm RUN...")
    if args.action == "rm" and not args.runs:
        raise ConfigError("name the runs to delete: updraft runs rm RUN... (`updraft runs` lists them)")
    if args.action != "gc" and (args.keep is not None or args.older_than is not None):
        raise ConfigError("--keep and --older-than are for `updraft runs gc`")
    if args.action is None and args.dry_run:
        raise ConfigError("--dry-run is for `updraft runs rm` and `updraft runs gc`")


def resolve(rt: Any, run_id: str) -> str:
    """`latest` is the newest run; any other id is itself."""
    if run_id != LATEST:
        return run_id
    from chalicelib.service.runs import latest_run_id

    return latest_run_id(rt, rt.workdir)


def run_action(args: argparse.Namespace, rt: Any) -> int:
    """`runs rm` / `runs gc` on the opened local runtime."""
    from chalicelib.backends.local.run_removal import remove_runs
    from chalicelib.service.cleanup import check_removable

    if args.action == "rm":
        run_ids = [resolve(rt, r) for r in args.runs]
        doomed = check_removable(rt, run_ids)
    else:
        runs = rt.store.list_runs(limit=1_000_000)
        doomed = select_for_gc(runs, args.keep, args.older_than, rt.clock())
    if args.dry_run:
        _report([Removed(r.run_id, r.state.value, 0, 0, 0) for r in doomed], args.json, dry_run=True)
        return 0
    _report(remove_runs(rt, [r.run_id for r in doomed]), args.json, dry_run=False)
    return 0


def _report(removed: Sequence[Removed], as_json: bool, dry_run: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps({"dry_run": dry_run, "runs": [
            {"run_id": r.run_id, "state": r.state, "files": r.files, "bytes": r.bytes,
             "freed_bytes": r.freed_bytes} for r in removed],
            "freed_bytes": sum(r.freed_bytes for r in removed)}) + "\n")
        return
    verb = "would delete" if dry_run else "deleted"
    for r in removed:
        size = "" if dry_run else f"  {r.files} file(s), {_mb(r.bytes)}"
        print(f"{verb} run {r.run_id} ({r.state}){size}")
    if dry_run:
        print(f"{len(removed)} run(s) would be deleted (--dry-run: nothing was)")
        return
    total = sum(r.bytes for r in removed)
    freed = sum(r.freed_bytes for r in removed)
    shared = f"; {_mb(total - freed)} of it shared with the cache stays until `updraft cache prune`" \
        if total > freed else ""
    print(f"{len(removed)} run(s) deleted, {_mb(freed)} freed{shared}")


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n:,} bytes"
