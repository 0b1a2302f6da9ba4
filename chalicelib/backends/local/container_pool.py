"""Local container pool: worker processes (chalicelib.backends.local.container_worker) fed
through a queue, the local stand-in for Fargate workers fed through SQS. Workers start on
first use; each runs one task at a time.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import sys
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from msgspec import Struct, field

from chalicelib.engine.events import Event, Launch, event_from_dict
from chalicelib.engine.states import Reason
from chalicelib.runner import affinity
from chalicelib.runner.execute import TaskRequest

if TYPE_CHECKING:
    import subprocess


class _Worker(Struct):
    proc: subprocess.Popen[bytes]
    current: Launch | None = None
    buffer: bytes = field(default=b"")


class ContainerPool:
    def __init__(
        self, blob_root: str, workroot: str, workers: int, selector: selectors.BaseSelector,
        emit: Callable[[Event], None], worker_args: list[str] | None = None,
    ) -> None:
        self.blob_root = blob_root
        self.workroot = workroot
        self.size = max(1, workers)
        self.selector = selector
        self.emit = emit
        self.worker_args = list(worker_args or [])
        self.queue: deque[tuple[Launch, TaskRequest]] = deque()
        self.workers: list[_Worker] = []
        self.halted = False  # interrupted: no more launches are handed to workers

    @property
    def busy(self) -> int:
        return len(self.queue) + sum(1 for w in self.workers if w.current is not None)

    def submit(self, launch: Launch, req: TaskRequest) -> None:
        self.queue.append((launch, req))
        self._fill()

    def _spawn(self) -> _Worker:
        import subprocess  # ~5 ms of start-up that runs without container tasks never use

        proc = subprocess.Popen(
            [sys.executable, "-m", "chalicelib.backends.local.container_worker",
             "--blobs", self.blob_root, "--workroot", self.workroot, *self.worker_args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True,
        )
        affinity.release(proc.pid)
        worker = _Worker(proc)
        assert proc.stdout is not None
        os.set_blocking(proc.stdout.fileno(), False)
        self.selector.register(proc.stdout.fileno(), selectors.EVENT_READ, (self._on_output, worker))
        self.workers.append(worker)
        return worker

    def pids(self) -> set[int]:
        """The worker processes (children of this process that are not tasks)."""
        return {w.proc.pid for w in self.workers}

    def halt(self) -> None:
        """Hand no more launches to workers (the run was interrupted; see FunctionPool.halt)."""
        self.halted = True

    def _fill(self) -> None:
        while self.queue and not self.halted:
            idle = next((w for w in self.workers if w.current is None and w.proc.poll() is None), None)
            if idle is None and len(self.workers) < self.size:
                idle = self._spawn()
            if idle is None:
                return
            launch, req = self.queue.popleft()
            idle.current = launch
            assert idle.proc.stdin is not None
            line = {"run_id": launch.run_id, "task_id": launch.task_id, "attempt": launch.attempt,
                    "input_hashes": dict(req.input_hashes), "reuse": req.reuse,
                    "resources": req.task.resources.to_dict()}
            idle.proc.stdin.write((json.dumps(line) + "\n").encode())
            idle.proc.stdin.flush()

    def _on_output(self, worker: _Worker) -> None:
        assert worker.proc.stdout is not None
        fd = worker.proc.stdout.fileno()
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            return
        if not chunk:  # the worker died: its task is lost, report it so it can be retried
            self.selector.unregister(fd)
            self.workers.remove(worker)
            worker.proc.wait()
            if worker.current is not None:
                lost = worker.current
                from chalicelib.attempt import AttemptResult
                from chalicelib.engine.events import TaskFailed

                tail = f"container worker exited with {worker.proc.returncode}"
                self.emit(TaskFailed(lost.run_id, lost.task_id, lost.attempt, Reason.LEASE_EXPIRED.value,
                                     AttemptResult(log_tail=tail)))
            self._fill()
            return
        worker.buffer += chunk
        *lines, worker.buffer = worker.buffer.split(b"\n")
        for line in lines:
            if not line.strip():
                continue
            event = event_from_dict(json.loads(line))
            self.emit(event)
            if event.kind in ("succeeded", "failed"):
                worker.current = None
        self._fill()

    def kill(self, run_id: str, task_id: str, attempt: int) -> None:
        target = (run_id, task_id, attempt)
        self.queue = deque(q for q in self.queue if (q[0].run_id, q[0].task_id, q[0].attempt) != target)
        for w in self.workers:
            c = w.current
            if c is not None and (c.run_id, c.task_id, c.attempt) == (run_id, task_id, attempt):
                w.proc.send_signal(signal.SIGUSR1)

    def shutdown(self) -> None:
        self.queue.clear()
        if not self.workers:
            return
        import subprocess

        for w in self.workers:
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(w.proc.stdout.fileno())  # type: ignore[union-attr]
            if w.proc.stdin:
                w.proc.stdin.close()
            if w.current is not None:
                w.proc.send_signal(signal.SIGTERM)
        for w in self.workers:
            try:
                w.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                w.proc.kill()
                w.proc.wait()
        self.workers.clear()
