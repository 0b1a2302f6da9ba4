"""The HECIL-shaped example run for real through `updraft run`: long reads with about 9 percent
errors come out of short-read correction with under 2 percent."""

from __future__ import annotations

from pathlib import Path

import pytest

from examples.hecil import check, dag
from examples.hecil.generate import WORKFLOW_TOOLS, generate
from examples.toolcheck import install_hint, missing_tools
from tests.e2e.cli import run_json

_MISSING = missing_tools(WORKFLOW_TOOLS)
pytestmark = [
    pytest.mark.tools,
    pytest.mark.skipif(bool(_MISSING), reason=f"bwa/samtools missing ({', '.join(_MISSING)}): "
                       f"install them with {install_hint(_MISSING)}"),
]


def test_short_reads_correct_the_long_reads(tmp_path: Path) -> None:
    summary = generate(str(tmp_path / "gen"), genome_kb=12, long_kb=3, coverage=40, chunks=2, parts=2, seed=5)
    assert summary["tasks"] == 2 * 2 + 2 + 5
    workdir = tmp_path / "work"
    code, result = run_json(Path(str(summary["workflow"])), workdir, "--data", str(summary["data"]))
    assert code == 0, result
    assert result["counts"] == {"SUCCEEDED": 11}
    corrected = workdir / "blobs" / "runs" / str(result["run_id"]) / "data" / dag.CORRECTED
    sources = str(tmp_path / "gen" / "truth" / "sources.fa")
    after = check.error_rates(str(corrected), sources)
    assert len(after) == 4
    assert max(after.values()) < 0.02, after
    before = check.error_rates(str(tmp_path / "gen" / "data" / dag.LONG), sources)
    assert min(before.values()) > 0.05, before
