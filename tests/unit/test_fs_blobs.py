"""What only the filesystem blob store has to promise: how it places files."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import pytest

from chalicelib.backends.local import fs_blobs
from chalicelib.backends.local.fs_blobs import FsBlobStore


def test_a_copy_across_filesystems_never_shows_a_partial_destination(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    store = FsBlobStore(str(tmp_path / "store"))
    store.put_bytes("runs/r1/data/big", b"x" * 100_000)
    dest = tmp_path / "sandbox" / "big"
    dest.parent.mkdir()
    dest.write_bytes(b"old")  # a file already there is replaced whole, never rewritten in place

    def no_link(src: str, dst: str) -> None:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    seen: list[tuple[str, bytes]] = []
    real_copy = shutil.copyfile

    def copy(src: str, dst: str) -> str:
        seen.append((dst, dest.read_bytes()))  # what a reader of dest sees while the copy runs
        return real_copy(src, dst)

    monkeypatch.setattr(fs_blobs.os, "link", no_link)
    monkeypatch.setattr(fs_blobs.shutil, "copyfile", copy)
    assert store.get_file("runs/r1/data/big", str(dest)) == 100_000
    [(target, during)] = seen
    assert target != str(dest) and during == b"old"
    assert dest.read_bytes() == b"x" * 100_000
    assert os.listdir(dest.parent) == ["big"]  # no temporary file left


def test_a_failed_copy_leaves_neither_a_partial_destination_nor_a_temporary_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = FsBlobStore(str(tmp_path / "store"))
    store.put_bytes("k", b"data")
    dest = tmp_path / "sandbox" / "k"

    def no_link(src: str, dst: str) -> None:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    def full_disk(src: str, dst: str) -> str:
        Path(dst).write_bytes(b"da")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(fs_blobs.os, "link", no_link)
    monkeypatch.setattr(fs_blobs.shutil, "copyfile", full_disk)
    with pytest.raises(OSError, match="No space"):
        store.get_file("k", str(dest))
    assert os.listdir(dest.parent) == []
