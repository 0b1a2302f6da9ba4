"""Issue 22: nothing a task does changes the user's files, other runs or the cache.

Each test drives a real local run (in-process LocalRuntime: real sandboxes, real processes)
and checks the files on disk afterwards. Every one of them failed before inputs and outputs
were staged as private copies (hard links used to join the user's `--data` file, the blob
store, the cache object and the sandbox into one inode).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from chalicelib.backends.local.runtime import LocalRuntime
from chalicelib.errors import WorkflowError
from chalicelib.workflow.formats.native import parse
from chalicelib.workflow.validate import validate


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def run(wd: Path, tasks: list[dict[str, Any]], data: Path | None = None) -> tuple[str, str, LocalRuntime]:
    """(run id, final state, runtime) of one run of `tasks` with `data` as --data."""
    rt = LocalRuntime(str(wd))
    wf = parse(json.dumps({"name": "t", "tasks": tasks}), base_dir=str(wd.parent))
    record = rt.submit(wf, str(data) if data is not None else None)
    return record.run_id, rt.run(record.run_id).state.value, rt


def published(wd: Path, run_id: str, path: str) -> bytes:
    return (wd / "blobs" / "runs" / run_id / "data" / path).read_bytes()


def cache_objects_intact(wd: Path) -> list[str]:
    """Cache objects whose content no longer hashes to their name (empty: all intact)."""
    bad = []
    for obj in (wd / "cache" / "objects").glob("*/*"):
        if not obj.name.startswith(".") and sha(obj.read_bytes()) != obj.name:
            bad.append(obj.name)
    return bad


@pytest.fixture
def data(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "in.txt").write_text("original\n")
    return folder


def test_d6_a_task_writing_to_its_input_does_not_change_the_users_file(tmp_path: Path, data: Path) -> None:
    wd = tmp_path / "wd"
    run_id, state, rt = run(wd, [{"id": "mut", "shell": "echo CLOBBERED >> in.txt; cp in.txt out.txt",
                                  "inputs": ["in.txt"], "outputs": ["out.txt"]}], data)
    rt.close()
    assert state == "SUCCEEDED"
    assert (data / "in.txt").read_text() == "original\n"
    assert os.stat(data / "in.txt").st_nlink == 1
    assert published(wd, run_id, "in.txt") == b"original\n"  # the run's stored input too
    assert published(wd, run_id, "out.txt") == b"original\nCLOBBERED\n"  # the task saw its own copy
    (data / "in.txt").write_text("edited later\n")  # the user's later edits stay the user's
    assert published(wd, run_id, "in.txt") == b"original\n"
    assert cache_objects_intact(wd) == []


def test_d7_outputs_cache_objects_and_other_runs_are_not_one_file(tmp_path: Path) -> None:
    wd = tmp_path / "wd"
    tasks = [
        {"id": "a", "shell": "echo A > a.txt", "outputs": ["a.txt"]},
        {"id": "b", "shell": "echo CLOBBERED >> a.txt; echo b > b.txt", "inputs": ["a.txt"], "outputs": ["b.txt"]},
        {"id": "c", "shell": "cp a.txt c.txt", "inputs": ["a.txt"], "outputs": ["c.txt"], "after": ["b"]},
    ]
    first, state, rt = run(wd, tasks)
    assert state == "SUCCEEDED"
    assert published(wd, first, "a.txt") == b"A\n"
    assert published(wd, first, "c.txt") == b"A\n"
    assert rt.store.get_task(first, "a").result.outputs["a.txt"] == sha(b"A\n")
    rt.close()
    # a later run: `a` is CACHED, `b` appends to the cached object's staged copy
    tasks[1]["shell"] = "echo CLOBBERED-AGAIN >> a.txt; echo b2 > b.txt"
    second, state, rt = run(wd, tasks)
    rt.close()
    assert state == "SUCCEEDED"
    assert published(wd, first, "a.txt") == b"A\n"  # the earlier run's finished output
    assert published(wd, second, "a.txt") == b"A\n"
    assert published(wd, second, "c.txt") == b"A\n"
    assert cache_objects_intact(wd) == []


def test_d8_stage_out_copies_a_hard_link_to_an_outside_file_and_leaves_it_alone(tmp_path: Path) -> None:
    victim = tmp_path / "private" / "file"
    victim.parent.mkdir()
    victim.write_text("private\n")
    victim.chmod(0o600)
    wd = tmp_path / "wd"
    run_id, state, rt = run(wd, [{"id": "t", "command": ["ln", str(victim), "out3.txt"], "outputs": ["out3.txt"]}])
    rt.close()
    assert state == "SUCCEEDED"  # the task could have `cp`-ed it just as well: its bytes are the output
    st = os.stat(victim)
    assert stat.S_IMODE(st.st_mode) == 0o600  # not made read-only, nor world-readable
    assert st.st_nlink == 1  # not linked into the blob store or the cache
    assert victim.read_text() == "private\n"
    assert published(wd, run_id, "out3.txt") == b"private\n"
    victim.write_text("changed by its owner\n")
    assert published(wd, run_id, "out3.txt") == b"private\n"
    assert cache_objects_intact(wd) == []


def test_d8_a_pass_through_symlink_does_not_take_over_the_users_input(tmp_path: Path, data: Path) -> None:
    wd = tmp_path / "wd"
    before = os.stat(data / "in.txt")
    first, state, rt = run(wd, [{"id": "p", "command": ["ln", "-s", "in.txt", "out.txt"],
                                 "inputs": ["in.txt"], "outputs": ["out.txt"]}], data)
    rt.close()
    assert state == "SUCCEEDED"
    after = os.stat(data / "in.txt")
    assert stat.S_IMODE(after.st_mode) == stat.S_IMODE(before.st_mode) and after.st_nlink == 1
    (data / "in.txt").write_text("edited by the user\n")  # the user's file is still theirs to edit
    # an unrelated run consuming the cached object gets the bytes that were published
    second, state, rt = run(wd, [
        {"id": "p", "command": ["ln", "-s", "in.txt", "out.txt"], "inputs": ["in.txt"], "outputs": ["out.txt"]},
        {"id": "u", "shell": "cp out.txt copy.txt", "inputs": ["out.txt"], "outputs": ["copy.txt"]},
    ], data)
    rt.close()
    assert state == "SUCCEEDED"
    assert published(wd, first, "out.txt") == b"original\n"
    assert published(wd, second, "copy.txt") == b"edited by the user\n"  # this run's data, not stale bytes
    assert cache_objects_intact(wd) == []


def test_a_symlink_output_leading_outside_is_refused_and_its_target_untouched(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("keep\n")
    victim.chmod(0o600)
    wd = tmp_path / "wd"
    run_id, state, rt = run(wd, [{"id": "t", "command": ["ln", "-s", str(victim), "out.txt"],
                                  "outputs": ["out.txt"]}])
    rec = rt.store.get_task(run_id, "t")
    rt.close()
    assert state == "FAILED" and rec.reason == "UNSAFE_OUTPUT"
    assert stat.S_IMODE(os.stat(victim).st_mode) == 0o600 and victim.read_text() == "keep\n"
    assert os.stat(victim).st_nlink == 1


@pytest.mark.parametrize(("outputs_a", "outputs_b"), [(["x"], ["./x"]), (["d/x"], ["d//x"]), (["d/x"], ["d/x/"])])
def test_d3_two_spellings_of_one_output_are_one_file(outputs_a: list[str], outputs_b: list[str]) -> None:
    wf = parse(json.dumps({"name": "t", "tasks": [
        {"id": "a", "shell": "true", "outputs": outputs_a},
        {"id": "b", "shell": "true", "outputs": outputs_b},
    ]}))
    with pytest.raises(WorkflowError, match="also produced by task"):
        validate(wf)


def test_d3_a_task_cannot_list_its_input_again_as_an_output() -> None:
    wf = parse(json.dumps({"name": "t", "tasks": [{"id": "a", "shell": "true", "inputs": ["x"], "outputs": ["./x"]}]}))
    with pytest.raises(WorkflowError, match="both an input and an output"):
        validate(wf)


@pytest.mark.parametrize("name", [".updraft-log", ".updraft-tmp/x", "./.updraft-log", ".updraft-anything"])
def test_d4_names_the_engine_uses_are_refused_at_validation(name: str) -> None:
    wf = parse(json.dumps({"name": "t", "tasks": [{"id": "a", "shell": "true", "outputs": [name]}]}))
    with pytest.raises(WorkflowError, match="engine's own"):
        validate(wf)


def test_d4_the_log_is_outside_the_tasks_folder_and_a_task_replacing_it_does_not_crash(tmp_path: Path) -> None:
    wd = tmp_path / "wd"
    # the task writes its old log name, then finds its log beside its folder and makes it a folder
    shell = ('echo hi; rm -f .updraft-log; mkdir .updraft-log; n=$(basename "$PWD"); rm -f "../$n.log"; '
             'mkdir "../$n.log"; echo done > out.txt')
    tasks = [{"id": f"t{i}", "shell": shell.replace("out.txt", f"out{i}.txt"), "outputs": [f"out{i}.txt"]}
             for i in range(3)]
    _, state, rt = run(wd, tasks)
    rt.close()
    assert state == "SUCCEEDED"
    again, state, rt = run(wd, [{"id": "after", "shell": "echo logged; echo x > y", "outputs": ["y"]}])
    rec = rt.store.get_task(again, "after")
    log = rt.blobs.get_bytes(rec.result.log_key)
    rt.close()
    assert state == "SUCCEEDED" and log == b"logged\n"  # the reused slot logs normally


def test_d5_an_input_listed_twice_is_one_input(tmp_path: Path, data: Path) -> None:
    wd = tmp_path / "wd"
    run_id, state, rt = run(wd, [
        {"id": "t", "shell": "cat in.txt > out.txt", "inputs": ["in.txt", "in.txt", "./in.txt"],
         "outputs": ["out.txt"]},
        {"id": "u", "shell": "cat out.txt out.txt > twice.txt", "inputs": ["out.txt", "out.txt"],
         "outputs": ["twice.txt"]},
    ], data)
    rt.close()
    assert state == "SUCCEEDED"
    assert published(wd, run_id, "twice.txt") == b"original\noriginal\n"


def test_a_forged_memo_entry_is_not_reused(tmp_path: Path) -> None:
    """A task can write into the shared cache: a memo entry it forges - pointing at an object it
    planted, correctly named - must not make another run's task come back CACHED."""
    wd = tmp_path / "wd"
    tasks = [{"id": "a", "shell": "echo honest > a.txt", "outputs": ["a.txt"]}]
    _, state, rt = run(wd, tasks)
    rt.close()
    assert state == "SUCCEEDED"
    forged = b"forged\n"
    obj = wd / "cache" / "objects" / sha(forged)[:2] / sha(forged)
    obj.parent.mkdir(parents=True, exist_ok=True)
    obj.write_bytes(forged)  # a valid object: content-addressed, so the hash check passes
    [entry] = [p for p in (wd / "cache" / "memo").glob("*/*.json")]
    record = json.loads(entry.read_text())
    record["outputs"] = {"a.txt": sha(forged)}
    record.pop("mac", None)
    entry.write_text(json.dumps(record))
    second, state, rt = run(wd, tasks)
    rec = rt.store.get_task(second, "a")
    rt.close()
    assert state == "SUCCEEDED" and rec.state.value == "SUCCEEDED" and rec.result.cache.memo != "hit"
    assert published(wd, second, "a.txt") == b"honest\n"


def test_a_memo_entry_copied_to_another_key_is_not_reused(tmp_path: Path) -> None:
    wd = tmp_path / "wd"
    _, _, rt = run(wd, [{"id": "a", "shell": "echo one > a.txt", "outputs": ["a.txt"]}])
    rt.close()
    [one] = [p for p in (wd / "cache" / "memo").glob("*/*.json")]
    _, _, rt = run(wd, [{"id": "a", "shell": "echo two > a.txt", "outputs": ["a.txt"]}])
    rt.close()
    [two] = [p for p in (wd / "cache" / "memo").glob("*/*.json") if p != one]
    two.write_bytes(one.read_bytes())  # a signed entry, but signed for another key
    third, state, rt = run(wd, [{"id": "a", "shell": "echo two > a.txt", "outputs": ["a.txt"]}])
    rt.close()
    assert state == "SUCCEEDED" and published(wd, third, "a.txt") == b"two\n"


def test_the_memo_secret_never_reaches_a_task(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UPDRAFT_MEMO_KEY", "s3cret-memo-key")
    wd = tmp_path / "wd"
    run_id, state, rt = run(wd, [{"id": "a", "shell": "env > env.txt", "outputs": ["env.txt"]}])
    rt.close()
    assert state == "SUCCEEDED"
    assert b"s3cret-memo-key" not in published(wd, run_id, "env.txt")
    assert b"UPDRAFT_RUN_ID=" in published(wd, run_id, "env.txt")


def test_without_a_configured_secret_the_key_file_is_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("UPDRAFT_MEMO_KEY", raising=False)
    wd = tmp_path / "wd"
    _, state, rt = run(wd, [{"id": "a", "shell": "echo x > x", "outputs": ["x"]}])
    rt.close()
    assert state == "SUCCEEDED"
    assert stat.S_IMODE(os.stat(wd / "cache" / "memo.key").st_mode) == 0o600


def test_a_log_replaced_by_a_hard_link_to_an_outside_file_never_receives_another_log(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("keep\n")
    wd = tmp_path / "wd"
    steal = 'echo stolen; n=$(basename "$PWD"); rm -f "../$n.log"; ln "$VICTIM" "../$n.log"; echo x > '
    tasks = [{"id": f"t{i}", "shell": steal + f"o{i}", "outputs": [f"o{i}"], "env": {"VICTIM": str(victim)},
              **({"after": [f"t{i - 1}"]} if i else {})} for i in range(4)]  # one after another: one slot
    _, state, rt = run(wd, tasks)
    rt.close()
    assert state == "SUCCEEDED"
    assert victim.read_text() == "keep\n" and os.stat(victim).st_nlink == 1
