"""A task attempt's sandbox: a private folder where inputs are staged by relative path.

Only declared inputs are visible to the task and only declared outputs are kept. Inputs are
private copies (chalicelib/cache/copying.py): nothing the task writes reaches the user's
files, the blob store, the cache or another run.

An output must be a regular file inside the sandbox: a symlink pointing elsewhere - the
output itself, or a folder on its path - is refused, so a task cannot publish a file it does
not own. Stage-out never follows, links or changes a file outside the sandbox: an output is
first renamed out of the task's reach and checked there (a regular file with one link: then
it is the runner's own and is moved into the store, no copy); anything else - a hard link
that may share its inode with a file outside, a symlink to a file inside - is copied (its
bytes, hashed on the way), never linked or chmod-ed.

The engine's own files live beside the sandbox, not in it: the task's log is `<root>.log`
and stage-out's private name is `<root>.out`. Names starting with `.updraft` are refused
as data paths at validation (the sandbox's `.updraft-tmp` is the task's TMPDIR).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from collections.abc import Mapping

from msgspec import Struct

from chalicelib.cache.copying import READ, copy_file, copy_hashing, hash_fd
from chalicelib.cache.stage import TaskCache
from chalicelib.ports import BlobStore
from chalicelib.runner.keys import data_key

TMP_NAME = ".updraft-tmp"
RESERVED_PREFIX = ".updraft"  # data paths may not start with it (validate.path_problem)


class StageError(Exception):
    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)


class Sandbox(Struct):
    """`create` makes a fresh folder per attempt; `slot` makes one folder that a pool slot
    reuses, emptied between attempts (like a warm Lambda's /tmp, and far cheaper than
    creating and removing folders for every short task)."""

    root: str
    reusable: bool = False
    _real_root: str = ""  # realpath(root), resolved once: the runner made every folder on it
    _pristine: bool = False  # measure() found nothing but the (empty) tmp folder and the log
    log_size: int | None = None  # the log's size as measure() found it (None: not measured)

    def measure(self) -> int:
        """Bytes of regular files in the sandbox and the log (symlinks not followed); also
        notes whether the task left anything behind, so `remove` can skip emptying a slot
        that is clean, and the log's size."""
        total = 0
        has_tmp = False  # a task may have removed its tmp folder
        pristine = True
        self.log_size = None
        try:
            st = os.lstat(self.log_path)
            if stat.S_ISREG(st.st_mode) and st.st_nlink == 1:
                self.log_size = st.st_size
                total += st.st_size
            else:
                pristine = False  # replaced by something else (or linked): `remove` takes it away
        except OSError:
            pass
        stack = [self.root]
        while stack:
            folder = stack.pop()
            top = folder == self.root
            try:
                with os.scandir(folder) as it:
                    for entry in it:
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(entry.path)
                            if top and entry.name == TMP_NAME:
                                has_tmp = True
                                continue
                        elif entry.is_file(follow_symlinks=False):
                            total += entry.stat(follow_symlinks=False).st_size
                        pristine = False
            except OSError:
                pristine = False
        self._pristine = pristine and has_tmp
        return total

    @classmethod
    def create(cls, workroot: str, run_id: str, task_id: str, attempt: int) -> Sandbox:
        box = cls(os.path.join(workroot, run_id, f"{task_id}.{attempt}"))
        box._clear_all()  # a crashed earlier try of the same attempt (its log, too)
        os.makedirs(box.tmp_path)
        return box

    @classmethod
    def slot(cls, workroot: str, name: str) -> Sandbox:
        box = cls(os.path.join(workroot, "slots", name), reusable=True)
        box._clear_all()
        os.makedirs(box.tmp_path)
        return box

    def _clear_all(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
        for path in (self.log_path, self.out_path):
            _remove_any(path)

    @property
    def log_path(self) -> str:
        """The task's stdout and stderr: beside the sandbox, not in it."""
        return self.root + ".log"

    @property
    def out_path(self) -> str:
        """Where stage-out takes an output out of the task's reach before storing it."""
        return self.root + ".out"

    @property
    def tmp_path(self) -> str:
        return os.path.join(self.root, TMP_NAME)

    def stage_in(
        self, blobs: BlobStore, run_id: str, paths: tuple[str, ...], sources: Mapping[str, str] | None = None,
        cache: TaskCache | None = None, known: Mapping[str, str] | None = None,
    ) -> tuple[int, dict[str, str]]:
        """Place each input at its relative path (through the cache when given).

        Returns (bytes staged, {path: sha256} of the inputs whose content is known).
        """
        total = 0
        hashes: dict[str, str] = {}
        for path in paths:
            dest = os.path.join(self.root, path)
            source = sources.get(path) if sources else None
            try:
                if source is not None and source.startswith("file://"):
                    _remove_any(dest)
                    total += copy_file(source[len("file://"):], dest)
                elif cache is not None:
                    sha, size = cache.stage_blob(blobs, source or data_key(run_id, path), dest,
                                                 (known or {}).get(path))
                    hashes[path] = sha
                    total += size
                else:
                    total += blobs.get_file(source or data_key(run_id, path), dest)
            except Exception as exc:
                raise StageError("STAGE_IN", f"could not stage input {path!r}: {exc}") from exc
        return total, hashes

    def copy_deps(self, deps: tuple[str, ...]) -> int:
        """Without a cache: copy each dependency from its source, every time (the baseline)."""
        total = 0
        for entry in deps:
            name, source = parse_dep(entry)
            dest = os.path.join(self.root, name)
            try:
                if os.path.isdir(source):
                    shutil.copytree(source, dest, dirs_exist_ok=True)
                    total += dir_size(dest)
                else:
                    os.makedirs(os.path.dirname(dest) or ".", exist_ok=True)
                    shutil.copyfile(source, dest)
                    total += os.path.getsize(dest)
            except Exception as exc:
                raise StageError("STAGE_IN", f"could not copy dependency {entry!r}: {exc}") from exc
        return total

    def stage_deps(self, deps: tuple[str, ...], cache: TaskCache) -> dict[str, str]:
        """Stage implicit dependencies (tools, databases) through the cache; {name: sha256}."""
        hashes: dict[str, str] = {}
        for entry in deps:
            name, source = parse_dep(entry)
            try:
                hashes.update(cache.stage_dep(name, source, os.path.join(self.root, name)))
            except Exception as exc:
                raise StageError("STAGE_IN", f"could not stage dependency {entry!r}: {exc}") from exc
        return hashes

    def check_outputs(self, outputs: tuple[str, ...]) -> tuple[list[str], list[str]]:
        """(missing, unsafe) declared outputs."""
        missing: list[str] = []
        unsafe: list[str] = []
        if not outputs:
            return missing, unsafe
        real_root = self.real_root
        for path in outputs:
            full = os.path.join(self.root, path)
            if not self._folder_inside(path):
                unsafe.append(path)  # a folder on the way is a symlink leading out
                continue
            if os.path.islink(full):
                target = os.path.realpath(full)
                if not _inside(target, real_root) or not os.path.isfile(target):
                    unsafe.append(path)
                continue
            if not os.path.isfile(full):
                missing.append(path)
        return missing, unsafe

    def stage_out(
        self, blobs: BlobStore, run_id: str, outputs: tuple[str, ...], cache: TaskCache | None = None
    ) -> tuple[int, dict[str, str]]:
        """Store each output (adding it to the cache when given); (bytes, {path: sha256})."""
        total = 0
        hashes: dict[str, str] = {}
        if not outputs:
            return total, hashes
        real_root = self.real_root
        for path in outputs:
            try:
                sha, size = self._take(path, real_root)
            except StageError:
                _remove_any(self.out_path)
                raise
            except OSError as exc:
                _remove_any(self.out_path)
                raise StageError("STAGE_OUT", f"could not store output {path!r}: {exc}") from exc
            try:
                if cache is not None:
                    cache.add_output(self.out_path, sha)
                blobs.put_file(data_key(run_id, path), self.out_path, move=True)  # gone from out_path
            except Exception as exc:
                _remove_any(self.out_path)
                raise StageError("STAGE_OUT", f"could not store output {path!r}: {exc}") from exc
            hashes[path] = sha
            total += size
        return total, hashes

    @property
    def real_root(self) -> str:
        if not self._real_root:
            self._real_root = os.path.realpath(self.root)
        return self._real_root

    def _folder_inside(self, path: str) -> bool:
        """Whether the folders on `path`'s way lead to a folder inside the sandbox (a task may
        have made one of them a symlink). Top-level outputs need no system call."""
        parent = os.path.dirname(path)
        if not parent:
            return True
        folder = os.path.realpath(os.path.join(self.root, parent))
        return folder == self.real_root or _inside(folder, self.real_root)

    def _take(self, path: str, real_root: str) -> tuple[str, int]:
        """Put output `path`'s content at `out_path`, as a regular file with one link that no
        task holds a name for, and hash it: (sha256, bytes). Never follows a link out of the
        sandbox, never changes a file outside it."""
        full = os.path.join(self.root, path)
        if not self._folder_inside(path):
            raise StageError("UNSAFE_OUTPUT", f"output {path!r} leads outside the sandbox")
        if os.path.islink(full):  # a link to another file in the sandbox: copy what it names
            target = os.path.realpath(full)
            if not _inside(target, real_root):
                raise StageError("UNSAFE_OUTPUT", f"output {path!r} is a symlink leading outside the sandbox")
            return self._copy_out(target, path)
        try:
            os.rename(full, self.out_path)
        except IsADirectoryError:  # a folder left at out_path (a task can reach it): clear it
            _remove_any(self.out_path)
            os.rename(full, self.out_path)  # out of the task's namespace: the name `full` is gone
        try:
            fd = os.open(self.out_path, READ | os.O_NOFOLLOW)
        except OSError as exc:  # replaced by a symlink between the check and the rename
            raise StageError("UNSAFE_OUTPUT", f"output {path!r} changed while it was stored: {exc}") from exc
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise StageError("MISSING_OUTPUT", f"output {path!r} is not a regular file")
            if st.st_nlink == 1:  # ours alone: hash it where it is
                return hash_fd(fd)
            # a hard link: the other name may be a file outside (the user's, another run's),
            # which stage-out must not take over or make read-only: store a copy of the bytes
            os.unlink(self.out_path)
            return copy_hashing(fd, self.out_path)
        finally:
            os.close(fd)

    def _copy_out(self, target: str, path: str) -> tuple[str, int]:
        try:
            fd = os.open(target, READ | os.O_NOFOLLOW)
        except OSError as exc:
            raise StageError("UNSAFE_OUTPUT", f"output {path!r} is a symlink to something unreadable: {exc}") from exc
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise StageError("UNSAFE_OUTPUT", f"output {path!r} is a symlink to something not a file")
            _remove_any(self.out_path)
            return copy_hashing(fd, self.out_path)
        finally:
            os.close(fd)

    def reuse_as_is(self) -> bool:
        """True (and ready for the next attempt) when this is a slot folder measured clean: the
        task left nothing behind and stage-out / the log store only took files away. False
        when `remove` has work to do."""
        if not (self.reusable and self._pristine):
            return False
        self._pristine = False
        self.log_size = None
        return True

    def remove(self) -> None:
        """After an attempt: delete a per-attempt folder, or empty a slot for the next one."""
        if not self.reusable:
            self._clear_all()
            return
        if self.reuse_as_is():
            return
        self.log_size = None
        for path in (self.log_path, self.out_path):
            _remove_any(path)
        _empty(self.root, keep={TMP_NAME})
        _empty(self.tmp_path, keep=set())
        os.makedirs(self.tmp_path, exist_ok=True)  # a task may have removed it


def _empty(folder: str, keep: set[str]) -> None:
    try:
        with os.scandir(folder) as it:
            for entry in it:
                if entry.name in keep:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    os.unlink(entry.path)
    except FileNotFoundError:
        pass


def _inside(path: str, real_root: str) -> bool:
    return path.startswith(real_root + os.sep)


def dir_size(path: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)


def parse_dep(entry: str) -> tuple[str, str]:
    """'NAME=SOURCE' or 'SOURCE' (named by its basename) -> (name in the sandbox, source)."""
    name, sep, source = entry.partition("=")
    if not sep or "://" in name:
        source = entry
        name = os.path.basename(entry.rstrip("/"))
    return name, source


def _remove_any(path: str) -> None:
    """Remove whatever is at `path` (file, link or folder), if anything."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except (IsADirectoryError, PermissionError):
        shutil.rmtree(path, ignore_errors=True)
    except OSError:
        with contextlib.suppress(OSError):
            shutil.rmtree(path)
