"""Load on the emulated cloud, at a size CI affords: a big workflow and 50 concurrent
submissions, all SUCCEEDED with the invariants holding (tests/faults/load.py).

    UPDRAFT_LOAD_TASKS=10000 UPDRAFT_LOAD_SUBMISSIONS=50 pytest tests/faults/test_load.py

runs the full size of issue 10 (about the time of scripts/bench-load, which also writes the
figures to docs/benchmarks.md). A subprocess, so that its peak memory is its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.e2e.cli import REPO

pytestmark = pytest.mark.slow

TASKS = int(os.environ.get("UPDRAFT_LOAD_TASKS", "400"))
SUBMISSIONS = int(os.environ.get("UPDRAFT_LOAD_SUBMISSIONS", "50"))


@pytest.mark.timeout(max(600, TASKS // 2))
def test_a_big_workflow_and_concurrent_submissions_all_succeed() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "tests.faults.load", "--tasks", str(TASKS), "--submissions", str(SUBMISSIONS),
         "--json"], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True,
        timeout=max(600, TASKS // 2), check=False,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith('{"tasks"')]
    assert lines, proc.stdout[-2000:] + proc.stderr[-3000:]
    result = json.loads(lines[-1])
    print(json.dumps(result, indent=1))  # time and peak memory, in the test's output
    assert result["failures"] == [] and proc.returncode == 0, result["failures"][:20]
    assert result["total_tasks"] == TASKS + 5 * SUBMISSIONS
    assert result["mean_batch"] > 2  # completions share coordinator batches under load
    assert 0 < result["peak_rss_mb"] < 2048
