"""A content-addressed store on a shared volume (EFS in the cloud, a folder locally).

    objects/ab/abcdef...   one file per SHA-256, read-only, published atomically
    locks/abcdef....lock    POSIX record locks for single-flight fetches

A file is fetched from the origin at most once per volume, however many tasks and workers
want it at once: the first takes the object's lock (fcntl.lockf, which works on NFS/EFS and
is released by the kernel if the holder dies), fetches into a temp file, fsyncs, verifies the
hash and renames it into place; the others wait on the lock, then find the object.

Objects reach sandboxes as hard links (same filesystem) or copies, never symlinks, so
evicting an object while a task holds it is safe: the task's link keeps the data alive.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator

from msgspec import Struct

from chalicelib.cache.hashing import CHUNK, file_sha256, remember
from chalicelib.errors import UpdraftError


class CacheIntegrityError(UpdraftError):
    """Fetched bytes did not match the expected content hash."""


class Entry(Struct, frozen=True):
    sha256: str
    size: int
    used_at: float


class ContentStore:
    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        self.objects = os.path.join(self.root, "objects")
        self.locks = os.path.join(self.root, "locks")
        os.makedirs(self.objects, exist_ok=True)
        os.makedirs(self.locks, exist_ok=True)

    def path(self, sha: str) -> str:
        if len(sha) != 64 or not all(c in "0123456789abcdef" for c in sha):
            raise ValueError(f"not a sha256 hex digest: {sha!r}")
        return os.path.join(self.objects, sha[:2], sha)

    def has(self, sha: str) -> bool:
        return os.path.isfile(self.path(sha))

    def intact(self, sha: str) -> bool:
        """Whether the object is there and still hashes to its name; a damaged one (written to
        in place: its read-only mode does not stop root) is removed, so it is fetched again."""
        path = self.path(sha)
        try:
            if _sha_of(path) == sha:
                return True
        except OSError:
            return False
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        return False

    def _publish(self, tmp: str, sha: str) -> str:
        final = self.path(sha)
        os.makedirs(os.path.dirname(final), exist_ok=True)
        os.chmod(tmp, 0o444)
        os.replace(tmp, final)
        return final

    def _tmp(self) -> str:
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=self.objects)
        os.close(fd)
        return tmp

    def add_file(self, path: str, sha: str | None = None) -> tuple[str, int]:
        """Add a local file (hard-linked when possible, else copied and hashed on the way)."""
        if sha is not None and self.has(sha):
            return sha, os.path.getsize(path)
        tmp = self._tmp()
        try:
            try:
                os.unlink(tmp)
                os.link(path, tmp)
                if sha is None:
                    sha = file_sha256(path)
            except OSError:
                sha = _copy_hashing(path, tmp)
            size = os.path.getsize(tmp)
            if self.has(sha):
                os.unlink(tmp)
            else:
                self._publish(tmp, sha)
            return sha, size
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    @contextlib.contextmanager
    def _locked(self, sha: str) -> Iterator[None]:
        fd = os.open(os.path.join(self.locks, f"{sha}.lock"), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX)
            yield
        finally:
            with contextlib.suppress(OSError):
                fcntl.lockf(fd, fcntl.LOCK_UN)
            os.close(fd)

    def fetch(self, sha: str, fetcher: Callable[[str], object]) -> bool:
        """Make sure the object is present, calling `fetcher(tmp_path)` at most once per volume.

        Returns True if this call fetched it (a miss), False if it was there (a hit).
        The fetched bytes are verified against `sha` before they are published.
        """
        if self.has(sha):
            return False
        with self._locked(sha):
            if self.has(sha):  # another worker fetched it while we waited
                return False
            tmp = self._tmp()
            try:
                os.unlink(tmp)  # the name is reserved; the fetcher creates the file
                fetcher(tmp)
                got = _sha_of(tmp)
                if got != sha:
                    raise CacheIntegrityError(f"fetched object has sha256 {got}, expected {sha}")
                self._publish(tmp, sha)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
                raise
        return True

    def link_to(self, sha: str, dest: str) -> int:
        """Place the object at `dest` (hard link, else copy) and mark it used. Returns bytes."""
        src = self.path(sha)
        os.makedirs(os.path.dirname(dest) or ".", exist_ok=True)
        try:
            os.link(src, dest)
        except OSError:
            shutil.copyfile(src, dest)
        now = time.time()
        with contextlib.suppress(OSError):
            os.utime(src, (now, os.stat(src).st_mtime))  # atime = last use, for LRU
        size = os.path.getsize(dest)
        remember(dest, sha)
        return size

    def entries(self) -> list[Entry]:
        out = []
        for sub in os.scandir(self.objects):
            if not sub.is_dir():
                continue
            for obj in os.scandir(sub.path):
                st = obj.stat()
                out.append(Entry(obj.name, st.st_size, st.st_atime))
        return out

    def total_bytes(self) -> int:
        return sum(e.size for e in self.entries())

    def evict(self, max_bytes: int, keep: set[str] | None = None) -> list[Entry]:
        """Remove least recently used objects until the store fits `max_bytes`."""
        entries = sorted(self.entries(), key=lambda e: e.used_at)
        total = sum(e.size for e in entries)
        removed: list[Entry] = []
        for entry in entries:
            if total <= max_bytes:
                break
            if keep and entry.sha256 in keep:
                continue
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path(entry.sha256))
                total -= entry.size
                removed.append(entry)
        return removed


def _sha_of(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _copy_hashing(src: str, dest: str) -> str:
    h = hashlib.sha256()
    with open(src, "rb") as fi, open(dest, "wb") as fo:
        while chunk := fi.read(CHUNK):
            h.update(chunk)
            fo.write(chunk)
        fo.flush()
        os.fsync(fo.fileno())
    return h.hexdigest()
