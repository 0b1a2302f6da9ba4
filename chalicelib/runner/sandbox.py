"""A task attempt's sandbox: a private folder where inputs are staged by relative path.

Only declared inputs are visible to the task and only declared outputs are kept. An output
must be a regular file inside the sandbox: a symlink pointing elsewhere is refused, so a
task cannot publish a file it does not own.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass

from chalicelib.ports import BlobStore
from chalicelib.runner.keys import data_key

TMP_NAME = ".updraft-tmp"
LOG_NAME = ".updraft-log"


class StageError(Exception):
    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)


@dataclass
class Sandbox:
    root: str

    @classmethod
    def create(cls, workroot: str, run_id: str, task_id: str, attempt: int) -> Sandbox:
        root = os.path.join(workroot, run_id, f"{task_id}.{attempt}")
        if os.path.exists(root):  # a crashed earlier try of the same attempt
            shutil.rmtree(root, ignore_errors=True)
        os.makedirs(root)
        return cls(root)

    @property
    def log_path(self) -> str:
        return os.path.join(self.root, LOG_NAME)

    @property
    def tmp_path(self) -> str:
        return os.path.join(self.root, TMP_NAME)

    def stage_in(
        self, blobs: BlobStore, run_id: str, paths: tuple[str, ...], sources: Mapping[str, str] | None = None
    ) -> int:
        """Place each input at its relative path; returns bytes staged."""
        total = 0
        for path in paths:
            dest = os.path.join(self.root, path)
            source = sources.get(path) if sources else None
            try:
                if source is not None and source.startswith("file://"):
                    total += _link_or_copy(source[len("file://"):], dest)
                else:
                    total += blobs.get_file(source or data_key(run_id, path), dest)
            except Exception as exc:
                raise StageError("STAGE_IN", f"could not stage input {path!r}: {exc}") from exc
        return total

    def check_outputs(self, outputs: tuple[str, ...]) -> tuple[list[str], list[str]]:
        """(missing, unsafe) declared outputs."""
        missing: list[str] = []
        unsafe: list[str] = []
        real_root = os.path.realpath(self.root)
        for path in outputs:
            full = os.path.join(self.root, path)
            if os.path.islink(full):
                target = os.path.realpath(full)
                if not target.startswith(real_root + os.sep) or not os.path.isfile(target):
                    unsafe.append(path)
                continue
            if not os.path.isfile(full):
                missing.append(path)
        return missing, unsafe

    def stage_out(self, blobs: BlobStore, run_id: str, outputs: tuple[str, ...]) -> int:
        total = 0
        for path in outputs:
            full = os.path.join(self.root, path)
            if os.path.islink(full):  # inside the sandbox (checked): publish the file it names
                full = os.path.realpath(full)
            try:
                total += blobs.put_file(data_key(run_id, path), full, move=True)
            except Exception as exc:
                raise StageError("STAGE_OUT", f"could not store output {path!r}: {exc}") from exc
        return total

    def remove(self) -> None:
        try:
            os.rmdir(self.root)  # the common case: everything staged out already
        except OSError:
            shutil.rmtree(self.root, ignore_errors=True)


def _link_or_copy(src: str, dest: str) -> int:
    os.makedirs(os.path.dirname(dest) or ".", exist_ok=True)
    try:
        os.link(src, dest)
    except OSError:
        shutil.copyfile(src, dest)
    return os.path.getsize(dest)
