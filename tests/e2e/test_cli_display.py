"""The run's display as a user sees it: on a terminal of 80 or 200 columns (a pseudo-terminal),
piped into a log, and when the terminal goes away (SIGHUP) or Ctrl-C stops the run."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.cli import REPO, updraft, write_workflow
from tests.support.pty_run import run_in_pty

STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ ")
GATE_WAIT = "for i in $(seq 300); do [ -e {gate} ] && break; sleep 0.1; done; [ -e {gate} ]"


def gated_workflow(tmp_path: Path) -> tuple[Path, Path]:
    """Six tasks: `bad` fails at once (and takes `after` and `after2` with it), `gate` runs
    until the test opens the gate (at most 30 s; unopened, it fails), so the failure is shown
    while the run goes on only if the display shows it at once."""
    gate = tmp_path / "gate-open"
    wf = write_workflow(tmp_path / "wf.json", [
        {"id": "prep-1", "command": ["sh", "-c", "echo 1 > p1"], "outputs": ["p1"]},
        {"id": "prep-2", "command": ["sh", "-c", "echo 2 > p2"], "outputs": ["p2"]},
        {"id": "bad", "shell": "echo first line; echo the-reason-it-broke >&2; exit 3", "outputs": ["x"]},
        {"id": "after", "command": ["cat", "x"], "inputs": ["x"]},
        {"id": "after2", "command": ["cat", "x"], "inputs": ["x"]},
        {"id": "gate", "type": "gatekeeper", "shell": GATE_WAIT.format(gate=gate) + " && cat p1 p2 > g",
         "inputs": ["p1", "p2"], "outputs": ["g"]},
    ])
    return wf, gate


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), **extra}


@pytest.mark.parametrize("columns", [80, 200])
def test_on_a_terminal_the_display_fits_shows_the_failure_at_once_and_ends_at_100(tmp_path: Path, columns: int) -> None:
    wf, gate = gated_workflow(tmp_path)
    seen: dict[str, str] = {}

    def open_gate_once_the_failure_shows(text: str) -> None:
        if "updraft logs" in text and "not run, because bad failed" in text and not gate.exists():
            seen["before_end"] = text
            gate.touch()

    # the default work dir (UPDRAFT_HOME): the commands the display prints need no --workdir
    result = run_in_pty([sys.executable, "-m", "chalicelib.cli", "run", str(wf)], columns=columns, rows=24,
                        env=_env(UPDRAFT_HOME=str(tmp_path / "wd")), cwd=str(REPO), timeout=120,
                        on_output=open_gate_once_the_failure_shows)
    text = result.text
    assert result.returncode == 1, text
    run_id = re.search(r"run (\d{8}-\d{6}-[0-9a-f]+): 6 tasks", text)
    assert run_id, text
    # the failure, its reason, its log's last lines and the command for the whole log, while
    # the run was still going (the gate task waited for them)
    early = seen.get("before_end", "")
    assert "FAILED bad: NONZERO_EXIT" in early, text
    assert "the-reason-it-broke" in early
    assert f"updraft logs {run_id.group(1)} bad" in early
    assert "UPSTREAM_FAILED after, after2: not run, because bad failed" in early
    # nothing wider than the terminal: no line wraps, so no refresh scrolls (a path is as
    # long as it is: the summary's outputs line names one)
    wide = [seg for seg in result.segments() if len(seg) > columns and str(tmp_path) not in seg]
    assert not wide, wide
    # redrawn in place: what the terminal shows at the end holds the live region once (its
    # last frame), the failure once above it, and nothing scrolled but those lines
    screen = result.screen(columns, 24)
    assert sum(line.startswith("all tasks") for line in screen) == 1, screen
    # each redraw clears what the last one left: the counts line is the last frame's alone
    # (earlier frames' were longer: "running 1 ok 2 failed 1 upstream_failed 2")
    assert "ok 3 failed 1 upstream_failed 2" in screen, screen
    assert sum(line.startswith("FAILED bad: NONZERO_EXIT") for line in screen) == 1, screen
    assert screen.index(next(ln for ln in screen if ln.startswith("FAILED bad"))) < screen.index(
        next(ln for ln in screen if ln.startswith("all tasks"))), screen
    assert sum(f"run {run_id.group(1)}:" in line for line in screen) == 1, screen
    # the last frame: every task ended, 100 %
    frames = [seg for seg in result.segments() if seg.startswith("all tasks")]
    assert frames and frames[-1].split()[-2:] == ["6/6", "100%"], frames[-3:]
    last = text[text.rindex("all tasks"):]
    assert re.search(r"\n  gatekeeper +━+ +1/1", last) and re.search(r"\n  cat +━+ +2/2", last), last
    assert "UPSTREAM_FAILED 2 tasks: not run, because bad failed" in text  # the summary names the parent
    assert f"resume {run_id.group(1)}" in text  # what to do after the fix


def test_piped_output_is_timestamped_lines_the_run_id_first_each_flushed_as_it_happens(tmp_path: Path) -> None:
    wf, gate = gated_workflow(tmp_path)
    wd = tmp_path / "wd"
    proc = subprocess.Popen([sys.executable, "-m", "chalicelib.cli", "run", str(wf), "--workdir", str(wd)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO,
                            env=_env(UPDRAFT_PROGRESS_EVERY="0"), start_new_session=True)
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        for line in proc.stdout:  # read while it runs: each line must arrive when it happens
            lines.append(line.rstrip("\n"))
            if line.rstrip().endswith("not run, because bad failed"):
                break
        assert proc.poll() is None, "the failure was printed only at the end"
        gate.touch()
        lines += proc.stdout.read().splitlines()
    finally:
        if proc.poll() is None:
            gate.touch()
        proc.wait(timeout=120)
    assert proc.returncode == 1
    first = lines[0]
    assert STAMP.match(first) and re.search(r" run \d{8}-\d{6}-[0-9a-f]+: 6 tasks \(workdir ", first), lines
    run_id = first.split()[2].rstrip(":")
    summary = lines.index(next(ln for ln in lines if ln.startswith(f"run {run_id}  FAILED")))
    display = lines[:summary]
    assert all(STAMP.match(ln) for ln in display), display
    body = [STAMP.sub("", ln) for ln in display]
    assert "FAILED bad: NONZERO_EXIT: the command exited with code 3" in body
    assert f"  logs: updraft logs {run_id} bad --workdir {wd}" in body
    assert any(ln.startswith("progress ") and "/6 done" in ln for ln in body)
    assert body[-1].startswith(f"run {run_id} FAILED: 6/6 done (100%)")


def test_submit_wait_follows_through_the_api_with_the_same_display(tmp_path: Path) -> None:
    wf = write_workflow(tmp_path / "wf.json", [
        {"id": "bad", "shell": "echo the-reason-it-broke >&2; exit 3", "outputs": ["x"]},
        {"id": "after", "command": ["cat", "x"], "inputs": ["x"]},
    ])
    proc = updraft("submit", str(wf), "--wait", workdir=tmp_path / "wd", timeout=120)
    assert proc.returncode == 1, proc.stderr
    body = [STAMP.sub("", ln) for ln in proc.stderr.splitlines() if STAMP.match(ln)]
    assert body and body[0].startswith("run ") and "2 tasks" in body[0], proc.stderr
    run_id = body[0].split()[1].rstrip(":")
    assert "FAILED bad: NONZERO_EXIT: the command exited with code 3" in body, proc.stderr
    assert "  | the-reason-it-broke" in body
    assert f"  logs: updraft logs {run_id} bad --workdir {tmp_path / 'wd'}" in body
    assert "UPSTREAM_FAILED after: not run, because bad failed" in body
    assert body[-1].startswith(f"run {run_id} FAILED: 2/2 done (100%)")


def _start_slow_run(tmp_path: Path, **popen: object) -> tuple[subprocess.Popen[str], Path]:
    wf = write_workflow(tmp_path / "slow.json", [{"id": "a", "command": ["sleep", "60"]},
                                                  {"id": "b", "command": ["sleep", "60"]}])
    wd = tmp_path / "wd"
    proc = subprocess.Popen([sys.executable, "-m", "chalicelib.cli", "run", str(wf), "--workdir", str(wd)],
                            cwd=REPO, env=_env(UPDRAFT_PROGRESS_EVERY="0"), start_new_session=True, text=True,
                            **popen)  # type: ignore[call-overload]
    return proc, wd


def _wait_running(wd: Path) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        out = updraft("status", "--json", workdir=wd)
        if out.returncode == 0:
            st = json.loads(out.stdout)
            if st["counts"].get("RUNNING") == 2:
                return str(st["run_id"])
        time.sleep(0.2)
    raise AssertionError("the run did not start its tasks")


def test_a_closed_terminal_sighup_cancels_the_run_cleanly(tmp_path: Path) -> None:
    master, slave = os.openpty()
    proc, wd = _start_slow_run(tmp_path, stdin=slave, stdout=slave, stderr=slave)
    os.close(slave)
    try:
        run_id = _wait_running(wd)
        os.close(master)  # the terminal goes away: its writes fail from now on
        master = -1
        proc.send_signal(signal.SIGHUP)
        proc.wait(timeout=60)
    finally:
        if master >= 0:
            os.close(master)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    st = json.loads(updraft("status", run_id, "--json", workdir=wd, check=True).stdout)
    assert st["state"] == "CANCELLED", st  # not RUNNING with nobody executing it
    assert {t["state"] for t in st["tasks"]} == {"CANCELLED"}
    assert "no live process" not in updraft("status", run_id, workdir=wd).stdout


def test_ctrl_c_says_how_to_resume(tmp_path: Path) -> None:
    proc, wd = _start_slow_run(tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        run_id = _wait_running(wd)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 1
    assert f"run {run_id}  CANCELLED" in out
    assert f"resume with: updraft resume {run_id} --workdir {wd}" in err


def test_under_nohup_sighup_is_left_ignored_and_the_run_goes_on(tmp_path: Path) -> None:
    def ignore_hangups() -> None:  # what nohup does before it starts the command
        signal.signal(signal.SIGHUP, signal.SIG_IGN)

    proc, wd = _start_slow_run(tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               preexec_fn=ignore_hangups)
    try:
        run_id = _wait_running(wd)
        proc.send_signal(signal.SIGHUP)
        st = json.loads(updraft("status", run_id, "--json", workdir=wd, check=True).stdout)
        assert proc.poll() is None and st["state"] == "RUNNING"
        proc.send_signal(signal.SIGTERM)  # then stopped as any run is
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert json.loads(updraft("status", run_id, "--json", workdir=wd, check=True).stdout)["state"] == "CANCELLED"


def test_resume_shows_its_run_with_the_same_display(tmp_path: Path) -> None:
    wf = write_workflow(tmp_path / "wf.json", [
        {"id": "bad", "shell": "echo try-again >&2; exit 3", "outputs": ["x"]},
        {"id": "after", "command": ["cat", "x"], "inputs": ["x"]},
    ])
    wd = tmp_path / "wd"
    first = updraft("run", str(wf), "--json", workdir=wd)
    run_id = json.loads(first.stdout.strip().splitlines()[-1])["run_id"]
    again = updraft("resume", run_id, workdir=wd, env={"UPDRAFT_PROGRESS_EVERY": "0"})
    assert again.returncode == 1
    body = [STAMP.sub("", ln) for ln in again.stderr.splitlines() if STAMP.match(ln)]
    assert body[0] == f"run {run_id}: 2 tasks (workdir {wd})", again.stderr
    assert "FAILED bad (attempt 2): NONZERO_EXIT: the command exited with code 3" in body
    assert "UPSTREAM_FAILED after: not run, because bad failed" in body
    assert body[-1].startswith(f"run {run_id} FAILED: 2/2 done (100%)")
    assert f"re-run what failed, after a fix: updraft resume {run_id} --workdir {wd}" in again.stderr
    status = updraft("status", run_id, workdir=wd, check=True).stdout
    assert re.search(r"after +UPSTREAM_FAILED .* UPSTREAM \(bad failed\)", status), status
