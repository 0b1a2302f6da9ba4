"""Deleting runs: `updraft runs rm RUN...` and `updraft runs gc`, one body for any runtime.

A run's records (the StateStore's `delete_run`) and its blobs (`runs/RUN/...`: spec, data,
logs) go; the content-addressed cache (`cache prune` trims it) and the planner's history stay.
A RUNNING run is refused, naming `updraft cancel`: its executor would write into what is being
deleted. The blobs go first and the records last, so a delete cut short leaves the run listed
and the same command finishes it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from msgspec import Struct

from chalicelib.engine.records import RunRecord
from chalicelib.engine.states import TERMINAL_RUN
from chalicelib.errors import ConfigError, NotFoundError, RunBusyError
from chalicelib.service.runtime import Runtime

DAY_S = 86_400.0


class Removed(Struct, frozen=True):
    """One deleted run: its files and bytes, and how many of those bytes the disk got back
    (a file the cache shares with the run frees nothing until `cache prune`)."""

    run_id: str
    state: str
    files: int
    bytes: int
    freed_bytes: int


def run_prefix(run_id: str) -> str:
    return f"runs/{run_id}/"


def check_removable(rt: Runtime, run_ids: Sequence[str]) -> list[RunRecord]:
    """Every named run, when each can be deleted; else one error naming every run that
    cannot (unknown, or RUNNING with how to stop it), and nothing is deleted."""
    runs: list[RunRecord] = []
    unknown: list[str] = []
    running: list[str] = []
    for run_id in dict.fromkeys(run_ids):
        try:
            run = rt.store.get_run(run_id)
        except NotFoundError:
            unknown.append(run_id)
            continue
        if run.state not in TERMINAL_RUN:
            running.append(run_id)
        runs.append(run)
    if running:
        cancel = " ".join(f"`updraft cancel {r}`" for r in running)
        raise RunBusyError(f"run(s) {', '.join(running)} still RUNNING: {cancel} stops it, then delete it; "
                           "nothing was deleted")
    if unknown:
        raise NotFoundError(f"no run(s) {', '.join(unknown)}; `updraft runs` lists them; nothing was deleted")
    return runs


def remove_run(rt: Runtime, run: RunRecord, sizes: Iterable[tuple[int, int]] | None = None) -> Removed:
    """Delete one finished run (checked by `check_removable`): its blobs, then its records.
    `sizes` gives (bytes, freed bytes) per file where the runtime can tell; else every
    stored byte counts as freed."""
    prefix = run_prefix(run.run_id)
    stored = sizes if sizes is not None else ((n, n) for n in map(rt.blobs.size, rt.blobs.list(prefix)))
    measured = list(stored)
    rt.blobs.delete_prefix(prefix)
    rt.store.delete_run(run.run_id, TERMINAL_RUN)
    return Removed(run.run_id, run.state.value, len(measured), sum(b for b, _ in measured),
                   sum(f for _, f in measured))


def select_for_gc(runs: Sequence[RunRecord], keep: int | None, older_than_days: float | None,
                  now: float) -> list[RunRecord]:
    """The runs `runs gc` deletes, from `runs` newest first: those beyond the `keep` newest and
    (when given) created more than `older_than_days` ago; never a RUNNING one (it is neither
    deleted nor counted among those kept)."""
    if keep is None and older_than_days is None:
        raise ConfigError("runs gc needs --keep N (keep the N newest runs) or --older-than DAYS "
                          "(delete runs started more than DAYS ago), or both")
    finished = [r for r in runs if r.state in TERMINAL_RUN]
    doomed = finished[keep:] if keep is not None else finished
    if older_than_days is not None:
        cutoff = now - older_than_days * DAY_S
        doomed = [r for r in doomed if r.created_at < cutoff]
    return doomed
