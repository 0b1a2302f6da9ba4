"""`updraft run --dry-run`: per task, cached or to run and where; nothing run, nothing written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.e2e.cli import run_json, updraft, write_workflow


def _workflow(tmp: Path, ledger: Path, last: str = "wc -c < b.txt > c.txt") -> Path:
    (tmp / "in.txt").write_text("input\n")
    return write_workflow(tmp / "wf.json", [
        {"id": "a", "shell": f"echo a >> {ledger}; cat in.txt > a.txt", "inputs": ["in.txt"], "outputs": ["a.txt"]},
        {"id": "b", "shell": f"echo b >> {ledger}; cat a.txt a.txt > b.txt", "inputs": ["a.txt"],
         "outputs": ["b.txt"], "placement": "container"},
        {"id": "c", "shell": f"echo c >> {ledger}; {last}", "inputs": ["b.txt"], "outputs": ["c.txt"]},
        {"id": "side", "command": ["touch", "side.txt"], "outputs": ["side.txt"]},
    ])


def _dry(wf: Path, wd: Path, *extra: str) -> dict[str, Any]:
    proc = updraft("run", "--dry-run", "--json", str(wf), *extra, workdir=wd)
    assert proc.returncode == 0, proc.stderr
    return dict(json.loads(proc.stdout))


def _verdicts(out: dict[str, Any]) -> dict[str, str]:
    return {s["id"]: s["verdict"] for s in out["steps"]}


def test_dry_run_on_a_new_work_dir_lists_every_task_to_run_and_creates_nothing(tmp_path: Path) -> None:
    ledger, wd = tmp_path / "ledger", tmp_path / "wd"
    wf = _workflow(tmp_path, ledger)
    proc = updraft("run", "--dry-run", str(wf), workdir=wd)
    assert proc.returncode == 0, proc.stderr
    assert "4 tasks: 0 cached, 4 to run" in proc.stdout and "nothing was run or written" in proc.stdout
    lines = [line.split() for line in proc.stdout.splitlines()[2:]]
    order = [cols[0] for cols in lines]
    assert sorted(order) == ["a", "b", "c", "side"] and order.index("a") < order.index("b") < order.index("c")
    assert {cols[0]: cols[2] for cols in lines}["b"] == "container"
    assert not wd.exists() and not ledger.exists()


def test_dry_run_after_a_run_says_cached_and_an_edit_reruns_its_descendants_only(tmp_path: Path) -> None:
    ledger, wd = tmp_path / "ledger", tmp_path / "wd"
    wf = _workflow(tmp_path, ledger)
    assert run_json(wf, wd)[0] == 0
    runs_before = updraft("runs", "--json", workdir=wd, check=True).stdout
    ran = ledger.read_text()
    out = _dry(wf, wd)
    assert out["cached"] == 4 and out["run"] == 0 and out["tasks"] == 4
    assert {s["id"]: s["placement"] for s in out["steps"]}["b"] == "container"
    _workflow(tmp_path, ledger, last="cat b.txt > c.txt")  # edit the last task's command
    edited = _verdicts(_dry(wf, wd))
    assert edited["a"] == "cached" and edited["b"] == "cached" and edited["c"] == "run"
    (tmp_path / "in.txt").write_text("changed input\n")  # a changed input reruns everything under it
    assert _verdicts(_dry(wf, wd))["a"] == "run" and _verdicts(_dry(wf, wd))["b"] == "run"
    assert all(v == "run" for v in _verdicts(_dry(wf, wd, "--no-cache")).values())
    assert ledger.read_text() == ran  # nothing ran
    assert updraft("runs", "--json", workdir=wd, check=True).stdout == runs_before  # no run recorded
    (tmp_path / "in.txt").write_text("input\n")
    predicted = _verdicts(_dry(wf, wd))
    code, real = run_json(wf, wd)  # the prediction is what a run then does
    assert code == 0
    states = {t["id"]: t["state"] for t in json.loads(
        updraft("status", real["run_id"], "--json", workdir=wd, check=True).stdout)["tasks"]}
    assert {k: "cached" if v == "CACHED" else "run" for k, v in states.items()} == predicted
    assert predicted == {"a": "cached", "b": "cached", "c": "run", "side": "cached"}


def test_dry_run_rerun_pattern_and_bad_input_are_reported(tmp_path: Path) -> None:
    ledger, wd = tmp_path / "ledger", tmp_path / "wd"
    wf = _workflow(tmp_path, ledger)
    assert run_json(wf, wd)[0] == 0
    out = _dry(wf, wd, "--rerun", "b")
    assert _verdicts(out)["a"] == "cached" and _verdicts(out)["b"] == "run"
    assert next(s for s in out["steps"] if s["id"] == "b")["why"] == "--rerun"
    (tmp_path / "in.txt").unlink()
    missing = updraft("run", "--dry-run", str(wf), workdir=tmp_path / "other")
    assert missing.returncode == 2 and "in.txt" in missing.stderr and "Traceback" not in missing.stderr
    assert not (tmp_path / "other").exists()


def test_dry_run_keys_cover_deps_as_the_runner_does(tmp_path: Path) -> None:
    """A task's dependency (a file staged through the cache) is in its key: unchanged, the task
    is cached; changed, it runs. The dep is found relative to the workflow file, as in a run."""
    (tmp_path / "ref.txt").write_text("reference v1\n")
    wf = write_workflow(tmp_path / "deps.json", [
        {"id": "use", "shell": "cat ref > out", "deps": ["ref=ref.txt"], "outputs": ["out"]}])
    wd = tmp_path / "wd"
    assert run_json(wf, wd)[0] == 0
    assert _verdicts(_dry(wf, wd)) == {"use": "cached"}
    (tmp_path / "ref.txt").write_text("reference v2\n")
    assert _verdicts(_dry(wf, wd)) == {"use": "run"}
