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
