"""procs.py's orphan handling, in a process of its own (it becomes a child subreaper)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import os, subprocess, sys, time
from chalicelib.runner.procs import (attempt_marker, is_subreaper, orphans_rss_kb, own_children, set_subreaper,
                                     sweep_orphans)

assert set_subreaper() and is_subreaper()
bystander = subprocess.Popen(["sleep", "30"])  # a child of the caller's own: not a task's
env = {"PATH": os.environ["PATH"], "UPDRAFT_RUN_ID": "r1", "UPDRAFT_TASK_ID": "t", "UPDRAFT_ATTEMPT": "1"}
task = subprocess.Popen(["sh", "-c", "(setsid sleep 31 &); (env -i sleep 32 &)"], env=env)
task.wait()
def sleeping():
    found = []
    for pid in own_children():
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                found += [pid] if fh.read().startswith(b"sleep\0") else []
        except OSError:
            pass
    return found

deadline = time.monotonic() + 30
# the two orphans come back here; wait until `env -i` has exec'd sleep (env still carries the marker)
while len(sleeping()) < 3 and time.monotonic() < deadline:
    time.sleep(0.01)
mark = attempt_marker("r1", "t", 1)
assert orphans_rss_kb({bystander.pid}, mark) > 0
marked = sweep_orphans((), mark)  # only what carries the attempt's environment
left = sorted(own_children())
assert bystander.pid in left and len(left) == 2, left
assert bystander.poll() is None
sweep_orphans({bystander.pid}, None)  # everything but the bystander
assert own_children() == [bystander.pid], own_children()
bystander.kill()
bystander.wait()
print("ok", marked > 0)
"""


def test_sweeps_take_only_orphans_and_with_a_marker_only_the_attempt_s() -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60,
                          cwd=REPO, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["ok", "True"]
