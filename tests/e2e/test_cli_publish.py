"""`updraft run --outdir DIR` and the workflow's `publish` rules copy a succeeded run's outputs
to where the user looks: equal bytes, regular files of their own (no inode shared with the
run's blobs or the cache), never over a different file without --overwrite; `resume` publishes
as the run was told."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tests.e2e.cli import run_json, updraft, write_workflow

TASKS: list[dict[str, Any]] = [
    {"id": "make", "shell": "echo made > note.txt; mkdir -p db; echo 1 > db/a; echo 2 > db/b; "
                            "echo tool > tool.sh",
     "outputs": ["note.txt", "db/", "tool.sh"]},
    {"id": "use", "shell": "cat note.txt > sum/total.txt", "inputs": ["note.txt"],
     "outputs": ["sum/total.txt"]},
]


def _data(wd: Path, run_id: str) -> Path:
    return wd / "blobs" / "runs" / run_id / "data"


def _inodes(folder: Path) -> set[tuple[int, int]]:
    return {(p.stat().st_dev, p.stat().st_ino) for p in folder.rglob("*") if p.is_file()}


def test_outdir_gets_private_copies_of_the_final_outputs(tmp_path: Path) -> None:
    wf, wd, out = write_workflow(tmp_path / "wf.json", TASKS), tmp_path / "wd", tmp_path / "out"
    rc, summary = run_json(wf, wd, "--outdir", str(out))
    assert rc == 0, summary
    data = _data(wd, summary["run_id"])
    published = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert published == ["db/a", "db/b", "sum/total.txt", "tool.sh"]  # note.txt is read by `use`: not final
    for rel in published:
        mine, stored = out / rel, data / rel
        assert mine.read_bytes() == stored.read_bytes()
        assert not mine.is_symlink() and mine.stat().st_nlink == 1
        assert os.access(mine, os.W_OK)  # the user's own file, not a read-only blob
    assert not _inodes(out) & (_inodes(data) | _inodes(wd / "cache"))
    (out / "sum" / "total.txt").write_text("edited by the user\n")  # changes neither the run nor the cache
    assert (data / "sum" / "total.txt").read_text() == "made\n"
    again = run_json(wf, wd)[1]  # from the cache, nothing published (no --outdir, no rule)
    assert again["counts"] == {"CACHED": 2}
    assert (_data(wd, again["run_id"]) / "sum" / "total.txt").read_text() == "made\n"


def test_a_different_file_is_kept_unless_overwrite(tmp_path: Path) -> None:
    wf, wd, out = write_workflow(tmp_path / "wf.json", TASKS), tmp_path / "wd", tmp_path / "out"
    (out / "sum").mkdir(parents=True)
    (out / "sum" / "total.txt").write_text("mine\n")
    proc = updraft("run", str(wf), "--outdir", str(out), workdir=wd)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "SUCCEEDED, but its outputs were not published (nothing was copied)" in proc.stderr
    assert str(out / "sum" / "total.txt") in proc.stderr and "--overwrite" in proc.stderr
    assert (out / "sum" / "total.txt").read_text() == "mine\n"
    assert sorted(p.name for p in out.rglob("*")) == ["sum", "total.txt"]  # nothing half-published
    run_id = json.loads(updraft("runs", "--json", workdir=wd, check=True).stdout)[0]["run_id"]
    # the same bytes are no conflict; resume publishes where the run was told, --overwrite replaces
    (out / "db").mkdir()
    (out / "db" / "a").write_text("1\n")
    precious = tmp_path / "precious.txt"
    precious.write_text("the user's\n")
    (out / "tool.sh").symlink_to(precious)  # replaced by the copy; what it points to is left alone
    done = updraft("resume", run_id, "--overwrite", workdir=wd, check=True).stdout
    assert "published 3 file(s)" in done and "(1 already there)" in done
    assert (out / "sum" / "total.txt").read_text() == "made\n"
    assert not (out / "tool.sh").is_symlink() and (out / "tool.sh").read_text() == "tool\n"
    assert precious.read_text() == "the user's\n"
    blocked = tmp_path / "blocked"
    (blocked / "tool.sh").mkdir(parents=True)  # a folder where a file goes: refused even with --overwrite
    proc = updraft("resume", run_id, "--outdir", str(blocked), "--overwrite", workdir=wd)
    assert proc.returncode == 2 and f"{blocked / 'tool.sh'} is a folder" in proc.stderr


def test_publish_rules_copy_next_to_the_workflow_or_under_outdir(tmp_path: Path) -> None:
    tasks = [dict(TASKS[0], publish={"to": "tools", "outputs": ["*.sh"]}), TASKS[1]]
    wf = write_workflow(tmp_path / "wf.json", tasks, publish=[{"to": "results"}])
    wd = tmp_path / "wd"
    rc, summary = run_json(wf, wd)
    assert rc == 0, summary
    assert (tmp_path / "tools" / "tool.sh").is_file() and not (tmp_path / "tools" / "note.txt").exists()
    assert (tmp_path / "results" / "sum" / "total.txt").read_text() == "made\n"
    assert (tmp_path / "results" / "db" / "b").read_text() == "2\n"
    assert not (tmp_path / "results" / "note.txt").exists()
    rc, _ = run_json(wf, wd, "--outdir", str(tmp_path / "elsewhere"))
    assert rc == 0 and (tmp_path / "elsewhere" / "tools" / "tool.sh").is_file()
    assert (tmp_path / "elsewhere" / "results" / "sum" / "total.txt").is_file()


def test_a_failed_run_publishes_nothing(tmp_path: Path) -> None:
    tasks = [TASKS[0], dict(TASKS[1], shell="exit 3")]
    wf = write_workflow(tmp_path / "wf.json", tasks, publish="results")
    rc, summary = run_json(wf, tmp_path / "wd", "--outdir", str(tmp_path / "out"))
    assert rc == 1 and summary["state"] == "FAILED"
    assert not (tmp_path / "out").exists()


def test_a_bad_publish_rule_is_refused_before_the_run(tmp_path: Path) -> None:
    tasks = [dict(TASKS[0], publish={"to": "r", "outputs": ["*.csv"]}), TASKS[1]]
    wf = write_workflow(tmp_path / "wf.json", tasks)
    for args in (("validate", str(wf)), ("run", str(wf), "--workdir", str(tmp_path / "wd"))):
        proc = updraft(*args)
        assert proc.returncode == 2
        assert "task 'make', field 'publish.outputs': pattern '*.csv' matches none" in proc.stderr
    assert not (tmp_path / "wd").exists()
