"""Whole runs of real commands through the `updraft` CLI on the local runtime."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.e2e.cli import REPO, run_json, status, updraft, write_workflow


def data_of(workdir: Path, run_id: str) -> Path:
    return workdir / "blobs" / "runs" / run_id / "data"


def test_fan_out_fan_in_passes_files(tmp_path: Path) -> None:
    tasks = [{"id": "split", "shell": "for i in 0 1 2 3 4 5; do echo $i > part$i; done",
              "outputs": [f"part{i}" for i in range(6)]}]
    tasks += [{"id": f"sq{i}", "shell": f"echo $(( $(cat part{i}) * $(cat part{i}) )) > sq{i}",
               "inputs": [f"part{i}"], "outputs": [f"sq{i}"], "placement": "container" if i % 2 else "function"}
              for i in range(6)]
    tasks.append({"id": "sum", "shell": "cat sq* | awk '{s += $1} END {print s}' > total",
                  "inputs": [f"sq{i}" for i in range(6)], "outputs": ["total"]})
    wf = write_workflow(tmp_path / "fan.json", tasks)
    code, out = run_json(wf, tmp_path / "wd")
    assert code == 0, out
    assert out["state"] == "SUCCEEDED" and out["counts"] == {"SUCCEEDED": 8}
    assert (data_of(tmp_path / "wd", out["run_id"]) / "total").read_text().strip() == "55"
    st = status(out["run_id"], tmp_path / "wd")
    placements = {t["id"]: t["placement"] for t in st["tasks"]}
    assert placements["sq1"] == "container" and placements["sq0"] == "function"


def test_failure_in_the_middle_keeps_independent_branch(tmp_path: Path) -> None:
    wf = write_workflow(tmp_path / "f.json", [
        {"id": "a", "shell": "echo a > a", "outputs": ["a"]},
        {"id": "bad", "shell": "echo boom >&2; exit 7", "inputs": ["a"], "outputs": ["b"]},
        {"id": "after_bad", "command": ["cat", "b"], "inputs": ["b"]},
        {"id": "other", "shell": "sleep 0.3; echo ok > o", "outputs": ["o"]},
    ])
    code, out = run_json(wf, tmp_path / "wd")
    assert code == 1 and out["state"] == "FAILED"
    assert out["counts"] == {"SUCCEEDED": 2, "FAILED": 1, "UPSTREAM_FAILED": 1}
    st = {t["id"]: t for t in status(out["run_id"], tmp_path / "wd")["tasks"]}
    assert st["bad"]["reason"] == "NONZERO_EXIT" and st["bad"]["exit_code"] == 7
    logs = updraft("logs", out["run_id"], "bad", workdir=tmp_path / "wd", check=True).stdout
    assert "boom" in logs


def test_the_summary_table_counts_each_type_and_shows_the_failures(tmp_path: Path) -> None:
    tasks = [{"id": f"ok{i}", "command": ["true"], "type": "good"} for i in range(3)]
    tasks += [{"id": f"bad{i}", "shell": f"echo oops-{i} >&2; exit 3", "type": "bad"} for i in range(12)]
    wf = write_workflow(tmp_path / "s.json", tasks)
    proc = updraft("run", str(wf), workdir=tmp_path / "wd")
    assert proc.returncode == 1, proc.stderr
    out = proc.stdout.splitlines()
    assert out[0].startswith("run ") and "  FAILED  15 tasks in " in out[0]
    rows = {line.split()[0]: line.split()[1:] for line in out[2:4]}
    assert rows["bad"][:3] == ["12", "0", "12"] and rows["good"][:3] == ["3", "3", "0"]
    shown = [line.split()[1] for line in out if line.startswith("  FAILED ")]
    assert shown == [f"bad{i}" for i in range(10)]  # the first ten, in submission order
    assert "    | oops-0" in out and "    | oops-9" in out and "    | oops-10" not in out
    assert any(line.startswith("  logs: updraft logs ") for line in out)


def test_retry_then_success(tmp_path: Path) -> None:
    marker = tmp_path / "tried"
    wf = write_workflow(tmp_path / "r.json", [
        {"id": "flaky", "shell": f"if [ -e {marker} ]; then echo ok > out; else touch {marker}; exit 1; fi",
         "outputs": ["out"], "retries": 2},
    ])
    code, out = run_json(wf, tmp_path / "wd")
    assert code == 0, out
    task = status(out["run_id"], tmp_path / "wd")["tasks"][0]
    assert task["state"] == "SUCCEEDED" and task["attempts"] == 2


def test_timeout_is_a_typed_failure(tmp_path: Path) -> None:
    wf = write_workflow(tmp_path / "t.json", [
        {"id": "slow", "command": ["sleep", "30"], "resources": {"timeout_s": 0.5}}])
    started = time.monotonic()
    code, out = run_json(wf, tmp_path / "wd")
    assert code == 1 and time.monotonic() - started < 20
    task = status(out["run_id"], tmp_path / "wd")["tasks"][0]
    assert task["state"] == "FAILED" and task["reason"] == "TIMEOUT"


def test_missing_output_fails_even_with_exit_zero(tmp_path: Path) -> None:
    wf = write_workflow(tmp_path / "m.json", [{"id": "liar", "command": ["true"], "outputs": ["promised.txt"]}])
    code, out = run_json(wf, tmp_path / "wd")
    assert code == 1
    task = status(out["run_id"], tmp_path / "wd")["tasks"][0]
    assert task["reason"] == "MISSING_OUTPUT" and task["exit_code"] == 0


def test_memory_limit_is_enforced(tmp_path: Path) -> None:
    hog = [sys.executable, "-c", "import time; x = bytearray(200 * 1024 * 1024); time.sleep(2)"]
    wf = write_workflow(tmp_path / "oom.json", [{"id": "hog", "command": hog, "resources": {"memory_mb": 64}}])
    code, out = run_json(wf, tmp_path / "wd")
    assert code == 1
    assert status(out["run_id"], tmp_path / "wd")["tasks"][0]["reason"] == "OOM"


def test_disk_quota_is_enforced_and_the_next_task_in_the_slot_starts_clean(tmp_path: Path) -> None:
    # the first writes 3 MB into its 1 MB /tmp and exits 0 at once (before any sample): the
    # sandbox is measured when it ends. With one slot the tasks after it reuse its sandbox
    # folder (the pool keeps as many as attempts in flight, 3) and must find it empty.
    fill = 'head -c 3000000 /dev/zero > "$TMPDIR/big"; echo wrote'
    check = 'test -z "$(ls -A "$TMPDIR")" && test -z "$(ls -A . | grep -v .updraft)"'
    wf = write_workflow(tmp_path / "d.json", [
        {"id": "filler", "shell": fill, "placement": "function", "resources": {"disk_mb": 1}},
        *({"id": f"next{i}", "shell": check} for i in range(6)),
    ], defaults={"retries": 0})
    code, out = run_json(wf, tmp_path / "wd", "--concurrency", "1")
    assert code == 1
    tasks = {t["id"]: t for t in status(out["run_id"], tmp_path / "wd")["tasks"]}
    assert (tasks["filler"]["state"], tasks["filler"]["reason"], tasks["filler"]["exit_code"]) == (
        "FAILED", "DISK_QUOTA", 0)
    assert updraft("logs", out["run_id"], "filler", workdir=tmp_path / "wd", check=True).stdout == "wrote\n"
    assert {tasks[f"next{i}"]["state"] for i in range(6)} == {"SUCCEEDED"}


def test_a_successful_task_keeps_its_log_and_a_silent_one_has_none(tmp_path: Path) -> None:
    wf = write_workflow(tmp_path / "l.json", [
        {"id": "talker", "shell": "echo to stdout; echo to stderr >&2"},
        {"id": "quiet", "command": ["true"], "after": ["talker"]},
        {"id": "talker2", "shell": "echo again", "after": ["quiet"]},
    ])
    code, out = run_json(wf, tmp_path / "wd", "--concurrency", "1")
    assert code == 0, out
    logs = {t: updraft("logs", out["run_id"], t, workdir=tmp_path / "wd").stdout for t in ("talker", "talker2")}
    assert logs == {"talker": "to stdout\nto stderr\n", "talker2": "again\n"}


def test_argv_is_not_passed_through_a_shell(tmp_path: Path) -> None:
    weird = "$(touch pwned); `id`; * | > x"
    wf = write_workflow(tmp_path / "argv.json", [
        {"id": "echo", "command": [sys.executable, "-c", "import sys; open('out', 'w').write(sys.argv[1])", weird],
         "outputs": ["out"]}])
    code, out = run_json(wf, tmp_path / "wd")
    assert code == 0, out
    assert (data_of(tmp_path / "wd", out["run_id"]) / "out").read_text() == weird


def test_external_inputs_are_checked_before_anything_is_written(tmp_path: Path) -> None:
    wf = write_workflow(tmp_path / "in.json", [
        {"id": "a", "command": ["cat", "in/one.txt", "two.txt"], "inputs": ["in/one.txt", "two.txt"]}])
    data = tmp_path / "data"
    (data / "in").mkdir(parents=True)
    (data / "in" / "one.txt").write_text("1")
    proc = updraft("run", str(wf), "--data", str(data), workdir=tmp_path / "wd")
    assert proc.returncode == 2
    assert "two.txt" in proc.stderr and "one.txt" not in proc.stderr.split("missing")[1]
    assert json.loads(updraft("runs", "--json", workdir=tmp_path / "wd").stdout) == []
    (data / "two.txt").write_text("2")
    code, out = run_json(wf, tmp_path / "wd", "--data", str(data))
    assert code == 0, out


def test_invalid_workflow_exits_2_naming_every_problem(tmp_path: Path) -> None:
    wf = write_workflow(tmp_path / "bad.json", [
        {"id": "a", "command": ["true"], "after": ["b"]}, {"id": "b", "command": ["true"], "after": ["a"]},
        {"id": "c", "command": ["true"], "outputs": ["/abs"]}])
    for cmd in ("validate", "run"):
        proc = updraft(cmd, str(wf), workdir=tmp_path / "wd") if cmd == "run" else updraft(cmd, str(wf))
        assert proc.returncode == 2
        assert "dependency cycle: a -> b -> a" in proc.stderr and "'/abs' is absolute" in proc.stderr
        assert "Traceback" not in proc.stderr


def test_show_json_has_the_documented_keys(tmp_path: Path) -> None:
    wf = write_workflow(tmp_path / "s.json", [
        {"id": "a", "command": ["gen"], "outputs": ["x"]}, {"id": "b", "command": ["use"], "inputs": ["x", "ext"]}])
    out = json.loads(updraft("show", str(wf), "--json", check=True).stdout)
    assert {k: out[k] for k in ("tasks", "edges", "levels", "max_width", "critical_path_length")} == {
        "tasks": 2, "edges": 1, "levels": 2, "max_width": 1, "critical_path_length": 2}
    assert out["task_types"] == {"gen": 1, "use": 1} and out["external_inputs"] == ["ext"]


def test_resume_after_kill_9_does_not_rerun_finished_tasks(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    tasks = [{"id": f"t{i}", "shell": f"echo t{i} >> {ledger}; sleep 0.4; echo {i} > o{i}",
              "outputs": [f"o{i}"], **({"inputs": [f"o{i - 1}"]} if i else {})} for i in range(8)]
    wf = write_workflow(tmp_path / "chain.json", tasks)
    wd = tmp_path / "wd"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "chalicelib.cli", "run", str(wf), "--workdir", str(wd)],
                            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (not ledger.exists() or len(ledger.read_text().split()) < 4):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    run_id = json.loads(updraft("runs", "--json", workdir=wd, check=True).stdout)[0]["run_id"]
    before = status(run_id, wd)
    done_before = {t["id"] for t in before["tasks"] if t["state"] == "SUCCEEDED"}
    assert before["state"] == "RUNNING" and 2 <= len(done_before) < 8
    resumed = updraft("resume", run_id, "--json", workdir=wd, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    after = status(run_id, wd)
    assert after["state"] == "SUCCEEDED"
    runs_per_task = {t: ledger.read_text().split().count(t) for t in (f"t{i}" for i in range(8))}
    assert all(runs_per_task[t] == 1 for t in done_before), runs_per_task
    assert (data_of(wd, run_id) / "o7").read_text().strip() == "7"


def test_cancel_from_another_process_stops_the_run(tmp_path: Path) -> None:
    wf = write_workflow(tmp_path / "c.json", [{"id": f"s{i}", "command": ["sleep", "30"]} for i in range(3)])
    wd = tmp_path / "wd"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "chalicelib.cli", "run", str(wf), "--workdir", str(wd), "--json"],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run_id = None
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and run_id is None:
        proc_runs = updraft("runs", "--json", workdir=wd)
        if proc_runs.returncode == 0 and json.loads(proc_runs.stdout or "[]"):
            run_id = json.loads(proc_runs.stdout)[0]["run_id"]
        time.sleep(0.1)
    assert run_id is not None
    time.sleep(0.5)
    started = time.monotonic()
    assert updraft("cancel", run_id, workdir=wd, check=True).stdout.strip().endswith("CANCELLED")
    out, _ = proc.communicate(timeout=30)
    assert time.monotonic() - started < 15
    assert proc.returncode == 1 and json.loads(out.strip().splitlines()[-1])["state"] == "CANCELLED"
    assert {t["state"] for t in status(run_id, wd)["tasks"]} == {"CANCELLED"}


def test_auto_task_out_of_memory_is_retried_bigger_in_a_container(tmp_path: Path) -> None:
    hog = [sys.executable, "-c", "import time; x = bytearray(100 * 1024 * 1024); time.sleep(0.5); open('o', 'w')"]
    wf = write_workflow(tmp_path / "grow.json", [
        {"id": "hog", "command": hog, "outputs": ["o"], "placement": "auto", "resources": {"memory_mb": 64}}])
    code, out = run_json(wf, tmp_path / "wd")
    assert code == 0, out
    task = status(out["run_id"], tmp_path / "wd")["tasks"][0]
    # 64 MB on a function: OOM -> retried in a container with 128 MB: enough for ~110 MB
    assert task["state"] == "SUCCEEDED" and task["placement"] == "container" and task["attempts"] == 2


def test_local_runs_are_bound_by_lambdas_limits_only_when_asked(tmp_path: Path) -> None:
    # 1.3 GB held for a second: over Lambda's default 1,024 MB, which a local run does not apply
    hog = {"id": "hog", "command": [sys.executable, "-c", "import time; b = b'x' * (1300 << 20); time.sleep(1)"]}
    wf = write_workflow(tmp_path / "hog.json", [hog])
    code, out = run_json(wf, tmp_path / "wd", "--no-cache")
    assert code == 0, out
    code, out = run_json(wf, tmp_path / "wd", "--no-cache", "--emulate-lambda")
    assert code == 1 and out["failed"][0]["reason"] == "OOM"
    st = {t["id"]: t for t in status(out["run_id"], tmp_path / "wd")["tasks"]}
    tail = updraft("logs", out["run_id"], "hog", workdir=tmp_path / "wd").stdout + str(st["hog"])
    assert "resources.memory_mb" in tail  # the failure names the field to raise
    # timeout_s over Lambda's 900 s runs locally; refused with --emulate-lambda or the task's own placement
    long_task = write_workflow(tmp_path / "long.json", [{"id": "long", "command": ["true"],
                                                         "resources": {"timeout_s": 5000}}])
    assert run_json(long_task, tmp_path / "wd")[0] == 0
    assert updraft("validate", str(long_task)).returncode == 0  # validate checks what run accepts
    assert updraft("validate", str(long_task), "--emulate-lambda").returncode == 2
    refused = updraft("run", str(long_task), "--emulate-lambda", workdir=tmp_path / "wd")
    assert refused.returncode == 2 and "function limit of 900 s" in refused.stderr
    own = write_workflow(tmp_path / "own.json", [{"id": "long", "command": ["true"], "placement": "function",
                                                  "resources": {"timeout_s": 5000}}])
    refused = updraft("run", str(own), workdir=tmp_path / "wd")
    assert refused.returncode == 2 and "own placement 'function'" in refused.stderr


def test_a_timeout_names_the_field_to_raise(tmp_path: Path) -> None:
    wf = write_workflow(tmp_path / "t.json", [{"id": "slow", "command": ["sleep", "5"],
                                                "resources": {"timeout_s": 0.5}}])
    code, out = run_json(wf, tmp_path / "wd")
    assert code == 1 and out["failed"][0]["reason"] == "TIMEOUT"
    logs = updraft("logs", out["run_id"], "slow", workdir=tmp_path / "wd").stdout
    assert "raise the task's resources.timeout_s" in logs, logs


def test_the_summary_counts_the_time_of_failed_attempts_that_were_retried(tmp_path: Path) -> None:
    marker = tmp_path / "tried"
    wf = write_workflow(tmp_path / "r.json", [
        {"id": "flaky", "shell": f"sleep 0.4; if [ -e {marker} ]; then exit 0; fi; touch {marker}; exit 1",
         "retries": 1, "type": "flaky"},
    ])
    proc = updraft("run", str(wf), workdir=tmp_path / "wd")
    assert proc.returncode == 0, proc.stderr
    row = next(line.split() for line in proc.stdout.splitlines() if line.strip().startswith("flaky"))
    assert float(row[4]) >= 0.8  # two attempts of at least 0.4 s each (the last alone: about 0.4)
