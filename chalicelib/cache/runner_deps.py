"""Large read-only dependencies shared by the tasks of one runner, verified after each task.

Copying a 222 MB BLAST database into every sandbox (issue 22: never a link to the cache) made
the dependency cache slow again. A *runner* - a process or a reusable sandbox slot that runs one
task at a time - keeps one read-only copy of each dependency file it has staged, outside any
sandbox, and a task's sandbox gets a symlink to it:

    <slot>.deps/<sha256>                      (a local function-pool slot)
    <workroot>/.runner-deps/<pid>.<tid>/<sha256>  (a process: container worker, task function, Fargate worker)

Why a task cannot change what another task sees: the copy is not the cache object (the cache,
the blob store and the user's files stay out of reach, as before), and the runner runs one
task at a time, so the only task that could have changed the copy is the one that just ran.
After each task, before the next is staged, the copy's stat (size, mtime, ctime: a write,
truncate, chmod, utime or new hard link moves ctime, which no unprivileged process can set
back) is compared with the one recorded when the runner verified it against its hash; a copy
that changed is removed (repaired), and the next task gets a fresh, verified one. To close
the window where a change in the same clock tick as the copy's creation would leave ctime
equal, a new copy is used only once the filesystem's clock has moved past its ctime.

What a task sees: a symlink (a tool that opens its database reads the runner's copy). Symlinks,
unlike hard links, do not change the target's ctime when the sandbox is emptied, so an
untouched copy stays verified without re-hashing. A task that chmods and writes through the
symlink changes only the runner's copy, which is then discarded: the same outcome as writing to
a private copy. Concurrent tasks never share a copy (one per runner), so even during the task
no other task can observe the change.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable

from chalicelib.cache.hashing import known_digest, note

RUNNER_DIR = ".runner-deps"


class RunnerDeps:
    """The read-only dependency copies of one runner (one task at a time)."""

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        os.makedirs(self.root, exist_ok=True)
        self.in_use: set[str] = set()  # what the current task was given

    @classmethod
    def for_process(cls, workroot: str) -> RunnerDeps:
        """This thread's copies under `workroot` (a process runs one task at a time per thread:
        in production one in all; test harnesses run several "functions" in threads); those of
        processes that died are removed."""
        parent = os.path.join(workroot, RUNNER_DIR)
        with contextlib.suppress(FileNotFoundError):
            for name in os.listdir(parent):
                pid = name.split(".", 1)[0]
                if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
                    shutil.rmtree(os.path.join(parent, name), ignore_errors=True)
        return cls(os.path.join(parent, f"{os.getpid()}.{threading.get_native_id()}"))

    def path(self, sha: str) -> str:
        return os.path.join(self.root, sha)

    def _verified(self, sha: str) -> bool:
        try:
            st = os.lstat(self.path(sha))
        except FileNotFoundError:
            return False
        return known_digest(st) == sha and st.st_nlink == 1 and not st.st_mode & 0o222

    def provide(self, sha: str, make: Callable[[str], object], dest: str) -> None:
        """Symlink `dest` to this runner's verified copy of `sha`, made first with
        `make(new_path)` (which writes a verified private copy at the new path) if needed."""
        if not self._verified(sha):
            self.discard(sha)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=self.root)
            os.close(fd)
            os.unlink(tmp)
            try:
                make(tmp)
                os.chmod(tmp, 0o444)
                os.replace(tmp, self.path(sha))
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
                raise
            st = os.lstat(self.path(sha))
            note(st, sha)  # verified by `make`; from now on stat-only
            _past(st.st_ctime_ns, self.root)
        os.makedirs(os.path.dirname(dest) or ".", exist_ok=True)
        os.symlink(self.path(sha), dest)
        self.in_use.add(sha)

    def check(self) -> list[str]:
        """After a task: the copies it was given that changed, removed (repaired)."""
        changed = sorted(sha for sha in self.in_use if not self._verified(sha))
        for sha in changed:
            self.discard(sha)
        self.in_use = set()
        return changed

    def discard(self, sha: str) -> None:
        path = self.path(sha)
        with contextlib.suppress(FileNotFoundError):
            try:
                os.unlink(path)
            except PermissionError:  # a task may have made a folder of it, or taken write permission away
                shutil.rmtree(path, ignore_errors=True)


def _past(ctime_ns: int, folder: str, limit_s: float = 2.0) -> None:
    """Wait until a change made now in `folder` would get a later ctime than `ctime_ns` (the
    filesystem's clock is coarse: a jiffy, or a second without nanosecond timestamps)."""
    deadline = time.monotonic() + limit_s
    probe = os.path.join(folder, ".clock")
    with open(probe, "ab"):
        pass
    while True:
        os.utime(probe)  # ctime := the filesystem's now
        if os.stat(probe).st_ctime_ns > ctime_ns or time.monotonic() > deadline:
            return
        time.sleep(0.002)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
