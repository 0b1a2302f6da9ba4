"""Run one engine as a whole process: wall time, exit status, output, and the engine's peak memory.

Peak memory is sampled from /proc every 50 ms over the engine's own processes (coordinator,
workers, schedulers, nannies), leaving out the processes that run the tasks (the commands
themselves and the shells wrapping them), so that a big blastn does not count as the engine:
the sum of their proportional set sizes (Pss: shared pages counted once, so a forked worker is
not counted twice) and the resident set of the largest one.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")
SHELLS = frozenset({"sh", "bash", "dash"})


@dataclass(frozen=True)
class Measured:
    wall_s: float
    returncode: int
    stdout: str
    stderr: str
    peak_pss_mb: float  # the engine's processes together (shared pages counted once)
    peak_rss_mb: float  # the engine's largest process
    timed_out: bool = False
    others_cores: float = 0.0  # CPU that processes outside this run used meanwhile, in cores


def _busy_s() -> float:
    """CPU seconds the whole machine has spent busy (all but idle and iowait)."""
    with open("/proc/stat") as fh:
        fields = [int(x) for x in fh.readline().split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / TICK


def settle(max_wait_s: float = 10.0, window_s: float = 0.25, idle_cores: float = 0.1,
           busy_s: Callable[[], float] = _busy_s, sleep: Callable[[float], None] = time.sleep) -> float:
    """Before a run: flush dirty pages (the last engine's files, its folder just removed), then
    wait until the machine is idle, busy less than `idle_cores` over `window_s`, for at most
    `max_wait_s`, so that the writeback an engine leaves behind (Snakemake's thousands of
    files) does not land on the next engine's run. It cannot bring back the page cache the
    VM's reclaim dropped meanwhile (bench-peers' warm-up run does that). Returns the seconds
    waited."""
    os.sync()
    waited = 0.0
    while waited < max_wait_s:
        before = busy_s()
        sleep(window_s)
        waited += window_s
        if (busy_s() - before) / window_s < idle_cores:
            break
    return waited


def _ours_s() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(b")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(entry))
    return kids


def tree(root: int) -> list[tuple[int, int]]:
    """(pid, parent pid) of root and its descendants, parents before children."""
    kids = _children_map()
    out, stack = [], [(root, 0)]
    while stack:
        pid, parent = stack.pop()
        out.append((pid, parent))
        stack.extend((k, pid) for k in kids.get(pid, ()))
    return out


def _argv(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return [a.decode(errors="replace") for a in fh.read().split(b"\0") if a]
    except OSError:
        return []


def memory_kib(pid: int) -> tuple[int, int]:
    """(Rss, Pss) in KiB; (0, 0) for a process that has gone."""
    rss = pss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as fh:
            for line in fh:
                if line.startswith(b"Rss:"):
                    rss = int(line.split()[1])
                elif line.startswith(b"Pss:"):
                    pss = int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return 0, 0
    return rss, pss


def is_task(argv: list[str], task_programs: frozenset[str]) -> bool:
    """A process running a task: a shell, a task's program, or `python3 tools/...` (a task's script)."""
    if not argv:
        return False
    prog = os.path.basename(argv[0])
    if prog in SHELLS or prog in task_programs:
        return True
    return prog.startswith("python") and len(argv) > 1 and argv[1].startswith("tools/")


def engine_memory(root: int, task_programs: frozenset[str]) -> tuple[int, int]:
    """(sum of Pss, largest Rss) over the engine's processes, in KiB."""
    total, largest = 0, 0
    seen: dict[int, tuple[list[str], tuple[int, int]]] = {}
    for pid, parent in tree(root):
        argv = _argv(pid)
        if pid != root and is_task(argv, task_programs):
            continue
        mem = memory_kib(pid)
        seen[pid] = (argv, mem)
        if seen.get(parent) == (argv, mem):
            continue  # a vfork child about to exec a task: it shares its parent's memory, count it once
        total += mem[1]
        largest = max(largest, mem[0])
    return total, largest


def run(cmd: list[str], cwd: Path, env: Mapping[str, str] | None = None, timeout_s: float = 1800,
        task_programs: Iterable[str] = (), interval_s: float = 0.05) -> Measured:
    programs = frozenset(os.path.basename(p) for p in task_programs) - {"python3", "python"}
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        busy0, ours0 = _busy_s(), _ours_s()
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, env=dict(env) if env else None, stdout=out, stderr=err,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        peak_pss = peak_rss = 0
        stop = threading.Event()

        def sample() -> None:
            nonlocal peak_pss, peak_rss
            while not stop.is_set():
                pss, rss = engine_memory(proc.pid, programs)
                peak_pss, peak_rss = max(peak_pss, pss), max(peak_rss, rss)
                stop.wait(interval_s)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        timed_out = False
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        wall = time.perf_counter() - start
        stop.set()
        sampler.join()
        others = max(0.0, (_busy_s() - busy0) - (_ours_s() - ours0)) / wall
        with contextlib.suppress(ProcessLookupError):  # whatever the engine left behind goes with it
            os.killpg(proc.pid, signal.SIGKILL)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    return Measured(wall, proc.returncode, stdout, stderr, peak_pss / 1024, peak_rss / 1024, timed_out, others)
