"""The Montage example's pure parts: sky layout, TAN geometry, the DAG, the helper tools, the checks."""

from __future__ import annotations

import array
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from chalicelib.workflow.formats import loads
from chalicelib.workflow.validate import validate
from examples.montage import check, dag, fitsread, sky
from examples.montage.geometry import TanHeader, square_header, tan_deproject, tan_project
from examples.montage.tools import concat_fits


def grid_pairs(s: sky.Sky) -> list[tuple[str, str]]:
    """Every 8-neighbour pair of the tile grid (what mOverlaps finds for this layout)."""
    by_cell = {(t.row, t.col): f"{t.name}.fits" for t in s.tiles}
    pairs = set()
    for (r, c), name in by_cell.items():
        for dr, dc in ((0, 1), (1, -1), (1, 0), (1, 1)):
            other = by_cell.get((r + dr, c + dc))
            if other:
                pairs.add(tuple(sorted((name, other))))
    return sorted(pairs)  # type: ignore[arg-type]


@pytest.mark.parametrize(("degrees", "per_side"), [(0.2, 2), (0.25, 3), (0.5, 5), (1.0, 10), (2.0, 20)])
def test_grid_has_the_fewest_tiles_that_cover_the_region(degrees: float, per_side: int) -> None:
    assert sky.grid_size(degrees) == per_side
    assert (per_side - 1) * sky.STEP_DEG + sky.TILE_DEG >= degrees
    assert (per_side - 2) * sky.STEP_DEG + sky.TILE_DEG < degrees or per_side == 2


def test_sky_is_the_same_for_the_same_seed_and_differs_for_another() -> None:
    a = sky.make_sky(0.5, 275.196, -16.171, seed=7)
    assert a == sky.make_sky(0.5, 275.196, -16.171, seed=7)
    assert a.stars != sky.make_sky(0.5, 275.196, -16.171, seed=8).stars


def test_tile_backgrounds_differ_so_that_matching_has_work_to_do() -> None:
    s = sky.make_sky(0.5, 10.0, 20.0, seed=1)
    levels = [sum(t.background) / 4 for t in s.tiles]
    assert max(levels) - min(levels) > 50
    assert len({round(level) for level in levels}) > len(levels) // 2
    # tilts (corner 2 minus corner 1, corner 4 minus corner 1) average out over the tiles
    tilt_x = sum(t.background[1] - t.background[0] for t in s.tiles) / len(s.tiles)
    assert abs(tilt_x) < 0.01


def test_tiles_are_spread_over_the_region_and_overlap_their_neighbours() -> None:
    s = sky.make_sky(0.5, 275.196, -16.171, seed=3)
    centres = {(t.row, t.col): s.region.world_to_pixel(t.header.crval1, t.header.crval2) for t in s.tiles}
    pixel_deg = s.region.cdelt2
    x00, y00 = centres[(0, 0)]
    x01, _ = centres[(0, 1)]
    _, y10 = centres[(1, 0)]
    step_px = sky.STEP_DEG / pixel_deg
    assert x01 - x00 == pytest.approx(step_px, abs=2 * sky.JITTER_DEG / pixel_deg)  # east is left: col grows with x
    assert y10 - y00 == pytest.approx(step_px, abs=2 * sky.JITTER_DEG / pixel_deg)
    assert sky.TILE_DEG - sky.STEP_DEG > 2 * sky.JITTER_DEG  # neighbours always overlap


def test_stars_cover_the_mosaic_with_more_faint_than_bright() -> None:
    s = sky.make_sky(0.5, 275.196, -16.171, seed=1)
    inside = [st for st in s.stars if 0 < s.region.world_to_pixel(st.ra, st.dec)[0] < s.region.naxis1]
    assert len(inside) > 0.5 * len(s.stars)
    bright = sum(1 for st in s.stars if st.mag < 13)
    faint = sum(1 for st in s.stars if st.mag > 15)
    assert 0 < bright < faint


@pytest.mark.parametrize("crota", [0.0, 2.5, -3.0])
def test_tan_pixel_and_world_round_trip(crota: float) -> None:
    h = square_header(275.2, -16.2, 0.13, 2 / 3600, crota)
    assert h.world_to_pixel(275.2, -16.2) == pytest.approx((h.crpix1, h.crpix2))
    for x, y in ((1.0, 1.0), (200.5, 17.0), (h.naxis1, h.naxis2)):
        ra, dec = h.pixel_to_world(x, y)
        assert h.world_to_pixel(ra, dec) == pytest.approx((x, y), abs=1e-6)


def test_tan_projection_is_east_left_and_inverts() -> None:
    xi, eta = tan_project(100.0, 40.0, 100.1, 40.05)
    assert xi > 0 and eta > 0
    assert tan_deproject(100.0, 40.0, xi, eta) == pytest.approx((100.1, 40.05))
    h = square_header(100.0, 40.0, 0.5, 1 / 3600)
    x, _ = h.world_to_pixel(100.1, 40.0)
    assert x < h.crpix1  # increasing right ascension goes left in the image
    with pytest.raises(ValueError):
        tan_project(0.0, 0.0, 180.0, 0.0)


def test_header_template_has_the_keywords_montage_reads() -> None:
    text = TanHeader(10, 20, 1.5, -2.5, 5.5, 10.5, -0.001, 0.001, 1.0).text()
    keys = [line.split("=")[0].strip() for line in text.splitlines()]
    assert keys[:5] == ["SIMPLE", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2"]
    assert {"CTYPE1", "CTYPE2", "CRVAL1", "CRVAL2", "CRPIX1", "CRPIX2", "CDELT1", "CDELT2", "CROTA2"} <= set(keys)
    assert keys[-1] == "END"
    assert "CTYPE1  = 'RA---TAN'" in text


@pytest.mark.parametrize(("degrees", "tasks"), [(0.25, 45), (0.5, 129), (1.0, 549)])
def test_task_counts_match_the_classic_montage_sizes(degrees: float, tasks: int) -> None:
    s = sky.make_sky(degrees, 275.196, -16.171, seed=1)
    doc = dag.build(s, grid_pairs(s))
    assert len(doc["tasks"]) == tasks == dag.task_count(len(s.tiles), len(grid_pairs(s)))


def test_workflow_is_valid_and_every_input_is_produced_or_external() -> None:
    s = sky.make_sky(0.25, 275.196, -16.171, seed=1)
    pairs = grid_pairs(s)
    doc = dag.build(s, pairs)
    wf = validate(loads(json.dumps(doc)))
    external = {f.path for f in wf.inputs}
    produced = {out for t in wf.tasks for out in t.outputs}
    for t in wf.tasks:
        missing = set(t.inputs) - external - produced
        assert not missing, f"{t.id} reads {missing}, which nothing provides"
    types: dict[str, int] = {}
    for t in wf.tasks:
        types[t.task_type] = types.get(t.task_type, 0) + 1
    assert types == {
        "mProjectPP": 9, "mDiffFit": len(pairs), "mImgtbl": 2, "mConcatFit": 1, "mBgModel": 1,
        "mBackground": 9, "mAdd": 1, "mShrink": 1, "mViewer": 1,
    }


def test_every_task_declares_the_files_its_command_names() -> None:
    s = sky.make_sky(0.25, 275.196, -16.171, seed=1)
    wf = loads(json.dumps(dag.build(s, grid_pairs(s))))
    for t in wf.tasks:
        declared = set(t.inputs) | set(t.outputs)
        for arg in t.command[1:]:
            if "/" in arg or arg.endswith((".fits", ".tbl", ".hdr", ".py", ".fit", ".png")):
                assert arg in declared, f"{t.id}: {arg} is not declared"
        for path in t.inputs:  # each projected/corrected image travels with its area image
            if path.startswith(("projected/", "corrected/")) and not path.endswith("_area.fits") \
                    and t.task_type not in ("mImgtbl",):
                assert path[:-5] + "_area.fits" in t.inputs, f"{t.id}: {path} without its area image"


def test_mosaic_png_comes_from_the_shrunk_mosaic() -> None:
    s = sky.make_sky(0.2, 275.196, -16.171, seed=1)
    wf = loads(json.dumps(dag.build(s, grid_pairs(s))))
    tasks = wf.task_map()
    assert tasks["viewer"].outputs == (dag.PNG,)
    assert tasks["viewer"].inputs == (dag.SMALL,)
    assert tasks["shrink"].inputs == (dag.MOSAIC,)
    assert set(tasks["add"].outputs) == {dag.MOSAIC, "mosaic/mosaic_area.fits"}


def test_read_ipac_splits_at_the_bars_and_keeps_overflowing_values(tmp_path: Path) -> None:
    text = (
        "\\datatype = fitshdr\n"
        "| cntr1 | cntr2 |      plus |     minus |   diff   |\n"
        "| int   | int   |      char |      char |   char   |\n"
        "       0       1 t0000.fits  t0100.fits  diff.000000.000001.fits\n"
        "      12       3 a.fits      b.fits      d.fits\n"
    )
    path = tmp_path / "t.tbl"
    path.write_text(text)
    rows = concat_fits.read_ipac(str(path))
    assert rows[0] == {"cntr1": "0", "cntr2": "1", "plus": "t0000.fits", "minus": "t0100.fits",
                       "diff": "diff.000000.000001.fits"}
    assert rows[1]["cntr1"] == "12" and rows[1]["diff"] == "d.fits"


def test_concat_fits_maps_file_names_to_image_ids_and_skips_non_overlaps(tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    images = tmp_path / "pimages.tbl"
    images.write_text(
        "| cntr |  fname               |\n| int  |  char                |\n"
        "      0  projected/t0001.fits\n      1  projected/t0000.fits\n"
    )
    fit = ("plus=t0000.fits minus=t0001.fits stat=OK a=0.5 b=-0.25 c=12.5 crpix1=10.5 crpix2=20.5 "
           "xmin=-3.5 xmax=4 ymin=-5 ymax=6 xcenter=0.1 ycenter=0.2 npixel=1234 rms=1.5 boxx=1 boxy=2 "
           "boxwidth=30 boxheight=40 boxang=90")
    (tmp_path / "a.fit").write_text(fit + "\n")
    (tmp_path / "b.fit").write_text("plus=t0000.fits minus=t0002.fits stat=NOOVERLAP\n")
    out = tmp_path / "fits.tbl"
    assert concat_fits.main([str(images), str(out), str(tmp_path / "a.fit"), str(tmp_path / "b.fit")]) == 0
    assert "skipped=1" in capsys.readouterr().out
    rows = concat_fits.read_ipac(str(out))
    assert len(rows) == 1
    row = rows[0]
    assert (row["plus"], row["minus"]) == ("1", "0")
    assert float(row["a"]) == 0.5 and float(row["c"]) == 12.5 and row["xmin"] == "-3"
    assert list(row) == [name for name, _, _ in concat_fits.COLUMNS]


def test_concat_fits_fails_on_an_image_missing_from_the_table(tmp_path: Path) -> None:
    images = tmp_path / "pimages.tbl"
    images.write_text("| cntr | fname  |\n| int  | char   |\n      0 x.fits\n")
    fit = tmp_path / "a.fit"
    fit.write_text("plus=x.fits minus=y.fits stat=OK a=0 b=0 c=0 crpix1=0 crpix2=0 xmin=0 xmax=0 ymin=0 "
                   "ymax=0 xcenter=0 ycenter=0 npixel=0 rms=0 boxx=0 boxy=0 boxwidth=0 boxheight=0 boxang=0\n")
    assert concat_fits.main([str(images), str(tmp_path / "out.tbl"), str(fit)]) == 1


def write_fits(path: Path, width: int, height: int, values: list[float]) -> None:
    cards = [
        "SIMPLE  =                    T", "BITPIX  =                  -64", "NAXIS   =                    2",
        f"NAXIS1  = {width:20d}", f"NAXIS2  = {height:20d}", "CTYPE1  = 'RA---TAN'           / a comment", "END",
    ]
    header = "".join(c.ljust(80) for c in cards).encode("ascii")
    header += b" " * (-len(header) % 2880)
    data = array.array("d", values)
    if sys.byteorder == "little":
        data.byteswap()
    raw = data.tobytes()
    path.write_bytes(header + raw + b"\0" * (-len(raw) % 2880))


def test_fits_reader_reads_header_and_big_endian_pixels(tmp_path: Path) -> None:
    values = [float(i) for i in range(12)]
    values[5] = math.nan
    write_fits(tmp_path / "x.fits", 4, 3, values)
    img = fitsread.read(str(tmp_path / "x.fits"))
    assert (img.width, img.height) == (4, 3)
    assert img.header["CTYPE1"] == "RA---TAN"
    assert img.at(1, 1) == 0.0 and img.at(4, 1) == 3.0 and img.at(1, 2) == 4.0 and img.at(4, 3) == 11.0
    assert img.region(1, 2, 4, 2) == [4.0, 6.0, 7.0]  # the NaN is left out


def test_fits_reader_rejects_a_file_without_end(tmp_path: Path) -> None:
    (tmp_path / "bad.fits").write_bytes(b"SIMPLE  = T".ljust(2880))
    with pytest.raises(ValueError, match="END"):
        fitsread.read(str(tmp_path / "bad.fits"))


def _image(width: int, height: int, value: Callable[[int, int], float]) -> fitsread.Image:
    pixels = array.array("d", [value(x, y) for y in range(1, height + 1) for x in range(1, width + 1)])
    return fitsread.Image({}, width, height, pixels)


def test_max_step_ignores_a_smooth_gradient_and_finds_a_step() -> None:
    smooth = _image(60, 60, lambda x, y: 100 + 0.05 * x - 0.03 * y)
    assert check.max_step(check.block_medians(smooth, 10)) < 0.01
    stepped = _image(60, 60, lambda x, y: 100 + (20 if x > 30 else 0))
    assert check.max_step(check.block_medians(stepped, 10)) == pytest.approx(20)


def test_block_medians_leave_out_blocks_mostly_without_data() -> None:
    img = _image(20, 10, lambda x, y: math.nan if x > 10 else 1.0)
    assert check.block_medians(img, 10) == [[1.0, None]]


def test_star_offsets_find_a_gaussian_star_at_its_catalog_position() -> None:
    region = TanHeader(41, 41, 50.0, 10.0, 21.0, 21.0, -1 / 3600, 1 / 3600)
    ra, dec = region.pixel_to_world(18.3, 22.6)
    img = _image(41, 41, lambda x, y: 10 + 500 * math.exp(-((x - 18.3) ** 2 + (y - 22.6) ** 2) / 2.25))
    truth = check.Truth(region, (sky.Star(ra, dec, 10.0),), (10.0,))
    offsets = check.star_offsets(img, truth)
    assert len(offsets) == 1 and offsets[0] < 0.1
    moved = check.Truth(region, (sky.Star(*region.pixel_to_world(20.3, 22.6), 10.0),), (10.0,))
    assert check.star_offsets(img, moved)[0] > 1.0
