"""A deterministic synthetic sky: the mosaic region, a grid of overlapping tiles, a star catalog.

Everything here is pure (no files, no tools) so that the layout, task counts and the truth
the tests compare against follow from (degrees, ra, dec, seed) alone.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from examples.montage.geometry import TanHeader, square_header, tan_deproject

# Tile grid: a tile every STEP_DEG, each TILE_DEG wide, so neighbours (diagonals too) overlap.
STEP_DEG = 0.1
TILE_DEG = 0.13
JITTER_DEG = 0.005
MAX_ROTATION_DEG = 3.0
STARS_PER_SQ_DEG = 3000
REF_MAG = 20.0  # a star of this magnitude peaks at 1 count above the background
BRIGHTEST_MAG, FAINTEST_MAG = 9.0, 17.5
PSF_WIDTH_PX = 3.0
NOISE = 2.0
LEVEL_RANGE = (40.0, 240.0)  # each tile's background level is drawn from this range
MAX_TILT = 4.0  # half the background's rise across a tile, at most


@dataclass(frozen=True)
class Tile:
    name: str
    row: int
    col: int
    header: TanHeader
    background: tuple[float, float, float, float]  # mMakeImg's bg1..bg4: the plane at the corners


@dataclass(frozen=True)
class Star:
    ra: float
    dec: float
    mag: float


@dataclass(frozen=True)
class Sky:
    degrees: float
    ra: float
    dec: float
    seed: int
    region: TanHeader
    tiles: tuple[Tile, ...]
    stars: tuple[Star, ...]

    def to_dict(self) -> dict[str, object]:
        return {
            "degrees": self.degrees, "ra": self.ra, "dec": self.dec, "seed": self.seed,
            "region": vars(self.region),
            "tiles": [
                {"name": t.name, "row": t.row, "col": t.col, "header": vars(t.header),
                 "background": list(t.background)}
                for t in self.tiles
            ],
        }


def grid_size(degrees: float) -> int:
    """Tiles per side: the fewest (at least 2) whose union covers `degrees`."""
    return max(2, math.ceil(max(0.0, degrees - TILE_DEG) / STEP_DEG - 1e-9) + 1)


def make_sky(degrees: float, ra: float, dec: float, seed: int, pixel_arcsec: float = 2.0) -> Sky:
    if degrees <= 0 or degrees > 10:
        raise ValueError(f"degrees must be in (0, 10], got {degrees}")
    if not -80.0 <= dec <= 80.0:
        raise ValueError(f"dec must be within 80 degrees of the equator, got {dec}")
    if not 0.2 <= pixel_arcsec <= 60.0:
        raise ValueError(f"pixel_arcsec must be in [0.2, 60], got {pixel_arcsec}")
    rng = random.Random(seed)
    pixel_deg = pixel_arcsec / 3600.0
    region = square_header(ra, dec, degrees, pixel_deg)
    n = grid_size(degrees)
    cells = [(row, col) for row in range(n) for col in range(n)]
    headers = [_tile_header(rng, ra, dec, n, row, col, pixel_deg) for row, col in cells]
    planes = _background_planes(rng, len(cells))
    tiles = tuple(
        Tile(f"t{row:02d}{col:02d}", row, col, header, plane)
        for (row, col), header, plane in zip(cells, headers, planes, strict=True)
    )
    half = (n - 1) * STEP_DEG / 2 + TILE_DEG / 2 + 0.02
    stars = _stars(rng, ra, dec, half)
    return Sky(degrees, ra, dec, seed, region, tiles, stars)


def _tile_header(rng: random.Random, ra: float, dec: float, n: int, row: int, col: int,
                 pixel_deg: float) -> TanHeader:
    offset = (n - 1) / 2.0
    xi = -(col - offset) * STEP_DEG + rng.uniform(-JITTER_DEG, JITTER_DEG)  # east is left
    eta = (row - offset) * STEP_DEG + rng.uniform(-JITTER_DEG, JITTER_DEG)
    tra, tdec = tan_deproject(ra, dec, xi, eta)
    return square_header(tra, tdec, TILE_DEG, pixel_deg, rng.uniform(-MAX_ROTATION_DEG, MAX_ROTATION_DEG))


def _background_planes(rng: random.Random, count: int) -> list[tuple[float, float, float, float]]:
    """A level and a tilt per tile (another night, another sky brightness), as mMakeImg's corners.

    Levels differ by up to LEVEL_RANGE; tilts average to zero over the tiles, as on a sky whose
    true background is flat, so the matched mosaic comes out flat rather than tilted.
    """
    levels = [rng.uniform(*LEVEL_RANGE) for _ in range(count)]
    tilts = [(rng.uniform(-MAX_TILT, MAX_TILT), rng.uniform(-MAX_TILT, MAX_TILT)) for _ in range(count)]
    mean_x = sum(t[0] for t in tilts) / count
    mean_y = sum(t[1] for t in tilts) / count
    planes = []
    for level, (tx, ty) in zip(levels, tilts, strict=True):
        tx, ty = tx - mean_x, ty - mean_y
        planes.append((
            round(level - tx - ty, 3), round(level + tx - ty, 3),
            round(level + tx + ty, 3), round(level - tx + ty, 3),
        ))
    return planes


def _stars(rng: random.Random, ra: float, dec: float, half: float) -> tuple[Star, ...]:
    """Uniform on the tangent plane, magnitudes from a power law (faint stars outnumber bright)."""
    count = round(STARS_PER_SQ_DEG * (2 * half) ** 2)
    stars = []
    for _ in range(count):
        xi, eta = rng.uniform(-half, half), rng.uniform(-half, half)
        sra, sdec = tan_deproject(ra, dec, xi, eta)
        # N(<m) grows as 10^(0.3 m): invert the cumulative distribution on [bright, faint].
        lo, hi = 10 ** (0.3 * BRIGHTEST_MAG), 10 ** (0.3 * FAINTEST_MAG)
        mag = math.log10(lo + rng.random() * (hi - lo)) / 0.3
        stars.append(Star(round(sra, 7), round(sdec, 7), round(mag, 3)))
    return tuple(stars)


def catalog_text(stars: tuple[Star, ...]) -> str:
    """The catalog as an IPAC table (what mMakeImg reads)."""
    lines = ["|     ra      |     dec     |   mag   |", "|   double    |   double    |  double |"]
    lines += [f" {s.ra:13.7f} {s.dec:13.7f} {s.mag:9.3f}" for s in stars]
    return "\n".join(lines) + "\n"
