"""A small BLAST search (synthetic database, planted queries), run for real through `updraft run`:
every planted query must find the sequence it was cut from, and no decoy may hit anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from examples.blast import check, dag
from examples.blast.generate import WORKFLOW_TOOLS, generate
from examples.toolcheck import install_hint, missing_tools
from tests.e2e.cli import run_json, status

_MISSING = missing_tools(WORKFLOW_TOOLS)
pytestmark = [
    pytest.mark.tools,
    pytest.mark.skipif(bool(_MISSING), reason=f"BLAST+ tools missing ({', '.join(_MISSING)}): "
                       f"install them with {install_hint(_MISSING)}"),
]


def test_every_planted_query_finds_its_source_sequence(tmp_path: Path) -> None:
    summary = generate(str(tmp_path / "gen"), sequences=80, length=1500, queries=24, decoys=4, chunks=3, seed=2)
    assert summary["tasks"] == 3 + 3
    workdir = tmp_path / "work"
    code, result = run_json(Path(str(summary["workflow"])), workdir, "--data", str(summary["data"]))
    assert code == 0, result
    assert result["counts"] == {"SUCCEEDED": 6}
    data = workdir / "blobs" / "runs" / str(result["run_id"]) / "data"
    best = data / dag.BEST
    assert check.problems(str(tmp_path / "gen"), str(best)) == []
    assert len(check.read_table(str(best))) == 24  # one best hit per planted query, none for decoys
    for i in range(3):
        assert (data / f"hits/chunk_{i:03d}.tsv").is_file()
    tasks = {t["id"]: t for t in status(str(result["run_id"]), workdir)["tasks"]}
    assert all(tasks[f"blastn-{i:03d}"]["state"] == "SUCCEEDED" for i in range(3))


def test_a_wrong_truth_is_caught(tmp_path: Path) -> None:
    """The same check fails when a query's expected source is not what BLAST found."""
    summary = generate(str(tmp_path / "gen"), sequences=40, length=1000, queries=6, decoys=1, chunks=2, seed=3)
    workdir = tmp_path / "work"
    code, result = run_json(Path(str(summary["workflow"])), workdir, "--data", str(summary["data"]))
    assert code == 0, result
    best = workdir / "blobs" / "runs" / str(result["run_id"]) / "data" / dag.BEST
    expected = tmp_path / "gen" / "truth" / "expected.tsv"
    lines = expected.read_text().splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("q"))
    cells = lines[first].split("\t")
    cells[1] = "seq9999"
    lines[first] = "\t".join(cells)
    expected.write_text("\n".join(lines) + "\n")
    found = check.problems(str(tmp_path / "gen"), str(best))
    assert len(found) == 1 and cells[0] in found[0]
