"""A content-addressed store on a shared volume (EFS in the cloud, a folder locally).

    objects/ab/abcdef...   one file per SHA-256, read-only, published atomically
    locks/abcdef....lock    POSIX record locks for single-flight fetches

A file is fetched from the origin at most once per volume, however many tasks and workers
want it at once: the first takes the object's lock (fcntl.lockf, which works on NFS/EFS and
is released by the kernel if the holder dies), fetches into a temp file, fsyncs, verifies the
hash and renames it into place; the others wait on the lock, then find the object.

Objects reach sandboxes as private copies (a reflink where the filesystem offers one), never
links: a task that writes to its input changes its own copy, not the object, the blob store
or the user's file. Every object is verified against its name when it is used: hashed while
it is copied, or (stat-only) when this process hashed it before and its size, mtime and ctime
are unchanged. A damaged object is removed and fetched again. Only the runner adds objects:
`adopt` takes a finished output the runner has made its own (see Sandbox.stage_out), `fetch`
and `add_file` copy, so nothing outside the store shares an object's inode but the blob
store's copy of that same output (both out of every task's reach).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import tempfile
import time
from collections.abc import Callable, Iterator

from msgspec import Struct

from chalicelib.cache.copying import READ, copy_fd, copy_hashing, create_new, hash_fd
from chalicelib.cache.hashing import CHUNK, known_digest, note
from chalicelib.errors import UpdraftError

_HEX = frozenset("0123456789abcdef")


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
        if len(sha) != 64 or not _HEX.issuperset(sha):
            raise ValueError(f"not a sha256 hex digest: {sha!r}")
        return os.path.join(self.objects, sha[:2], sha)

    def has(self, sha: str) -> bool:
        return os.path.isfile(self.path(sha))

    def intact(self, sha: str) -> bool:
        """Whether the object is there and still hashes to its name; a damaged one (written to
        in place: its read-only mode does not stop root) is removed, so it is fetched again."""
        path = self.path(sha)
        try:
            fd = os.open(path, READ | os.O_NOFOLLOW)
        except OSError:
            return False
        try:
            if _verified(fd, sha):
                return True
        finally:
            os.close(fd)
        self.discard(sha)
        return False

    def discard(self, sha: str) -> None:
        """Remove a damaged object (it is fetched again when next wanted)."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path(sha))

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
        """Add a copy of a local file, hashed on the way (the file itself is never linked in,
        so later writes to it do not reach the store)."""
        if sha is not None and self.has(sha):
            return sha, os.path.getsize(path)
        tmp = self._tmp()
        try:
            os.unlink(tmp)
            fd = os.open(path, READ)
            try:
                sha, size = copy_hashing(fd, tmp)
            finally:
                os.close(fd)
            if self.has(sha):
                os.unlink(tmp)
            else:
                self._publish(tmp, sha)
            return sha, size
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def adopt(self, path: str, sha: str) -> None:
        """Add the runner's own file `path` (a regular file with one link, out of every task's
        reach, whose content hashes to `sha`) by linking it in: no copy. The file becomes
        read-only. Nothing happens when the object is already there."""
        final = self.path(sha)
        try:
            os.link(path, final, follow_symlinks=False)
        except FileNotFoundError:
            os.makedirs(os.path.dirname(final), exist_ok=True)
            try:
                os.link(path, final, follow_symlinks=False)
            except FileExistsError:
                return
        except FileExistsError:
            return
        os.chmod(final, 0o444, follow_symlinks=False)
        note(os.stat(final), sha)

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
        The fetched bytes are verified against `sha` before they are published: hashed here,
        unless the fetcher returns the sha256 of the bytes it wrote to `tmp_path` itself.
        """
        if self.has(sha):
            return False
        with self._locked(sha):
            if self.has(sha):  # another worker fetched it while we waited
                return False
            tmp = self._tmp()
            try:
                os.unlink(tmp)  # the name is reserved; the fetcher creates the file
                made = fetcher(tmp)
                # a fetcher that hashed the bytes it wrote (copy_hashing) says so: no second read
                got = made if isinstance(made, str) else _sha_of(tmp)
                if got != sha:
                    raise CacheIntegrityError(f"fetched object has sha256 {got}, expected {sha}")
                note(os.stat(self._publish(tmp, sha)), sha)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
                raise
        return True

    def copy_to(self, sha: str, dest: str) -> int | None:
        """A private copy of the object at the new path `dest`, verified against `sha`, and the
        object marked used. Returns bytes, or None when the object is missing or damaged (a
        damaged one is removed)."""
        src = self.path(sha)
        try:
            fd = os.open(src, READ | os.O_NOFOLLOW)
        except OSError:
            return None
        try:
            size = copy_verified(fd, sha, dest)
            if size is not None:
                _mark_used(fd, sha)
        finally:
            os.close(fd)
        if size is None:
            self.discard(sha)
            return None
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


def _mark_used(fd: int, sha: str) -> None:
    """atime = last use, for LRU (mtime kept). utime moves ctime, so the object's verified digest
    is noted again - only if it was unchanged since it was verified."""
    st = os.fstat(fd)
    now = time.time()
    if known_digest(st) != sha:
        return
    with contextlib.suppress(OSError):
        os.utime(fd, (now, st.st_mtime))
        note(os.fstat(fd), sha)


def _verified(fd: int, sha: str) -> bool:
    """Whether the open file hashes to `sha` (stat only, when this process hashed that inode
    before and it is unchanged since)."""
    st = os.fstat(fd)
    if known_digest(st) == sha:
        return True
    got, _ = hash_fd(fd)
    if got == sha:
        note(st, sha)
    return got == sha


def copy_verified(fd: int, sha: str, dest: str) -> int | None:
    """Copy the open object to the new path `dest` if it hashes to `sha` (bytes), else remove
    whatever was written and return None. Hashed while copying unless known to be intact."""
    st = os.fstat(fd)
    if known_digest(st) == sha:
        out = create_new(dest)
        try:
            size = copy_fd(fd, out)
        except BaseException:
            os.close(out)
            os.unlink(dest)
            raise
        os.close(out)
        return size
    got, size = copy_hashing(fd, dest)
    if got != sha:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(dest)
        return None
    note(st, sha)
    return size


def _sha_of(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()

