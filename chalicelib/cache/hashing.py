"""SHA-256 of files and folders, streaming, with a stat-keyed memo so a file is hashed once.

The memo only saves work: a file's identity is always its content hash. An entry is kept per
(device, inode), so hard links share it, and reused only while size, mtime and ctime match.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading

CHUNK = 1 << 20

# (device, inode) -> (size, mtime_ns, ctime_ns), digest: hard links share one entry
_memo: dict[tuple[int, int], tuple[tuple[int, int, int], str]] = {}
_lock = threading.Lock()


def _sig(st: os.stat_result) -> tuple[int, int, int]:
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def file_sha256(path: str) -> str:
    st = os.stat(path)
    sig, ident = _sig(st), (st.st_dev, st.st_ino)
    with _lock:
        hit = _memo.get(ident)
    if hit is not None and hit[0] == sig:
        return hit[1]
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    digest = h.hexdigest()
    with _lock:
        _memo[ident] = (sig, digest)
    return digest


def remember(path: str, digest: str) -> None:
    """Record a digest computed elsewhere (e.g. while copying) for `path` as it is now."""
    note(os.stat(path), digest)


def note(st: os.stat_result, digest: str) -> None:
    """Record `digest` for the file `st` describes (its inode, as it is now)."""
    with _lock:
        _memo[(st.st_dev, st.st_ino)] = (_sig(st), digest)


def known_digest(st: os.stat_result) -> str | None:
    """The digest recorded for this inode if it is unchanged since (size, mtime, ctime): a
    write, truncate, chmod or utime changes ctime, which no unprivileged process can set."""
    with _lock:
        hit = _memo.get((st.st_dev, st.st_ino))
    return hit[1] if hit is not None and hit[0] == _sig(st) else None


def tree_manifest(root: str) -> dict[str, str]:
    """Relative path -> sha256 of every regular file under `root` (symlinks not followed)."""
    out: dict[str, str] = {}
    for dirpath, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            full = os.path.join(dirpath, name)
            if os.path.isfile(full) and not os.path.islink(full):
                out[os.path.relpath(full, root).replace(os.sep, "/")] = file_sha256(full)
    return out


TREE_PREFIX = "tree:"  # a folder's hash is "tree:" + the sha256 of its manifest's bytes


def manifest_bytes(manifest: dict[str, str]) -> bytes:
    """A folder's manifest as bytes: its files' relative paths and sha256s, sorted (so one
    tree has one manifest, whatever order its files were found in)."""
    return json.dumps(sorted(manifest.items()), separators=(",", ":")).encode()


def manifest_sha256(manifest: dict[str, str]) -> str:
    return hashlib.sha256(manifest_bytes(manifest)).hexdigest()


def tree_hash(manifest: dict[str, str]) -> str:
    """A folder's content hash: "tree:<sha256 of its manifest>" (never equal to a file's)."""
    return TREE_PREFIX + manifest_sha256(manifest)


def parse_manifest(data: bytes) -> dict[str, str]:
    """The manifest `manifest_bytes` wrote."""
    return {str(rel): str(sha) for rel, sha in json.loads(data)}
