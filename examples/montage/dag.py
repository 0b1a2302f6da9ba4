"""The classic Montage DAG as a native Updraft workflow.

    mProjectPP (per tile) -> mDiffFit (per overlapping pair) -> mConcatFit -> mBgModel
    -> mBackground (per tile) -> mImgtbl -> mAdd -> mShrink -> mViewer (PNG)

plus one mImgtbl over the projected tiles, which mConcatFit, mBgModel and mBackground read
for the image ids. mImgtbl runs recursively on the sandbox, which holds only the staged tiles,
so its tables name files by their data paths ("projected/t0000.fits"), which is what
mBackground's table mode and mAdd look up. Task count: 2 * tiles + pairs + 7. Every file a task reads is declared,
because a task sees only its declared inputs.
"""

from __future__ import annotations

from typing import Any

from examples.montage.sky import Sky

MOSAIC = "mosaic/mosaic.fits"
SMALL = "mosaic/mosaic_small.fits"
PNG = "mosaic/mosaic.png"
SHRINK_FACTOR = 2
_MB = 1024 * 1024


def _stem(name: str) -> str:
    return name[: -len(".fits")] if name.endswith(".fits") else name


def _area(path: str) -> str:
    return _stem(path) + "_area.fits"


def _task(tid: str, ttype: str, command: list[str], inputs: list[str], outputs: list[str],
          **extra: Any) -> dict[str, Any]:
    task: dict[str, Any] = {
        "id": tid, "type": ttype, "command": command, "inputs": inputs, "outputs": outputs,
    }
    task.update(extra)
    return task


def build(sky: Sky, pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """The workflow document (native format) for a sky and its overlapping tile pairs."""
    names = [f"{t.name}.fits" for t in sky.tiles]
    projected = [f"projected/{n}" for n in names]
    corrected = [f"corrected/{n}" for n in names]
    tasks: list[dict[str, Any]] = []
    for name, proj in zip(names, projected, strict=True):
        tasks.append(_task(
            f"project-{_stem(name)}", "mProjectPP",
            ["mProjectPP", f"raw/{name}", proj, "region.hdr"],
            [f"raw/{name}", "region.hdr"], [proj, _area(proj)],
        ))
    fits: list[str] = []
    for plus, minus in pairs:
        fit = f"fits/{_stem(plus)}-{_stem(minus)}.fit"
        fits.append(fit)
        a, b = f"projected/{plus}", f"projected/{minus}"
        tasks.append(_task(
            f"difffit-{_stem(plus)}-{_stem(minus)}", "mDiffFit",
            ["python3", "tools/difffit.py", a, b, "region.hdr", fit],
            ["tools/difffit.py", a, _area(a), b, _area(b), "region.hdr"], [fit],
        ))
    tasks.append(_task(
        "imgtbl-projected", "mImgtbl", ["mImgtbl", "-r", ".", "pimages.tbl"],
        list(projected), ["pimages.tbl"],
    ))
    tasks.append(_task(
        "concatfit", "mConcatFit", ["python3", "tools/concat_fits.py", "pimages.tbl", "fits.tbl", *fits],
        ["tools/concat_fits.py", "pimages.tbl", *fits], ["fits.tbl"],
    ))
    tasks.append(_task(
        "bgmodel", "mBgModel", ["mBgModel", "pimages.tbl", "fits.tbl", "corrections.tbl"],
        ["pimages.tbl", "fits.tbl"], ["corrections.tbl"],
    ))
    for name, proj, corr in zip(names, projected, corrected, strict=True):
        tasks.append(_task(
            f"background-{_stem(name)}", "mBackground",
            ["mBackground", "-t", proj, corr, "pimages.tbl", "corrections.tbl"],
            [proj, _area(proj), "pimages.tbl", "corrections.tbl"], [corr, _area(corr)],
        ))
    tasks.append(_task(
        "imgtbl-corrected", "mImgtbl", ["mImgtbl", "-r", ".", "cimages.tbl"],
        list(corrected), ["cimages.tbl"],
    ))
    mosaic_mb = _mosaic_mb(sky)
    tasks.append(_task(
        "add", "mAdd", ["mAdd", "cimages.tbl", "region.hdr", MOSAIC],
        ["cimages.tbl", "region.hdr", *[p for c in corrected for p in (c, _area(c))]],
        [MOSAIC, _area(MOSAIC)],
        resources={"memory_mb": 2048, "disk_mb": max(1024, 3 * mosaic_mb + _tiles_mb(sky))},
        placement="auto",
    ))
    tasks.append(_task(
        "shrink", "mShrink", ["mShrink", MOSAIC, SMALL, str(SHRINK_FACTOR)], [MOSAIC], [SMALL],
        resources={"disk_mb": max(512, 2 * mosaic_mb)},
    ))
    tasks.append(_task(
        "viewer", "mViewer",
        ["mViewer", "-ct", "0", "-gray", SMALL, "-2s", "max", "gaussian-log", "-out", PNG],
        [SMALL], [PNG],
    ))
    return {
        "format": "updraft/v1",
        "name": f"montage-{sky.degrees:g}deg",
        "description": (
            f"Montage mosaic of {sky.degrees:g} x {sky.degrees:g} degrees around "
            f"({sky.ra:g}, {sky.dec:g}): {len(names)} synthetic tiles, {len(pairs)} overlaps (seed {sky.seed})"
        ),
        "defaults": {
            "resources": {"memory_mb": 1024, "cpus": 1, "disk_mb": 512, "timeout_s": 300},
            "placement": "function",
            "retries": 1,
        },
        "inputs": ["region.hdr", "tools/difffit.py", "tools/concat_fits.py", *[f"raw/{n}" for n in names]],
        "tasks": tasks,
    }


def _mosaic_mb(sky: Sky) -> int:
    return 1 + sky.region.naxis1 * sky.region.naxis2 * 8 // _MB


def _tiles_mb(sky: Sky) -> int:
    """Corrected tiles and their area images, as mAdd stages them in."""
    return 1 + sum(2 * 8 * t.header.naxis1 * t.header.naxis2 for t in sky.tiles) * 2 // _MB


def task_count(tiles: int, pairs: int) -> int:
    return 2 * tiles + pairs + 7
