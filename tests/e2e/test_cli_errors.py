"""Bad input at the command line gets one clear line and exit 2, never a traceback (found by
trying what a user might hand the CLI: files that are not what they seem, a work dir that is
not one, a damaged state database)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.e2e.cli import run_json, updraft, write_workflow


def refused(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    rc, err = proc.returncode, proc.stderr
    assert rc == 2, err
    assert "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err


def test_a_file_that_starts_as_gzip_but_is_not(tmp_path: Path) -> None:
    bad = tmp_path / "wf.json"
    bad.write_bytes(b"\x1f\x8bgarbage")
    for command in ("validate", "show"):
        refused(updraft(command, str(bad)), "starts as gzip but does not decompress")
    refused(updraft("run", str(bad), workdir=tmp_path / "wd"), "starts as gzip but does not decompress")


def test_a_work_dir_that_is_a_file(tmp_path: Path) -> None:
    wf = write_workflow(tmp_path / "wf.json", [{"id": "a", "command": ["true"]}])
    blocker = tmp_path / "afile"
    blocker.write_text("not a folder")
    for args in (("run", str(wf)), ("runs",), ("status",)):
        refused(updraft(*args, workdir=blocker), f"work dir {blocker} cannot be used", "--workdir")


def test_a_damaged_state_database_is_named_with_what_to_do(tmp_path: Path) -> None:
    wf = write_workflow(tmp_path / "wf.json", [{"id": "a", "command": ["true"]}])
    wd = tmp_path / "wd"
    assert run_json(wf, wd)[0] == 0
    (wd / "state.db").write_bytes(b"\x00garbage" * 512)
    for args in (("runs",), ("status",), ("run", str(wf))):
        refused(updraft(*args, workdir=wd), f"the state database {wd / 'state.db'} cannot be used",
                "Move it aside")


def test_convert_to_a_place_it_cannot_write(tmp_path: Path) -> None:
    wf = write_workflow(tmp_path / "wf.json", [{"id": "a", "command": ["true"]}])
    (tmp_path / "adir").mkdir()
    for out in (tmp_path / "adir", tmp_path / "nodir" / "x.json"):
        refused(updraft("convert", str(wf), "-o", str(out)), f"cannot write {out}")


def test_logs_of_an_attempt_that_never_was(tmp_path: Path) -> None:
    wf = write_workflow(tmp_path / "wf.json", [{"id": "a", "command": ["sh", "-c", "echo hi"]}])
    wd = tmp_path / "wd"
    rc, summary = run_json(wf, wd)
    assert rc == 0
    refused(updraft("logs", summary["run_id"], "a", "--attempt", "3", workdir=wd),
            "task a has had 1 attempt(s): --attempt takes 1 to 1")
    assert updraft("logs", summary["run_id"], "a", "--attempt", "1", workdir=wd).stdout == "hi\n"


def test_a_damaged_line_of_planner_history_is_skipped(tmp_path: Path) -> None:
    wf = write_workflow(tmp_path / "wf.json", [{"id": "a", "command": ["true"]}])
    wd = tmp_path / "wd"
    wd.mkdir()
    (wd / "planner-history.jsonl").write_bytes(b"\xff\xfe garbage\n" + json.dumps({"x": 1}).encode() + b"\n")
    rc, summary = run_json(wf, wd, "--objective", "cost")
    assert rc == 0 and summary["state"] == "SUCCEEDED"


def test_commands_that_read_runs_neither_need_nor_create_a_work_dir(tmp_path: Path) -> None:
    nowhere = tmp_path / "typo"
    for args in (("status",), ("status", "r1"), ("logs", "r1", "a"), ("resume", "r1"), ("cancel", "r1")):
        refused(updraft(*args, workdir=nowhere), f"no runs in {nowhere}: nothing has run there")
    done = updraft("runs", "--json", workdir=nowhere)
    assert done.returncode == 0 and json.loads(done.stdout) == []
    assert not nowhere.exists()


def test_logs_of_an_unknown_run_names_the_run(tmp_path: Path) -> None:
    wf = write_workflow(tmp_path / "wf.json", [{"id": "a", "command": ["true"]}])
    wd = tmp_path / "wd"
    assert run_json(wf, wd)[0] == 0
    refused(updraft("logs", "nope", "a", workdir=wd), "no run 'nope'")


def test_status_says_when_no_live_process_runs_a_running_run(tmp_path: Path) -> None:
    import signal
    import sys
    import time

    from tests.e2e.cli import REPO

    wf = write_workflow(tmp_path / "wf.json", [{"id": "a", "command": ["sleep", "30"]}])
    wd = tmp_path / "wd"
    proc = subprocess.Popen([sys.executable, "-m", "chalicelib.cli", "run", str(wf), "--workdir", str(wd)],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**__import__("os").environ, "PYTHONPATH": str(REPO)}, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and "RUNNING" not in updraft("status", workdir=wd).stdout:
            time.sleep(0.2)
        live = updraft("status", workdir=wd).stdout
        assert "RUNNING" in live and "no live process" not in live
    finally:
        __import__("os").killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    dead = updraft("status", workdir=wd).stdout
    assert "no live process is running it" in dead and "updraft resume" in dead


def test_cache_prune_needs_a_size_or_all_and_refuses_a_negative_one(tmp_path: Path) -> None:
    refused(updraft("cache", "prune", workdir=tmp_path / "wd"), "--max-mb N", "--all")
    refused(updraft("cache", "prune", "--max-mb", "-5", workdir=tmp_path / "wd"), "must be 0 or more MB")
    assert updraft("cache", "prune", "--all", workdir=tmp_path / "wd", check=True).stdout.startswith("0 object(s)")
    assert not (tmp_path / "wd").exists()  # reading or pruning an empty cache creates nothing


def test_version_bare_help_and_the_formats_listed(tmp_path: Path) -> None:
    assert updraft("--version", check=True).stdout.startswith("updraft ")
    bare = updraft()
    assert bare.returncode == 0 and "usage: updraft" in bare.stdout and "run" in bare.stdout
    helped = updraft("validate", "--help", check=True, env={"COLUMNS": "300"}).stdout
    assert "hyperflow" in helped and "wfformat" in helped and "makeflow-json" in helped
    wf = write_workflow(tmp_path / "wf.json", [{"id": "a", "command": ["true"]}])
    refused(updraft("validate", str(wf), "--format", "nope"), "unknown format 'nope'", "hyperflow")


def test_the_formats_the_help_lists_are_the_known_ones() -> None:
    from chalicelib.cli import FORMAT_NAMES
    from chalicelib.workflow.formats import format_names

    assert set(FORMAT_NAMES) == set(format_names())


def test_read_only_commands_create_no_work_dir_and_runs_says_there_are_none(tmp_path: Path) -> None:
    wd = tmp_path / "wd"
    out = updraft("runs", workdir=wd, check=True).stdout
    assert "no runs" in out and "updraft run FILE" in out
    for command in (("status",), ("logs", "r1", "a"), ("cache", "ls"), ("cache", "du"), ("report",), ("watch", "r1")):
        updraft(*command, workdir=wd)
    assert not wd.exists()


def test_logs_suggests_close_ids_status_filters_by_state_and_run_json_names_the_failures(tmp_path: Path) -> None:
    wf = write_workflow(tmp_path / "wf.json", [
        {"id": "blastn-000", "command": ["true"]},
        {"id": "bad", "shell": "exit 3", "outputs": ["x"]},
        {"id": "after", "command": ["cat", "x"], "inputs": ["x"]},
    ])
    wd = tmp_path / "wd"
    code, out = run_json(wf, wd)
    assert code == 1
    assert {(f["id"], f["reason"]) for f in out["failed"]} == {("bad", "NONZERO_EXIT"), ("after", "UPSTREAM")}
    missing = updraft("logs", out["run_id"], "blastn_000", workdir=wd)
    assert missing.returncode != 0 and "did you mean blastn-000" in missing.stderr
    st = json.loads(updraft("status", out["run_id"], "--json", "--state", "FAILED,upstream_failed",
                            workdir=wd, check=True).stdout)
    assert sorted(t["id"] for t in st["tasks"]) == ["after", "bad"]
    refused(updraft("status", out["run_id"], "--state", "BROKEN", workdir=wd), "unknown task state BROKEN")
    again = updraft("run", str(wf), workdir=wd)
    header = again.stdout.splitlines()[1]
    assert header.split()[-1] == "cached"  # the summary has a cached column
