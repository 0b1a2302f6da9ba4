"""Copying a finished run's outputs to where the user looks (`--outdir`, `publish` rules).

Every published file is a new private copy (a reflink where the filesystem offers one, never a
hard link): the run's stored files are hard links of the cache's objects, so a link would let
the user's edit change the run and the cache, and a later run or task change the user's file.
Each copy is made beside its destination and renamed into place, so no half-written file is
ever seen. Everything is checked before the first copy: a destination that is a folder, or an
existing file with other content (unless `overwrite`), refuses the whole publication with one
error naming each; a file already holding the same bytes is left as it is.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Sequence
from typing import Any

from msgspec import Struct

from chalicelib.cache.copying import CHUNK, READ, copy_fd, create_new
from chalicelib.errors import PublishError
from chalicelib.runner.keys import data_key
from chalicelib.workflow.model import Workflow
from chalicelib.workflow.publish_rules import selection

OPTION = "publish"  # the run option holding {"base": folder, "outdir": given}: resume publishes the same way


class Copy(Struct, frozen=True):
    source: str  # the stored file
    dest: str  # absolute
    size: int
    path: str  # the output's path in the run


class Published(Struct, frozen=True):
    folders: tuple[str, ...]  # the destination folders, as the rules resolved them
    copied: int
    unchanged: int
    bytes: int


def publish_option(workflow: Workflow, outdir: str | None) -> dict[str, Any] | None:
    """What a run stores to publish when it succeeds (also on resume): None when it publishes
    nothing (no `--outdir`, no rule)."""
    if outdir is None and not (workflow.publish or any(t.publish for t in workflow.tasks)):
        return None
    base = os.path.abspath(outdir) if outdir is not None else workflow.base_dir or os.getcwd()
    return {"base": base, "outdir": outdir is not None}


def plan(blobs: Any, run_id: str, workflow: Workflow, base: str, outdir_given: bool) -> list[Copy]:
    """Every file to copy: the selected outputs' stored files (a folder output's every file)
    at `base/<to>/<path>`."""
    copies: dict[str, Copy] = {}
    clashes: list[str] = []
    for to, path in selection(workflow, "." if outdir_given else None):
        folder = os.path.normpath(os.path.join(base, to))
        for key, rel in _stored(blobs, run_id, path):
            dest = os.path.join(folder, rel)
            source = blobs.path(key)
            seen = copies.get(dest)
            if seen is not None and seen.source != source:
                clashes.append(f"{dest} (both {seen.path} and {rel})")
                continue
            copies[dest] = Copy(source, dest, os.stat(source).st_size, rel)
    if clashes:
        raise PublishError(f"run {run_id}: two outputs would be published to one file: {'; '.join(clashes)}; "
                           "give the rules different 'to' folders")
    return list(copies.values())


def _stored(blobs: Any, run_id: str, path: str) -> list[tuple[str, str]]:
    """(blob key, relative path) of an output: the file, or each file of a folder output."""
    key = data_key(run_id, path)
    if blobs.exists(key):
        return [(key, path)]
    prefix = f"{key}/"
    return [(k, path + "/" + k[len(prefix):]) for k in blobs.list(prefix)]


def check(copies: Sequence[Copy], overwrite: bool, run_id: str) -> list[Copy]:
    """The copies still to make (a destination with the same bytes needs none); PublishError
    naming every destination that refuses, before anything is written."""
    todo: list[Copy] = []
    differ: list[str] = []
    blocked: list[str] = []
    for c in copies:
        why = _blocked_parent(c.dest)
        if why:
            blocked.append(why)
            continue
        try:
            st = os.lstat(c.dest)
        except FileNotFoundError:
            todo.append(c)
            continue
        if stat.S_ISDIR(st.st_mode):
            blocked.append(f"{c.dest} is a folder")
        elif stat.S_ISREG(st.st_mode) and _same_bytes(c.source, c.dest, st.st_size):
            continue
        elif stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode):
            differ.append(c.dest)
            todo.append(c)
        else:
            blocked.append(f"{c.dest} is not a regular file")
    if blocked:
        raise PublishError(f"run {run_id} SUCCEEDED, but its outputs were not published (nothing was copied): "
                           f"{'; '.join(blocked[:10])}; move that out of the way or choose another --outdir")
    if differ and not overwrite:
        shown = ", ".join(differ[:10]) + (f" and {len(differ) - 10} more" if len(differ) > 10 else "")
        raise PublishError(f"run {run_id} SUCCEEDED, but its outputs were not published (nothing was copied): "
                           f"{len(differ)} file(s) already exist with other content: {shown}. Pass --overwrite "
                           f"to replace them, or choose another --outdir (`updraft resume {run_id} --overwrite` "
                           "publishes this run again)")
    return todo


def _blocked_parent(dest: str) -> str | None:
    """A folder on the way to `dest` that exists as something else (a file)."""
    parent = os.path.dirname(dest)
    while parent and not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if parent and not os.path.isdir(parent):
        return f"{parent} is a file where {dest} needs a folder"
    return None


def _same_bytes(a: str, b: str, size_b: int) -> bool:
    if os.stat(a).st_size != size_b:
        return False
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x, y = fa.read(CHUNK), fb.read(CHUNK)
            if x != y:
                return False
            if not x:
                return True


def copy_out(c: Copy) -> None:
    """A private copy of `c.source` at `c.dest`: made beside it (mode 0666 less the umask, the
    user's own file), then renamed over it (an existing symlink there is replaced, never
    followed)."""
    tmp = os.path.join(os.path.dirname(c.dest), f".updraft-{secrets.token_hex(6)}-{os.path.basename(c.dest)}")
    src_fd = os.open(c.source, READ)
    try:
        fd = create_new(tmp, 0o666)  # makes the folders on the way
        try:
            try:
                copy_fd(src_fd, fd)
            finally:
                os.close(fd)
            os.replace(tmp, c.dest)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
    finally:
        os.close(src_fd)


def publish(rt: Any, run_id: str, outdir: str | None, overwrite: bool) -> Published | None:
    """Copy a SUCCEEDED run's published outputs out: to `outdir` when given, else as the run
    was told when it started. None when the run publishes nothing."""
    run = rt.store.get_run(run_id)
    workflow = rt.specs.get(run_id).workflow
    option = publish_option(workflow, outdir) if outdir is not None else run.options.get(OPTION)
    if not option:
        return None
    copies = plan(rt.blobs, run_id, workflow, option["base"], bool(option["outdir"]))
    todo = check(copies, overwrite, run_id)
    try:
        for c in todo:
            copy_out(c)
    except OSError as exc:
        raise PublishError(f"run {run_id}: publishing its outputs stopped at {exc.filename}: "
                           f"{exc.strerror or exc}") from None
    folders = tuple(dict.fromkeys(os.path.normpath(os.path.join(option["base"], to))
                                  for to, _ in selection(workflow, "." if option["outdir"] else None)))
    return Published(folders, len(todo), len(copies) - len(todo), sum(c.size for c in todo))
