"""Numerical checks of a finished mosaic against the generator's truth.

- size: the mosaic has the region header's size;
- seams: block medians of the background change smoothly everywhere (a step between two
  tiles whose backgrounds were not matched shows as a large second difference);
- astrometry: bright, isolated catalog stars sit where the region's WCS puts them.
"""

from __future__ import annotations

import json
import math
import os
import statistics
from dataclasses import dataclass

from examples.montage.fitsread import Image
from examples.montage.geometry import TanHeader
from examples.montage.sky import Star
from examples.montage.tools.concat_fits import read_ipac


@dataclass(frozen=True)
class Truth:
    region: TanHeader
    stars: tuple[Star, ...]
    levels: tuple[float, ...]  # each tile's mean background level


def load_truth(out: str) -> Truth:
    """The generator's truth/ folder under `out`."""
    with open(os.path.join(out, "truth", "sky.json"), encoding="utf-8") as fh:
        sky = json.load(fh)
    stars = tuple(
        Star(float(r["ra"]), float(r["dec"]), float(r["mag"]))
        for r in read_ipac(os.path.join(out, "truth", "catalog.tbl"))
    )
    levels = tuple(sum(t["background"]) / 4 for t in sky["tiles"])
    return Truth(TanHeader(**sky["region"]), stars, levels)


def block_medians(image: Image, block: int, min_fill: float = 0.9) -> list[list[float | None]]:
    """Median of each block x block square (None where under `min_fill` of it has data)."""
    rows: list[list[float | None]] = []
    for y0 in range(1, image.height - block + 2, block):
        row: list[float | None] = []
        for x0 in range(1, image.width - block + 2, block):
            values = image.region(x0, y0, x0 + block - 1, y0 + block - 1)
            row.append(statistics.median(values) if len(values) >= min_fill * block * block else None)
        rows.append(row)
    return rows


def max_step(medians: list[list[float | None]]) -> float:
    """The largest |second difference| of block medians along rows and columns.

    A smooth background (a plane, a gentle curve) gives about zero; a step of height h
    between two blocks gives about h.
    """
    worst = 0.0
    lines = [list(r) for r in medians] + [list(c) for c in zip(*medians, strict=True)]
    for line in lines:
        for a, b, c in zip(line, line[1:], line[2:], strict=False):
            if a is not None and b is not None and c is not None:
                worst = max(worst, abs(a - 2 * b + c))
    return worst


def star_offsets(image: Image, truth: Truth, max_mag: float = 13.5, box: int = 4) -> list[float]:
    """Distance in pixels from each bright, isolated catalog star to its centroid in the image."""
    region = truth.region
    bright = [(s, region.world_to_pixel(s.ra, s.dec)) for s in truth.stars if s.mag <= max_mag]
    everyone = [region.world_to_pixel(s.ra, s.dec) for s in truth.stars if s.mag <= max_mag + 3]
    offsets: list[float] = []
    margin = box + 6
    for _star, (px, py) in bright:
        if not (margin < px < image.width - margin and margin < py < image.height - margin):
            continue
        if sum(1 for qx, qy in everyone if math.hypot(qx - px, qy - py) < 3 * box) > 1:
            continue  # a neighbour would pull the centroid
        centroid = _centroid(image, round(px), round(py), box)
        if centroid is not None:
            offsets.append(math.hypot(centroid[0] - px, centroid[1] - py))
    return offsets


def _centroid(image: Image, cx: int, cy: int, box: int) -> tuple[float, float] | None:
    ring = image.region(cx - box - 4, cy - box - 4, cx + box + 4, cy + box + 4)
    sky = statistics.median(ring) if ring else 0.0
    total = sx = sy = 0.0
    for y in range(cy - box, cy + box + 1):
        for x in range(cx - box, cx + box + 1):
            value = image.at(x, y) - sky
            if math.isfinite(value) and value > 0:
                total += value
                sx += value * x
                sy += value * y
    return (sx / total, sy / total) if total > 0 else None
