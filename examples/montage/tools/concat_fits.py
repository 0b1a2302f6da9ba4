"""mConcatFit for Montage builds that lack it: gather difffit.py results into mBgModel's fits table.

Usage: python3 concat_fits.py IMAGES.tbl OUT.tbl FIT...

IMAGES.tbl is mImgtbl's table of the projected images: it maps each file name to the image
id (cntr) that mBgModel and mBackground use, so the ids do not depend on any directory
listing order. Standard library only: this file is staged into the task's sandbox.
"""

from __future__ import annotations

import itertools
import os
import sys

COLUMNS = (
    ("plus", 9, "d"), ("minus", 9, "d"), ("a", 16, "e"), ("b", 16, "e"), ("c", 16, "e"),
    ("crpix1", 14, "f"), ("crpix2", 14, "f"), ("xmin", 10, "d"), ("xmax", 10, "d"),
    ("ymin", 10, "d"), ("ymax", 10, "d"), ("xcenter", 13, "f"), ("ycenter", 13, "f"),
    ("npixel", 13, "f0"), ("rms", 16, "e"), ("boxx", 16, "f1"), ("boxy", 16, "f1"),
    ("boxwidth", 16, "f1"), ("boxheight", 16, "f1"), ("boxang", 16, "f1"),
)


def read_ipac(path: str) -> list[dict[str, str]]:
    """Rows of an IPAC ASCII table as dicts of stripped strings (columns split at the '|')."""
    bars: list[int] = []
    names: list[str] = []
    rows: list[dict[str, str]] = []
    with open(path, encoding="ascii", errors="replace") as fh:
        for line in fh:
            line = line.rstrip("\n")
            if line.startswith("\\") or not line.strip():
                continue
            if line.startswith("|"):
                if not names:
                    bars = [i for i, ch in enumerate(line) if ch == "|"]
                    names = [line[a + 1:b].strip() for a, b in itertools.pairwise(bars)]
                continue
            ends = [b + 1 for b in bars[1:-1]] + [len(line)]  # the last column takes any overflow
            cells = [line[a + 1:e].strip() for a, e in zip(bars, ends, strict=False)]
            rows.append(dict(zip(names, cells, strict=True)))
    return rows


def read_fit(path: str) -> dict[str, str]:
    with open(path, encoding="ascii") as fh:
        return dict(item.split("=", 1) for item in fh.read().split())


def _cell(value: str, width: int, kind: str) -> str:
    if kind == "d":
        return f"{int(float(value)):{width}d}"
    if kind == "e":
        return f"{float(value):{width}.5e}"
    digits = int(kind[1:]) if len(kind) > 1 else 2
    return f"{float(value):{width}.{digits}f}"


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    images, out, fits = argv[0], argv[1], argv[2:]
    ids = {os.path.basename(row["fname"]): row["cntr"] for row in read_ipac(images)}
    lines = ["|" + "|".join(f"{name:>{width}}" for name, width, _ in COLUMNS) + "|"]
    skipped = 0
    for path in fits:
        fit = read_fit(path)
        if fit.get("stat") != "OK":
            skipped += 1
            continue
        missing = [n for n in (fit["plus"], fit["minus"]) if n not in ids]
        if missing:
            print(f"{path}: {missing} not in {images}", file=sys.stderr)
            return 1
        values = dict(fit, plus=ids[fit["plus"]], minus=ids[fit["minus"]])
        lines.append(" " + " ".join(_cell(values[n], w, k) for n, w, k in COLUMNS) + " ")
    with open(out, "w", encoding="ascii") as fh:
        fh.write("\n".join(lines) + "\n")
    print(f'[struct stat="OK", module="concat_fits", count={len(fits)}, skipped={skipped}]')
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
