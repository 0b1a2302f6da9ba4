"""Keeping a per-instance cache tier within a byte budget, without touching what is in use.

The task function's /tmp (512 MB to 10 GB of ephemeral storage) and a worker's disk hold both
the local cache tier and the sandbox of the task being staged. Before staging a task, the
runner evicts least-recently-used objects from that tier until it holds at most
`budget - need` bytes (`need`: the task's declared disk, where its inputs, outputs and scratch
go), and, when the filesystem has less than `need` free, until it has. An object some running
task is using is never evicted, whatever the budget: eviction stops short instead (the task
may then run out of disk, which its own disk check reports).

"In use" is a pin: a shared `flock` on `pins/<sha>` of the store, held from the moment a task
starts staging the object until the task ends, plus a count in this process (flock locks of
one process on different open files do conflict, but a count is cheaper to ask). The evictor
takes an exclusive, non-blocking flock on the same file before unlinking: if it cannot, the
object is in use and stays. A pinner that arrives while the evictor holds the lock waits, then
finds the object gone and fetches it again, as after any miss. The kernel drops the locks of a
process that dies, so a crashed task pins nothing. Locks are per host: this is for the local
tiers, not the shared volume (EFS grows as needed and is not evicted here).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import threading

from msgspec import Struct, field

from chalicelib.cache.cas import ContentStore, Entry

log = logging.getLogger("updraft.cache")

_counts: dict[tuple[str, str], int] = {}
_counts_lock = threading.Lock()


def _pin_path(store: ContentStore, sha: str) -> str:
    store.path(sha)  # validates the digest
    return os.path.join(store.root, "pins", sha)


class Pins:
    """The objects of one store a task is using; `release` when the task has ended."""

    def __init__(self, store: ContentStore) -> None:
        self.store = store
        self._fds: dict[str, int] = {}
        os.makedirs(os.path.join(store.root, "pins"), exist_ok=True)

    def pin(self, sha: str) -> None:
        if sha in self._fds:
            return
        with _counts_lock:
            _counts[(self.store.root, sha)] = _counts.get((self.store.root, sha), 0) + 1
        try:
            fd = os.open(_pin_path(self.store, sha), os.O_RDONLY | os.O_CREAT, 0o644)
            fcntl.flock(fd, fcntl.LOCK_SH)  # waits while an evictor is removing it
        except BaseException:
            self._uncount(sha)
            raise
        self._fds[sha] = fd

    def release(self) -> None:
        for sha, fd in self._fds.items():
            os.close(fd)  # drops the flock
            self._uncount(sha)
        self._fds = {}

    def _uncount(self, sha: str) -> None:
        with _counts_lock:
            key = (self.store.root, sha)
            _counts[key] -= 1
            if not _counts[key]:
                del _counts[key]

    def __len__(self) -> int:
        return len(self._fds)


class Eviction(Struct):
    removed: list[Entry] = field(default_factory=list)
    kept_in_use: list[Entry] = field(default_factory=list)
    total_bytes: int = 0  # what the store holds afterwards
    limit_bytes: int = 0  # what it was to hold at most


def evict_to_budget(store: ContentStore, budget_bytes: int, need_bytes: int,
                    free_bytes: int | None = None) -> Eviction:
    """Remove least recently used objects nobody has pinned until the store holds at most
    `budget_bytes - need_bytes` and (when `free_bytes` of the filesystem is given) at least
    `need_bytes` are free."""
    entries = sorted(store.entries(), key=lambda e: e.used_at)
    total = sum(e.size for e in entries)
    limit = max(0, budget_bytes - need_bytes)
    if free_bytes is not None and free_bytes < need_bytes:
        limit = min(limit, max(0, total - (need_bytes - free_bytes)))
    out = Eviction(total_bytes=total, limit_bytes=limit)
    for entry in entries:
        if out.total_bytes <= limit:
            break
        if _remove_unless_pinned(store, entry.sha256):
            out.removed.append(entry)
            out.total_bytes -= entry.size
        else:
            out.kept_in_use.append(entry)
    if out.total_bytes > limit:
        log.warning("cache tier %s holds %d bytes, over its limit %d: the rest is in use",
                    store.root, out.total_bytes, limit)
    return out


def _remove_unless_pinned(store: ContentStore, sha: str) -> bool:
    with _counts_lock:
        if _counts.get((store.root, sha)):
            return False
    os.makedirs(os.path.join(store.root, "pins"), exist_ok=True)
    fd = os.open(_pin_path(store, sha), os.O_RDONLY | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # another process's task is using it
        with contextlib.suppress(FileNotFoundError):
            os.unlink(store.path(sha))
        return True
    finally:
        os.close(fd)


def make_room(store: ContentStore, budget_bytes: int, need_bytes: int) -> Eviction:
    """evict_to_budget with the filesystem's free space; budget 0: the filesystem's size."""
    usage = shutil.disk_usage(store.root)
    return evict_to_budget(store, budget_bytes or usage.total, need_bytes, usage.free)
