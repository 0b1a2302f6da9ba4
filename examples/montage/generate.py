"""Generate a Montage mosaic workflow and its synthetic input tiles.

    python -m examples.montage.generate --degrees 0.5 --out DIR
    updraft run DIR/workflow.json --data DIR/data

Needs Debian's `montage` package (mMakeImg, mPutHdr, mImgtbl, mOverlaps at generation time;
the workflow's tasks use mProjectPP, mDiff, mFitplane, mBgModel, mBackground, mAdd, mShrink,
mViewer). Same arguments and seed, same files.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from examples.montage import dag, synth
from examples.montage.sky import make_sky
from examples.toolcheck import install_hint, missing_tools

GENERATOR_TOOLS = ("mMakeImg", "mPutHdr", "mImgtbl", "mOverlaps")
WORKFLOW_TOOLS = (
    "mProjectPP", "mDiff", "mFitplane", "mImgtbl", "mBgModel", "mBackground", "mAdd", "mShrink", "mViewer",
)
# Montage's classic demo field (M17); any position within 80 degrees of the equator works.
DEFAULT_RA, DEFAULT_DEC = 275.196, -16.171


def generate(out: str, degrees: float = 0.5, ra: float = DEFAULT_RA, dec: float = DEFAULT_DEC,
             seed: int = 1, pixel_arcsec: float = 2.0, jobs: int | None = None) -> dict[str, object]:
    """Write out/workflow.json, out/data/ and out/truth/; return a summary."""
    sky = make_sky(degrees, ra, dec, seed, pixel_arcsec)
    pairs = synth.write_inputs(sky, out, jobs)
    workflow = dag.build(sky, pairs)
    path = os.path.join(out, "workflow.json")
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(workflow, fh, indent=1)
        fh.write("\n")
    return {
        "workflow": path, "data": os.path.join(out, "data"), "tiles": len(sky.tiles),
        "pairs": len(pairs), "tasks": len(workflow["tasks"]), "stars": len(sky.stars),
        "mosaic_px": sky.region.naxis1, "png": dag.PNG,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.montage.generate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--degrees", type=float, default=0.5, help="mosaic side in degrees (default 0.5)")
    parser.add_argument("--ra", type=float, default=DEFAULT_RA, help="centre right ascension, degrees")
    parser.add_argument("--dec", type=float, default=DEFAULT_DEC, help="centre declination, degrees")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--pixel-arcsec", type=float, default=2.0, help="pixel size (default 2 arcsec)")
    parser.add_argument("--jobs", type=int, default=None, help="parallel mMakeImg runs (default: cores)")
    parser.add_argument("--out", required=True, help="folder to write workflow.json, data/, truth/ into")
    args = parser.parse_args(argv)
    missing = missing_tools(GENERATOR_TOOLS + WORKFLOW_TOOLS)
    if missing:
        print(f"missing Montage tools: {', '.join(missing)}. Install them with: {install_hint(missing)}",
              file=sys.stderr)
        return 3
    try:
        summary = generate(args.out, args.degrees, args.ra, args.dec, args.seed, args.pixel_arcsec, args.jobs)
    except (ValueError, synth.ToolError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
