"""Process-tree measurements for enforcing memory limits (RSS of a process and its descendants),
and the orphans a task leaves (counted with it, killed when it ends)."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Collection, Iterator

TYPE_CHECKING = False  # not typing's: slot.py imports this module and starts faster without it
if TYPE_CHECKING:
    from typing import Any

_PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def children(pid: int) -> list[int]:
    """Pids of the processes `pid` started that still run (empty when it is gone)."""
    try:  # os.open, not open(): a text file object costs five times the read (called per task)
        fd = os.open(f"/proc/{pid}/task/{pid}/children", os.O_RDONLY)
    except OSError:
        return []
    try:
        data = b""
        while chunk := os.read(fd, 65536):
            data += chunk
        return [int(x) for x in data.split()]
    except OSError:
        return []
    finally:
        os.close(fd)


def tree(pid: int) -> Iterator[int]:
    """`pid` and each of its descendants still running, once each."""
    stack = [pid]
    seen: set[int] = set()
    while stack:
        p = stack.pop()
        if p in seen:
            continue
        seen.add(p)
        yield p
        stack.extend(children(p))


def tree_rss_kb(pid: int) -> int:
    """Resident set size of `pid` and all its descendants, in KiB (0 if it is gone)."""
    total = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/statm") as fh:
                total += int(fh.read().split()[1]) * _PAGE_KB
        except (OSError, IndexError, ValueError):
            continue
    return total


def dir_size_bytes(path: str) -> int:
    """Bytes used by regular files under `path` (symlinks not followed)."""
    total = 0
    stack = [path]
    while stack:
        try:
            with os.scandir(stack.pop()) as it:
                for entry in it:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
                    elif entry.is_file(follow_symlinks=False):
                        total += entry.stat(follow_symlinks=False).st_size
        except OSError:
            continue
    return total


# ---- a task's orphans -----------------------------------------------------------------------
#
# A task's process group is killed when it ends, but a descendant that started a session of its
# own (`setsid sleep 98 &`) or whose parent exited (a double fork) leaves both the group and the
# task's process tree: it is re-parented to the nearest ancestor that declared itself a "child
# subreaper" (prctl PR_SET_CHILD_SUBREAPER), else to init. Whatever spawns tasks declares itself
# one (the slots, the engine's loop, the workers, the task function), so that such orphans come
# back to it as children: their memory is counted with the task's (orphans_rss_kb) and they are
# killed and reaped when the task ends (sweep_orphans). See docs/reliability.md.

_PR_SET_CHILD_SUBREAPER, _PR_GET_CHILD_SUBREAPER = 36, 37


def _prctl() -> Any:
    try:
        import ctypes

        fn = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return fn


def set_subreaper(on: bool = True) -> bool:
    """Make this process the reaper of its descendants' orphans (Linux); False where it cannot."""
    fn = _prctl()
    return fn is not None and fn(_PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0) == 0


def is_subreaper() -> bool:
    import ctypes

    fn = _prctl()
    if fn is None:
        return False
    flag = ctypes.c_int(0)
    return fn(_PR_GET_CHILD_SUBREAPER, ctypes.byref(flag), 0, 0, 0) == 0 and flag.value != 0


def own_children(me: int = 0) -> list[int]:
    """Pids of the children of process `me` (default: this one) started by, or re-parented
    to, its main thread: the kernel gives a subreaper's orphans to its first live thread, and
    the spawners start tasks from their main thread."""
    return children(me or os.getpid())


def attempt_marker(run_id: str, task_id: str, attempt: int) -> tuple[bytes, ...]:
    """The environment entries every process of one attempt starts with (execute._task_env)."""
    return (b"UPDRAFT_RUN_ID=" + run_id.encode(), b"UPDRAFT_TASK_ID=" + os.fsencode(task_id),
            b"UPDRAFT_ATTEMPT=" + str(attempt).encode())


def run_marker(run_id: str) -> tuple[bytes, ...]:
    return (b"UPDRAFT_RUN_ID=" + run_id.encode(),)


def carries(pid: int, marker: tuple[bytes, ...]) -> bool:
    """Whether `pid` started with every entry of `marker` in its environment."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as fh:
            entries = set(fh.read().split(b"\0"))
    except OSError:
        return False
    return all(m in entries for m in marker)


def _orphans(keep: Collection[int], marker: tuple[bytes, ...] | None, parent: int = 0) -> list[int]:
    return [p for p in own_children(parent) if p not in keep and (marker is None or carries(p, marker))]


def orphans_rss_kb(keep: Collection[int], marker: tuple[bytes, ...] | None, parent: int = 0) -> int:
    """Resident set of the children of `parent` (default: this process) other than `keep`
    (with `marker`, only those carrying it) and of their descendants, in KiB."""
    return sum(tree_rss_kb(p) for p in _orphans(keep, marker, parent))


def sweep_orphans(keep: Collection[int], marker: tuple[bytes, ...] | None) -> int:
    """Kill this process's children other than `keep` (with `marker`, only those carrying it)
    with all their descendants, and reap them, until none is left; returns the largest peak
    RSS (KiB) among those reaped (0 when none). Needs set_subreaper() to see orphans at all."""
    peak = 0
    for _ in range(1000):  # each round kills what exists; a fork racing it is caught next round
        found = _orphans(keep, marker)
        if not found:
            break
        for child in found:
            for p in list(tree(child)):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(p, signal.SIGKILL)
        for child in found:
            with contextlib.suppress(ChildProcessError):
                peak = max(peak, os.wait4(child, 0)[2].ru_maxrss)
    return peak
