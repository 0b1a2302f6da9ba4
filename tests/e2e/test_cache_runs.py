"""Memoization and the dependency cache through whole `updraft run`s."""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.cli import run_json, status, updraft, write_workflow


def pipeline(tmp: Path, ledger: Path) -> Path:
    """split -> 3 independent counts -> merge; each task appends its id to the ledger."""
    log = f"echo $UPDRAFT_TASK_ID >> {ledger}"
    tasks = [{"id": "split", "shell": f"{log}; split -n l/3 -d input.txt part.", "inputs": ["input.txt"],
              "outputs": ["part.00", "part.01", "part.02"]}]
    tasks += [{"id": f"count{i}", "shell": f"{log}; wc -w < part.0{i} > n{i}; cat ref/words >> n{i}",
               "inputs": [f"part.0{i}"], "outputs": [f"n{i}"], "deps": ["ref=refdata"]} for i in range(3)]
    tasks.append({"id": "merge", "shell": f"{log}; cat n0 n1 n2 > total", "inputs": ["n0", "n1", "n2"],
                  "outputs": ["total"], "placement": "container"})
    return write_workflow(tmp / "wf.json", tasks)


def setup(tmp: Path, text: str) -> tuple[Path, Path, Path]:
    """The pipeline over `text`, with its reference folder: (ledger, workflow, work dir)."""
    (tmp / "refdata").mkdir()
    (tmp / "refdata" / "words").write_text("ref\n")
    (tmp / "input.txt").write_text(text)
    ledger = tmp / "ledger"
    return ledger, pipeline(tmp, ledger), tmp / "wd"


def executed(ledger: Path) -> list[str]:
    return sorted(ledger.read_text().split()) if ledger.exists() else []


def test_rerun_of_unchanged_workflow_executes_nothing(tmp_path: Path) -> None:
    ledger, wf, wd = setup(tmp_path, "a b c\nd e\nf\n")
    code, first = run_json(wf, wd)
    assert code == 0, first
    assert len(executed(ledger)) == 5
    ledger.unlink()
    code, second = run_json(wf, wd)
    assert code == 0 and second["counts"] == {"CACHED": 5}
    assert executed(ledger) == []
    st = status(second["run_id"], wd)
    assert st["cache"]["memo_hits"] == 5 and st["cache"]["tasks_executed"] == 0
    out = wd / "blobs" / "runs" / second["run_id"] / "data" / "total"
    assert out.read_text().split() == ["3", "ref", "2", "ref", "1", "ref"]


def test_changing_one_input_reruns_exactly_its_downstream(tmp_path: Path) -> None:
    ledger, wf, wd = setup(tmp_path, "a b c\nd e\nf\n")
    assert run_json(wf, wd)[0] == 0
    ledger.unlink()
    (tmp_path / "input.txt").write_text("a b c\nd e\nf g h\n")  # only the third chunk changes
    code, out = run_json(wf, wd)
    assert code == 0
    assert executed(ledger) == ["count2", "merge", "split"]
    states = {t["id"]: t["state"] for t in status(out["run_id"], wd)["tasks"]}
    assert states["count0"] == states["count1"] == "CACHED"


def test_changing_a_dependency_reruns_its_users(tmp_path: Path) -> None:
    ledger, wf, wd = setup(tmp_path, "a b c\nd e\nf\n")
    assert run_json(wf, wd)[0] == 0
    ledger.unlink()
    (tmp_path / "refdata" / "words").write_text("changed\n")
    assert run_json(wf, wd)[0] == 0
    assert executed(ledger) == ["count0", "count1", "count2", "merge"]


def test_no_cache_and_rerun_override(tmp_path: Path) -> None:
    ledger, wf, wd = setup(tmp_path, "x y\n")
    assert run_json(wf, wd)[0] == 0
    ledger.unlink()
    assert run_json(wf, wd, "--rerun", "count*")[0] == 0
    assert executed(ledger) == ["count0", "count1", "count2"]
    ledger.unlink()
    assert run_json(wf, wd, "--no-cache")[0] == 0
    assert len(executed(ledger)) == 5


def test_cache_commands(tmp_path: Path) -> None:
    wf = write_workflow(tmp_path / "w.json", [{"id": "a", "shell": "head -c 5000 /dev/zero > z", "outputs": ["z"]}])
    assert run_json(wf, tmp_path / "wd")[0] == 0
    du = json.loads(updraft("cache", "du", "--json", workdir=tmp_path / "wd", check=True).stdout)
    assert du["objects"] == 1 and du["bytes"] == 5000 and du["memoized_results"] == 1
    ls = updraft("cache", "ls", workdir=tmp_path / "wd", check=True).stdout
    assert "5000" in ls
    pruned = updraft("cache", "prune", "--all", workdir=tmp_path / "wd", check=True).stdout
    assert pruned.startswith("removed 1 object(s)")
    # the memoized result's object is gone, so the task runs again instead of being restored
    code, out = run_json(wf, tmp_path / "wd")
    assert code == 0 and out["counts"] == {"SUCCEEDED": 1}


def test_deps_are_staged_without_the_cache_too(tmp_path: Path) -> None:
    (tmp_path / "tooldir").mkdir()
    (tmp_path / "tooldir" / "run.sh").write_text("echo from-dep > out\n")
    wf = write_workflow(tmp_path / "d.json", [
        {"id": "a", "shell": "sh tools/run.sh", "deps": ["tools=tooldir"], "outputs": ["out"]}])
    from chalicelib.backends.local.runtime import LocalRuntime, RuntimeOptions
    from chalicelib.workflow.formats import load

    rt = LocalRuntime(str(tmp_path / "wd"), RuntimeOptions(dependency_cache=False))
    run = rt.submit(load(str(wf)))
    assert rt.run(run.run_id).state.value == "SUCCEEDED"
    assert (tmp_path / "wd" / "blobs" / "runs" / run.run_id / "data" / "out").read_text() == "from-dep\n"
    rec = rt.store.get_task(run.run_id, "a")
    assert rec.result.bytes_in == len("echo from-dep > out\n")


def test_a_damaged_cache_object_is_not_served_as_a_result(tmp_path: Path) -> None:
    ledger, wf, wd = setup(tmp_path, "a b c\nd e\nf\n")
    code, first = run_json(wf, wd)
    assert code == 0, first
    total = wd / "blobs" / "runs" / first["run_id"] / "data" / "total"
    good = total.read_bytes()
    import hashlib

    obj = next((wd / "cache" / "objects").glob(f"*/{hashlib.sha256(good).hexdigest()}"))
    obj.chmod(0o644)
    obj.write_bytes(b"garbage\n")  # in place, as a stray write would (root ignores the 0444 mode)
    ledger.unlink()
    code, second = run_json(wf, wd)
    assert code == 0, second
    assert executed(ledger) == ["merge"]  # its memoized result no longer matched: it ran again
    assert (wd / "blobs" / "runs" / second["run_id"] / "data" / "total").read_bytes() == good
    assert obj.read_bytes() == good  # and the store holds the right content again
