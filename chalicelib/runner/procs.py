"""Process-tree measurements for enforcing memory limits: RSS of a process and its descendants."""

from __future__ import annotations

import os
from collections.abc import Iterator

_PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def children(pid: int) -> list[int]:
    """Pids of the processes `pid` started that still run (empty when it is gone)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(x) for x in fh.read().split()]
    except OSError:
        return []


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
