"""Local function pool: runs attempts as child processes, with the function limits (timeout,
memory, /tmp quota, concurrency) enforced, so what runs here runs on Lambda.

Each slot is a small process of its own (slot.c built by slot_program.py, else slot.py),
started when an attempt first needs it (at most `slots`, see max_concurrency), that spawns
the attempts the pool sends it, one at a time, waits for each and reports its start and exit
through a pipe the loop's selector watches. A built slot that dies before its first
report does not work on this machine: the pool's later slots are Python ones.

Spawning (vfork + exec waits for the kernel to exec the child) and waiting thus never hold up
the loop, and share no GIL with its bookkeeping; the loop prepares attempts (sandbox, inputs)
ahead so that a slot starts the next one the moment the last ends, then finishes them
(outputs, logs). Limits are sampled from the loop every `sample_s`, and a task is killed
there (its process group) by pid.

When nothing runs (a chain of tasks, the last ones of a run) the loop spawns the next attempt
itself, taking one of the `slots` places, and watches it through a pidfd: with nothing else to
do it would only wait for the hand-offs to and from a slot process, which is each link of a
chain's latency. What such a task leaves running (setsid, a double fork) is re-parented to the
engine's process, a child subreaper for the run, and swept when the task ends (Attempt.reap,
runner/procs.py); a slot does the same for its own tasks.

An interrupt halts the pool at once (`halt`, from the run's SIGINT / SIGTERM handler): nothing
more is dispatched and the slots are killed with whatever is queued in their pipes, so no
attempt starts after it.

How many prepared attempts wait in a slot behind the running one follows the tasks' recent
durations: while they are short (under `short_s`), two, or enough for `queued_s` of work when
tasks are shorter than that (at most `queued_max`). The loop handles completions a few dozen
at a time (one transaction), which takes a few milliseconds; two queued millisecond tasks left
the slots idle for most of it (a 2,000-task fan-out of `true` used 1.5 of the 2 cores), six
keep them busy. Until durations are known, and while tasks are longer, none waits in a slot:
an attempt sent to a slot cannot move to another, so one queued behind a long task waits for
it while a place that frees meanwhile (a task that failed and waits out its retry backoff, a
shorter task) stays empty (four 1 s tasks on 2 places, one failing once: the last started at
2.0 s behind another instead of at 1.0 s). Those attempts wait in the pool's queue and take
the first place that frees; the hand-off costs the loop a turn, nothing next to such a task.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import shutil
import signal
import time
from collections import deque
from collections.abc import Callable, Collection, Iterator
from typing import TYPE_CHECKING

from msgspec import Struct, field

from chalicelib.backends.local.slot import encode_job, parse_reports
from chalicelib.backends.local.slot_program import python_slot, slot_command
from chalicelib.cache.stage import TaskCache
from chalicelib.engine.events import Event, TaskStarted
from chalicelib.engine.ports import BlobStore
from chalicelib.engine.states import Reason
from chalicelib.engine.transitions import function_lease_s
from chalicelib.errors import ConfigError
from chalicelib.runner import affinity
from chalicelib.runner.execute import Attempt, EncodedEnv, TaskRequest
from chalicelib.runner.sandbox import Sandbox

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

EmitFn = Callable[[Event], None]
CONCURRENCY_FLOOR = 256  # the most tasks at once allowed on any machine (see max_concurrency)
CONCURRENCY_PER_CPU = 4
Key = tuple[str, str, int]
_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def max_concurrency() -> int:
    """The most tasks one local run may run at once: 256, or 4 per CPU on a bigger machine.

    Each running task holds a slot process and two of the engine's file descriptors (1,024 by
    default), and one loop serves them all; past a few per core, more at once only helps tasks
    that wait (on the network, on sleep), and a typo such as 100000 would start that many
    processes. Slots start as attempts need them, so a high limit costs nothing until used."""
    return max(CONCURRENCY_FLOOR, CONCURRENCY_PER_CPU * (os.cpu_count() or 1))


def check_concurrency(value: int) -> int:
    """`value` when it is a usable concurrency; ConfigError naming the limit otherwise."""
    top = max_concurrency()
    if not 1 <= value <= top:
        raise ConfigError(f"concurrency {value} is out of range: a local run takes 1 to {top} tasks at once "
                          f"(at most {CONCURRENCY_FLOOR}, or {CONCURRENCY_PER_CPU} per CPU on machines with "
                          f"more than {CONCURRENCY_FLOOR // CONCURRENCY_PER_CPU}); pass a smaller --concurrency")
    return value


class _Slot(Struct):
    index: int  # its place in the pool (a replacement takes the same): which CPU it keeps to
    pid: int
    jobs: int  # write end of its job pipe
    reports: int  # read end of its report pipe
    buf: bytearray = field(default_factory=bytearray)
    assigned: deque[int] = field(default_factory=deque)  # job ids sent, in order
    reported: bool = False  # has sent a report: its program works
    pinned: bool = False  # keeps to one CPU (its tasks are widened by it, their trees by the loop)


class FunctionPool:
    def __init__(
        self, blobs: BlobStore, workroot: str, slots: int, selector: selectors.BaseSelector, emit: EmitFn,
        sample_s: float = 0.2, cache: TaskCache | None = None, queued_per_slot: int = 2,
        queued_s: float = 0.006, queued_max: int = 6, short_s: float = 0.05,
    ) -> None:
        self.blobs = blobs
        self.workroot = workroot
        self.slots = max(1, slots)
        self.queued_min = max(0, queued_per_slot)
        self.queued_s = queued_s
        self.queued_max = max(self.queued_min, queued_max)
        self.short_s = short_s  # attempts queue in a slot only behind tasks shorter than this
        self.per_slot = 1  # the running attempt and those queued behind it (see _learn)
        self._mean_s: float | None = None  # recent attempts' mean duration (moving average)
        self.selector = selector
        self.emit = emit
        self.sample_s = sample_s
        self.cache = cache
        self.queue: deque[TaskRequest] = deque()  # dispatched, not prepared yet
        self.running: dict[Key, Attempt] = {}  # sent to a slot: waiting there, starting or running
        self.reported: set[Key] = set()  # of those running, the ones whose TaskStarted was emitted
        self._next_sample = 0.0
        self.base_env = EncodedEnv.of(os.environ)  # encoded once, not per task
        _remove_dead_slots(workroot)
        self._boxes = 0
        self.free: list[Sandbox] = []
        self._cleaner: ThreadPoolExecutor | None = None
        self._cleared: deque[Sandbox] = deque()  # emptied by the cleaner thread, ready again
        self._jobs: dict[int, Attempt] = {}
        self._job_ids = 0
        self._slot_argv = slot_command()
        self._slots: list[_Slot] = []  # started as attempts need them, up to `slots`
        self._slot_pids: set[int] = set()  # children of this process that are not tasks
        self.inline: Attempt | None = None  # spawned by the loop itself (see _fill)
        self.halted = False  # interrupted: nothing more starts (see halt)
        # the loop's own attempts (_launch_inline) leave their orphans to this process: those
        # carrying the attempt's environment are its; with sweep_all (this process runs nothing
        # else) every child but the slots and `others()` is
        self.sweep_all = False
        self.others: Callable[[], set[int]] = set

    @property
    def busy(self) -> int:
        return len(self.running) + len(self.queue)

    @property
    def waiting(self) -> int:
        """Attempts that will start as soon as a slot frees up."""
        return len(self.queue) + sum(1 for att in self.running.values() if att.proc is None)

    def submit(self, req: TaskRequest) -> None:
        self.queue.append(req)
        self._fill()

    # ---- slots --------------------------------------------------------------------------

    def _start_slot(self) -> _Slot:
        used = {s.index for s in self._slots}
        index = next(i for i in range(len(self._slots) + 1) if i not in used)
        job_r, job_w = os.pipe()
        rep_r, rep_w = os.pipe()
        actions = [(os.POSIX_SPAWN_DUP2, job_r, 0), (os.POSIX_SPAWN_DUP2, rep_w, 1)]
        pin = affinity.slot_env(index)  # a CPU of its own: spawning and waiting stay on it
        env = {**os.environ, "PYTHONPATH": _PACKAGE_ROOT, **pin}  # the Python slot imports this package
        try:
            pid = os.posix_spawn(self._slot_argv[0], self._slot_argv, env, file_actions=actions, setsid=True)
            if not pin:
                affinity.release(pid)  # its tasks inherit its CPUs: all of them, not the loop's one
        finally:
            os.close(job_r)
            os.close(rep_w)
        os.set_blocking(rep_r, False)
        slot = _Slot(index, pid, job_w, rep_r, pinned=bool(pin))
        self.selector.register(rep_r, selectors.EVENT_READ, (self._on_reports, slot))
        self._slots.append(slot)
        self._slot_pids.add(pid)
        return slot

    def _stop_slot(self, slot: _Slot) -> None:
        """Stop a slot at once, jobs still queued in its pipe included; kill any attempt it
        started that the loop had not heard of yet (their groups outlive the slot)."""
        self.selector.unregister(slot.reports)
        os.close(slot.jobs)
        with contextlib.suppress(ProcessLookupError):
            os.kill(slot.pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(slot.pid, 0)
        os.set_blocking(slot.reports, True)
        while chunk := os.read(slot.reports, 1 << 16):  # EOF: the slot is gone
            slot.buf += chunk
        os.close(slot.reports)
        for report in parse_reports(slot.buf):
            if report[0] == "S":
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(report[2], signal.SIGKILL)

    def _on_reports(self, slot: _Slot) -> None:
        try:
            data = os.read(slot.reports, 1 << 16)
        except BlockingIOError:
            return
        if not data:  # the slot process died: what it held cannot be trusted to have run
            self._lost(slot)
            return
        slot.buf += data
        slot.reported = True
        for report in parse_reports(slot.buf):
            kind, job_id = report[0], report[1]
            att = self._jobs[job_id]
            if kind == "S":
                att.spawner = slot.pid  # the task's orphans become the slot's children
                att.started(report[2], report[3])
                att.unpin_tree = slot.pinned
                continue
            del self._jobs[job_id]
            slot.assigned.popleft()
            if kind == "X":
                att.reaped(report[2])
                self._done(att, report[2], report[3], ended_at=report[4])
            else:
                att.launch_failed(report[2])
                self._done(att, None, 0)

    def halt(self) -> None:
        """Start nothing more, from now on: called from the run's SIGINT / SIGTERM handler, so
        that no queued attempt starts after the interrupt (the cancellation it leads to comes
        a loop turn later). Jobs sent to a slot but not started yet are in its pipe: the slot
        is killed, which also stops a spawn not yet under way (the kernel refuses to create a
        process for one with a fatal signal pending). What its tasks run is ended by the
        cancellation, and the attempts it held end as CANCELLED when its reports pipe closes."""
        self.halted = True
        for slot in self._slots:
            with contextlib.suppress(ProcessLookupError):
                os.kill(slot.pid, signal.SIGKILL)

    def _lost(self, slot: _Slot) -> None:
        """A slot process ended unexpectedly: what it held failed as a lost worker's tasks do
        (LEASE_EXPIRED: the coordinator gives them extra attempts of their own); another slot
        starts when attempts need it."""
        self._slots.remove(slot)
        self._slot_pids.discard(slot.pid)
        self.selector.unregister(slot.reports)
        os.close(slot.jobs)
        os.close(slot.reports)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(slot.pid, 0)
        if not slot.reported and not self.halted and self._slot_argv != python_slot():
            # a built slot program that dies before its first report does not work here:
            # the Python slot takes over for this pool
            self._slot_argv = python_slot()
        for job_id in slot.assigned:
            att = self._jobs.pop(job_id)
            if att.proc is not None:  # the task itself may still run: its group is ours to end
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(att.proc.pid, signal.SIGKILL)
            if self.halted:  # killed by halt()
                att.kill(Reason.CANCELLED.value, "cancelled: the run was interrupted")
            else:
                att.lost("the function pool's slot process running it ended unexpectedly")
            self._done(att, None, 0)

    # ---- attempts -----------------------------------------------------------------------

    def _sandbox(self) -> Sandbox:
        if self.free:
            return self.free.pop()
        if self._cleared:
            return self._cleared.popleft()
        self._boxes += 1  # reusable folders: as many as attempts in flight at once
        return Sandbox.slot(self.workroot, f"fn-{os.getpid()}-{self._boxes}")

    def _open_slot(self) -> _Slot | None:
        """The slot for the next attempt: an idle one (started now if need be) while fewer
        than `slots` attempts run, else the one with the shortest queue that has room."""
        active = [s for s in self._slots if s.assigned]
        if len(active) + (self.inline is not None) < self.slots:
            idle = next((s for s in self._slots if not s.assigned), None)
            return idle if idle is not None else self._start_slot()
        slot = min(active, key=lambda s: len(s.assigned), default=None)
        return slot if slot is not None and len(slot.assigned) < self.per_slot else None

    def _fill(self) -> None:
        while self.queue and len(self.running) < self.slots * self.per_slot and not self.halted:
            slot = self._open_slot() if self.running else None  # alone: the loop spawns it (below)
            if slot is None and self.running:
                return
            req = self.queue.popleft()
            att = Attempt.prepare(req, self.blobs, self.workroot, base_env=self.base_env, sandbox=self._sandbox(),
                                  cache=self.cache)
            cmd = None
            if att.begin():
                if slot is None:
                    self._launch_inline(att)
                    continue
                cmd = att.command()
            if cmd is None or slot is None:  # stage-in failed, a memoized result, no such program
                self._finish(att, None, 0)
                continue
            if self.halted:  # interrupted while this attempt was prepared: a slot started meanwhile lives on
                self.queue.appendleft(req)
                self._release(att.sandbox)
                return
            self._job_ids += 1
            try:
                os.write(slot.jobs, encode_job(self._job_ids, cmd.exe, cmd.argv, cmd.env, cmd.cwd, cmd.log_path))
            except OSError:  # the slot died; its reports pipe tells the loop, which replaces it
                self.queue.appendleft(req)
                self._release(att.sandbox)  # its inputs are staged: emptied before reuse
                return
            self._jobs[self._job_ids] = att  # (sent to a slot halt() killed meanwhile: cancelled at its EOF)
            slot.assigned.append(self._job_ids)
            self.running[(req.run_id, req.task_id, req.attempt)] = att

    def _launch_inline(self, att: Attempt) -> None:
        att.keep = _NotTasks(self)  # the loop's children that are not the task's orphans (read live)
        att.sweep_all = self.sweep_all
        # SIGINT and SIGTERM wait until the attempt has started (their handler calls halt()):
        # either it started before the interrupt, or it does not start
        with _signals_held():
            if self.halted:
                att.kill(Reason.CANCELLED.value, "cancelled: the run was interrupted")
            else:
                att.launch()
        if att.proc is None:
            self._finish(att, None, 0)
            return
        req = att.req
        self.inline = att
        self.running[(req.run_id, req.task_id, req.attempt)] = att
        self.selector.register(att.pidfd, selectors.EVENT_READ, (self._on_inline_exit, att))

    def _on_inline_exit(self, att: Attempt) -> None:
        self.selector.unregister(att.pidfd)
        code, maxrss = att.reap()
        if self.inline is att:
            self.inline = None
        self._done(att, code, maxrss)

    def _done(self, att: Attempt, code: int | None, maxrss: int, ended_at: float | None = None) -> None:
        """An attempt in flight has ended (at `ended_at` by its slot's clock, else now): free
        its place, start the next, then finish it (the bookkeeping overlaps the next task)."""
        req = att.req
        del self.running[(req.run_id, req.task_id, req.attempt)]
        self.reported.discard((req.run_id, req.task_id, req.attempt))
        if att.proc is not None:
            ended_at = time.time() if ended_at is None else ended_at
            self._learn(ended_at - att.started_at)
        self._fill()
        self._finish(att, code, maxrss, ended_at)

    def _learn(self, duration_s: float) -> None:
        """Fold an attempt's duration into the mean; set how many attempts queue per slot
        (none behind tasks that are not short: see the module's doc)."""
        mean = duration_s if self._mean_s is None else self._mean_s + 0.1 * (duration_s - self._mean_s)
        self._mean_s = mean
        if mean >= self.short_s:
            self.per_slot = 1
            return
        queued = int(self.queued_s / mean) if mean > 0 else self.queued_max
        self.per_slot = 1 + min(self.queued_max, max(self.queued_min, queued))

    def _finish(self, att: Attempt, code: int | None, maxrss: int, ended_at: float | None = None) -> None:
        self.emit(att.finish(self.blobs, code, maxrss, clear=False, ended_at=ended_at).event)
        self._release(att.sandbox)

    def _release(self, box: Sandbox) -> None:
        """A sandbox back for reuse: at once when clean, else once emptied."""
        if box.reuse_as_is():
            self.free.append(box)
            return
        # Emptying a folder the task filled (its inputs, its outputs' folders, its files in
        # /tmp) waits on the file system: 0.61-0.69 s of the loop's time in a 7 s Montage run,
        # rmdir alone 2.5 ms a call while the tasks wrote their images. A cleaner thread does it
        # (the system calls release the GIL); the folder is reused once it is empty again.
        if self._cleaner is None:
            from concurrent.futures import ThreadPoolExecutor  # not imported by runs that never need it

            self._cleaner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="updraft-sandbox-cleaner",
                                               initializer=_cleaner_thread)
        self._cleaner.submit(self._clear, box)

    def _clear(self, box: Sandbox) -> None:
        box.remove()
        self._cleared.append(box)  # deque appends and pops are atomic

    def check_limits(self) -> None:
        now = time.monotonic()
        if now < self._next_sample:
            return
        self._next_sample = now + self.sample_s
        for key, att in list(self.running.items()):
            if att.proc is None:
                continue
            att.check(now)
            if key not in self.reported:
                # Reported at the first sample, not at spawn: a task that ends sooner goes from
                # DISPATCHED to SUCCEEDED directly (its result carries started_at), which
                # saves a state write per task for thousands of short tasks.
                self.reported.add(key)
                req = att.req
                lease_s = function_lease_s(att.timeout_s)
                self.emit(TaskStarted(req.run_id, req.task_id, req.attempt, att.started_at, lease_s))

    def next_check_in(self) -> float | None:
        if not self.running:
            return None
        return max(0.0, self._next_sample - time.monotonic())

    def kill(self, run_id: str, task_id: str, attempt: int) -> None:
        att = self.running.get((run_id, task_id, attempt))
        if att is not None:  # one still waiting in its slot is killed the moment it starts
            att.kill(Reason.CANCELLED.value, "cancelled")
        self.queue = deque(r for r in self.queue if (r.run_id, r.task_id, r.attempt) != (run_id, task_id, attempt))

    def kill_all(self) -> None:
        """Kill everything (the run is ending) and stop the slot processes."""
        self.queue.clear()
        for att in self.running.values():
            att.kill(Reason.CANCELLED.value, "cancelled")
        slots, self._slots = self._slots, []
        for slot in slots:
            self._stop_slot(slot)
        self._slot_pids.clear()
        if self._cleaner is not None:
            self._cleaner.shutdown(wait=True)
            self._cleaner = None


class _NotTasks(Collection[int]):
    """The pool's slots and the loop's other children (`others`), as they are when read: a
    slot started while an inline attempt runs is not that attempt's orphan."""

    def __init__(self, pool: FunctionPool) -> None:
        self.pool = pool

    def _now(self) -> set[int]:
        return self.pool._slot_pids | self.pool.others()

    def __contains__(self, pid: object) -> bool:
        return pid in self._now()

    def __iter__(self) -> Iterator[int]:
        return iter(self._now())

    def __len__(self) -> int:
        return len(self._now())


# the signals that stop a run (the runtime's loop handles them; SIGHUP: its terminal was closed)
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_HELD = set(STOP_SIGNALS)


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Hold SIGINT, SIGTERM and SIGHUP back from the calling thread (the loop's) for the block: their
    Python handler runs after it. Only the loop's thread can take them (see _cleaner_thread)."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, _HELD)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _cleaner_thread() -> None:
    """The sandbox cleaner thread: every CPU, and no SIGINT / SIGTERM / SIGHUP (a signal the loop's
    thread holds back must wait for it, not be taken here)."""
    affinity.release_thread()
    signal.pthread_sigmask(signal.SIG_BLOCK, _HELD)


def _remove_dead_slots(workroot: str) -> None:
    """Slots of a runtime that was killed (kill -9) are never emptied by it: remove them."""
    root = os.path.join(workroot, "slots")
    if not os.path.isdir(root):
        return
    for name in os.listdir(root):
        pid = name.split("-")[1] if name.startswith("fn-") and name.count("-") >= 2 else ""
        if pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
            shutil.rmtree(os.path.join(root, name), ignore_errors=True)
