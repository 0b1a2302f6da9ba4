"""Private copies: how files move between the user's data, the blob store, the cache and
sandboxes without ever sharing an inode with something a task can write.

A hard link would make a task's `echo x >> input` rewrite the user's file, the stored blob and
the cached object at once (issue 22, D6-D8). So every file a task sees is a copy: a reflink
(FICLONE: the filesystem shares the blocks copy-on-write, so it costs no data copy) where the
filesystem offers it, else an in-kernel `copy_file_range`, else read/write. Copies that also
need the content hash (stage-out, verifying a cached object) are made by `copy_hashing`, which
reads the bytes once for both.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os

CHUNK = 1 << 20
FICLONE = 0x40049409  # _IOW(0x94, 9, int): linux/fs.h
_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
READ = os.O_RDONLY | os.O_CLOEXEC
_no_reflink: set[int] = set()  # devices where FICLONE failed once: not tried again
_no_cfr = False


def copy_fd(src_fd: int, dst_fd: int) -> int:
    """Copy the whole of `src_fd` (from offset 0) into the empty `dst_fd`; returns bytes."""
    global _no_cfr
    st = os.fstat(src_fd)
    if st.st_size == 0:
        return 0
    if st.st_dev not in _no_reflink:
        try:
            fcntl.ioctl(dst_fd, FICLONE, src_fd)
            return st.st_size
        except OSError:
            _no_reflink.add(st.st_dev)
    if not _no_cfr:
        try:
            return _copy_range(src_fd, dst_fd, st.st_size)
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EBADF):
                raise
            _no_cfr = exc.errno in (errno.ENOSYS, errno.EOPNOTSUPP)
            os.ftruncate(dst_fd, 0)
            os.lseek(dst_fd, 0, os.SEEK_SET)
    total = 0
    os.lseek(src_fd, 0, os.SEEK_SET)
    while chunk := os.read(src_fd, CHUNK):
        _write_all(dst_fd, chunk)
        total += len(chunk)
    return total


def _copy_range(src_fd: int, dst_fd: int, size: int) -> int:
    done = 0
    while True:  # to the end, whatever the size said (the source may have grown)
        n = os.copy_file_range(src_fd, dst_fd, max(size - done, CHUNK), done, done)
        if n == 0:
            return done
        done += n


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def copy_file(src: str, dest: str) -> int:
    """A private copy of `src` at the new path `dest` (never a link); returns bytes. `dest` must
    not exist (it is created exclusively, so a planted symlink there is not followed)."""
    src_fd = os.open(src, READ)
    try:
        dst_fd = create_new(dest)
        try:
            return copy_fd(src_fd, dst_fd)
        except BaseException:
            os.close(dst_fd)
            dst_fd = -1
            with contextlib.suppress(FileNotFoundError):
                os.unlink(dest)
            raise
        finally:
            if dst_fd >= 0:
                os.close(dst_fd)
    finally:
        os.close(src_fd)


def copy_hashing(src_fd: int, dest: str, mode: int = 0o644) -> tuple[str, int]:
    """Copy what `src_fd` holds (from offset 0) to the new path `dest`, hashing on the way:
    (sha256, bytes). One read of the data serves both."""
    h = hashlib.sha256()
    total = 0
    dst_fd = create_new(dest, mode)
    try:
        offset = 0
        while chunk := os.pread(src_fd, CHUNK, offset):
            h.update(chunk)
            _write_all(dst_fd, chunk)
            offset += len(chunk)
        total = offset
    except BaseException:
        os.close(dst_fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(dest)
        raise
    os.close(dst_fd)
    return h.hexdigest(), total


def copy_file_hashing(src: str, dest: str) -> str:
    """`copy_hashing` from a path: the sha256 of the bytes written to the new file `dest`."""
    fd = os.open(src, READ)
    try:
        return copy_hashing(fd, dest)[0]
    finally:
        os.close(fd)


def hash_fd(fd: int) -> tuple[str, int]:
    """(sha256, bytes) of what `fd` holds, from offset 0."""
    h = hashlib.sha256()
    offset = 0
    while chunk := os.pread(fd, CHUNK, offset):
        h.update(chunk)
        offset += len(chunk)
    return h.hexdigest(), offset


def create_new(path: str, mode: int = 0o644) -> int:
    """Open a new file for writing (never an existing one, never through a symlink), making
    its folder when missing."""
    try:
        return os.open(path, _NEW, mode)
    except FileNotFoundError:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        return os.open(path, _NEW, mode)
