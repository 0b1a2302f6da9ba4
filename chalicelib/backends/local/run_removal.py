"""Deleting local runs (`updraft runs rm`, `runs gc`): the run service's delete
(service/cleanup.py) under the run's lock, with the bytes the disk really gets back.

A run's stored files may be hard links of the cache's objects (the cache keeps one copy of
each content): deleting the run frees a file's bytes only when the run held its last link.
The lock (the one an executor holds) keeps `resume` from starting the run while it goes.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from chalicelib.service.cleanup import Removed, check_removable, remove_run, run_prefix

if TYPE_CHECKING:
    from chalicelib.backends.local.runtime import LocalRuntime


def file_sizes(folder: str) -> Iterator[tuple[int, int]]:
    """(bytes, bytes freed by deleting it) of each file under `folder`."""
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(FileNotFoundError):
                st = os.lstat(os.path.join(dirpath, name))
                yield st.st_size, st.st_size if st.st_nlink <= 1 else 0


def remove_runs(rt: LocalRuntime, run_ids: Sequence[str]) -> list[Removed]:
    """Delete the named runs (all checked first: one unknown or RUNNING run and none goes)."""
    removed: list[Removed] = []
    for run in check_removable(rt, run_ids):
        folder = os.path.join(rt.blob_root, run_prefix(run.run_id))
        with rt.owning(run.run_id):  # RunBusyError while an executor holds it
            removed.append(remove_run(rt, rt.store.get_run(run.run_id), list(file_sizes(folder))))
            shutil.rmtree(folder, ignore_errors=True)  # what no key names: a copy cut short
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(rt.workdir, "locks", f"{run.run_id}.lock"))
    return removed
