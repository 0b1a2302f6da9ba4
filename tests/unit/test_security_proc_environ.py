"""A task cannot read the environment its function or worker was started with.

The credentials a Lambda function or a Fargate worker is started with stay in the initial
environment of its process, which `/proc/<pid>/environ` shows to any process of the same user -
a task's `/proc/$PPID/environ`. `forbid_reading_this_process` (chalicelib/backends/aws/task_env.py)
makes the process non-dumpable, so those files belong to root.

The real test needs two users: it runs as root, and its child switches to `nobody` (as the
Lambda sandbox's user and the worker image's `updraft` are not root), puts a fake secret in its
initial environment, calls the function (or, the control, does not), then starts readers of the
same user - a forked Python process and an exec'd `sh -c 'cat /proc/$PPID/environ'`, as a task's
shell would do. As root, dumpable would not help (CAP_SYS_PTRACE reads any process), which is why
this is not tested through the emulated cloud's worker, which runs as the test's own user.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from chalicelib.backends.aws import task_env, task_function
from chalicelib.backends.aws.task_env import forbid_reading_this_process

REPO = Path(__file__).resolve().parents[2]
NOBODY = 65534
SECRET = "fake-secret-0f1e2d3c4b5a-never-a-real-key"

# Runs as root until it switches to the uid argv[2]; argv[1] is "forbid" or "control". Imports
# come first: the interpreter's own files may not be readable by nobody (a pyenv under /root).
CHILD = r"""
import ctypes, ctypes.util, json, os, subprocess, sys
from chalicelib.backends.aws.task_env import forbid_reading_this_process

libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
SECRET = os.environ["AWS_SECRET_ACCESS_KEY"]  # in this process's initial environment
os.setgroups([])
os.setgid(int(sys.argv[2]))
os.setuid(int(sys.argv[2]))
# setuid cleared the dumpable flag (fs.suid_dumpable); a process an ordinary user execs starts
# dumpable, as the function's and the worker's do: so does this one, before the call or not.
assert libc.prctl(4, 1, 0, 0, 0) == 0 and libc.prctl(3, 0, 0, 0, 0) == 1
result = {"uid": os.getuid(), "gid": os.getgid()}
if sys.argv[1] == "forbid":
    result["forbid_returned"] = forbid_reading_this_process()
result["dumpable"] = libc.prctl(3, 0, 0, 0, 0)

r, w = os.pipe()
pid = os.fork()
if pid == 0:  # a forked reader of the same user
    os.close(r)
    try:
        with open(f"/proc/{os.getppid()}/environ", "rb") as fh:
            out = {"python": "read", "python_saw_secret": SECRET.encode() in fh.read()}
    except OSError as exc:
        out = {"python": type(exc).__name__, "python_saw_secret": False}
    os.write(w, json.dumps(out).encode())
    os._exit(0)
os.close(w)
with os.fdopen(r) as fh:
    result.update(json.loads(fh.read()))
os.waitpid(pid, 0)

# an exec'd reader, as a task would be (its parent: this process)
sh = subprocess.run(["/bin/sh", "-c", "cat /proc/$PPID/environ"], capture_output=True, env={"PATH": "/usr/bin:/bin"})
result.update(sh_rc=sh.returncode, sh_saw_secret=SECRET.encode() in sh.stdout,
              sh_err=sh.stderr.decode(errors="replace"))
print(json.dumps(result))
"""

needs_root = pytest.mark.skipif(
    not sys.platform.startswith("linux") or os.geteuid() != 0,
    reason="needs Linux and root: the test switches its child to another (unprivileged) user with setuid")


def run_child(mode: str) -> dict[str, Any]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(REPO), "PYTHONDONTWRITEBYTECODE": "1",
           "AWS_ACCESS_KEY_ID": "AKIAFAKEFAKEFAKE", "AWS_SECRET_ACCESS_KEY": SECRET}
    proc = subprocess.run([sys.executable, "-c", CHILD, mode, str(NOBODY)], capture_output=True, text=True,
                          env=env, cwd="/", timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["uid"] == NOBODY and result["gid"] == NOBODY, result
    return result


@needs_root
def test_a_task_cannot_read_the_environment_of_a_process_that_forbade_it() -> None:
    result = run_child("forbid")
    assert result["forbid_returned"] is True and result["dumpable"] == 0, result
    assert result["python"] == "PermissionError" and not result["python_saw_secret"], result
    assert result["sh_rc"] != 0 and not result["sh_saw_secret"], result
    assert "Permission denied" in result["sh_err"], result


@needs_root
def test_control_without_the_call_a_task_of_the_same_user_reads_it() -> None:
    """Proves the test above can fail: the same child, without the call, is read by both."""
    result = run_child("control")
    assert result["dumpable"] == 1, result
    assert result["python"] == "read" and result["python_saw_secret"], result
    assert result["sh_rc"] == 0 and result["sh_saw_secret"], result


# ---- where it is called ------------------------------------------------------------------------

def test_the_task_function_forbids_it_once_before_its_first_task(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    monkeypatch.setattr(task_function, "forbid_reading_this_process", lambda: calls.append("forbid") or True)
    monkeypatch.setattr(task_function, "_unreadable", False)
    for _ in range(2):  # a payload that fails at once: the call comes before anything else
        with pytest.raises(ValueError, match="task payload"):
            task_function.handle_task("not a payload", None, None)  # type: ignore[arg-type]
    assert calls == ["forbid"]


def test_the_worker_forbids_it_before_it_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    from workers import worker

    calls: list[str] = []

    def from_env() -> None:
        calls.append("cloud")
        raise RuntimeError("stop here")

    monkeypatch.setattr(worker, "forbid_reading_this_process", lambda: calls.append("forbid") or True)
    monkeypatch.setattr(worker.Cloud, "from_env", staticmethod(from_env))
    with pytest.raises(RuntimeError, match="stop here"):
        worker.main([])
    assert calls == ["forbid", "cloud"]


def test_only_the_task_function_and_the_worker_call_it() -> None:
    """Never the local runtime: its processes stay dumpable (the user's own tools can inspect them)."""
    callers = {str(path.relative_to(REPO)) for root in ("chalicelib", "workers")
               for path in (REPO / root).rglob("*.py") if "forbid_reading_this_process" in path.read_text()}
    callers |= {"app.py"} if "forbid_reading_this_process" in (REPO / "app.py").read_text() else set()
    assert callers == {"chalicelib/backends/aws/task_env.py", "chalicelib/backends/aws/task_function.py",
                       "workers/worker.py"}


def test_it_is_a_no_op_where_there_is_no_prctl(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(task_env.sys, "platform", "darwin")
    assert forbid_reading_this_process() is False
