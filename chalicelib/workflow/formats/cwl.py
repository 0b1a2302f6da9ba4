"""CWL v1.2 documents (CommandLineTool, Workflow) as Updraft workflows.

Detected by a top-level `cwlVersion` (YAML or JSON). Reading needs the `cwl` extra
(cwl-utils); the translation itself is chalicelib.cwl.plan. Without a job, the process's
defaults are its inputs; `updraft run FILE.cwl --job JOB.yml` passes one.
"""

from __future__ import annotations

import re
from typing import Any

from chalicelib.errors import FormatError, Problem
from chalicelib.workflow.model import Workflow

NAME = "cwl"
_FINALS: dict[tuple[str, str | None], Any] = {}  # (file, job) -> how its output object is assembled
_VERSION_LINE = re.compile(r"^(cwlVersion|\"cwlVersion\")\s*:", re.MULTILINE)


def sniff(data: Any) -> bool:
    return isinstance(data, dict) and "cwlVersion" in data


def sniff_text(text: str) -> bool:
    return _VERSION_LINE.search(text[:20000]) is not None


def load(data: Any, base_dir: str | None, source: str) -> Workflow:
    return load_with_job(source)


def load_text(text: str, base_dir: str | None, source: str) -> Workflow:
    return load_with_job(source)


def load_with_job(source: str, job: str | None = None) -> Workflow:
    """The Updraft workflow of the CWL process in file `source` run on `job` (a file)."""
    return plan_file(source, job)[0]


def plan_file(source: str, job: str | None = None) -> tuple[Workflow, Any]:
    """(workflow, chalicelib.cwl.plan.Final) for a CWL file and an optional job file."""
    from chalicelib.cwl.errors import CwlError
    from chalicelib.cwl.job import load_and_plan

    if source.startswith("<"):
        raise FormatError([Problem("CWL is read from a file (its references are relative to it)")], source)
    try:
        wf, final = load_and_plan(source, job)
    except CwlError as exc:  # Unsupported too: one clear problem naming the document
        raise FormatError([Problem(str(exc))], source) from None
    _FINALS[(source, job)] = final
    return wf, final


def write_outputs(rt: Any, run_id: str, source: str, job: str | None, outdir: str) -> dict[str, Any]:
    """The finished run's CWL output object, its files copied into `outdir`."""
    import os

    from chalicelib.cwl.job import output_object

    final = _FINALS.get((source, job)) or plan_file(source, job)[1]
    os.makedirs(outdir, exist_ok=True)
    return output_object(rt, run_id, final, os.path.abspath(outdir))
