"""mDiffFit for Montage builds that lack it: mDiff two projected images, then mFitplane the difference.

Usage: python3 difffit.py PLUS.fits MINUS.fits REGION.hdr OUT.fit

OUT.fit is one line: the two image file names and mFitplane's result, for concat_fits.py.
Images that turn out not to overlap (mDiff says so) give a line with stat=NOOVERLAP, which
concat_fits.py skips, as mFitExec does. Any other failure of mDiff or mFitplane fails the task.
Standard library only: this file is staged into each task's sandbox next to the images.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

_STRUCT = re.compile(r'\[struct stat="(?P<stat>\w+)"(?P<body>.*)\]')


def run_tool(argv: list[str]) -> tuple[str, dict[str, str]]:
    """Run a Montage tool; return its status and the key=value pairs it printed."""
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    match = _STRUCT.search(proc.stdout)
    if not match:
        raise RuntimeError(f"{argv[0]} printed no status (exit {proc.returncode}): {proc.stdout}{proc.stderr}")
    pairs = dict(re.findall(r'(\w+)="?([^",]*)"?', match.group("body")))
    return match.group("stat"), pairs


def main(argv: list[str]) -> int:
    if len(argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    plus, minus, header, out = argv
    diff = os.path.splitext(out)[0] + ".diff.fits"
    stat, info = run_tool(["mDiff", plus, minus, diff, header])
    names = f"plus={os.path.basename(plus)} minus={os.path.basename(minus)}"
    if stat != "OK":
        if "overlap" in info.get("msg", "").lower():
            _write(out, f"{names} stat=NOOVERLAP\n")
            return 0
        print(f"mDiff failed: {info}", file=sys.stderr)
        return 1
    stat, fit = run_tool(["mFitplane", diff])
    if stat != "OK":
        print(f"mFitplane failed: {fit}", file=sys.stderr)
        return 1
    for scratch in (diff, os.path.splitext(diff)[0] + "_area.fits"):  # not outputs: free the disk
        if os.path.exists(scratch):
            os.remove(scratch)
    _write(out, f"{names} stat=OK " + " ".join(f"{k}={v}" for k, v in fit.items()) + "\n")
    return 0


def _write(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w", encoding="ascii") as fh:
        fh.write(text)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
