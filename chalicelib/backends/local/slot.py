"""A function-pool slot: a small process that starts the attempts its pool sends it, one at a
time, and reports when each started and how it ended.

    python -m chalicelib.backends.local.slot     (stdin: jobs, stdout: reports)

Frames both ways are a 4-byte big-endian length and a pickle (the pool and its slots are one
program; nothing else writes to these pipes):
    job     (job_id, exe, argv, env_entries, cwd, log_path)
    reports ("S", job_id, pid, started_at)   started
            ("X", job_id, exit_code, maxrss_kb)   exited (maxrss 0: unknown, see reap_process)
            ("E", job_id, message)   could not start

Spawning (vfork + exec, which waits for the kernel to exec the child) and waiting happen here,
so neither holds up the engine's thread, and this process is small and single-threaded: no
GIL shared with the engine's bookkeeping. The slot exits when its job pipe closes (the run
ended), and, once the attempt it waits for has ended, when its engine is gone (killed): the
jobs still queued in its pipe are then `updraft resume`'s to run.
"""

from __future__ import annotations

import os
import pickle
import signal
import struct
import time

from chalicelib.runner.spawn import reap_process, spawn

TYPE_CHECKING = False  # not typing's: a slot starts faster without importing typing
if TYPE_CHECKING:
    from typing import Any, BinaryIO

_HEAD = struct.Struct("!I")


def write_frame(fd: int, obj: Any) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    os.write(fd, _HEAD.pack(len(data)) + data)


def read_frame(stream: BinaryIO) -> Any | None:
    head = stream.read(_HEAD.size)
    if len(head) < _HEAD.size:
        return None
    return pickle.loads(stream.read(_HEAD.unpack(head)[0]))  # noqa: S301  # nosec B301 - a private pipe from our own pool


def parse_frames(buf: bytearray) -> list[Any]:
    """Complete frames at the front of `buf` (removed from it)."""
    out = []
    while len(buf) >= _HEAD.size:
        size = _HEAD.unpack_from(buf)[0]
        if len(buf) < _HEAD.size + size:
            break
        out.append(pickle.loads(bytes(buf[_HEAD.size:_HEAD.size + size])))  # noqa: S301  # nosec B301 - a private pipe from our own slot
        del buf[:_HEAD.size + size]
    return out


def main() -> None:
    jobs = os.fdopen(0, "rb", buffering=1 << 16)
    engine = os.getppid()
    try:
        while True:
            job = read_frame(jobs)
            # the run is over, or its engine died (killed: the jobs still queued in the pipe are
            # for `updraft resume` to run, not for an orphaned slot)
            if job is None or os.getppid() != engine:
                return
            run_job(1, job)
    except BrokenPipeError:  # the engine died while we reported
        return


def run_job(out: int, job: tuple[Any, ...]) -> None:
    """Start one job, report its start and its exit to `out`."""
    job_id, exe, argv, env, cwd, log_path = job
    try:
        pid = spawn(exe, argv, env, cwd, log_path)
    except OSError as exc:
        write_frame(out, ("E", job_id, f"could not start {argv[0]!r}: {exc}"))
        return
    write_frame(out, ("S", job_id, pid, time.time()))
    write_frame(out, ("X", job_id, *reap_process(pid)))


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the engine decides what Ctrl-C stops
    main()
