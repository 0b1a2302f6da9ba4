"""`updraft report` on a real local run, as a user types it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.e2e.cli import REPO, run_json, updraft, write_workflow


def test_report_of_a_finished_run_writes_html_and_pngs(tmp_path: Path) -> None:
    wf = write_workflow(tmp_path / "wf.json", [
        {"id": "make", "shell": "for i in 1 2 3; do echo $i > n$i; done", "outputs": ["n1", "n2", "n3"],
         "type": "make"},
        *[{"id": f"sq{i}", "shell": f"echo $(( $(cat n{i}) * $(cat n{i}) )) > s{i}", "inputs": [f"n{i}"],
           "outputs": [f"s{i}"], "type": "square", "placement": "container" if i == 2 else "function"}
          for i in (1, 2, 3)],
        {"id": "oops", "shell": "echo broken >&2; exit 5", "inputs": ["n1"], "outputs": ["never"], "type": "oops"},
    ])
    code, out = run_json(wf, tmp_path / "wd")
    assert code == 1 and out["counts"] == {"SUCCEEDED": 4, "FAILED": 1}
    proc = updraft("report", out["run_id"], "--out", str(tmp_path / "rep"), workdir=tmp_path / "wd", check=True)
    assert str(tmp_path / "rep" / "report.html") in proc.stdout
    html = (tmp_path / "rep" / "report.html").read_text()
    assert out["run_id"] in html
    square = re.search(r"<tr><td>square</td>(.*?)</tr>", html)
    assert square is not None and re.findall(r"<td>([^<]*)</td>", square.group(1))[:2] == ["3", "3"]
    assert "container 1, function 2" in square.group(1)
    assert "broken" in html and "exited with code 5" in html  # the failed task's log and reason
    for name in ("gantt", "dag", "concurrency"):
        assert (tmp_path / "rep" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
    # the latest run is the default, and rows by worker work too
    again = updraft("report", "--rows", "worker", "--out", str(tmp_path / "rep2"), workdir=tmp_path / "wd")
    assert again.returncode == 0 and (tmp_path / "rep2" / "report.html").exists()


def test_report_without_matplotlib_says_which_pip_command_installs_it(tmp_path: Path) -> None:
    wf = write_workflow(tmp_path / "wf.json", [{"id": "a", "command": ["true"]}])
    code, out = run_json(wf, tmp_path / "wd")
    assert code == 0
    blocker = ("import sys; sys.modules['matplotlib'] = None; from chalicelib.cli import main; "
               f"sys.exit(main(['report', '{out['run_id']}', '--workdir', '{tmp_path / 'wd'}']))")
    proc = subprocess.run([sys.executable, "-c", blocker], capture_output=True, text=True, cwd=tmp_path,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "matplotlib, which is not installed" in proc.stderr
    assert f"{sys.executable} -m pip install 'matplotlib>=3.7'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_report_of_an_unknown_run_is_a_clear_error(tmp_path: Path) -> None:
    wf = write_workflow(tmp_path / "wf.json", [{"id": "a", "command": ["true"]}])
    run_json(wf, tmp_path / "wd")
    proc = updraft("report", "20990101-000000-00000000", workdir=tmp_path / "wd")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "20990101-000000-00000000" in proc.stderr
