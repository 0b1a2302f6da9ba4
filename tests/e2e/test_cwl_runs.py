"""CWL through Updraft for real: the BLAST example end to end with updraft-cwl-runner and
`updraft run --job` (status, memoized re-run), and the exit codes of bad or unsupported input."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from examples.toolcheck import install_hint, missing_tools
from tests.e2e.cli import REPO, status, updraft

BLAST = REPO / "examples" / "cwl" / "blast"
_MISSING = missing_tools(["makeblastdb", "blastn"])
needs_blast = pytest.mark.skipif(bool(_MISSING), reason=f"BLAST+ missing: install with {install_hint(_MISSING)}")
pytest.importorskip("cwl_utils", reason="the cwl extra is not installed (pip install '.[cwl]')")


def cwl_runner(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "chalicelib.cwl.runner", *args], capture_output=True, text=True,
                          timeout=180, cwd=cwd or REPO, env=env, check=False)


def hits_of(path: Path) -> dict[str, str]:
    return {line.split("\t")[0]: line.split("\t")[1] for line in path.read_text().splitlines() if line}


@pytest.mark.tools
@needs_blast
def test_runner_runs_the_blast_workflow(tmp_path: Path) -> None:
    proc = cwl_runner("--outdir", str(tmp_path / "out"), "--quiet", str(BLAST / "blast-wf.cwl"), str(BLAST / "job.yml"))
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    hits = out["hits"]
    path = Path(hits["location"][len("file://"):])
    assert path.parent == tmp_path / "out"
    assert hits["checksum"] == "sha1$" + hashlib.sha1(path.read_bytes()).hexdigest()
    assert hits["size"] == path.stat().st_size
    assert hits_of(path) == {"q1": "chr2", "q2": "chr3"}  # q3 is random: no hit
    assert {s["basename"] for s in out["database"]["secondaryFiles"]} >= {"refdb.nhr", "refdb.nsq"}


@pytest.mark.tools
@needs_blast
def test_updraft_run_with_a_job_reports_and_memoizes(tmp_path: Path) -> None:
    work, outdir = tmp_path / "work", tmp_path / "out"
    args = ("run", str(BLAST / "blast-wf.cwl"), "--job", str(BLAST / "job.yml"), "--outdir", str(outdir))
    first = updraft(*args, workdir=work, timeout=240)
    assert first.returncode == 0, first.stderr
    obj = json.loads(first.stdout.strip().splitlines()[-1])
    assert hits_of(Path(obj["hits"]["path"])) == {"q1": "chr2", "q2": "chr3"}
    runs = json.loads(updraft("runs", "--json", workdir=work, check=True).stdout)
    run_id = runs[0]["run_id"]
    tasks = {t["id"]: t["state"] for t in status(run_id, work)["tasks"]}
    assert tasks == {"index": "SUCCEEDED", "search": "SUCCEEDED"}
    again = updraft(*args, "--json", workdir=work, timeout=240)
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout.strip().splitlines()[-1])
    assert summary["counts"] == {"CACHED": 2}, summary


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_unsupported_requirement_exits_33(tmp_path: Path) -> None:
    tool = write(tmp_path / "t.cwl", "cwlVersion: v1.2\nclass: CommandLineTool\nbaseCommand: 'true'\n"
                 "requirements:\n  - class: MPIRequirement\n    processes: 2\ninputs: []\noutputs: []\n")
    proc = cwl_runner("--outdir", str(tmp_path), str(tool))
    assert proc.returncode == 33, proc.stderr
    assert "not supported" in proc.stderr


def test_invalid_document_is_a_permanent_failure_naming_it(tmp_path: Path) -> None:
    tool = write(tmp_path / "bad.cwl", "cwlVersion: v1.2\nclass: CommandLineTool\ninputs:\n  x: NoSuchType\n"
                 "outputs: []\n")
    proc = cwl_runner("--outdir", str(tmp_path), str(tool))
    assert proc.returncode == 1
    assert "bad.cwl" in proc.stderr and "NoSuchType" in proc.stderr
    valid = updraft("validate", str(tool))
    assert valid.returncode == 2 and "bad.cwl" in valid.stderr


def test_a_failing_step_fails_the_run_with_its_log(tmp_path: Path) -> None:
    tool = write(tmp_path / "fail.cwl", "cwlVersion: v1.2\nclass: CommandLineTool\n"
                 "baseCommand: [sh, -c, 'echo broken >&2; exit 3']\ninputs: []\noutputs: []\n")
    proc = cwl_runner("--outdir", str(tmp_path), str(tool))
    assert proc.returncode == 1
    assert "broken" in proc.stderr and "code 3" in proc.stderr
