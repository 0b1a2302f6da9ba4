"""A small Montage mosaic (4 tiles), generated and run for real through `updraft run`, then
checked numerically: its size, seamless background across former tile borders, and stars at
their catalog positions."""

from __future__ import annotations

import shutil
import statistics
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from examples.montage import check, dag, fitsread
from examples.montage.generate import GENERATOR_TOOLS, WORKFLOW_TOOLS, generate
from examples.toolcheck import install_hint, missing_tools
from tests.e2e.cli import run_json

_MISSING = missing_tools(GENERATOR_TOOLS + WORKFLOW_TOOLS)
pytestmark = [
    pytest.mark.tools,
    pytest.mark.skipif(bool(_MISSING), reason=f"Montage tools missing ({', '.join(_MISSING)}): "
                       f"install them with {install_hint(_MISSING)}"),
]


@dataclass(frozen=True)
class MontageRun:
    gen: Path
    data: Path  # the run's data root in the blob store
    result: dict[str, object]
    code: int


@pytest.fixture(scope="module")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> MontageRun:
    base = tmp_path_factory.mktemp("montage")
    summary = generate(str(base / "gen"), degrees=0.2, seed=1)
    assert summary["tiles"] == 4
    workdir = base / "work"
    code, result = run_json(Path(str(summary["workflow"])), workdir, "--data", str(summary["data"]))
    data = workdir / "blobs" / "runs" / str(result["run_id"]) / "data"
    return MontageRun(base / "gen", data, result, code)


def test_small_mosaic_runs_every_task_successfully(small_run: MontageRun) -> None:
    assert small_run.code == 0, small_run.result
    assert small_run.result["state"] == "SUCCEEDED"
    assert small_run.result["counts"] == {"SUCCEEDED": 21}  # 4 tiles, 6 overlaps: 2*4 + 6 + 7


def test_mosaic_has_the_region_size_and_a_png_half_as_big(small_run: MontageRun) -> None:
    truth = check.load_truth(str(small_run.gen))
    mosaic = fitsread.read(str(small_run.data / dag.MOSAIC))
    assert (mosaic.width, mosaic.height) == (truth.region.naxis1, truth.region.naxis2) == (360, 360)
    png = (small_run.data / dag.PNG).read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    assert (width, height) == (360 // dag.SHRINK_FACTOR, 360 // dag.SHRINK_FACTOR)
    covered = mosaic.region(1, 1, mosaic.width, mosaic.height)
    assert len(covered) > 0.98 * mosaic.width * mosaic.height  # the tiles cover the whole region


def test_background_is_seamless_across_former_tile_borders(small_run: MontageRun, tmp_path: Path) -> None:
    truth = check.load_truth(str(small_run.gen))
    assert max(truth.levels) - min(truth.levels) > 30  # the raw tiles disagree by tens of counts
    mosaic = fitsread.read(str(small_run.data / dag.MOSAIC))
    assert check.max_step(check.block_medians(mosaic, 20)) < 5.0
    # The same check on the projected tiles added WITHOUT background matching finds the steps:
    # proof that it can fail.
    shutil.copytree(small_run.data / "projected", tmp_path / "projected")
    subprocess.run(["mImgtbl", "-r", ".", "p.tbl"], cwd=tmp_path, check=True, capture_output=True)
    shutil.copy(small_run.gen / "data" / "region.hdr", tmp_path / "region.hdr")
    subprocess.run(["mAdd", "p.tbl", "region.hdr", "raw.fits"], cwd=tmp_path, check=True, capture_output=True)
    unmatched = fitsread.read(str(tmp_path / "raw.fits"))
    assert check.max_step(check.block_medians(unmatched, 20)) > 20.0


def test_stars_sit_at_their_catalog_positions(small_run: MontageRun) -> None:
    truth = check.load_truth(str(small_run.gen))
    mosaic = fitsread.read(str(small_run.data / dag.MOSAIC))
    offsets = check.star_offsets(mosaic, truth)
    assert len(offsets) >= 5
    assert statistics.median(offsets) < 0.3
    assert max(offsets) < 1.0


def test_generation_is_deterministic_for_a_seed(tmp_path: Path) -> None:
    generate(str(tmp_path / "a"), degrees=0.2, seed=4)
    generate(str(tmp_path / "b"), degrees=0.2, seed=4)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert len(files) > 6
    for rel in files:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel


def test_quarter_degree_has_the_classic_task_count(tmp_path: Path) -> None:
    summary = generate(str(tmp_path), degrees=0.25, seed=1)
    assert (summary["tiles"], summary["pairs"], summary["tasks"]) == (9, 20, 45)
