"""Hostile tasks in real runs (the local runtime: the runner is the one the task function and
the worker use): outputs that are symlinks leading out of the sandbox - the file itself or a
folder on its path - fail as UNSAFE_OUTPUT and publish nothing (nor move the file they point
at); shell metacharacters and unicode in ids, paths and arguments reach the program as they
are, because argv never goes through a shell unless the task asks for one."""

from __future__ import annotations

import json
from pathlib import Path

from chalicelib.backends.local.runtime import LocalRuntime
from tests.e2e.cli import run_json, status, write_workflow
from tests.faults.invariants import check_invariants

ARGV_DUMP = "import json, sys; open(sys.argv[1], 'w').write(json.dumps(sys.argv[2:]))"


def test_hostile_outputs_and_arguments(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("precious\n")
    pwned = tmp_path / "pwned"
    nasty = [f"$(touch {pwned})", f"`touch {pwned}`", f"; touch {pwned}", f"| touch {pwned}",
             "ünïcødé 🚀", "a b\tc", "*", "~", "$HOME", "'\""]
    wf = write_workflow(tmp_path / "hostile.json", [
        {"id": "link-out", "shell": f"ln -s {outside}/secret.txt leak.txt", "outputs": ["leak.txt"]},
        {"id": "folder-out", "shell": f"rmdir sub && ln -s {outside} sub", "outputs": ["sub/secret.txt"]},
        {"id": "link-in", "shell": "echo mine > real.txt && ln -s real.txt alias.txt", "outputs": ["alias.txt"]},
        {"id": "ärgv-$(id)", "command": ["python3", "-c", ARGV_DUMP, "ö/ä $(x).txt", *nasty],
         "outputs": ["ö/ä $(x).txt"]},
        {"id": "asks-for-a-shell", "shell": "echo $((6 * 7)) > shell.txt", "outputs": ["shell.txt"]},
    ])
    wd = tmp_path / "wd"
    code, out = run_json(wf, wd)
    assert code == 1 and out["counts"] == {"FAILED": 2, "SUCCEEDED": 3}, out
    tasks = {t["id"]: t for t in status(out["run_id"], wd)["tasks"]}
    assert tasks["link-out"]["reason"] == "UNSAFE_OUTPUT"
    assert tasks["folder-out"]["reason"] == "UNSAFE_OUTPUT"
    assert (outside / "secret.txt").read_text() == "precious\n"  # still there: not moved into the store
    data = wd / "blobs" / "runs" / out["run_id"] / "data"
    assert not (data / "leak.txt").exists() and not (data / "sub").exists()
    assert (data / "alias.txt").read_text() == "mine\n"  # a link inside the sandbox is fine
    assert json.loads((data / "ö" / "ä $(x).txt").read_text()) == nasty  # every argument, verbatim
    assert not pwned.exists()  # nothing was interpreted by a shell
    assert (data / "shell.txt").read_text() == "42\n"  # ...unless the task asked for one
    rt = LocalRuntime(str(wd))
    try:
        assert check_invariants(rt.store, rt.blobs, out["run_id"], rt.specs.get(out["run_id"])) == []
    finally:
        rt.close()
