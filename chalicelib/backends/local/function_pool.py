"""Local function pool: runs attempts as child processes of the runtime, with the function
limits (timeout, memory, /tmp quota, concurrency) enforced, so what runs here runs on Lambda.

One thread per slot starts an attempt and waits for it to exit (both calls release the GIL:
runner/spawn.py spawns without touching the process's working folder), then takes the next
prepared attempt. The loop's thread prepares attempts (sandbox, inputs) ahead of the slots,
finishes them (outputs, logs) and runs the coordinator, so a slot never waits for that
bookkeeping, and a spawn that is slow on a busy machine stops only its own slot. Finished
attempts come back through a deque and a wake-up pipe the loop's selector watches. Limits are
sampled every `sample_s` from the loop's thread.
"""

from __future__ import annotations

import contextlib
import os
import queue
import selectors
import shutil
import sys
import threading
import time
from collections import deque
from collections.abc import Callable

from chalicelib.cache.stage import TaskCache
from chalicelib.engine.events import Event, TaskStarted
from chalicelib.ports import BlobStore
from chalicelib.runner.execute import Attempt, EncodedEnv, TaskRequest
from chalicelib.runner.sandbox import Sandbox

EmitFn = Callable[[Event], None]
Key = tuple[str, str, int]
SWITCH_INTERVAL_S = 0.0005  # how soon a slot thread gets the GIL back from busy bookkeeping


class FunctionPool:
    def __init__(
        self, blobs: BlobStore, workroot: str, slots: int, selector: selectors.BaseSelector, emit: EmitFn,
        sample_s: float = 0.2, cache: TaskCache | None = None, prefetch: int | None = None,
    ) -> None:
        self.blobs = blobs
        self.workroot = workroot
        self.slots = max(1, slots)
        self.prefetch = 2 * self.slots if prefetch is None else prefetch  # prepared, waiting for a slot
        self.selector = selector
        self.emit = emit
        self.sample_s = sample_s
        self.cache = cache
        self.queue: deque[TaskRequest] = deque()  # dispatched, not prepared yet
        self.running: dict[Key, Attempt] = {}  # prepared: waiting for a slot, starting or running
        self._next_sample = 0.0
        self.base_env = EncodedEnv.of(os.environ)  # encoded once, not per task
        _remove_dead_slots(workroot)
        self._boxes = 0
        self.free: list[Sandbox] = []
        self._jobs: queue.SimpleQueue[Attempt | None] = queue.SimpleQueue()
        self._done: deque[tuple[Attempt, int | None, int]] = deque()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        selector.register(self._wake_r, selectors.EVENT_READ, (self._on_done, None))
        self._switch = sys.getswitchinterval()
        sys.setswitchinterval(min(self._switch, SWITCH_INTERVAL_S))
        self._threads = [threading.Thread(target=self._slot, name=f"updraft-slot-{i}", daemon=True)
                         for i in range(self.slots)]
        for t in self._threads:
            t.start()

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

    def _sandbox(self) -> Sandbox:
        if self.free:
            return self.free.pop()
        self._boxes += 1  # reusable folders: as many as attempts in flight at once
        return Sandbox.slot(self.workroot, f"fn-{os.getpid()}-{self._boxes}")

    def _fill(self) -> None:
        while self.queue and len(self.running) < self.slots + self.prefetch:
            req = self.queue.popleft()
            att = Attempt.prepare(req, self.blobs, self.workroot, base_env=self.base_env, sandbox=self._sandbox(),
                                  cache=self.cache)
            if not att.begin():  # stage-in failed, or a memoized result: report at once
                self._finish(att, None, 0)
                continue
            if not self.running:
                # Nothing else in flight (a chain): spawn here rather than wake a slot thread
                # for it, which would only add a hand-off to each link; the thread still waits.
                att.launch()
                if att.proc is None:
                    self._finish(att, None, 0)
                    continue
            self.running[(req.run_id, req.task_id, req.attempt)] = att
            self._jobs.put(att)

    def _slot(self) -> None:
        """A slot's thread: start the next attempt, wait for it, hand it back; repeat."""
        while True:
            att = self._jobs.get()
            if att is None:
                return
            code, maxrss = None, 0
            if att.proc is None and att.kill_reason is None:  # not started yet, nor cancelled meanwhile
                att.launch()
            if att.proc is not None:
                code, maxrss = att.reap()
            self._done.append((att, code, maxrss))
            with contextlib.suppress(BlockingIOError):  # a full pipe wakes the loop all the same
                os.write(self._wake_w, b"x")

    def _on_done(self, _arg: None) -> None:
        with contextlib.suppress(BlockingIOError):
            os.read(self._wake_r, 4096)
        while self._done:
            att, code, maxrss = self._done.popleft()
            req = att.req
            del self.running[(req.run_id, req.task_id, req.attempt)]
            self._fill()
            self._finish(att, code, maxrss)

    def _finish(self, att: Attempt, code: int | None, maxrss: int) -> None:
        self.emit(att.finish(self.blobs, code, maxrss).event)
        self.free.append(att.sandbox)

    def check_limits(self) -> None:
        now = time.monotonic()
        if now < self._next_sample:
            return
        self._next_sample = now + self.sample_s
        for att in list(self.running.values()):
            if att.proc is None:
                continue
            att.check(now)
            if not att.extra:
                # Reported at the first sample, not at spawn: a task that ends sooner goes from
                # DISPATCHED to SUCCEEDED directly (its result carries started_at), which
                # saves a state write per task for thousands of short tasks.
                att.extra["reported"] = True
                req = att.req
                self.emit(TaskStarted(req.run_id, req.task_id, req.attempt, att.started_at, att.timeout_s + 30.0))

    def next_check_in(self) -> float | None:
        if not self.running:
            return None
        return max(0.0, self._next_sample - time.monotonic())

    def kill(self, run_id: str, task_id: str, attempt: int) -> None:
        att = self.running.get((run_id, task_id, attempt))
        if att is not None:
            att.kill("CANCELLED", "cancelled")
        self.queue = deque(r for r in self.queue if (r.run_id, r.task_id, r.attempt) != (run_id, task_id, attempt))

    def kill_all(self) -> None:
        """Kill everything (the run is ending) and stop the slot threads."""
        self.queue.clear()
        for att in self.running.values():  # one still starting is killed as soon as it has started
            att.kill("CANCELLED", "cancelled")
        if not self._threads:
            return
        for _ in self._threads:
            self._jobs.put(None)
        for t in self._threads:
            t.join()
        self._threads = []
        self.selector.unregister(self._wake_r)
        os.close(self._wake_r)
        os.close(self._wake_w)
        sys.setswitchinterval(self._switch)


def _remove_dead_slots(workroot: str) -> None:
    """Slots of a runtime that was killed (kill -9) are never emptied by it: remove them."""
    root = os.path.join(workroot, "slots")
    if not os.path.isdir(root):
        return
    for name in os.listdir(root):
        pid = name.split("-")[1] if name.startswith("fn-") and name.count("-") >= 2 else ""
        if pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
            shutil.rmtree(os.path.join(root, name), ignore_errors=True)
