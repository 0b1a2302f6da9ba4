"""Big read-only dependencies: one verified copy per runner, a symlink per sandbox, repaired when
a task changed it; the cache object and the source never change."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from chalicelib.backends.local.runtime import LocalRuntime, RuntimeOptions
from chalicelib.cache.cas import ContentStore
from chalicelib.cache.runner_deps import RunnerDeps
from chalicelib.cache.stage import TaskCache
from chalicelib.workflow.formats import load

DB = b"ACGT" * 50_000


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def setup(tmp_path: Path) -> tuple[TaskCache, Path]:
    source = tmp_path / "db.bin"
    source.write_bytes(DB)
    return TaskCache(ContentStore(str(tmp_path / "cache"))), source


def stage(cache: TaskCache, runner: RunnerDeps, source: Path, box: Path) -> Path:
    attempt = cache.fork()
    attempt.runner_deps = runner
    attempt.stage_dep("db", str(source), str(box / "db"))
    return box / "db"


def test_tasks_of_one_runner_share_one_read_only_copy_through_symlinks(tmp_path: Path) -> None:
    cache, source = setup(tmp_path)
    runner = RunnerDeps(str(tmp_path / "runner"))
    first = stage(cache, runner, source, tmp_path / "box1")
    assert runner.check() == []
    second = stage(cache, runner, source, tmp_path / "box2")
    assert first.is_symlink() and second.is_symlink()
    assert os.path.realpath(first) == os.path.realpath(second) == runner.path(sha(DB))
    assert second.read_bytes() == DB
    assert not os.stat(runner.path(sha(DB))).st_mode & 0o222  # read-only
    assert os.stat(runner.path(sha(DB))).st_ino != os.stat(cache.cas.path(sha(DB))).st_ino  # not the cache object
    other = RunnerDeps(str(tmp_path / "other-runner"))
    third = stage(cache, other, source, tmp_path / "box3")
    assert os.path.realpath(third) != os.path.realpath(first)  # runners never share a copy


def test_a_task_that_changes_its_dependency_gets_it_repaired_for_the_next(tmp_path: Path) -> None:
    cache, source = setup(tmp_path)
    runner = RunnerDeps(str(tmp_path / "runner"))
    dep = stage(cache, runner, source, tmp_path / "box1")
    os.chmod(dep, 0o644)  # what a hostile task can do: same user
    with open(dep, "r+b") as fh:
        fh.write(b"XXXX")
    assert runner.check() == [sha(DB)]  # noticed after the task, and removed
    assert not os.path.exists(runner.path(sha(DB)))
    again = stage(cache, runner, source, tmp_path / "box2")
    assert again.read_bytes() == DB
    assert Path(cache.cas.path(sha(DB))).read_bytes() == DB and source.read_bytes() == DB


def test_a_copy_changed_between_tasks_is_not_given_to_the_next(tmp_path: Path) -> None:
    cache, source = setup(tmp_path)
    runner = RunnerDeps(str(tmp_path / "runner"))
    stage(cache, runner, source, tmp_path / "box1")
    assert runner.check() == []
    copy = runner.path(sha(DB))
    os.chmod(copy, 0o644)  # touched from outside any sandbox (same size, then mode put back)
    with open(copy, "r+b") as fh:
        fh.write(b"TTTT")
    os.chmod(copy, 0o444)
    st = os.stat(copy)
    os.utime(copy, ns=(st.st_atime_ns, st.st_mtime_ns))  # even with its mtime put back: ctime moved
    assert stage(cache, runner, source, tmp_path / "box2").read_bytes() == DB


def test_on_the_local_runtime_a_task_writing_its_dependency_does_not_reach_the_next_task(tmp_path: Path) -> None:
    db = tmp_path / "refdb"
    db.mkdir()
    (db / "synth.nsq").write_bytes(DB)
    data = tmp_path / "data"
    data.mkdir()
    spoil = {"id": "spoil", "deps": [f"db={db}"], "outputs": ["spoiled.txt"],
             "shell": "chmod u+w db/synth.nsq; echo spoiled >> db/synth.nsq; sha256sum < db/synth.nsq > spoiled.txt"}
    read = {"id": "read", "deps": [f"db={db}"], "inputs": ["spoiled.txt"], "outputs": ["seen.txt"],
            "shell": "sha256sum < db/synth.nsq > seen.txt"}
    wf = tmp_path / "wf.json"
    wf.write_text(json.dumps({"name": "deps", "tasks": [spoil, read]}))
    rt = LocalRuntime(str(tmp_path / "work"), RuntimeOptions(concurrency=1, memoize=False))
    try:
        record = rt.submit(load(str(wf)), str(data))
        assert rt.run(record.run_id).state.value == "SUCCEEDED"
        out = {t.task_id: t for t in rt.store.list_tasks(record.run_id)}
        assert set(out) == {"spoil", "read"}
        blobs = rt.blobs
        spoiled = blobs.get_bytes(f"runs/{record.run_id}/data/spoiled.txt").split()[0].decode()
        seen = blobs.get_bytes(f"runs/{record.run_id}/data/seen.txt").split()[0].decode()
    finally:
        rt.close()
    assert spoiled != sha(DB)  # the first task did change what it saw
    assert seen == sha(DB)  # the next one, on the same runner, saw the database as it is
    assert (db / "synth.nsq").read_bytes() == DB
    cas = ContentStore(str(tmp_path / "work" / "cache"))
    assert Path(cas.path(sha(DB))).read_bytes() == DB
