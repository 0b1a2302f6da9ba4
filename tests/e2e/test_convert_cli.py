"""`updraft convert`, and show/validate reading every format (auto-detected or --format)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.cli import updraft

FILES = [
    "hyperflow/montage-0.25-autoscaler.workflow.json",
    "makeflow/makeflow-examples/hecil/image.mf",
    "makeflow/makeflow-examples/hecil/hecil.jx",
    "makeflow/makeflow-examples/hecil/hecil.json",
    "wfcommons/montage-chameleon-2mass-01d-001.json",
]


def _show(path: Path, *extra: str) -> dict[str, object]:
    proc = updraft("show", str(path), "--json", *extra, check=True)
    return json.loads(proc.stdout)


@pytest.mark.parametrize("rel", FILES)
def test_convert_to_native_shows_the_same_graph(
        shared_workflows: Path, tmp_path: Path, rel: str) -> None:
    source = shared_workflows / rel
    out = tmp_path / "native.json"
    updraft("convert", str(source), "--to", "native", "-o", str(out), check=True)
    original, converted = _show(source), _show(out, "--format", "native")
    for key in ("tasks", "edges", "levels", "task_types", "external_inputs"):
        assert converted[key] == original[key], key
    assert updraft("validate", str(out)).returncode == 0


def test_convert_writes_to_stdout_by_default(shared_workflows: Path) -> None:
    proc = updraft("convert", str(shared_workflows / "hyperflow/remote-jobs.workflow.json"),
                   check=True)
    data = json.loads(proc.stdout)
    assert data["format"] == "updraft/v1" and len(data["tasks"]) == 2


def test_format_flag_overrides_and_rejections_exit_2(shared_workflows: Path) -> None:
    mf = shared_workflows / "makeflow/makeflow-examples/blast/blast.mf"
    assert updraft("validate", str(mf), "--format", "makeflow").returncode == 0
    wrong = updraft("validate", str(mf), "--format", "hyperflow")
    assert wrong.returncode == 2
    bad = updraft("validate", str(shared_workflows / "hyperflow/sqrsum.workflow.json"))
    assert bad.returncode == 2 and "'Sum'" in bad.stderr and "Traceback" not in bad.stderr
