"""BlobStore contract: the same behaviours on the filesystem and on S3 (moto)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from chalicelib.engine.ports import BlobStore
from chalicelib.errors import NotFoundError


def test_implements_the_port(blobs: Any) -> None:
    assert isinstance(blobs, BlobStore)


def test_bytes_round_trip(blobs: BlobStore) -> None:
    blobs.put_bytes("runs/r1/workflow.json", b'{"tasks": []}')
    assert blobs.get_bytes("runs/r1/workflow.json") == b'{"tasks": []}'
    blobs.put_bytes("runs/r1/workflow.json", b"v2")  # overwrite
    assert blobs.get_bytes("runs/r1/workflow.json") == b"v2"
    assert blobs.exists("runs/r1/workflow.json") and blobs.size("runs/r1/workflow.json") == 2


def test_missing_objects_are_not_found(blobs: BlobStore, tmp_path: Path) -> None:
    assert not blobs.exists("runs/r1/nothing")
    with pytest.raises(NotFoundError):
        blobs.get_bytes("runs/r1/nothing")
    with pytest.raises(NotFoundError):
        blobs.size("runs/r1/nothing")
    with pytest.raises(NotFoundError):
        blobs.get_file("runs/r1/nothing", str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_files_round_trip_into_new_folders(blobs: BlobStore, tmp_path: Path) -> None:
    src = tmp_path / "in.bin"
    src.write_bytes(os.urandom(1000))
    assert blobs.put_file("runs/r1/data/a/b.bin", str(src)) == 1000
    assert src.exists()  # not moved
    dest = tmp_path / "deep" / "er" / "b.bin"
    assert blobs.get_file("runs/r1/data/a/b.bin", str(dest)) == 1000
    assert dest.read_bytes() == src.read_bytes()


def test_move_consumes_the_source(blobs: BlobStore, tmp_path: Path) -> None:
    src = tmp_path / "out.txt"
    src.write_text("result")
    assert blobs.put_file("runs/r1/data/out.txt", str(src), move=True) == 6
    assert not src.exists()
    assert blobs.get_bytes("runs/r1/data/out.txt") == b"result"


def test_a_large_file_survives_the_trip(blobs: BlobStore, tmp_path: Path) -> None:
    """Above the S3 adapter's multipart threshold (5 MB in this suite): uploaded in parts."""
    data = os.urandom(12 * 1024 * 1024 + 17)
    src = tmp_path / "big.bin"
    src.write_bytes(data)
    assert blobs.put_file("runs/r1/data/big.bin", str(src)) == len(data)
    dest = tmp_path / "back.bin"
    assert blobs.get_file("runs/r1/data/big.bin", str(dest)) == len(data)
    assert dest.read_bytes() == data
    assert blobs.size("runs/r1/data/big.bin") == len(data)


def test_list_is_by_exact_prefix_and_delete_prefix_counts(blobs: BlobStore) -> None:
    for key in ("runs/r1/data/x", "runs/r1/data/sub/y", "runs/r1/logs/a.1.log", "runs/r10/data/z"):
        blobs.put_bytes(key, b"1")
    assert sorted(blobs.list("runs/r1/")) == ["runs/r1/data/sub/y", "runs/r1/data/x", "runs/r1/logs/a.1.log"]
    assert sorted(blobs.list("runs/r1/data/")) == ["runs/r1/data/sub/y", "runs/r1/data/x"]
    assert sorted(blobs.list("runs/r1")) == sorted(
        ["runs/r1/data/sub/y", "runs/r1/data/x", "runs/r1/logs/a.1.log", "runs/r10/data/z"])
    assert blobs.delete_prefix("runs/r1/") == 3
    assert list(blobs.list("runs/r1/")) == []
    assert blobs.exists("runs/r10/data/z")


@pytest.mark.parametrize("key", ["../escape", "/abs/key", "runs/../../x", ""])
def test_unsafe_keys_are_refused(blobs: BlobStore, key: str) -> None:
    with pytest.raises(ValueError):
        blobs.put_bytes(key, b"x")


# ---- edge cases both adapters must answer alike (found by comparing them call for call) ----


def test_a_folder_of_keys_or_a_name_below_a_key_is_not_found(blobs: BlobStore, tmp_path: Path) -> None:
    blobs.put_bytes("runs/r1/data/out/part0", b"x")  # "runs/r1/data/out" is no key of its own
    blobs.put_bytes("runs/r1/data/log", b"y")  # nor is anything below "runs/r1/data/log"
    for key in ("runs/r1/data/out", "runs/r1/data/log/x"):
        assert not blobs.exists(key)
        with pytest.raises(NotFoundError):
            blobs.get_bytes(key)
        with pytest.raises(NotFoundError):
            blobs.size(key)
        with pytest.raises(NotFoundError):
            blobs.get_file(key, str(tmp_path / "dest"))


def test_listing_is_sorted(blobs: BlobStore) -> None:
    keys = ["runs/r1/b", "runs/r1/a0/x", "runs/r1/a", "runs/r1/a-b", "runs/r1/c/d/e"]
    for k in keys:
        blobs.put_bytes(k, b".")
    assert list(blobs.list("runs/r1/")) == sorted(keys)


def test_prefixes_that_leave_the_store_are_refused(blobs: BlobStore) -> None:
    for prefix in ("../", "/runs/", "runs/../"):
        with pytest.raises(ValueError, match="unsafe blob prefix"):
            list(blobs.list(prefix))
        with pytest.raises(ValueError, match="unsafe blob prefix"):
            blobs.delete_prefix(prefix)


def test_delete_prefix_takes_only_the_stores_own_keys(blobs: BlobStore) -> None:
    blobs.put_bytes("x", b"mine")
    with pytest.raises(ValueError, match="not a URI"):
        blobs.delete_prefix("s3://other/")
    assert blobs.get_bytes("x") == b"mine"  # S3 used to delete this one for s3://other/x


def test_ranges_read_part_of_an_object(blobs: Any) -> None:
    """get_range serves log tails without reading the whole log (chalicelib/runner/log_read.py)."""
    from chalicelib.runner.log_read import chunks, last_lines_start, tail_bytes

    blobs.put_bytes("runs/r1/logs/t.1.log", b"one\ntwo\nthree\n")
    assert blobs.get_range("runs/r1/logs/t.1.log", 4, 3) == b"two"
    assert blobs.get_range("runs/r1/logs/t.1.log", 11, 100) == b"ee\n"
    assert blobs.get_range("runs/r1/logs/t.1.log", 14, 5) == b""
    assert tail_bytes(blobs, "runs/r1/logs/t.1.log", 6) == b"three\n"
    start = last_lines_start(blobs, "runs/r1/logs/t.1.log", 2, block=3)
    assert b"".join(chunks(blobs, "runs/r1/logs/t.1.log", start, block=2)) == b"two\nthree\n"
    with pytest.raises(NotFoundError):
        blobs.get_range("runs/r1/logs/none.log", 0, 1)
