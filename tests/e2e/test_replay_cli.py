"""`updraft run TRACE --replay`: every WfCommons trace replays through the real CLI and runtime.

Each task must succeed, and start only after every one of its parents finished (checked on
the timestamps `status --json` reports).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chalicelib.workflow import formats
from chalicelib.workflow.graph import build_graph
from chalicelib.workflow.replay import to_replay
from tests.e2e.cli import status, updraft

TRACES = [
    "wfcommons/srasearch-chameleon-10a-001.json",
    "wfcommons/blast-chameleon-small-001.json",
    "wfcommons/montage-chameleon-2mass-01d-001.json",
    "wfcommons/epigenomics-chameleon-hep-2seq-50k-001.json",
    "wfcommons/1000genome-chameleon-8ch-250k-001.json",
    "wfcommons/montage-chameleon-dss-125d-001.json.gz",
    "makeflow/wfcommons-makeflow-instances/blast/blast-chameleon-small-001.json",
]


@pytest.mark.parametrize("rel", TRACES)
def test_trace_replays_with_every_task_after_its_parents(
        shared_workflows: Path, tmp_path: Path, rel: str) -> None:
    path = shared_workflows / rel
    proc = updraft("run", str(path), "--replay", "--time-scale", "0.0001",
                   "--size-scale", "0.00001", "--json", workdir=tmp_path, timeout=280)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    expected = to_replay(formats.load(str(path)), time_scale=0.0001, size_scale=0.00001)
    assert result["state"] == "SUCCEEDED"
    assert result["counts"] == {"SUCCEEDED": len(expected.tasks)}

    report = status(result["run_id"], tmp_path)
    tasks = {t["id"]: t for t in report["tasks"]}
    assert set(tasks) == {t.id for t in expected.tasks}
    assert all(t["state"] == "SUCCEEDED" for t in tasks.values())
    for child, parents in build_graph(expected).parents.items():
        for parent in parents:
            assert tasks[parent]["finished_at"] <= tasks[child]["started_at"], (parent, child)


def test_replay_flags_reject_a_negative_scale(shared_workflows: Path, tmp_path: Path) -> None:
    path = shared_workflows / TRACES[0]
    proc = updraft("run", str(path), "--replay", "--time-scale", "-1", workdir=tmp_path)
    assert proc.returncode == 2 and "time_scale must be a number >= 0" in proc.stderr
