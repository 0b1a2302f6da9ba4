"""Whole runs on the emulated cloud: the real app handlers, the real worker process, moto.

Delivery is unfaithful on purpose (duplicates, shuffling, held-back records, async events
delivered twice): a task's effects must still happen exactly once.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_cloud_harness import Delivery, EmulatedCloud, emulated_cloud

pytestmark = pytest.mark.slow


def layered_workflow(effects: Path) -> dict[str, Any]:
    """Four levels of real commands, placements mixed; every task appends its id to `effects`."""
    mark = 'echo "$UPDRAFT_TASK_ID $UPDRAFT_ATTEMPT" >> "$EFFECTS"; '
    gens = [{"id": f"gen{i}", "shell": mark + f'read s < seed.txt; echo $((s + {i})) > nums/g{i}.txt',
             "inputs": ["seed.txt"], "outputs": [f"nums/g{i}.txt"], "placement": p}
            for i, p in enumerate(["function", "container", "auto"])]
    squares = [{"id": f"sq{i}", "shell": mark + f'read n < nums/g{i}.txt; echo $((n * n)) > sq/s{i}.txt',
                "inputs": [f"nums/g{i}.txt"], "outputs": [f"sq/s{i}.txt"], "placement": p}
               for i, p in enumerate(["container", "function", "function"])]
    total = {"id": "sum", "shell": mark + "cat sq/*.txt | paste -sd+ - | bc > total.txt",
             "inputs": [f"sq/s{i}.txt" for i in range(3)], "outputs": ["total.txt"], "placement": "container"}
    report = {"id": "report", "command": ["sh", "-c", mark + 'echo "total=$(cat total.txt)" > report.txt'],
              "inputs": ["total.txt"], "outputs": ["report.txt"], "placement": "function"}
    return {"name": "layered", "defaults": {"env": {"EFFECTS": str(effects)}, "retries": 1,
                                            "resources": {"timeout_s": 60}},
            "tasks": [*gens, *squares, total, report]}


def upload_inputs(ec: EmulatedCloud, files: dict[str, bytes], prefix: str = "inputs/") -> str:
    for path, data in files.items():
        ec.cloud.blobs.put_bytes(prefix + path, data)
    return f"s3://{ec.cloud.config.bucket}/{ec.cloud.config.blob_prefix}{prefix}"


def effects_by_task(effects: Path) -> dict[str, list[str]]:
    seen: dict[str, list[str]] = {}
    for line in effects.read_text().splitlines():
        task, attempt = line.split()
        seen.setdefault(task, []).append(attempt)
    return seen


def test_a_layered_dag_succeeds_with_mixed_placements_and_duplicates(tmp_path: Path) -> None:
    effects = tmp_path / "effects.log"
    effects.touch()
    delivery = Delivery(duplicate_rate=0.5, shuffle=True, hold_back_rate=0.3, seed=7)
    with emulated_cloud(tmp_path, delivery) as ec:
        data = upload_inputs(ec, {"seed.txt": b"3\n"})
        resp = ec.post("/runs", {"workflow": layered_workflow(effects), "data": data})
        assert resp.status_code == 202, resp.json_body
        run_id = resp.json_body["run_id"]
        final = ec.run_until_done(run_id, timeout_s=240)
        assert final["state"] == "SUCCEEDED", (final, ec.worker_log()[-2000:])
        assert final["counts"] == {"SUCCEEDED": 8}
        # 3+0, 3+1, 3+2 squared and summed: 9 + 16 + 25
        assert ec.cloud.blobs.get_bytes(f"runs/{run_id}/data/total.txt").strip() == b"50"
        assert ec.cloud.blobs.get_bytes(f"runs/{run_id}/data/report.txt").strip() == b"total=50"
        # duplicates really happened, yet every task ran exactly once
        assert ec.tally.duplicate_records > 0 and ec.tally.duplicate_invocations > 0
        assert effects_by_task(effects) == {t: ["1"] for t in
                                            ["gen0", "gen1", "gen2", "sq0", "sq1", "sq2", "sum", "report"]}
        manifest = json.loads(ec.cloud.blobs.get_bytes(f"runs/{run_id}/manifest.json"))
        assert manifest["state"] == "SUCCEEDED"
        assert [o["path"] for o in manifest["outputs"]] == ["report.txt"] and manifest["outputs"][0]["produced"]
        tasks = {t["id"]: t for t in manifest["tasks"]}
        assert tasks["sum"]["placement"] == "container" and tasks["report"]["placement"] == "function"
        counts = ec.server.snapshot()
        assert counts[("ecs", "UpdateService")] >= 1  # the worker service was scaled to the backlog
        assert "task succeeded" in ec.worker_log()


def folder_workflow() -> dict[str, Any]:
    """`make` reads folder `refs` and writes folder `db`; `use` (a container) reads `db`
    whole, `one` (a function) a file inside it."""
    return {"name": "folders", "defaults": {"resources": {"timeout_s": 60}}, "tasks": [
        {"id": "make", "shell": "mkdir -p db/sub; cat refs/x > db/a.txt; cat refs/deep/y > db/sub/b.txt",
         "inputs": ["refs"], "outputs": ["db"], "placement": "function"},
        {"id": "use", "shell": "find db -type f | sort > listing; cat db/a.txt db/sub/b.txt >> listing",
         "inputs": ["db"], "outputs": ["listing"], "placement": "container"},
        {"id": "one", "shell": "cat db/sub/b.txt > first", "inputs": ["db/sub/b.txt"], "outputs": ["first"],
         "placement": "function"},
    ]}


def test_folders_are_data_in_the_cloud(tmp_path: Path) -> None:
    """A folder from the data prefix and a folder output, staged in and out by the task
    function and the Fargate worker alike (runner/trees.py on S3)."""
    wf = folder_workflow()
    with emulated_cloud(tmp_path, Delivery()) as ec:
        data = upload_inputs(ec, {"refs/x": b"x\n", "refs/deep/y": b"y\n"})
        resp = ec.post("/runs", {"workflow": wf, "data": data})
        assert resp.status_code == 202, resp.json_body
        run_id = resp.json_body["run_id"]
        final = ec.run_until_done(run_id, timeout_s=240)
        assert final["state"] == "SUCCEEDED", (final, ec.worker_log()[-2000:])
        get = ec.cloud.blobs.get_bytes
        assert get(f"runs/{run_id}/data/db/sub/b.txt") == b"y\n"
        assert get(f"runs/{run_id}/data/listing") == b"db/a.txt\ndb/sub/b.txt\nx\ny\n"
        assert get(f"runs/{run_id}/data/first") == b"y\n"
        missing = ec.post("/runs", {"workflow": {**wf, "tasks": wf["tasks"][:1]},
                                    "data": data.replace("inputs/", "nothing/")})
        assert missing.status_code >= 400 and "refs" in json.dumps(missing.json_body)
