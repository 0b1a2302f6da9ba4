"""The CLI side of publishing: `updraft run --outdir DIR [--overwrite]`, the same on `resume`."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from msgspec.structs import replace

from chalicelib.outputs.publish import OPTION, Published, publish, publish_option


def add_options(p: argparse.ArgumentParser) -> None:
    """`resume`'s --outdir and --overwrite (`run` has its own: its --outdir is also CWL's)."""
    p.add_argument("--outdir", default=None, metavar="DIR",
                   help="copy the run's outputs here when it succeeds (the workflow's publish rules "
                        "resolved here; without any: its final outputs; default: as the run started)")
    p.add_argument("--overwrite", action="store_true",
                   help="let --outdir/publish replace existing files that differ (default: refuse)")


def is_cwl(args: argparse.Namespace) -> bool:
    file = getattr(args, "file", "") or ""
    return bool(getattr(args, "job", None) or getattr(args, "format", None) == "cwl" or file.endswith(".cwl"))


def with_publish(request: Any, workflow: Any, args: argparse.Namespace) -> Any:
    """The submission with where to publish stored in its options (a CWL run's --outdir is
    the CWL output object's, written by its own writer)."""
    option = None if is_cwl(args) else publish_option(workflow, getattr(args, "outdir", None))
    if option is None:
        return request
    return replace(request, options={**request.options, OPTION: option})


def after_success(rt: Any, run_id: str, args: argparse.Namespace) -> int:
    """Publish a SUCCEEDED run's outputs and say where; the exit code (PublishError: 2)."""
    outdir = None if is_cwl(args) else getattr(args, "outdir", None)
    done = publish(rt, run_id, outdir, bool(getattr(args, "overwrite", False)))
    if done is not None:
        _say(done, sys.stderr if getattr(args, "json", False) else sys.stdout)
    return 0


def _say(done: Published, out: Any) -> None:
    where = ", ".join(done.folders)
    same = f" ({done.unchanged} already there)" if done.unchanged else ""
    size = f"{done.bytes / 1e6:.1f} MB" if done.bytes >= 100_000 else f"{done.bytes:,} bytes"
    out.write(f"  published {done.copied} file(s), {size}, to {where}{same}\n")
    out.flush()
