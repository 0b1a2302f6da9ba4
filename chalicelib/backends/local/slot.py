"""A function-pool slot: a small process that starts the attempts its pool sends it, one at a
time, and reports when each started and how it ended.

    python -m chalicelib.backends.local.slot     (stdin: jobs, stdout: reports)

slot.c is the same program in C, which the pool uses where it could build it (see
slot_program.py); this one is the fallback and the reference. Both speak one protocol.
Frames both ways are a 4-byte big-endian length, then fields each ended by a NUL byte (argv,
environment entries and paths cannot hold a NUL, so nothing needs escaping):
    job     job_id exe cwd log_path argc argv[0..argc-1] env_entry...
    reports "S" job_id pid started_at        started
            "X" job_id exit_code maxrss_kb ended_at   exited (maxrss 0: unknown, see reap_process)
            "E" job_id message               could not start

With UPDRAFT_SLOT_CPU and UPDRAFT_TASK_CPUS set (see runner/affinity.py), the slot keeps to
that one CPU and gives each task it starts the listed CPUs the moment it has started.

Spawning (vfork + exec, which waits for the kernel to exec the child) and waiting happen here,
so neither holds up the engine's thread, and this process is small and single-threaded: no
GIL shared with the engine's bookkeeping. The slot exits when its job pipe closes (the run
ended), and, once the attempt it waits for has ended, when its engine is gone (killed): the
jobs still queued in its pipe are then `updraft resume`'s to run.

A slot is a child subreaper (runner/procs.py): what a task leaves running (a daemon that
started its own session, a double fork) is re-parented to it, and once the task has exited
the slot kills and reaps every such process before it reports the exit; the exit's maxrss
is the largest of the task's and theirs.
"""

from __future__ import annotations

import contextlib
import os
import signal
import struct
import time

from chalicelib.runner.procs import set_subreaper, sweep_orphans
from chalicelib.runner.spawn import reap_process, spawn

TYPE_CHECKING = False  # not typing's: a slot starts faster without importing typing
if TYPE_CHECKING:
    from typing import Any, BinaryIO

    Report = tuple[str, int, Any, Any, Any]

_HEAD = struct.Struct("!I")


def encode_job(job_id: int, exe: str, argv: list[str], env: list[bytes], cwd: str, log_path: str) -> bytes:
    """A job frame."""
    return _frame(str(job_id).encode(), os.fsencode(exe), os.fsencode(cwd), os.fsencode(log_path),
                  str(len(argv)).encode(), *map(os.fsencode, argv), *env)


def _frame(*fields: bytes) -> bytes:
    payload = b"\0".join(fields) + b"\0"
    return _HEAD.pack(len(payload)) + payload


def parse_reports(buf: bytearray) -> list[Report]:
    """Complete report frames at the front of `buf` (removed from it), decoded:
    ("S", job_id, pid, started_at, None), ("X", job_id, exit_code, maxrss_kb, ended_at),
    ("E", job_id, message, None, None)."""
    out: list[Report] = []
    while len(buf) >= _HEAD.size:
        size = _HEAD.unpack_from(buf)[0]
        end = _HEAD.size + size
        if len(buf) < end:
            break
        kind, job, *rest = bytes(buf[_HEAD.size:end - 1]).split(b"\0")
        del buf[:end]
        if kind == b"S":
            out.append(("S", int(job), int(rest[0]), float(rest[1]), None))
        elif kind == b"X":
            out.append(("X", int(job), int(rest[0]), int(rest[1]), float(rest[2])))
        else:
            out.append(("E", int(job), rest[0].decode("utf-8", "replace"), None, None))
    return out


def read_job(stream: BinaryIO) -> list[bytes] | None:
    """The next job's fields; None at the end of input."""
    head = stream.read(_HEAD.size)
    if len(head) < _HEAD.size:
        return None
    payload = stream.read(_HEAD.unpack(head)[0])
    return payload[:-1].split(b"\0")


def pin_from_env() -> set[int] | None:
    """Keep to UPDRAFT_SLOT_CPU; the CPUs for tasks (None: leave them as they are)."""
    try:
        own = {int(os.environ["UPDRAFT_SLOT_CPU"])}
        tasks = {int(c) for c in os.environ["UPDRAFT_TASK_CPUS"].split(",")}
        os.sched_setaffinity(0, own)
    except (KeyError, ValueError, OSError, AttributeError):
        return None
    return tasks


def main() -> None:
    jobs = os.fdopen(0, "rb", buffering=1 << 16)
    engine = os.getppid()
    set_subreaper()  # what a task leaves running comes back here, to be ended with it
    task_cpus = pin_from_env()
    try:
        while True:
            job = read_job(jobs)
            # the run is over, or its engine died (killed: the jobs still queued in the pipe are
            # for `updraft resume` to run, not for an orphaned slot)
            if job is None or os.getppid() != engine:
                return
            run_job(1, job, task_cpus)
    except BrokenPipeError:  # the engine died while we reported
        return


def run_job(out: int, job: list[bytes], task_cpus: set[int] | None = None) -> None:
    """Start one job (its frame's fields), report its start and its exit to `out`; the task
    gets `task_cpus` once started (it inherited this slot's)."""
    job_id, exe, cwd, log_path, argc = job[:5]
    argv = [os.fsdecode(a) for a in job[5:5 + int(argc)]]
    env = job[5 + int(argc):]
    try:
        pid = spawn(os.fsdecode(exe), argv, env, os.fsdecode(cwd), os.fsdecode(log_path))
    except OSError as exc:
        os.write(out, _frame(b"E", job_id, os.fsencode(f"could not start {argv[0]!r}: {exc}")))
        return
    if task_cpus is not None:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(pid, task_cpus)
    os.write(out, _frame(b"S", job_id, str(pid).encode(), repr(time.time()).encode()))
    code, maxrss = reap_process(pid)
    ended = repr(time.time()).encode()
    # every other child is what the task left running (setsid, double fork): its orphans
    maxrss = max(maxrss, sweep_orphans((), None))
    os.write(out, _frame(b"X", job_id, str(code).encode(), str(maxrss).encode(), ended))


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the engine decides what Ctrl-C stops
    main()
