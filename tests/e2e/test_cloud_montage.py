"""The small Montage mosaic (4 tiles, 21 tasks) on the emulated cloud, placements mixed
(functions in-process, containers in the real worker process), with duplicate and
out-of-order delivery switched on. The mosaic is checked like the local run's."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest

from examples.toolcheck import install_hint, missing_tools
from tests.e2e.test_cloud_harness import IAM_ACTIONS, Delivery, EmulatedCloud, emulated_cloud

montage = pytest.importorskip("examples.montage.generate")
_MISSING = missing_tools(montage.GENERATOR_TOOLS + montage.WORKFLOW_TOOLS)
pytestmark = [
    pytest.mark.slow, pytest.mark.tools,
    pytest.mark.skipif(bool(_MISSING), reason=f"Montage tools missing ({', '.join(_MISSING)}): "
                       f"install them with {install_hint(_MISSING)}"),
]


def mixed(workflow: dict[str, Any]) -> dict[str, Any]:
    """Every other task in a container; the rest stay functions (the workflow's default)."""
    for i, task in enumerate(workflow["tasks"]):
        task["placement"] = "container" if i % 2 else "function"
    return workflow


def upload_dir(ec: EmulatedCloud, root: Path, prefix: str) -> str:
    for path in sorted(root.rglob("*")):
        if path.is_file():
            ec.cloud.blobs.put_file(prefix + path.relative_to(root).as_posix(), str(path))
    return f"s3://{ec.cloud.config.bucket}/{prefix}"


def test_the_small_montage_mosaic_succeeds_on_the_emulated_cloud(tmp_path: Path) -> None:
    from examples.montage import dag

    summary = montage.generate(str(tmp_path / "gen"), degrees=0.2, seed=1)
    workflow = mixed(json.loads(Path(str(summary["workflow"])).read_text()))
    delivery = Delivery(duplicate_rate=0.25, shuffle=True, hold_back_rate=0.2, seed=3)
    with emulated_cloud(tmp_path, delivery) as ec:
        data = upload_dir(ec, Path(str(summary["data"])), "inputs/montage/")
        resp = ec.post("/runs", {"workflow": workflow, "data": data})
        assert resp.status_code == 202, resp.json_body
        run_id = resp.json_body["run_id"]
        final = ec.run_until_done(run_id, timeout_s=280)
        assert final["state"] == "SUCCEEDED", (final, ec.worker_log()[-3000:])
        assert final["counts"] == {"SUCCEEDED": 21}
        png = ec.cloud.blobs.get_bytes(f"runs/{run_id}/data/{dag.PNG}")
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        assert struct.unpack(">II", png[16:24]) == (360 // dag.SHRINK_FACTOR, 360 // dag.SHRINK_FACTOR)
        assert ec.cloud.blobs.size(f"runs/{run_id}/data/{dag.MOSAIC}") > 360 * 360 * 4
        tasks = ec.get(f"/runs/{run_id}/tasks").json_body["tasks"]
        assert {t["placement"] for t in tasks} == {"function", "container"}
        assert all(t["attempts"] == 1 for t in tasks)  # duplicates never cost a retry
        assert ec.tally.duplicate_records > 0 and ec.tally.duplicate_invocations > 0
        assert "task succeeded" in ec.worker_log()
        used = set(ec.server.snapshot())
        provisioning = {("dynamodb", "CreateTable"), ("dynamodb", "DescribeTable"), ("s3", "CreateBucket"),
                        ("sqs", "CreateQueue"), ("ecs", "CreateCluster"), ("ecs", "RegisterTaskDefinition"),
                        ("ecs", "CreateService"), ("ec2", "POST")}  # ec2: the service's subnet
        unmapped = used - set(IAM_ACTIONS) - provisioning
        assert not unmapped, f"operations without an IAM action in the policy check: {unmapped}"
