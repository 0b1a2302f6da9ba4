"""Folders as data: a declared input or output that is a folder is staged as a tree.

In the blob store a folder `d` is its files, each at `<key of d>/<relative path>` (so a run's
outputs hold `d/1.txt` where a user looks for it), found by listing that prefix; there is no
object at `d`'s own key. Whether a path is a file or a folder is discovered at stage time:
a key that holds an object is a file, a prefix that holds objects is a folder. A folder's
content hash is `tree:<sha256 of its manifest>` (cache/hashing.tree_hash), the manifest being
every file's relative path and sha256, sorted: empty subfolders are not part of a tree.

Staging a tree follows the same rules as a file: every file is a private copy (never a
link), and stage-out refuses a symlink leading out of the sandbox, and any symlink to a folder.
"""

from __future__ import annotations

import os

from chalicelib.engine.ports import BlobStore
from chalicelib.errors import UpdraftError


class TreeError(UpdraftError):
    """A folder's member is not a safe relative path, or a folder holds what cannot be staged."""


def tree_members(blobs: BlobStore, key: str) -> dict[str, str]:
    """{relative path: key} of every object under folder `key` (empty: no such folder)."""
    prefix = key.rstrip("/") + "/"
    base = ""
    if prefix.startswith("s3://"):  # another bucket: its listing yields keys without the bucket
        base = "s3://" + prefix[len("s3://"):].split("/", 1)[0] + "/"
    out: dict[str, str] = {}
    for listed in blobs.list(prefix):
        full = base + listed if base else listed
        rel = full[len(prefix):]
        if any(part in ("", ".", "..") for part in rel.split("/")):
            raise TreeError(f"folder {key!r} holds {rel!r}, which is not a safe relative path")
        out[rel] = full
    return out


def local_tree(root: str) -> list[str]:
    """Relative paths of the regular files under local folder `root`, sorted; symlinks are
    refused (a folder given as input is copied as it is, not followed elsewhere)."""
    found: list[str] = []
    for dirpath, dirs, files in os.walk(root):
        dirs.sort()
        for name in [*dirs, *files]:
            full = os.path.join(dirpath, name)
            if os.path.islink(full):
                raise TreeError(f"{full!r} is a symlink; a folder given as data may hold only "
                                "files and folders")
        for name in sorted(files):
            full = os.path.join(dirpath, name)
            if os.path.isfile(full):
                found.append(os.path.relpath(full, root).replace(os.sep, "/"))
    return found
