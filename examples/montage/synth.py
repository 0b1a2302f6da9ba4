"""Write a Sky's input files with Montage's own tools: tiles by mMakeImg, overlaps by mOverlaps.

Layout of the generator's output folder:

    data/region.hdr           the mosaic's header template (what mHdr would have written)
    data/raw/<tile>.fits      the input tiles: star field + noise + a background plane each
    data/tools/*.py           difffit.py and concat_fits.py, staged into the tasks that run them
    truth/catalog.tbl         the stars drawn into the tiles (IPAC table: ra, dec, mag)
    truth/sky.json            the layout: region, tile headers and background planes
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from examples.montage import sky as skymod
from examples.montage.tools.concat_fits import read_ipac

TOOLS_DIR = Path(__file__).with_name("tools")
HELPERS = ("difffit.py", "concat_fits.py")


class ToolError(RuntimeError):
    pass


def run_montage(argv: list[str], cwd: str | None = None) -> str:
    """Run a Montage tool, which exits 0 even on some errors: check its printed status too."""
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=cwd, check=False)
    if proc.returncode != 0 or 'stat="OK"' not in proc.stdout:
        said = f"{proc.stdout.strip()} {proc.stderr.strip()}".strip()
        raise ToolError(f"{' '.join(argv)} failed (exit {proc.returncode}): {said}")
    return proc.stdout


def write_inputs(sky: skymod.Sky, out: str, jobs: int | None = None) -> list[tuple[str, str]]:
    """Write data/ and truth/ under `out`; return the overlapping tile pairs (file names)."""
    data, truth = os.path.join(out, "data"), os.path.join(out, "truth")
    os.makedirs(os.path.join(data, "raw"), exist_ok=True)
    os.makedirs(os.path.join(data, "tools"), exist_ok=True)
    os.makedirs(truth, exist_ok=True)
    _write(os.path.join(data, "region.hdr"), sky.region.text())
    catalog = os.path.join(truth, "catalog.tbl")
    _write(catalog, skymod.catalog_text(sky.stars))
    _write(os.path.join(truth, "sky.json"), json.dumps(sky.to_dict(), indent=1) + "\n")
    for helper in HELPERS:
        shutil.copyfile(TOOLS_DIR / helper, os.path.join(data, "tools", helper))
    with tempfile.TemporaryDirectory(prefix="montage-synth-") as tmp:
        with ThreadPoolExecutor(max_workers=jobs or os.cpu_count() or 1) as pool:
            list(pool.map(lambda t: _make_tile(t, catalog, data, tmp), sky.tiles))
        return overlapping_pairs(os.path.join(data, "raw"), tmp)


def _make_tile(tile: skymod.Tile, catalog: str, data: str, tmp: str) -> None:
    # mMakeImg 6.0 draws each source one pixel up and right of where its WCS puts it (its
    # gaussian is centred on the 1-based position but indexed 0-based). Drawing with the
    # reference pixel moved one down-left, then writing the true header, cancels that.
    drawn = os.path.join(tmp, f"{tile.name}.drawn.hdr")
    true = os.path.join(tmp, f"{tile.name}.hdr")
    scratch = os.path.join(tmp, f"{tile.name}.fits")
    _write(drawn, tile.header.shifted(-1.0, -1.0).text())
    _write(true, tile.header.text())
    bg = [f"{b:.3f}" for b in tile.background]
    run_montage([
        "mMakeImg", "-n", f"{skymod.NOISE}", "-b", *bg,
        "-t", catalog, "mag", f"{skymod.PSF_WIDTH_PX}", "eq", "2000", f"{skymod.REF_MAG}", "mag", "gaussian",
        drawn, scratch,
    ])
    run_montage(["mPutHdr", scratch, os.path.join(data, "raw", f"{tile.name}.fits"), true])


def overlapping_pairs(raw_dir: str, tmp: str) -> list[tuple[str, str]]:
    """The pairs mOverlaps finds among the raw tiles, as (plus, minus) file names, sorted."""
    images, diffs = os.path.join(tmp, "raw.tbl"), os.path.join(tmp, "diffs.tbl")
    run_montage(["mImgtbl", raw_dir, images])
    run_montage(["mOverlaps", images, diffs])
    names = {row["cntr"]: os.path.basename(row["fname"]) for row in read_ipac(images)}
    pairs = {tuple(sorted((names[r["cntr1"]], names[r["cntr2"]]))) for r in read_ipac(diffs)}
    return sorted((a, b) for a, b in pairs)


def _write(path: str, text: str) -> None:
    with open(path, "w", encoding="ascii") as fh:
        fh.write(text)
