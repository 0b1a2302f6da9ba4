"""A per-instance cache tier evicted to a budget before each task, never evicting what is in use."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from chalicelib.cache.budget import Pins, evict_to_budget
from chalicelib.cache.cas import ContentStore
from chalicelib.cache.stage import TaskCache

KB = 1024


def put(store: ContentStore, data: bytes, used_at: float) -> str:
    sha = hashlib.sha256(data).hexdigest()

    def write(tmp: str) -> None:
        Path(tmp).write_bytes(data)

    store.fetch(sha, write)
    os.utime(store.path(sha), (used_at, used_at))  # atime: last use (what LRU orders by)
    return sha


def blob(n: int, kb: int) -> bytes:
    return bytes([n]) * (kb * KB)


def test_least_recently_used_objects_go_until_the_task_fits(tmp_path: Path) -> None:
    store = ContentStore(str(tmp_path / "tier"))
    shas = [put(store, blob(i, 100), used_at=1000.0 + i) for i in range(5)]  # 500 KB, oldest first
    made = evict_to_budget(store, budget_bytes=450 * KB, need_bytes=150 * KB)
    assert [e.sha256 for e in made.removed] == shas[:2]  # the two least recently used
    assert made.total_bytes == 300 * KB <= made.limit_bytes == 300 * KB
    assert [store.has(s) for s in shas] == [False, False, True, True, True]


def test_an_object_in_use_in_this_process_is_kept_and_the_next_one_goes(tmp_path: Path) -> None:
    store = ContentStore(str(tmp_path / "tier"))
    shas = [put(store, blob(i, 100), used_at=1000.0 + i) for i in range(4)]
    pins = Pins(store)
    pins.pin(shas[0])  # the oldest, but a running task is using it
    made = evict_to_budget(store, budget_bytes=300 * KB, need_bytes=100 * KB)
    assert [e.sha256 for e in made.kept_in_use] == [shas[0]]
    assert [e.sha256 for e in made.removed] == shas[1:3]
    assert store.has(shas[0]) and store.has(shas[3])
    pins.release()
    assert [e.sha256 for e in evict_to_budget(store, 0, 0).removed] == [shas[0], shas[3]]


def test_an_object_pinned_by_another_process_is_never_evicted_even_over_budget(tmp_path: Path) -> None:
    store = ContentStore(str(tmp_path / "tier"))
    shas = [put(store, blob(i, 100), used_at=1000.0 + i) for i in range(3)]
    holder = textwrap.dedent(f"""
        import sys
        from chalicelib.cache.budget import Pins
        from chalicelib.cache.cas import ContentStore
        pins = Pins(ContentStore({str(tmp_path / "tier")!r}))
        pins.pin({shas[1]!r})
        print("pinned", flush=True)
        sys.stdin.read()  # holds the pin until the test closes stdin
    """)
    proc = subprocess.Popen([sys.executable, "-c", holder], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            cwd=Path(__file__).resolve().parents[2])
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"pinned\n"
        made = evict_to_budget(store, budget_bytes=0, need_bytes=0)  # evict everything possible
        assert {e.sha256 for e in made.removed} == {shas[0], shas[2]}
        assert [e.sha256 for e in made.kept_in_use] == [shas[1]]
        assert store.has(shas[1]) and made.total_bytes == 100 * KB > made.limit_bytes
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=10)
    assert [e.sha256 for e in evict_to_budget(store, 0, 0).removed] == [shas[1]]  # its task ended


def test_too_little_free_disk_evicts_beyond_the_budget(tmp_path: Path) -> None:
    store = ContentStore(str(tmp_path / "tier"))
    shas = [put(store, blob(i, 100), used_at=1000.0 + i) for i in range(3)]
    # within budget (300 KB <= 1 MB - 100 KB) but the disk has only 50 KB free: 50 KB more needed
    made = evict_to_budget(store, budget_bytes=1024 * KB, need_bytes=100 * KB, free_bytes=50 * KB)
    assert [e.sha256 for e in made.removed] == shas[:1]


def test_a_budgeted_task_cache_makes_room_before_staging_and_pins_what_it_staged(tmp_path: Path) -> None:
    origin = tmp_path / "origin"
    origin.mkdir()
    shared = ContentStore(str(tmp_path / "shared"))
    local = ContentStore(str(tmp_path / "local"))
    cache = TaskCache(shared, local_tier=local, budget_bytes=250 * KB)
    old = [put(local, blob(i, 100), used_at=1000.0 + i) for i in range(2)]  # 200 KB from earlier tasks
    (origin / "db").write_bytes(blob(9, 100))

    attempt = cache.fork()
    attempt.make_room(need_bytes=100 * KB)  # 200 KB > 250 - 100: the least recent goes
    assert not local.has(old[0]) and local.has(old[1])
    staged = attempt.stage_dep("db", str(origin / "db"), str(tmp_path / "sandbox-db"))
    sha = staged["db"]
    assert local.has(sha)

    other = cache.fork()  # the next task on this instance, while the first still runs
    other.make_room(need_bytes=250 * KB)  # wants everything gone
    assert local.has(sha) and not local.has(old[1])  # the running task's object stays
    attempt.release()  # the first task ended
    other.make_room(need_bytes=250 * KB)
    assert not local.has(sha)
    assert shared.has(sha)  # the shared tier is not budgeted here
