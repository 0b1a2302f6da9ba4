"""Read a stored log's end, or all of it, in bounded memory.

A task's log can be gigabytes: the dashboard's task view and `updraft logs` read only the
part they show (a byte tail, the last N lines found by reading backward in blocks) and copy a
whole log out a block at a time. A blob store with `get_range(key, start, length)` (the
filesystem and S3 stores) serves the ranges; any other store is read whole, as before.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from chalicelib.engine.ports import BlobStore

BLOCK = 1 << 20


def read_range(blobs: BlobStore, key: str, start: int, length: int) -> bytes:
    """`length` bytes of the blob from offset `start` (fewer at its end)."""
    getter: Callable[[str, int, int], bytes] | None = getattr(blobs, "get_range", None)
    if getter is None:
        return blobs.get_bytes(key)[start:start + length]
    return getter(key, start, length)


def tail_bytes(blobs: BlobStore, key: str, max_bytes: int) -> bytes:
    """The last `max_bytes` bytes of the blob."""
    size = blobs.size(key)
    start = max(0, size - max_bytes)
    return read_range(blobs, key, start, size - start)


def last_lines_start(blobs: BlobStore, key: str, lines: int, block: int = BLOCK) -> int:
    """Offset where the blob's last `lines` lines begin (a final newline ends the last line,
    it does not start an empty one); 0 when it has no more than that. Reads backward a block
    at a time."""
    size = blobs.size(key)
    if lines <= 0:
        return size
    found = 0
    pos = size
    while pos > 0:
        start = max(0, pos - block)
        data = read_range(blobs, key, start, pos - start)
        i = len(data)
        while (i := data.rfind(b"\n", 0, i)) >= 0:
            if start + i == size - 1:
                continue  # the newline that ends the last line
            found += 1
            if found == lines:
                return start + i + 1
        pos = start
    return 0


def chunks(blobs: BlobStore, key: str, start: int = 0, block: int = BLOCK) -> Iterator[bytes]:
    """The blob from `start` to its end, a block at a time."""
    size = blobs.size(key)
    pos = start
    while pos < size:
        data = read_range(blobs, key, pos, min(block, size - pos))
        if not data:
            return
        yield data
        pos += len(data)
