"""Folders as data on every blob store (filesystem and S3 via moto): a sandbox stages a tree
out and another stages it in, with and without the content-addressed cache."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from chalicelib.cache.cas import ContentStore
from chalicelib.cache.hashing import tree_hash
from chalicelib.cache.memo import MemoIndex
from chalicelib.cache.stage import TaskCache
from chalicelib.engine.ports import BlobStore
from chalicelib.runner.keys import data_key
from chalicelib.runner.sandbox import Sandbox, StageError

FILES = {"a.txt": b"one\n", "sub/b.txt": b"two\n", "sub/deeper/c bin": os.urandom(3000)}


def _make_tree(box: Sandbox, name: str) -> None:
    for rel, data in FILES.items():
        full = Path(box.root) / name / rel
        full.parent.mkdir(parents=True, exist_ok=True)
        full.write_bytes(data)


def _read_tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("cached", [False, True])
def test_a_folder_output_is_stored_file_by_file_and_staged_back_in(
        blobs: BlobStore, tmp_path: Path, cached: bool) -> None:
    cache = TaskCache(ContentStore(str(tmp_path / "cache")), MemoIndex(str(tmp_path / "memo"), b"k")) \
        if cached else None
    out = Sandbox.create(str(tmp_path / "work"), "r1", "make", 1)
    _make_tree(out, "db")
    (Path(out.root) / "other").write_text("x")
    size, hashes = out.stage_out(blobs, "r1", ("db", "db/a.txt", "db/sub", "other"), cache)
    assert size == sum(len(v) for v in FILES.values()) + 1
    assert hashes["db"].startswith("tree:") and hashes["db/sub"].startswith("tree:")
    assert hashes["db/a.txt"] == hashlib.sha256(b"one\n").hexdigest()
    assert sorted(blobs.list(data_key("r1", "db/"))) == sorted(data_key("r1", f"db/{r}") for r in FILES)
    assert blobs.get_bytes(data_key("r1", "db/sub/deeper/c bin")) == FILES["sub/deeper/c bin"]

    into = Sandbox.create(str(tmp_path / "work"), "r1", "use", 1)
    known = {"db": hashes["db"]} if cached else None
    got, in_hashes = into.stage_in(blobs, "r1", ("db", "db/sub/b.txt"), None, cache, known)
    assert got == sum(len(v) for v in FILES.values()) + len(FILES["sub/b.txt"])
    assert _read_tree(Path(into.root) / "db") == FILES
    if cached:
        assert cache is not None and in_hashes["db"] == hashes["db"]
        assert cache.stats.hits >= len(FILES)  # every file from the store, none fetched again

    fresh = Sandbox.create(str(tmp_path / "work"), "r1", "again", 1)  # no known hash: discovered
    _, found = fresh.stage_in(blobs, "r1", ("db",), None, cache, None)
    assert _read_tree(Path(fresh.root) / "db") == FILES
    if cached:
        assert found["db"] == hashes["db"]


def test_the_tree_hash_is_the_manifests_and_ignores_listing_order() -> None:
    a = tree_hash({"x": "1" * 64, "y/z": "2" * 64})
    assert a == tree_hash({"y/z": "2" * 64, "x": "1" * 64})
    assert a != tree_hash({"x": "1" * 64, "y/w": "2" * 64}) and a.startswith("tree:") and len(a) == 69


def test_a_missing_input_is_neither_a_file_nor_a_folder(blobs: BlobStore, tmp_path: Path) -> None:
    box = Sandbox.create(str(tmp_path / "work"), "r1", "t", 1)
    with pytest.raises(StageError, match="could not stage input 'nothing'"):
        box.stage_in(blobs, "r1", ("nothing",))


def test_memoized_folder_outputs_are_restored_file_by_file(blobs: BlobStore, tmp_path: Path) -> None:
    cache = TaskCache(ContentStore(str(tmp_path / "cache")))
    out = Sandbox.create(str(tmp_path / "work"), "r1", "make", 1)
    _make_tree(out, "db")
    _, hashes = out.stage_out(blobs, "r1", ("db",), cache)
    assert cache.restore(hashes, blobs, lambda p: data_key("r2", p)) == sum(len(v) for v in FILES.values())
    assert sorted(blobs.list(data_key("r2", ""))) == sorted(data_key("r2", f"db/{r}") for r in FILES)
    assert blobs.get_bytes(data_key("r2", "db/sub/b.txt")) == b"two\n"


def test_an_input_declared_a_folder_that_is_a_file_is_a_clear_problem(blobs: BlobStore, tmp_path: Path) -> None:
    blobs.put_bytes(data_key("r1", "x"), b"a file")
    box = Sandbox.create(str(tmp_path / "work"), "r1", "t", 1)
    with pytest.raises(StageError, match=r"declared a folder \(a trailing '/'\) but is a file"):
        box.stage_in(blobs, "r1", ("x",), folders=("x",))
