"""`updraft run --objective/--deadline/--budget` places tasks by the planner, and every run
feeds the planner's history."""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.cli import run_json, status, write_workflow


def test_runs_feed_history_and_plans_place_tasks(tmp_path: Path) -> None:
    tasks = [{"id": f"s{i}", "shell": f"sleep 0.2; echo {i} > o{i}", "outputs": [f"o{i}"], "type": "step",
              "placement": "auto"} for i in range(4)]
    wf = write_workflow(tmp_path / "p.json", tasks)
    wd = tmp_path / "wd"
    code, _ = run_json(wf, wd)
    assert code == 0
    history = (wd / "planner-history.jsonl").read_text().splitlines()
    assert len(history) == 4 and json.loads(history[0])["task_type"] == "step"
    code, out = run_json(wf, wd, "--objective", "makespan", "--no-cache")
    assert code == 0
    placements = {t["placement"] for t in status(out["run_id"], wd)["tasks"]}
    assert placements <= {"function", "container"} and placements
    code, out = run_json(wf, wd, "--budget", "1.0", "--no-cache")
    assert code == 0 and out["counts"] == {"SUCCEEDED": 4}
