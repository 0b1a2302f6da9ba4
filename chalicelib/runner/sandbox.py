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
from collections.abc import Collection, Mapping

from msgspec import Struct

from chalicelib.cache.copying import READ, copy_file, copy_hashing, hash_fd
from chalicelib.cache.hashing import TREE_PREFIX, file_sha256, tree_hash
from chalicelib.cache.stage import TaskCache
from chalicelib.engine.ports import BlobStore
from chalicelib.runner.keys import data_key
from chalicelib.runner.trees import TreeError, local_tree, tree_members
from chalicelib.workflow.model import Dep

TMP_NAME = ".updraft-tmp"
EMPTY_TREE = tree_hash({})  # a folder output with no files: known by its producer's hash only
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
        shutil.rmtree(box.root + ".deps", ignore_errors=True)  # an earlier slot's dependency copies
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
        cache: TaskCache | None = None, known: Mapping[str, str] | None = None, folders: Collection[str] = (),
    ) -> tuple[int, dict[str, str]]:
        """Place each input at its relative path (through the cache when given); a folder is
        found where no file is (runner/trees.py), and `folders` must be folders.

        Returns (bytes staged, {path: sha256} of the inputs whose content is known).
        """
        total = 0
        hashes: dict[str, str] = {}
        for path in paths:
            dest = os.path.join(self.root, path)
            source = sources.get(path) if sources else None
            known_sha = (known or {}).get(path)
            try:
                if source is not None and source.startswith("file://"):
                    _remove_any(dest)
                    local = source[len("file://"):]
                    if os.path.isdir(local):
                        total += sum(copy_file(os.path.join(local, rel), os.path.join(dest, rel))
                                     for rel in local_tree(local))
                    else:
                        total += copy_file(local, dest)
                    continue
                key = source or data_key(run_id, path)
                if path in folders and (known_sha is None or not known_sha.startswith(TREE_PREFIX)):
                    members = tree_members(blobs, key)
                    if not members:
                        what = "a file" if blobs.exists(key) else "not there"
                        raise TreeError(f"it is declared a folder (a trailing '/') but is {what}")
                elif known_sha is None or not known_sha.startswith(TREE_PREFIX):
                    try:
                        if cache is not None:
                            sha, size = cache.stage_blob(blobs, key, dest, known_sha)
                            hashes[path] = sha
                            total += size
                        else:
                            total += blobs.get_file(key, dest)
                        continue
                    except Exception:
                        if known_sha is not None or not (members := tree_members(blobs, key)):
                            raise  # not a folder either: the file's own error
                else:
                    members = tree_members(blobs, key)
                    if not members and known_sha == EMPTY_TREE:  # an empty folder output: no objects
                        os.makedirs(dest, exist_ok=True)
                        hashes[path] = known_sha
                        continue
                    if not members:
                        raise TreeError(f"folder {key!r} is gone from the blob store")
                size, tree = self._stage_tree(blobs, members, dest, cache, known_sha)
                total += size
                if cache is not None:
                    hashes[path] = tree
            except Exception as exc:
                raise StageError("STAGE_IN", f"could not stage input {path!r}: {exc}") from exc
        return total, hashes

    def _stage_tree(
        self, blobs: BlobStore, members: Mapping[str, str], dest: str, cache: TaskCache | None,
        known_sha: str | None,
    ) -> tuple[int, str]:
        """Private copies of a folder's files under `dest`: (bytes, tree hash). Through the
        cache when its manifest is known there, else fetched and hashed file by file."""
        if cache is not None and known_sha is not None:
            staged = cache.stage_tree(blobs, members, dest, known_sha)
            if staged is not None:
                return staged, known_sha
        total = 0
        manifest: dict[str, str] = {}
        for rel, key in sorted(members.items()):
            target = os.path.join(dest, rel)
            total += blobs.get_file(key, target)
            manifest[rel] = file_sha256(target)
        if cache is not None:
            cache.stats.misses += 1
            cache.stats.bytes_from_origin += total
            cache.add_manifest(manifest)
        return total, tree_hash(manifest)

    def copy_deps(self, deps: tuple[Dep, ...]) -> int:
        """Without a cache: copy each dependency from its source, every time (the baseline)."""
        total = 0
        for dep in deps:
            name, source = dep.name, dep.source
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
                raise StageError("STAGE_IN", f"could not copy dependency {dep.spelling!r}: {exc}") from exc
        return total

    def stage_deps(self, deps: tuple[Dep, ...], cache: TaskCache) -> dict[str, str]:
        """Stage implicit dependencies (tools, databases) through the cache; {name: sha256}."""
        hashes: dict[str, str] = {}
        for dep in deps:
            try:
                hashes.update(cache.stage_dep(dep.name, dep.source, os.path.join(self.root, dep.name)))
            except Exception as exc:
                raise StageError("STAGE_IN", f"could not stage dependency {dep.spelling!r}: {exc}") from exc
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
                    unsafe.append(path)  # leading out, or to a folder: a folder output is a real one
                continue
            if not os.path.isfile(full) and not os.path.isdir(full):
                missing.append(path)
        return missing, unsafe

    def not_folders(self, folders: Collection[str], outputs: tuple[str, ...]) -> list[str]:
        """The outputs declared as folders that the task made files."""
        return [p for p in outputs if p in folders and not os.path.isdir(os.path.join(self.root, p))]

    def stage_out(
        self, blobs: BlobStore, run_id: str, outputs: tuple[str, ...], cache: TaskCache | None = None
    ) -> tuple[int, dict[str, str]]:
        """Store each output (adding it to the cache when given); (bytes, {path: sha256})."""
        total = 0
        hashes: dict[str, str] = {}
        if not outputs:
            return total, hashes
        real_root = self.real_root
        folders = [p for p in outputs if os.path.isdir(os.path.join(self.root, p))
                   and not os.path.islink(os.path.join(self.root, p))]
        within = _within_folders(outputs, folders)  # listed files of a listed folder: stored with it
        for path in outputs:
            if path in within:
                continue
            if path in folders:
                size, manifest = self._store_tree(blobs, run_id, path, cache)
                total += size
                hashes[path] = tree_hash(manifest)
                for inner in within:
                    if inner.startswith(path + "/") and (h := _inner_hash(manifest, inner[len(path) + 1:])):
                        hashes[inner] = h
                continue
            sha, size = self._store_file(blobs, run_id, path, path, real_root, cache)
            hashes[path] = sha
            total += size
        missing = [p for p in within if p not in hashes]
        if missing:
            raise StageError("MISSING_OUTPUT", f"exited 0 but did not write declared output(s): {missing}")
        return total, hashes

    def _store_file(
        self, blobs: BlobStore, run_id: str, path: str, name: str, real_root: str, cache: TaskCache | None,
    ) -> tuple[str, int]:
        """Take sandbox file `path` and store it as data `name`: (sha256, bytes)."""
        try:
            sha, size = self._take(path, real_root)
        except StageError:
            _remove_any(self.out_path)
            raise
        except OSError as exc:
            _remove_any(self.out_path)
            raise StageError("STAGE_OUT", f"could not store output {name!r}: {exc}") from exc
        try:
            if cache is not None:
                cache.add_output(self.out_path, sha)
            blobs.put_file(data_key(run_id, path), self.out_path, move=True)  # gone from out_path
        except Exception as exc:
            _remove_any(self.out_path)
            raise StageError("STAGE_OUT", f"could not store output {name!r}: {exc}") from exc
        return sha, size

    def _store_tree(
        self, blobs: BlobStore, run_id: str, path: str, cache: TaskCache | None,
    ) -> tuple[int, dict[str, str]]:
        """Store folder output `path` file by file, each under the rules for one output file;
        a symlink to a folder inside it is refused. (bytes, manifest)."""
        real_root = self.real_root
        total = 0
        manifest: dict[str, str] = {}
        top = os.path.join(self.root, path)
        for dirpath, dirs, files in os.walk(top):
            dirs.sort()
            for name in dirs:
                if os.path.islink(os.path.join(dirpath, name)):
                    rel = os.path.relpath(os.path.join(dirpath, name), self.root)
                    raise StageError("UNSAFE_OUTPUT", f"output {path!r} holds {rel!r}, a symlink to a folder")
            for name in sorted(files):
                rel = os.path.relpath(os.path.join(dirpath, name), self.root).replace(os.sep, "/")
                if not os.path.islink(os.path.join(dirpath, name)) and not os.path.isfile(os.path.join(dirpath, name)):
                    continue  # a fifo or socket: not data
                sha, size = self._store_file(blobs, run_id, rel, path, real_root, cache)
                manifest[rel[len(path) + 1:]] = sha
                total += size
        if cache is not None:
            cache.add_manifest(manifest)
        return total, manifest

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


def _within_folders(outputs: tuple[str, ...], folders: list[str]) -> set[str]:
    """The outputs inside another output that is a folder (Makeflow's `d d/1.txt:`)."""
    if not folders:
        return set()
    return {p for p in outputs if any(p.startswith(f + "/") for f in folders)}


def _inner_hash(manifest: dict[str, str], rel: str) -> str:
    """The hash of `rel` inside a stored folder: a file's sha256, or a subfolder's tree hash."""
    if rel in manifest:
        return manifest[rel]
    sub = {r[len(rel) + 1:]: sha for r, sha in manifest.items() if r.startswith(rel + "/")}
    return tree_hash(sub) if sub else ""


def _inside(path: str, real_root: str) -> bool:
    return path.startswith(real_root + os.sep)


def dir_size(path: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)


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
