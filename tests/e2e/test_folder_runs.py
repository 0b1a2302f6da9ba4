"""Folders as data (runner/trees.py) through whole `updraft run`s on the local runtime."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.cli import run_json, status, updraft, write_workflow
from tests.e2e.test_cache_runs import executed


def data_of(workdir: Path, run_id: str) -> Path:
    return workdir / "blobs" / "runs" / run_id / "data"


def folder_pipeline(tmp: Path, ledger: Path) -> Path:
    """`make` writes folder `db` (with a subfolder); `use` reads it whole and `one` reads a
    file inside it (an edge into the folder); `count` reads the external folder `refs`."""
    log = f"echo $UPDRAFT_TASK_ID >> {ledger}"
    return write_workflow(tmp / "wf.json", [
        {"id": "make", "shell": f"{log}; mkdir -p db/sub; echo one > db/a.txt; echo two > db/sub/b.txt",
         "outputs": ["db"]},
        {"id": "use", "shell": f"{log}; find db -type f | sort > listing; cat db/sub/b.txt >> listing",
         "inputs": ["db"], "outputs": ["listing"]},
        {"id": "one", "shell": f"{log}; cat db/a.txt > first", "inputs": ["db/a.txt"], "outputs": ["first"]},
        {"id": "count", "shell": f"{log}; cat refs/x refs/deep/y > both", "inputs": ["refs"],
         "outputs": ["both"]},
    ])


def make_refs(tmp: Path) -> Path:
    (tmp / "refs" / "deep").mkdir(parents=True)
    (tmp / "refs" / "x").write_text("x\n")
    (tmp / "refs" / "deep" / "y").write_text("y\n")
    return tmp / "refs"


def test_a_folder_output_is_consumed_whole_and_by_a_file_inside_it(tmp_path: Path) -> None:
    make_refs(tmp_path)
    ledger = tmp_path / "ledger"
    code, out = run_json(folder_pipeline(tmp_path, ledger), tmp_path / "wd")
    assert code == 0, out
    assert out["counts"] == {"SUCCEEDED": 4}
    data = data_of(tmp_path / "wd", out["run_id"])
    assert (data / "db" / "a.txt").read_text() == "one\n"
    assert (data / "db" / "sub" / "b.txt").read_text() == "two\n"
    assert (data / "listing").read_text() == "db/a.txt\ndb/sub/b.txt\ntwo\n"
    assert (data / "first").read_text() == "one\n"
    assert (data / "both").read_text() == "x\ny\n"


def test_a_rerun_reuses_folder_results_and_a_changed_input_folder_reruns(tmp_path: Path) -> None:
    refs = make_refs(tmp_path)
    ledger = tmp_path / "ledger"
    wf, wd = folder_pipeline(tmp_path, ledger), tmp_path / "wd"
    assert run_json(wf, wd)[0] == 0
    ledger.unlink()
    code, second = run_json(wf, wd)
    assert code == 0 and second["counts"] == {"CACHED": 4}, second
    assert executed(ledger) == []
    data = data_of(wd, second["run_id"])
    assert (data / "db" / "sub" / "b.txt").read_text() == "two\n"  # restored from the memo
    assert (data / "listing").read_text() == "db/a.txt\ndb/sub/b.txt\ntwo\n"
    (refs / "deep" / "y").write_text("changed\n")
    code, third = run_json(wf, wd)
    assert code == 0 and executed(ledger) == ["count"], third
    assert (data_of(wd, third["run_id"]) / "both").read_text() == "x\nchanged\n"


def test_a_task_writing_into_its_input_folder_changes_nothing_of_the_users(tmp_path: Path) -> None:
    """Staged folders are private copies: appending to, truncating, removing and adding
    files in the input folder leaves the user's folder as it was (fails if staging linked)."""
    refs = make_refs(tmp_path)
    wf = write_workflow(tmp_path / "w.json", [
        {"id": "vandal", "shell": "echo more >> refs/x; : > refs/deep/y; rm refs/x; echo new > refs/z; "
                                  "cat refs/z > out", "inputs": ["refs"], "outputs": ["out"]},
        {"id": "after", "shell": "cat refs/x refs/deep/y > again", "inputs": ["refs"], "outputs": ["again"],
         "after": ["vandal"]},
    ])
    code, out = run_json(wf, tmp_path / "wd")
    assert code == 0, out
    assert (refs / "x").read_text() == "x\n" and (refs / "deep" / "y").read_text() == "y\n"
    assert not (refs / "z").exists()
    assert (data_of(tmp_path / "wd", out["run_id"]) / "again").read_text() == "x\ny\n"


def test_a_folder_output_holding_a_symlink_out_of_the_sandbox_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("private\n")
    wf = write_workflow(tmp_path / "w.json", [
        {"id": "leak", "shell": f"mkdir d; echo ok > d/fine; ln -s {secret} d/stolen", "outputs": ["d"]},
    ])
    code, out = run_json(wf, tmp_path / "wd")
    assert code != 0
    st = status(out["run_id"], tmp_path / "wd")
    assert st["tasks"][0]["reason"] == "UNSAFE_OUTPUT", st["tasks"][0]


def test_a_trailing_slash_declares_a_folder_and_a_file_there_is_a_clear_problem(tmp_path: Path) -> None:
    (tmp_path / "notdir").write_text("a file\n")
    wf = write_workflow(tmp_path / "in.json", [
        {"id": "t", "shell": "true", "inputs": ["notdir/"], "outputs": ["o"]}])
    proc = updraft("run", str(wf), workdir=tmp_path / "wd")
    assert proc.returncode != 0 and "notdir (declared a folder with a trailing '/', but" in proc.stderr
    wf = write_workflow(tmp_path / "out.json", [
        {"id": "t", "shell": "echo x > made", "outputs": ["made/"]},
        {"id": "ok", "shell": "mkdir d; echo y > d/f", "outputs": ["d/"]}])
    code, out = run_json(wf, tmp_path / "wd")
    assert code != 0
    st = {t["id"]: t for t in status(out["run_id"], tmp_path / "wd")["tasks"]}
    assert st["t"]["reason"] == "MISSING_OUTPUT" and st["ok"]["state"] == "SUCCEEDED", st
    assert (data_of(tmp_path / "wd", out["run_id"]) / "d" / "f").read_text() == "y\n"


def test_an_empty_folder_output_is_staged_as_an_empty_folder_and_an_empty_input_folder_is_refused(
        tmp_path: Path) -> None:
    for flag in ((), ("--no-cache",)):
        wf = write_workflow(tmp_path / "e.json", [
            {"id": "make", "shell": "mkdir hits", "outputs": ["hits"]},
            {"id": "count", "shell": "ls -A hits | wc -l > n", "inputs": ["hits"], "outputs": ["n"]}])
        code, out = run_json(wf, tmp_path / "wd", *flag)
        assert code == 0, out
        assert (data_of(tmp_path / "wd", out["run_id"]) / "n").read_text().strip() == "0"
    (tmp_path / "none").mkdir()
    wf = write_workflow(tmp_path / "in.json", [{"id": "t", "shell": "true", "inputs": ["none"], "outputs": ["o"]}])
    proc = updraft("run", str(wf), workdir=tmp_path / "wd")
    assert proc.returncode != 0 and "none (" in proc.stderr and "is an empty folder" in proc.stderr
