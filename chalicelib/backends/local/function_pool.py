"""Local function pool: runs attempts as child processes of the runtime, with the function
limits (timeout, memory, /tmp quota, concurrency) enforced, so what runs here runs on Lambda.

Children are watched through pidfds registered on the runtime's selector: no thread per
task, no polling for exits; limits are sampled every `sample_s`.
"""

from __future__ import annotations

import os
import selectors
import shutil
import time
from collections import deque
from collections.abc import Callable

from chalicelib.cache.stage import TaskCache
from chalicelib.engine.events import Event, TaskStarted
from chalicelib.ports import BlobStore
from chalicelib.runner.execute import Attempt, EncodedEnv, TaskRequest
from chalicelib.runner.sandbox import Sandbox

EmitFn = Callable[[Event], None]


class FunctionPool:
    def __init__(
        self, blobs: BlobStore, workroot: str, slots: int, selector: selectors.BaseSelector, emit: EmitFn,
        sample_s: float = 0.2, cache: TaskCache | None = None,
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
        self.free: list[Sandbox] = [Sandbox.slot(workroot, f"fn-{os.getpid()}-{i}") for i in range(self.slots)]

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
            att.start()
            if att.proc is None:  # stage-in or launch failed: report at once
                self.emit(att.finish(self.blobs, None, 0).event)
                self.free.append(box)
                continue
            self.running[(req.run_id, req.task_id, req.attempt)] = att
            self.selector.register(att.pidfd, selectors.EVENT_READ, (self._on_exit, att))

    def _on_exit(self, att: Attempt) -> None:
        self.selector.unregister(att.pidfd)
        code, maxrss = att.reap()
        req = att.req
        del self.running[(req.run_id, req.task_id, req.attempt)]
        self.emit(att.finish(self.blobs, code, maxrss).event)
        self.free.append(att.sandbox)
        self._fill()

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
        self.queue.clear()
        for att in self.running.values():
            att.kill("CANCELLED", "cancelled")


def _remove_dead_slots(workroot: str) -> None:
    """Slots of a runtime that was killed (kill -9) are never emptied by it: remove them."""
    root = os.path.join(workroot, "slots")
    if not os.path.isdir(root):
        return
    for name in os.listdir(root):
        pid = name.split("-")[1] if name.startswith("fn-") and name.count("-") >= 2 else ""
        if pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
            shutil.rmtree(os.path.join(root, name), ignore_errors=True)
