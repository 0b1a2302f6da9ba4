"""Local function pool: runs attempts as child processes of the runtime, with the function
limits (timeout, memory, /tmp quota, concurrency) enforced, so what runs here runs on Lambda.

Children are watched through pidfds registered on the runtime's selector: no thread per
task, no polling for exits; limits are sampled every `sample_s`.

The spawn itself (vfork + exec: the caller waits until the kernel has exec'd the child, which
on a busy machine can take milliseconds) runs on one spawner thread per slot when the spawn
is thread-safe (runner/spawn.py), so the loop goes on with its bookkeeping meanwhile; a
spawned attempt comes back to the loop through a wake-up pipe.
"""

from __future__ import annotations

import contextlib
import os
import queue
import selectors
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable

from chalicelib.cache.stage import TaskCache
from chalicelib.engine.events import Event, TaskStarted
from chalicelib.ports import BlobStore
from chalicelib.runner.execute import Attempt, EncodedEnv, TaskRequest
from chalicelib.runner.sandbox import Sandbox
from chalicelib.runner.spawn import THREAD_SAFE

EmitFn = Callable[[Event], None]


class FunctionPool:
    def __init__(
        self, blobs: BlobStore, workroot: str, slots: int, selector: selectors.BaseSelector, emit: EmitFn,
        sample_s: float = 0.2, cache: TaskCache | None = None, threaded: bool = True,
    ) -> None:
        self.blobs = blobs
        self.workroot = workroot
        self.slots = max(1, slots)
        self.selector = selector
        self.emit = emit
        self.sample_s = sample_s
        self.cache = cache
        self.queue: deque[TaskRequest] = deque()
        self.running: dict[tuple[str, str, int], Attempt] = {}
        self._next_sample = 0.0
        self.base_env = EncodedEnv.of(os.environ)  # encoded once, not per task
        _remove_dead_slots(workroot)
        # two sandboxes a slot: the next task starts in a clean one while the previous task's
        # outputs are still being stored from the other
        self.free: list[Sandbox] = [Sandbox.slot(workroot, f"fn-{os.getpid()}-{i}") for i in range(2 * self.slots)]
        self._spawner: _Spawner | None = None
        if threaded and THREAD_SAFE:
            self._spawner = _Spawner(self.slots)
            selector.register(self._spawner.wake_r, selectors.EVENT_READ, (self._on_launched, None))

    @property
    def busy(self) -> int:
        return len(self.running) + len(self.queue)

    def submit(self, req: TaskRequest) -> None:
        self.queue.append(req)
        self._fill()

    def _fill(self) -> None:
        while self.queue and len(self.running) < self.slots:
            req = self.queue.popleft()
            box = self.free.pop()
            att = Attempt.prepare(req, self.blobs, self.workroot, base_env=self.base_env, sandbox=box,
                                  cache=self.cache)
            if not att.begin():  # stage-in failed, or a memoized result: report at once
                self._done(att, None, 0)
                continue
            self.running[(req.run_id, req.task_id, req.attempt)] = att
            if self._spawner is not None:
                self._spawner.jobs.put(att)
            else:
                att.launch()
                self._launched(att)

    def _on_launched(self, _arg: None) -> None:
        assert self._spawner is not None
        with contextlib.suppress(BlockingIOError):
            os.read(self._spawner.wake_r, 4096)
        while self._spawner.done:
            self._launched(self._spawner.done.popleft())

    def _launched(self, att: Attempt) -> None:
        if att.proc is None:  # could not start: report at once
            req = att.req
            del self.running[(req.run_id, req.task_id, req.attempt)]
            self._done(att, None, 0)
            self._fill()
            return
        self.selector.register(att.pidfd, selectors.EVENT_READ, (self._on_exit, att))

    def _on_exit(self, att: Attempt) -> None:
        self.selector.unregister(att.pidfd)
        code, maxrss = att.reap()
        req = att.req
        del self.running[(req.run_id, req.task_id, req.attempt)]
        self._fill()  # keep the slot busy first; the bookkeeping below overlaps the next task
        self._done(att, code, maxrss)

    def _done(self, att: Attempt, code: int | None, maxrss: int) -> None:
        self.emit(att.finish(self.blobs, code, maxrss).event)
        self.free.append(att.sandbox)

    def check_limits(self) -> None:
        now = time.monotonic()
        if now < self._next_sample:
            return
        self._next_sample = now + self.sample_s
        for att in list(self.running.values()):
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
        """Kill everything (the run is ending) and stop the spawner threads."""
        self.queue.clear()
        for att in self.running.values():  # one still starting is killed as soon as it has started
            att.kill("CANCELLED", "cancelled")
        if self._spawner is not None:
            self._spawner.stop()
            self.selector.unregister(self._spawner.wake_r)
            self._spawner.close()
            self._spawner = None


class _Spawner:
    """Threads that spawn attempts handed over in `jobs` and append them to `done`, writing a
    byte to the wake-up pipe each time (the loop's selector watches its read end)."""

    def __init__(self, threads: int) -> None:
        self.jobs: queue.SimpleQueue[Attempt | None] = queue.SimpleQueue()
        self.done: deque[Attempt] = deque()
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)
        self.threads = [threading.Thread(target=self._work, name=f"updraft-spawn-{i}", daemon=True)
                        for i in range(threads)]
        for t in self.threads:
            t.start()

    def _work(self) -> None:
        while True:
            att = self.jobs.get()
            if att is None:
                return
            att.launch()
            self.done.append(att)
            with contextlib.suppress(BlockingIOError):  # a full pipe already wakes the loop
                os.write(self.wake_w, b"x")

    def stop(self) -> None:
        for _ in self.threads:
            self.jobs.put(None)
        for t in self.threads:
            t.join()

    def close(self) -> None:
        os.close(self.wake_r)
        os.close(self.wake_w)


def _remove_dead_slots(workroot: str) -> None:
    """Slots of a runtime that was killed (kill -9) are never emptied by it: remove them."""
    root = os.path.join(workroot, "slots")
    if not os.path.isdir(root):
        return
    for name in os.listdir(root):
        pid = name.split("-")[1] if name.startswith("fn-") and name.count("-") >= 2 else ""
        if pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
            shutil.rmtree(os.path.join(root, name), ignore_errors=True)
