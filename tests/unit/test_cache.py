"""The content store (single flight, integrity, eviction) and memoization keys."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import signal
import time
from pathlib import Path

import pytest

from chalicelib.cache.cas import CacheIntegrityError, ContentStore
from chalicelib.cache.memo import MemoIndex, memo_key
from chalicelib.workflow.model import Task


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _fetch_once(root: str, digest: str, data: bytes, counter: str, delay: float) -> None:
    def fetcher(tmp: str) -> None:
        with open(counter, "a") as fh:
            fh.write("x")
        time.sleep(delay)
        Path(tmp).write_bytes(data)

    ContentStore(root).fetch(digest, fetcher)


def test_single_flight_across_processes(tmp_path: Path) -> None:
    data = os.urandom(1 << 16)
    digest = sha(data)
    counter = tmp_path / "fetches"
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_fetch_once, args=(str(tmp_path / "cas"), digest, data, str(counter), 0.3))
             for _ in range(6)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    assert counter.read_text() == "x"  # one fetch from the origin for six takers
    assert Path(ContentStore(str(tmp_path / "cas")).path(digest)).read_bytes() == data


def _hold_lock_forever(root: str, digest: str, ready: str) -> None:
    def fetcher(tmp: str) -> None:
        Path(ready).write_text("1")
        time.sleep(60)

    ContentStore(root).fetch(digest, fetcher)


def test_a_crashed_holder_does_not_block_others(tmp_path: Path) -> None:
    data = b"reference database"
    digest = sha(data)
    ready = tmp_path / "ready"
    ctx = multiprocessing.get_context("fork")
    holder = ctx.Process(target=_hold_lock_forever, args=(str(tmp_path / "cas"), digest, str(ready)))
    holder.start()
    deadline = time.monotonic() + 10
    while not ready.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(holder.pid, signal.SIGKILL)  # dies holding the lock, mid-fetch
    holder.join()
    store = ContentStore(str(tmp_path / "cas"))
    assert store.fetch(digest, lambda tmp: Path(tmp).write_bytes(data)) is True
    assert Path(store.path(digest)).read_bytes() == data


def test_fetched_bytes_are_verified_before_publishing(tmp_path: Path) -> None:
    store = ContentStore(str(tmp_path))
    digest = sha(b"expected")
    with pytest.raises(CacheIntegrityError, match="expected"):
        store.fetch(digest, lambda tmp: Path(tmp).write_bytes(b"tampered"))
    assert not store.has(digest)
    assert store.fetch(digest, lambda tmp: Path(tmp).write_bytes(b"expected")) is True
    assert store.fetch(digest, lambda tmp: pytest.fail("fetched twice")) is False


def test_lru_eviction_keeps_data_of_a_task_holding_a_file(tmp_path: Path) -> None:
    store = ContentStore(str(tmp_path / "cas"))
    digests = []
    for i in range(4):
        data = bytes([i]) * 1000
        digests.append(sha(data))
        store.fetch(digests[-1], lambda tmp, data=data: Path(tmp).write_bytes(data))
        time.sleep(0.01)
    held = tmp_path / "sandbox" / "db"
    store.copy_to(digests[0], str(held))  # a running task holds (a copy of) the oldest object
    os.utime(store.path(digests[0]), (1.0, 1.0))  # ...and it is the least recently used
    removed = store.evict(2000)
    assert [e.sha256 for e in removed] == [digests[0], digests[1]]
    assert store.total_bytes() == 2000
    assert held.read_bytes() == bytes([0]) * 1000  # the task's copy is intact


def test_memo_key_depends_on_content_not_names_of_runs_or_times() -> None:
    t = Task("a", command=("tool", "in.txt"), inputs=("in.txt",), outputs=("out.txt",))
    base = memo_key(t, {"in.txt": "1" * 64}, {}, "img")
    assert base == memo_key(Task("renamed", command=t.command, inputs=t.inputs, outputs=t.outputs),
                            {"in.txt": "1" * 64}, {}, "img")
    variants = [
        memo_key(t, {"in.txt": "2" * 64}, {}, "img"),
        memo_key(Task("a", command=("tool", "-v", "in.txt"), inputs=t.inputs, outputs=t.outputs),
                 {"in.txt": "1" * 64}, {}, "img"),
        memo_key(t, {"in.txt": "1" * 64}, {"db": "3" * 64}, "img"),
        memo_key(t, {"in.txt": "1" * 64}, {}, "img2"),
        memo_key(Task("a", command=t.command, inputs=t.inputs, outputs=("other.txt",)), {"in.txt": "1" * 64}, {},
                 "img"),
        memo_key(Task("a", command=t.command, inputs=t.inputs, outputs=t.outputs, env={"X": "1"}),
                 {"in.txt": "1" * 64}, {}, "img"),
    ]
    assert base not in variants and len(set(variants)) == len(variants)


def test_memo_index_round_trip(tmp_path: Path) -> None:
    index = MemoIndex(str(tmp_path))
    key = "ab" + "0" * 62
    assert index.get(key) is None
    index.put(key, {"outputs": {"o": "1" * 64}})
    assert index.get(key) == {"outputs": {"o": "1" * 64}} and index.count() == 1


def test_a_folders_hash_is_its_manifests_and_does_not_depend_on_order_or_empty_folders(tmp_path: Path) -> None:
    from chalicelib.cache.hashing import manifest_bytes, parse_manifest, tree_hash, tree_manifest

    a, b = tmp_path / "a", tmp_path / "b"
    for root, order in ((a, ["x", "sub/y", "sub/deeper/z"]), (b, ["sub/deeper/z", "x", "sub/y"])):
        for rel in order:
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_text(rel)
    (b / "empty").mkdir()
    ma, mb = tree_manifest(str(a)), tree_manifest(str(b))
    assert ma == mb
    assert tree_hash(ma) == tree_hash(mb) == "tree:" + hashlib.sha256(manifest_bytes(ma)).hexdigest()
    assert parse_manifest(manifest_bytes(ma)) == ma
    (b / "x").write_text("changed")
    assert tree_hash(tree_manifest(str(b))) != tree_hash(ma)
    (b / "x").write_text("x")
    (b / "x").rename(b / "x2")  # same bytes, another name: another folder
    assert tree_hash(tree_manifest(str(b))) != tree_hash(ma)


def test_a_folder_input_is_part_of_the_memo_key_by_its_tree_hash() -> None:
    task = Task(id="t", command=("true",), inputs=("db",), outputs=("o",))
    one = memo_key(task, {"db": "tree:" + "1" * 64}, {}, "img")
    assert one != memo_key(task, {"db": "tree:" + "2" * 64}, {}, "img")
    assert one == memo_key(task, {"db": "tree:" + "1" * 64}, {}, "img")
