"""Filesystem blob store: key -> file under a root folder. Writes are atomic (temp + rename).

Files come in and go out as private copies (a reflink where the filesystem offers one), never
hard links: a stored blob shares no inode with the user's file it came from nor with the
sandbox it is staged into, so a task writing to its input changes neither. `put_file(move=
True)` renames the caller's own file in (no copy): the runner only moves files it has made
its own (Sandbox.stage_out).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from collections.abc import Iterator

from chalicelib.cache.copying import READ, copy_fd
from chalicelib.engine.blob_keys import check_key, check_own_prefix, check_prefix
from chalicelib.errors import NotFoundError

# what opening a key that is not a stored file raises: none there, a folder of other keys, or a
# name below a key (a file where a folder would be)
_NOT_A_BLOB = (FileNotFoundError, IsADirectoryError, NotADirectoryError)


class FsBlobStore:
    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        os.makedirs(self.root, exist_ok=True)

    def path(self, key: str) -> str:
        return os.path.join(self.root, check_key(key))

    def _tmp_beside(self, final: str) -> str:
        os.makedirs(os.path.dirname(final), exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=os.path.dirname(final))
        os.close(fd)
        return tmp

    def put_bytes(self, key: str, data: bytes) -> None:
        final = self.path(key)
        tmp = self._tmp_beside(final)
        try:
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, final)
        except BaseException:
            _unlink(tmp)
            raise

    def _missing(self, key: str) -> NotFoundError:
        return NotFoundError(f"no blob {key!r} under {self.root}")

    def size(self, key: str) -> int:
        try:
            st = os.stat(self.path(key))
        except _NOT_A_BLOB:
            raise self._missing(key) from None
        if not stat.S_ISREG(st.st_mode):
            raise self._missing(key)
        return st.st_size

    def get_bytes(self, key: str) -> bytes:
        try:
            with open(self.path(key), "rb") as fh:
                return fh.read()
        except _NOT_A_BLOB:
            raise self._missing(key) from None

    def get_range(self, key: str, start: int, length: int) -> bytes:
        """`length` bytes from offset `start` (fewer at the end): a log's tail without reading it all."""
        try:
            with open(self.path(key), "rb") as fh:
                fh.seek(start)
                return fh.read(length)
        except _NOT_A_BLOB:
            raise self._missing(key) from None

    def put_file(self, key: str, path: str, move: bool = False) -> int:
        final = self.path(key)
        size = os.path.getsize(path)
        if move:
            try:
                try:
                    os.replace(path, final)
                except FileNotFoundError:  # the key's folder is new (or `path` is gone: raised again)
                    os.makedirs(os.path.dirname(final), exist_ok=True)
                    os.replace(path, final)
                return size
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    raise
        _copy_via_tmp(path, self._tmp_beside(final), final)
        if move:
            _unlink(path)
        return size

    def get_file(self, key: str, dest: str) -> int:
        """A private copy at `dest`, made beside it and renamed into place: no partly written
        `dest` is ever seen."""
        src = self.path(key)
        size = self.size(key)
        os.makedirs(os.path.dirname(dest) or ".", exist_ok=True)
        _copy_via_tmp(src, self._tmp_beside(dest), dest)
        return size

    def exists(self, key: str) -> bool:
        return os.path.isfile(self.path(key))

    def list(self, prefix: str) -> Iterator[str]:
        """The keys that start with `prefix`, in sorted order (as S3 lists them)."""
        base = self.root
        check_prefix(prefix)
        start = os.path.join(base, os.path.dirname(prefix)) if "/" in prefix else base
        keys = []
        for dirpath, _dirs, files in os.walk(start):
            for name in files:
                if name.startswith(".tmp-"):
                    continue
                key = os.path.relpath(os.path.join(dirpath, name), base).replace(os.sep, "/")
                if key.startswith(prefix):
                    keys.append(key)
        keys.sort()
        yield from keys

    def delete_prefix(self, prefix: str) -> int:
        """Delete the keys, and the folders that held only them (a deleted run leaves no empty
        `runs/RUN/data/...` tree behind; the root stays)."""
        keys = list(self.list(check_own_prefix(prefix)))
        folders: set[str] = set()
        for key in keys:
            _unlink(self.path(key))
            folders.add(os.path.dirname(self.path(key)))
        for folder in sorted(folders, key=len, reverse=True):
            while folder != self.root and folder.startswith(self.root + os.sep):
                try:
                    os.rmdir(folder)  # only an empty one: another key's folder stays
                except OSError:
                    break
                folder = os.path.dirname(folder)
        return len(keys)


def _copy_via_tmp(src: str, tmp: str, final: str) -> None:
    try:
        fd = os.open(src, READ)
        try:
            out = os.open(tmp, os.O_WRONLY | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                copy_fd(fd, out)
            finally:
                os.close(out)
        finally:
            os.close(fd)
        os.replace(tmp, final)
    except BaseException:
        _unlink(tmp)
        raise


def _unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
