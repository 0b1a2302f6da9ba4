"""What only the filesystem blob store has to promise: how it places files."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from chalicelib.backends.local import fs_blobs
from chalicelib.backends.local.fs_blobs import FsBlobStore


def test_a_copy_never_shows_a_partial_destination(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = FsBlobStore(str(tmp_path / "store"))
    store.put_bytes("runs/r1/data/big", b"x" * 100_000)
    dest = tmp_path / "sandbox" / "big"
    dest.parent.mkdir()
    dest.write_bytes(b"old")  # a file already there is replaced whole, never rewritten in place

    seen: list[bytes] = []
    real_copy = fs_blobs.copy_fd

    def copy(src: int, dst: int) -> int:
        seen.append(dest.read_bytes())  # what a reader of dest sees while the copy runs
        return real_copy(src, dst)

    monkeypatch.setattr(fs_blobs, "copy_fd", copy)
    assert store.get_file("runs/r1/data/big", str(dest)) == 100_000
    assert seen == [b"old"]
    assert dest.read_bytes() == b"x" * 100_000
    assert os.listdir(dest.parent) == ["big"]  # no temporary file left


def test_a_failed_copy_leaves_neither_a_partial_destination_nor_a_temporary_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = FsBlobStore(str(tmp_path / "store"))
    store.put_bytes("k", b"data")
    dest = tmp_path / "sandbox" / "k"

    def full_disk(src: int, dst: int) -> int:
        os.write(dst, b"da")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(fs_blobs, "copy_fd", full_disk)
    with pytest.raises(OSError, match="No space"):
        store.get_file("k", str(dest))
    assert os.listdir(dest.parent) == []


def test_files_go_in_and_out_as_private_copies_never_links(tmp_path: Path) -> None:
    """Issue 22 (D6): a hard link between the user's file, the stored blob and a sandbox let a
    task's `echo x >> input` rewrite all three."""
    store = FsBlobStore(str(tmp_path / "store"))
    user = tmp_path / "data" / "in.txt"
    user.parent.mkdir()
    user.write_text("original\n")
    store.put_file("runs/r1/data/in.txt", str(user))
    staged = tmp_path / "sandbox" / "in.txt"
    store.get_file("runs/r1/data/in.txt", str(staged))
    assert os.stat(user).st_nlink == 1 and os.stat(staged).st_nlink == 1
    with open(staged, "a") as fh:
        fh.write("CLOBBERED\n")
    assert user.read_text() == "original\n"
    assert store.get_bytes("runs/r1/data/in.txt") == b"original\n"
    user.write_text("edited by the user\n")  # later edits do not change the run's stored input
    assert store.get_bytes("runs/r1/data/in.txt") == b"original\n"
