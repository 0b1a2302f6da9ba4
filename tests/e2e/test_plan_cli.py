"""`updraft plan` and `updraft simulate` as a user runs them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.e2e.cli import updraft, write_workflow


def _fan(tmp_path: Path, width: int = 12) -> Path:
    tasks = [{"id": "split", "command": ["split"], "placement": "auto", "outputs": [f"p{i}" for i in range(width)],
              "hints": {"runtime_s": 4}}]
    tasks += [{"id": f"w{i}", "type": "work", "command": ["work", f"p{i}"], "placement": "auto",
               "inputs": [f"p{i}"], "outputs": [f"r{i}"], "hints": {"runtime_s": 60, "memory_bytes": 3e8}}
              for i in range(width)]
    tasks.append({"id": "merge", "command": ["merge"], "placement": "auto", "inputs": [f"r{i}" for i in range(width)],
                  "outputs": ["out"], "hints": {"runtime_s": 10}})
    return write_workflow(tmp_path / "fan.json", tasks)


def test_plan_for_a_deadline_then_simulate_that_plan(tmp_path: Path) -> None:
    wf = _fan(tmp_path)
    plan_file = tmp_path / "plan.json"
    proc = updraft("plan", str(wf), "--deadline", "150", "--out", str(plan_file), check=True)
    for word in ("objective: deadline 150 s", "split", "work", "merge", "all-function", "all-container",
                 "prices us-east-1 read"):
        assert word in proc.stdout
    plan = json.loads(plan_file.read_text())
    assert plan["meets"] and set(plan["choices"]) == {"split", "merge", *(f"w{i}" for i in range(12))}
    sim = json.loads(updraft("simulate", str(wf), "--plan", str(plan_file), "--json", check=True).stdout)
    assert sim["state"] == "SUCCEEDED" and sim["tasks"] == 14
    assert sim["makespan_s"] <= 150
    assert sim["makespan_s"] == pytest.approx(sim["predicted"]["makespan_s"], rel=0.01)


def test_simulate_the_papers_single_worker_next_to_the_planners_choice(tmp_path: Path) -> None:
    wf = _fan(tmp_path)
    worker = ["--fixed-workers", "1:0.25:512"]
    one = json.loads(updraft("simulate", str(wf), "--plan", "all-container", *worker, "--json", check=True).stdout)
    fast = json.loads(updraft("simulate", str(wf), "--plan", "chosen", "--objective", "makespan", *worker, "--json",
                              check=True).stdout)
    # one quarter-vCPU worker runs the 12 x 60 s fan one after another
    assert one["makespan_s"] > 12 * 60 * 4
    assert fast["makespan_s"] < one["makespan_s"] / 10
    assert one["workers_started"] == 0 and fast["invocations"] >= 12


def test_plan_json_lists_every_plan(tmp_path: Path) -> None:
    out = json.loads(updraft("plan", str(_fan(tmp_path)), "--objective", "cost", "--json", check=True).stdout)
    assert out["objective"] == "cost" and set(out["plans"]) == {"chosen", "all-function", "all-container"}
    assert out["plans"]["chosen"]["cost"]["total"] <= out["plans"]["all-container"]["cost"]["total"] + 1e-12


def test_an_impossible_deadline_exits_1_and_says_why(tmp_path: Path) -> None:
    proc = updraft("plan", str(_fan(tmp_path)), "--deadline", "5")
    assert proc.returncode == 1
    assert "cannot meet the deadline" in proc.stdout and "NO" in proc.stdout


@pytest.mark.parametrize(("args", "message"), [
    (["--deadline", "10", "--budget", "1"], "not allowed with argument"),
    (["--fixed-workers", "one"], "--fixed-workers wants N:VCPU:MB"),
    (["--deadline", "-3"], "--deadline must be a positive number"),
    (["--history", "/nonexistent/history.jsonl"], "no such file"),
])
def test_user_mistakes_are_one_line_and_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    proc = updraft("plan", str(_fan(tmp_path)), *args)
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_simulate_refuses_an_unknown_plan(tmp_path: Path) -> None:
    proc = updraft("simulate", str(_fan(tmp_path)), "--plan", "fastest-please")
    assert proc.returncode == 2 and "neither a plan file nor one of" in proc.stderr


def test_measured_history_in_the_work_dir_drives_the_plan(tmp_path: Path) -> None:
    wf = _fan(tmp_path)
    workdir = tmp_path / "wd"
    workdir.mkdir()
    sample = {"task_type": "work", "env": "local", "duration_s": 600.0, "memory_mb": 1024, "peak_rss_mb": 200.0}
    (workdir / "planner-history.jsonl").write_text("\n".join(json.dumps(sample) for _ in range(20)) + "\n")
    proc = updraft("plan", str(wf), "--objective", "makespan", workdir=workdir, check=True)
    assert "history+hint 12" in proc.stdout
    row = next(line for line in proc.stdout.splitlines() if line.startswith("work "))
    predicted = float(re.search(r"([\d,]+\.\d) s", row).group(1).replace(",", ""))  # type: ignore[union-attr]
    assert predicted > 300  # 20 measured runs of 600 s outweigh the 60 s hint


def test_the_montage_trace_plans_and_simulates(shared_workflows: Path) -> None:
    trace = shared_workflows / "wfcommons" / "montage-chameleon-2mass-01d-001.json"
    out = json.loads(updraft("simulate", str(trace), "--plan", "chosen", "--budget", "0.02", "--json",
                             check=True).stdout)
    assert out["state"] == "SUCCEEDED" and out["tasks"] == 103 and out["cost"]["total"] <= 0.02
