"""`updraft show --dag OUT WORKFLOW`: the DAG as a picture, through the CLI."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from tests.e2e.cli import REPO, updraft, write_workflow

SHARED = next((p for p in (REPO.parent / "shared", REPO.parent.parent / "shared", Path("/work/shared"))
               if (p / "workflows").is_dir()), None)


def _wf(tmp: Path) -> Path:
    return write_workflow(tmp / "wf.json", [
        {"id": "a", "command": ["touch", "a"], "outputs": ["a"]},
        {"id": "b", "command": ["cp", "a", "b"], "inputs": ["a"], "outputs": ["b"]},
    ])


def _no_dot_env(tmp: Path) -> dict[str, str]:
    """PATH holding only this Python: Graphviz's `dot` is not found."""
    bindir = tmp / "bin"
    bindir.mkdir()
    (bindir / "python").symlink_to(sys.executable)
    return {"PATH": str(bindir)}


def test_svg_and_dot_are_written_without_graphviz_and_png_is_one_clear_error(tmp_path: Path) -> None:
    wf, env = _wf(tmp_path), _no_dot_env(tmp_path)
    svg = updraft("show", str(wf), "--dag", str(tmp_path / "d.svg"), env=env)
    assert svg.returncode == 0, svg.stderr
    assert "DAG of 2 tasks written to" in svg.stdout
    assert (tmp_path / "d.svg").read_text().startswith("<svg") and ">a</text>" in (tmp_path / "d.svg").read_text()
    dot = updraft("show", str(wf), "--dag", str(tmp_path / "d.dot"), env=env)
    assert dot.returncode == 0 and '"a" -> "b";' in (tmp_path / "d.dot").read_text()
    png = updraft("show", str(wf), "--dag", str(tmp_path / "d.png"), env=env)
    assert png.returncode == 2 and "install graphviz" in png.stderr and "Traceback" not in png.stderr
    assert not (tmp_path / "d.png").exists()
    bad = updraft("show", str(wf), "--dag", str(tmp_path / "d.pdf"))
    assert bad.returncode == 2 and ".png, .svg or .dot" in bad.stderr


@pytest.mark.skipif(shutil.which("dot") is None,
                    reason="graphviz's dot is not installed (scripts/install-tools graphviz)")
def test_png_is_rendered_by_graphviz(tmp_path: Path) -> None:
    out = updraft("show", str(_wf(tmp_path)), "--dag", str(tmp_path / "d.png"))
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "d.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in os.listdir(tmp_path) if ".tmp-" in p]


@pytest.mark.skipif(SHARED is None, reason="the shared workflows (../shared/workflows) are not here")
def test_montage_of_a_thousand_tasks_collapses_to_task_types(tmp_path: Path) -> None:
    assert SHARED is not None
    montage = SHARED / "workflows" / "wfcommons" / "montage-chameleon-dss-125d-001.json.gz"
    out = updraft("show", str(montage), "--dag", str(tmp_path / "m.dot"))
    assert out.returncode == 0, out.stderr
    assert "DAG of 1066 tasks" in out.stdout and "8 task types" in out.stdout
    text = (tmp_path / "m.dot").read_text()
    assert '"mDiffFit" [label="mDiffFit \u00d7900"' in text and '"mProject" -> "mDiffFit" [label="1800"];' in text


def test_an_unwritable_place_is_one_clear_error(tmp_path: Path) -> None:
    out = updraft("show", str(_wf(tmp_path)), "--dag", str(tmp_path / "no" / "such" / "d.svg"))
    assert out.returncode == 2 and "cannot write" in out.stderr and "Traceback" not in out.stderr
