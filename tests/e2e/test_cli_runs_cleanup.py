"""`updraft runs rm` / `runs gc` delete runs' records and files (never a RUNNING run, never the
cache); `latest` names the newest run; a mistyped task id gets the id it meant; commands that
only read leave no work dir behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.e2e.cli import REPO, run_json, updraft, write_workflow


def _workflow(tmp_path: Path, name: str = "wf") -> Path:
    return write_workflow(tmp_path / f"{name}.json", [
        {"id": "make-000", "shell": "head -c 200000 /dev/urandom > big.bin; echo made > note.txt",
         "outputs": ["big.bin", "note.txt"]},
        {"id": "use", "shell": "wc -c < big.bin > size.txt", "inputs": ["big.bin"], "outputs": ["size.txt"]},
    ])


def _runs(wd: Path) -> list[str]:
    return [r["run_id"] for r in json.loads(updraft("runs", "--json", workdir=wd, check=True).stdout)]


def test_runs_rm_deletes_the_records_and_the_files_and_reports_the_bytes(tmp_path: Path) -> None:
    wf, wd = _workflow(tmp_path), tmp_path / "wd"
    first = run_json(wf, wd, "--no-cache")[1]["run_id"]
    second = run_json(wf, wd, "--no-cache")[1]["run_id"]
    assert (wd / "blobs" / "runs" / first / "data" / "big.bin").is_file()
    done = updraft("runs", "rm", first, "--json", workdir=wd, check=True)
    report = json.loads(done.stdout)
    assert [r["run_id"] for r in report["runs"]] == [first]
    gone_run = report["runs"][0]
    assert gone_run["files"] == 4 and gone_run["bytes"] > 200_000  # the spec and the 3 outputs
    # the outputs are hard links of the cache's objects: deleting the run frees only the spec
    assert 0 < report["freed_bytes"] == gone_run["freed_bytes"] < 1_000
    assert not (wd / "blobs" / "runs" / first).exists()
    assert not (wd / "locks" / f"{first}.lock").exists()
    assert _runs(wd) == [second]
    gone = updraft("status", first, workdir=wd)
    assert gone.returncode == 2 and f"no run '{first}'" in gone.stderr
    assert (wd / "blobs" / "runs" / second / "data" / "big.bin").is_file()  # the other run stays


def test_runs_rm_refuses_unknown_runs_and_deletes_nothing(tmp_path: Path) -> None:
    wf, wd = _workflow(tmp_path), tmp_path / "wd"
    run_id = run_json(wf, wd)[1]["run_id"]
    proc = updraft("runs", "rm", run_id, "nope", workdir=wd)
    assert proc.returncode == 2 and "no run(s) nope" in proc.stderr and "nothing was deleted" in proc.stderr
    assert _runs(wd) == [run_id] and (wd / "blobs" / "runs" / run_id).is_dir()
    assert updraft("runs", "rm", workdir=wd).returncode == 2  # no run named: a usage error


def test_runs_gc_keeps_the_newest_and_leaves_the_cache_alone(tmp_path: Path) -> None:
    wf, wd = _workflow(tmp_path), tmp_path / "wd"
    ids = [run_json(wf, wd)[1]["run_id"] for _ in range(3)]  # the 2nd and 3rd reuse the 1st's results
    cache_before = updraft("cache", "du", "--json", workdir=wd, check=True).stdout
    dry = updraft("runs", "gc", "--keep", "1", "--dry-run", workdir=wd, check=True).stdout
    assert "would delete" in dry and _runs(wd) == ids[::-1]
    done = updraft("runs", "gc", "--keep", "1", workdir=wd, check=True).stdout
    assert "2 run(s) deleted" in done
    assert _runs(wd) == [ids[2]]
    assert sorted(p.name for p in (wd / "blobs" / "runs").iterdir()) == [ids[2]]
    assert updraft("cache", "du", "--json", workdir=wd, check=True).stdout == cache_before
    # the survivor still works from the cache: its files are there
    assert (wd / "blobs" / "runs" / ids[2] / "data" / "size.txt").read_text().strip() == "200000"
    assert updraft("runs", "gc", "--older-than", "1", workdir=wd, check=True).stdout.startswith("0 run(s)")
    assert "1 run(s) deleted" in updraft("runs", "gc", "--older-than", "0", workdir=wd, check=True).stdout
    assert _runs(wd) == []
    refused = updraft("runs", "gc", workdir=wd)
    assert refused.returncode == 2 and "--keep N" in refused.stderr and "--older-than DAYS" in refused.stderr


def test_a_running_run_is_neither_removed_nor_collected(tmp_path: Path) -> None:
    wd = tmp_path / "wd"
    old = run_json(_workflow(tmp_path), wd)[1]["run_id"]
    wf = write_workflow(tmp_path / "slow.json", [{"id": "a", "command": ["sleep", "60"]}])
    proc = subprocess.Popen([sys.executable, "-m", "chalicelib.cli", "run", str(wf), "--workdir", str(wd)],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "PYTHONPATH": str(REPO)}, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(_runs(wd)) < 2:
            time.sleep(0.2)
        live = _runs(wd)[0]
        assert live != old
        refused = updraft("runs", "rm", "latest", workdir=wd)
        assert refused.returncode == 2, refused.stderr
        assert f"`updraft cancel {live}`" in refused.stderr and "RUNNING" in refused.stderr
        collected = json.loads(updraft("runs", "gc", "--keep", "0", "--json", workdir=wd, check=True).stdout)
        assert [r["run_id"] for r in collected["runs"]] == [old]
        assert _runs(wd) == [live] and (wd / "blobs" / "runs" / live).is_dir()
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def test_latest_names_the_newest_run(tmp_path: Path) -> None:
    wf, wd = _workflow(tmp_path), tmp_path / "wd"
    run_json(wf, wd)
    newest = run_json(wf, wd)[1]["run_id"]
    status = json.loads(updraft("status", "latest", "--json", workdir=wd, check=True).stdout)
    assert status["run_id"] == newest
    assert updraft("logs", "latest", "use", workdir=wd, check=True).returncode == 0
    report = updraft("report", "latest", "--out", str(tmp_path / "rep"), workdir=wd, check=True).stdout
    assert f"report of run {newest}" in report


def test_a_mistyped_task_id_gets_the_one_it_meant(tmp_path: Path) -> None:
    wf, wd = _workflow(tmp_path), tmp_path / "wd"
    run_id = run_json(wf, wd)[1]["run_id"]
    for typed in ("make_000", "MAKE-000", "Make_000"):
        proc = updraft("logs", run_id, typed, workdir=wd)
        assert proc.returncode == 2 and "did you mean make-000?" in proc.stderr, proc.stderr


def test_read_only_commands_leave_no_work_dir(tmp_path: Path) -> None:
    wf = _workflow(tmp_path)
    env_clean = {k: v for k, v in os.environ.items() if k != "UPDRAFT_HOME"}  # the default: ./.updraft
    for args in (("status",), ("status", "latest"), ("runs",), ("runs", "--json"), ("logs", "latest", "use"),
                 ("show", str(wf)), ("validate", str(wf)), ("report",), ("runs", "rm", "x"),
                 ("runs", "gc", "--keep", "1")):
        proc = subprocess.run([sys.executable, "-m", "chalicelib.cli", *args], capture_output=True, text=True,
                              cwd=tmp_path, env={**env_clean, "PYTHONPATH": str(REPO)}, timeout=120)
        assert "Traceback" not in proc.stderr, proc.stderr
        assert not (tmp_path / ".updraft").exists(), args
    listing = subprocess.run([sys.executable, "-m", "chalicelib.cli", "runs"], capture_output=True, text=True,
                             cwd=tmp_path, env={**env_clean, "PYTHONPATH": str(REPO)}, timeout=120)
    assert listing.returncode == 0
    assert listing.stdout.count("\n") == 1 and listing.stdout.startswith("no runs here")
    assert "updraft run FILE" in listing.stdout
