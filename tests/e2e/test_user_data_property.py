"""Issue 22, as a property: whatever small DAG of careless or hostile tasks runs, the user's
data folder, every earlier run's outputs, a private file outside and every cache object hash
exactly as before.

The tasks append to and truncate their inputs (files, or a file inside a folder input),
publish hard links and symlinks to their inputs and to a file outside as outputs, write the
engine's old log name in their folder and replace their log (beside the folder) with a
folder or a hard link to the outside file. Each example runs its workflow twice in one work
dir (the second run reuses cached results and stages cached objects), then a third time with
every task's script changed (nothing reused).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.backends.local.runtime import LocalRuntime, RuntimeOptions
from chalicelib.workflow.formats.native import parse

OUTPUT_KINDS = ("write", "hardlink_victim", "symlink_input", "hardlink_input", "symlink_victim", "copy_input")
DATA = {"d0.txt": b"zero\n", "d1.txt": b"one\n" * 50, "sub/d2.txt": b"two\n"}
FOLDERS = {"sub": "sub/d2.txt"}  # a folder input (runner/trees.py) and the file the task plays with in it


@st.composite
def dags(draw: st.DrawFn) -> list[dict[str, Any]]:
    n = draw(st.integers(1, 4))
    tasks: list[dict[str, Any]] = []
    available = [*DATA, *FOLDERS]
    for i in range(n):
        inputs = draw(st.lists(st.sampled_from(available), max_size=3, unique=True))
        mutate = draw(st.sampled_from(("append", "truncate", "none")))
        kind = draw(st.sampled_from(OUTPUT_KINDS))
        log_games = draw(st.sampled_from(("none", "folder", "victim")))
        out = f"o{i}.txt"
        lines = []
        for path in (FOLDERS.get(p, p) for p in inputs):
            if mutate == "append":
                lines.append(f'echo CLOBBERED >> "{path}"')
            elif mutate == "truncate":
                lines.append(f': > "{path}"')
        src = FOLDERS.get(inputs[0], inputs[0]) if inputs else None
        if kind == "write" or (src is None and kind in ("symlink_input", "hardlink_input", "copy_input")):
            lines.append(f"echo task{i} > {out}")
        elif kind == "hardlink_victim":
            lines.append(f'ln "$VICTIM" {out}')
        elif kind == "symlink_victim":
            lines.append(f'ln -s "$VICTIM" {out}')
        elif kind == "symlink_input":
            lines.append(f'ln -s "{src}" {out}')
        elif kind == "hardlink_input":
            lines.append(f'ln "{src}" {out}')
        else:
            lines.append(f'cp "{src}" {out}')
        if log_games == "folder":  # the log (beside the folder) replaced by a folder
            lines += ["echo noise", "echo mine > .updraft-log",
                      'n=$(basename "$PWD"); rm -f "../$n.log"; mkdir -p "../$n.log"']
        elif log_games == "victim":  # ... by a hard link to a file outside: the next log must not land in it
            lines += ["echo noise", 'n=$(basename "$PWD"); rm -f "../$n.log"; ln "$VICTIM" "../$n.log"']
        tasks.append({"id": f"t{i}", "shell": "; ".join(lines), "inputs": inputs, "outputs": [out]})
        available.append(out)
    return tasks


def tree(folder: Path) -> dict[str, tuple[str, int, int]]:
    """{relative path: (sha256, mode, links)} of every file under `folder`."""
    out = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.is_symlink():
            st_ = os.lstat(path)
            out[str(path.relative_to(folder))] = (hashlib.sha256(path.read_bytes()).hexdigest(),
                                                  stat.S_IMODE(st_.st_mode), st_.st_nlink)
    return out


def damaged_objects(wd: Path) -> list[str]:
    return [p.name for p in (wd / "cache" / "objects").glob("*/*")
            if not p.name.startswith(".") and hashlib.sha256(p.read_bytes()).hexdigest() != p.name]


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dags())
def test_nothing_a_task_does_changes_user_data_other_runs_or_the_cache(tasks: list[dict[str, Any]]) -> None:
    with tempfile.TemporaryDirectory(prefix="updraft-prop-") as d:
        tmp = Path(d)
        data = tmp / "data"
        for name, content in DATA.items():
            (data / name).parent.mkdir(parents=True, exist_ok=True)
            (data / name).write_bytes(content)
        victim = tmp / "private" / "victim.txt"
        victim.parent.mkdir()
        victim.write_bytes(b"private\n")
        victim.chmod(0o600)
        user_before, victim_before = tree(data), tree(victim.parent)
        wd = tmp / "wd"
        finished: dict[str, dict[str, tuple[str, int, int]]] = {}  # run id -> its published files
        env = {**os.environ, "VICTIM": str(victim)}
        rounds = [tasks, tasks, [{**t, "shell": t["shell"] + "; true"} for t in tasks]]
        for round_tasks in rounds:
            rt = LocalRuntime(str(wd), RuntimeOptions(concurrency=2))
            try:
                wf = parse(json.dumps({"name": "prop", "tasks": [{**t, "env": {"VICTIM": env["VICTIM"]}}
                                                                   for t in round_tasks]}))
                record = rt.submit(wf, str(data))
                rt.run(record.run_id)
            finally:
                rt.close()
            assert tree(data) == user_before, round_tasks
            assert tree(victim.parent) == victim_before, round_tasks
            for run_id, files in finished.items():
                now = tree(wd / "blobs" / "runs" / run_id / "data")
                assert {k: v[0] for k, v in now.items()} == {k: v[0] for k, v in files.items()}, round_tasks
            assert damaged_objects(wd) == [], round_tasks
            finished[record.run_id] = tree(wd / "blobs" / "runs" / record.run_id / "data")
